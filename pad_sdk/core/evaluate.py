"""Evaluation protocol: train fresh networks on a (condensed or real) set, test on held-out data.

MTT/DATM/PAD protocol: SGD momentum 0.9, weight decay 5e-4, lr = the learned step size, x0.1 at half the
epochs, DSA on every batch, soft labels, mean +- std over several independently seeded networks.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.seeding import derive_seed, make_generator, seeded
from pad_sdk.core.training import LabelledImages, TrainRecipe, measure_accuracy, predict_logits, train_network


@dataclass(frozen=True)
class EvalResult:
    """Test accuracy of k networks (fractions in [0, 1]) and their mean per-class recall."""

    accuracies: tuple[float, ...]
    per_class_recall: tuple[float, ...]
    train_seconds: float

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "mean": self.mean,
            "std": self.std,
            "accuracies": list(self.accuracies),
            "per_class_recall": list(self.per_class_recall),
            "train_seconds": self.train_seconds,
        }


def evaluate_set(
    images: torch.Tensor,
    targets: torch.Tensor,
    test: LabelledImages,
    build_network: Callable[[], nn.Module],
    recipe: TrainRecipe,
    *,
    seeds: int,
    seed: int,
    augment: DiffAugment | None = None,
    device: torch.device | None = None,
) -> EvalResult:
    """Train ``seeds`` fresh networks on images (S, C, H, W) with targets (S,) or label logits (S, K).

    Every network starts from a different seeded initialisation; the test set is never trained on.
    """
    import time

    device = device or images.device
    x, y = images.detach().to(device), targets.detach().to(device)
    accuracies: list[float] = []
    recalls: list[tuple[float, ...]] = []
    started = time.perf_counter()
    for k in range(seeds):
        net_seed = derive_seed(seed, 7, k)
        network = seeded(net_seed, build_network).to(device)
        train_network(network, x, y, recipe, generator=make_generator(net_seed), augment=augment)
        logits = predict_logits(network, test.images.to(device)).cpu()
        measured = measure_accuracy(logits, test.labels, test.num_classes)
        accuracies.append(measured.accuracy)
        recalls.append(measured.per_class_recall)
    mean_recall = tuple(statistics.fmean(r[c] for r in recalls) for c in range(test.num_classes))
    return EvalResult(tuple(accuracies), mean_recall, time.perf_counter() - started)


def random_subset(labels: torch.Tensor, num_classes: int, ipc: int, generator: torch.Generator) -> torch.Tensor:
    """Global indices of ``ipc`` random real examples per class (the honest baseline of equal size)."""
    picks = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c, as_tuple=True)[0]
        picks.append(members[torch.randperm(members.numel(), generator=generator)[:ipc]])
    return torch.cat(picks)
