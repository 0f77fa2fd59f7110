"""Faults: a node killed mid-distillation, a worker process killed beyond ``max_failures``, a killed driver.

A fault is injected with ``PAD_SDK_RAY_FAULT`` (read by the driver, passed to the workers): at a chosen
iteration and rank, a worker records its pid and node in a marker file, then kills itself (``kill``) or
waits (``pause``) while the test kills its node or its driver. The marker makes the fault fire once, so
the restarted attempt runs through. Checkpoints are taken every 2 iterations; the fault fires at
iteration 5, so every recovery must restart from iteration 4 and end with the uninterrupted result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from ray_digits import CHECKPOINT_EVERY, ITERATIONS, Case, Reference, TwoWorkerRun, single_threaded
from sklearn.datasets import load_digits

import pad_sdk
from pad_sdk.runtime._ray_distill import FAULT_ENV
from pad_sdk.runtime.ray import RayRunError, RayRuntime

FAULT_AT = 5
RESUMED_FROM = 4  # the last checkpoint before the fault
pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _fault(marker: Path, *, rank: int, action: str) -> str:
    return json.dumps({"iteration": FAULT_AT, "rank": rank, "marker": str(marker), "action": action})


def _wait_for(marker: Path, timeout: float, alive: Any = lambda: True) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if time.monotonic() > deadline or not alive():
            raise AssertionError(f"the fault at iteration {FAULT_AT} never fired ({marker} missing)")
        time.sleep(0.1)
    return dict(json.loads(marker.read_text()))


def test_node_killed_mid_distillation_resumes_from_the_last_checkpoint(
    two_nodes: Any, case: Case, reference: Reference, two_worker_run: TwoWorkerRun, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = tmp_path / "fault.json"
    monkeypatch.setenv(FAULT_ENV, _fault(marker, rank=1, action="pause"))
    runtime = RayRuntime(num_workers=2, storage=str(tmp_path / "runs"), checkpoint_every=CHECKPOINT_EVERY)
    outcome: dict[str, Any] = {}

    def distill() -> None:
        try:
            outcome["result"] = runtime.distill(case.stages, reference.experts)
        except BaseException as exc:  # re-raised below, in the test's thread
            outcome["error"] = exc

    # The run goes to a thread: Ray's node management (signal handlers) must stay in the main thread.
    run = threading.Thread(target=distill, daemon=True)
    run.start()
    _wait_for(marker, timeout=240, alive=run.is_alive)
    # Both ranks now wait at iteration 5 (one paused, the other in the all-reduce). Kill the worker node
    # with whatever rank it hosts (SIGKILL, no graceful shutdown); then add a fresh node, as an autoscaler
    # would, so that the restarted group of two finds its CPUs.
    two_nodes.remove_node(next(iter(two_nodes.worker_nodes)), allow_graceful=False)
    two_nodes.add_node(num_cpus=1, object_store_memory=128 * 1024**2)
    run.join(timeout=240)
    assert not run.is_alive(), "the run did not finish after the node was replaced"
    if "error" in outcome:
        raise outcome["error"]
    synthetic, history = outcome["result"]

    assert runtime.report.distill_restarts == [RESUMED_FROM]
    # restored exactly (synthetic state, optimiser momenta, both ranks' samplers): the uninterrupted result
    assert [r.iteration for r in history] == list(range(ITERATIONS))
    assert torch.equal(synthetic.images, two_worker_run.synthetic.images)
    assert history == two_worker_run.history


def test_node_lost_for_good_fails_the_run_which_resumes_once_a_node_returns(
    two_nodes: Any, case: Case, reference: Reference, two_worker_run: TwoWorkerRun, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing replaces the killed node: the restarted group of two cannot get its CPUs, each start times out,
    and after ``max_failures`` the run fails with a RayRunError instead of waiting forever."""
    marker = tmp_path / "fault.json"
    monkeypatch.setenv(FAULT_ENV, _fault(marker, rank=1, action="pause"))
    storage = str(tmp_path / "runs")
    runtime = RayRuntime(num_workers=2, storage=storage, run_id="lost-node", checkpoint_every=CHECKPOINT_EVERY,
                         max_failures=1, start_timeout_s=5)
    outcome: dict[str, Any] = {}

    def distill() -> None:
        try:
            outcome["result"] = runtime.distill(case.stages, reference.experts)
        except BaseException as exc:
            outcome["error"] = exc

    run = threading.Thread(target=distill, daemon=True)
    run.start()
    try:
        _wait_for(marker, timeout=240, alive=run.is_alive)
        two_nodes.remove_node(next(iter(two_nodes.worker_nodes)), allow_graceful=False)
        run.join(timeout=240)
        assert not run.is_alive(), "the run still waits for a node that will not come back"
    finally:
        if not two_nodes.worker_nodes:
            two_nodes.add_node(num_cpus=1, object_store_memory=128 * 1024**2)  # as the other tests expect
    error = outcome.get("error")
    assert isinstance(error, RayRunError), f"expected RayRunError, got {outcome}"
    assert error.run_id == "lost-node" and error.iteration == RESUMED_FROM
    assert "could not get its resources within 5 s" in str(error)

    # the node is back (added above): the same run id resumes from iteration 4 and ends as the uninterrupted run
    monkeypatch.delenv(FAULT_ENV)
    again = RayRuntime(num_workers=2, storage=storage, run_id="lost-node", checkpoint_every=CHECKPOINT_EVERY)
    synthetic, history = again.distill(case.stages, reference.experts)
    assert again.report.distill_restarts == [RESUMED_FROM]
    assert torch.equal(synthetic.images, two_worker_run.synthetic.images)
    assert history == two_worker_run.history


