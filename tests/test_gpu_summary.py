"""SUMMARY.md's GPU section shows the newest GPU record against issue #13's targets, and never a CPU rehearsal's
toy figures as GPU figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks import summary_gpu


def _write(folder: Path, name: str, record: dict[str, Any]) -> None:
    (folder / name).write_text(json.dumps(record))


def _speed_row(ipc: int, steps: int, seconds: float, peak: float, chosen: str = "full") -> dict[str, Any]:
    return {"ipc": ipc, "syn_steps": steps, "unroll": "auto", "chosen": chosen, "s_per_iteration": seconds,
            "peak_gib": peak}


def test_without_a_gpu_record_the_section_says_so_and_shows_no_rehearsal_figure(tmp_path: Path,
                                                                               monkeypatch: Any) -> None:
    monkeypatch.setattr(summary_gpu, "RESULTS", tmp_path)
    _write(tmp_path, "gpu_check.cpu-quick.json", {"device": "cpu", "commit": "abc1234", "timestamp": "2026-12-06",
                                                  "parts": {"speed": {"distill": [_speed_row(10, 80, 0.123, 1.0)]}}})
    text = "\n".join(summary_gpu.gpu_section())
    assert "No record from a GPU yet" in text and "`gpu_check.cpu-quick.json` (commit `abc1234`)" in text
    assert "0.123" not in text


def test_the_newest_gpu_record_is_shown_against_the_targets(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(summary_gpu, "RESULTS", tmp_path)
    speed = {"distill": [_speed_row(10, 80, 0.25, 22.5), _speed_row(50, 80, 2.65, 2.3, "recompute")],
             "budget_16gib": _speed_row(50, 80, 2.65, 2.3, "recompute"),
             "options": {"experts_at_once": {"1": {"images_per_s": 54_000.0}, "8": {"images_per_s": 162_000.0}}}}
    same = {"accuracy": 0.7893, "cpu_record_accuracy": 0.7891, "points_from_cpu_record": 0.02, "seconds": 18.7,
            "cpu_record_seconds": 1034}
    _write(tmp_path, "gpu_check.old.json", {"device": "cuda", "timestamp": "2026-12-01", "parts": {}})
    _write(tmp_path, "gpu_check.json", {"device": "cuda", "gpu": "NVIDIA H200", "timestamp": "2026-12-07",
                                        "parts": {"same_work": same, "speed": speed,
                                                  "tests": {"exit_code": 0, "tail": ["9 passed in 30s"]}}})
    text = "\n".join(summary_gpu.gpu_section())
    assert "Record: `gpu_check.json`" in text and "NVIDIA H200" in text
    assert "| 10 | 80 | auto (full) | 0.250 | 22.50 | 0.3 | met |" in text
    assert "| 50 | 80 | auto (recompute) | 2.650 | 2.30 | 0.8 | **not met** |" in text
    assert "peak 2.30 GiB (met)" in text and "+0.02 points; met" in text
    assert "best 3.0x one at a time here (**not met**; target 4x)" in text
    assert "exit code 0, `9 passed in 30s`" in text
