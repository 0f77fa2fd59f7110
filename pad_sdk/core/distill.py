"""The distillation loop: optimise synthetic images, soft labels and a step size to follow the experts.

One iteration (DATM with PAD's filters; PAD paper, Algorithm 1):
  1. take the next expert (shuffled, cycled) and a start epoch t in [T-, U(it)) (sequential generation);
  2. unroll N student SGD steps from expert_t on synthetic minibatches (DSA, soft cross-entropy);
  3. loss = normalised distance to expert_{t+M} over the coordinates PAD's parameter selection keeps;
  4. backpropagate to images, labels and step size; step the optimisers only if loss <= threshold.

No I/O and no logging set-up here: progress leaves through the ``on_iteration`` callback.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from torch import nn

from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.matching import UNROLL_MODES, ParameterSelection, SelectionMode, StudentProblem, plan_unroll
from pad_sdk.core.memory import UnrollChoice, choose_unroll, default_budget
from pad_sdk.core.params import ParamSpec
from pad_sdk.core.synthetic import SyntheticSet
from pad_sdk.errors import DistillationError


class DistillSettings(Protocol):
    """The settings the distillation reads (``pad_sdk.config.DistillSettings`` provides them; the core does not
    import the configuration layer). Names follow the official code's arguments where it has them."""

    @property
    def syn_steps(self) -> int: ...  # N: unrolled student steps per iteration
    @property
    def expert_epochs(self) -> int: ...  # M: expert epochs the student must cover
    @property
    def min_start_epoch(self) -> int: ...  # T-
    @property
    def current_max_start_epoch(self) -> int: ...  # T
    @property
    def max_start_epoch(self) -> int: ...  # T+
    @property
    def expansion_end(self) -> int | None: ...  # iterations over which T grows to T+
    @property
    def lr_img(self) -> float: ...
    @property
    def lr_lr(self) -> float: ...
    @property
    def lr_y(self) -> float: ...
    @property
    def lr_init(self) -> float: ...
    @property
    def image_momentum(self) -> float: ...
    @property
    def lr_momentum(self) -> float: ...
    @property
    def label_momentum(self) -> float: ...
    @property
    def batch_syn(self) -> int | None: ...
    @property
    def threshold(self) -> float: ...
    @property
    def selection_mode(self) -> SelectionMode: ...
    @property
    def selection_ratio(self) -> float: ...
    @property
    def pix_init(self) -> Literal["correct", "real", "herding", "noise"]: ...
    @property
    def soft_labels(self) -> bool: ...
    @property
    def learn_labels(self) -> bool: ...
    @property
    def learn_lr(self) -> bool: ...
    @property
    def unroll(self) -> Literal["auto", "full", "recompute"]: ...  # auto | full | recompute
    @property
    def memory_budget_gib(self) -> float | None: ...
    @property
    def augment(self) -> bool: ...


