"""Budgets before and during a run: refuse a run whose estimate breaks the policy's budget, arm the guard that
stops it at the budget, and say what a stop left undone."""

from __future__ import annotations

from typing import Any, Literal

import structlog

import policies
from pad_sdk.config import PadConfig
from pad_sdk.errors import BudgetExceeded, BudgetExhausted
from pad_sdk.plans import MEASURED_STAGES, Plan, format_seconds
from pad_sdk.progress import BudgetGuard
from pad_sdk.reports.cost import Prices

log = structlog.get_logger(__name__)


def broken_budgets(estimate: Plan, run_policy: policies.RunPolicy | None) -> list[tuple[str, float, float, str]]:
    """(budget, limit, estimate, unit) of every budget the estimate breaks."""
    if run_policy is None:
        return []
    budget, broken = run_policy.budget, []
    if budget.max_wall_time_s is not None and estimate.seconds > budget.max_wall_time_s:
        broken.append(("budget.max_wall_time_s", budget.max_wall_time_s, estimate.seconds, "s"))
    if (budget.max_compute_cost is not None and budget.currency == estimate.currency
            and estimate.cost > budget.max_compute_cost):
        broken.append(("budget.max_compute_cost", budget.max_compute_cost, estimate.cost, f" {estimate.currency}"))
    return broken


def refuse_over_budget(estimate: Plan, run_policy: policies.RunPolicy | None, force: bool) -> None:
    """Refuse a run whose estimate breaks its budget, before any training (``force`` runs it, with a warning)."""
    broken = broken_budgets(estimate, run_policy)
    if not broken:
        return
    name, limit, value, unit = broken[0]
    if force:
        log.warning("run.over_budget_forced", budget=name, limit=limit, estimate=round(value, 4))
        return
    tips = estimate.suggested_cuts()
    shown = format_seconds(value) if unit == "s" else f"{value:,.4f}{unit}"
    limit_shown = format_seconds(limit) if unit == "s" else f"{limit:,.4f}{unit}"
    raise BudgetExceeded(
        f"the run is estimated at {shown}, over {name} = {limit_shown} ({estimate.line()}). To fit, cut: "
        + "; ".join(tips) + ". Or run it anyway with force=True (--force).",
        budget=name, limit=limit, estimate=value, plan=estimate, suggestions=tips)


def arm_guard(guard: BudgetGuard, run_policy: policies.RunPolicy | None, estimate: Plan | None, prices: Prices,
              hardware: Literal["cpu", "gpu"] = "cpu") -> None:
    """Set the guard's limits from the policy's budget (the clock already runs since the call began); without an
    estimate (``PAD_SDK_ESTIMATE=off``) the stages are the usual ones and ``hardware`` prices the hour."""
    guard.planned = ([s.stage for s in estimate.stages if s.stage not in MEASURED_STAGES] if estimate is not None
                     else list(_LATER))
    if run_policy is None:
        return
    budget = run_policy.budget
    guard.max_wall_time_s = budget.max_wall_time_s
    guard.max_iterations = budget.max_iterations
    if budget.currency == prices.currency:
        guard.max_compute_cost = budget.max_compute_cost
    guard.hour_price = prices.hour_price(estimate.hardware if estimate is not None else hardware)


_LATER = ("scoring", "experts", "probes", "distillation", "subset_check", "evaluation", "full_reference")


def stop_record(exc: BudgetExhausted | None, guard: BudgetGuard) -> dict[str, Any] | None:
    """What a budget stop left undone, for the result's ``decisions["budget_stop"]`` (None: no stop)."""
    if exc is None:
        return None
    stopped_in = exc.stage
    done = [d for d in guard.stages_done if d != stopped_in]
    planned = guard.planned
    later = planned[planned.index(stopped_in) + 1:] if stopped_in in planned else []
    not_done = [f"{stopped_in} (stopped part-way)", *(s for s in later if s not in done)]
    return {"budget": exc.budget, "limit": exc.limit, "spent": exc.estimate, "stage": stopped_in,
            "done": done, "not_done": not_done, "message": str(exc)}


def stopped_before_set(exc: BudgetExhausted, guard: BudgetGuard, cfg: PadConfig, store: str | None,
                        rest: list[PadConfig]) -> BudgetExhausted:
    """The budget ran out before a condensed set existed: an error that says what is kept and what is not."""
    stop = stop_record(exc, guard)
    assert stop is not None
    not_done = [*stop["not_done"], *(f"ipc {c.ipc}" for c in rest)]
    kept = (f"finished experts are kept in the trajectory store {store}: rerun with the same store to resume"
            if store else "nothing is kept (pass trajectory_store / --trajectory-store to keep finished experts)")
    return BudgetExhausted(
        f"{exc}; ipc {cfg.ipc}: done {', '.join(stop['done']) or 'nothing'}; not done {', '.join(not_done)}; "
        f"{kept}", budget=exc.budget, limit=exc.limit, estimate=exc.estimate, stage=exc.stage,
        done=tuple(stop["done"]), not_done=tuple(not_done), checkpoint=store)
