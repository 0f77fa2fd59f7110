"""Distribution matching (DM, Zhao & Bilen 2023) with PAD's two filters.

Every iteration draws a fresh seeded random network (never trained) and matches, per class, the mean
features of augmented real images with the mean features of the class's augmented synthetic images (one
siamese augmentation draw per class, shared by both).

Which features: the outputs of the network's blocks (a ConvNet block is conv -> norm -> ReLU -> pool),
each flattened. Without PAD's embedding filter every block's output is matched (shallow and deep
features); with it the first ``ceil(alpha * depth)`` blocks are dropped (at least one block always stays),
so only deep features are matched. On a depth-2 ConvNet with alpha in (0, 0.5] that leaves the last
block's output, i.e. exactly the embedding before the classifier that published DM matches:

    loss = sum_c sum_{b in kept} || mean_i phi_b(aug(real_{c,i})) - mean_j phi_b(aug(syn_{c,j})) ||^2
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.seeding import derive_seed, seeded


def kept_blocks(depth: int, alpha: float) -> range:
    """Indices of the blocks whose features are matched: all for alpha 0, else all after the first
    ceil(alpha * depth), keeping at least the last block."""
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    return range(min(depth - 1, math.ceil(alpha * depth)), depth)


def block_features(network: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Flattened output (N, D_b) of every block of ``network`` on x (N, C, H, W), shallow first.

    A ConvNet's ``features`` are split at each convolution (a block runs from one conv to the next);
    networks without that structure yield one block, their ``embed``.
    """
    layers = getattr(network, "features", None)
    if not isinstance(layers, nn.Sequential):
        return [network.embed(x)]  # type: ignore[operator]
    outputs: list[torch.Tensor] = []
    h = x
    for index, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d) and index > 0:
            outputs.append(h.flatten(1))
        h = layer(h)
    outputs.append(h.flatten(1))
    return outputs


def dm_loss(
    network: nn.Module,
    real: Sequence[torch.Tensor],
    synthetic: Sequence[torch.Tensor],
    blocks: Sequence[int] | None = None,
) -> torch.Tensor:
    """Sum over classes c and kept blocks b of || mean phi_b(real[c]) - mean phi_b(synthetic[c]) ||^2.

    ``real[c]`` (n_c, C, H, W) and ``synthetic[c]`` (s_c, C, H, W) are already augmented; ``blocks=None``
    matches every block.
    """
    total: torch.Tensor | None = None
    for real_c, syn_c in zip(real, synthetic, strict=True):
        f_real = block_features(network, real_c)
        f_syn = block_features(network, syn_c)
        chosen = range(len(f_real)) if blocks is None else blocks
        for b in chosen:
            term = ((f_real[b].mean(dim=0) - f_syn[b].mean(dim=0)) ** 2).sum()
            total = term if total is None else total + term
    assert total is not None, "dm_loss needs at least one class"
    return total


@dataclass(frozen=True)
class DistributionMatchingSettings:
    """DM budgets. The DM paper: 20000 iterations, real batch 256, images SGD lr 1.0 momentum 0.5, DSA on."""

    iterations: int = 20000
    batch_real: int = 256
    lr_img: float = 1.0
    momentum: float = 0.5
    augment: bool = True
    alpha: float = 0.0


def distribution_matching(
    images: torch.Tensor, classes: torch.Tensor, pools: Sequence[torch.Tensor],
    build_network: Callable[[], nn.Module], settings: DistributionMatchingSettings, *, seed: int,
    generator: torch.Generator, augment: DiffAugment | None = None, device: torch.device | None = None,
    on_iteration: Callable[[int, float], None] | None = None,
) -> torch.Tensor:
    """Optimise synthetic images (S, C, H, W) of ``classes`` (S,) by DM against ``pools[c]`` (n_c, C, H, W).

    The networks and the synthetic set live on ``device`` (default: the images' device); real batches move there.
    """
    device = device or images.device
    synthetic = images.detach().to(device).clone().requires_grad_(True)
    classes = classes.to(device)
    optimiser = torch.optim.SGD([synthetic], lr=settings.lr_img, momentum=settings.momentum)
    size = tuple(images.shape[-2:])
    for iteration in range(settings.iterations):
        network = seeded(derive_seed(seed, iteration), build_network).to(device)
        for p in network.parameters():
            p.requires_grad_(False)  # the random network only embeds; nothing trains it
        depth = len(block_features(network, synthetic[:1]))
        blocks = list(kept_blocks(depth, settings.alpha))
        real_batches, syn_batches = [], []
        for label, pool in enumerate(pools):
            picks = torch.randperm(pool.shape[0], generator=generator)[: settings.batch_real]
            real = pool[picks.to(pool.device)].to(device, non_blocking=True)
            syn = synthetic[classes == label]
            if settings.augment and augment is not None:
                draw = augment.sample(1, size, generator=generator, siamese=True)  # type: ignore[arg-type]
                real, syn = augment.apply(real, draw), augment.apply(syn, draw)
            real_batches.append(real)
            syn_batches.append(syn)
        loss = dm_loss(network, real_batches, syn_batches, blocks)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if on_iteration is not None:
            on_iteration(iteration, float(loss.detach()))
    return synthetic.detach()
