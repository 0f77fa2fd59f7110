"""``pad_sdk.distill``: the one call a pipeline makes.

It wires the lower layers together: a connector (or arrays) for the data, a policy for the IPC, the
PAD overrides and the verdict, a preset for the settings, the stage functions for the algorithm.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
import torch
from pydantic import ValidationError

import connectors
import policies
from pad_sdk.budget import arm_guard, broken_budgets, refuse_over_budget, stop_record, stopped_before_set
from pad_sdk.config import PadConfig, config_error, validate_config
from pad_sdk.core.distill import ExpertSource, IterationRecord, SyntheticSet
from pad_sdk.data import (  # noqa: F401  (re-exported: the names pipelines used before data.py)
    ArrayLike,
    RawData,
    arrays_to_raw,
    load_source,
    open_source,
    prepare,
    raw_from_source,
    read_input,
    source_record,
    splits_to_read,
)
from pad_sdk.errors import BudgetExhausted, ConfigError, DataError, translated_errors
from pad_sdk.estimate import estimate_run
from pad_sdk.host import peak_rss_bytes
from pad_sdk.measure import group_accuracy, measured_results
from pad_sdk.methods import MethodContext, TrajectoryMatching, get_method
from pad_sdk.pipeline import EventSink, Stages, resolve_device
from pad_sdk.plans import Plan
from pad_sdk.presets import merge_settings, preset_config
from pad_sdk.probes import probe_settings, subset_as_set, subset_check
from pad_sdk.progress import BudgetGuard, chain
from pad_sdk.reports.cost import Prices
from pad_sdk.result import AccuracyReport, CondensedSet, DistillResult
from pad_sdk.runtime import LocalRuntime, Runtime, resolve_runtime

log = structlog.get_logger(__name__)



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
    elif pad.fiex is True:  # pinned on where the preset trains plain experts (cpu-small at IPC 1, >= 50)
        experts.setdefault("fiex", "scheduler")
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
        fallback: ``"subset"`` returns the best real subset of the same size (herding, k-center or random)
            instead of the condensed set when that subset scores higher on the validation split (the result's
            ``decisions["fallback"]`` says so); ``"none"`` (default) only reports the comparison
            (``decisions["subset_check"]``, the report, and the ``acceptance.min_gain_over_best_subset`` rule).
            Settings: ``auto`` in the preset (validation split, probes of candidate settings, subset check).

    See :func:`sweep` for the remaining keyword arguments.
    """
    return sweep(source, labels, ipcs=None if ipc is None else [ipc], **kwargs)[0]


