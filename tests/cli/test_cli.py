"""The pad-sdk CLI end to end on digits (local Parquet and S3 on the local server), and every exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_data import FAST
from typer.testing import CliRunner

from pad_sdk import load_condensed
from pad_sdk.cli import EXIT_INTERNAL, EXIT_OK, EXIT_POLICY, EXIT_USAGE, app
from pad_sdk.reports import load_report


@pytest.fixture(scope="module")
def local_run(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """One `pad-sdk --log-json distill` on the local Parquet digits, shared by the tests that read its outputs.

    Its data budget is 0: the source is read into a memory-mapped file under --data-dir (the in-memory path
    runs in every other CLI test)."""
    output = tmp_path_factory.mktemp("run") / "out"
    mapped = output.parent / "mapped"
    result = CliRunner().invoke(app, ["--log-json", "distill", str(digits_dir), "-o", str(output), "--ipc", "2",
                                      "--data-memory-gib", "0", "--data-dir", str(mapped), *FAST])
    return result, output


@pytest.mark.slow
def test_distill_from_local_dir_writes_export_and_reports(local_run: tuple[Any, Path]) -> None:
    result, output = local_run
    assert result.exit_code == EXIT_OK, result.output
    condensed = load_condensed(str(output))  # the manifest verifies
    assert condensed.images.shape == (20, 1, 8, 8)
    report = load_report(str(output / "report.json"))
    entry = report.entries[0]
    manifest = json.loads((output / "manifest.json").read_text())
    assert entry.cost.condensed_bytes == sum(f["size"] for f in manifest["files"].values()) + len(
        json.dumps(manifest, indent=2, sort_keys=True).encode())
    assert entry.cost.source_bytes == sum(p.stat().st_size for p in Path(report.provenance.source_uri).glob("*"))
    recorded = manifest["metadata"]["run"]
    assert entry.accuracy.condensed is not None
    assert entry.accuracy.condensed.accuracies == tuple(recorded["accuracy"]["condensed"]["accuracies"])
    assert entry.timings == recorded["timings"]
    assert (output / "report.html").stat().st_size > 10_000
    assert report.provenance.source_held == "file mapping"
    assert "training images held in a file mapping" in (output / "report.html").read_text()
    # --log-json: structured records on stderr, one JSON object per line
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(r["event"] == "stage.progress" and r["stage"] == "distill" for r in records)
    assert any(r["event"] == "cli.done" for r in records)
    assert any(r["event"] == "data.over_budget" and r["budget"] == 0 for r in records)
    assert list((output.parent / "mapped").iterdir()) == []  # the mapped file was unlinked


@pytest.mark.slow
def test_evaluate_report_and_inspect_an_export(local_run: tuple[Any, Path], digits_dir: Path,
                                               tmp_path: Path, runner: CliRunner) -> None:
    _, output = local_run
    evaluated = runner.invoke(app, ["evaluate", str(output), "--source", str(digits_dir), "--json"])
    assert evaluated.exit_code == EXIT_OK, evaluated.output
    measured = json.loads(evaluated.stdout)
    assert measured["same_holdout_as_run"] and measured["holdout_rows"] == 80 and measured["ipc"] == 2
    # a policy the export cannot meet: exit code 1 (policy failure)
    strict = tmp_path / "strict.yaml"
    strict.write_text("compression: {ipc: 2}\nacceptance: {min_retention: 0.999}\n")
    failed = runner.invoke(app, ["evaluate", str(output), "--source", str(digits_dir), "--policy", str(strict)])
    assert failed.exit_code == EXIT_POLICY, failed.output
    assert "acceptance.min_retention" in failed.stdout

    html = tmp_path / "again.html"
    rendered = runner.invoke(app, ["report", str(output / "report.json"), "-o", str(html)])
    assert rendered.exit_code == EXIT_OK, rendered.output
    assert html.read_text().count("data:image/png;base64,") >= 3

    source = runner.invoke(app, ["inspect", str(digits_dir), "--json"])
    assert source.exit_code == EXIT_OK and json.loads(source.stdout)["class_counts"] == [40] * 10
    export = runner.invoke(app, ["inspect", str(output)])
    assert export.exit_code == EXIT_OK and "manifest verified" in export.stdout


@pytest.mark.slow
@pytest.mark.s3
def test_sweep_on_s3_with_a_failing_policy_exits_1_and_still_writes(digits_s3: str, s3_server: Any,
                                                                    runner: CliRunner) -> None:
    storage = ["--endpoint-url", s3_server.endpoint_url, "--storage-option", "key=testing",
               "--storage-option", "secret=testing", "--storage-option", "use_listings_cache=false"]
    result = runner.invoke(app, ["sweep", f"{digits_s3}/digits/", "-o", f"{digits_s3}/out", "--ipc", "1",
                                 "--ipc", "2", "--min-retention", "0.999", *FAST, *storage])
    assert result.exit_code == EXIT_POLICY, result.output
    fs = s3_server.filesystem()
    bucket = digits_s3.removeprefix("s3://")
    assert fs.exists(f"{bucket}/out/ipc-1/manifest.json") and fs.exists(f"{bucket}/out/ipc-2/manifest.json")
    report = load_report(f"{digits_s3}/out/report.json", storage_options=s3_server.storage_options)
    assert report.kind == "sweep" and report.recommended_ipc is None and report.overall.value == "fail"
    assert [e.ipc for e in report.entries] == [1, 2]
    assert report.provenance.source_fingerprint and report.entries[0].cost.source_bytes > 0
    # experts were trained once, for the first IPC only
    assert "experts" in report.entries[0].timings and "experts" not in report.entries[1].timings


def test_usage_and_config_errors_exit_2_in_one_line(runner: CliRunner, digits_dir: Path, tmp_path: Path) -> None:
    missing_output = runner.invoke(app, ["distill", str(digits_dir)])
    assert missing_output.exit_code == EXIT_USAGE
    bad_preset = runner.invoke(app, ["distill", str(digits_dir), "-o", str(tmp_path / "o"), "--preset", "huge"])
    assert bad_preset.exit_code == EXIT_USAGE
    assert "unknown preset 'huge'" in bad_preset.stderr and "Traceback" not in bad_preset.output
    bad_set = runner.invoke(app, ["distill", str(digits_dir), "-o", str(tmp_path / "o"), "--set", "nonsense"])
    assert bad_set.exit_code == EXIT_USAGE
    negative = runner.invoke(app, ["distill", str(digits_dir), "-o", str(tmp_path / "o"), "--data-memory-gib", "-1"])
    assert negative.exit_code == EXIT_USAGE and "--data-memory-gib" in negative.stderr
    on_ray = runner.invoke(app, ["distill", str(digits_dir), "-o", str(tmp_path / "o"), "--runtime", "ray",
                                 "--data-memory-gib", "-1"])  # checked by the Ray runtime's settings, before Ray starts
    assert on_ray.exit_code == EXIT_USAGE and "--data-memory-gib" in on_ray.stderr
    logged = runner.invoke(app, ["--log-json", "inspect", str(tmp_path / "nowhere")])
    assert logged.exit_code == EXIT_USAGE
    record = next(json.loads(line) for line in logged.stderr.splitlines() if line.startswith("{"))
    assert record["event"] == "cli.failed" and record["exit_code"] == EXIT_USAGE


def test_unexpected_errors_exit_3(runner: CliRunner, digits_dir: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("pad_sdk.api.sweep", broken)
    result = runner.invoke(app, ["distill", str(digits_dir), "-o", str(tmp_path / "o")])
    assert result.exit_code == EXIT_INTERNAL
    assert "internal error: RuntimeError: boom" in result.stderr and "--debug" in result.stderr


def test_help_explains_commands_and_exit_codes() -> None:
    done = subprocess.run([sys.executable, "-m", "pad_sdk.cli", "--help"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0
    for word in ("distill", "sweep", "evaluate", "report", "inspect", "Exit codes", "policy failure"):
        assert word in done.stdout
