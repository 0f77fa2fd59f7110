"""DC, DSA and DM runs are pure functions of their seeds; baselines return real images with hard labels."""

from __future__ import annotations

import pytest
import torch

from pad_sdk.core.synthetic import HARD_LABEL_LOGIT
from pad_sdk.core.training import LabelledImages
from pad_sdk.methods import MethodContext, get_method
from pad_sdk.pipeline import Normalisation, PreparedData


@pytest.fixture(scope="module")
def context() -> MethodContext:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(12)
    images = torch.randn(36, 1, 8, 8, generator=g) + labels.view(-1, 1, 1, 1).float()
    train = LabelledImages(images, labels, 3)
    data = PreparedData(train, train, ("a", "b", "c"), Normalisation((0.0,), (1.0,)))
    return MethodContext(data, preset="tiny")


@pytest.mark.parametrize("spec", ["dsa:fiem=on,iterations=1", "dm:fiem=on,iterations=2", "random"])
def test_same_seed_same_set_other_seed_other_set(context: MethodContext, spec: str) -> None:
    method = get_method(spec)
    first, again, other = (method.condense(context, 2, s) for s in (0, 0, 1))
    torch.testing.assert_close(first.images, again.images, rtol=0, atol=0)
    assert not torch.equal(first.images, other.images)
    assert first.classes.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(first.label_logits.argmax(1), first.classes)
    assert float(first.label_logits.max()) == HARD_LABEL_LOGIT
    assert float(first.lr) == pytest.approx(context.config(2).evaluation.random_lr)


def test_matching_moves_the_images_away_from_their_real_start(context: MethodContext) -> None:
    condensed = get_method("dm:iterations=2").condense(context, 2, 0)
    start = get_method("random").picks(context, 2, 0)  # type: ignore[attr-defined]
    assert condensed.images.shape == (6, 1, 8, 8)
    assert not any(torch.equal(img, real) for img in condensed.images for real in context.data.train.images[start])
