"""Progress with remaining-time estimates, and the budget guard that stops a run at its limits.

Both are ``on_event(stage, done, total, **facts)`` sinks (see :mod:`pad_sdk.pipeline`): the stages report
after every epoch (scoring agents, experts, evaluation networks) and every distillation iteration, with
``epoch``/``epochs`` among the facts when the unit is finer than ``done``. Both take an injectable clock, so
that tests can move time without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from pad_sdk.errors import BudgetExhausted
from pad_sdk.plans import STAGE_ORDER, Plan, format_seconds

log = structlog.get_logger("pad_sdk.progress")
Clock = Callable[[], float]
# The pipeline's event stages by the estimate's stage names (an evaluation event says what it evaluates).
EVENT_STAGES = {"scoring": "scoring", "experts": "experts", "probes": "probes", "distill": "distillation"}


def plan_stage(stage: str, facts: dict[str, Any]) -> str:
    if stage == "evaluate":
        return "full_reference" if facts.get("what") == "full" else "evaluation"
    return EVENT_STAGES.get(stage, stage)


def fraction_done(done: int, total: int, facts: dict[str, Any]) -> float:
    """Share of the stage done, counting the epochs of the unit under way (``epoch`` of ``epochs``), or of the
    units under way at once (``partial``: the sum of their shares done, from a runtime's parallel tasks)."""
    if total <= 0:
        return 1.0
    epoch, epochs, partial = facts.get("epoch"), facts.get("epochs"), facts.get("partial")
    if not isinstance(partial, int | float):
        partial = epoch / epochs if isinstance(epoch, int) and isinstance(epochs, int) and epochs > 0 else 0.0
    return min(1.0, (done + partial) / total)


class Eta:
    """Remaining seconds of the current stage (from its own pace, or the plan until there is one) and of the run
    (plus the plan's figures for the stages not yet started)."""

    def __init__(self, plan: Plan | None = None, clock: Clock = time.monotonic) -> None:
        self.plan = plan
        self.clock = clock
        self.stage: str | None = None
        self.stage_started = clock()
        self.fraction = 0.0
        self.seen: set[str] = set()

    def update(self, stage: str, done: int, total: int, facts: dict[str, Any]) -> bool:
        """Record an event; True when it starts a stage."""
        name = plan_stage(stage, facts)
        started = name != self.stage
        if started:
            self.stage, self.stage_started = name, self.clock()
            self.seen.add(name)
        self.fraction = fraction_done(done, total, facts)
        return started

    def stage_remaining(self) -> float | None:
        elapsed = self.clock() - self.stage_started
        if self.fraction > 0:
            return elapsed / self.fraction * (1 - self.fraction)
        planned = self.plan.stage(self.stage) if self.plan is not None and self.stage else None
        return None if planned is None else max(0.0, planned.seconds - elapsed)

    def run_remaining(self) -> float | None:
        stage = self.stage_remaining()
        if self.plan is None or stage is None:
            return stage
        if self.stage not in STAGE_ORDER:  # a method's own stage: no figures for what follows it
            return stage
        now = STAGE_ORDER.index(self.stage)
        later = [s.seconds for s in self.plan.stages if s.stage not in self.seen and s.stage in STAGE_ORDER
                 and STAGE_ORDER.index(s.stage) > now]
        return stage + sum(later)


class ProgressLog:
    """An ``on_event`` sink for logs (batch jobs, no terminal): one info record ``stage.progress`` when a stage
    starts and ends (``phase`` start/end), and at least every ``every`` seconds in between (``phase`` progress),
    each with done/total, the share done and the remaining-time estimates of the stage and the run.

    Call :meth:`tick` from a timer (see :func:`heartbeat`) so that records keep coming while one unit of work
    (an expert, an evaluation network) takes longer than ``every``.
    """

    def __init__(self, plan: Plan | None = None, *, every: float = 30.0, clock: Clock = time.monotonic,
                 logger: Any = None) -> None:
        self.every = every
        self.clock = clock
        self.eta = Eta(plan, clock)
        self.log = logger or log
        self.last = clock()
        self.state: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, stage: str, done: int, total: int, **facts: Any) -> None:
        if stage == "plan":  # the run's estimate (``facts["plan"]``), sent before the first stage
            self.eta.plan = facts.get("plan")
            return
        with self._lock:
            started = self.eta.update(stage, done, total, facts)
            self.state = {"stage": stage, "done": done, "total": total,
                          **{k: v for k, v in facts.items() if isinstance(v, str | int | float)}}
            if started:
                self._emit("start")
            elif done >= total and "epoch" not in facts:
                self._emit("end")
            elif self.clock() - self.last >= self.every:
                self._emit("progress")

    def tick(self) -> None:
        """Log the current state when nothing was logged for ``every`` seconds."""
        with self._lock:
            if self.state and self.clock() - self.last >= self.every:
                self._emit("progress")

    def _emit(self, phase: str) -> None:
        self.last = self.clock()
        stage_left, run_left = self.eta.stage_remaining(), self.eta.run_remaining()
        self.log.info("stage.progress", phase=phase, **self.state, percent=round(100 * self.eta.fraction, 1),
                      stage_eta_s=None if stage_left is None else round(stage_left, 1),
                      run_eta_s=None if run_left is None else round(run_left, 1),
                      eta=None if run_left is None else format_seconds(run_left))


