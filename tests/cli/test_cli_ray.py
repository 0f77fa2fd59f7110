"""The CLI's Ray options: --run-id and --ray-storage (usage errors, wiring, and resuming a run end to end)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_data import FAST
from typer.testing import CliRunner

from pad_sdk import load_condensed
from pad_sdk.cli import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, app
from pad_sdk.reports import load_report


def _error_line(result: Any) -> str:
    """The one line that says what to fix (click's ``Error: ...``, or the CLI's ``error: ...``)."""
    lines = [line for line in result.stderr.splitlines() if line.lower().startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def _records(result: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("command", ["distill", "sweep"])
@pytest.mark.parametrize(("option", "value"), [("--run-id", "digits-1"), ("--ray-storage", "s3://bucket/runs/")])
def test_ray_run_options_without_ray_are_usage_errors(command: str, option: str, value: str, runner: CliRunner,
                                                      digits_dir: Path, tmp_path: Path) -> None:
    args = [command, str(digits_dir), "-o", str(tmp_path / "out"), "--ipc", "1", option, value]
    for runtime in ([], ["--runtime", "local"]):  # local is the default: refused either way, never ignored
        result = runner.invoke(app, [*args, *runtime])
        assert result.exit_code == EXIT_USAGE, result.output
        line = _error_line(result)
        assert option in line and "--runtime ray" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("run_id", "why"), [("../escape", "may use only"), ("", "must not be empty")])
def test_an_invalid_run_id_is_a_usage_error(run_id: str, why: str, runner: CliRunner, digits_dir: Path,
                                            tmp_path: Path) -> None:
    result = runner.invoke(app, ["distill", str(digits_dir), "-o", str(tmp_path / "out"), "--runtime", "ray",
                                 "--run-id", run_id])
    assert result.exit_code == EXIT_USAGE, result.output
    line = _error_line(result)
    assert "--run-id" in line and why in line and "Traceback" not in result.output


def test_ray_options_and_storage_options_reach_the_runtime(runner: CliRunner, digits_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """--run-id, --ray-storage, --workers, --address and the storage options build the RayRuntime; its run id is
    on stderr at the start, and again (with how to resume) when the run stops. No cluster is started."""
    seen: dict[str, Any] = {}

    def interrupted(*args: Any, runtime: Any, **kwargs: Any) -> None:
        seen["runtime"] = runtime
        raise RuntimeError("node lost")

    monkeypatch.setattr("pad_sdk.api.sweep", interrupted)
    result = runner.invoke(app, [
        "sweep", str(digits_dir), "-o", str(tmp_path / "out"), "--ipc", "1", "--runtime", "ray", "--workers", "3",
        "--address", "ray://head:10001", "--run-id", "digits-ipc1", "--ray-storage", "s3://bucket/pad-runs/",
        "--endpoint-url", "http://127.0.0.1:9", "--storage-option", "key=AKIDEXAMPLE",
        "--storage-option", "secret=wJalrEXAMPLEKEY",
    ])
    assert result.exit_code == EXIT_INTERNAL, result.output
    runtime = seen["runtime"]
    assert (runtime.run_id, runtime.storage, runtime.num_workers, runtime.address) == (
        "digits-ipc1", "s3://bucket/pad-runs/", 3, "ray://head:10001")
    assert runtime.storage_options == {"key": "AKIDEXAMPLE", "secret": "wJalrEXAMPLEKEY",
                                       "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}
    hint = "--run-id digits-ipc1 --ray-storage s3://bucket/pad-runs/"
    start, stopped = (line for line in result.stderr.splitlines() if line.startswith("Ray run digits-ipc1"))
    assert hint in start and "stopped" in stopped and hint in stopped
    assert "AKIDEXAMPLE" not in result.stderr and "wJalrEXAMPLEKEY" not in result.stderr

    # a relative local storage path becomes absolute (Ray workers do not share the driver's directory);
    # without --run-id the runtime names the run itself
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["distill", str(digits_dir), "-o", "out", "--runtime", "ray", "--ray-storage", "runs"])
    assert result.exit_code == EXIT_INTERNAL, result.output
    assert seen["runtime"].storage == str(tmp_path / "runs")
    assert seen["runtime"].run_id and seen["runtime"].run_id != "digits-ipc1"
    assert f"Ray run {seen['runtime'].run_id} " in result.stderr


@pytest.mark.ray
@pytest.mark.slow
def test_rerun_with_the_same_run_id_resumes_without_training_again(ray_cluster: Any, digits_dir: Path,
                                                                   tmp_path: Path) -> None:
    """The same --run-id and --ray-storage a second time: every expert is skipped, the distillation starts from
    the final checkpoint (no iteration runs again), and the condensed images are the same."""
    storage = tmp_path / "ray-runs"
    ray_args = ["--runtime", "ray", "--workers", "1", "--run-id", "cli-resume", "--ray-storage", str(storage)]

    def run(name: str) -> tuple[Any, list[dict[str, Any]]]:
        result = CliRunner().invoke(app, ["--log-json", "distill", str(digits_dir), "-o", str(tmp_path / name),
                                          "--ipc", "2", *FAST, *ray_args])
        assert result.exit_code == EXIT_OK, result.output
        return result, _records(result)

    _, first = run("first")
    experts = sorted((storage / "cli-resume").glob("trajectories-*/expert-*.safetensors"))
    assert len(experts) == 1  # FAST: one expert, in the run's storage
    written = {p: p.stat().st_mtime_ns for p in experts}
    done = next(r for r in first if r["event"] == "ray.experts_done")
    assert (done["trained"], done["skipped"]) == (1, 0)
    start = next(r for r in first if r["event"] == "cli.start")
    assert (start["ray_run_id"], start["ray_storage"]) == ("cli-resume", str(storage))

    _, second = run("second")
    done = next(r for r in second if r["event"] == "ray.experts_done")
    assert (done["trained"], done["skipped"]) == (0, 1)
    assert {p: p.stat().st_mtime_ns for p in experts} == written  # nothing rewritten
    distilled = next(r for r in second if r["event"] == "ray.distill_done")
    assert distilled["run_id"] == "cli-resume" and distilled["restarts"] == [3]  # resumed at the last iteration

    one, two = load_condensed(str(tmp_path / "first")), load_condensed(str(tmp_path / "second"))
    assert torch.equal(one.images, two.images) and torch.equal(one.labels, two.labels)
    assert one.learned_lr == two.learned_lr
    report = load_report(str(tmp_path / "second" / "report.json"))
    assert report.provenance.runtime == "ray"
    assert report.provenance.runtime_options == {"run_id": "cli-resume", "storage": str(storage), "workers": 1}
    assert "cli-resume" in (tmp_path / "second" / "report.html").read_text()


def test_printed_and_recorded_urls_drop_credentials() -> None:
    from pad_sdk.cli._run import _public_url

    assert _public_url("s3://bucket/pad-runs/") == "s3://bucket/pad-runs/"
    assert _public_url("ftp://user:pw@host:21/runs") == "ftp://host:21/runs"
    assert _public_url("ray://token@head:10001") == "ray://head:10001"
    assert _public_url("/tmp/pad-runs") == "/tmp/pad-runs"
