"""Verdicts at, just above and just below every limit, plus not-measured, strict mode and remediation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from policies import MeasuredResults, PolicyViolation, RunPolicy, Status, Verdict, load_policy

D = 1e-4  # "just above / just below": far larger than float noise, far smaller than any margin


def policy(**sections: Any) -> RunPolicy:
    # Every other rule off or lenient so each test sees only the rule it is about.
    data: dict[str, Any] = {
        "compression": {"ipc": 10},
        "acceptance": {"min_retention": 0.01, "max_seed_std": None, "warn_margin": 0.0},
        "bias": {"max_class_recall_drop": None, "min_pruning_keep_share": None},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return load_policy(data)


# rule id -> (policy sections, limit, margin, "min" or "max", results for a measured value x)
RULES: dict[str, tuple[dict[str, Any], float, float, str, Callable[[float], dict[str, Any]]]] = {
    "acceptance.min_retention": (
        {"acceptance": {"min_retention": 0.8, "warn_margin": 0.02}}, 0.8, 0.02, "min",
        lambda x: {"full_accuracy": 0.5, "condensed_accuracy_mean": 0.5 * x},
    ),
    "acceptance.max_seed_std": (
        {"acceptance": {"max_seed_std": 0.02, "warn_margin": 0.005}}, 0.02, 0.005, "max",
        lambda x: {"condensed_accuracy_std": x},
    ),
    "acceptance.min_accuracy": (
        {"acceptance": {"min_accuracy": 0.6, "warn_margin": 0.01}}, 0.6, 0.01, "min",
        lambda x: {"condensed_accuracy_mean": x},
    ),
    "acceptance.min_gain_over_random": (
        {"acceptance": {"min_gain_over_random": 0.05, "warn_margin": 0.01}}, 0.05, 0.01, "min",
        lambda x: {"condensed_accuracy_mean": 0.25 + x, "random_accuracy_mean": 0.25},
    ),
    "bias.max_class_recall_drop": (
        {"bias": {"max_class_recall_drop": 0.1, "warn_margin": 0.02}}, 0.1, 0.02, "max",
        lambda x: {"per_class_recall_full": {"a": 0.9, "b": 0.9},
                   "per_class_recall_condensed": {"a": 0.9 - x, "b": 0.9}},
    ),
    "bias.min_class_recall": (
        {"bias": {"min_class_recall": 0.5, "warn_margin": 0.02}}, 0.5, 0.02, "min",
        lambda x: {"per_class_recall_condensed": {"a": x, "b": 0.99}},
    ),
    "bias.max_group_gap": (
        {"bias": {"max_group_gap": 0.05, "warn_margin": 0.01}}, 0.05, 0.01, "max",
        lambda x: {"group_accuracy": {"sex": {"f": 0.8 - x, "m": 0.8}}},
    ),
    "bias.min_pruning_keep_share": (
        {"bias": {"min_pruning_keep_share": 0.8, "warn_margin": 0.05}}, 0.8, 0.05, "min",
        lambda x: {"pruning_kept_share": {"a": x, "b": 1.0}},
    ),
    "budget.max_wall_time_s": (
        {"budget": {"max_wall_time_s": 3600, "warn_at": 0.9}}, 3600, 360, "max",
        lambda x: {"wall_time_s": x},
    ),
    "budget.max_iterations": (
        {"budget": {"max_iterations": 1000, "warn_at": 0.8}}, 1000, 200, "max",
        lambda x: {"iterations": round(x)},
    ),
    "budget.max_compute_cost": (
        {"budget": {"max_compute_cost": 100.0, "warn_at": 0.5}}, 100.0, 50.0, "max",
        lambda x: {"compute_cost": x},
    ),
}


def grade(rule: str, x: float, *, margin: float | None = None) -> Status:
    sections, _, _, _, results = RULES[rule]
    if margin is not None:  # same rule, different warn band
        sections = {k: {**v, **_margin_override(k, margin)} for k, v in sections.items()}
    verdict = policy(**sections).judge(results(x))
    result = verdict.rule(rule)
    assert result.limit is not None and result.message.endswith(".")
    return result.status


def _margin_override(section: str, margin: float) -> dict[str, Any]:
    return {"warn_at": 1.0} if section == "budget" else {"warn_margin": margin}


def step(rule: str) -> float:
    # Iterations are integers: "just above" is one more.
    return 1.0 if rule == "budget.max_iterations" else D * max(1.0, RULES[rule][1])


@pytest.mark.parametrize("rule", sorted(RULES))
def test_limit_boundaries(rule):
    _, limit, margin, kind, _ = RULES[rule]
    d = step(rule)
    if kind == "min":
        assert grade(rule, limit - d) is Status.FAIL     # just below an "at least" limit
        assert grade(rule, limit) is Status.WARN         # at the limit: met, but inside the warn band
        assert grade(rule, limit + d) is Status.WARN     # just above: still inside the band
        assert grade(rule, limit + margin - d) is Status.WARN
        assert grade(rule, limit + margin) is Status.PASS  # the band's far edge passes
    else:
        assert grade(rule, limit + d) is Status.FAIL     # just above an "at most" limit
        assert grade(rule, limit) is Status.WARN
        assert grade(rule, limit - d) is Status.WARN
        assert grade(rule, limit - margin + d) is Status.WARN
        assert grade(rule, limit - margin) is Status.PASS


@pytest.mark.parametrize("rule", sorted(RULES))
def test_without_a_warn_band_the_limit_itself_passes(rule):
    _, limit, _, kind, _ = RULES[rule]
    d = step(rule)
    outside = limit - d if kind == "min" else limit + d
    inside = limit + d if kind == "min" else limit - d
    assert grade(rule, limit, margin=0.0) is Status.PASS
    assert grade(rule, inside, margin=0.0) is Status.PASS
    assert grade(rule, outside, margin=0.0) is Status.FAIL


def test_float_noise_at_the_limit_does_not_fail():
    # 0.56 / 0.8 == 0.7000000000000001; 0.7 * 0.8 / 0.8 may land just under 0.7.
    p = policy(acceptance={"min_retention": 0.7})
    for full, cond in [(0.8, 0.56), (0.3, 0.21), (0.9, 0.63)]:
        assert p.judge({"full_accuracy": full, "condensed_accuracy_mean": cond}).status is Status.PASS


@pytest.mark.parametrize("rule", sorted(RULES))
def test_missing_measurement_warns_not_passes(rule):
    sections = RULES[rule][0]
    result = policy(**sections).judge({}).rule(rule)
    assert result.status is Status.WARN
    assert result.measured is None
    assert result.message.startswith("Not measured")


def test_verdict_status_is_the_most_severe_rule():
    p = RunPolicy.default_for_ipc(10)
    assert p.judge({}).status is Status.WARN
    ok = {"full_accuracy": 0.85, "condensed_accuracy_mean": 0.80, "condensed_accuracy_std": 0.003,
          "per_class_recall_full": {"a": 0.9}, "per_class_recall_condensed": {"a": 0.85},
          "pruning_kept_share": {"a": 0.9}, "wall_time_s": 60.0}
    verdict = p.judge(ok)
    assert verdict.status is Status.PASS and verdict.passed and not verdict.failures
    bad = p.judge({**ok, "condensed_accuracy_mean": 0.3})
    assert bad.status is Status.FAIL and not bad.passed
    assert [r.rule for r in bad.failures] == ["acceptance.min_retention"]


def test_strict_raises_a_violation_carrying_the_verdict():
    p = policy(acceptance={"min_accuracy": 0.9})
    with pytest.raises(PolicyViolation) as info:
        p.judge({"condensed_accuracy_mean": 0.5}, strict=True)
    assert isinstance(info.value.verdict, Verdict)
    assert [r.rule for r in info.value.failures] == ["acceptance.min_accuracy"]
    assert "acceptance.min_accuracy" in str(info.value)
    # Warnings (here: not measured) never raise.
    assert p.judge({}, strict=True).status is Status.WARN


def test_results_object_and_mapping_give_the_same_verdict():
    p = RunPolicy.default_for_ipc(1)
    data = {"full_accuracy": 0.848, "condensed_accuracies": [0.47, 0.475, 0.471]}
    assert p.judge(data) == p.judge(MeasuredResults.model_validate(data))


def test_retention_uses_the_seed_list_when_no_mean_is_given():
    p = policy(acceptance={"min_retention": 0.5, "max_seed_std": 0.02})
    verdict = p.judge({"full_accuracy": 0.8, "condensed_accuracies": [0.4, 0.42, 0.44]})
    assert verdict.rule("acceptance.min_retention").measured == pytest.approx(0.525)
    assert verdict.rule("acceptance.max_seed_std").measured == pytest.approx(0.01633, abs=1e-5)
    assert "over 3 seeds" in verdict.rule("acceptance.max_seed_std").message


class TestPerClassRules:
    def test_offenders_worst_subject_and_sentence(self):
        p = policy(bias={"max_class_recall_drop": 0.05, "warn_margin": 0.01})
        full = {"cat": 0.80, "dog": 0.80, "ship": 0.90, "car": 0.90}
        cond = {"cat": 0.70, "dog": 0.76, "ship": 0.855, "car": 0.90}
        r = p.judge({"per_class_recall_full": full, "per_class_recall_condensed": cond,
                     "class_names": ["car", "cat", "dog", "ship"]}).rule("bias.max_class_recall_drop")
        assert r.status is Status.FAIL
        assert r.subject == "cat" and r.measured == pytest.approx(0.10)
        # dog's 4-point drop is outside the 4-5 point warn band (pass); ship's 4.5 is inside it (warn).
        assert r.offenders == ("cat", "ship")
        assert "1 of 4 classes" in r.message and "'cat' (10.0 points)" in r.message

    def test_class_missing_on_one_side_warns(self):
        p = policy(bias={"max_class_recall_drop": 0.2})
        r = p.judge({"per_class_recall_full": {"a": 0.9, "b": 0.9},
                     "per_class_recall_condensed": {"a": 0.9}}).rule("bias.max_class_recall_drop")
        assert r.status is Status.WARN and r.offenders == ("b",)

    def test_group_gap_per_attribute_and_named_missing_attribute(self):
        p = policy(bias={"max_group_gap": 0.05, "group_attributes": ["sex", "age"]})
        v = p.judge({"group_accuracy": {"sex": {"f": 0.70, "m": 0.80, "x": 0.78}}})
        sex, age = [r for r in v.rules if r.rule == "bias.max_group_gap"]
        assert sex.subject == "sex" and sex.status is Status.FAIL
        assert "'m' 80.0% vs 'f' 70.0%" in sex.message and sex.offenders == ("f", "m")
        assert age.subject == "age" and age.status is Status.WARN and age.measured is None

    def test_group_gap_without_named_attributes_checks_all_measured(self):
        p = policy(bias={"max_group_gap": 0.05})
        v = p.judge({"group_accuracy": {"sex": {"f": 0.8, "m": 0.8}, "site": {"a": 0.6, "b": 0.9}}})
        assert [(r.subject, r.status) for r in v.rules if r.rule == "bias.max_group_gap"] == [
            ("sex", Status.PASS), ("site", Status.FAIL)]

    def test_pruning_failure_points_at_the_prune_ratios(self):
        p = policy(bias={"min_pruning_keep_share": 0.8})
        v = p.judge({"pruning_kept_share": {"minority": 0.5, "majority": 0.9}})
        r = v.rule("bias.min_pruning_keep_share")
        assert r.status is Status.FAIL and r.offenders == ("minority",)
        assert "pad.hard_prune_ratio" in r.message


class TestRemediation:
    def test_formula_and_targets(self):
        # drop rule: cat must reach 0.80 - 0.05 = 0.75 from 0.60: extra = ceil(10 * 0.15 / 0.60) = 3.
        # dog fails both (drop 15 points, recall 5%); the higher target wins: 0.50 from 0.05,
        # extra = ceil(10 * 0.45 / max(0.05, 0.1)) = 45.
        p = policy(bias={"max_class_recall_drop": 0.05, "min_class_recall": 0.5})
        v = p.judge({"per_class_recall_full": {"cat": 0.80, "dog": 0.20, "car": 0.95},
                     "per_class_recall_condensed": {"cat": 0.60, "dog": 0.05, "car": 0.95}})
        fixes = {f.class_name: f for f in v.remediation}
        assert set(fixes) == {"cat", "dog"}
        assert fixes["cat"].target_recall == pytest.approx(0.75) and fixes["cat"].extra_ipc == 3
        assert fixes["cat"].rules == ("bias.max_class_recall_drop",)
        assert fixes["dog"].target_recall == pytest.approx(0.5) and fixes["dog"].extra_ipc == 45
        assert fixes["dog"].rules == ("bias.max_class_recall_drop", "bias.min_class_recall")
        assert fixes["dog"].suggested_ipc == 55
        assert "remediation" in v.to_text() and "'dog'" in v.to_text()

    def test_at_least_one_image_and_measured_ipc_wins(self):
        p = policy(bias={"min_class_recall": 0.5, "warn_margin": 0.0})
        v = p.judge({"per_class_recall_condensed": {"a": 0.4999}, "ipc": 50})
        (fix,) = v.remediation
        assert fix.current_ipc == 50 and fix.extra_ipc == 1  # 50 * 0.0001 / 0.4999 rounds up to 1

    def test_unknown_ipc_suggests_one_more(self):
        p = load_policy({"compression": {"fraction": 0.01}, "bias": {"min_class_recall": 0.5}})
        (fix,) = p.judge({"per_class_recall_condensed": {"a": 0.2}}).remediation
        assert fix.current_ipc is None and fix.extra_ipc == 1 and fix.suggested_ipc is None

    def test_warnings_offer_no_remediation(self):
        p = policy(bias={"min_class_recall": 0.5, "warn_margin": 0.05})
        v = p.judge({"per_class_recall_condensed": {"a": 0.52}})
        assert v.status is Status.WARN and v.remediation == ()


def test_defaults_per_ipc_loosen_for_fewer_images():
    r1, r10, r50, r500 = (RunPolicy.default_for_ipc(i) for i in (1, 10, 50, 500))
    retention = [p.acceptance.min_retention for p in (r1, r10, r50, r500)]
    assert retention == sorted(retention) and retention[0] < 0.557 < retention[2] < 0.908
    assert r1.bias.max_class_recall_drop > r50.bias.max_class_recall_drop  # type: ignore[operator]
    assert RunPolicy.default_for_ipc(7).acceptance == r1.acceptance
    assert r10.compression.ipc == 10 and r10.name == "default-ipc10"
    # PAD's own CIFAR-10 numbers pass the defaults: 47.2/84.8 at IPC 1, 77.0/84.8 at IPC 50.
    assert r1.judge({"full_accuracy": 0.848, "condensed_accuracy_mean": 0.472}).rule(
        "acceptance.min_retention").status is Status.PASS
    assert r50.judge({"full_accuracy": 0.848, "condensed_accuracy_mean": 0.770}).rule(
        "acceptance.min_retention").status is Status.PASS
    with pytest.raises(ValueError, match="positive integer"):
        RunPolicy.default_for_ipc(0)


def test_a_compute_cost_in_another_currency_is_not_judged_against_the_budget():
    budget = policy(budget={"max_compute_cost": 1.0, "currency": "EUR"})
    same = budget.judge({"compute_cost": 2.0, "compute_currency": "EUR"}).rule("budget.max_compute_cost")
    assert same.status is Status.FAIL and same.measured == 2.0
    other = budget.judge({"compute_cost": 0.5, "compute_currency": "USD"}).rule("budget.max_compute_cost")
    assert other.status is Status.WARN and other.measured is None
    assert "in EUR" in other.message and "priced it in USD" in other.message
    unstated = budget.judge({"compute_cost": 0.5}).rule("budget.max_compute_cost")  # read as the budget's own
    assert unstated.status is Status.PASS and unstated.measured == 0.5
