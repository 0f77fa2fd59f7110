"""``pad_sdk.distill``: the one call a pipeline makes.

It wires the lower layers together: a connector (or arrays) for the data, a policy for the IPC, the
PAD overrides and the verdict, a preset for the settings, the stage functions for the algorithm.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
import torch

import connectors
import policies
from pad_sdk.config import PadConfig, validate_config
from pad_sdk.core.evaluate import EvalResult
from pad_sdk.core.training import LabelledImages
from pad_sdk.core.zca import ZCAWhitening
from pad_sdk.errors import ConfigError, DataError, translated_errors
from pad_sdk.methods import MethodContext, TrajectoryMatching, get_method
from pad_sdk.pipeline import EventSink, Normalisation, PreparedData, Stages, to_float_images, to_labels
from pad_sdk.presets import _merge, preset_config
from pad_sdk.result import AccuracyReport, CondensedSet, DistillResult
from pad_sdk.runtime import LocalRuntime, Runtime, resolve_runtime
from pad_sdk.trajectories import TrajectoryStore

log = structlog.get_logger(__name__)

ArrayLike = np.ndarray | torch.Tensor
HOLDOUT_SPLITS = ("test", "holdout", "validation", "val")


@dataclass(frozen=True)
class RawData:
    """Images and labels before normalisation, plus what is known about their origin."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: tuple[str, ...]
    source: dict[str, Any]
    test_groups: np.ndarray | None = None
    group_column: str | None = None


def load_source(
    source: str | connectors.Source,
    *,
    holdout_fraction: float,
    seed: int,
    storage_options: Mapping[str, Any] | None = None,
    read: Callable[[connectors.Source, str | None], connectors.Batch] | None = None,
    **open_kwargs: Any,
) -> RawData:
    """Read a connector source into memory, using its test split or a seeded stratified holdout.

    ``read(src, split)`` returns the rows of a split (all rows for None) in row order; the default reads
    them here, the Ray runtime passes one that collects them from Ray Data blocks on a worker.
    """
    src = open_source(source, storage_options=storage_options, **open_kwargs)
    return raw_from_source(src, read or _read_here, holdout_fraction=holdout_fraction, seed=seed)


def open_source(source: str | connectors.Source, *, storage_options: Mapping[str, Any] | None = None,
                **open_kwargs: Any) -> connectors.Source:
    with translated_errors():
        if isinstance(source, connectors.Source):
            return source
        return connectors.open_source(source, storage_options=storage_options, **open_kwargs)


def _read_here(src: connectors.Source, split: str | None) -> connectors.Batch:
    return src.read_all(split=split)


def raw_from_source(src: connectors.Source, read: Callable[[connectors.Source, str | None], connectors.Batch], *,
                    holdout_fraction: float, seed: int) -> RawData:
    """The train and holdout sets of ``src``: its test split if it has one, else a seeded stratified split."""
    with translated_errors():
        schema = src.schema
        splits = splits_to_read(schema)
        if len(splits) == 2:
            train_split, holdout = splits
            train, test = read(src, train_split), read(src, holdout)
            split_record: dict[str, Any] = {"train": train_split, "holdout": holdout}
        else:
            everything = read(src, None)
            plan = connectors.stratified_split(everything.labels, holdout_fraction, seed)
            train, test = everything.take(plan.train_rows), everything.take(plan.holdout_rows)
            split_record = plan.to_dict()
    return RawData(
        to_float_images(train.images), torch.from_numpy(np.asarray(train.labels, dtype=np.int64)),
        to_float_images(test.images, "holdout images"), torch.from_numpy(np.asarray(test.labels, dtype=np.int64)),
        tuple(schema.class_names), source_record(src, split_record),
        test_groups=test.groups, group_column=schema.group_column,
    )


def splits_to_read(schema: connectors.SourceSchema) -> list[str | None]:
    """[train split, holdout split] when the source has a holdout split (test, validation, ...), else [None]."""
    holdout = next((s for s in (schema.splits or ()) if s in HOLDOUT_SPLITS), None)
    if holdout is None:
        return [None]
    return [next((s for s in schema.splits or () if s not in HOLDOUT_SPLITS), None), holdout]


