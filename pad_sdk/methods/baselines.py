"""Real-image baselines of the same size as a condensed set: random, herding, k-center greedy, EL2N.

They return real images with hard labels and the random baseline's evaluation step size, so the one
evaluation protocol judges them like the condensation methods. Herding and k-center embed with a trained
agent (the final checkpoint of the first plain expert); the EL2N subsets use the shared difficulty orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from pad_sdk.core.coresets import el2n_subset, embed, per_class
from pad_sdk.core.distill import SyntheticSet
from pad_sdk.core.evaluate import random_subset
from pad_sdk.core.seeding import derive_seed, make_generator
from pad_sdk.methods.base import MethodContext, hard_labelled

SELECTORS = ("random", "herding", "kcenter", "el2n-easy", "el2n-hard", "el2n-middle")


@dataclass(frozen=True)
class RealSubset:
    """``selector`` picks ``ipc`` real images per class (one of :data:`SELECTORS`)."""

    name: str = "random"
    selector: str = "random"

    def picks(self, context: MethodContext, ipc: int, seed: int) -> torch.Tensor:
        """Global indices of the chosen training images, class by class."""
        train = context.data.train
        config = context.config(ipc)
        if self.selector == "random":
            # seed 0 draws exactly the subset of ``Stages.evaluate_random``
            parts = (config.seed, 51, ipc) if seed == 0 else (config.seed, 51, ipc, seed)
            return random_subset(train.labels, train.num_classes, ipc, make_generator(derive_seed(*parts)))
        if self.selector in ("herding", "kcenter"):
            embeddings = embed(cast(nn.Module, context.agent(ipc)), train.images)
            return per_class(embeddings, train.labels, train.num_classes, ipc, self.selector)
        if self.selector.startswith("el2n-"):
            return el2n_subset(context.orders(config), ipc, self.selector.removeprefix("el2n-"))
        raise ValueError(f"unknown selector {self.selector!r}; choose one of {', '.join(SELECTORS)}")

    def condense(self, context: MethodContext, ipc: int, seed: int) -> SyntheticSet:
        picks = self.picks(context, ipc, seed)
        train = context.data.train
        return hard_labelled(context, train.images[picks], train.labels[picks],
                             context.config(ipc).evaluation.random_lr)


