"""The Ray tasks of the runtime: one expert, or one evaluation seed. They call the core's stage functions.

Each task gets the run's settings and prepared data as one object-store reference (put once by the
driver) and sets its torch thread count explicitly, because CPU results depend on it.
"""

from __future__ import annotations

from typing import Any

import torch

from pad_sdk.config import PadConfig
from pad_sdk.core.evaluate import train_and_test
from pad_sdk.core.experts import ExpertPlan
from pad_sdk.core.seeding import derive_seed
from pad_sdk.core.training import Accuracy
from pad_sdk.pipeline import PreparedData, Stages
from pad_sdk.trajectories import TrajectoryStore


def train_expert_task(payload: tuple[PadConfig, PreparedData, ExpertPlan], store: TrajectoryStore, index: int,
                      threads: int) -> tuple[int, bool]:
    """Train expert ``index`` into ``store`` unless it is already there; returns (index, trained).

    Checking the store first makes the task idempotent: a retried task, or a second driver resuming
    the same run, never trains a completed expert again.
    """
    torch.set_num_threads(threads)
    config, data, plan = payload
    if index in store.completed():
        return index, False
    stages = Stages(config, data)
    trajectory = stages.train_expert(index, plan)
    store.save(index, trajectory, seed=derive_seed(config.seed, 21, index))
    return index, True


def evaluate_seed(payload: tuple[PadConfig, PreparedData, Any], k: int, seed: int,
                  threads: int) -> tuple[Accuracy, torch.Tensor]:
    """Network ``k`` of :func:`pad_sdk.core.evaluate.evaluate_set` for the condensed set (the same seeds and
    code as the in-process runtime, so k tasks give the numbers it gives)."""
    torch.set_num_threads(threads)
    config, data, synthetic = payload
    stages = Stages(config, data)
    return train_and_test(synthetic.images, synthetic.label_logits, data.test, stages.network_factory(),
                          config.evaluation.recipe(float(synthetic.lr)), seed=seed, index=k,
                          augment=stages.augment, device=stages.device)