def source_record(src: connectors.Source, split: Mapping[str, Any]) -> dict[str, Any]:
    """What a result records about where its data came from (never credentials)."""
    schema = src.schema
    return {"uri": schema.uri, "fingerprint": schema.fingerprint, "stored_bytes": schema.stored_bytes,
            "rows": schema.num_rows, "format": schema.format, "split": dict(split)}


def arrays_to_raw(
    images: ArrayLike,
    labels: ArrayLike,
    *,
    test_images: ArrayLike | None,
    test_labels: ArrayLike | None,
    class_names: tuple[str, ...] | None,
    holdout_fraction: float,
    seed: int,
) -> RawData:
    """Validate in-memory arrays; split off a stratified holdout when no test set is given."""
    x = to_float_images(images)
    num_classes = len(class_names) if class_names else None
    y = to_labels(labels, x.shape[0], num_classes)
    names = class_names or tuple(str(c) for c in range(int(y.max()) + 1))
    if test_images is not None and test_labels is not None:
        tx = to_float_images(test_images, "test_images")
        ty = to_labels(test_labels, tx.shape[0], len(names), "test_labels")
        if tx.shape[1:] != x.shape[1:]:
            raise DataError(
                f"test_images have shape {tuple(tx.shape[1:])} per image, images {tuple(x.shape[1:])}",
                field="test_images",
            )
        return RawData(x, y, tx, ty, names, {"uri": None, "rows": int(x.shape[0] + tx.shape[0])})
    if (test_images is None) != (test_labels is None):
        raise DataError("give both test_images and test_labels, or neither", field="test_labels")
    with translated_errors():
        plan = connectors.stratified_split(y.numpy(), holdout_fraction, seed)
    train, test = torch.from_numpy(plan.train_rows), torch.from_numpy(plan.holdout_rows)
    return RawData(x[train], y[train], x[test], y[test], names, {"uri": None, "rows": int(x.shape[0]),
                                                                 "split": plan.to_dict()})


def prepare(raw: RawData, *, zca: bool) -> PreparedData:
    """Normalise with the training set's per-channel statistics (and optionally ZCA-whiten)."""
    counts = torch.bincount(raw.train_labels, minlength=len(raw.class_names))
    empty = [raw.class_names[c] for c in range(len(raw.class_names)) if counts[c] == 0]
    if empty:
        raise DataError(f"classes {empty} have no training examples", field="labels")
    dims = (0, 2, 3)
    norm = Normalisation(
        tuple(float(v) for v in raw.train_images.mean(dim=dims)),
        tuple(max(float(v), 1e-6) for v in raw.train_images.std(dim=dims)),
    )
    train_x, test_x = norm.apply(raw.train_images), norm.apply(raw.test_images)
    whitening = None
    if zca:
        whitening = ZCAWhitening.fit(train_x)
        train_x, test_x = whitening.transform(train_x), whitening.transform(test_x)
    k = len(raw.class_names)
    return PreparedData(
        LabelledImages(train_x, raw.train_labels, k), LabelledImages(test_x, raw.test_labels, k),
        raw.class_names, norm, whitening, test_groups=raw.test_groups, group_column=raw.group_column,
    )


def _policy_overrides(policy: policies.RunPolicy | None) -> dict[str, Any]:
    """The PAD knobs a reviewer set in the policy, as settings overrides."""
    if policy is None or policy.pad is None:
        return {}
    pad = policy.pad
    experts: dict[str, Any] = {}
    distill: dict[str, Any] = {}
    if pad.hard_prune_ratio is not None or pad.easy_prune_ratio is not None:
        experts.update(fiex="static", prune_hard=pad.hard_prune_ratio, prune_easy=pad.easy_prune_ratio)
    if pad.fiex is False:
        experts["fiex"] = "off"
    if pad.fiem is False:
        distill["selection_mode"] = "none"
    if pad.selection_mode is not None:
        distill["selection_mode"] = pad.selection_mode
    if pad.parameter_selection_ratio is not None:
        distill["selection_ratio"] = pad.parameter_selection_ratio
    return {k: v for k, v in (("experts", experts), ("distill", distill)) if v}


