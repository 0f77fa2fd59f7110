"""Files: YAML/JSON loading errors, exact round trips, example files, and the committed JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from policies import (
    PolicyFileError,
    PolicyValidationError,
    RunPolicy,
    dump_policy,
    load_policy,
    policy_json_schema,
    write_policy_schema,
)
from policies.io import SCHEMA_PATH, parse_policy, schema_text

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "policies"
EXAMPLE_FILES = ["default.yaml", "strict-bias.yaml", "byte-budget.yaml"]


def constructed_policies() -> list[RunPolicy]:
    """Policies that stress the round trip: every section set, awkward floats, unicode, long text."""
    full: dict[str, Any] = {
        "name": "all-fields ✓",
        "description": "Line one.\nLine two: with 'quotes', \"double\", # not a comment, and: colons",
        "compression": {"fraction": 0.1 + 0.2},  # 0.30000000000000004 must survive
        "acceptance": {"min_retention": 1, "max_seed_std": 0.0123456789, "min_accuracy": 1e-3,
                       "min_gain_over_random": 0.05, "warn_margin": 0.0},
        "bias": {"max_class_recall_drop": 1 / 3, "min_class_recall": 0.25, "max_group_gap": 0.05,
                 "group_attributes": ["sex", "age band", "yes"], "min_pruning_keep_share": 0.0,
                 "warn_margin": 1e-7},
        "budget": {"max_wall_time_s": 1e9, "max_iterations": 2**40, "max_compute_cost": 12.5,
                   "currency": "JPY", "warn_at": 1},
        "pad": {"fiex": False, "fiem": True, "parameter_selection_ratio": 0.95, "selection_mode": "layer",
                "hard_prune_ratio": 0.0, "easy_prune_ratio": 0.0},
    }
    return [
        *(RunPolicy.default_for_ipc(i) for i in (1, 10, 50, 500, 100_000)),
        RunPolicy.model_validate({"compression": {"byte_budget": 2**62}}),
        RunPolicy.model_validate({"compression": {"fraction": 5e-324}}),  # the smallest float
        RunPolicy.model_validate(full),
        *(load_policy(EXAMPLES / name) for name in EXAMPLE_FILES),
    ]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_round_trip_is_exact(fmt, tmp_path):
    for i, policy in enumerate(constructed_policies()):
        text = dump_policy(policy, format=fmt)
        again = parse_policy(text, format=fmt)
        assert again == policy, text
        assert dump_policy(again, format=fmt) == text  # the text is stable too
        path = tmp_path / f"p{i}.{fmt}"
        assert dump_policy(policy, path) == path.read_text(encoding="utf-8")
        assert load_policy(path) == policy


def test_dump_writes_every_field_and_the_version():
    text = dump_policy(RunPolicy.model_validate({"compression": {"ipc": 3}}))
    assert text.startswith("policy_version: 1\n")
    for key in ("min_retention", "max_class_recall_drop", "warn_at", "byte_budget", "pad: null"):
        assert key in text


def test_format_follows_the_suffix(tmp_path):
    policy = RunPolicy.default_for_ipc(10)
    dump_policy(policy, tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text())["compression"]["ipc"] == 10
    (tmp_path / "p.txt").write_text(dump_policy(policy))
    assert load_policy(tmp_path / "p.txt", format="yaml") == policy
    with pytest.raises(PolicyFileError, match="cannot tell the format"):
        load_policy(tmp_path / "p.txt")


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_files_load(name):
    policy = load_policy(EXAMPLES / name)
    assert policy.name
    assert policy.policy_version == 1


def test_examples_mean_what_their_comments_say():
    strict = load_policy(EXAMPLES / "strict-bias.yaml")
    assert strict.bias.group_attributes == ("skin_tone",)
    assert strict.pad is not None and strict.pad.selection_mode == "depth"
    budget = load_policy(EXAMPLES / "byte-budget.yaml")
    assert budget.compression.byte_budget == 64 * 2**20
    res = budget.compression.resolve([5000] * 10, 3 * 32 * 32 + 8)
    assert res.condensed_bytes <= 64 * 2**20
    default = load_policy(EXAMPLES / "default.yaml")
    assert default.acceptance == RunPolicy.default_for_ipc(10).acceptance


class TestFileErrors:
    def test_yaml_syntax_error_names_file_and_line(self, tmp_path):
        path = tmp_path / "broken.yaml"
        path.write_text("compression:\n  ipc: 10\nbias:\n  max_class_recall_drop: [0.1\n")
        with pytest.raises(PolicyFileError) as info:
            load_policy(path)
        assert info.value.path == str(path) and info.value.line is not None
        assert str(path) in str(info.value) and f"line {info.value.line}" in str(info.value)

    def test_yaml_bad_indentation_line(self, tmp_path):
        path = tmp_path / "indent.yaml"
        path.write_text("compression:\n  ipc: 10\n acceptance: 1\n")
        with pytest.raises(PolicyFileError) as info:
            load_policy(path)
        assert info.value.line == 3

    def test_duplicate_yaml_key_names_both_lines(self, tmp_path):
        path = tmp_path / "dup.yaml"
        path.write_text("compression:\n  ipc: 10\nacceptance:\n  min_retention: 0.8\n  min_retention: 0.5\n")
        with pytest.raises(PolicyFileError) as info:
            load_policy(path)
        assert info.value.line == 5
        assert "duplicate key 'min_retention' (first given on line 4)" in str(info.value)

    def test_json_errors(self, tmp_path):
        path = tmp_path / "bad.json"
        path.write_text('{\n  "compression": {"ipc": 10},\n  "bias": {,}\n}\n')
        with pytest.raises(PolicyFileError) as info:
            load_policy(path)
        assert info.value.line == 3
        path.write_text('{"compression": {"ipc": 10}, "compression": {"ipc": 5}}')
        with pytest.raises(PolicyFileError, match="duplicate key 'compression'"):
            load_policy(path)

    @pytest.mark.parametrize(
        ("text", "match"), [("", "empty"), ("- ipc: 1\n", "a list"), ("3\n", "an integer")]
    )
    def test_top_level_must_be_a_mapping(self, text, match):
        with pytest.raises(PolicyFileError, match=match):
            parse_policy(text)

    def test_missing_file(self, tmp_path):
        with pytest.raises(PolicyFileError, match="cannot read"):
            load_policy(tmp_path / "nope.yaml")

    def test_validation_errors_name_the_file(self, tmp_path):
        path = tmp_path / "p.yaml"
        path.write_text("compression:\n  ipc: 10\nbias:\n  max_class_recall_drop: 5\n")
        with pytest.raises(PolicyValidationError) as info:
            load_policy(path)
        assert info.value.source == str(path)
        assert info.value.paths == ("bias.max_class_recall_drop",)

    def test_exponent_without_a_dot_is_a_number(self):
        # YAML 1.1 (PyYAML) would read 1e-3 as the string "1e-3".
        policy = parse_policy("compression:\n  fraction: 1e-3\n")
        assert policy.compression.fraction == 0.001

    def test_no_arbitrary_python_objects(self):
        with pytest.raises(PolicyFileError):
            parse_policy("compression: !!python/object/apply:os.system ['true']\n")


class TestSchema:
    def test_committed_schema_is_current(self):
        # Regenerate with: python -m policies._schema
        assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text()
        assert json.loads(SCHEMA_PATH.read_text(encoding="utf-8")) == policy_json_schema()

    def test_schema_describes_the_run_policy(self):
        schema = policy_json_schema()
        assert schema["$schema"].endswith("2020-12/schema")
        assert schema["additionalProperties"] is False
        assert schema["required"] == ["compression"]
        assert set(schema["properties"]) == set(RunPolicy.model_fields)
        bias = schema["$defs"]["BiasPolicy"]["properties"]["max_class_recall_drop"]
        number = next(option for option in bias["anyOf"] if option.get("type") == "number")
        assert (number["minimum"], number["maximum"], bias["default"]) == (0, 1, 0.15)
        assert policy_json_schema() is not policy_json_schema()  # callers may mutate their copy

    def test_write_schema_elsewhere(self, tmp_path):
        target = write_policy_schema(tmp_path / "s.json")
        assert target.read_text(encoding="utf-8") == schema_text()

    def test_schema_accepts_dumps_and_rejects_bad_files(self):
        jsonschema = pytest.importorskip("jsonschema")
        validator = jsonschema.Draft202012Validator(policy_json_schema())
        for policy in constructed_policies():
            assert not list(validator.iter_errors(json.loads(dump_policy(policy, format="json"))))
        bad = [
            {"compression": {"ipc": 1, "fraction": 0.1}},   # two targets
            {"compression": {"ipc": None}},                 # none
            {"compression": {"ipc": 0}},
            {"compression": {"ipc": 1}, "bias": {"max_drop": 0.1}},
            {"compression": {"ipc": 1}, "pad": {"selection_mode": "deep"}},
        ]
        for data in bad:
            assert list(validator.iter_errors(data)), data
