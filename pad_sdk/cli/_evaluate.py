"""``pad-sdk evaluate``: retrain on an export and test on the same holdout of its source."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def evaluate_export(export: str, source: str, *, seeds: int | None, storage_options: dict[str, Any] | None,
                    on_event: Callable[..., None] | None = None) -> dict[str, Any]:
    """Train fresh networks on an export and test them on SOURCE's holdout (the export's own split is reused:
    same seed and fraction, so the holdout is the one the run measured on)."""
    import torch

    from pad_sdk.config import validate_config
    from pad_sdk.core.evaluate import evaluate_set
    from pad_sdk.core.seeding import derive_seed
    from pad_sdk.core.training import LabelledImages
    from pad_sdk.data import PreparedData, load_source
    from pad_sdk.errors import ConfigError, DataError
    from pad_sdk.pipeline import Stages
    from pad_sdk.presets import preset_config
    from pad_sdk.result import load_condensed

    condensed = load_condensed(export, storage_options=storage_options)
    run = condensed.metadata.get("run") or {}
    config = validate_config(run["config"]) if run.get("config") else preset_config("cpu-small", condensed.ipc)
    if condensed.metadata.get("zca"):
        raise ConfigError("this export was made with ZCA whitening, which it does not store; evaluate it in the "
                          "pipeline that made it", field="zca")
    if seeds is not None:
        config = config.model_copy(update={"evaluation": config.evaluation.model_copy(update={"seeds": seeds})})
    split = (condensed.metadata.get("source") or {}).get("split") or {}
    raw = load_source(source, holdout_fraction=float(split.get("fraction", 0.2)), seed=int(split.get("seed", 0)),
                      storage_options=storage_options)
    if raw.class_names != condensed.class_names or raw.test_images.shape[1:] != condensed.images.shape[1:]:
        raise DataError(f"the source has classes {list(raw.class_names)} and images {tuple(raw.test_images.shape[1:])}"
                        f"; the export {list(condensed.class_names)} and {tuple(condensed.images.shape[1:])}",
                        field="source")
    k = len(condensed.class_names)
    test = LabelledImages(condensed.normalisation.apply(raw.test_images), raw.test_labels, k)
    data = PreparedData(LabelledImages(condensed.images, condensed.labels, k), test, condensed.class_names,
                        condensed.normalisation)
    stages = Stages(config, data, on_event=on_event)
    targets = condensed.label_logits if condensed.label_logits is not None else condensed.labels
    lr = condensed.learned_lr or config.evaluation.random_lr
    stages.on_event("evaluate", 0, config.evaluation.seeds)
    result = evaluate_set(condensed.images, targets, test, stages.network_factory(), config.evaluation.recipe(lr),
                          seeds=config.evaluation.seeds, seed=derive_seed(config.seed, 41), augment=stages.augment,
                          device=stages.device)
    stages.on_event("evaluate", config.evaluation.seeds, config.evaluation.seeds)
    recorded = (run.get("accuracy") or {})
    same_holdout = split.get("holdout_sha256") in (None, (raw.source.get("split") or {}).get("holdout_sha256"))
    return {
        "export": export, "source": raw.source.get("uri"), "ipc": condensed.ipc, "images": len(condensed.labels),
        "holdout_rows": int(raw.test_labels.numel()), "same_holdout_as_run": same_holdout,
        "condensed": result.to_dict(), "class_names": list(condensed.class_names),
        "recorded_condensed_mean": (recorded.get("condensed") or {}).get("mean"),
        "recorded_full_mean": (recorded.get("full") or {}).get("mean"),
        "recorded_full_recall": (recorded.get("full") or {}).get("per_class_recall"),
        "device": str(torch.device(stages.device)),
    }


def _judge_evaluation(measured: dict[str, Any], policy_file: Path) -> Any:
    import policies

    names = measured["class_names"]
    recall = measured["condensed"]["per_class_recall"]
    results: dict[str, Any] = {
        "ipc": measured["ipc"], "class_names": names, "condensed_accuracies": measured["condensed"]["accuracies"],
        "per_class_recall_condensed": {n: v for n, v in zip(names, recall, strict=True) if v == v},
    }
    if measured["recorded_full_mean"] is not None:  # the full-data reference the export's run measured
        results["full_accuracy"] = measured["recorded_full_mean"]
    if measured["recorded_full_recall"]:
        results["per_class_recall_full"] = {
            n: v for n, v in zip(names, measured["recorded_full_recall"], strict=True) if v is not None and v == v}
    return policies.load_policy(policy_file).judge(results)
