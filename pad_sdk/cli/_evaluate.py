"""``pad-sdk evaluate``: judging a re-evaluation (the re-evaluation itself is ``pad_sdk.evaluate_export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _judge_evaluation(measured: dict[str, Any], policy_file: Path) -> Any:
    import policies

    names = measured["class_names"]
    recall = measured["condensed"]["per_class_recall"]
    results: dict[str, Any] = {
        "ipc": measured["ipc"], "class_names": names, "condensed_accuracies": measured["condensed"]["accuracies"],
        "per_class_recall_condensed": {n: v for n, v in zip(names, recall, strict=True) if v == v},
    }
    if measured["recorded_full_mean"] is not None:  # the full-data reference the export's run measured
        results["full_accuracy"] = measured["recorded_full_mean"]
    if measured["recorded_full_recall"]:
        results["per_class_recall_full"] = {
            n: v for n, v in zip(names, measured["recorded_full_recall"], strict=True) if v is not None and v == v}
    return policies.load_policy(policy_file).judge(results)
