"""Every range, type and cross-field check fails with the field path and the allowed values."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policies import (
    SUPPORTED_POLICY_VERSION,
    FieldIssue,
    MeasuredResults,
    PadOverrides,
    PolicyValidationError,
    RunPolicy,
    load_policy,
)

BASE: dict[str, Any] = {"compression": {"ipc": 10}}


def with_value(path: str, value: Any) -> dict[str, Any]:
    """BASE with ``value`` at dotted ``path`` (a compression field replaces the whole section)."""
    data = copy.deepcopy(BASE)
    section, _, field = path.rpartition(".")
    if section == "compression":
        data["compression"] = {field: value}
    elif section:
        data.setdefault(section, {})[field] = value
    else:
        data[field] = value
    return data


def only_issue(data: dict[str, Any]) -> FieldIssue:
    with pytest.raises(PolicyValidationError) as info:
        load_policy(data)
    assert len(info.value.issues) == 1, info.value
    return info.value.issues[0]


# (path, bad value, text the "allowed" description must contain)
RANGE_CASES = [
    ("policy_version", 0, "1"),
    ("name", "", "at least 1"),
    ("compression.ipc", 0, "1 <= value <= 100000"),
    ("compression.ipc", 100_001, "1 <= value <= 100000"),
    ("compression.fraction", 0.0, "0 < value < 1"),
    ("compression.fraction", 1.0, "0 < value < 1"),
    ("compression.byte_budget", 0, "1 <= value"),
    ("acceptance.min_retention", 0.0, "0 < value <= 1"),
    ("acceptance.min_retention", 1.01, "0 < value <= 1"),
    ("acceptance.max_seed_std", -0.01, "0 <= value <= 0.5"),
    ("acceptance.max_seed_std", 0.51, "0 <= value <= 0.5"),
    ("acceptance.min_accuracy", 1.2, "0 <= value <= 1"),
    ("acceptance.min_gain_over_random", -0.1, "0 <= value <= 1"),
    ("acceptance.warn_margin", 0.21, "0 <= value <= 0.2"),
    ("bias.max_class_recall_drop", 1.5, "0 <= value <= 1"),
    ("bias.max_class_recall_drop", -0.1, "0 <= value <= 1"),
    ("bias.min_class_recall", 1.01, "0 <= value <= 1"),
    ("bias.max_group_gap", -0.5, "0 <= value <= 1"),
    ("bias.min_pruning_keep_share", 1.2, "0 <= value <= 1"),
    ("bias.warn_margin", -0.01, "0 <= value <= 0.2"),
    ("budget.max_wall_time_s", 0, "0 < value"),
    ("budget.max_iterations", 0, "1 <= value"),
    ("budget.max_compute_cost", -1.0, "0 < value"),
    ("budget.currency", "usd", "^[A-Z]{3}$"),
    ("budget.warn_at", 0.49, "0.5 <= value <= 1"),
    ("budget.warn_at", 1.01, "0.5 <= value <= 1"),
    ("pad.parameter_selection_ratio", 0.96, "0 <= value <= 0.95"),
    ("pad.hard_prune_ratio", 0.91, "0 <= value <= 0.9"),
    ("pad.easy_prune_ratio", -0.1, "0 <= value <= 0.9"),
    ("pad.selection_mode", "deep", "'depth', 'error', 'layer'"),
]


@pytest.mark.parametrize(("path", "value", "allowed"), RANGE_CASES)
def test_out_of_range_names_field_and_allowed_range(path, value, allowed):
    issue = only_issue(with_value(path, value))
    assert issue.path == path
    assert allowed in (issue.allowed or "")
    assert repr(value) in issue.message


@pytest.mark.parametrize(("path", "value"), [
    ("compression.ipc", "10"),        # quoted number
    ("compression.ipc", 10.0),        # float where an integer is required
    ("compression.ipc", True),        # bool is not an integer here
    ("acceptance.min_retention", "0.8"),
    ("pad.fiex", "yes"),
    ("bias.group_attributes", "sex"),
    ("name", 42),
])
def test_wrong_types_are_rejected_not_coerced(path, value):
    data = with_value(path, value)
    if path == "bias.group_attributes":
        data["bias"]["max_group_gap"] = 0.1
    assert only_issue(data).path == path


def test_integers_are_accepted_for_numbers():
    policy = load_policy(with_value("acceptance.min_retention", 1))
    assert policy.acceptance.min_retention == 1.0


def test_unknown_keys_are_named_with_suggestion_and_allowed_keys():
    issue = only_issue({"compression": {"ipc": 10}, "acceptance": {"min_retension": 0.8}})
    assert issue.path == "acceptance.min_retension"
    assert "did you mean 'min_retention'" in issue.message
    assert "max_seed_std" in (issue.allowed or "")
    top = only_issue({"compression": {"ipc": 10}, "compresion": {}})
    assert top.path == "compresion"
    assert "compression" in (top.allowed or "")


def test_all_problems_are_reported_at_once():
    with pytest.raises(PolicyValidationError) as info:
        load_policy({"compression": {"ipc": 0}, "bias": {"max_class_recall_drop": 2}, "extra": 1})
    assert set(info.value.paths) == {"compression.ipc", "bias.max_class_recall_drop", "extra"}
    text = str(info.value)
    assert "3 problems" in text and "bias.max_class_recall_drop" in text


def test_missing_compression_is_named():
    issue = only_issue({})
    assert issue.path == "compression"
    assert "ipc, fraction, byte_budget" in (issue.allowed or "")


@pytest.mark.parametrize(("compression", "path"), [
    ({}, "compression.ipc"),
    ({"ipc": 10, "fraction": 0.1}, "compression.fraction"),
    ({"fraction": 0.1, "byte_budget": 1000}, "compression.byte_budget"),
    ({"ipc": 1, "fraction": 0.1, "byte_budget": 1000}, "compression.byte_budget"),
])
def test_exactly_one_compression_target(compression, path):
    issue = only_issue({"compression": compression})
    assert issue.path == path
    assert "exactly one of ipc, fraction or byte_budget" in issue.message


def test_explicit_nulls_count_as_unset():
    policy = load_policy({"compression": {"ipc": None, "fraction": 0.5, "byte_budget": None}})
    assert policy.compression.target == "fraction"


@pytest.mark.parametrize(("data", "path", "needle"), [
    ({"acceptance": {"max_seed_std": 0.01, "warn_margin": 0.01}}, "acceptance.warn_margin", "max_seed_std"),
    ({"acceptance": {"min_accuracy": 0.995, "warn_margin": 0.01}}, "acceptance.warn_margin", "min_accuracy"),
    ({"acceptance": {"min_gain_over_random": 0.999}}, "acceptance.warn_margin", "min_gain_over_random"),
    ({"bias": {"max_class_recall_drop": 0.01}}, "bias.warn_margin", "max_class_recall_drop"),
    ({"bias": {"max_group_gap": 0.005}}, "bias.warn_margin", "max_group_gap"),
    ({"bias": {"min_class_recall": 0.995}}, "bias.warn_margin", "min_class_recall"),
    ({"bias": {"min_pruning_keep_share": 1.0}}, "bias.warn_margin", "min_pruning_keep_share"),
    ({"bias": {"group_attributes": ["sex"]}}, "bias.group_attributes", "max_group_gap"),
    ({"pad": {"fiem": False, "parameter_selection_ratio": 0.5}}, "pad.parameter_selection_ratio", "fiem"),
    ({"pad": {"fiem": False, "selection_mode": "error"}}, "pad.selection_mode", "fiem"),
    ({"pad": {"hard_prune_ratio": 0.5, "easy_prune_ratio": 0.5}, "bias": {"min_pruning_keep_share": None}},
     "pad.easy_prune_ratio", "below 1"),
    ({"pad": {"hard_prune_ratio": 0.3, "easy_prune_ratio": 0.3}}, "pad", "min_pruning_keep_share"),
])
def test_cross_field_checks_name_the_field_and_the_fix(data, path, needle):
    issue = only_issue({"compression": {"ipc": 10}, **data})
    assert issue.path == path
    assert needle in issue.message
    assert issue.allowed


def test_margins_at_the_edge_are_consistent():
    # A zero margin is always consistent; a margin just below a max limit, or up to 1 - min limit, too.
    load_policy({"compression": {"ipc": 1}, "acceptance": {"max_seed_std": 0.01, "warn_margin": 0.0}})
    load_policy({"compression": {"ipc": 1}, "bias": {"max_class_recall_drop": 0.02, "warn_margin": 0.0199}})
    load_policy({"compression": {"ipc": 1}, "bias": {"min_class_recall": 0.99, "warn_margin": 0.01}})
    overrides = PadOverrides(hard_prune_ratio=0.2, easy_prune_ratio=0.3)
    assert overrides.total_prune_ratio == pytest.approx(0.5)
    load_policy({"compression": {"ipc": 1}, "pad": {"hard_prune_ratio": 0.2, "easy_prune_ratio": 0.3}})


def test_newer_policy_version_is_a_clear_error_alone():
    data = {"policy_version": SUPPORTED_POLICY_VERSION + 1, "compression": {"ipc": 10}, "future_key": 1}
    issue = only_issue(data)
    assert issue.path == "policy_version"
    assert "newer than this pad-sdk reads" in issue.message and "upgrade" in issue.message


def test_models_are_frozen():
    policy = RunPolicy.default_for_ipc(10)
    with pytest.raises(Exception, match="frozen"):
        policy.acceptance.min_retention = 0.1  # type: ignore[misc]


def test_source_is_named_in_the_error():
    with pytest.raises(PolicyValidationError, match="in <mapping>"):
        load_policy({"compression": {"ipc": 0}})


class TestMeasuredResults:
    def test_percentages_are_rejected_with_a_hint(self):
        with pytest.raises(PolicyValidationError) as info:
            MeasuredResults.validate_or_raise({"full_accuracy": 91.2})
        issue = info.value.issues[0]
        assert issue.path == "full_accuracy"
        assert "divide percentages by 100" in issue.message
        assert issue.allowed == "a number, 0 <= value <= 1"

    def test_mapping_values_are_checked_with_key_in_path(self):
        with pytest.raises(PolicyValidationError) as info:
            MeasuredResults.validate_or_raise({"per_class_recall_condensed": {"cat": 1.5}})
        assert info.value.issues[0].path == "per_class_recall_condensed[cat]"
        with pytest.raises(PolicyValidationError) as info:
            MeasuredResults.validate_or_raise({"group_accuracy": {"sex": {"f": -0.1}}})
        assert info.value.issues[0].path == "group_accuracy[sex][f]"

    def test_integer_labels_become_names(self):
        m = MeasuredResults(per_class_recall_full={0: 0.5, 1: 0.7}, class_names=[0, 1])  # type: ignore[arg-type]
        assert m.per_class_recall_full == {"0": 0.5, "1": 0.7}
        assert m.class_names == ("0", "1")

    def test_unknown_class_and_duplicate_names(self):
        with pytest.raises(PolicyValidationError) as info:
            MeasuredResults.validate_or_raise({"class_names": ["a"], "per_class_recall_full": {"b": 0.5}})
        assert info.value.issues[0].path == "per_class_recall_full"
        with pytest.raises(PolicyValidationError) as info:
            MeasuredResults.validate_or_raise({"class_names": ["a", "a"]})
        assert info.value.issues[0].path == "class_names"

    def test_unknown_keys_and_negative_budget_values(self):
        with pytest.raises(PolicyValidationError) as info:
            MeasuredResults.validate_or_raise({"wall_time": 3, "iterations": -1})
        assert set(info.value.paths) == {"wall_time", "iterations"}

    def test_mean_and_std_derived_from_seeds(self):
        m = MeasuredResults(condensed_accuracies=(0.70, 0.72, 0.74))
        assert m.accuracy_mean == pytest.approx(0.72)
        assert m.accuracy_std == pytest.approx((0.0008 / 3) ** 0.5)  # population std, as np.std
        explicit = MeasuredResults(condensed_accuracies=(0.70, 0.72), condensed_accuracy_mean=0.5,
                                   condensed_accuracy_std=0.1)
        assert (explicit.accuracy_mean, explicit.accuracy_std) == (0.5, 0.1)
        assert MeasuredResults(condensed_accuracies=(0.7,)).accuracy_std is None
