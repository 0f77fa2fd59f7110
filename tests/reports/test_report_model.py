"""Report numbers are checked against the measured inputs: bytes, times, accuracies, prices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_data import make_result

import policies
from pad_sdk.reports import Prices, RunReport, build_report, load_report, recommend_ipc, save_report
from pad_sdk.reports.cost import break_even


def test_cost_numbers_follow_from_bytes_times_and_prices() -> None:
    prices = Prices(currency="EUR", storage_per_gb_month=0.02, transfer_per_gb=0.05, reads_per_month=3,
                    cpu_hour=0.36)
    manifest = {"files": {"data.parquet": {"size": 4000}, "preview.png": {"size": 1000}}}
    report = build_report([make_result(10, stored_bytes=2_000_000_000)], manifests=[manifest], prices=prices)
    cost = report.entries[0].cost
    manifest_size = len(json.dumps(manifest, indent=2, sort_keys=True).encode())
    assert cost.condensed_bytes == 5000 + manifest_size
    assert cost.source_bytes == 2_000_000_000
    assert cost.reduction_ratio == pytest.approx(2e9 / cost.condensed_bytes)
    assert cost.source_storage_month == pytest.approx(2 * 0.02)
    assert cost.source_transfer_month == pytest.approx(2 * 0.05 * 3)
    assert cost.storage_saving_month == pytest.approx(0.04 - cost.condensed_bytes / 1e9 * 0.02)
    stages = {s.stage: s for s in cost.stages}
    assert stages["experts"].seconds == 300.0
    assert stages["experts"].cost == pytest.approx(300 / 3600 * 0.36)
    assert set(stages) == {"scoring", "experts", "distillation", "evaluation", "full_reference"}
    # distillation = scoring 30 + experts 300 + distillation 60; full trains in 10 s, condensed 2 s / 2 seeds
    assert cost.distillation_seconds == 390.0
    assert cost.full_train_seconds == 10.0 and cost.condensed_train_seconds == 1.0
    assert cost.break_even_runs == pytest.approx(390 / (10 - 1))
    assert cost.prices.currency == "EUR"


def test_accuracy_section_copies_the_measurements() -> None:
    result = make_result(10, condensed_acc=(0.80, 0.84), full_acc=0.95, random_acc=(0.60, 0.64))
    entry = build_report([result]).entries[0]
    assert entry.accuracy.condensed is not None and entry.accuracy.full is not None
    assert entry.accuracy.condensed.mean == pytest.approx(0.82)
    assert entry.accuracy.condensed.std == pytest.approx(0.02)
    assert entry.accuracy.full.mean == pytest.approx(0.95)
    assert entry.accuracy.random is not None and entry.accuracy.random.mean == pytest.approx(0.62)
    assert entry.accuracy.retention == pytest.approx(0.82 / 0.95)
    assert entry.accuracy.condensed.per_class_recall[3] == pytest.approx(0.65)
    assert entry.images == 100 and entry.ipc == 10


def test_in_memory_source_bytes_are_labelled_as_such() -> None:
    result = make_result(1, stored_bytes=None)
    estimated = build_report([result]).entries[0].cost
    assert estimated.source_bytes == 1797 * 64 * 4 and "estimated" in estimated.source_bytes_basis
    stated = build_report([result], source_bytes=(115_000, "in-memory uint8 arrays")).entries[0].cost
    assert stated.source_bytes == 115_000 and stated.source_bytes_basis == "in-memory uint8 arrays"
    assert "not exported" in stated.condensed_bytes_basis


def test_break_even_is_never_when_condensed_training_is_not_cheaper() -> None:
    assert break_even(1.0, 0.5, 0.5)[0] is None
    assert break_even(1.0, None, 0.1)[0] is None
    assert break_even(2.0, 1.5, 0.5)[0] == pytest.approx(2.0)


def test_sweep_recommends_smallest_passing_ipc_and_judges_without_a_policy() -> None:
    policy = policies.RunPolicy.model_validate({"name": "p", "compression": {"ipc": 10},
                                                "acceptance": {"min_retention": 0.7}})
    low = make_result(1, condensed_acc=(0.30, 0.32), policy=policy.model_dump(mode="json"),
                      verdict=policy.judge({"full_accuracy": 0.95, "condensed_accuracies": [0.30, 0.32]}))
    high = make_result(10, policy=policy.model_dump(mode="json"),
                       verdict=policy.judge({"full_accuracy": 0.95, "condensed_accuracies": [0.80, 0.84]}),
                       timings={"distillation": 80.0, "evaluation": 25.0, "total": 105.0})
    report = build_report([low, high])
    assert report.kind == "sweep" and recommend_ipc(report.entries) == 10 == report.recommended_ipc
    assert report.entry(1).verdict.status is policies.Status.FAIL
    assert report.overall is report.entry(10).verdict.status
    # scoring and experts ran once; IPC 10's break-even still counts them
    assert report.entry(10).cost.distillation_seconds == 30 + 300 + 80
    assert {s.stage for s in report.entry(10).cost.stages} == {"distillation", "evaluation"}
    unjudged = build_report([make_result(10)]).entries[0]
    assert unjudged.verdict_basis == "default" and unjudged.verdict.policy_name == "default-ipc10"


def test_json_round_trip_and_save(tmp_path: Path) -> None:
    report = build_report([make_result(1), make_result(10)], run_id="run-1")
    assert RunReport.from_json(report.to_json()) == report
    written = save_report(report, str(tmp_path / "out"))
    assert load_report(written["json"]) == report
    html = Path(written["html"]).read_text()
    assert "run-1" in html and html.count("data:image/png;base64,") >= 2 * 2 + 2
    # self-contained: nothing is fetched from the network
    assert "http://" not in html and "https://" not in html and "<script" not in html
    provenance = report.provenance
    assert provenance.source_uri == "s3://bucket/digits/" and provenance.source_fingerprint == "abc123"
    assert provenance.preset == "tiny" and "pad-sdk" in provenance.versions and "torch" in provenance.versions
