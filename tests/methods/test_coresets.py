"""Herding, k-center greedy and the EL2N subsets pick the documented examples."""

from __future__ import annotations

import torch

from pad_sdk.core.coresets import el2n_pick, el2n_subset, herding, k_center_greedy, per_class

# One class, 1-D embeddings; mean = 2.0.
POINTS = torch.tensor([[0.0], [1.0], [2.5], [4.5], [-1.0], [5.0]])


def test_herding_follows_the_running_mean() -> None:
    # k=1: closest to 2.0 is 2.5 (index 2). k=2: (2.5 + x)/2 closest to 2 -> x = 1.5 -> 1.0 (index 1).
    # k=3: (3.5 + x)/3 closest to 2 -> x = 2.5 (taken) -> candidates 1.0? taken; 0.0 -> 1.17, 4.5 -> 2.67,
    # -1 -> 0.83, 5 -> 2.83: index 3 (4.5) gives |0.67|, index 0 gives |0.83|: picks 3.
    assert herding(POINTS, 3).tolist() == [2, 1, 3]


def test_k_center_starts_at_the_mean_then_goes_farthest_first() -> None:
    # start: closest to the mean 2.0 -> 2.5 (index 2); farthest from it: -1.0 (index 4, distance 3.5);
    # then the point farthest from {2.5, -1.0}: 5.0 (index 5, distance 2.5).
    assert k_center_greedy(POINTS, 3).tolist() == [2, 4, 5]


def test_ties_go_to_the_lowest_index() -> None:
    tied = torch.tensor([[1.0], [-1.0], [1.0], [-1.0]])  # mean 0: every point is 1 away
    assert herding(tied, 1).tolist() == [0]
    assert k_center_greedy(tied, 2).tolist() == [0, 1]


def test_per_class_maps_back_to_global_indices() -> None:
    embeddings = torch.cat([POINTS, POINTS + 100])
    labels = torch.tensor([1] * 6 + [0] * 6)
    assert per_class(embeddings, labels, 2, 1, "herding").tolist() == [8, 2]


def test_el2n_easy_hard_middle() -> None:
    order = torch.arange(10, 20)  # easiest first
    assert el2n_pick(order, 3, "easy").tolist() == [10, 11, 12]
    assert el2n_pick(order, 3, "hard").tolist() == [17, 18, 19]
    assert el2n_pick(order, 2, "middle").tolist() == [14, 15]  # ranks 4, 5 around the median 4.5
    assert el2n_pick(order, 3, "middle").tolist() == [13, 14, 15]  # n - k odd: one rank towards easy
    assert el2n_subset([order, torch.tensor([3, 1])], 1, "hard").tolist() == [19, 1]