def plan(
    source: str | connectors.Source | ArrayLike,
    labels: ArrayLike | None = None,
    *,
    ipc: int | None = None,
    ipcs: list[int] | None = None,
    preset: str = "cpu-small",
    overrides: Mapping[str, Any] | None = None,
    config: PadConfig | Mapping[str, Any] | None = None,
    policy: policies.RunPolicy | Mapping[str, Any] | str | None = None,
    test_images: ArrayLike | None = None,
    test_labels: ArrayLike | None = None,
    class_names: tuple[str, ...] | None = None,
    holdout_fraction: float = 0.2,
    seed: int = 0,
    trajectory_store: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    evaluate: bool = True,
    runtime: Runtime | str | None = None,
    method: str = "pad",
    fallback: str = "none",
    prices: Prices | Mapping[str, Any] | None = None,
    **source_options: Any,
) -> Plan:
    """Estimate what :func:`distill` (``ipc``) or :func:`sweep` (``ipcs``) would cost with these arguments, without
    training: per stage and in total the seconds, peak host (and device) memory, bytes read and written, and money
    at ``prices``, from a few timed batches of the real network on the real data shape. Also returns when the
    estimate breaks the policy's budget (``Plan.over_budget`` lists it)."""
    if ipc is not None and ipcs is not None:
        raise ConfigError("give ipc (one) or ipcs (several), not both", field="ipcs")
    started = time.perf_counter()
    run = _setup(source, labels, ipcs=[ipc] if ipc is not None else ipcs, preset=preset, overrides=overrides,
                 config=config, policy=policy, test_images=test_images, test_labels=test_labels,
                 class_names=class_names, holdout_fraction=holdout_fraction, seed=seed,
                 trajectory_store=trajectory_store, storage_options=storage_options, on_event=None, runtime=runtime,
                 method=method, fallback=fallback, source_options=source_options)
    try:
        estimate = _estimate(run, evaluate, _prices(prices), trajectory_store, time.perf_counter() - started)
    finally:
        shutdown = getattr(run.engine, "shutdown", None)
        if callable(shutdown) and isinstance(runtime, str):  # a runtime made here, not the caller's
            shutdown()
    over = [{"budget": name, "limit": limit, "estimate": value} for name, limit, value, _unit in
            broken_budgets(estimate, run.policy)]
    cuts = tuple(estimate.suggested_cuts()) if over else ()
    return estimate.model_copy(update={"over_budget": tuple(over), "cuts": cuts})


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
    fallback: str = "none",
    prices: Prices | Mapping[str, Any] | None = None,
    force: bool = False,
    **source_options: Any,
) -> list[DistillResult]:
    """Condense the same data at several IPCs; scoring and experts are computed once and shared.

    Returns one :class:`DistillResult` per IPC, in the order given. Arguments as for :func:`distill`.

    Before any training the run is estimated (:func:`plan`; logged as ``run.estimate`` and kept in each result's
    ``estimate``). When the estimate breaks the policy's ``budget.max_wall_time_s`` or ``max_compute_cost``
    (priced with ``prices``, a :class:`pad_sdk.reports.Prices` or its fields) the run is refused with
    :class:`BudgetExceeded` naming what to cut, unless ``force=True``. During the run the budget (and
    ``budget.max_iterations``) is checked between epochs and iterations: a run stopped in distillation or
    evaluation returns its results so far, the last one partial (``decisions["budget_stop"]`` says what was not
    done); one stopped earlier raises :class:`BudgetExhausted` (finished experts stay in ``trajectory_store``).
    """
    started = time.perf_counter()
    guard = BudgetGuard()  # its limits are set from the policy once it is read; its clock starts now
    run = _setup(source, labels, ipcs=ipcs, preset=preset, overrides=overrides, config=config, policy=policy,
                 test_images=test_images, test_labels=test_labels, class_names=class_names,
                 holdout_fraction=holdout_fraction, seed=seed, trajectory_store=trajectory_store,
                 storage_options=storage_options, on_event=chain(on_event, guard), runtime=runtime, method=method,
                 fallback=fallback, source_options=source_options)
    prices = _prices(prices)
    estimate = None
    if os.environ.get("PAD_SDK_ESTIMATE", "on").strip().lower() in ("0", "off", "false", "no"):
        log.info("run.estimate_skipped", reason="PAD_SDK_ESTIMATE is off: no calibration, no up-front budget check")
    else:
        estimate = _estimate(run, evaluate, prices, trajectory_store, time.perf_counter() - started)
        log.info("run.estimate", line=estimate.line(), seconds=round(estimate.seconds, 1),
                 peak_host_bytes=estimate.peak_host_bytes, cost=round(estimate.cost, 6), currency=estimate.currency)
        refuse_over_budget(estimate, run.policy, force)
    hardware: Literal["cpu", "gpu"] = "gpu" if resolve_device(run.configs[0].device).type == "cuda" else "cpu"
    arm_guard(guard, run.policy, estimate, prices, hardware=hardware)
    if on_event is not None and estimate is not None:  # progress sinks take their remaining-time figures from it
        on_event("plan", 0, 0, plan=estimate)

    full_data: dict[str, Any] = {}  # full-data reference evaluations, per data and evaluation settings
    results: list[DistillResult] = []
    for position, cfg in enumerate(run.configs):
        run_started = time.perf_counter()
        context = run.context(cfg)
        stages = Stages(cfg, context.data, on_event=context.on_event)
        log.info("distill.start", ipc=cfg.ipc, preset=cfg.preset, train=len(context.data.train),
                 holdout=len(context.data.test), classes=context.data.train.num_classes,
                 image_shape=context.data.train.image_shape)
        try:
            synthetic, history, experts = _condense(run.engine, run.chosen, run.trajectory, context, stages)
        except BudgetExhausted as exc:
            raise stopped_before_set(exc, guard, cfg, trajectory_store, run.configs[position + 1:]) from None
        accuracy, stop = None, stop_record(stages.stopped, guard)
        if stop is None:
            try:
                synthetic, soft = _check_subsets(stages, synthetic, experts, fallback, run.trajectory)
                accuracy = _evaluate(run.engine, stages, synthetic, full_data) if evaluate else None
            except BudgetExhausted as exc:
                soft = stages.config.distill.soft_labels and run.trajectory
                stop = stop_record(exc, guard)
        else:
            soft = stages.config.distill.soft_labels and run.trajectory
        total = time.perf_counter() - (started if not results else run_started)
        if stop is not None:
            stop["not_done"] += [f"ipc {c.ipc}" for c in run.configs[position + 1:]]
            stages.decisions["budget_stop"] = stop
        stages.decisions["resources"] = {"peak_host_bytes": peak_rss_bytes()}
        # what the run spent at the machine-hour price (the budget guard's measure): judged by max_compute_cost
        spent = (total / 3600 * prices.hour_price(hardware), prices.currency)
        results.append(_package(stages, synthetic, history, accuracy, total, run.raw, run.policy, strict, soft,
                                context.cached_orders(cfg), estimate, spent))
        if stop is not None:
            log.warning("run.budget_stop", **{k: v for k, v in stop.items() if k != "message"})
            break
    return results


