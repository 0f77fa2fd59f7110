"""Acceptance and budget policies: is the condensed set good enough, and did the run stay within limits."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from policies._base import PolicyModel, conflict, pct, pts
from policies._checks import not_measured, single
from policies.results import MeasuredResults
from policies.verdict import RuleResult


class AcceptancePolicy(PolicyModel):
    """Limits on accuracy: retention against the full-data reference, spread across seeds, absolutes.

    Retention is ``condensed accuracy / full-data accuracy`` (PAD, CIFAR-10: 47.2 / 84.8 = 55.7% at IPC 1,
    77.0 / 84.8 = 90.8% at IPC 50). ``warn_margin`` is one absolute band for every rule here (0.01 = 1
    point); see :mod:`policies.verdict` for the scheme.
    """

    _what: ClassVar[str] = "acceptance policy"

    min_retention: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Least condensed accuracy as a fraction of the full-data accuracy.",
    )
    max_seed_std: float | None = Field(
        default=0.02,
        ge=0,
        le=0.5,
        description="Largest standard deviation of accuracy across evaluation seeds.",
    )
    min_accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Least absolute mean accuracy of the condensed-set model."
    )
    min_gain_over_random: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Least accuracy gain over a random real subset of the same size.",
    )
    min_gain_over_best_subset: float | None = Field(
        default=None,
        ge=-1,
        le=1,
        description="Least validation-accuracy gain over the best real subset of the same size (herding, "
        "k-center, random); 0: the condensed set must be at least as good as a subset would be.",
    )
    warn_margin: float = Field(
        default=0.01,
        ge=0,
        le=0.2,
        description="Warn when a value is this close (absolute) to a limit it meets.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> AcceptancePolicy:
        m = self.warn_margin
        if self.max_seed_std is not None and m > 0 and m >= self.max_seed_std:
            raise conflict(
                "warn_margin",
                f"warn_margin ({m}) must be smaller than max_seed_std "
                f"({self.max_seed_std}), or every spread would warn",
                f"0 <= value < {self.max_seed_std}, or raise max_seed_std",
            )
        for name in ("min_accuracy", "min_gain_over_random"):
            limit = getattr(self, name)
            if limit is not None and limit + m > 1:
                raise conflict(
                    "warn_margin",
                    f"{name} ({limit}) plus warn_margin ({m}) exceeds 1, so the rule could never pass",
                    f"0 <= value <= {1 - limit:.6g}",
                )
        return self

    def evaluate(self, m: MeasuredResults) -> list[RuleResult]:
        """One result per rule that is switched on."""
        rules = [self._retention(m)]
        if self.max_seed_std is not None:
            rules.append(self._spread(m, self.max_seed_std))
        if self.min_accuracy is not None:
            rule, limit = "acceptance.min_accuracy", self.min_accuracy
            mean = m.accuracy_mean
            rules.append(
                not_measured(rule, limit, "the condensed-set accuracy")
                if mean is None
                else single(
                    rule,
                    mean,
                    limit,
                    self.warn_margin,
                    at_least=True,
                    fmt=pct,
                    quantity="Mean accuracy of the condensed-set model",
                )
            )
        if self.min_gain_over_random is not None:
            rules.append(self._gain(m, self.min_gain_over_random))
        if self.min_gain_over_best_subset is not None:
            rules.append(self._subset_gain(m, self.min_gain_over_best_subset))
        return rules

    def _retention(self, m: MeasuredResults) -> RuleResult:
        rule, limit = "acceptance.min_retention", self.min_retention
        mean, full = m.accuracy_mean, m.full_accuracy
        if mean is None or not full:
            missing = "the condensed-set accuracy" if mean is None else "a non-zero full-data accuracy"
            return not_measured(rule, limit, missing)
        quantity = f"Accuracy retained against the full-data reference ({pct(mean)} of {pct(full)})"
        return single(rule, mean / full, limit, self.warn_margin, at_least=True, quantity=quantity, fmt=pct)

    def _spread(self, m: MeasuredResults, limit: float) -> RuleResult:
        rule = "acceptance.max_seed_std"
        std = m.accuracy_std
        if std is None:
            return not_measured(rule, limit, "the accuracy spread across two or more seeds")
        seeds = f" over {len(m.condensed_accuracies)} seeds" if m.condensed_accuracies else ""
        return single(
            rule,
            std,
            limit,
            self.warn_margin,
            at_least=False,
            fmt=pts,
            quantity=f"Standard deviation of accuracy{seeds}",
        )

    def _gain(self, m: MeasuredResults, limit: float) -> RuleResult:
        rule = "acceptance.min_gain_over_random"
        mean, rand = m.accuracy_mean, m.random_accuracy_mean
        if mean is None or rand is None:
            return not_measured(rule, limit, "the condensed-set and random-subset accuracy")
        quantity = f"Gain over a random subset of the same size ({pct(mean)} vs {pct(rand)})"
        return single(rule, mean - rand, limit, self.warn_margin, at_least=True, quantity=quantity, fmt=pts)


    def _subset_gain(self, m: MeasuredResults, limit: float) -> RuleResult:
        rule = "acceptance.min_gain_over_best_subset"
        mean, best = m.validation_accuracy, m.best_subset_validation_accuracy
        if mean is None or best is None:
            return not_measured(rule, limit, "the validation accuracy of the condensed set and of real subsets")
        quantity = (f"Validation-accuracy gain over the best real subset of the same size, {m.best_subset or 'subset'}"
                    f" ({pct(mean)} vs {pct(best)})")
        return single(rule, mean - best, limit, self.warn_margin, at_least=True, quantity=quantity, fmt=pts)


class BudgetPolicy(PolicyModel):
    """Limits on what one run may spend; each is off when ``null``.

    Budgets warn when more than ``warn_at`` of a limit was used (0.9: above 90%); ``warn_at: 1`` turns the
    warning off. The runtime may also stop a run at these limits; judging checks what was measured.
    """

    _what: ClassVar[str] = "budget policy"

    max_wall_time_s: float | None = Field(
        default=None, gt=0, description="Longest wall-clock time of the run."
    )
    max_iterations: int | None = Field(default=None, ge=1, description="Most distillation iterations.")
    max_compute_cost: float | None = Field(default=None, gt=0, description="Most compute spend, in currency.")
    currency: str = Field(
        default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of max_compute_cost."
    )
    warn_at: float = Field(
        default=0.9, ge=0.5, le=1, description="Warn when more than this share of a limit is used."
    )

    def evaluate(self, m: MeasuredResults) -> list[RuleResult]:
        """One result per limit that is set."""
        checks = (
            (
                "budget.max_wall_time_s",
                self.max_wall_time_s,
                m.wall_time_s,
                "Wall time",
                "wall time",
                lambda v: f"{v:,.0f} s",
            ),
            (
                "budget.max_iterations",
                self.max_iterations,
                m.iterations,
                "Iterations",
                "the iteration count",
                lambda v: f"{v:,.0f}",
            ),
            (
                "budget.max_compute_cost",
                self.max_compute_cost,
                m.compute_cost,
                "Compute cost",
                "the compute cost",
                lambda v: f"{v:,.2f} {self.currency}",
            ),
        )
        rules = []
        for rule, limit, measured, quantity, missing, fmt in checks:
            if limit is None:
                continue
            if measured is None:
                rules.append(not_measured(rule, limit, missing))
                continue
            if rule == "budget.max_compute_cost" and m.compute_currency not in (None, self.currency):
                missing = f"the compute cost in {self.currency} (the run priced it in {m.compute_currency})"
                rules.append(not_measured(rule, limit, missing))
                continue
            margin = limit * (1 - self.warn_at)
            rules.append(
                single(
                    rule,
                    measured,
                    limit,
                    margin,
                    at_least=False,
                    quantity=quantity,
                    fmt=fmt,
                    warn_note=f"above {self.warn_at:.0%} of it",
                )
            )
        return rules
