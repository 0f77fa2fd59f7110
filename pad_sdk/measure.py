"""What a run measures for policies and reports: one function each, used by the SDK, the CLI and the reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from pad_sdk.config import PadConfig
from pad_sdk.core.evaluate import EvalResult
from pad_sdk.data import PreparedData
from pad_sdk.result import AccuracyReport


def measured_results(accuracy: AccuracyReport | None, class_names: tuple[str, ...], config: PadConfig,
                     timings: Mapping[str, float], group_column: str | None = None,
                     decisions: Mapping[str, Any] | None = None,
                     compute_cost: tuple[float, str] | None = None) -> dict[str, Any]:
    """The measurements a policy judges, as the plain mapping ``policies`` accepts. ``compute_cost`` is the run's
    measured wall time priced at its machine-hour price, with the currency (what the budget guard spends)."""
    results: dict[str, Any] = {"ipc": config.ipc, "iterations": config.distill.iterations,
                               "wall_time_s": timings.get("total"), "class_names": class_names}
    if compute_cost is not None:
        results.update(compute_cost=compute_cost[0], compute_currency=compute_cost[1])
    check = (decisions or {}).get("subset_check")
    if check:
        results.update(validation_accuracy=check["condensed"], best_subset=check["best_subset"],
                       best_subset_validation_accuracy=check["subsets"][check["best_subset"]])
    if accuracy is not None:
        results.update(
            condensed_accuracies=accuracy.condensed.accuracies,
            per_class_recall_condensed=_finite(class_names, accuracy.condensed.per_class_recall),
        )
        if accuracy.random is not None:
            results["random_accuracy_mean"] = accuracy.random.mean
        if accuracy.full is not None:
            results["full_accuracy"] = accuracy.full.mean
            results["per_class_recall_full"] = _finite(class_names, accuracy.full.per_class_recall)
        if accuracy.group_accuracy is not None:
            results["group_accuracy"] = {group_column or "group": {
                group: row["condensed"] for group, row in accuracy.group_accuracy.items() if "condensed" in row}}
    return results


def group_accuracy(data: PreparedData, evaluations: Mapping[str, EvalResult | None]
                   ) -> dict[str, dict[str, float]] | None:
    """Holdout accuracy per value of the source's group column, for each evaluated set (None without groups).

    Uses each evaluation's per-example correctness (mean over its networks), so the group accuracies
    weighted by group size add up to the overall accuracy.
    """
    if data.test_groups is None:
        return None
    groups = np.asarray(data.test_groups).astype(str)
    table: dict[str, dict[str, float]] = {}
    for value in sorted(set(groups.tolist())):
        members = torch.from_numpy(groups == value)
        row = {name: float(result.example_correct[members].mean())
               for name, result in evaluations.items()
               if result is not None and result.example_correct is not None}
        table[value] = row
    return table


def _finite(class_names: tuple[str, ...], values: tuple[float, ...]) -> dict[str, float]:
    """Per-class values without the classes the holdout lacks (their recall is NaN)."""
    return {name: v for name, v in zip(class_names, values, strict=True) if v == v}