@dataclass
class _Run:
    """What a run reads and decides before any training: the method, policy, data, settings, contexts."""

    engine: Runtime
    chosen: Any
    trajectory: bool
    policy: policies.RunPolicy | None
    raw: RawData
    configs: list[PadConfig]
    loader: Runtime
    make_context: Any
    contexts: dict[bool, MethodContext] = field(default_factory=dict)  # per ZCA setting: data and shared caches

    def context(self, cfg: PadConfig) -> MethodContext:
        if cfg.zca not in self.contexts:
            self.contexts[cfg.zca] = self.make_context(cfg)
        return self.contexts[cfg.zca]


def _setup(source: Any, labels: Any, *, ipcs: list[int] | None, preset: str, overrides: Mapping[str, Any] | None,
           config: Any, policy: Any, test_images: Any, test_labels: Any, class_names: Any, holdout_fraction: float,
           seed: int, trajectory_store: str | None, storage_options: Mapping[str, Any] | None,
           on_event: EventSink | None, runtime: Runtime | str | None, method: str, fallback: str,
           source_options: Mapping[str, Any]) -> _Run:
    """Validate the arguments, read the data and build the settings: everything before the first stage."""
    if fallback not in ("none", "subset"):
        raise ConfigError(f"fallback must be 'none' or 'subset', got {fallback!r}", field="fallback", value=fallback)
    engine = resolve_runtime(runtime)
    chosen = get_method(method)
    trajectory = isinstance(chosen, TrajectoryMatching)
    with translated_errors():
        run_policy = policies.load_policy(policy) if policy is not None else None
    # read: trajectory methods run through the runtime, which also decides where the images are held (the Ray
    # runtime reads a source with Ray Data and keeps the images on the cluster); the others need them here
    loader = engine if trajectory or isinstance(engine, LocalRuntime) else LocalRuntime()
    raw = read_input(source, labels, loader, test_images=test_images, test_labels=test_labels,
                     class_names=class_names, holdout_fraction=holdout_fraction, seed=seed,
                     storage_options=storage_options, source_options=dict(source_options))
    configs = _configs(raw, chosen, method, trajectory, run_policy, ipcs, preset, overrides, config, seed)
    _check_feasible(raw, configs)

    def make_context(cfg: PadConfig) -> MethodContext:
        return MethodContext(loader.prepare(raw, cfg.zca), preset, dict(overrides or {}), seed, on_event,
                             runtime=engine, trajectory_store=trajectory_store, storage_options=storage_options,
                             validation_fraction=cfg.auto.validation_fraction)

    return _Run(engine, chosen, trajectory, run_policy, raw, configs, loader, make_context)


