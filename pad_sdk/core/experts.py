"""Expert trajectories: networks trained on real data, with their parameters kept after every epoch.

Snapshot k holds the parameters after k epochs (snapshot 0 is the initialisation), so one trajectory of
E epochs is a tensor (E + 1, P). With a :class:`DataSchedule` the expert sees PAD's difficulty-scheduled
subsets (filtering information extraction); with ``static_orders`` it trains on a fixed pruned subset.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
import torch
import torch.nn.functional as F
from torch import nn

from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.matching import soft_cross_entropy
from pad_sdk.core.params import flatten_params
from pad_sdk.core.scheduler import DataSchedule
from pad_sdk.core.seeding import make_generator, seeded
from pad_sdk.core.training import LabelledImages, TrainRecipe, minibatches, train_network

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


class VectorisedExperts:
    """Networks of one architecture trained as one: their parameters stacked (E, ...) and every SGD step one
    ``torch.func.vmap`` over them, so a small network's kernels serve all of them in one launch. SGD is
    elementwise, so one optimizer over the stacked tensors is each network's own; the summed loss keeps their
    gradients apart. Networks with buffers (batch norm's running statistics, updated in place per call) or
    dropout (random per call, which vmap refuses) cannot be stacked this way (:meth:`supports`)."""

    def __init__(self, networks: Sequence[nn.Module], recipe: TrainRecipe, *, soft: bool) -> None:
        self.params, _ = torch.func.stack_module_state(list(networks))  # name -> (E, *shape) leaves
        template = copy.deepcopy(networks[0]).to("meta")  # the forward's structure; its weights are never used
        template.train()

        def expert_loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            logits = torch.func.functional_call(template, params, (x,))
            return soft_cross_entropy(logits, y) if soft else F.cross_entropy(logits, y)

        self._losses = torch.func.vmap(expert_loss)
        self.optimizer = torch.optim.SGD(list(self.params.values()), lr=recipe.lr, momentum=recipe.momentum,
                                         weight_decay=recipe.weight_decay)

    @staticmethod
    def supports(network: nn.Module) -> bool:
        dropout = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
        return not any(True for _ in network.buffers()) and not any(isinstance(m, dropout) for m in network.modules())

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One SGD step of every network on its own batch: x (E, B, C, H, W), y (E, B) or (E, B, K)."""
        loss = self._losses(self.params, x, y).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def flat(self, index: int) -> torch.Tensor:
        """Network ``index``'s parameters (P,) on the host, in module order (a copy, never the live weights)."""
        with torch.no_grad():
            return torch.cat([p[index].reshape(-1) for p in self.params.values()]).cpu()


def train_expert_group(
    data: LabelledImages,
    build_network: Callable[[], nn.Module],
    recipe: TrainRecipe,
    plan: ExpertPlan,
    *,
    seeds: Sequence[int],
    augment: DiffAugment | None = None,
    device: torch.device | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> list[torch.Tensor]:
    """Train one expert per seed at once (:class:`VectorisedExperts`); their trajectories, in seed order.

    For a GPU that one small expert leaves idle (the first GPU run trained one at ~54,000 images/s on an H200).
    Each expert keeps its own generator, so it draws the initialisation, shuffles and augmentations that
    :func:`train_expert` with its seed draws: its trajectory equals that one up to float rounding (with TF32
    off: TF32 rounds a grouped convolution differently from a plain one). One seed is :func:`train_expert`.
    Callers check :meth:`VectorisedExperts.supports` first and train other networks one at a time, storing each
    as it ends.
    """
    device = device or data.images.device
    if len(seeds) == 1:
        return [train_expert(data, build_network, recipe, plan, seed=seeds[0], augment=augment, device=device,
                             on_epoch=on_epoch)]
    networks = [seeded(seed, build_network).to(device) for seed in seeds]
    if not VectorisedExperts.supports(networks[0]):
        raise ValueError("this network has buffers or dropout: its experts cannot be trained together")
    experts = VectorisedExperts(networks, recipe, soft=data.labels.dim() == 2)
    del networks
    generators = [make_generator(seed) for seed in seeds]
    images, targets = data.images.to(device), data.labels.to(device)
    pick = plan.epoch_indices(recipe.epochs)
    everything = torch.arange(images.shape[0])
    snapshots = [[experts.flat(e)] for e in range(len(seeds))]
    for epoch in range(recipe.epochs):
        if recipe.decay_at_half and epoch == recipe.epochs // 2:
            experts.set_lr(recipe.lr * 0.1)
        indices = (pick(epoch) if pick is not None else everything).cpu()
        # every expert's shuffle first, then per step its augmentation: the order train_network draws them in
        orders = [list(minibatches(indices, recipe.batch_size, g)) for g in generators]
        for step in range(len(orders[0])):
            xs, ys = [], []
            for order, generator in zip(orders, generators, strict=True):
                x = images[order[step]].to(device, non_blocking=True)
                if augment is not None and recipe.augment:
                    x = augment(x, generator=generator)
                xs.append(x)
                ys.append(targets[order[step]].to(device, non_blocking=True))
            experts.step(torch.stack(xs), torch.stack(ys))
        for e, kept in enumerate(snapshots):
            kept.append(experts.flat(e))
        if on_epoch is not None:
            on_epoch(epoch)
    trajectories = [torch.stack(kept) for kept in snapshots]
    log.debug("expert.group_trained", seeds=list(seeds), epochs=recipe.epochs, params=trajectories[0].shape[1])
    return trajectories
