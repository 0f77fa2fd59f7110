"""EL2N difficulty scoring (Paul et al., 2021), the input of PAD's data scheduler.

EL2N(x, y) = mean over k short agent runs of || softmax(f(x)) - onehot(y) ||_2, taken early in training.
Only (index, score) pairs are kept, never the data.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
import torch
import torch.nn.functional as F
from torch import nn

from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.seeding import derive_seed, make_generator, seeded
from pad_sdk.core.training import LabelledImages, TrainRecipe, predict_logits, train_network

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ScoringRecipe:
    """``runs`` agents trained for ``recipe.epochs`` each; the Data Diet paper used 10 runs, epochs 10-20."""

    runs: int
    recipe: TrainRecipe


def el2n_of(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example EL2N (N,) from logits (N, K) and labels (N,)."""
    error = F.softmax(logits, dim=1) - F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return error.norm(dim=1)


def el2n_run(
    data: LabelledImages,
    build_network: Callable[[], nn.Module],
    scoring: ScoringRecipe,
    run: int,
    *,
    seed: int,
    augment: DiffAugment | None = None,
    device: torch.device | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """EL2N score (N,) float64 of every example after agent ``run`` (seeded by ``seed`` and ``run`` only, so
    the runs of one scoring can be computed anywhere, in any order); ``on_epoch(e)`` after each agent epoch."""
    device = device or data.images.device
    images, labels = data.images.to(device), data.labels.to(device)
    run_seed = derive_seed(seed, 1, run)
    agent = seeded(run_seed, build_network).to(device)
    train_network(agent, images, labels, scoring.recipe, generator=make_generator(run_seed), augment=augment,
                  on_epoch_end=None if on_epoch is None else lambda epoch, _net: on_epoch(epoch))
    return el2n_of(predict_logits(agent, images), labels).double().cpu()


def mean_of_runs(runs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The mean score (N,) float32 of the runs, summed in run order (the same bits wherever they ran)."""
    total = torch.zeros_like(runs[0], dtype=torch.float64)
    for scores in runs:
        total += scores
    return (total / len(runs)).float()


def el2n_scores(
    data: LabelledImages,
    build_network: Callable[[], nn.Module],
    scoring: ScoringRecipe,
    *,
    seed: int,
    augment: DiffAugment | None = None,
    device: torch.device | None = None,
    on_run_end: Callable[[int], None] | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Mean EL2N score (N,) of every example over ``scoring.runs`` independently seeded agents
    (``on_epoch(run, epoch)`` after each agent epoch, ``on_run_end(run)`` after each agent)."""
    device = device or data.images.device
    data = LabelledImages(data.images.to(device), data.labels.to(device), data.num_classes)  # once, not per agent
    runs = []
    for run in range(scoring.runs):
        each = None if on_epoch is None else functools.partial(on_epoch, run)
        runs.append(el2n_run(data, build_network, scoring, run, seed=seed, augment=augment, device=device,
                             on_epoch=each))
        log.debug("scoring.run_done", run=run, of=scoring.runs)
        if on_run_end is not None:
            on_run_end(run)
    return mean_of_runs(runs)


def class_orders(scores: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[torch.Tensor]:
    """Per class, the global indices sorted easiest (lowest score) first; ties keep data order."""
    orders = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c, as_tuple=True)[0]
        ranking = torch.sort(scores[members], stable=True).indices
        orders.append(members[ranking])
    return orders
