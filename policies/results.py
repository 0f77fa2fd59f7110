"""Measured results: what a run reports and a policy judges. Plain numbers only (no torch, no numpy)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from policies._base import PolicyModel, conflict


def _fraction(value: float) -> float:
    # Accuracies and recalls as percentages (91.2) are the most likely mistake; say so in the error.
    if not 0.0 <= value <= 1.0:
        raise PydanticCustomError(
            "fraction_range",
            "accuracies, recalls and shares are fractions in [0, 1] (0.912 means 91.2%), got {value}; "
            "divide percentages by 100",
            {"value": value, "allowed": "a number, 0 <= value <= 1"},
        )
    return value


Fraction = Annotated[float, AfterValidator(_fraction)]


def _str_keys(value: Any) -> Any:
    # Class labels are often ints (0..9) in code and in YAML; names are strings everywhere else.
    if isinstance(value, Mapping):
        return {str(k): _str_keys(v) for k, v in value.items()}
    return value


class MeasuredResults(PolicyModel):
    """The numbers a run measured, all optional: a rule whose number is missing warns "not measured".

    Accuracies, recalls and shares are fractions in [0, 1]. ``condensed_accuracy_mean`` and
    ``condensed_accuracy_std`` take precedence over ``condensed_accuracies`` (one accuracy per evaluation
    seed); when only the per-seed list is given, the mean and the population standard deviation (as the
    PAD/DATM evaluation code reports, ``np.std``) are derived from it. Mapping keys are class names (or
    group values); integer labels are turned into strings.
    """

    _what: ClassVar[str] = "measured results"
    # Results arrive from code and JSON, where 3 means 3.0 and tuples arrive as lists; keep the range
    # checks but allow those harmless conversions (unlike policy files, which are written by hand).
    model_config = ConfigDict(strict=False)

    full_accuracy: Fraction | None = None
    condensed_accuracy_mean: Fraction | None = None
    condensed_accuracy_std: Fraction | None = None
    condensed_accuracies: tuple[Fraction, ...] | None = Field(default=None, min_length=1)
    random_accuracy_mean: Fraction | None = None
    # on the validation split (carved from the training data): the condensed set and the best real subset of
    # the same size (herding, k-center or random), and which subset that was
    validation_accuracy: Fraction | None = None
    best_subset_validation_accuracy: Fraction | None = None
    best_subset: str | None = None
    per_class_recall_full: dict[str, Fraction] | None = None
    per_class_recall_condensed: dict[str, Fraction] | None = None
    class_names: tuple[str, ...] | None = None
    group_accuracy: dict[str, dict[str, Fraction]] | None = None
    pruning_kept_share: dict[str, Fraction] | None = None
    wall_time_s: float | None = Field(default=None, ge=0)
    iterations: int | None = Field(default=None, ge=0)
    compute_cost: float | None = Field(default=None, ge=0)
    compute_currency: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="ISO 4217 code of compute_cost (None: the budget's)"
    )
    ipc: int | None = Field(default=None, ge=1)

    @field_validator(
        "per_class_recall_full",
        "per_class_recall_condensed",
        "group_accuracy",
        "pruning_kept_share",
        mode="before",
    )
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        return _str_keys(value)

    @field_validator("class_names", mode="before")
    @classmethod
    def _names_as_text(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(str(v) for v in value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MeasuredResults:
        names = self.class_names
        if names is not None and len(set(names)) != len(names):
            raise conflict("class_names", "class names must be unique", "a list of distinct names")
        for field in ("per_class_recall_full", "per_class_recall_condensed"):
            recalls = getattr(self, field)
            if names is not None and recalls is not None and not set(recalls) <= set(names):
                unknown = sorted(set(recalls) - set(names))
                raise conflict(field, f"classes {unknown} are not in class_names", ", ".join(names))
        return self

    @property
    def accuracy_mean(self) -> float | None:
        """Mean condensed-set accuracy over seeds: the explicit mean, else derived from the per-seed list."""
        if self.condensed_accuracy_mean is not None:
            return self.condensed_accuracy_mean
        if self.condensed_accuracies:
            return statistics.fmean(self.condensed_accuracies)
        return None

    @property
    def accuracy_std(self) -> float | None:
        """Spread across seeds: the explicit std, else the population std of the per-seed list (2+ seeds)."""
        if self.condensed_accuracy_std is not None:
            return self.condensed_accuracy_std
        if self.condensed_accuracies and len(self.condensed_accuracies) >= 2:
            return statistics.pstdev(self.condensed_accuracies)
        return None

    def ordered_classes(self, names: Mapping[str, Any]) -> list[str]:
        """Keys of ``names`` in ``class_names`` order when given (reports list classes as the data does)."""
        if self.class_names is None:
            return list(names)
        order = {n: i for i, n in enumerate(self.class_names)}
        return sorted(names, key=lambda n: order.get(n, len(order)))
