"""What the Ray runtime keeps besides its settings: its error, its run report, and the keys that tie stored
trajectories and checkpoints to the settings and data they were made with."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pad_sdk.core.distill import ExpertSource
from pad_sdk.errors import WorkerError
from pad_sdk.pipeline import Stages, experts_key
from pad_sdk.trajectories import StoreExperts


class RayRunError(WorkerError):
    """A Ray run failed beyond ``max_failures``; resume it with the same ``run_id`` and ``storage``.

    Attributes:
        run_id: the run to resume.
        iteration: the last checkpointed distillation iteration (None: no checkpoint yet).
        storage: where its checkpoints and trajectories are.
    """

    def __init__(self, message: str, *, run_id: str, iteration: int | None, storage: str) -> None:
        super().__init__(message)
        self.run_id, self.iteration, self.storage = run_id, iteration, storage


@dataclass
class RayRunReport:
    """What the last stages did on the cluster (for logs, tests and benchmarks)."""

    experts_trained: list[int] = field(default_factory=list)
    experts_skipped: list[int] = field(default_factory=list)
    distill_restarts: list[int] = field(default_factory=list)  # iterations a worker group resumed from
    distill_seconds: float = 0.0  # time inside the iterations (rank 0), without set-up
    distill_fit_seconds: float = 0.0  # the whole TorchTrainer.fit()
    world_size: int = 0
    checkpoint_path: str | None = None


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def experts_store_key(stages: Stages) -> str:
    """The trajectory store's name under the run: the expert settings and the data's header."""
    return digest([stages.expert_header(), experts_key(stages.config)])


def distill_key(stages: Stages) -> str:
    """Settings and data that a checkpoint belongs to; the iteration count is left out (a run may be extended)."""
    dump = stages.config.model_dump(mode="json")
    dump["distill"].pop("iterations", None)
    return digest([dump, stages.expert_header()["fingerprint"]])


def experts_spec(experts: ExpertSource) -> dict[str, Any]:
    """How workers reach the experts: the shared store when there is one, else one object-store copy."""
    import ray

    if isinstance(experts, StoreExperts):
        return {"kind": "store", "store": experts.store, "count": experts.count}
    return {"kind": "ref", "ref": ray.put([experts[i] for i in range(len(experts))])}
