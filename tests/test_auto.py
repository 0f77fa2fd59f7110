"""Settings chosen on a validation split carved from the training data, and the check against real subsets."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

import pad_sdk
import policies
from pad_sdk.data import PreparedData, arrays_to_raw, prepare, with_validation
from pad_sdk.demo import load_digits_arrays

pytestmark = pytest.mark.slow

AUTO: dict[str, Any] = {
    "auto": {"validation_fraction": 0.2, "fraction": 0.5, "candidates": ["preset", "datm", "hard_labels"]},
    "experts": {"num_experts": 1},
    "evaluation": {"epochs": 10, "seeds": 1, "full_epochs": 1},
}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    images, labels, names = load_digits_arrays()
    keep = np.concatenate([np.flatnonzero(labels == c)[:40] for c in range(10)])
    return images[keep], labels[keep], names


def _prepared(digits: Any) -> PreparedData:
    images, labels, names = digits
    raw = arrays_to_raw(images, labels, test_images=None, test_labels=None, class_names=names,
                        holdout_fraction=0.2, seed=0)
    return prepare(raw, zca=False)


def test_the_validation_split_is_stratified_seeded_and_leaves_the_holdout_alone(digits: Any) -> None:
    data = _prepared(digits)
    carved = with_validation(data, 0.25, seed=3)
    assert carved.validation is not None and carved.test is data.test
    assert len(carved.train) + len(carved.validation) == len(data.train)
    per_class = torch.bincount(carved.validation.labels, minlength=10)
    assert per_class.min() >= 7 and per_class.max() <= 9  # 25 % of each class's 30-33 training images
    # disjoint: every training image is in exactly one of the two
    rows = {tuple(x.flatten().tolist()) for x in carved.train.images} | {
        tuple(x.flatten().tolist()) for x in carved.validation.images}
    assert len(rows) == len({tuple(x.flatten().tolist()) for x in data.train.images})
    again = with_validation(data, 0.25, seed=3)
    assert again.validation is not None and torch.equal(again.validation.images[:], carved.validation.images[:])
    assert with_validation(data, 0.0, seed=3) is data


def _run_with_holdout(digits: Any, seed: int) -> pad_sdk.DistillResult:
    images, labels, names = digits
    rng = np.random.default_rng(seed)
    return pad_sdk.distill(images, labels, ipc=1, preset="tiny", class_names=names, overrides=AUTO,
                           test_images=rng.random((30, 8, 8)), test_labels=np.arange(30) % 10)


@pytest.fixture(scope="module")
def auto_run(digits: Any) -> pad_sdk.DistillResult:
    return _run_with_holdout(digits, 0)


def test_probes_choose_the_best_candidate_on_validation_and_the_run_uses_it(auto_run: pad_sdk.DistillResult
                                                                            ) -> None:
    result = auto_run
    probes = result.decisions["probes"]
    scores = {p["name"]: p["validation_accuracy"] for p in probes["probes"]}
    assert list(scores) == ["preset", "datm", "hard_labels"] and probes["iterations"] == 3
    # the best candidate when it beats the preset by more than one standard error on the validation split
    best = max(scores.values())
    margin = math.sqrt(scores["preset"] * (1 - scores["preset"]) / probes["validation_images"])
    assert probes["margin"] == pytest.approx(margin)
    expected = next(name for name, value in scores.items() if value == best) if best - scores["preset"] > margin \
        else "preset"
    assert probes["chosen"] == expected
    chosen = next(p for p in probes["probes"] if p["name"] == probes["chosen"])
    for key, value in chosen["changes"].items():
        assert getattr(result.config.distill, key) == value
    assert result.timings["probes"] == pytest.approx(probes["seconds"])
    check = result.decisions["subset_check"]
    assert set(check["subsets"]) == {"herding", "kcenter", "random"}
    assert check["gain"] == pytest.approx(check["condensed"] - max(check["subsets"].values()))
    assert result.measurements["best_subset"] == check["best_subset"]


def test_choices_never_look_at_the_holdout(digits: Any, auto_run: pad_sdk.DistillResult) -> None:
    """Two runs that differ only in their holdout make the same choices with the same validation scores."""
    runs = [auto_run, _run_with_holdout(digits, 1)]
    assert runs[0].accuracy is not None and runs[1].accuracy is not None
    assert runs[0].decisions["probes"]["probes"] == [
        {**p, "seconds": runs[0].decisions["probes"]["probes"][i]["seconds"]}
        for i, p in enumerate(runs[1].decisions["probes"]["probes"])]
    assert runs[0].decisions["subset_check"]["subsets"] == runs[1].decisions["subset_check"]["subsets"]


def test_a_better_subset_is_reported_and_returned_with_fallback(digits: Any) -> None:
    """Noise images distilled for one iteration lose to any real subset."""
    images, labels, names = digits
    overrides = {**AUTO, "auto": {"validation_fraction": 0.2, "probes": False},
                 "distill": {"pix_init": "noise", "iterations": 1}}
    policy = {"compression": {"ipc": 1}, "acceptance": {"min_retention": 0.01, "min_gain_over_best_subset": 0.0}}
    kept = pad_sdk.distill(images, labels, ipc=1, preset="tiny", class_names=names, overrides=overrides,
                           policy=policy)
    check = kept.decisions["subset_check"]
    assert check["subset_is_better"] and "fallback" not in kept.decisions
    assert kept.verdict is not None
    rule = next(r for r in kept.verdict.rules if r.rule == "acceptance.min_gain_over_best_subset")
    assert rule.status == policies.Status.FAIL
    swapped = pad_sdk.distill(images, labels, ipc=1, preset="tiny", class_names=names, overrides=overrides,
                              fallback="subset")
    fallback = swapped.decisions["fallback"]
    assert fallback["used"] and fallback["subset"] == swapped.decisions["subset_check"]["best_subset"]
    assert swapped.soft_labels is None and swapped.images.shape == (10, 1, 8, 8)
    # the delivered images are real training images (normalised), not noise
    train = {tuple(np.round(x.flatten().numpy(), 4)) for x in _prepared(digits).train.images}
    assert all(tuple(np.round(x.flatten().numpy(), 4)) in train for x in swapped.images)


def test_an_unknown_fallback_or_candidate_is_a_config_error(digits: Any) -> None:
    images, labels, _names = digits
    with pytest.raises(pad_sdk.ConfigError, match="fallback"):
        pad_sdk.distill(images, labels, ipc=1, preset="tiny", fallback="best")
    with pytest.raises(pad_sdk.ConfigError, match="auto"):
        pad_sdk.preset_config("tiny", 1, {"auto": {"candidates": ["magic"]}})


def test_a_candidate_replaces_the_preset_only_beyond_the_validation_noise() -> None:
    """Fashion-MNIST IPC 50's probes (300 validation images): random real images beat the herding start by one
    image, which is noise; a gain of several standard errors is not."""
    from pad_sdk.probes import Probe, choose

    preset = Probe("preset", {}, 0.8433, 1.0)
    chosen, margin = choose([preset, Probe("real_init", {"pix_init": "real"}, 0.8467, 1.0)], 300)
    assert chosen is preset and margin == pytest.approx(0.021, abs=5e-4)
    clear = Probe("real_init", {"pix_init": "real"}, 0.90, 1.0)
    assert choose([preset, Probe("datm", {}, 0.85, 1.0), clear], 300)[0] is clear
    # on a large validation split the same small gain counts
    assert choose([preset, Probe("real_init", {"pix_init": "real"}, 0.8467, 1.0)], 200_000)[0].name == "real_init"


def test_a_candidate_that_repeats_an_earlier_one_is_not_probed_again() -> None:
    """cpu-small at IPC 50 already starts with hard labels: the hard_labels probe would repeat the preset's;
    at IPC 1 nothing is cut from the matching loss, so datm's and error_selection's probes would too."""
    from pad_sdk.probes import distinct_candidates

    large = pad_sdk.preset_config("cpu-small", 50)
    assert large.distill.soft_labels is False
    run, same_as = distinct_candidates(("preset", "datm", "hard_labels", "real_init"), large.distill)
    assert list(run) == ["preset", "datm", "real_init"] and same_as == {"hard_labels": "preset"}
    # its own candidates leave out random real images, which lost to the herding start at every seed
    assert list(distinct_candidates(large.auto.candidates, large.distill)[0]) == ["preset", "datm",
                                                                                  "error_selection"]
    # with a selection ratio of 0 (PAD at IPC 1) every selection mode compares every parameter
    one = pad_sdk.preset_config("cpu-small", 1)
    assert one.distill.selection_ratio == 0.0
    run, same_as = distinct_candidates(("preset", "datm", "error_selection", "real_init"), one.distill)
    assert list(run) == ["preset", "real_init"] and same_as == {"datm": "preset", "error_selection": "preset"}
    # at IPC 10 cpu-small starts as MTT does (hard labels and random real images are the preset's own), with a
    # selection ratio of 0: its own candidates are the preset and the published depth cut
    small = pad_sdk.preset_config("cpu-small", 10)
    run, same_as = distinct_candidates(("preset", "datm", "hard_labels", "real_init", "depth_half", "lr_img_half"),
                                       small.distill)
    assert list(run) == ["preset", "depth_half", "lr_img_half"]
    assert run["depth_half"] == {"selection_mode": "depth", "selection_ratio": 0.5}
    assert same_as == {"datm": "preset", "hard_labels": "preset", "real_init": "preset"}
    assert list(distinct_candidates(small.auto.candidates, small.distill)[0]) == ["preset", "depth_half"]
    # where the preset already cuts at 0.5 (the paper's IPC 10), depth_half repeats it
    paper = pad_sdk.preset_config("paper", 10)
    assert distinct_candidates(("preset", "depth_half"), paper.distill)[1] == {"depth_half": "preset"}


def test_the_report_shows_the_probes_the_choice_and_the_subsets(digits: Any, auto_run: pad_sdk.DistillResult
                                                                ) -> None:
    from pad_sdk.reports import build_report, render_html

    html = render_html(build_report([auto_run]))
    probes = auto_run.decisions["probes"]
    assert "Settings chosen on the validation split" in html
    for probe in probes["probes"]:
        assert f"<td>{probe['name']}" in html
    assert f"<td>{probes['chosen']} <b>(chosen)</b></td>" in html
    for name in auto_run.decisions["subset_check"]["subsets"]:
        assert f"real subset: {name}" in html
    # a candidate that repeats the preset is named, not probed
    images, labels, names = digits
    overrides = {**AUTO, "auto": {**AUTO["auto"], "candidates": ["preset", "hard_labels", "datm"]},
                 "distill": {"soft_labels": False}}
    hard = pad_sdk.distill(images, labels, ipc=1, preset="tiny", class_names=names, overrides=overrides)
    assert [p["name"] for p in hard.decisions["probes"]["probes"]] == ["preset", "datm"]
    assert hard.decisions["probes"]["same_as"] == {"hard_labels": "preset"}
    assert "hard_labels was not probed: it sets what preset sets." in render_html(build_report([hard]))
