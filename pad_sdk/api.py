"""``pad_sdk.distill``: the one call a pipeline makes.

It wires the lower layers together: a connector (or arrays) for the data, a policy for the IPC, the
PAD overrides and the verdict, a preset for the settings, the stage functions for the algorithm.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any, Literal

import structlog

import connectors
import policies
from pad_sdk.budget import arm_guard, broken_budgets, refuse_over_budget, stop_record, stopped_before_set
from pad_sdk.config import PadConfig
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
from pad_sdk.errors import BudgetExhausted, ConfigError
from pad_sdk.host import peak_rss_bytes
from pad_sdk.pipeline import EventSink, Stages, resolve_device
from pad_sdk.plans import Plan
from pad_sdk.progress import BudgetGuard, chain
from pad_sdk.reports.cost import Prices
from pad_sdk.result import DistillResult
from pad_sdk.run_setup import (
    estimate_for,
    read_prices,
    resolve_ipc,  # noqa: F401  (re-exported: pipelines called it from here)
    setup_run,
)
from pad_sdk.run_steps import check_subsets, condense, evaluate_set, package
from pad_sdk.runtime import Runtime

log = structlog.get_logger(__name__)


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
    run = setup_run(source, labels, ipcs=[ipc] if ipc is not None else ipcs, preset=preset, overrides=overrides,
                 config=config, policy=policy, test_images=test_images, test_labels=test_labels,
                 class_names=class_names, holdout_fraction=holdout_fraction, seed=seed,
                 trajectory_store=trajectory_store, storage_options=storage_options, on_event=None, runtime=runtime,
                 method=method, fallback=fallback, source_options=source_options)
    try:
        estimate = estimate_for(run, evaluate, read_prices(prices), trajectory_store, time.perf_counter() - started)
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
    run = setup_run(source, labels, ipcs=ipcs, preset=preset, overrides=overrides, config=config, policy=policy,
                 test_images=test_images, test_labels=test_labels, class_names=class_names,
                 holdout_fraction=holdout_fraction, seed=seed, trajectory_store=trajectory_store,
                 storage_options=storage_options, on_event=chain(on_event, guard), runtime=runtime, method=method,
                 fallback=fallback, source_options=source_options)
    prices = read_prices(prices)
    estimate = None
    if os.environ.get("PAD_SDK_ESTIMATE", "on").strip().lower() in ("0", "off", "false", "no"):
        log.info("run.estimate_skipped", reason="PAD_SDK_ESTIMATE is off: no calibration, no up-front budget check")
    else:
        estimate = estimate_for(run, evaluate, prices, trajectory_store, time.perf_counter() - started)
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
            synthetic, history, experts = condense(run.engine, run.chosen, run.trajectory, context, stages)
        except BudgetExhausted as exc:
            raise stopped_before_set(exc, guard, cfg, trajectory_store, run.configs[position + 1:]) from None
        accuracy, stop = None, stop_record(stages.stopped, guard)
        if stop is None:
            try:
                synthetic, soft = check_subsets(stages, synthetic, experts, fallback, run.trajectory)
                accuracy = evaluate_set(run.engine, stages, synthetic, full_data) if evaluate else None
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
        results.append(package(stages, synthetic, history, accuracy, total, run.raw, run.policy, strict, soft,
                                context.cached_orders(cfg), estimate, spent))
        if stop is not None:
            log.warning("run.budget_stop", **{k: v for k, v in stop.items() if k != "message"})
            break
    return results


