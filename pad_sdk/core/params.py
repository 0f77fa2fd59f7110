"""Flat parameter vectors: the representation trajectory matching works in.

A network's parameters are flattened in module order (shallow layers first), exactly as experts are
stored in the trajectory store; PAD's depth-based selection relies on that order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call


@dataclass(frozen=True)
class ParamSpec:
    """Names, shapes and offsets of a network's parameters in flattened module order."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, module: nn.Module) -> ParamSpec:
        named = list(module.named_parameters())
        return cls(tuple(n for n, _ in named), tuple(tuple(p.shape) for _, p in named))

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(math.prod(s) for s in self.shapes)

    @property
    def numel(self) -> int:
        return sum(self.sizes)

    def layer_boundaries(self) -> tuple[int, ...]:
        """Flat offsets at which a new parameter-owning module (layer) starts, plus the total size.

        ``features.0.weight`` and ``features.0.bias`` belong to one layer, so no boundary falls between them.
        """
        boundaries: list[int] = []
        offset = 0
        previous_owner = None
        for name, size in zip(self.names, self.sizes, strict=True):
            owner = name.rsplit(".", 1)[0]
            if owner != previous_owner:
                boundaries.append(offset)
                previous_owner = owner
            offset += size
        boundaries.append(offset)
        return tuple(boundaries)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of ``flat`` (P,) shaped like each parameter; gradients flow back into ``flat``."""
        chunks = torch.split(flat, list(self.sizes))
        return {name: chunk.view(shape) for name, chunk, shape in zip(self.names, chunks, self.shapes, strict=True)}


def flatten_params(module: nn.Module) -> torch.Tensor:
    """A detached copy (P,) of the module's parameters in module order.

    The explicit clone matters: on a CPU ``.cpu()`` returns the live tensor, and snapshots that alias the
    weights would all equal the final ones (a pitfall of the official buffer script).
    """
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).clone()


def device_of(module: nn.Module) -> torch.device:
    """The device of a module's parameters (the host for a module without any)."""
    first = next(module.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def load_flat_params(module: nn.Module, flat: torch.Tensor) -> None:
    """Copy a flat vector (P,) into the module's parameters in place."""
    spec = ParamSpec.of(module)
    with torch.no_grad():
        for param, value in zip(module.parameters(), spec.unflatten(flat.to(device_of(module))).values(),
                                strict=True):
            param.copy_(value)


def functional_forward(module: nn.Module, spec: ParamSpec, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Run ``module`` on ``x`` with its parameters replaced by the flat vector ``flat`` (P,).

    Buffers (batch-norm statistics) come from the module itself.
    """
    tensors: dict[str, torch.Tensor] = dict(module.named_buffers())
    tensors.update(spec.unflatten(flat))
    return functional_call(module, tensors, (x,))
