"""PAD's filter on information extraction: which real examples an expert trains on, by difficulty.

Inputs are per-class orders, easiest first (from EL2N scoring): ``orders[c]`` is a 1-D tensor of the
global indices of class c's examples. Counts come from the data itself, so classes of any size work
(the official scheduler hard-codes 5000 per class and breaks on other datasets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DataSchedule:
    """The data scheduler of ``buffer_CL.py``, with epochs given as fractions of the expert's epochs.

    Official CIFAR-10 values over 100 epochs: init_ratio 0.75, add_end_epoch 20, rm_epoch_first 40,
    rm_epoch_second 60, rm_easy_ratio_first 0.1, rm_easy_ratio_second 0.2 -> the defaults below.

    At epoch e (0-indexed): up to ``add_end`` the easiest p(e) = min(1, r0 + (1 - r0) e / add_end) of every
    class; then all data until ``remove_first``; then without the easiest ``easy_ratio_first`` until
    ``remove_second``; then without the easiest ``easy_ratio_second``.
    """

    init_ratio: float = 0.75
    add_end: float = 0.2
    remove_first: float = 0.4
    remove_second: float = 0.6
    easy_ratio_first: float = 0.1
    easy_ratio_second: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 < self.init_ratio <= 1.0:
            raise ValueError(f"init_ratio must be in (0, 1], got {self.init_ratio}")
        if not 0.0 <= self.add_end <= self.remove_first <= self.remove_second <= 1.0:
            raise ValueError(
                "schedule points must satisfy 0 <= add_end <= remove_first <= remove_second <= 1, got "
                f"{self.add_end}, {self.remove_first}, {self.remove_second}"
            )
        for name in ("easy_ratio_first", "easy_ratio_second"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def epoch_points(self, num_epochs: int) -> tuple[int, int, int]:
        """The schedule's epochs (add_end, remove_first, remove_second) for an expert of ``num_epochs``."""
        return (
            round(self.add_end * num_epochs),
            round(self.remove_first * num_epochs),
            round(self.remove_second * num_epochs),
        )

    def window(self, epoch: int, num_epochs: int, class_size: int) -> tuple[int, int]:
        """The [begin, end) slice of one class's easiest-first order used at ``epoch``."""
        add_end, remove_first, remove_second = self.epoch_points(num_epochs)
        if epoch <= add_end and add_end > 0:
            ratio = min(1.0, self.init_ratio + (1.0 - self.init_ratio) * epoch / add_end)
            return 0, max(1, math.floor(ratio * class_size))
        if epoch <= remove_first:
            return 0, class_size
        ratio = self.easy_ratio_first if epoch <= remove_second else self.easy_ratio_second
        # never drop a whole class: at least one (the hardest) example stays
        return min(math.floor(ratio * class_size), class_size - 1), class_size

    def indices(self, orders: list[torch.Tensor], epoch: int, num_epochs: int) -> torch.Tensor:
        """Global indices of the examples used at ``epoch`` (concatenated over classes)."""
        parts = []
        for order in orders:
            begin, end = self.window(epoch, num_epochs, order.numel())
            parts.append(order[begin:end])
        return torch.cat(parts)


def static_prune(orders: list[torch.Tensor], *, hard: float = 0.0, easy: float = 0.0) -> list[torch.Tensor]:
    """Drop the hardest ``hard`` and the easiest ``easy`` share of every class (the paper's static ablation).

    The paper's best: about 20 % hard removed at IPC 1, 10 % easy removed at IPC 500. At least one
    example of every class is kept.
    """
    if hard < 0 or easy < 0 or hard + easy >= 1.0:
        raise ValueError(f"pruning shares must be >= 0 and sum below 1, got hard={hard}, easy={easy}")
    pruned = []
    for order in orders:
        n = order.numel()
        begin = min(math.floor(easy * n), n - 1)
        end = max(begin + 1, n - math.floor(hard * n))
        pruned.append(order[begin:end])
    return pruned
