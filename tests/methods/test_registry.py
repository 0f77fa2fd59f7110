"""The method registry, and ablation switches that change exactly what they say (generated from the registry)."""

from __future__ import annotations

from typing import Any

import pytest

from pad_sdk.errors import ConfigError
from pad_sdk.methods import (
    DistributionMatchingMethod,
    GradientMatchingMethod,
    TrajectoryMatching,
    available_methods,
    get_method,
    method_label,
    parse_method_spec,
)
from pad_sdk.presets import preset_config

EXPECTED = ("pad", "datm", "mtt", "dc", "dsa", "dm", "random", "herding", "kcenter", "el2n-easy", "el2n-hard",
            "el2n-middle")


def _diff(a: Any, b: Any, prefix: str = "") -> set[str]:
    """Dotted paths where two nested mappings differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[str] = set()
        for key in set(a) | set(b):
            out |= _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return set() if a == b else {prefix.rstrip(".")}


def _config(method: TrajectoryMatching, ipc: int = 10, preset: str = "cpu-small") -> dict[str, Any]:
    return preset_config(preset, ipc, method.overrides(preset, ipc)).model_dump()


def test_every_method_is_registered_and_named() -> None:
    assert available_methods() == EXPECTED
    for name in EXPECTED:
        method = get_method(name)
        assert method.name == name
        assert method_label(method) == name


def test_unknown_names_and_switches_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="choose one of pad, datm, mtt"):
        get_method("kip")
    with pytest.raises(ConfigError, match="switches are fiex, fiem, augment, alpha, iterations"):
        get_method("dc:fiexx=on")
    with pytest.raises(ConfigError, match="key=value"):
        get_method("dc:fiex")


def test_spec_strings_parse_switches() -> None:
    assert parse_method_spec("dc:fiex=on, alpha=0.5,iterations=3") == ("dc", {"fiex": True, "alpha": 0.5,
                                                                               "iterations": 3})
    assert get_method("pad:fiem=off") == get_method("pad", fiem=False)
    assert method_label(get_method("dm:fiex=on,fiem=on")) == "dm[fiex=on,fiem=on]"


def test_trajectory_presets_over_one_distiller() -> None:
    # the paper preset: the published start at every IPC (cpu-small's own starts: the next test)
    pad, datm, mtt = (_config(get_method(n), preset="paper") for n in ("pad", "datm", "mtt"))  # type: ignore[arg-type]
    assert pad["experts"]["fiex"] == "scheduler" and pad["distill"]["selection_mode"] == "depth"
    # only the SDK default chooses its settings on the validation split; DATM and MTT are fixed methods
    assert _diff(pad, datm) == {"experts.fiex", "distill.selection_mode", "auto.probes"}
    assert pad["auto"]["probes"] and not datm["auto"]["probes"] and not mtt["auto"]["probes"]
    assert datm["experts"]["fiex"] == "off" and datm["distill"]["selection_mode"] == "none"
    # MTT's official loop steps after every iteration (no loss threshold: tests/parity)
    assert _diff(datm, mtt) == {"distill.soft_labels", "distill.expansion_end", "distill.pix_init",
                                "distill.threshold"}
    assert (mtt["distill"]["soft_labels"], mtt["distill"]["expansion_end"], mtt["distill"]["pix_init"]) == (
        False, None, "real")


def test_pad_trains_the_presets_experts_and_cpu_small_trains_plain_ones_at_ipc_1_and_50() -> None:
    fiex = {(n, ipc): _config(get_method(n), ipc=ipc)["experts"]["fiex"]  # type: ignore[arg-type]
            for n in ("pad", "datm", "mtt") for ipc in (1, 10, 50)}
    assert fiex[("pad", 1)] == fiex[("pad", 50)] == "off" and fiex[("pad", 10)] == "scheduler"
    assert {fiex[(n, ipc)] for n in ("datm", "mtt") for ipc in (1, 10, 50)} == {"off"}
    # the ablation switch still turns the filter off where the preset has it on
    assert _config(get_method("pad", fiex=False), ipc=10)["experts"]["fiex"] == "off"
    # at IPC 1 pad and mtt share one expert training: their experts' settings are equal
    assert _config(get_method("pad"), ipc=1)["experts"] == _config(get_method("mtt"), ipc=1)["experts"]


def test_where_cpu_small_changes_the_start_datm_and_mtt_keep_their_published_one() -> None:
    pad, datm, mtt = (_config(get_method(n), ipc=50)["distill"]  # type: ignore[arg-type]
                      for n in ("pad", "datm", "mtt"))
    start = ("pix_init", "soft_labels", "lr_img", "learn_lr")
    assert tuple(pad[k] for k in start) == ("herding", False, 3.0, False)
    assert tuple(datm[k] for k in start) == ("correct", True, 1000.0, True)  # DATM's CIFAR-10 IPC 50 settings
    assert tuple(mtt[k] for k in start) == ("real", False, 1000.0, True)
    # at IPC 10 the preset starts as MTT does (hard labels, random real images, the whole window, no threshold);
    # DATM puts back its soft labels, correctly classified images, growing window and threshold
    ten = {n: _config(get_method(n), ipc=10)["distill"] for n in ("pad", "datm", "mtt")}  # type: ignore[arg-type]
    window = ("pix_init", "soft_labels", "expansion_end", "threshold", "lr_img")
    assert tuple(ten["pad"][k] for k in window) == ("real", False, None, 1e30, 100.0)
    assert tuple(ten["mtt"][k] for k in window) == ("real", False, None, 1e30, 100.0)
    assert tuple(ten["datm"][k] for k in window) == ("correct", True, 75, 1.0, 100.0)
    assert ten["pad"]["selection_mode"] == "depth" and ten["mtt"]["selection_mode"] == "none"
    # at IPC 1 cpu-small changes only the labels: DATM keeps the experts' soft labels, MTT its hard ones
    one = {n: _config(get_method(n), ipc=1)["distill"] for n in ("pad", "datm", "mtt")}  # type: ignore[arg-type]
    assert (one["pad"]["soft_labels"], one["datm"]["soft_labels"], one["mtt"]["soft_labels"]) == (False, True, False)
    assert one["pad"]["pix_init"] == one["datm"]["pix_init"] == "correct" and one["pad"]["learn_lr"]


@pytest.mark.parametrize("name", ["pad", "datm", "mtt"])
@pytest.mark.parametrize("switch,path", [("fiex", "experts.fiex"), ("fiem", "distill.selection_mode")])
def test_trajectory_switch_changes_one_setting(name: str, switch: str, path: str) -> None:
    method = get_method(name)
    flipped = get_method(name, **{switch: not getattr(method, switch)})
    # a switched pad is an ablation: a fixed method, like datm and mtt, that does not probe its settings
    expected = {path, "auto.probes"} if name == "pad" else {path}
    # the paper preset: with cpu-small, a switch that turns both filters off also puts back the published start
    assert _diff(_config(method, preset="paper"), _config(flipped, preset="paper")) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["dc", "dsa"])
def test_gradient_switches(name: str) -> None:
    base = get_method(name)
    assert isinstance(base, GradientMatchingMethod) and base.augment == (name == "dsa")
    plain, deep = base.settings("cpu-small", 10), get_method(name, fiem=True).settings("cpu-small", 10)
    assert (plain.selection.mode, deep.selection.mode, deep.selection.ratio) == ("none", "depth", 0.25)
    assert {k for k in vars(plain) if getattr(plain, k) != getattr(deep, k)} == {"selection"}
    # fiex does not touch the matching settings: it only prunes the real pool (see test_pruning)
    assert get_method(name, fiex=True).settings("cpu-small", 10) == plain


def test_distribution_switches() -> None:
    base = get_method("dm")
    assert isinstance(base, DistributionMatchingMethod)
    plain, deep = base.settings("cpu-small", 10), get_method("dm", fiem=True).settings("cpu-small", 10)
    assert {k for k in vars(plain) if getattr(plain, k) != getattr(deep, k)} == {"alpha"}
    assert (plain.alpha, deep.alpha) == (0.0, 0.25)
    assert get_method("dm", fiex=True).settings("cpu-small", 10) == plain
