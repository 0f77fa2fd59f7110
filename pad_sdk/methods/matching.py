"""Gradient matching (DC, DSA) and distribution matching (DM), with PAD's filters as switches.

- ``fiex``: the real pool is pruned per class by EL2N before matching (PAD's static ablation: the 20 %
  hardest removed at IPC <= 10, the 10 % easiest above; see ``ExpertSettings.static_ratios``).
- ``fiem``: only deep layers are matched: DC sums the gradient distance over the rows after the first
  alpha of the flat parameter vector; DM matches the features of the blocks after the first alpha of the
  blocks. alpha defaults to 0.25 up to IPC 50 and 0.75 above (the paper's best GM/DM ratios, section 3.3).

Budgets are per preset (``paper`` is the published one); both methods start from random real images of
the (pruned) pool and return hard labels with the evaluation step size of the random baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pad_sdk.core.distill import SyntheticSet
from pad_sdk.core.distribution_matching import DistributionMatchingSettings, distribution_matching
from pad_sdk.core.gradient_matching import GradientMatchingSettings, gradient_matching
from pad_sdk.core.matching import ParameterSelection
from pad_sdk.core.seeding import derive_seed, make_generator
from pad_sdk.methods.base import MethodContext, hard_labelled

# (iterations, outer_loop, inner_loop, real batch) for DC at IPC <= 1, <= 10, above; DM (iterations, batch).
# cpu-small shrinks the published budgets (DC 1000 it, (1,1)/(10,50)/(50,10); DM 20000 it) 50-400x so that a
# run takes well under a minute on two shared cores (they are far from converged).
_DC_BUDGETS: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "paper": ((1000, 1, 1, 256), (1000, 10, 50, 256), (1000, 50, 10, 256)),
    "cpu-small": ((20, 1, 1, 128), (8, 3, 3, 128), (8, 3, 3, 128)),
    "tiny": ((2, 1, 1, 32), (2, 2, 1, 32), (2, 2, 1, 32)),
}
_DM_BUDGETS: dict[str, tuple[int, int]] = {"paper": (20000, 256), "cpu-small": (50, 128), "tiny": (3, 32)}


def default_alpha(ipc: int) -> float:
    """Share of shallow parameters (DC) or blocks (DM) dropped by ``fiem``."""
    return 0.25 if ipc <= 50 else 0.75


def _initial_images(context: MethodContext, pools: list[torch.Tensor], ipc: int, seed: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random real images (ipc per class) from the pools, and their classes (S,)."""
    generator = make_generator(derive_seed(context.seed, 71, ipc, seed))
    picks = torch.cat([pool[torch.randperm(pool.numel(), generator=generator)[:ipc]] for pool in pools])
    return context.data.train.images[picks].clone(), context.data.train.labels[picks].clone()


def _budget_index(ipc: int) -> int:
    return 0 if ipc <= 1 else 1 if ipc <= 10 else 2


@dataclass(frozen=True)
class _MatchingSwitches:
    """What DC and DM share: PAD's two filters, augmentation, the fiem share and an iteration override."""

    name: str = ""
    fiex: bool = False
    fiem: bool = False
    augment: bool = False
    alpha: float | None = None
    iterations: int | None = None

    def kept_alpha(self, ipc: int) -> float:
        """The share fiem drops at ``ipc`` (0 without fiem)."""
        if not self.fiem:
            return 0.0
        return self.alpha if self.alpha is not None else default_alpha(ipc)


@dataclass(frozen=True)
class GradientMatchingMethod(_MatchingSwitches):
    """DC (``augment=False``) or DSA (``augment=True``); ``iterations`` overrides the preset budget."""

    name: str = "dc"

    def settings(self, preset: str, ipc: int) -> GradientMatchingSettings:
        iterations, outer, inner, batch = _DC_BUDGETS.get(preset, _DC_BUDGETS["cpu-small"])[_budget_index(ipc)]
        alpha = self.kept_alpha(ipc)
        return GradientMatchingSettings(
            iterations=self.iterations or iterations, outer_loop=outer, inner_loop=inner, batch_real=batch,
            augment=self.augment,
            selection=ParameterSelection("depth" if self.fiem else "none", alpha),
        )

    def condense(self, context: MethodContext, ipc: int, seed: int) -> SyntheticSet:
        return _condense(context, ipc, seed, self.fiex, gradient_matching, self.settings(context.preset, ipc), 72)


@dataclass(frozen=True)
class DistributionMatchingMethod(_MatchingSwitches):
    """DM with DSA augmentation; ``iterations`` overrides the preset budget."""

    name: str = "dm"
    augment: bool = True

    def settings(self, preset: str, ipc: int) -> DistributionMatchingSettings:
        iterations, batch = _DM_BUDGETS.get(preset, _DM_BUDGETS["cpu-small"])
        alpha = self.kept_alpha(ipc)
        return DistributionMatchingSettings(
            iterations=self.iterations or iterations, batch_real=batch, augment=self.augment,
            alpha=alpha,
        )

    def condense(self, context: MethodContext, ipc: int, seed: int) -> SyntheticSet:
        return _condense(context, ipc, seed, self.fiex, distribution_matching, self.settings(context.preset, ipc),
                         74)


def _condense(context: MethodContext, ipc: int, seed: int, fiex: bool, match: Any, settings: Any,
              stream: int) -> SyntheticSet:
    """Shared by DC and DM: real pools (pruned when ``fiex``), real initial images, ``match`` them, hard labels.

    ``stream`` separates the two methods' seeds (``stream`` for networks, ``stream + 1`` for the generator).
    """
    config = context.config(ipc)
    stages = context.stages(config)
    pools = context.real_pools(config, fiex)
    images, classes = _initial_images(context, pools, ipc, seed)
    real = [context.data.train.images[pool] for pool in pools]
    result = match(
        images, classes, real, stages.network_factory(), settings,
        seed=derive_seed(context.seed, stream, ipc, seed),
        generator=make_generator(derive_seed(context.seed, stream + 1, seed)),
        augment=stages.augment, device=stages.device,
    )
    return hard_labelled(context, result, classes, config.evaluation.random_lr)
