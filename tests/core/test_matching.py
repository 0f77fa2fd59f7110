"""Trajectory matching numerics, each checked against a slow, obvious reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.matching import (
    ParameterSelection,
    StudentProblem,
    match_full,
    match_recompute,
    matching_loss,
    plan_unroll,
    soft_cross_entropy,
    unroll_student,
)
from pad_sdk.core.networks import create_network
from pad_sdk.core.params import ParamSpec, flatten_params, load_flat_params
from pad_sdk.core.seeding import make_generator, seeded


def _problem(
    augment: DiffAugment | None = None, channels: int = 1, size: int = 8
) -> tuple[StudentProblem, torch.Tensor]:
    net = seeded(0, lambda: create_network("convnet", in_channels=channels, num_classes=3, image_size=(size, size),
                                           width=6, depth=2))
    g = make_generator(1)
    images = torch.randn(9, channels, size, size, generator=g).requires_grad_(True)
    logits = torch.randn(9, 3, generator=g).requires_grad_(True)
    lr = torch.tensor(0.05, requires_grad=True)
    return StudentProblem(net, ParamSpec.of(net), images, logits, lr, augment), flatten_params(net)


@pytest.mark.parametrize("augment", [None, DiffAugment()])
def test_functional_unroll_equals_a_plain_module_sgd_loop(augment: DiffAugment | None) -> None:
    problem, start = _problem(augment)
    plan = plan_unroll(9, steps=5, batch_size=4, image_size=(8, 8), augment=augment, generator=make_generator(2))
    student = unroll_student(problem, start, plan)

    # reference: an ordinary nn.Module trained with torch.optim.SGD on the same batches and draws
    reference = seeded(0, lambda: create_network("convnet", in_channels=1, num_classes=3, image_size=(8, 8),
                                                 width=6, depth=2))
    load_flat_params(reference, start)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.05)
    for step in range(plan.steps):
        idx = plan.batches[step]
        x = problem.images.detach()[idx]
        draw = plan.draws[step]
        if draw is not None and augment is not None:
            x = augment.apply(x, draw)
        loss = soft_cross_entropy(reference(x), problem.label_logits.detach()[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.allclose(student.detach(), flatten_params(reference), atol=1e-6)


def test_plan_walks_a_permutation_and_refills() -> None:
    plan = plan_unroll(5, steps=4, batch_size=2, image_size=(8, 8), augment=None, generator=make_generator(0))
    sizes = [b.numel() for b in plan.batches]
    # 5 = 2 + 2 + 1, taken from the end as the official loops pop() them, then a fresh permutation
    assert sizes == [1, 2, 2, 1]
    first_epoch = torch.cat(plan.batches[:3])
    assert sorted(first_epoch.tolist()) == list(range(5))


def _loop_loss(student: torch.Tensor, start: torch.Tensor, target: torch.Tensor, kept: list[int]) -> float:
    num = sum((float(student[i]) - float(target[i])) ** 2 for i in kept)
    den = sum((float(start[i]) - float(target[i])) ** 2 for i in kept)
    return num / den


def _vectors(n: int = 40) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = make_generator(3)
    return torch.randn(n, generator=g), torch.randn(n, generator=g), torch.randn(n, generator=g)


# a parameter layout of two layers (weight + bias each): a = 0..20, b = 20..40
SPEC = ParamSpec(("a.weight", "a.bias", "b.weight", "b.bias"), ((5,), (15,), (12,), (8,)))


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.75])
def test_depth_selection_drops_exactly_the_first_alpha(ratio: float) -> None:
    student, start, target = _vectors()
    keep = ParameterSelection("depth", ratio).keep(SPEC, student, target)
    dropped = math.floor(ratio * 40)
    kept = list(range(dropped, 40))
    assert torch.arange(40)[keep].tolist() == kept
    assert float(matching_loss(student, start, target, keep)) == pytest.approx(
        _loop_loss(student, start, target, kept), rel=1e-5
    )


def test_layer_selection_cuts_at_the_nearest_layer_boundary() -> None:
    student, start, target = _vectors()
    # layers: a (0..20), b (20..40); a flat cut at 0.4*40 = 16 is nearer to 20 than to 0
    keep = ParameterSelection("layer", 0.4).keep(SPEC, student, target)
    kept = list(range(20, 40))
    assert torch.arange(40)[keep].tolist() == kept
    assert float(matching_loss(student, start, target, keep)) == pytest.approx(
        _loop_loss(student, start, target, kept), rel=1e-5
    )
    # 0.2 * 40 = 8 is nearer to 0: nothing is dropped
    assert torch.arange(40)[ParameterSelection("layer", 0.2).keep(SPEC, student, target)].tolist() == list(range(40))


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.9])
def test_error_selection_keeps_the_largest_current_errors(ratio: float) -> None:
    student, start, target = _vectors()
    keep = ParameterSelection("error", ratio).keep(SPEC, student, target)
    errors = [(float(student[i]) - float(target[i])) ** 2 for i in range(40)]
    kept = sorted(range(40), key=lambda i: -errors[i])[: 40 - math.floor(ratio * 40)]
    assert sorted(keep.tolist()) == sorted(kept)
    assert float(matching_loss(student, start, target, keep)) == pytest.approx(
        _loop_loss(student, start, target, kept), rel=1e-5
    )


def test_no_selection_is_the_mtt_loss() -> None:
    student, start, target = _vectors()
    keep = ParameterSelection("none", 0.5).keep(SPEC, student, target)
    expected = float(((student - target) ** 2).sum() / ((start - target) ** 2).sum())
    assert float(matching_loss(student, start, target, keep)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("mode", ["depth", "error"])
def test_recompute_mode_gives_the_same_loss_and_gradients_as_the_full_graph(mode: str) -> None:
    augment = DiffAugment()
    grads = []
    for match in (match_full, match_recompute):
        problem, start = _problem(augment)
        target = start + 0.05 * torch.randn(start.shape, generator=make_generator(4))
        plan = plan_unroll(9, steps=6, batch_size=4, image_size=(8, 8), augment=augment, generator=make_generator(5))
        loss = match(problem, start, target, plan, ParameterSelection(mode, 0.5))
        grads.append((loss, problem.images.grad.clone(), problem.label_logits.grad.clone(), problem.lr.grad.clone()))
    (l1, i1, y1, a1), (l2, i2, y2, a2) = grads
    assert float(l1) == pytest.approx(float(l2), rel=1e-5)
    assert torch.allclose(i1, i2, rtol=1e-4, atol=1e-7)
    assert torch.allclose(y1, y2, rtol=1e-4, atol=1e-7)
    assert torch.allclose(a1, a2, rtol=1e-4, atol=1e-7)
    assert i1.abs().sum() > 0 and a1.abs() > 0


def test_soft_cross_entropy_with_one_hot_logits_is_cross_entropy() -> None:
    logits = torch.randn(6, 4, generator=make_generator(0))
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    hard = F.one_hot(labels, 4).float() * 1000.0
    assert float(soft_cross_entropy(logits, hard)) == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-6)
