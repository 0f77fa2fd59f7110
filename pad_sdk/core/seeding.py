"""Seeded construction: every random choice comes from an explicit seed or generator, never the clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (random draws are made on the CPU, then moved)."""
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator


def derive_seed(seed: int, *parts: int) -> int:
    """A distinct, reproducible 63-bit seed for a sub-task (e.g. expert 7 of run seed 0)."""
    value = int(seed) & 0xFFFFFFFFFFFF
    for part in parts:
        value = (value * 1_000_003 + int(part) + 0x9E3779B9) % (2**63 - 1)
    return value


def seeded(seed: int, build: Callable[[], T]) -> T:
    """Run ``build`` with the global CPU RNG temporarily seeded, leaving the caller's RNG state untouched.

    ``torch.nn`` initialises weights from the global RNG; this makes network initialisation reproducible
    without reseeding the process.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()
