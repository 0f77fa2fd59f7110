"""The Ray tasks of the runtime: one scoring agent, one expert, or one evaluation network. They call the
stage functions of :class:`~pad_sdk.pipeline.Stages`.

Each task gets the run's settings and prepared data as one object-store reference (put once by the
driver; the data itself may be a further reference, when Ray Data read it on the cluster) and sets its
torch thread count explicitly, because CPU results depend on it.
"""

from __future__ import annotations

from typing import Any

import torch

from pad_sdk.config import PadConfig
from pad_sdk.core.experts import ExpertPlan
from pad_sdk.core.training import Accuracy
from pad_sdk.pipeline import EvalJob, Stages
from pad_sdk.runtime._ray_data import resolve
from pad_sdk.runtime._ray_progress import share_poster
from pad_sdk.trajectories import TrajectoryStore


def train_expert_task(payload: tuple[PadConfig, Any, ExpertPlan], store: TrajectoryStore, indices: tuple[int, ...],
                      threads: int, progress: tuple[Any, str] | None = None) -> list[tuple[int, bool]]:
    """Train the experts ``indices`` (together when there are several: ``compute.experts_at_once``) into
    ``store``, skipping those already there; returns (index, trained) for each.

    Checking the store first makes the task idempotent: a retried task, or a second driver resuming
    the same run, never trains a completed expert again.
    """
    torch.set_num_threads(threads)
    config, data, plan = payload
    done = set(store.completed())
    missing = [index for index in indices if index not in done]
    if missing:
        stages = Stages(config, resolve(data))
        on_epoch = share_poster(progress, config.experts.epochs)
        for index, trajectory in zip(missing, stages.train_expert_group(missing, plan, on_epoch), strict=True):
            store.save(index, trajectory, seed=stages.expert_seed(index))
    return [(index, index in missing) for index in indices]


def score_run_task(payload: tuple[PadConfig, Any], run: int, threads: int,
                   progress: tuple[Any, str] | None = None) -> torch.Tensor:
    """EL2N scores (N,) float64 of scoring agent ``run`` (:meth:`Stages.score_run`)."""
    torch.set_num_threads(threads)
    config, data = payload
    return Stages(config, resolve(data)).score_run(run, share_poster(progress, config.scoring.epochs))


def evaluate_network(payload: tuple[PadConfig, Any, EvalJob], k: int, threads: int,
                     progress: tuple[Any, str] | None = None) -> tuple[Accuracy, torch.Tensor]:
    """Network ``k`` of an evaluation job (:meth:`Stages.run_eval_network`: the same seeds and code as the
    in-process runtime, so the tasks give the numbers it gives)."""
    torch.set_num_threads(threads)
    config, data, job = payload
    post = share_poster(progress, job.recipe.epochs)

    def on_event(stage: str, done: int, total: int, **facts: Any) -> None:
        if post is not None and isinstance(facts.get("epoch"), int):
            post(facts["epoch"] - 1)

    return Stages(config, resolve(data), on_event=on_event).run_eval_network(job, k)


class StartProbe:
    """An actor that does nothing: starting a few of them times what a fresh worker process costs here (start,
    then the imports of this module, which every task and trainer worker of the runtime makes)."""

    def ready(self) -> int:
        return torch.get_num_threads()