@contextmanager
def heartbeat(sink: ProgressLog, interval: float = 5.0) -> Iterator[ProgressLog]:
    """Call ``sink.tick()`` every ``interval`` seconds in a daemon thread while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            sink.tick()

    thread = threading.Thread(target=beat, name="pad-progress-heartbeat", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        stop.set()
        thread.join(timeout=interval + 1)


class BudgetGuard:
    """Stops a run at its budget: raises :class:`BudgetExhausted` from the event callback once the wall time or
    compute cost spent (or the distillation iterations done) reach a limit, between epochs and iterations.

    ``max_wall_time_s``/``max_compute_cost``/``max_iterations`` as in ``policies.BudgetPolicy``; the cost is the
    wall time at ``hour_price``.
    """

    def __init__(self, *, max_wall_time_s: float | None = None, max_compute_cost: float | None = None,
                 max_iterations: int | None = None, hour_price: float = 0.0, clock: Clock = time.monotonic,
                 started: float | None = None) -> None:
        self.max_wall_time_s = max_wall_time_s
        self.max_compute_cost = max_compute_cost
        self.max_iterations = max_iterations
        self.hour_price = hour_price
        self.clock = clock
        self.started = clock() if started is None else started
        self.stages_done: list[str] = []
        self.planned: list[str] = []  # the run's stages in order (from its estimate), to say what a stop left undone

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.max_wall_time_s, self.max_compute_cost, self.max_iterations))

    def spent_seconds(self) -> float:
        return self.clock() - self.started

    def over(self, stage: str, done: int) -> tuple[str, float, float] | None:
        """(budget, limit, spent) of the first limit reached, else None."""
        seconds = self.spent_seconds()
        if self.max_wall_time_s is not None and seconds >= self.max_wall_time_s:
            return "budget.max_wall_time_s", self.max_wall_time_s, seconds
        cost = seconds / 3600 * self.hour_price
        if self.max_compute_cost is not None and cost >= self.max_compute_cost:
            return "budget.max_compute_cost", self.max_compute_cost, cost
        if self.max_iterations is not None and stage == "distill" and done >= self.max_iterations:
            return "budget.max_iterations", float(self.max_iterations), float(done)
        return None

    def __call__(self, stage: str, done: int, total: int, **facts: Any) -> None:
        if stage == "plan":
            return
        if done >= total and "epoch" not in facts:
            name = plan_stage(stage, facts)
            if name not in self.stages_done:
                self.stages_done.append(name)
            return  # a finished stage: the next one's first event checks again
        reached = self.over(stage, done)
        if reached is None:
            return
        budget, limit, spent = reached
        raise BudgetExhausted(
            f"{budget} ({limit:g}) reached during {plan_stage(stage, facts)} ({done} of {total} done, "
            f"{spent:,.2f} spent)", budget=budget, limit=limit, estimate=spent, stage=plan_stage(stage, facts),
            done=tuple(self.stages_done))


def chain(*sinks: Callable[..., None] | None) -> Callable[..., None]:
    """One ``on_event`` callback calling each sink in order (None ones skipped)."""
    present = [s for s in sinks if s is not None]

    def call(stage: str, done: int, total: int, **facts: Any) -> None:
        for sink in present:
            sink(stage, done, total, **facts)

    return call