def resolve_ipc(ipc: int | None, policy: policies.RunPolicy | None, raw: RawData) -> int:
    if ipc is not None:
        return ipc
    if policy is None:
        return 10
    counts = torch.bincount(raw.train_labels, minlength=len(raw.class_names)).tolist()
    # one condensed image costs its float32 pixels plus its label logits
    per_image = int(raw.train_images[0].numel() * 4 + len(raw.class_names) * 4 + 8)
    stored = raw.source.get("stored_bytes")
    with translated_errors():
        return policy.compression.resolve(counts, per_image, stored).ipc


def distill(
    source: str | connectors.Source | ArrayLike,
    labels: ArrayLike | None = None,
    *,
    ipc: int | None = None,
    **kwargs: Any,
) -> DistillResult:
    """Condense a labelled image set with PAD and measure what it keeps.

    Args:
        source: images (N, C, H, W) or (N, H, W) as an array/tensor (with ``labels``), or a dataset URL /
            ``connectors.Source`` (Parquet, image folder, IDX, npz on any fsspec filesystem).
        ipc: images per class; default from ``policy``'s compression target, else 10.
        preset: ``cpu-small`` (default), ``paper`` or ``tiny``; ``overrides`` is a nested mapping
            applied on top, e.g. ``{"distill": {"iterations": 500}}``. ``config`` replaces both.
        policy: a ``policies.RunPolicy`` (or its dict / file path): its compression target sets the IPC,
            its PAD knobs override the preset, and its rules judge the result (``strict`` raises
            ``PolicyViolation`` on a failed rule).
        test_images / test_labels: a holdout; otherwise a seeded stratified ``holdout_fraction`` split.
        trajectory_store: fsspec URL where expert trajectories are kept (resumable); default: memory.
        on_event: ``on_event(stage, done, total, **facts)`` progress callback.
        runtime: ``"local"`` (default, in this process), ``"ray"``, or a runtime object
            (e.g. ``pad_sdk.runtime.ray.RayRuntime(num_workers=4, address=...)``).
        method: a name from ``pad_sdk.methods.available_methods()`` (``pad`` default; ``datm``, ``mtt``,
            ``dc``, ``dm``, real-image baselines), optionally with switches (``"dc:fiex=on,fiem=on"``).
            Trajectory methods run through the runtime; the others run in this process from the preset.

    See :func:`sweep` for the remaining keyword arguments.
    """
    return sweep(source, labels, ipcs=None if ipc is None else [ipc], **kwargs)[0]


