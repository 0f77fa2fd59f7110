"""``pad_sdk.distill(..., method=...)`` runs a registered method and keeps its labels honest."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits

import pad_sdk

QUICK = {"evaluation": {"epochs": 2, "seeds": 1, "full_epochs": 0, "random_baseline": False}}


def test_baseline_method_returns_real_images_with_hard_labels() -> None:
    digits = load_digits()
    result = pad_sdk.distill(digits.images, digits.target, ipc=2, preset="tiny", method="el2n-easy",
                             overrides=QUICK)
    assert result.condensed.images.shape == (20, 1, 8, 8)
    assert result.condensed.label_logits is None  # hard labels are the class ids
    assert torch.bincount(result.condensed.labels).tolist() == [2] * 10
    assert result.loss_history == ()


def test_trajectory_method_applies_its_settings() -> None:
    digits = load_digits()
    result = pad_sdk.distill(digits.images, digits.target, ipc=1, preset="tiny", method="mtt",
                             overrides={**QUICK, "distill": {"iterations": 1}})
    assert result.config.experts.fiex == "off"
    assert result.config.distill.selection_mode == "none"
    assert result.config.distill.soft_labels is False
    assert result.condensed.label_logits is None
