"""Hostile or careless input to the SDK and the CLI (issue 15): a typed error naming the problem, before any
training and within bounded memory, never a traceback or a half-written output."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import pad_sdk
from pad_sdk.cli import EXIT_USAGE, app

IMAGES = np.zeros((6, 8, 8), dtype=np.float32)


@pytest.mark.parametrize(("labels", "match"), [
    (np.array([0, 1, 0, 1, 0, 2**40]), r"row 5 has class 1099511627776; class ids must be below 65,536"),
    (np.array([0, 1, 0, 1, 0, 100_000]), r"row 5 has class 100000"),
    (np.array(list("aabbcc")), r"must be integer class ids, got dtype <U1"),
    (np.zeros(6, dtype=np.int64), r"1 class\(es\); condensing needs at least two"),
])
def test_bad_labels_are_data_errors_naming_the_row(labels: np.ndarray, match: str) -> None:
    with pytest.raises(pad_sdk.DataError, match=match) as caught:
        pad_sdk.distill(IMAGES, labels, ipc=1, preset="tiny")
    assert len(str(caught.value)) < 300  # never a message that lists every class


def test_a_huge_label_does_not_size_memory() -> None:
    """It grew to 14.7 GB before: run it in a child limited to 3 GiB of address space."""
    code = textwrap.dedent("""
        import resource, numpy as np
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
        import pad_sdk
        try:
            pad_sdk.distill(np.zeros((4, 8, 8)), np.array([0, 1, 0, 2**40]), ipc=1, preset="tiny")
        except pad_sdk.DataError as exc:
            print("DataError", exc.field, exc.row)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.stdout.strip().splitlines()[-1] == "DataError labels 3", done.stderr[-2000:]


@pytest.mark.parametrize(("images", "match"), [
    (np.full((6, 8, 8), 300, dtype=np.int32), r"row 0 has integer pixel values outside \[0, 255\]"),
    (np.full((6, 8, 8), 1e38, dtype=np.float32), r"row 0 has pixel values beyond"),
])
def test_out_of_range_pixels_are_refused(images: np.ndarray, match: str) -> None:
    with pytest.raises(pad_sdk.DataError, match=match):
        pad_sdk.distill(images, np.array([0, 1, 0, 1, 0, 1]), ipc=1, preset="tiny")


def test_an_ipc_larger_than_a_class_is_refused_before_training() -> None:
    images, labels = np.random.default_rng(0).random((40, 8, 8)), np.array([0] * 30 + [1] * 10)
    seen: list[str] = []
    with pytest.raises(pad_sdk.DataError, match=r"ipc=9 needs 9 real images per class, but class '1' has 8"):
        pad_sdk.distill(images, labels, ipc=9, preset="tiny", on_event=lambda stage, *a, **k: seen.append(stage))
    assert seen == []  # no stage started


@pytest.mark.parametrize("uri", ["", "/", "  "])
def test_saving_to_an_empty_location_is_refused(uri: str) -> None:
    result = pad_sdk.distill(np.random.default_rng(0).random((40, 8, 8)), np.array([0, 1] * 20), ipc=1,
                             preset="tiny", evaluate=False, overrides={"distill": {"iterations": 1}})
    with pytest.raises(pad_sdk.ConfigError, match="must name a folder") as caught:
        result.save(uri)
    assert caught.value.field == "uri"


@pytest.mark.parametrize("output", ["", "/"])
def test_cli_empty_output_is_a_usage_error_on_one_line(output: str, tmp_path: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    result = CliRunner().invoke(app, ["distill", str(tmp_path), "-o", output, "--preset", "tiny"])
    assert result.exit_code == EXIT_USAGE
    assert "must name a folder" in result.output and "Traceback" not in result.output
    assert resource.getrusage(resource.RUSAGE_SELF).ru_utime - before < 30  # refused before reading anything
    assert not any(Path("/").glob("report.*"))


def test_cli_output_that_is_a_file_is_refused_up_front(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("x")
    result = CliRunner().invoke(app, ["distill", str(tmp_path), "-o", str(target), "--preset", "tiny"])
    assert result.exit_code == EXIT_USAGE and "is a file" in result.output
    assert target.read_text() == "x"


def test_a_cli_error_is_one_line_on_stderr(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "nowhere")])
    assert result.exit_code == EXIT_USAGE
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_a_malformed_storage_option_is_not_repeated(tmp_path: Path) -> None:
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    result = CliRunner().invoke(app, ["inspect", str(tmp_path), "--storage-option", secret])
    assert result.exit_code == EXIT_USAGE
    assert secret not in result.output and "KEY=VALUE" in result.output


def test_a_malformed_report_names_the_field(tmp_path: Path) -> None:
    import json

    from pad_sdk.reports import load_report

    bad = tmp_path / "report.json"
    bad.write_text(json.dumps({"report_version": 1, "title": "x", "kind": "distill"}))
    with pytest.raises(pad_sdk.DataError, match=r"first: provenance: Field required") as caught:
        load_report(str(bad))
    assert caught.value.field == "provenance"


@pytest.mark.s3
def test_cli_storage_errors_are_typed_and_one_line(s3_server, s3_bucket, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A wrong secret on inspect and on the pre-run check of -o: a typed ConnectorError, exit 2 (it was exit 3,
    "internal error: PermissionError")."""
    import moto.settings

    bucket = s3_bucket()
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the dummy key is now unknown: 403
    options = ["--endpoint-url", s3_server.endpoint_url, "--storage-option", "key=AKIADENIED0000000000",
               "--storage-option", "secret=wrong-secret-value", "--storage-option", "use_listings_cache=false"]
    inspected = CliRunner().invoke(app, ["inspect", f"s3://{bucket}/x/", *options])
    written = CliRunner().invoke(app, ["distill", str(tmp_path), "-o", f"s3://{bucket}/out/", "--preset", "tiny",
                                       *options])
    for result in (inspected, written):
        assert result.exit_code == EXIT_USAGE, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ConnectorError: access denied"), result.stderr
        assert "wrong-secret-value" not in result.output


def test_redaction_replaces_a_secret_only_where_it_stands_alone() -> None:
    """A short secret used to turn every s3://bucket into s3://***cket; a real one is still removed."""
    from connectors._redact import scrub

    assert scrub("s3://bucket/x failed", ["bu"]) == "s3://bucket/x failed"
    assert scrub("denied for key=AKIA123 secret=abc!", ["abc", "AKIA123"]) == "denied for key=*** secret=***!"
    assert scrub("header wJalr/XUtn+FEMI=", ["wJalr/XUtn+FEMI="]) == "header ***"
