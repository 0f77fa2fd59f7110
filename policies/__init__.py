"""Compression, bias, acceptance and budget rules as validated, frozen objects.

A :class:`RunPolicy` is written in YAML or JSON by the people who approve a data reduction, stored with
every condensed set, and judged against measured results::

    policy = load_policy("policy.yaml")
    res = policy.compression.resolve(class_counts, bytes_per_image)
    verdict = policy.judge({"full_accuracy": 0.848, "condensed_accuracy_mean": 0.77, ...})

This package depends on pydantic and PyYAML only; it never imports torch or ``pad_sdk``.
"""

from policies.bias import BiasPolicy
from policies.compression import CompressionPolicy, CompressionResolution
from policies.errors import (
    CompressionInfeasibleError,
    FieldIssue,
    PolicyError,
    PolicyFileError,
    PolicyValidationError,
    PolicyViolation,
)
from policies.io import dump_policy, load_policy, parse_policy, policy_json_schema, write_policy_schema
from policies.results import MeasuredResults
from policies.rules import AcceptancePolicy, BudgetPolicy
from policies.run import SUPPORTED_POLICY_VERSION, PadOverrides, RunPolicy
from policies.verdict import ClassRemediation, RuleResult, Status, Verdict

__all__ = [
    "SUPPORTED_POLICY_VERSION",
    "AcceptancePolicy",
    "BiasPolicy",
    "BudgetPolicy",
    "ClassRemediation",
    "CompressionInfeasibleError",
    "CompressionPolicy",
    "CompressionResolution",
    "FieldIssue",
    "MeasuredResults",
    "PadOverrides",
    "PolicyError",
    "PolicyFileError",
    "PolicyValidationError",
    "PolicyViolation",
    "RuleResult",
    "RunPolicy",
    "Status",
    "Verdict",
    "dump_policy",
    "load_policy",
    "parse_policy",
    "policy_json_schema",
    "write_policy_schema",
]
