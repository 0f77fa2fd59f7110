"""Cost before spending: the plan, budgets refused up front and enforced during the run, progress logging."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

import pad_sdk
import policies
from pad_sdk.demo import load_digits_arrays
from pad_sdk.host import load_notes
from pad_sdk.plans import CUTS, Plan, StageEstimate
from pad_sdk.progress import BudgetGuard, ProgressLog
from pad_sdk.reports import build_report

FEW_EVAL = {"evaluation": {"epochs": 4, "seeds": 1, "full_epochs": 1}}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    images, labels, _ = load_digits_arrays()
    return images, labels


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.usefixtures("estimate_on")
def test_plan_is_typed_json_and_scales_with_the_settings(digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = digits
    plan = pad_sdk.plan(images, labels, ipc=2, preset="tiny")
    assert isinstance(plan, pad_sdk.Plan)
    assert [s.stage for s in plan.stages] == ["load", "calibration", "scoring", "experts", "distillation",
                                              "evaluation", "full_reference"]
    assert all(s.seconds > 0 for s in plan.stages)
    assert plan.seconds == pytest.approx(sum(s.seconds for s in plan.stages))
    assert plan.peak_host_bytes > plan.stage("experts").extra_host_bytes > 0  # type: ignore[union-attr]
    assert plan.read_bytes == images.nbytes and plan.written_bytes > 0  # held as the source's uint8
    assert plan.cost == pytest.approx(plan.seconds / 3600 * 0.10)  # the default CPU machine-hour price
    assert Plan.model_validate(json.loads(plan.model_dump_json())) == plan  # JSON round trip
    assert plan.line().startswith("estimate: ") and plan.over_budget == ()
    # the calibration is measured once per process: doubling the experts doubles their estimate exactly
    doubled = pad_sdk.plan(images, labels, ipc=2, preset="tiny", overrides={"experts": {"num_experts": 4}},
                           prices={"cpu_hour": 1.0})
    assert doubled.stage("experts").seconds == pytest.approx(2 * plan.stage("experts").seconds)  # type: ignore[union-attr]
    assert "4 experts x 6 epochs" in doubled.stage("experts").work  # type: ignore[union-attr]
    assert doubled.stage("distillation").seconds == pytest.approx(plan.stage("distillation").seconds)  # type: ignore[union-attr]
    with pytest.raises(pad_sdk.ConfigError, match="invalid prices"):
        pad_sdk.plan(images, labels, ipc=2, preset="tiny", prices={"cpu_hour": -1})


@pytest.mark.usefixtures("estimate_on")
def test_experts_trained_together_are_estimated_from_their_own_step(digits: tuple[np.ndarray, np.ndarray]) -> None:
    """compute.experts_at_once: the plan times the vectorised step, not one expert's step times the experts."""
    images, labels = digits
    alone = pad_sdk.plan(images, labels, ipc=2, preset="tiny", overrides={"experts": {"num_experts": 4}})
    together = pad_sdk.plan(images, labels, ipc=2, preset="tiny",
                            overrides={"experts": {"num_experts": 4}, "compute": {"experts_at_once": 8}})
    grouped, single = together.stage("experts"), alone.stage("experts")
    assert grouped is not None and single is not None
    assert "4 experts x 6 epochs" in grouped.work and grouped.work.endswith(", 4 at a time")  # capped at 4
    assert not single.work.endswith("at a time") and grouped.seconds > 0
    assert grouped.seconds != pytest.approx(single.seconds, rel=1e-6)  # measured, not derived from one expert


