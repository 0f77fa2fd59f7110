"""Expert trajectories: networks trained on real data, with their parameters kept after every epoch.

Snapshot k holds the parameters after k epochs (snapshot 0 is the initialisation), so one trajectory of
E epochs is a tensor (E + 1, P). With a :class:`DataSchedule` the expert sees PAD's difficulty-scheduled
subsets (filtering information extraction); with ``static_orders`` it trains on a fixed pruned subset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog
import torch
from torch import nn

from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.params import flatten_params
from pad_sdk.core.scheduler import DataSchedule
from pad_sdk.core.seeding import make_generator, seeded
from pad_sdk.core.training import LabelledImages, TrainRecipe, train_network

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ExpertPlan:
    """How each expert picks its data: PAD's scheduler, a fixed subset, or everything.

    ``orders[c]``: class c's global indices, easiest first (needed by the scheduler).
    ``subset``: global indices of a statically pruned pool (used when ``schedule`` is None).
    """

    schedule: DataSchedule | None = None
    orders: tuple[torch.Tensor, ...] | None = None
    subset: torch.Tensor | None = None

    def epoch_indices(self, num_epochs: int) -> Callable[[int], torch.Tensor] | None:
        if self.schedule is not None:
            if self.orders is None:
                raise ValueError("the data scheduler needs per-class difficulty orders")
            schedule, orders = self.schedule, list(self.orders)
            return lambda epoch: schedule.indices(orders, epoch, num_epochs)
        if self.subset is not None:
            subset = self.subset
            return lambda epoch: subset
        return None


def train_expert(
    data: LabelledImages,
    build_network: Callable[[], nn.Module],
    recipe: TrainRecipe,
    plan: ExpertPlan,
    *,
    seed: int,
    augment: DiffAugment | None = None,
    device: torch.device | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Train one expert and return its trajectory (E + 1, P) on the CPU, float32 (``on_epoch(e)`` after each
    epoch's snapshot: progress and budget checks)."""
    device = device or data.images.device
    network = seeded(seed, build_network).to(device)
    snapshots = [flatten_params(network).cpu()]

    def snapshot(epoch: int, net: nn.Module) -> None:
        snapshots.append(flatten_params(net).cpu())
        if on_epoch is not None:
            on_epoch(epoch)

    train_network(
        network,
        data.images.to(device),
        data.labels.to(device),
        recipe,
        generator=make_generator(seed),
        augment=augment,
        epoch_indices=plan.epoch_indices(recipe.epochs),
        on_epoch_end=snapshot,
    )
    trajectory = torch.stack(snapshots)
    log.debug("expert.trained", seed=seed, epochs=recipe.epochs, params=trajectory.shape[1])
    return trajectory