def sweep(
    source: str | connectors.Source | ArrayLike,
    labels: ArrayLike | None = None,
    *,
    ipcs: list[int] | None = None,
    preset: str = "cpu-small",
    overrides: Mapping[str, Any] | None = None,
    config: PadConfig | Mapping[str, Any] | None = None,
    policy: policies.RunPolicy | Mapping[str, Any] | str | None = None,
    strict: bool = False,
    test_images: ArrayLike | None = None,
    test_labels: ArrayLike | None = None,
    class_names: tuple[str, ...] | None = None,
    holdout_fraction: float = 0.2,
    seed: int = 0,
    trajectory_store: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    evaluate: bool = True,
    on_event: EventSink | None = None,
    runtime: Runtime | str | None = None,
    method: str = "pad",
    **source_options: Any,
) -> list[DistillResult]:
    """Condense the same data at several IPCs; scoring and experts are computed once and shared.

    Returns one :class:`DistillResult` per IPC, in the order given. Arguments as for :func:`distill`.
    """
    started = time.perf_counter()
    engine = resolve_runtime(runtime)
    chosen = get_method(method)
    trajectory = isinstance(chosen, TrajectoryMatching)
    method_overrides = chosen.overrides() if trajectory and method != "pad" else {}  # type: ignore[attr-defined]
    with translated_errors():
        run_policy = policies.load_policy(policy) if policy is not None else None
    # trajectory methods run through the runtime, which also decides where the images are held (the Ray
    # runtime reads a source with Ray Data and keeps the images on the cluster); the others need them here
    loader = engine if trajectory else LocalRuntime()
    raw = _read_input(source, labels, loader, test_images=test_images, test_labels=test_labels,
                      class_names=class_names, holdout_fraction=holdout_fraction, seed=seed,
                      storage_options=storage_options, source_options=source_options)
    if config is not None:
        configs = [config if isinstance(config, PadConfig) else validate_config(dict(config))]
    else:
        extra = _merge(_merge(method_overrides, _policy_overrides(run_policy)), {**(overrides or {}), "seed": seed})
        targets = ipcs or [resolve_ipc(None, run_policy, raw)]
        configs = [preset_config(preset, target, extra) for target in targets]

    shared: dict[str, Any] = {}
    results: list[DistillResult] = []
    for cfg in configs:
        run_started = time.perf_counter()
        if f"data:{cfg.zca}" not in shared:
            shared[f"data:{cfg.zca}"] = loader.prepare(raw, cfg.zca)
        data = shared[f"data:{cfg.zca}"]
        stages = Stages(cfg, data, on_event=on_event)
        log.info("distill.start", ipc=cfg.ipc, preset=cfg.preset, train=len(data.train), holdout=len(data.test),
                 classes=data.train.num_classes, image_shape=data.train.image_shape)
        if trajectory:
            experts = _experts(engine, stages, shared, trajectory_store, storage_options)
            synthetic, history = engine.distill(stages, experts)
        else:
            context = shared.setdefault("methods", MethodContext(data, preset, dict(overrides or {}), seed, on_event))
            synthetic, history = chosen.condense(context, cfg.ipc, 0), []
        accuracy = None
        if evaluate:
            full_key = f"full:{cfg.zca}:{cfg.evaluation.model_dump_json()}"
            if full_key not in shared:
                full_job = stages.full_job()
                shared[full_key] = None if full_job is None else engine.evaluate(stages, full_job)
            full = shared[full_key]
            condensed_eval = engine.evaluate(stages, stages.condensed_job(synthetic))
            random_eval = engine.evaluate(stages, stages.random_job()) if cfg.evaluation.random_baseline else None
            accuracy = AccuracyReport(
                condensed_eval, random_eval, full,
                group_accuracy=group_accuracy(data, {"full": full, "random": random_eval,
                                                     "condensed": condensed_eval}),
                cross_architecture={arch: engine.evaluate(stages, stages.condensed_job(synthetic, arch))
                                    for arch in cfg.evaluation.architectures} or None,
            )
        total = time.perf_counter() - (started if not results else run_started)
        timings = {**stages.timings, "total": total}
        kept_share = stages.pruning_kept_share(shared.get("orders"))
        # what a policy judges, kept with the result so that a report can judge a run made without a policy
        measurements = {**measured_results(accuracy, data.class_names, cfg, timings, data.group_column),
                        **({"pruning_kept_share": dict(kept_share)} if kept_share is not None else {})}
        verdict = _judge(run_policy, measurements, strict)
        condensed = CondensedSet(
            images=synthetic.images.cpu(), labels=synthetic.classes.cpu(),
            label_logits=synthetic.label_logits.cpu() if cfg.distill.soft_labels and trajectory else None,
            learned_lr=float(synthetic.lr), class_names=data.class_names, normalisation=data.normalisation,
            metadata={"source": raw.source, "zca": cfg.zca},
        )
        log.info("distill.done", ipc=cfg.ipc, seconds=round(total, 1),
                 accuracy=None if accuracy is None else round(accuracy.condensed.mean, 4))
        results.append(DistillResult(
            condensed=condensed, config=cfg, accuracy=accuracy, verdict=verdict, timings=timings,
            loss_history=tuple(r.loss for r in history), source=raw.source,
            policy=None if run_policy is None else run_policy.model_dump(mode="json"),
            measurements=measurements, decisions=dict(stages.decisions),
        ))
    return results


def _read_input(source: str | connectors.Source | ArrayLike, labels: ArrayLike | None, loader: Runtime, *,
                test_images: ArrayLike | None, test_labels: ArrayLike | None, class_names: tuple[str, ...] | None,
                holdout_fraction: float, seed: int, storage_options: Mapping[str, Any] | None,
                source_options: Mapping[str, Any]) -> RawData:
    if isinstance(source, (str, connectors.Source)):
        if labels is not None:
            raise ConfigError("labels are read from the source; pass labels only with arrays", field="labels")
        return loader.load(source, holdout_fraction=holdout_fraction, seed=seed, storage_options=storage_options,
                           open_kwargs=source_options)
    if labels is None:
        raise ConfigError("labels are required with an image array", field="labels")
    return arrays_to_raw(source, labels, test_images=test_images, test_labels=test_labels,
                         class_names=class_names, holdout_fraction=holdout_fraction, seed=seed)


