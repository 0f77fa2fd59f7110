"""`pad-sdk plan`, budgets on the command line (--max-wall-time, --force) and progress lines in batch logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_data import FAST
from typer.testing import CliRunner

from pad_sdk.cli import EXIT_OK, EXIT_POLICY, EXIT_USAGE, app


@pytest.mark.usefixtures("estimate_on")
def test_plan_prints_the_estimate_and_exits_1_over_budget(digits_dir: Path, runner: CliRunner) -> None:
    planned = runner.invoke(app, ["plan", str(digits_dir), "--ipc", "2", *FAST, "--json"])
    assert planned.exit_code == EXIT_OK, planned.output
    estimate = json.loads(planned.stdout)
    assert estimate["ipcs"] == [2] and estimate["over_budget"] == []
    assert {s["stage"] for s in estimate["stages"]} >= {"scoring", "experts", "distillation", "evaluation"}
    assert estimate["seconds"] > 0 and estimate["peak_host_bytes"] > 0 and estimate["read_bytes"] > 0
    over = runner.invoke(app, ["plan", str(digits_dir), "--ipc", "2", *FAST, "--max-wall-time", "0.01"])
    assert over.exit_code == EXIT_POLICY, over.output
    assert "over budget: budget.max_wall_time_s = 0.01" in over.stderr and "--force" in over.stderr
    assert "experts" in over.stdout and "estimate: " in over.stdout


@pytest.mark.usefixtures("estimate_on")
def test_distill_over_budget_is_refused_and_a_forced_one_stops_with_progress_logged(
        digits_dir: Path, tmp_path: Path, runner: CliRunner) -> None:
    output = tmp_path / "out"
    refused = runner.invoke(app, ["distill", str(digits_dir), "-o", str(output), "--ipc", "2", *FAST,
                                  "--max-wall-time", "0.01"])
    assert refused.exit_code == EXIT_USAGE, refused.output
    assert "BudgetExceeded" in refused.stderr and "--force" in refused.stderr and not output.exists()
    # forced: the run starts, logs its estimate and stage starts (stderr is not a terminal here), and stops
    # at the budget before a condensed set exists
    forced = runner.invoke(app, ["distill", str(digits_dir), "-o", str(output), "--ipc", "2", *FAST,
                                 "--max-wall-time", "0.01", "--force"])
    assert forced.exit_code == EXIT_USAGE, forced.output
    assert "BudgetExhausted" in forced.stderr and "not done" in forced.stderr
    assert "run.estimate" in forced.stderr and "stage.progress" in forced.stderr and "phase=start" in forced.stderr
    assert not output.exists()
