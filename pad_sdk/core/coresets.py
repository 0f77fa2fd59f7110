"""Coreset baselines: deterministic selections of real images of the same size as a condensed set.

Every selector works per class and returns global indices; embeddings (N, D) come from a trained agent
network's ``embed``. Ties always go to the lowest index, so a selection is a pure function of its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pad_sdk.core.images import Images, batches
from pad_sdk.core.params import device_of


def herding(embeddings: torch.Tensor, ipc: int) -> torch.Tensor:
    """Welling's herding on one class's embeddings (n, D): positions (k,) with k = min(ipc, n).

    Step k picks the unpicked sample that brings the mean of the picked embeddings closest to the class mean.
    """
    n = embeddings.shape[0]
    target = embeddings.mean(dim=0)
    picked: list[int] = []
    running = torch.zeros_like(target)
    available = torch.ones(n, dtype=torch.bool)
    for k in range(1, min(ipc, n) + 1):
        candidate_means = (running.unsqueeze(0) + embeddings) / k  # (n, D)
        distance = (candidate_means - target).norm(dim=1)
        distance[~available] = float("inf")
        choice = int(torch.argmin(distance))  # argmin returns the first minimum: lowest index on ties
        picked.append(choice)
        available[choice] = False
        running = running + embeddings[choice]
    return torch.tensor(picked, dtype=torch.long)


def k_center_greedy(embeddings: torch.Tensor, ipc: int) -> torch.Tensor:
    """k-center greedy on one class's embeddings (n, D): positions (k,) with k = min(ipc, n).

    Starts from the sample closest to the class mean, then repeatedly adds the sample farthest from its
    nearest picked sample (farthest-first traversal, Sener & Savarese 2018).
    """
    n = embeddings.shape[0]
    first = int(torch.argmin((embeddings - embeddings.mean(dim=0)).norm(dim=1)))
    picked = [first]
    nearest = (embeddings - embeddings[first]).norm(dim=1)  # distance to the nearest picked sample
    for _ in range(min(ipc, n) - 1):
        choice = int(torch.argmax(nearest))
        picked.append(choice)
        nearest = torch.minimum(nearest, (embeddings - embeddings[choice]).norm(dim=1))
    return torch.tensor(picked, dtype=torch.long)


def el2n_pick(order: torch.Tensor, ipc: int, which: str) -> torch.Tensor:
    """From one class's indices sorted easiest first (n,), the ``ipc`` easiest, hardest or middle ones.

    ``middle`` is the window of ``ipc`` consecutive ranks centred on the median rank (the paper's choice
    of neither too easy nor too hard); with n - ipc odd the window sits one rank towards the easy side.
    """
    n = order.numel()
    k = min(ipc, n)
    if which == "easy":
        return order[:k]
    if which == "hard":
        return order[n - k:]
    if which == "middle":
        begin = (n - k) // 2
        return order[begin:begin + k]
    raise ValueError(f"unknown EL2N choice {which!r}; choose easy, hard or middle")


def per_class(
    embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int, ipc: int, selector: str
) -> torch.Tensor:
    """Apply ``herding`` or ``kcenter`` to every class; global indices (sum_c min(ipc, n_c),), class order."""
    pick = {"herding": herding, "kcenter": k_center_greedy}[selector]
    chosen: list[torch.Tensor] = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c, as_tuple=True)[0]
        chosen.append(members[pick(embeddings[members], ipc)])
    return torch.cat(chosen)


def el2n_subset(orders: Sequence[torch.Tensor], ipc: int, which: str) -> torch.Tensor:
    """:func:`el2n_pick` over every class's easiest-first order; global indices."""
    return torch.cat([el2n_pick(order, ipc, which) for order in orders])


@torch.no_grad()
def embed(network: nn.Module, images: Images, batch_size: int = 1024) -> torch.Tensor:
    """``network.embed`` of images (N, C, H, W) held anywhere, chunk by chunk on the network's device, in eval
    mode; the embeddings (N, D) come back to the host."""
    device = device_of(network)
    network.eval()
    return torch.cat([network.embed(chunk.to(device)).cpu()  # type: ignore[operator]
                      for chunk in batches(images, batch_size)])
