"""Re-evaluating an export: train fresh networks on it and test them on its source's holdout, as the run did.

The run's own settings come from the export's manifest (its ``run.config``), the holdout from the same split
(seed and fraction recorded with the source), and the networks from the same seeds as the run's condensed-set
evaluation, so on the same machine the accuracies repeat the run's exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from pad_sdk.config import PadConfig, validate_config
from pad_sdk.core.training import LabelledImages
from pad_sdk.data import PreparedData, as_stored, load_source
from pad_sdk.errors import ConfigError, DataError
from pad_sdk.pipeline import EventSink, Stages
from pad_sdk.presets import preset_config
from pad_sdk.result import CondensedSet, load_condensed


def evaluate_export(export: str, source: str, *, seeds: int | None = None,
                    storage_options: Mapping[str, Any] | None = None, on_event: EventSink | None = None,
                    device: str | None = None) -> dict[str, Any]:
    """Train ``seeds`` networks (default: as many as the run) on the export at ``export`` and test them on the
    holdout of ``source`` (the export's source: the same split is rebuilt from its recorded seed and fraction).

    Returns the measurements: ``condensed`` (mean, std, accuracies, per-class recall), the run's recorded
    accuracies for comparison, whether the holdout is the one the run measured on, and the device used.
    """
    condensed = load_condensed(export, storage_options=storage_options)
    run = condensed.metadata.get("run") or {}
    config = _run_config(condensed, run, seeds, device)
    split = (condensed.metadata.get("source") or {}).get("split") or {}
    raw = load_source(source, holdout_fraction=float(split.get("fraction", 0.2)), seed=int(split.get("seed", 0)),
                      storage_options=storage_options)
    if raw.class_names != condensed.class_names or raw.test_images.shape[1:] != condensed.images.shape[1:]:
        raise DataError(f"the source has classes {list(raw.class_names)} and images {tuple(raw.test_images.shape[1:])}"
                        f"; the export {list(condensed.class_names)} and {tuple(condensed.images.shape[1:])}",
                        field="source")
    k = len(condensed.class_names)
    norm = condensed.normalisation
    test = LabelledImages(as_stored(raw.test_images).normalised(norm.mean, norm.std), raw.test_labels, k)
    data = PreparedData(LabelledImages(condensed.images, condensed.labels, k), test, condensed.class_names,
                        condensed.normalisation)
    stages = Stages(config, data, on_event=on_event)
    synthetic = condensed.as_synthetic(config.evaluation.random_lr)
    result = stages.evaluate(stages.condensed_job(synthetic))  # the run's job: same recipe, seeds and networks
    recorded = run.get("accuracy") or {}
    same_holdout = split.get("holdout_sha256") in (None, (raw.source.get("split") or {}).get("holdout_sha256"))
    return {
        "export": export, "source": raw.source.get("uri"), "ipc": condensed.ipc, "images": len(condensed.labels),
        "holdout_rows": int(raw.test_labels.numel()), "same_holdout_as_run": same_holdout,
        "condensed": result.to_dict(), "class_names": list(condensed.class_names),
        "recorded_condensed_mean": (recorded.get("condensed") or {}).get("mean"),
        "recorded_condensed_accuracies": (recorded.get("condensed") or {}).get("accuracies"),
        "recorded_full_mean": (recorded.get("full") or {}).get("mean"),
        "recorded_full_recall": (recorded.get("full") or {}).get("per_class_recall"),
        "device": str(torch.device(stages.device)),
    }


def _run_config(condensed: CondensedSet, run: Mapping[str, Any], seeds: int | None, device: str | None) -> PadConfig:
    config = validate_config(dict(run["config"])) if run.get("config") else preset_config("cpu-small", condensed.ipc)
    if condensed.metadata.get("zca"):
        raise ConfigError("this export was made with ZCA whitening, which it does not store; evaluate it in the "
                          "pipeline that made it", field="zca")
    updates: dict[str, Any] = {}
    if seeds is not None:
        updates["evaluation"] = config.evaluation.model_copy(update={"seeds": seeds})
    if device is not None:
        updates["device"] = device
    return config.model_copy(update=updates) if updates else config
