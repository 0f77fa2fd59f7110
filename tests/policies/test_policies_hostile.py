"""Hostile policy files end in a short typed error, in bounded time and memory (issue 15: a ~900-byte YAML
alias bomb gave a 312 MB error message and used about 1 GB of memory)."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from policies import PolicyFileError, PolicyValidationError, load_policy
from policies.errors import MAX_LISTED_ISSUES, MAX_MESSAGE_CHARS
from policies.io import MAX_ALIAS_EXPANSION, parse_policy


def billion_laughs(where: str, levels: int = 9, width: int = 9) -> str:
    """``levels`` anchors, each a list of ``width`` aliases of the one before; ``where`` uses the last."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n" + where.replace("BOMB", f"*l{levels - 1}") + "\n"


@pytest.mark.parametrize(
    "where", ["name: BOMB", "compression: BOMB", "bias: {group_attributes: BOMB}", "? BOMB\n: 1"]
)
def test_yaml_alias_bomb_is_refused_quickly_with_a_short_error(tmp_path, where):
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs(where))
    assert path.stat().st_size < 1000  # 9 ** 9 = 387 million values once expanded
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PolicyFileError, match="alias") as info:
            load_policy(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2
    assert peak < 5 * 2**20, peak
    assert len(str(info.value)) < 500 and str(path) in str(info.value) and info.value.line is not None


def test_recursive_alias_is_refused():
    with pytest.raises(PolicyFileError, match="recursive alias"):
        parse_policy("bias: &b {group_attributes: [*b]}\n")


def test_modest_aliases_and_large_plain_documents_still_parse():
    text = "compression: {ipc: 10}\nname: &n shared-name\ndescription: *n\n"
    policy = parse_policy(text)
    assert policy.name == policy.description == "shared-name"
    # A bomb small enough to stay under the bound is only refused by validation (unknown keys l0, l1, ...).
    with pytest.raises(PolicyValidationError):
        parse_policy(billion_laughs("compression: {ipc: 10}", levels=3, width=9))
    with pytest.raises(PolicyFileError, match="alias"):
        parse_policy(billion_laughs("compression: {ipc: 10}", levels=5, width=10))
    assert MAX_ALIAS_EXPANSION < 10**5
    # Many values without aliases are not an expansion: validation reports them (bounded, see below).
    with pytest.raises(PolicyValidationError, match=r"compression\.fraction"):
        parse_policy(f"compression: {{fraction: [{', '.join(['1'] * 20_000)}]}}\n")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_deep_nesting_is_a_policy_error(fmt):
    text = "[" * 100_000 + "]" * 100_000
    with pytest.raises(PolicyFileError, match="nested too deeply"):
        parse_policy(text if fmt == "json" else f"name: {text}", format=fmt)


def test_validation_error_quoting_a_huge_value_is_bounded():
    huge = ", ".join(str(i) for i in range(10_000))
    with pytest.raises(PolicyValidationError) as info:
        parse_policy(f"compression: {{fraction: [{huge}]}}\nname: {'x' * 100_000}\n", format="yaml")
    assert len(str(info.value)) < 2000
    assert "compression" in str(info.value)


def test_many_problems_are_counted_not_all_listed():
    keys = "\n".join(f"unknown_{i}: {i}" for i in range(500))
    with pytest.raises(PolicyValidationError) as info:
        parse_policy(f"compression: {{ipc: 10}}\n{keys}")
    assert len(info.value.issues) == 500  # every problem is still available to code
    text = str(info.value)
    assert f"... and {500 - MAX_LISTED_ISSUES} more" in text and len(text) <= MAX_MESSAGE_CHARS


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_file_error_quoting_a_huge_key_is_bounded(fmt):
    key = "k" * 1_000_000
    text = f"? {key}\n: 1\n? {key}\n: 2\n" if fmt == "yaml" else f'{{"{key}": 1, "{key}": 2}}'
    with pytest.raises(PolicyFileError, match="duplicate key") as info:
        parse_policy(text, format=fmt)
    assert len(str(info.value)) < 1000
