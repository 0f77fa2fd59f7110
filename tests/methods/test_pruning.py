"""PAD's difficulty pruning of the real pool per IPC removes the documented examples."""

from __future__ import annotations

import torch

from pad_sdk.core.training import LabelledImages
from pad_sdk.methods import MethodContext
from pad_sdk.pipeline import Normalisation, PreparedData


def _context() -> MethodContext:
    # two classes of 10 examples; class 0 holds indices 0..9, class 1 indices 10..19
    labels = torch.tensor([0] * 10 + [1] * 10)
    train = LabelledImages(torch.zeros(20, 1, 8, 8), labels, 2)
    data = PreparedData(train, train, ("a", "b"), Normalisation((0.0,), (1.0,)))
    context = MethodContext(data, preset="tiny")
    # easiest first: class 0 in reverse data order, class 1 in data order
    orders = [torch.arange(9, -1, -1), torch.arange(10, 20)]
    context.orders = lambda config: orders  # type: ignore[method-assign]
    return context


def test_small_ipc_removes_the_hardest_fifth_of_every_class() -> None:
    context = _context()
    pools = context.real_pools(context.config(1), prune=True)
    assert pools[0].tolist() == [9, 8, 7, 6, 5, 4, 3, 2]  # 0 and 1 were the hardest
    assert pools[1].tolist() == list(range(10, 18))  # 18 and 19 were the hardest


def test_large_ipc_removes_the_easiest_tenth_of_every_class() -> None:
    context = _context()
    pools = context.real_pools(context.config(50), prune=True)
    assert pools[0].tolist() == [8, 7, 6, 5, 4, 3, 2, 1, 0]  # 9 was the easiest
    assert pools[1].tolist() == list(range(11, 20))


def test_explicit_ratios_and_no_pruning() -> None:
    context = _context()
    config = context.config(1, {"experts": {"prune_hard": 0.3, "prune_easy": 0.2}})
    assert context.real_pools(config, prune=True)[1].tolist() == [12, 13, 14, 15, 16]
    assert [p.tolist() for p in context.real_pools(config, prune=False)] == [list(range(10)), list(range(10, 20))]
