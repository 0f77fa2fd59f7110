"""Gradient matching (DC, Zhao et al. 2021; DSA with siamese augmentation) with PAD's two filters.

One outer iteration: draw a fresh seeded network; ``outer_loop`` times, for every class c, compare the
cross-entropy gradient of a real batch of class c with that of class c's synthetic images, step the images,
then train the network on the synthetic set for ``inner_loop`` epochs.

The layer distance is DC's: for every parameter tensor reshaped to (out, rest), the sum over output rows of
(1 - cos) between the real and the synthetic gradient; 1-D tensors (biases, norm affines) contribute 0.
PAD's filter on information embedding keeps only the rows that lie after the first ``alpha`` of the flat
parameter vector (module order, shallow first), so the shallow layers drop out of the distance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.matching import ParameterSelection
from pad_sdk.core.params import ParamSpec
from pad_sdk.core.seeding import derive_seed, seeded
from pad_sdk.core.training import TrainRecipe, train_network

# DC's epsilon in the cosine denominator: keeps all-zero gradient rows finite.
COS_EPS = 1e-6


def deep_start_rows(spec: ParamSpec, selection: ParameterSelection) -> tuple[int, ...]:
    """Per parameter tensor, the first output row the deep-only distance keeps.

    The cut is PAD's flat cut (``depth``: floor(alpha * P); ``layer``: nearest layer boundary). A row
    (one output channel's weights, contiguous in the flat vector) is kept iff it starts at or after the
    cut, so a row that straddles the cut is dropped. 0 keeps the whole tensor, ``shape[0]`` none of it.
    """
    if selection.mode == "error":
        raise ValueError("gradient matching supports selection modes none, depth and layer, not error")
    empty = torch.zeros(spec.numel)
    keep = selection.keep(spec, empty, empty)
    assert isinstance(keep, slice)
    cut = keep.start or 0
    rows: list[int] = []
    offset = 0
    for shape, size in zip(spec.shapes, spec.sizes, strict=True):
        out = shape[0] if shape else 1
        rest = size // out
        rows.append(min(out, max(0, math.ceil((cut - offset) / rest))))
        offset += size
    return tuple(rows)


def layer_distance(real: torch.Tensor, synthetic: torch.Tensor, start_row: int = 0) -> torch.Tensor:
    """DC's distance between two gradients of one parameter tensor, over output rows >= ``start_row``.

    Shapes: both (out, ...) ; reshaped to (out, rest). A 1-D tensor (bias, norm) gives 0, as in DC.
    """
    if real.dim() == 1:
        return synthetic.new_zeros(())
    r = real.reshape(real.shape[0], -1)[start_row:]
    s = synthetic.reshape(synthetic.shape[0], -1)[start_row:]
    cos = (r * s).sum(dim=1) / (r.norm(dim=1) * s.norm(dim=1) + COS_EPS)
    return (1.0 - cos).sum()


def gradient_distance(
    real: Sequence[torch.Tensor], synthetic: Sequence[torch.Tensor], start_rows: Sequence[int] | None = None
) -> torch.Tensor:
    """Sum of :func:`layer_distance` over the parameter tensors (in module order)."""
    rows = start_rows if start_rows is not None else [0] * len(real)
    terms = [layer_distance(r, s, k) for r, s, k in zip(real, synthetic, rows, strict=True)]
    return torch.stack(terms).sum()


@dataclass(frozen=True)
class GradientMatchingSettings:
    """DC/DSA budgets. The DC paper: 1000 iterations, (outer, inner) = (1, 1) at IPC1, (10, 50) at IPC10,
    real batch 256, images SGD lr 0.1 momentum 0.5, network SGD lr 0.01."""

    iterations: int = 1000
    outer_loop: int = 1
    inner_loop: int = 1
    batch_real: int = 256
    lr_img: float = 0.1
    momentum: float = 0.5
    lr_net: float = 0.01
    augment: bool = False
    selection: ParameterSelection = field(default_factory=lambda: ParameterSelection("none", 0.0))


def class_gradients(network: nn.Module, images: torch.Tensor, label: int, *, create_graph: bool
                    ) -> tuple[torch.Tensor, ...]:
    """Gradients of the mean cross-entropy of images (B, C, H, W), all of class ``label``, per parameter."""
    logits = network(images)
    targets = torch.full((images.shape[0],), label, dtype=torch.long, device=images.device)
    loss = F.cross_entropy(logits, targets)
    return torch.autograd.grad(loss, list(network.parameters()), create_graph=create_graph)


def _sample(pool: torch.Tensor, size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``size`` random rows of ``pool`` (N, C, H, W) without replacement (all of them if fewer), on ``device``."""
    picks = torch.randperm(pool.shape[0], generator=generator)[:size]
    return pool[picks.to(pool.device)].to(device, non_blocking=True)


def matching_step_loss(
    network: nn.Module,
    synthetic: torch.Tensor,
    classes: torch.Tensor,
    pools: Sequence[torch.Tensor],
    settings: GradientMatchingSettings,
    start_rows: Sequence[int],
    generator: torch.Generator,
    augment: DiffAugment | None,
) -> torch.Tensor:
    """The summed per-class gradient distance for one outer step; differentiable w.r.t. ``synthetic``.

    ``pools[c]``: class c's real images (n_c, C, H, W); ``synthetic`` (S, C, H, W) with ``classes`` (S,).
    With augmentation one siamese draw per class is shared by the real and the synthetic batch (DSA).
    """
    size = tuple(synthetic.shape[-2:])
    total = synthetic.new_zeros(())
    for label, pool in enumerate(pools):
        real = _sample(pool, settings.batch_real, generator, synthetic.device)
        syn = synthetic[classes == label]
        if settings.augment and augment is not None:
            draw = augment.sample(1, size, generator=generator, siamese=True)  # type: ignore[arg-type]
            real, syn = augment.apply(real, draw), augment.apply(syn, draw)
        g_real = [g.detach() for g in class_gradients(network, real, label, create_graph=False)]
        g_syn = class_gradients(network, syn, label, create_graph=True)
        total = total + gradient_distance(g_real, g_syn, start_rows)
    return total


def gradient_matching(
    images: torch.Tensor,
    classes: torch.Tensor,
    pools: Sequence[torch.Tensor],
    build_network: Callable[[], nn.Module],
    settings: GradientMatchingSettings,
    *,
    seed: int,
    generator: torch.Generator,
    augment: DiffAugment | None = None,
    device: torch.device | None = None,
    on_iteration: Callable[[int, float], None] | None = None,
) -> torch.Tensor:
    """Optimise the synthetic images (S, C, H, W) of ``classes`` (S,) by gradient matching; returns a copy.

    Network ``it`` is built with seed ``derive_seed(seed, it)``, so two runs with the same seeds agree.
    The networks and the synthetic set live on ``device`` (default: the images' device); the real pools
    stay where they are and only sampled batches move.
    """
    device = device or images.device
    synthetic = images.detach().to(device).clone().requires_grad_(True)
    classes = classes.to(device)
    optimiser = torch.optim.SGD([synthetic], lr=settings.lr_img, momentum=settings.momentum)
    inner = TrainRecipe(epochs=settings.inner_loop, lr=settings.lr_net, batch_size=256, augment=settings.augment)
    for iteration in range(settings.iterations):
        network = seeded(derive_seed(seed, iteration), build_network).to(device)
        start_rows = deep_start_rows(ParamSpec.of(network), settings.selection)
        loss = synthetic.new_zeros(())
        for outer in range(settings.outer_loop):
            loss = matching_step_loss(network, synthetic, classes, pools, settings, start_rows, generator, augment)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if outer == settings.outer_loop - 1:
                break
            # the network follows the synthetic set between outer steps, as in DC
            train_network(network, synthetic.detach(), classes, inner, generator=generator,
                          augment=augment if settings.augment else None)
        if on_iteration is not None:
            on_iteration(iteration, float(loss.detach()))
    return synthetic.detach()