def _prices(prices: Prices | Mapping[str, Any] | None) -> Prices:
    if prices is None or isinstance(prices, Prices):
        return prices or Prices()
    try:
        return Prices(**dict(prices))
    except ValidationError as exc:
        raise config_error(exc, "invalid prices") from exc


def _estimate(run: _Run, evaluate: bool, prices: Prices, trajectory_store: str | None, loaded_s: float) -> Plan:
    stored = run.raw.source.get("stored_bytes")
    start_up = getattr(run.engine, "start_up_costs", None)  # a runtime of the user's own may not measure it
    return estimate_run(run.configs, lambda cfg: Stages(cfg, run.context(cfg).data), trajectory=run.trajectory,
                        evaluate=evaluate, runtime=run.engine.name, prices=prices,
                        source_bytes=stored if isinstance(stored, int) else None, trajectory_store=trajectory_store,
                        start_up=start_up if callable(start_up) else None, loaded_s=loaded_s)


def _configs(raw: RawData, chosen: Any, method: str, trajectory: bool, run_policy: policies.RunPolicy | None,
             ipcs: list[int] | None, preset: str, overrides: Mapping[str, Any] | None,
             config: PadConfig | Mapping[str, Any] | None, seed: int) -> list[PadConfig]:
    """One configuration per IPC: the preset, the method's and the policy's settings, then the overrides."""
    if config is not None:
        return [config if isinstance(config, PadConfig) else validate_config(dict(config))]
    targets = ipcs or [resolve_ipc(None, run_policy, raw)]
    policy_settings, user = _policy_overrides(run_policy), {**(overrides or {}), "seed": seed}
    configs = []
    for target in targets:  # the method's settings may depend on the IPC (presets.published_start)
        method_overrides = chosen.overrides(preset, target) if trajectory and method != "pad" else {}
        configs.append(preset_config(preset, target, merge_settings(merge_settings(method_overrides, policy_settings),
                                                                    user)))
    return configs


def _check_feasible(raw: RawData, configs: list[PadConfig]) -> None:
    """What would fail after hours of scoring and experts, refused before any training."""
    counts = torch.bincount(raw.train_labels, minlength=len(raw.class_names))
    present = int((counts > 0).sum())
    if present < 2:
        raise DataError(f"the training data has {present} class(es); condensing needs at least two (a one-class "
                        "classifier is always right)", field="labels")
    smallest = int(counts[counts > 0].min())
    for cfg in configs:
        if cfg.ipc > smallest and cfg.distill.pix_init != "noise":
            name = raw.class_names[int(torch.nonzero(counts == smallest)[0])]
            raise DataError(f"ipc={cfg.ipc} needs {cfg.ipc} real images per class, but class {name!r} has "
                            f"{smallest} training images; lower the IPC", field="ipc")


def _condense(engine: Runtime, chosen: Any, trajectory: bool, context: MethodContext, stages: Stages
              ) -> tuple[SyntheticSet, list[IterationRecord], ExpertSource | None]:
    """The condensed set: trajectory methods on the runtime (experts shared across IPCs, settings chosen by
    the probes on the validation split), others here."""
    if trajectory:
        experts = context.experts(stages.config, stages)
        chosen_config, report = probe_settings(stages, experts)
        if report is not None:
            stages.config = chosen_config  # the run continues with the best candidate's settings
            stages.decisions["probes"] = report.to_dict()
        synthetic, history = engine.distill(stages, experts)
        return synthetic, history, experts
    return chosen.condense(context, stages.config.ipc, 0), [], None


