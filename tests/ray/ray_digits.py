"""The small, fixed case every Ray test runs: sklearn's digits, the ``tiny`` preset at IPC 2, 8 iterations.

Shared by the tests and by ``interrupted_driver.py`` (a driver process the tests kill), so both build
exactly the same stages. Torch runs single-threaded, as in a 1-CPU Ray worker: CPU results depend on
the thread count, and the equivalence tests compare bits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from sklearn.datasets import load_digits

from pad_sdk.api import arrays_to_raw, prepare
from pad_sdk.core.distill import IterationRecord, SyntheticSet
from pad_sdk.core.evaluate import EvalResult
from pad_sdk.core.experts import ExpertPlan
from pad_sdk.pipeline import Stages
from pad_sdk.presets import preset_config
from pad_sdk.runtime.ray import RayRuntime
from pad_sdk.trajectories import TrajectoryStore

ITERATIONS = 8
CHECKPOINT_EVERY = 2


@contextmanager
def single_threaded() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class Case:
    stages: Stages
    plan: ExpertPlan


def build_case(iterations: int = ITERATIONS) -> Case:
    digits = load_digits()
    raw = arrays_to_raw(digits.images, digits.target, test_images=None, test_labels=None, class_names=None,
                        holdout_fraction=0.2, seed=0)
    config = preset_config("tiny", 2, {"seed": 0, "distill": {"iterations": iterations}})
    stages = Stages(config, prepare(raw, zca=config.zca))
    with single_threaded():
        plan = stages.expert_plan(stages.orders(stages.score()))
    return Case(stages, plan)


@dataclass(frozen=True)
class Reference:
    """The in-process runtime's results on the case (single-threaded, like a 1-CPU worker)."""

    experts: list[torch.Tensor]
    synthetic: SyntheticSet
    history: list[IterationRecord]
    evaluation: EvalResult



@dataclass(frozen=True)
class TwoWorkerRun:
    runtime: RayRuntime
    synthetic: SyntheticSet
    history: list[IterationRecord]
    store: TrajectoryStore
    prefilled_etag: str
    storage_fs: Any
    bucket: str
