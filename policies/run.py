"""The run policy: compression, bias, acceptance and budget rules plus the PAD knobs a reviewer may set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from policies._base import PolicyModel, conflict
from policies.bias import BiasPolicy
from policies.compression import CompressionPolicy
from policies.errors import PolicyViolation
from policies.results import MeasuredResults
from policies.rules import AcceptancePolicy, BudgetPolicy
from policies.verdict import RuleResult, Verdict

#: The newest ``policy_version`` this package reads. Bump it (and keep reading older ones) when the
#: meaning of a field changes, so that a policy stored with an old condensed set keeps its meaning.
SUPPORTED_POLICY_VERSION = 1

# Defaults by images per class: (from IPC, min_retention, max_seed_std, max_class_recall_drop). Anchored on
# the PAD paper's CIFAR-10 retention, 47.2/84.8 = 55.7% at IPC 1 and 77.0/84.8 = 90.8% at IPC 50, with
# headroom for data harder than CIFAR-10; IPC 10 and 500 are interpolated / extrapolated. Few images per
# class lose more accuracy, vary more across seeds and hit single classes harder, so the limits loosen.
_DEFAULTS_BY_IPC: tuple[tuple[int, float, float, float], ...] = (
    (1, 0.50, 0.03, 0.50),
    (10, 0.70, 0.02, 0.30),
    (50, 0.85, 0.015, 0.15),
    (500, 0.90, 0.015, 0.10),
)


class PadOverrides(PolicyModel):
    """PAD settings a reviewer may pin; ``null`` leaves the SDK's per-dataset default (DESIGN section 3)."""

    _what: ClassVar[str] = "PAD overrides"

    fiex: bool | None = Field(
        default=None, description="Filter information extraction (the difficulty scheduler)."
    )
    fiem: bool | None = Field(default=None, description="Filter information embedding (parameter selection).")
    parameter_selection_ratio: float | None = Field(
        default=None, ge=0, le=0.95, description="Share alpha of parameters left out of the matching loss."
    )
    selection_mode: Literal["depth", "error", "layer"] | None = Field(
        default=None,
        description="How parameters are selected: drop shallow ones, keep largest errors, by layer.",
    )
    hard_prune_ratio: float | None = Field(
        default=None,
        ge=0,
        le=0.9,
        description="Share of the hardest examples of each class removed before training.",
    )
    easy_prune_ratio: float | None = Field(
        default=None,
        ge=0,
        le=0.9,
        description="Share of the easiest examples of each class removed before training.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> PadOverrides:
        if self.fiem is False:
            if self.parameter_selection_ratio:
                raise conflict(
                    "parameter_selection_ratio",
                    "parameter_selection_ratio has no effect when fiem is false",
                    "null or 0, or set fiem: true",
                )
            if self.selection_mode is not None:
                raise conflict(
                    "selection_mode",
                    "selection_mode has no effect when fiem is false",
                    "null, or set fiem: true",
                )
        if self.total_prune_ratio >= 1:
            raise conflict(
                "easy_prune_ratio",
                f"hard_prune_ratio ({self.hard_prune_ratio}) + "
                f"easy_prune_ratio ({self.easy_prune_ratio}) must be below 1, or pruning removes "
                "every example",
                f"0 <= value < {1 - (self.hard_prune_ratio or 0):.6g}",
            )
        return self

    @property
    def total_prune_ratio(self) -> float:
        """Share of every class removed by static pruning (hard plus easy)."""
        return (self.hard_prune_ratio or 0.0) + (self.easy_prune_ratio or 0.0)


class RunPolicy(PolicyModel):
    """Everything a reviewer decides about one distillation run; stored with every condensed set."""

    _what: ClassVar[str] = "run policy"

    # Sub-policy defaults are shared instances; safe because every model is frozen.
    policy_version: int = Field(
        default=SUPPORTED_POLICY_VERSION,
        ge=1,
        le=SUPPORTED_POLICY_VERSION,
        description="Schema version of this file.",
    )
    name: str | None = Field(
        default=None, min_length=1, max_length=200, description="Short name shown in verdicts."
    )
    description: str | None = Field(default=None, description="Why these limits: for the next reviewer.")
    compression: CompressionPolicy
    bias: BiasPolicy = BiasPolicy()
    acceptance: AcceptancePolicy = AcceptancePolicy()
    budget: BudgetPolicy = BudgetPolicy()
    pad: PadOverrides | None = None

    @model_validator(mode="before")
    @classmethod
    def _version_first(cls, data: Any) -> Any:
        # A newer file may use keys this version does not know; report the version alone rather than a
        # wall of "unknown key" errors that would send the reader the wrong way.
        if isinstance(data, Mapping):
            version = data.get("policy_version")
            if (
                isinstance(version, int)
                and not isinstance(version, bool)
                and (version > SUPPORTED_POLICY_VERSION)
            ):
                raise conflict(
                    "policy_version",
                    f"policy_version {version} is newer than this pad-sdk reads "
                    f"({SUPPORTED_POLICY_VERSION}); upgrade pad-sdk to load it",
                    f"an integer from 1 to {SUPPORTED_POLICY_VERSION}",
                )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RunPolicy:
        keep = self.bias.min_pruning_keep_share
        if self.pad is not None and keep is not None and 1 - self.pad.total_prune_ratio < keep - 1e-9:
            raise conflict(
                "pad",
                f"pruning ratios remove {self.pad.total_prune_ratio:.0%} of every class, but "
                f"bias.min_pruning_keep_share requires keeping {keep:.0%}; lower the ratios or the share",
                f"hard_prune_ratio + easy_prune_ratio <= {1 - keep:.6g}",
            )
        return self

    @classmethod
    def default_for_ipc(cls, ipc: int, *, name: str | None = None) -> RunPolicy:
        """Sensible starting limits for ``ipc`` images per class (see ``_DEFAULTS_BY_IPC`` for the basis)."""
        if isinstance(ipc, bool) or not isinstance(ipc, int) or ipc < 1:
            raise ValueError(f"ipc must be a positive integer, got {ipc!r}")
        row = [r for r in _DEFAULTS_BY_IPC if r[0] <= ipc][-1]
        _, retention, std, drop = row
        return cls.validate_or_raise(
            {
                "name": name or f"default-ipc{ipc}",
                "compression": {"ipc": ipc},
                "acceptance": {"min_retention": retention, "max_seed_std": std},
                "bias": {"max_class_recall_drop": drop},
            }
        )

    def judge(self, results: MeasuredResults | Mapping[str, Any], strict: bool = False) -> Verdict:
        """Judge measured results; with ``strict=True`` a failed rule raises :class:`PolicyViolation`.

        The images per class used to size remediation is ``results.ipc``, else ``compression.ipc``.
        """
        measured = MeasuredResults.validate_or_raise(results)
        ipc = measured.ipc if measured.ipc is not None else self.compression.ipc
        rules: list[RuleResult] = list(self.acceptance.evaluate(measured))
        bias_rules, remediation = self.bias.evaluate(measured, ipc)
        rules += bias_rules
        rules += self.budget.evaluate(measured)
        verdict = Verdict.from_rules(rules, remediation, policy_name=self.name)
        if strict and not verdict.passed:
            raise PolicyViolation(verdict)
        return verdict
