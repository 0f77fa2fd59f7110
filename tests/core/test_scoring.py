"""EL2N scoring finds the examples whose labels are wrong."""

from __future__ import annotations

import torch

from pad_sdk.core.networks import create_network
from pad_sdk.core.scoring import ScoringRecipe, class_orders, el2n_of, el2n_scores
from pad_sdk.core.seeding import make_generator
from pad_sdk.core.training import LabelledImages, TrainRecipe


def test_el2n_of_is_the_distance_to_one_hot() -> None:
    logits = torch.tensor([[10.0, -10.0], [0.0, 0.0]])
    scores = el2n_of(logits, torch.tensor([0, 0]))
    assert scores[0] < 1e-4
    assert abs(float(scores[1]) - (0.5**2 + 0.5**2) ** 0.5) < 1e-6


def test_mislabelled_examples_rank_among_the_hardest() -> None:
    # two well separated blobs; flip the label of 6 examples of class 0 to class 1
    g = make_generator(0)
    n = 120
    x0 = torch.randn(n, 1, 4, 4, generator=g) * 0.5 + 1.0
    x1 = torch.randn(n, 1, 4, 4, generator=g) * 0.5 - 1.0
    images = torch.cat([x0, x1])
    labels = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    flipped = torch.arange(6)
    labels[flipped] = 1
    data = LabelledImages(images, labels, 2)
    scores = el2n_scores(
        data,
        lambda: create_network("mlp", in_channels=1, num_classes=2, image_size=(4, 4), width=16),
        ScoringRecipe(runs=2, recipe=TrainRecipe(epochs=8, lr=0.05, batch_size=32, momentum=0.9, augment=False)),
        seed=0,
    )
    hardest = set(torch.argsort(scores, descending=True)[:10].tolist())
    assert set(flipped.tolist()) <= hardest
    # per class orders list the flipped examples last within class 1
    orders = class_orders(scores, labels, 2)
    assert set(orders[1][-6:].tolist()) == set(flipped.tolist())
    assert sorted(torch.cat(orders).tolist()) == list(range(2 * n))