def _check_subsets(stages: Stages, synthetic: SyntheticSet, experts: ExpertSource | None, fallback: str,
                   trajectory: bool) -> tuple[SyntheticSet, bool]:
    """Compare the set with real subsets of its size on the validation split; with ``fallback="subset"`` a
    better subset replaces it. Returns the set to deliver and whether its labels are soft."""
    soft = stages.config.distill.soft_labels and trajectory
    checked = subset_check(stages, synthetic, experts)
    if checked is None:
        return synthetic, soft
    check, picks = checked
    stages.decisions["subset_check"] = check.to_dict()
    if fallback == "subset" and check.subset_is_better:
        stages.decisions["fallback"] = {"used": True, "subset": check.best_subset, "reason": (
            f"the {check.best_subset} subset scored {check.subsets[check.best_subset]:.4f} on the validation split "
            f"against {check.condensed:.4f} for the condensed set")}
        log.warning("distill.fallback", subset=check.best_subset, gain=round(check.gain, 4))
        return subset_as_set(stages, picks[check.best_subset]), False
    return synthetic, soft


def _evaluate(engine: Runtime, stages: Stages, synthetic: SyntheticSet, full_data: dict[str, Any]) -> AccuracyReport:
    """Holdout accuracy of the condensed set, a random subset of equal size and the whole data (once)."""
    cfg, data = stages.config, stages.data
    full_key = f"full:{cfg.zca}:{cfg.evaluation.model_dump_json()}"
    if full_key not in full_data:
        full_job = stages.full_job()
        full_data[full_key] = None if full_job is None else engine.evaluate(stages, full_job)
    full = full_data[full_key]
    condensed_eval = engine.evaluate(stages, stages.condensed_job(synthetic))
    random_eval = engine.evaluate(stages, stages.random_job()) if cfg.evaluation.random_baseline else None
    return AccuracyReport(
        condensed_eval, random_eval, full,
        group_accuracy=group_accuracy(data, {"full": full, "random": random_eval, "condensed": condensed_eval}),
        cross_architecture={arch: engine.evaluate(stages, stages.condensed_job(synthetic, arch))
                            for arch in cfg.evaluation.architectures} or None,
    )


def _package(stages: Stages, synthetic: SyntheticSet, history: list[IterationRecord],
             accuracy: AccuracyReport | None, total: float, raw: RawData, run_policy: policies.RunPolicy | None,
             strict: bool, soft: bool, orders: Any, estimate: Plan | None = None,
             spent: tuple[float, str] | None = None) -> DistillResult:
    """The result: the condensed set, its measurements and verdict, timings and the run's decisions."""
    cfg, data = stages.config, stages.data
    timings = {**stages.timings, "total": total}
    kept_share = stages.pruning_kept_share(orders)
    # what a policy judges, kept with the result so that a report can judge a run made without a policy
    measurements = {**measured_results(accuracy, data.class_names, cfg, timings, data.group_column,
                                       stages.decisions, compute_cost=spent),
                    **({"pruning_kept_share": dict(kept_share)} if kept_share is not None else {})}
    condensed = CondensedSet(
        images=synthetic.images.cpu(), labels=synthetic.classes.cpu(),
        label_logits=synthetic.label_logits.cpu() if soft else None,
        learned_lr=float(synthetic.lr), class_names=data.class_names, normalisation=data.normalisation,
        metadata={"source": raw.source, "zca": cfg.zca},
    )
    log.info("distill.done", ipc=cfg.ipc, seconds=round(total, 1),
             accuracy=None if accuracy is None else round(accuracy.condensed.mean, 4))
    return DistillResult(
        condensed=condensed, config=cfg, accuracy=accuracy, verdict=_judge(run_policy, measurements, strict),
        timings=timings, loss_history=tuple(r.loss for r in history), source=raw.source,
        policy=None if run_policy is None else run_policy.model_dump(mode="json"),
        measurements=measurements, decisions=dict(stages.decisions),
        estimate=None if estimate is None else estimate.to_dict(),
    )


def _judge(policy: policies.RunPolicy | None, measurements: Mapping[str, Any], strict: bool) -> Any:
    if policy is None:
        return None
    with translated_errors():
        return policy.judge(dict(measurements), strict=strict)
