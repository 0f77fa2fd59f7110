"""What a run does per IPC after its settings are fixed: condense, compare with real subsets, evaluate on the
holdout, and package the result with its verdict (:func:`pad_sdk.sweep`'s loop calls them in that order)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

import policies
from pad_sdk.core.distill import ExpertSource, IterationRecord, SyntheticSet
from pad_sdk.data import RawData
from pad_sdk.errors import translated_errors
from pad_sdk.measure import group_accuracy, measured_results
from pad_sdk.methods import MethodContext
from pad_sdk.pipeline import Stages
from pad_sdk.plans import Plan
from pad_sdk.probes import probe_settings, subset_as_set, subset_check
from pad_sdk.result import AccuracyReport, CondensedSet, DistillResult
from pad_sdk.runtime import Runtime

log = structlog.get_logger(__name__)


def condense(engine: Runtime, chosen: Any, trajectory: bool, context: MethodContext, stages: Stages
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


def check_subsets(stages: Stages, synthetic: SyntheticSet, experts: ExpertSource | None, fallback: str,
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


def evaluate_set(engine: Runtime, stages: Stages, synthetic: SyntheticSet, full_data: dict[str, Any]) -> AccuracyReport:
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


def package(stages: Stages, synthetic: SyntheticSet, history: list[IterationRecord],
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
        condensed=condensed, config=cfg, accuracy=accuracy, verdict=judge(run_policy, measurements, strict),
        timings=timings, loss_history=tuple(r.loss for r in history), source=raw.source,
        policy=None if run_policy is None else run_policy.model_dump(mode="json"),
        measurements=measurements, decisions=dict(stages.decisions),
        estimate=None if estimate is None else estimate.to_dict(),
    )


def judge(policy: policies.RunPolicy | None, measurements: Mapping[str, Any], strict: bool) -> Any:
    if policy is None:
        return None
    with translated_errors():
        return policy.judge(dict(measurements), strict=strict)
