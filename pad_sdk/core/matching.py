"""Trajectory matching: the student unroll, PAD's parameter selection, and the normalised matching loss.

Every function here is tensor in, tensor out. Notation (PAD paper, section 3):
``start`` is the expert at epoch t, ``target`` the expert at epoch t+M, ``student`` the student after N
synthetic SGD steps from ``start``. All are flat parameter vectors of shape (P,) in module order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from pad_sdk.core.augment import AugmentDraw, DiffAugment
from pad_sdk.core.params import ParamSpec, functional_forward

SelectionMode = Literal["none", "depth", "layer", "error"]


def soft_cross_entropy(logits: torch.Tensor, label_logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_c softmax(label_logits)_c * log_softmax(logits)_c; both (B, K)."""
    return -(F.softmax(label_logits, dim=1) * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


@dataclass(frozen=True)
class ParameterSelection:
    """PAD's filter on information embedding: which coordinates the matching loss compares.

    - ``none``: every coordinate (DATM/MTT).
    - ``depth`` (the paper): drop the first ``ratio`` of the flattened vector, i.e. the shallow layers.
      The cut falls on a flat index, possibly inside a layer, as in the official ``PAD_depth.py``.
    - ``layer``: like ``depth`` but the cut moves to the nearest layer boundary, so whole layers drop.
    - ``error`` (the current official ``PAD.py``): keep the (1 - ratio) fraction of coordinates whose
      current squared error is largest; recomputed every iteration and not differentiated.
    """

    mode: SelectionMode = "depth"
    ratio: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise ValueError(f"selection ratio must be in [0, 1), got {self.ratio}")

    @property
    def compares_everything(self) -> bool:
        """Whether every coordinate is compared whatever the network (``none``, or nothing to drop): then the
        mode makes no difference (PAD's IPC-1 setting, ratio 0, is DATM's matching)."""
        return self.mode == "none" or self.ratio == 0.0

    def keep(
        self, spec: ParamSpec, student: torch.Tensor, target: torch.Tensor
    ) -> slice | torch.Tensor:
        """The kept coordinates: a slice for contiguous cuts, an index tensor (k,) for ``error``."""
        total = spec.numel
        dropped = math.floor(self.ratio * total)
        if self.mode == "none" or dropped == 0:
            return slice(0, total)
        if self.mode == "depth":
            return slice(dropped, total)
        if self.mode == "layer":
            boundaries = spec.layer_boundaries()[:-1]
            # nearest layer boundary to the flat cut; ties go to the shallower boundary
            cut = min(boundaries, key=lambda b: (abs(b - dropped), b))
            return slice(cut, total)
        if self.mode == "error":
            with torch.no_grad():
                error = (student.detach() - target) ** 2
                return torch.topk(error, total - dropped, sorted=False).indices
        raise ValueError(f"unknown selection mode {self.mode!r}")


def matching_loss(
    student: torch.Tensor, start: torch.Tensor, target: torch.Tensor, keep: slice | torch.Tensor
) -> torch.Tensor:
    """sum_K (student - target)^2 / sum_K (start - target)^2 over the kept coordinates K; all (P,)."""
    numerator = ((student[keep] - target[keep]) ** 2).sum()
    denominator = ((start[keep] - target[keep]) ** 2).sum()
    return numerator / denominator.clamp_min(torch.finfo(denominator.dtype).tiny)


@dataclass(frozen=True)
class UnrollPlan:
    """Every random choice of one unroll, drawn up front so that the unroll can be replayed exactly.

    ``batches[n]`` holds the synthetic indices of step n, ``draws[n]`` its augmentation (or None).
    """

    batches: tuple[torch.Tensor, ...]
    draws: tuple[AugmentDraw | None, ...]

    @property
    def steps(self) -> int:
        return len(self.batches)


def plan_unroll(
    num_synthetic: int,
    steps: int,
    batch_size: int,
    image_size: tuple[int, int],
    augment: DiffAugment | None,
    generator: torch.Generator,
) -> UnrollPlan:
    """Minibatches are chunks of a random permutation taken from its end (the official loops ``pop()`` the
    chunk list, so a smaller remainder chunk comes first), refilled when it runs out (as MTT/DATM/PAD)."""
    batches: list[torch.Tensor] = []
    draws: list[AugmentDraw | None] = []
    chunks: list[torch.Tensor] = []
    for _ in range(steps):
        if not chunks:
            chunks = list(torch.split(torch.randperm(num_synthetic, generator=generator), batch_size))
        batch = chunks.pop()
        batches.append(batch)
        draws.append(augment.sample(batch.numel(), image_size, generator=generator) if augment else None)
    return UnrollPlan(tuple(batches), tuple(draws))


@dataclass(frozen=True)
class StudentProblem:
    """The differentiable inputs of an unroll: synthetic images (S, C, H, W), label logits (S, K), step size ()."""

    network: nn.Module
    spec: ParamSpec
    images: torch.Tensor
    label_logits: torch.Tensor
    lr: torch.Tensor
    augment: DiffAugment | None

    def step_loss(self, theta: torch.Tensor, plan: UnrollPlan, step: int) -> torch.Tensor:
        idx = plan.batches[step]
        x = self.images[idx]
        draw = plan.draws[step]
        if draw is not None and self.augment is not None:
            x = self.augment.apply(x, draw)
        logits = functional_forward(self.network, self.spec, theta, x)
        return soft_cross_entropy(logits, self.label_logits[idx])


def unroll_student(problem: StudentProblem, start: torch.Tensor, plan: UnrollPlan) -> torch.Tensor:
    """N student SGD steps from ``start`` (P,), keeping the graph of every step (memory grows with N)."""
    theta = start.detach().requires_grad_(True)
    for step in range(plan.steps):
        loss = problem.step_loss(theta, plan, step)
        (grad,) = torch.autograd.grad(loss, theta, create_graph=True)
        theta = theta - problem.lr * grad
    return theta


def _student_leaves(problem: StudentProblem) -> list[torch.Tensor]:
    return [t for t in (problem.images, problem.label_logits, problem.lr) if t.requires_grad]


def match_full(problem: StudentProblem, start: torch.Tensor, target: torch.Tensor, plan: UnrollPlan,
               selection: ParameterSelection) -> torch.Tensor:
    """Unroll with the whole graph kept, compute the loss and backpropagate into the leaves' ``.grad``."""
    student = unroll_student(problem, start, plan)
    keep = selection.keep(problem.spec, student, target)
    loss = matching_loss(student, start, target, keep)
    leaves = _student_leaves(problem)
    if leaves:
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        _accumulate(leaves, grads)
    return loss.detach()


def match_recompute(problem: StudentProblem, start: torch.Tensor, target: torch.Tensor, plan: UnrollPlan,
                    selection: ParameterSelection) -> torch.Tensor:
    """The same gradients as :func:`match_full` with the memory of one step instead of N.

    Forward: run the N steps without a graph, keeping only each step's parameters (N+1 vectors of P).
    Backward: walk the steps in reverse, rebuild one step's graph from its stored input and pull the
    adjoint dL/dtheta_n back through it (a reverse-mode sweep with recomputation). It costs one extra
    forward/backward per step and replays the exact same minibatches and augmentation draws.
    """
    thetas = [start.detach()]
    for step in range(plan.steps):
        theta = thetas[-1].requires_grad_(True)
        loss = problem.step_loss(theta, plan, step)
        (grad,) = torch.autograd.grad(loss, theta)
        thetas[-1] = theta.detach()
        thetas.append((theta - problem.lr.detach() * grad).detach())

    student = thetas[-1].requires_grad_(True)
    keep = selection.keep(problem.spec, student, target)
    loss = matching_loss(student, start, target, keep)
    (adjoint,) = torch.autograd.grad(loss, student)

    leaves = _student_leaves(problem)
    for step in reversed(range(plan.steps)):
        theta_in = thetas[step].requires_grad_(True)
        step_loss = problem.step_loss(theta_in, plan, step)
        (grad,) = torch.autograd.grad(step_loss, theta_in, create_graph=True)
        theta_out = theta_in - problem.lr * grad
        grads = torch.autograd.grad(theta_out, [theta_in, *leaves], grad_outputs=adjoint, allow_unused=True)
        adjoint = grads[0].detach()
        _accumulate(leaves, grads[1:])
    return loss.detach()


def _accumulate(leaves: list[torch.Tensor], grads: tuple[torch.Tensor | None, ...]) -> None:
    for leaf, grad in zip(leaves, grads, strict=True):
        if grad is None:
            continue
        leaf.grad = grad.detach() if leaf.grad is None else leaf.grad + grad.detach()


UNROLL_MODES = {"full": match_full, "recompute": match_recompute}
