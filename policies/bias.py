"""Bias policy: limits on what condensation may do to individual classes and groups.

A condensed set can keep its average accuracy while one class (often a small one) collapses, and the
difficulty pruning of PAD's data scheduler removes examples per class, which can thin out a minority. These
rules make such losses visible and, when a class fails, say how many more images it needs.

All values are fractions (0.05 = 5 points of recall). ``warn_margin`` is one absolute band shared by every
rule here (see :mod:`policies.verdict` for the scheme).
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field, model_validator

from policies._base import PolicyModel, conflict, pct, pts
from policies._checks import not_measured, per_subject, single
from policies.results import MeasuredResults
from policies.verdict import ClassRemediation, RuleResult, Status

# Remediation divides by the current recall; this floor keeps a class at ~0 recall from asking for an
# unbounded number of images (see ClassRemediation).
_RECALL_FLOOR = 0.1

# class name -> rule id -> the recall that class must reach to pass that rule
_Targets = dict[str, dict[str, float]]


class BiasPolicy(PolicyModel):
    """Per-class and per-group limits; any limit set to ``null`` is switched off."""

    _what: ClassVar[str] = "bias policy"

    max_class_recall_drop: float | None = Field(
        default=0.15,
        ge=0,
        le=1,
        description="Largest allowed drop of a class's recall against the full-data model.",
    )
    min_class_recall: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Smallest allowed recall of any class on the condensed-set model.",
    )
    max_group_gap: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Largest accuracy gap between the groups of one attribute column.",
    )
    group_attributes: tuple[str, ...] | None = Field(
        default=None,
        strict=False,
        min_length=1,
        description="Attribute columns max_group_gap applies to; null means every measured attribute.",
    )
    min_pruning_keep_share: float | None = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Smallest share of each class or group the difficulty pruning may keep.",
    )
    warn_margin: float = Field(
        default=0.01,
        ge=0,
        le=0.2,
        description="Warn when a value is this close (absolute) to a limit it meets.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> BiasPolicy:
        if self.group_attributes is not None and self.max_group_gap is None:
            raise conflict(
                "group_attributes",
                "group_attributes has no effect unless max_group_gap is set",
                "null, or set max_group_gap",
            )
        m = self.warn_margin
        for name in ("max_class_recall_drop", "max_group_gap"):
            limit = getattr(self, name)
            if limit is not None and m > 0 and m >= limit:
                raise conflict(
                    "warn_margin",
                    f"warn_margin ({m}) must be smaller than {name} ({limit}), or every value would warn",
                    f"0 <= value < {limit}, or lower {name}",
                )
        for name in ("min_class_recall", "min_pruning_keep_share"):
            limit = getattr(self, name)
            if limit is not None and limit + m > 1:
                raise conflict(
                    "warn_margin",
                    f"{name} ({limit}) plus warn_margin ({m}) exceeds 1, so the rule could never pass",
                    f"0 <= value <= {1 - limit:.6g}",
                )
        return self

    def evaluate(
        self, m: MeasuredResults, ipc: int | None
    ) -> tuple[list[RuleResult], list[ClassRemediation]]:
        """Judge ``m``; ``ipc`` (the run's images per class) sizes the remediation for failing classes."""
        rules: list[RuleResult] = []
        targets: _Targets = {}
        if self.max_class_recall_drop is not None:
            rules.append(self._recall_drop(m, self.max_class_recall_drop, targets))
        if self.min_class_recall is not None:
            rules.append(self._min_recall(m, self.min_class_recall, targets))
        if self.max_group_gap is not None:
            rules.extend(self._group_gaps(m, self.max_group_gap))
        if self.min_pruning_keep_share is not None:
            rules.append(self._pruning(m, self.min_pruning_keep_share))
        return rules, _remediation(m, targets, ipc)

    def _recall_drop(self, m: MeasuredResults, limit: float, targets: _Targets) -> RuleResult:
        rule = "bias.max_class_recall_drop"
        full, cond = m.per_class_recall_full, m.per_class_recall_condensed
        if not full or not cond:
            return not_measured(rule, limit, "per-class recall of the full-data and condensed-set models")
        common = [c for c in m.ordered_classes(cond) if c in full]
        if not common:
            return not_measured(rule, limit, "recall for any class present in both models")
        drops = {c: full[c] - cond[c] for c in common}
        result = per_subject(
            rule,
            drops,
            limit,
            self.warn_margin,
            at_least=False,
            what="classes",
            quantity="recall drop against the full-data reference",
            fmt=pts,
            order=common,
        )
        for c in common:
            if drops[c] > limit + 1e-9:
                targets.setdefault(c, {})[rule] = full[c] - limit
        missing = sorted(set(full) ^ set(cond))
        if missing and result.status is Status.PASS:
            # Half-measured is not measured: a class absent from one side was not checked.
            return result.model_copy(
                update={
                    "status": Status.WARN,
                    "offenders": tuple(missing),
                    "message": f"{result.message} Not measured for {missing} (recall missing on one side).",
                }
            )
        return result

    def _min_recall(self, m: MeasuredResults, limit: float, targets: _Targets) -> RuleResult:
        rule = "bias.min_class_recall"
        cond = m.per_class_recall_condensed
        if not cond:
            return not_measured(rule, limit, "per-class recall of the condensed-set model")
        order = m.ordered_classes(cond)
        for c in order:
            if cond[c] < limit - 1e-9:
                targets.setdefault(c, {})[rule] = limit
        return per_subject(
            rule,
            cond,
            limit,
            self.warn_margin,
            at_least=True,
            what="classes",
            quantity="recall on the condensed-set model",
            fmt=pct,
            order=order,
        )

    def _group_gaps(self, m: MeasuredResults, limit: float) -> list[RuleResult]:
        rule = "bias.max_group_gap"
        measured = m.group_accuracy or {}
        attributes = self.group_attributes or tuple(measured)
        if not attributes:
            return [not_measured(rule, limit, "accuracy per group of any attribute")]
        results = []
        for attr in attributes:
            groups = measured.get(attr)
            if not groups or len(groups) < 2:
                missing = f"accuracy for two or more groups of {attr!r}"
                results.append(not_measured(rule, limit, missing, attr))
                continue
            low, high = min(groups, key=groups.__getitem__), max(groups, key=groups.__getitem__)
            gap = groups[high] - groups[low]
            quantity = (
                f"Accuracy gap between the groups of {attr!r} "
                f"({high!r} {pct(groups[high])} vs {low!r} {pct(groups[low])})"
            )
            r = single(rule, gap, limit, self.warn_margin, at_least=False, quantity=quantity, fmt=pts)
            offenders = () if r.status is Status.PASS else (low, high)
            results.append(r.model_copy(update={"subject": attr, "offenders": offenders}))
        return results

    def _pruning(self, m: MeasuredResults, limit: float) -> RuleResult:
        rule = "bias.min_pruning_keep_share"
        shares = m.pruning_kept_share
        if not shares:
            return not_measured(rule, limit, "the share of each class or group kept by difficulty pruning")
        r = per_subject(
            rule,
            shares,
            limit,
            self.warn_margin,
            at_least=True,
            what="classes or groups",
            quantity="share kept by difficulty pruning",
            fmt=pct,
        )
        if r.status is Status.FAIL:
            hint = " Lower pad.hard_prune_ratio / pad.easy_prune_ratio so pruning keeps more of them."
            r = r.model_copy(update={"message": r.message + hint})
        return r


def _remediation(m: MeasuredResults, targets: _Targets, ipc: int | None) -> list[ClassRemediation]:
    """One suggestion per failing class, sized by the formula documented on :class:`ClassRemediation`."""
    cond = m.per_class_recall_condensed or {}
    fixes = []
    for c in m.ordered_classes(targets):
        target = max(targets[c].values())
        recall = cond[c]
        shortfall = target - recall
        extra = 1 if ipc is None else max(1, math.ceil(ipc * shortfall / max(recall, _RECALL_FLOOR) - 1e-9))
        fixes.append(
            ClassRemediation(
                class_name=c,
                rules=tuple(targets[c]),
                condensed_recall=recall,
                target_recall=target,
                shortfall=shortfall,
                current_ipc=ipc,
                extra_ipc=extra,
            )
        )
    return fixes