def _experts(engine: Runtime, stages: Stages, shared: dict[str, Any], trajectory_store: str | None,
             storage_options: Mapping[str, Any] | None) -> Any:
    """Score and train experts, or reuse those of an earlier IPC trained with the same settings and data."""
    cfg = stages.config
    orders = None
    if cfg.experts.fiex != "off":
        scoring_key = f"orders:{cfg.zca}:{cfg.seed}:{cfg.network.model_dump_json()}:{cfg.scoring.model_dump_json()}"
        if scoring_key not in shared:
            shared[scoring_key] = stages.orders(engine.score(stages))
        orders = shared["orders"] = shared[scoring_key]
    plan = stages.expert_plan(orders)
    static = cfg.experts.static_ratios(cfg.ipc) if cfg.experts.fiex == "static" else None
    key = f"experts:{cfg.zca}:{cfg.seed}:{cfg.network.model_dump_json()}:{cfg.experts.model_dump_json()}:{static}"
    if key not in shared:
        store = None
        if trajectory_store is not None:
            suffix = "" if not any(k.startswith("experts:") for k in shared) else f"/variant-{len(shared)}"
            store = TrajectoryStore(trajectory_store + suffix, storage_options=storage_options)
            store.initialise(stages.expert_header())
        shared[key] = engine.train_experts(stages, plan, store)
    return shared[key]


def measured_results(accuracy: AccuracyReport | None, class_names: tuple[str, ...], config: PadConfig,
                     timings: Mapping[str, float], group_column: str | None = None) -> dict[str, Any]:
    """The measurements a policy judges, as the plain mapping ``policies`` accepts."""
    results: dict[str, Any] = {"ipc": config.ipc, "iterations": config.distill.iterations,
                               "wall_time_s": timings.get("total"), "class_names": class_names}
    if accuracy is not None:
        results.update(
            condensed_accuracies=accuracy.condensed.accuracies,
            per_class_recall_condensed=_finite(class_names, accuracy.condensed.per_class_recall),
        )
        if accuracy.random is not None:
            results["random_accuracy_mean"] = accuracy.random.mean
        if accuracy.full is not None:
            results["full_accuracy"] = accuracy.full.mean
            results["per_class_recall_full"] = _finite(class_names, accuracy.full.per_class_recall)
        if accuracy.group_accuracy is not None:
            results["group_accuracy"] = {group_column or "group": {
                group: row["condensed"] for group, row in accuracy.group_accuracy.items() if "condensed" in row}}
    return results


def group_accuracy(data: PreparedData, evaluations: Mapping[str, EvalResult | None]
                   ) -> dict[str, dict[str, float]] | None:
    """Holdout accuracy per value of the source's group column, for each evaluated set (None without groups).

    Uses each evaluation's per-example correctness (mean over its networks), so the group accuracies
    weighted by group size add up to the overall accuracy.
    """
    if data.test_groups is None:
        return None
    groups = np.asarray(data.test_groups).astype(str)
    table: dict[str, dict[str, float]] = {}
    for value in sorted(set(groups.tolist())):
        members = torch.from_numpy(groups == value)
        row = {name: float(result.example_correct[members].mean())
               for name, result in evaluations.items()
               if result is not None and result.example_correct is not None}
        table[value] = row
    return table


def _finite(class_names: tuple[str, ...], values: tuple[float, ...]) -> dict[str, float]:
    """Per-class values without the classes the holdout lacks (their recall is NaN)."""
    return {name: v for name, v in zip(class_names, values, strict=True) if v == v}


def _judge(policy: policies.RunPolicy | None, measurements: Mapping[str, Any], strict: bool) -> Any:
    if policy is None:
        return None
    with translated_errors():
        return policy.judge(dict(measurements), strict=strict)
