"""Runtimes run the stage functions of :mod:`pad_sdk.pipeline`: in this process, or on a Ray cluster.

A runtime decides *where* the work runs, never *what* it computes: both call the same stage functions,
so the in-process and Ray results agree for the same seed and settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
import torch

import connectors
from pad_sdk.core.distill import ExpertSource, IterationRecord, SyntheticSet
from pad_sdk.core.evaluate import EvalResult
from pad_sdk.core.experts import ExpertPlan
from pad_sdk.data import PreparedData, RawData, open_source, prepare, raw_from_source, read_here
from pad_sdk.disk_data import data_budget, raw_on_disk, stored_bytes
from pad_sdk.errors import ConfigError, translated_errors
from pad_sdk.pipeline import EvalJob, Stages
from pad_sdk.trajectories import TrajectoryStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class StartUpCosts:
    """Seconds a runtime spends besides the work itself (zero in this process); :mod:`pad_sdk.estimate` adds
    them to the stages that pay them."""

    task_pool: float = 0.0  # the first stage of tasks starts fresh worker processes (process start and imports)
    trainer: float = 0.0  # each distributed trainer: its controller, worker group, their set-up and tear-down
    pool_restart: float = 0.0  # the first stage of tasks after a trainer starts the pool again
    how: str = ""  # what was measured and what was derived from it


class Runtime(Protocol):
    """Where the expensive stages run, and where a source's images are held."""

    @property
    def name(self) -> str: ...

    def load(self, source: str | connectors.Source, *, holdout_fraction: float, seed: int,
             storage_options: Mapping[str, Any] | None, open_kwargs: Mapping[str, Any]) -> RawData: ...

    def prepare(self, raw: RawData, zca: bool) -> PreparedData: ...

    def score(self, stages: Stages) -> torch.Tensor: ...

    def train_experts(self, stages: Stages, plan: ExpertPlan, store: TrajectoryStore | None) -> ExpertSource: ...

    def distill(self, stages: Stages, experts: ExpertSource) -> tuple[SyntheticSet, list[IterationRecord]]: ...

    def evaluate(self, stages: Stages, job: EvalJob) -> EvalResult: ...

    def evaluate_synthetic(self, stages: Stages, synthetic: SyntheticSet) -> EvalResult: ...

    def start_up_costs(self) -> StartUpCosts: ...


class LocalRuntime:
    """Everything in this process, one stage after the other (the default).

    A source whose images (in their stored dtype) exceed ``data_memory_gib`` (default: a quarter of the memory
    available when it is read) is read once into a file under ``data_dir`` (default: the temporary directory)
    and mapped (:mod:`pad_sdk.disk_data`): the stages read minibatches from it, and the condensed set is the
    one an in-memory run gives. 0 maps every source; arrays passed to the SDK are in memory already.
    """

    name = "local"

    def __init__(self, data_memory_gib: float | None = None, data_dir: str | None = None) -> None:
        if data_memory_gib is not None and not data_memory_gib >= 0:
            raise ConfigError(f"data_memory_gib must be >= 0 (GiB), got {data_memory_gib!r}",
                              field="data_memory_gib", value=data_memory_gib)
        self.data_memory_gib = data_memory_gib
        self.data_dir = data_dir

    def load(self, source: str | connectors.Source, *, holdout_fraction: float, seed: int,
             storage_options: Mapping[str, Any] | None, open_kwargs: Mapping[str, Any]) -> RawData:
        src = open_source(source, storage_options=storage_options, **open_kwargs)
        with translated_errors():
            size, budget = stored_bytes(src.schema), data_budget(self.data_memory_gib)
        if size > budget:
            log.info("data.over_budget", bytes=size, budget=budget, where=self.data_dir or "temporary directory")
            return raw_on_disk(src, holdout_fraction=holdout_fraction, seed=seed, folder=self.data_dir)
        return raw_from_source(src, read_here, holdout_fraction=holdout_fraction, seed=seed)

    def prepare(self, raw: RawData, zca: bool) -> PreparedData:
        return prepare(raw, zca=zca)

    def score(self, stages: Stages) -> torch.Tensor:
        return stages.score()

    def train_experts(self, stages: Stages, plan: ExpertPlan, store: TrajectoryStore | None) -> ExpertSource:
        return stages.train_experts(plan, store)

    def distill(self, stages: Stages, experts: ExpertSource) -> tuple[SyntheticSet, list[IterationRecord]]:
        return stages.distill(experts)

    def evaluate(self, stages: Stages, job: EvalJob) -> EvalResult:
        return stages.evaluate(job)

    def evaluate_synthetic(self, stages: Stages, synthetic: SyntheticSet) -> EvalResult:
        return stages.evaluate_synthetic(synthetic)

    def start_up_costs(self) -> StartUpCosts:
        return StartUpCosts()  # the stages run in this process, which has started already


def resolve_runtime(runtime: Runtime | str | None, **options: Any) -> Runtime:
    """The one place a runtime is chosen by name: ``None``/``"local"`` -> :class:`LocalRuntime`; ``"ray"`` ->
    ``RayRuntime(**options)`` (e.g. ``num_workers``, ``address``, ``storage``, ``run_id``, ``use_gpu``); a
    runtime object is returned as it is. Bad names and settings raise :class:`ConfigError` naming the field."""
    if runtime is None or runtime == "local":
        unknown = sorted(set(options) - {"data_memory_gib", "data_dir"})
        if unknown:
            raise ConfigError(f"the local runtime takes data_memory_gib and data_dir only (got {unknown}); "
                              "use runtime='ray' for the others", field="runtime", value=runtime)
        return LocalRuntime(**options)
    if runtime == "ray":
        try:
            from pad_sdk.runtime.ray import RayRuntime  # imported lazily: Ray is heavy and optional at run time
        except ImportError as exc:
            raise ConfigError(f"the Ray runtime is not available here: {exc}", field="runtime") from exc
        return RayRuntime(**options)
    if isinstance(runtime, str):
        raise ConfigError(f"unknown runtime {runtime!r}; choose local or ray", field="runtime", value=runtime)
    return runtime