@pytest.mark.usefixtures("estimate_on")
def test_a_run_whose_estimate_breaks_the_budget_is_refused_before_training(
        digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = digits
    seen: list[str] = []
    policy = {"compression": {"ipc": 2}, "budget": {"max_wall_time_s": 0.5}}
    small = {"network": {"width": 16}, "distill": {"syn_steps": 4}}  # cpu-small's counts, cheaper to calibrate
    with pytest.raises(pad_sdk.BudgetExceeded) as caught:
        pad_sdk.distill(images, labels, ipc=2, preset="cpu-small", overrides=small, policy=policy,
                        on_event=lambda stage, *a, **k: seen.append(stage))
    assert seen == []  # no stage started
    err = caught.value
    assert err.budget == "budget.max_wall_time_s" and err.limit == 0.5 and err.estimate > 0.5
    assert isinstance(err, pad_sdk.BudgetError) and isinstance(err, pad_sdk.PadError)
    message = str(err)
    for cut in ("budget.max_wall_time_s", "--preset tiny", "training subset", "force=True"):
        assert cut in message, cut
    largest = max((s for s in err.plan.stages if s.stage in CUTS), key=lambda s: s.seconds)
    assert err.suggestions[0].startswith(largest.stage) and CUTS[largest.stage] in err.suggestions[0]
    # pad_sdk.plan says the same without raising
    planned = pad_sdk.plan(images, labels, ipc=2, preset="cpu-small", overrides=small, policy=policy)
    assert planned.over_budget[0]["budget"] == "budget.max_wall_time_s" and planned.cuts


@pytest.mark.usefixtures("estimate_on")
def test_a_forced_run_stops_at_its_budget_with_a_partial_result(digits: tuple[np.ndarray, np.ndarray],
                                                                 tmp_path: Path) -> None:
    images, labels = digits
    events: list[tuple[str, int, int, dict[str, Any]]] = []
    result = pad_sdk.distill(images, labels, ipc=2, preset="tiny", overrides=FEW_EVAL, force=True,
                             policy={"compression": {"ipc": 2}, "budget": {"max_iterations": 3}},
                             on_event=lambda stage, done, total, **facts: events.append((stage, done, total, facts)))
    assert result.partial and len(result.loss_history) == 3 and result.accuracy is None
    assert result.not_done == ("distillation (stopped part-way)", "evaluation", "full_reference")
    assert result.decisions["budget_stop"]["done"] == ["scoring", "experts"]
    # the set as the budget left it is kept: it exports, and the report shows estimate against actual
    result.save(str(tmp_path / "partial"))
    assert pad_sdk.load_condensed(str(tmp_path / "partial")).images.shape == (20, 1, 8, 8)
    report = build_report([result])
    assert report.estimate is not None and report.estimate.partial
    rows = {r.stage: r for r in report.estimate.rows}
    assert rows["experts"].actual_s is not None and rows["evaluation"].actual_s is None
    assert report.estimate.actual_peak_host_bytes and report.estimate.actual_peak_host_bytes > 0
    # progress came by epoch (experts) and by iteration (distillation), after the plan
    assert events[0][0] == "plan" and isinstance(events[0][3]["plan"], pad_sdk.Plan)
    assert any(stage == "experts" and facts.get("epoch") == 6 for stage, _, _, facts in events)
    assert [done for stage, done, _, _ in events if stage == "distill"] == [0, 1, 2, 3]


@pytest.mark.usefixtures("estimate_on")
def test_a_budget_reached_before_a_set_exists_keeps_the_finished_experts(
        digits: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    images, labels = digits
    store = str(tmp_path / "trajectories")
    with pytest.raises(pad_sdk.BudgetExhausted) as caught:
        pad_sdk.distill(images, labels, ipc=2, preset="tiny", force=True, trajectory_store=store,
                        policy={"compression": {"ipc": 2}, "budget": {"max_wall_time_s": 1e-6}})
    err = caught.value
    assert err.stage == "scoring" and err.checkpoint == store
    assert "scoring (stopped part-way)" in err.not_done and "distillation" in err.not_done
    assert store in str(err) and "resume" in str(err)


@pytest.mark.usefixtures("estimate_on")
def test_the_budget_guard_stops_between_epochs_by_its_clock() -> None:
    clock = FakeClock()
    guard = BudgetGuard(max_wall_time_s=60, clock=clock)
    guard("experts", 0, 2, epoch=3, epochs=6)
    guard("scoring", 1, 1)  # a finished stage is recorded, never stopped
    clock.now += 61
    guard("experts", 2, 2)  # the end of a stage does not stop: the next stage's first check does
    with pytest.raises(pad_sdk.BudgetExhausted, match=r"budget.max_wall_time_s \(60\) reached during distillation"):
        guard("distill", 0, 10)
    assert guard.stages_done == ["scoring", "experts"]
    cost = BudgetGuard(max_compute_cost=0.01, hour_price=0.36, clock=clock)  # 0.01 currency = 100 s
    clock.now += 99
    cost("evaluate", 0, 3, what="condensed")
    clock.now += 2
    with pytest.raises(pad_sdk.BudgetExhausted) as caught:
        cost("evaluate", 1, 3, what="condensed")
    assert caught.value.budget == "budget.max_compute_cost" and caught.value.stage == "evaluation"


def _plan(seconds: dict[str, float]) -> Plan:
    stages = tuple(StageEstimate(stage=k, seconds=v, work="-") for k, v in seconds.items())
    return Plan(ipcs=(10,), preset="cpu-small", device="cpu", hardware="cpu", runtime="local", train_images=100,
                image_shape=(1, 8, 8), stages=stages, seconds=sum(seconds.values()), peak_host_bytes=1,
                peak_device_bytes=None, read_bytes=0, written_bytes=0, cost=0.0, currency="USD", calibration={},
                load_average=None)


@pytest.mark.usefixtures("estimate_on")
def test_progress_logs_each_stage_and_at_least_every_30_seconds_with_an_eta() -> None:
    clock = FakeClock()
    sink = ProgressLog(every=30.0, clock=clock)
    with capture_logs() as logs:
        sink("plan", 0, 0, plan=_plan({"scoring": 100.0, "experts": 600.0, "evaluation": 50.0}))
        sink("scoring", 0, 2)
        clock.now += 20
        sink("scoring", 0, 2, epoch=5, epochs=10)  # a quarter done after 20 s, not yet 30 s since the last line
        sink.tick()
        assert len(logs) == 1
        clock.now += 10
        sink.tick()  # 30 s without a line: the heartbeat logs one even though no event came
        clock.now += 29
        sink.tick()
        clock.now += 1
        sink("scoring", 1, 2)  # an event 30 s after the last line logs too
        sink("scoring", 2, 2)
        sink("experts", 0, 6)
    phases = [(r["stage"], r["phase"]) for r in logs]
    assert phases == [("scoring", "start"), ("scoring", "progress"), ("scoring", "progress"), ("scoring", "end"),
                      ("experts", "start")]
    assert all(r["event"] == "stage.progress" and r["log_level"] == "info" for r in logs)
    # after 30 s at a quarter done: 90 s left of scoring, plus the plan's 600 + 50 s for the stages to come
    assert logs[1]["stage_eta_s"] == pytest.approx(90.0) and logs[1]["run_eta_s"] == pytest.approx(740.0)
    assert logs[1]["done"] == 0 and logs[1]["total"] == 2 and logs[1]["percent"] == 25.0
    assert logs[4]["stage_eta_s"] == pytest.approx(600.0)  # a stage without a pace yet: the plan's figure


def test_switching_the_opening_estimate_off_skips_the_calibration_but_keeps_the_budget_guard(
        digits: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAD_SDK_ESTIMATE", "off")
    images, labels = digits
    policy = {"compression": {"ipc": 1}, "budget": {"max_iterations": 3}}
    result = pad_sdk.distill(images, labels, ipc=1, preset="tiny", policy=policy, overrides=FEW_EVAL)
    assert result.estimate is None
    assert result.partial and len(result.loss_history) == 3
    # without the estimate the guard knows the usual stage order, not which of them this run would have had
    assert result.not_done[0] == "distillation (stopped part-way)" and "evaluation" in result.not_done


def test_the_rss_sampler_sees_memory_a_block_takes_and_gives_back() -> None:
    import torch

    from pad_sdk.host import RssSampler

    size = 96 * 2**20
    with RssSampler() as sampled:
        block = torch.ones(size // 4)  # written, so every page is resident
        time.sleep(0.05)  # long enough for the sampler to see it, however loaded the machine
        del block
    assert 0.9 * size <= sampled.rise <= 1.3 * size, sampled.rise / 2**20
    with RssSampler() as idle:
        time.sleep(0.02)
    assert idle.rise < 16 * 2**20


# the memory estimate against the peak of a fresh process (the suite's own process has the high-water mark of
# every test before): the run's own plan, in ``result.estimate``, against its measured ``ru_maxrss``
_FRESH_RUN = """
import json, os
os.environ["PAD_SDK_ESTIMATE"] = "on"
import pad_sdk
from pad_sdk.demo import load_digits_arrays
images, labels, _ = load_digits_arrays()
result = pad_sdk.distill(images, labels, ipc=2, preset="tiny",
                         overrides={"evaluation": {"epochs": 4, "seeds": 1, "full_epochs": 1}})
print(json.dumps({"estimate": result.estimate["peak_host_bytes"],
                  "floor_stages": {s["stage"]: s["extra_host_bytes"] for s in result.estimate["stages"]},
                  "actual": result.decisions["resources"]["peak_host_bytes"]}))
"""


@pytest.mark.usefixtures("estimate_on")
def test_the_peak_memory_estimate_lands_within_15_percent_of_a_fresh_run() -> None:
    done = subprocess.run([sys.executable, "-c", _FRESH_RUN], capture_output=True, text=True, timeout=600,
                          check=False, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["actual"] > 200 * 2**20  # the interpreter, torch and the data: a real process
    assert abs(got["estimate"] / got["actual"] - 1) < 0.15, got


def test_a_plan_calibrated_on_a_busy_machine_says_so() -> None:
    assert load_notes(1.5, 2, 0.95) == () and load_notes(None, 2, None) == ()
    (note,) = load_notes(11.7, 2, 0.31)
    assert "load 11.7 on 2 CPUs" in note and "31%" in note and "assume that load lasts" in note
    plan = _plan({"scoring": 10.0}).model_copy(update={"notes": (note,)})
    assert plan.line().endswith(note)


def test_the_verdict_judges_max_compute_cost_from_the_runs_measured_cost(
        digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = digits
    policy = {"compression": {"ipc": 2}, "budget": {"max_compute_cost": 10.0, "warn_at": 1.0}}
    result = pad_sdk.distill(images, labels, ipc=2, preset="tiny", overrides=FEW_EVAL, policy=policy,
                             prices={"cpu_hour": 36.0})  # 0.01 per second of wall time
    rule = result.verdict.rule("budget.max_compute_cost")
    assert rule.measured == pytest.approx(result.timings["total"] * 0.01)
    assert rule.status.value == "pass" and "Not measured" not in rule.message
    assert result.measurements["compute_currency"] == "USD"
    # the same measurements under a budget smaller than what the run spent fail
    tight = policies.load_policy({"compression": {"ipc": 2}, "budget": {"max_compute_cost": rule.measured / 2}})
    assert tight.judge(result.measurements).rule("budget.max_compute_cost").status.value == "fail"


@pytest.mark.usefixtures("estimate_on")
def test_plain_experts_plan_no_scoring_unless_the_policy_pins_the_scheduler(
        digits: tuple[np.ndarray, np.ndarray]) -> None:
    # cpu-small trains plain experts at IPC 1 (presets._cpu_small_fiex): no difficulty scores are needed
    images, labels = digits
    plain = pad_sdk.plan(images, labels, ipc=1, preset="cpu-small", overrides=FEW_EVAL)
    assert "scoring" not in [s.stage for s in plain.stages]
    # a reviewer who pins PAD's first filter gets the scheduler, and the plan pays for its scoring
    pinned = pad_sdk.plan(images, labels, ipc=1, preset="cpu-small", overrides=FEW_EVAL,
                          policy={"compression": {"ipc": 1}, "pad": {"fiex": True}})
    assert "scoring" in [s.stage for s in pinned.stages]