def test_worker_killed_beyond_max_failures_raises_then_the_run_id_resumes(
    two_nodes: Any, case: Case, reference: Reference, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "fault.json"
    monkeypatch.setenv(FAULT_ENV, _fault(marker, rank=0, action="kill"))
    storage = str(tmp_path / "runs")
    strict = RayRuntime(num_workers=1, storage=storage, run_id="no-retries", max_failures=0,
                        checkpoint_every=CHECKPOINT_EVERY)
    with pytest.raises(RayRunError) as failure:
        strict.distill(case.stages, reference.experts)
    assert failure.value.run_id == "no-retries"
    assert failure.value.iteration == RESUMED_FROM
    assert "no-retries" in str(failure.value) and "iteration 4" in str(failure.value)
    died = json.loads(marker.read_text())
    assert died["iteration"] == FAULT_AT

    again = RayRuntime(num_workers=1, storage=storage, run_id="no-retries", checkpoint_every=CHECKPOINT_EVERY)
    synthetic, history = again.distill(case.stages, reference.experts)
    assert again.report.distill_restarts == [RESUMED_FROM]
    assert torch.equal(synthetic.images, reference.synthetic.images)
    assert history == reference.history


def test_killed_driver_is_resumed_from_storage_with_the_same_run_id(
    two_nodes: Any, reference: Reference, tmp_path: Path
) -> None:
    marker, storage, run_id = tmp_path / "fault.json", str(tmp_path / "runs"), "interrupted"
    env = {**os.environ, FAULT_ENV: _fault(marker, rank=0, action="pause")}
    log_path = tmp_path / "driver.log"
    with log_path.open("w") as log:
        driver = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("interrupted_driver.py")), two_nodes.address, storage,
             run_id], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parent,
        )
        try:
            _wait_for(marker, timeout=240, alive=lambda: driver.poll() is None)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; driver log:\n{log_path.read_text()[-3000:]}") from exc
        finally:
            driver.send_signal(signal.SIGKILL)  # the whole driver dies: its Ray job, trainer and workers go too
            driver.wait(timeout=30)

    # A new driver, through the SDK call, with the same run id and storage: experts are all in the store,
    # distillation continues from iteration 4, and the result is the uninterrupted in-process one.
    runtime = RayRuntime(num_workers=1, storage=storage, run_id=run_id, checkpoint_every=CHECKPOINT_EVERY)
    digits = load_digits()
    with single_threaded():
        result = pad_sdk.distill(digits.images, digits.target, ipc=2, preset="tiny", seed=0,
                                 overrides={"distill": {"iterations": ITERATIONS}}, runtime=runtime)
    assert runtime.report.experts_trained == [] and runtime.report.experts_skipped == [0, 1]
    assert runtime.report.distill_restarts == [RESUMED_FROM]
    assert torch.equal(result.condensed.images, reference.synthetic.images)
    assert result.loss_history == tuple(r.loss for r in reference.history)
    assert result.accuracy is not None
    assert result.accuracy.condensed.accuracies == reference.evaluation.accuracies
