"""PAD's data scheduler and static pruning pick exactly the documented examples."""

from __future__ import annotations

import pytest
import torch

from pad_sdk.core.scheduler import DataSchedule, static_prune


def _orders(class_sizes: list[int]) -> list[torch.Tensor]:
    # class c's examples are numbered so that a smaller number means easier
    start = 0
    orders = []
    for n in class_sizes:
        orders.append(torch.arange(start, start + n))
        start += n
    return orders


@pytest.mark.parametrize(
    ("epoch", "begin", "end"),
    [
        (0, 0, 3750),     # easiest 75 %
        (10, 0, 4375),    # 75 % + 25 % * 10/20 = 87.5 %
        (20, 0, 5000),    # add phase ends with everything
        (40, 0, 5000),    # all data until rm_epoch_first
        (41, 500, 5000),  # without the easiest 10 %
        (60, 500, 5000),
        (61, 1000, 5000),  # without the easiest 20 %
        (99, 1000, 5000),
    ],
)
def test_official_cifar10_schedule_at_chosen_epochs(epoch: int, begin: int, end: int) -> None:
    # official values: init 0.75, add_end 20, rm 40/60, easy ratios 0.1/0.2 over 100 epochs
    schedule = DataSchedule()
    assert schedule.epoch_points(100) == (20, 40, 60)
    assert schedule.window(epoch, 100, 5000) == (begin, end)


def test_indices_follow_each_class_own_size() -> None:
    # the official code hard-codes 5000 per class; here every class uses its own count
    orders = _orders([100, 40])
    chosen = DataSchedule().indices(orders, epoch=0, num_epochs=100)
    assert chosen.tolist() == list(range(75)) + list(range(100, 130))
    late = DataSchedule().indices(orders, epoch=70, num_epochs=100)
    assert late.tolist() == list(range(20, 100)) + list(range(108, 140))


def test_schedule_never_empties_a_class() -> None:
    schedule = DataSchedule(init_ratio=0.01, easy_ratio_second=0.99)
    orders = _orders([3, 1])
    for epoch in range(10):
        picked = schedule.indices(orders, epoch, 10)
        assert (picked < 3).any() and (picked == 3).any()


def test_static_prune_removes_hard_or_easy_share() -> None:
    orders = _orders([10, 20])
    hard = static_prune(orders, hard=0.2)
    assert hard[0].tolist() == list(range(8)) and hard[1].tolist() == list(range(10, 26))
    easy = static_prune(orders, easy=0.1)
    assert easy[0].tolist() == list(range(1, 10)) and easy[1].tolist() == list(range(12, 30))
    both = static_prune(orders, hard=0.2, easy=0.1)
    assert both[1].tolist() == list(range(12, 26))
    with pytest.raises(ValueError):
        static_prune(orders, hard=0.6, easy=0.5)


def test_bad_schedule_is_rejected() -> None:
    with pytest.raises(ValueError, match="add_end"):
        DataSchedule(add_end=0.5, remove_first=0.3)
