"""Runtimes run the stage functions of :mod:`pad_sdk.pipeline`: in this process, or on a Ray cluster.

A runtime decides *where* the work runs, never *what* it computes: both call the same stage functions,
so the in-process and Ray results agree for the same seed and settings.
"""

from __future__ import annotations

from typing import Protocol

from pad_sdk.core.distill import ExpertSource, IterationRecord, SyntheticSet
from pad_sdk.core.evaluate import EvalResult
from pad_sdk.core.experts import ExpertPlan
from pad_sdk.errors import ConfigError
from pad_sdk.pipeline import Stages
from pad_sdk.trajectories import TrajectoryStore


class Runtime(Protocol):
    """Where the expensive stages run."""

    @property
    def name(self) -> str: ...

    def train_experts(self, stages: Stages, plan: ExpertPlan, store: TrajectoryStore | None) -> ExpertSource: ...

    def distill(self, stages: Stages, experts: ExpertSource) -> tuple[SyntheticSet, list[IterationRecord]]: ...

    def evaluate_synthetic(self, stages: Stages, synthetic: SyntheticSet) -> EvalResult: ...


class LocalRuntime:
    """Everything in this process, one stage after the other (the default)."""

    name = "local"

    def train_experts(self, stages: Stages, plan: ExpertPlan, store: TrajectoryStore | None) -> ExpertSource:
        return stages.train_experts(plan, store)

    def distill(self, stages: Stages, experts: ExpertSource) -> tuple[SyntheticSet, list[IterationRecord]]:
        return stages.distill(experts)

    def evaluate_synthetic(self, stages: Stages, synthetic: SyntheticSet) -> EvalResult:
        return stages.evaluate_synthetic(synthetic)


def resolve_runtime(runtime: Runtime | str | None) -> Runtime:
    """``None``/``"local"`` -> :class:`LocalRuntime`; ``"ray"`` -> a Ray runtime with default settings."""
    if runtime is None or runtime == "local":
        return LocalRuntime()
    if runtime == "ray":
        from pad_sdk.runtime.ray import RayRuntime  # imported lazily: Ray is heavy and optional at run time

        return RayRuntime()
    if isinstance(runtime, str):
        raise ConfigError(f"unknown runtime {runtime!r}; choose local or ray", field="runtime", value=runtime)
    return runtime