class ExpertSource(Protocol):
    """Indexable expert trajectories: ``source[i]`` is a tensor (E + 1, P)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> torch.Tensor: ...


def start_epoch_bound(settings: DistillSettings, iteration: int) -> int:
    """U(it): the exclusive upper bound of the start epoch, growing from T to T+ (sequential generation)."""
    if settings.expansion_end is None:
        return settings.max_start_epoch
    grown = settings.current_max_start_epoch + math.floor(
        (settings.max_start_epoch - settings.current_max_start_epoch) * iteration / settings.expansion_end
    )
    return min(settings.max_start_epoch, grown)


@dataclass
class IterationRecord:
    iteration: int
    expert: int
    start_epoch: int
    loss: float
    stepped: bool
    lr: float


@dataclass
class Distiller:
    """Holds the synthetic set and its optimisers; ``run`` performs the iterations.

    ``compute_gradients`` and ``apply_step`` are separate so that a data-parallel runtime can average
    the gradients of several workers (each matching its own trajectory segment) between them.
    """

    synthetic: SyntheticSet
    network: nn.Module
    experts: ExpertSource
    settings: DistillSettings
    generator: torch.Generator
    augment: DiffAugment | None = None
    iteration: int = 0
    history: list[IterationRecord] = field(default_factory=list)
    unroll: UnrollChoice | None = None  # chosen at the first iteration (``distill.unroll``, default auto)
    _expert_queue: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.settings
        self.spec = ParamSpec.of(self.network)
        self.synthetic.images.requires_grad_(True)
        self.synthetic.label_logits.requires_grad_(s.learn_labels and s.soft_labels)
        self.synthetic.lr.requires_grad_(s.learn_lr)
        self.image_opt = torch.optim.SGD([self.synthetic.images], lr=s.lr_img, momentum=s.image_momentum)
        self.lr_opt = torch.optim.SGD([self.synthetic.lr], lr=s.lr_lr, momentum=s.lr_momentum)
        self.label_opt = torch.optim.SGD([self.synthetic.label_logits], lr=s.lr_y, momentum=s.label_momentum)
        self.selection = ParameterSelection(s.selection_mode, s.selection_ratio)

    def _next_expert(self) -> int:
        if not self._expert_queue:
            self._expert_queue = torch.randperm(len(self.experts), generator=self.generator).tolist()
        return self._expert_queue.pop(0)

    def compute_gradients(self) -> tuple[float, int, int]:
        """Sample a segment, unroll, and leave the matching gradient in the leaves' ``.grad``.

        Returns (loss, expert index, start epoch).
        """
        s = self.settings
        expert = self._next_expert()
        upper = start_epoch_bound(s, self.iteration)
        start_epoch = int(torch.randint(s.min_start_epoch, upper, (1,), generator=self.generator))
        trajectory = self.experts[expert]
        device = self.synthetic.images.device
        start = trajectory[start_epoch].to(device)
        target = trajectory[start_epoch + s.expert_epochs].to(device)
        plan = plan_unroll(
            self.synthetic.images.shape[0],
            s.syn_steps,
            s.batch_syn or self.synthetic.images.shape[0],
            tuple(self.synthetic.images.shape[-2:]),  # type: ignore[arg-type]
            self.augment if s.augment else None,
            self.generator,
        )
        problem = StudentProblem(
            self.network, self.spec, self.synthetic.images, self.synthetic.label_logits, self.synthetic.lr,
            self.augment if s.augment else None,
        )
        if self.unroll is None:
            budget = (int(s.memory_budget_gib * 2**30) if s.memory_budget_gib is not None
                      else default_budget(device))
            self.unroll = choose_unroll(s.unroll, problem, start, plan, budget)
        for opt in (self.image_opt, self.lr_opt, self.label_opt):
            opt.zero_grad(set_to_none=True)
        loss = float(UNROLL_MODES[self.unroll.mode](problem, start, target, plan, self.selection))
        if not math.isfinite(loss):
            raise DistillationError(
                f"matching loss became {loss} at iteration {self.iteration} (expert {expert}, start epoch "
                f"{start_epoch}); lower distill.lr_img or distill.lr_lr",
                iteration=self.iteration,
            )
        return loss, expert, start_epoch

    def apply_step(self, loss: float) -> bool:
        """Step the optimisers if ``loss`` is within the threshold; return whether it stepped."""
        stepped = loss <= self.settings.threshold
        if stepped:
            self.image_opt.step()
            if self.synthetic.lr.requires_grad:
                self.lr_opt.step()
            if self.synthetic.label_logits.requires_grad:
                self.label_opt.step()
            with torch.no_grad():
                # a negative step size would make the student climb the loss; keep it positive
                self.synthetic.lr.clamp_(min=1e-6)
        return stepped

    def step(self, reduce: Callable[[float], float] | None = None) -> IterationRecord:
        """One iteration. ``reduce(loss)`` runs between the gradients and the step: a data-parallel runtime
        averages the leaves' gradients and the loss over its workers there and returns the mean loss."""
        loss, expert, start_epoch = self.compute_gradients()
        if reduce is not None:
            loss = reduce(loss)
        stepped = self.apply_step(loss)
        record = IterationRecord(
            self.iteration, expert, start_epoch, loss, stepped, float(self.synthetic.lr.detach())
        )
        self.history.append(record)
        self.iteration += 1
        return record

    def run(self, iterations: int, on_iteration: Callable[[IterationRecord], None] | None = None, *,
            reduce: Callable[[float], float] | None = None) -> SyntheticSet:
        """Iterate up to ``iterations`` (from the current one: a restored distiller continues)."""
        while self.iteration < iterations:
            record = self.step(reduce)
            if on_iteration is not None:
                on_iteration(record)
        return self.synthetic

    # -- the sampler (which expert, which start epoch): per worker in a data-parallel run ----------------
    def sampler_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "expert_queue": list(self._expert_queue)}

    def load_sampler_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._expert_queue = list(state["expert_queue"])

    def reseed_sampler(self, seed: int) -> None:
        """A fresh segment stream (another worker's, or a new rank's after a resume)."""
        self.generator.manual_seed(seed)
        self._expert_queue = []

    # -- checkpointing: plain tensors and numbers, so any runtime can store them without pickle --------
    def state_dict(self) -> dict[str, Any]:
        return {
            "images": self.synthetic.images.detach().clone(),
            "label_logits": self.synthetic.label_logits.detach().clone(),
            "lr": self.synthetic.lr.detach().clone(),
            "classes": self.synthetic.classes.clone(),
            "iteration": self.iteration,
            "generator": self.generator.get_state(),
            "expert_queue": list(self._expert_queue),
            "optimizers": [opt.state_dict() for opt in (self.image_opt, self.lr_opt, self.label_opt)],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.synthetic.images.copy_(state["images"])
            self.synthetic.label_logits.copy_(state["label_logits"])
            self.synthetic.lr.copy_(state["lr"])
        self.iteration = int(state["iteration"])
        self.generator.set_state(state["generator"])
        self._expert_queue = list(state["expert_queue"])
        for opt, opt_state in zip((self.image_opt, self.lr_opt, self.label_opt), state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
