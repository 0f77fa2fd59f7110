"""Evaluation protocol: train fresh networks on a (condensed or real) set, test on held-out data.

MTT/DATM/PAD protocol: SGD momentum 0.9, weight decay 5e-4, lr = the learned step size, x0.1 at half the
epochs, DSA on every batch, soft labels, mean +- std over several independently seeded networks.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.images import Images
from pad_sdk.core.seeding import derive_seed, make_generator, seeded
from pad_sdk.core.training import (
    Accuracy,
    LabelledImages,
    TrainRecipe,
    measure_accuracy,
    predict_logits,
    train_network,
)


class SeedStatistics:
    """Mean and population standard deviation of ``accuracies`` (one value per seed or network)."""

    accuracies: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0


@dataclass(frozen=True)
class EvalResult(SeedStatistics):
    """Test accuracy of k networks (fractions in [0, 1]) and their mean per-class recall."""

    accuracies: tuple[float, ...]
    per_class_recall: tuple[float, ...]
    train_seconds: float
    # (N_test,) share of the networks that classified each test example correctly; kept out of to_dict()
    example_correct: torch.Tensor | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "mean": self.mean,
            "std": self.std,
            "accuracies": list(self.accuracies),
            "per_class_recall": list(self.per_class_recall),
            "train_seconds": self.train_seconds,
        }


def train_and_test(
    images: Images,
    targets: torch.Tensor,
    test: LabelledImages,
    build_network: Callable[[], nn.Module],
    recipe: TrainRecipe,
    *,
    seed: int,
    index: int,
    augment: DiffAugment | None = None,
    device: torch.device | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> tuple[Accuracy, torch.Tensor]:
    """Network ``index`` of an evaluation: train it from its own seeded initialisation on images (S, C, H, W)
    with targets (S,) or label logits (S, K); return its test accuracy and per-example correctness (N_test,).
    ``on_epoch(e)`` runs after each training epoch (progress and budget checks)."""
    device = device or images.device
    net_seed = derive_seed(seed, 7, index)
    network = seeded(net_seed, build_network).to(device)
    train_network(network, images.detach().to(device), targets.detach().to(device), recipe,
                  generator=make_generator(net_seed), augment=augment,
                  on_epoch_end=None if on_epoch is None else lambda epoch, _net: on_epoch(epoch))
    logits = predict_logits(network, test.images.to(device)).cpu()
    return measure_accuracy(logits, test.labels, test.num_classes), logits.argmax(dim=1) == test.labels


def summarise(runs: Sequence[tuple[Accuracy, torch.Tensor]], num_classes: int, seconds: float) -> EvalResult:
    """Combine the networks of one evaluation (from :func:`train_and_test`) into an :class:`EvalResult`."""
    recall = tuple(statistics.fmean(acc.per_class_recall[c] for acc, _ in runs) for c in range(num_classes))
    correct = torch.stack([hits.float() for _, hits in runs]).mean(dim=0)
    return EvalResult(tuple(acc.accuracy for acc, _ in runs), recall, seconds, correct)


def evaluate_set(
    images: Images,
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
    started = time.perf_counter()
    runs = [
        train_and_test(images, targets, test, build_network, recipe, seed=seed, index=k, augment=augment,
                       device=device)
        for k in range(seeds)
    ]
    return summarise(runs, test.num_classes, time.perf_counter() - started)


def random_subset(labels: torch.Tensor, num_classes: int, ipc: int, generator: torch.Generator) -> torch.Tensor:
    """Global indices of ``ipc`` random real examples per class (the honest baseline of equal size)."""
    picks = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c, as_tuple=True)[0]
        picks.append(members[torch.randperm(members.numel(), generator=generator)[:ipc]])
    return torch.cat(picks)
