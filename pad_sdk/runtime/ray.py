"""The Ray runtime: the same stage functions as :class:`~pad_sdk.runtime.LocalRuntime`, on a Ray cluster.

What runs where:

- **data**: a source (URL or ``connectors.Source``) is read by Ray Data read tasks on the workers, split and
  normalised by two tasks (:mod:`pad_sdk.runtime._ray_data`); the driver keeps labels, statistics and
  shape-only images, and every task gets the object-store reference. Arrays given to the call are put into
  the object store once from the driver.
- **scoring**: one Ray task per EL2N agent (``Stages.score_run``), averaged in run order.
- **experts**: one Ray task per missing expert (per group of ``compute.experts_at_once``, trained together by
  ``Stages.train_expert_group``); each task writes its trajectories to the shared
  :class:`~pad_sdk.trajectories.TrajectoryStore` (the driver only collects indices). Experts already in the
  store are skipped, so a resumed run never trains an expert twice.
- **distillation**: one Ray Train ``TorchTrainer``; every worker matches its own trajectory segment and the
  gradients are averaged each iteration (see :mod:`pad_sdk.runtime._ray_distill`). Rank 0 checkpoints the
  synthetic state to ``<storage>/<run_id>/`` every ``checkpoint_every`` iterations; a lost worker or node
  restarts the group from the last checkpoint, and a new driver with the same ``run_id`` resumes it. A group
  that cannot get its resources within ``start_timeout_s`` counts as a failure (no endless wait).
- **evaluation**: every network of an :class:`~pad_sdk.pipeline.EvalJob` (condensed set, random subset,
  whole-data reference, other architectures) as a Ray task, with the local runtime's seeds.

Only this module maps pad-sdk settings onto Ray's ``ScalingConfig``/``RunConfig``/``FailureConfig``.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import structlog
import torch
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

import connectors
from pad_sdk.config import config_error
from pad_sdk.core.distill import ExpertSource, IterationRecord, SyntheticSet
from pad_sdk.core.evaluate import EvalResult, summarise
from pad_sdk.core.experts import ExpertPlan
from pad_sdk.core.scoring import mean_of_runs
from pad_sdk.data import PreparedData, RawData, open_source, prepare
from pad_sdk.disk_data import data_budget, stored_bytes
from pad_sdk.errors import ConfigError, translated_errors
from pad_sdk.pipeline import EVAL_TIMING, EvalJob, Stages
from pad_sdk.runtime import StartUpCosts, _ray_distill
from pad_sdk.runtime._ray_data import (
    HELD_ON_NODES,
    ClusterRaw,
    payload_data,
    prepare_on_cluster,
    read_on_cluster,
    read_on_nodes,
    remove_files_on_nodes,
)
from pad_sdk.runtime._ray_env import START_TIMEOUT_ENV, ClusterHandle, Storage, connect, ray_temp_dir, scoped_env
from pad_sdk.runtime._ray_progress import DriverProgress
from pad_sdk.runtime._ray_state import (
    RayRunError,
    RayRunReport,
    distill_key,
    experts_spec,
    experts_store_key,
)
from pad_sdk.runtime._ray_tasks import StartProbe, evaluate_network, score_run_task, train_expert_task
from pad_sdk.trajectories import StoreExperts, TrajectoryStore

log = structlog.get_logger(__name__)
DEFAULT_STORAGE = os.path.join(tempfile.gettempdir(), "pad-sdk-ray")
# Ray's own costs in units of one fresh worker start (StartProbe), measured on an embedded 2-CPU cluster with
# `python -m benchmarks.bench_ray_startup` (benchmarks/results/ray_startup.json): a TorchTrainer.fit spent 4.6-5.9
# starts before and after its loop, the first tasks after it waited 1.7-2.6 starts for their pool.
TRAINER_STARTS = 6.5
POOL_RESTART_STARTS = 2.0
OBJECT_STORE_SHARE = 0.5  # default data budget: this share of the smallest node's object store (raw + prepared)


class RayRuntime(BaseModel):
    """Run the expensive stages on Ray (an embedded local cluster, or the one at ``address``).

    Args:
        num_workers: distillation workers (each matches one trajectory segment per iteration).
        address: an existing cluster (``ray://...`` or ``host:port``); default ``RAY_ADDRESS``, else an
            embedded cluster started in this process (and shut down by :meth:`shutdown`).
        storage: fsspec URL shared by all workers for checkpoints and trajectories (``s3://...`` on a
            cluster); default a directory under the system temp directory.
        run_id: names the run under ``storage``; the same id resumes an interrupted run. Default: new id.
        use_gpu: distillation workers get one GPU each (``ScalingConfig(use_gpu=True)``), and scoring, expert and
            evaluation tasks get ``gpus_per_task`` GPUs.
        gpus_per_task: GPUs of each scoring, expert and evaluation task; fractional, so that several small
            networks share one GPU (0.25: four expert tasks train side by side on each GPU; within one process,
            ``compute.experts_at_once`` stacks experts into one network instead). Default: 1 with ``use_gpu``,
            else 0.
        resources_per_worker: Ray resources of each distillation worker and task (default 1 CPU).
        checkpoint_every: distillation iterations between checkpoints.
        max_failures: worker-group restarts before the run fails with :class:`RayRunError`; also the number
            of worker-group starts that may time out (``start_timeout_s`` each: a node was lost and no other
            offers its CPUs) before the run fails instead of waiting for resources forever.
        storage_options: fsspec options for ``storage`` (endpoint, credentials).
        torch_threads: torch threads per worker; default the worker's CPUs (results depend on it: the
            in-process runtime gives bit-identical results with the same thread count).
        data_memory_gib: a source whose images (in their stored dtype) exceed this never enters the object
            store: each node that runs a task streams it once from storage into a file under ``data_dir``
            that its processes map, and removes it at :meth:`shutdown` (the condensed set is the in-memory
            one). Default: the smaller of a quarter of the driver machine's available memory and half the
            smallest object store of the cluster's nodes; 0 maps every source.
        data_dir: where each node writes those files (default: its temporary directory).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: ClassVar[str] = "ray"
    keeps_trajectories: ClassVar[bool] = True  # experts always go to ``storage`` (the workers share them)

    num_workers: int = Field(2, ge=1)
    address: str | None = None
    storage: str | None = None
    run_id: str = Field(default_factory=lambda: f"pad-{uuid.uuid4().hex[:12]}")
    use_gpu: bool = False
    gpus_per_task: float | None = Field(None, ge=0, description="GPUs per scoring/expert/evaluation task "
                                        "(fractional shares one GPU); default 1 with use_gpu, else 0")
    resources_per_worker: dict[str, float] | None = None
    checkpoint_every: int = Field(25, ge=1)
    max_failures: int = Field(2, ge=0)
    start_timeout_s: float = Field(60.0, gt=0, description="how long a (re)started worker group may wait for "
                                   "its resources; a group that cannot start counts as a failure")
    storage_options: dict[str, Any] | None = None
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    torch_threads: int | None = Field(None, ge=1)
    num_cpus: int | None = Field(None, ge=1, description="CPUs of an embedded cluster (default: all)")
    object_store_mib: int | None = Field(None, ge=64, description="object store of an embedded cluster (default "
                                         "256 MiB); a source read on the cluster lives there (raw and prepared "
                                         "float32 copies), beyond it Ray spills to disk")

    data_memory_gib: float | None = Field(None, ge=0)
    data_dir: str | None = None

    _cluster: ClusterHandle | None = PrivateAttr(None)
    _node_files: str = PrivateAttr(default_factory=lambda: uuid.uuid4().hex[:12])  # names this runtime's node files
    _wrote_node_files: bool = PrivateAttr(False)
    _report: RayRunReport = PrivateAttr(default_factory=RayRunReport)
    _start_up: StartUpCosts | None = PrivateAttr(None)
    _progress: DriverProgress = PrivateAttr(default_factory=DriverProgress)

    def __init__(self, **settings: Any) -> None:
        try:
            super().__init__(**settings)
        except ValidationError as exc:  # a typed error naming the field, like every other setting
            raise config_error(exc, "invalid Ray runtime settings") from exc

    @field_validator("run_id")
    @classmethod
    def _safe_run_id(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "-_." for c in value) or value.startswith("."):
            raise ValueError(f"run_id {value!r} may use only letters, digits, '-', '_' and '.'")
        return value

    # -- settings derived for Ray ------------------------------------------------------------------
    @property
    def cpus_per_worker(self) -> float:
        return float((self.resources_per_worker or {}).get("CPU", 1.0))

    @property
    def threads(self) -> int:
        return self.torch_threads or max(1, int(self.cpus_per_worker))

    @property
    def report(self) -> RayRunReport:
        return self._report

    def _storage(self) -> Storage:
        return Storage(self.storage or DEFAULT_STORAGE, dict(self.storage_options or {}))

    def _task_options(self) -> dict[str, Any]:
        extra = {k: v for k, v in (self.resources_per_worker or {}).items() if k not in ("CPU", "GPU")}
        default = 1.0 if self.use_gpu else 0.0
        gpus = self.gpus_per_task if self.gpus_per_task is not None else float(
            (self.resources_per_worker or {}).get("GPU", default))
        return {"num_cpus": self.cpus_per_worker, "num_gpus": gpus, **({"resources": extra} if extra else {})}

    # -- cluster lifecycle ----------------------------------------------------------------------------
    def _ensure_cluster(self) -> None:
        import ray

        if self._cluster is not None and ray.is_initialized():
            return
        temp_dir = ray_temp_dir(self._storage().local_root())
        self._cluster = connect(self.address, num_cpus=self.num_cpus, temp_dir=temp_dir,
                                object_store_bytes=None if self.object_store_mib is None else self.object_store_mib
                                * 2**20)
        total = float(ray.cluster_resources().get("CPU", 0.0))
        needed = self.num_workers * self.cpus_per_worker
        if self._cluster.owned and needed > total:
            raise ConfigError(
                f"num_workers={self.num_workers} x {self.cpus_per_worker} CPU needs {needed:g} CPUs, but the embedded "
                f"cluster has {total:g}; lower num_workers or resources_per_worker, or pass num_cpus/address",
                field="num_workers", value=self.num_workers,
            )

    def start_up_costs(self) -> StartUpCosts:
        """What this cluster spends starting workers, for the run's estimate (measured once per runtime).

        Measured: ``num_workers`` fresh worker processes started at once, each importing what every task and
        trainer worker imports (a no-op actor, so the task pool is left as it is). Derived from it, in units of
        that start (the ratios measured on an embedded 2-CPU cluster, docs/benchmarks.md "Ray start-up"): a
        ``TorchTrainer.fit`` spends ``TRAINER_STARTS`` of them before and after its loop (controller, worker
        group, process group, each worker's stage set-up and the tear-down), and the first tasks after a trainer
        wait ``POOL_RESTART_STARTS`` for the pool the trainer displaced.
        """
        import ray

        if self._start_up is not None:
            return self._start_up
        self._ensure_cluster()
        began = time.perf_counter()
        # a runtime env no worker has yet: Ray may hand an actor an idle worker that already imported torch (a
        # full test run measured 0.04 s that way), and that measures nothing; env vars alone cost no set-up
        fresh = {"env_vars": {"PAD_START_PROBE": uuid.uuid4().hex}}
        actor: Any = ray.remote(StartProbe).options(num_cpus=0, runtime_env=fresh)  # Ray's stubs: no handle types
        probes = [actor.remote() for _ in range(self.num_workers)]
        try:
            ray.get([probe.ready.remote() for probe in probes])
        finally:
            for probe in probes:
                ray.kill(probe)
        start = time.perf_counter() - began
        self._start_up = StartUpCosts(
            task_pool=start, trainer=TRAINER_STARTS * start, pool_restart=POOL_RESTART_STARTS * start,
            how=f"{self.num_workers} fresh workers started in {start:.1f} s (measured); a trainer {TRAINER_STARTS:g}x "
                f"and a pool restart {POOL_RESTART_STARTS:g}x that (ratios measured on an embedded cluster)")
        log.info("ray.start_up_measured", worker_start_s=round(start, 2), trainer_s=round(self._start_up.trainer, 1),
                 pool_restart_s=round(self._start_up.pool_restart, 1))
        return self._start_up

    def shutdown(self) -> None:
        """Stop the embedded cluster if this runtime started it; a joined cluster is left running."""
        self._progress.close()
        if self._wrote_node_files and self._cluster is not None:
            try:
                removed = remove_files_on_nodes(self.data_dir, self._node_files)
                log.info("ray.node_files_removed", files=removed, key=self._node_files)
            except Exception as exc:  # leaving files behind must not hide the run's own outcome
                log.warning("ray.node_files_left", key=self._node_files, folder=self.data_dir, error=str(exc))
            self._wrote_node_files = False
        if self._cluster is not None:
            self._cluster.shutdown()
            self._cluster = None

    def __enter__(self) -> RayRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- stage 1: data read by Ray Data on the workers ----------------------------------------------------
    def load(self, source: str | connectors.Source, *, holdout_fraction: float, seed: int,
             storage_options: Mapping[str, Any] | None, open_kwargs: Mapping[str, Any]) -> RawData:
        """Read ``source`` with Ray Data on the workers; the driver keeps labels and shapes, not images."""
        self._ensure_cluster()
        started = time.perf_counter()
        src = open_source(source, storage_options=storage_options, **open_kwargs)
        with translated_errors():
            size, budget = stored_bytes(src.schema), self._data_budget()
            if size > budget:
                log.info("data.over_budget", bytes=size, budget=budget, where=self.data_dir or "temporary directory",
                         held=HELD_ON_NODES)
                self._wrote_node_files = True
                raw: RawData = read_on_nodes(src, holdout_fraction=holdout_fraction, seed=seed, folder=self.data_dir,
                                             key=self._node_files, task_options=self._task_options())
            else:
                raw = read_on_cluster(src, holdout_fraction=holdout_fraction, seed=seed,
                                      task_options=self._task_options())
        log.info("ray.data_loaded", uri=raw.source.get("uri"), train=len(raw.train_labels),
                 holdout=len(raw.test_labels), seconds=round(time.perf_counter() - started, 2))
        return raw

    def _data_budget(self) -> int:
        """Bytes of source images the object store may hold (see ``data_memory_gib``)."""
        import ray

        if self.data_memory_gib is not None:
            return data_budget(self.data_memory_gib)
        stores = [float(n["Resources"].get("object_store_memory", 0)) for n in ray.nodes() if n.get("Alive")]
        smallest = min((s for s in stores if s > 0), default=float("inf"))
        return int(min(data_budget(None), OBJECT_STORE_SHARE * smallest))

    def prepare(self, raw: RawData, zca: bool) -> PreparedData:
        """Normalise on a worker when the data lives on the cluster; otherwise here, as the local runtime."""
        if isinstance(raw, ClusterRaw):
            return prepare_on_cluster(raw, zca, self._task_options(), self.threads)
        return prepare(raw, zca=zca)

    # -- stage 2: EL2N scoring runs as Ray tasks --------------------------------------------------------
    def score(self, stages: Stages) -> torch.Tensor:
        """One Ray task per scoring agent; the mean over runs is bit-identical to the local runtime's."""
        import ray

        self._ensure_cluster()
        started = time.perf_counter()
        total = stages.config.scoring.runs
        stages.on_event("scoring", 0, total)
        payload = ray.put((stages.config, payload_data(stages.data)))
        task = ray.remote(score_run_task).options(**self._task_options(), max_retries=self.max_failures)
        prefix = self._progress.call()
        pending = {task.remote(payload, run, self.threads, (self._progress.board, f"{prefix}{run}")): run
                   for run in range(total)}
        try:
            runs = self._progress.collect(stages, "scoring", pending, prefix, total, 0)
        except ray.exceptions.RayError as exc:
            raise RayRunError(f"scoring failed in run {self.run_id}: {exc}", run_id=self.run_id, iteration=None,
                              storage=self._storage().url) from exc
        stages._timed("scoring", started)
        return mean_of_runs([runs[k] for k in range(total)])

    # -- stage 3: experts as Ray tasks ---------------------------------------------------------------
    def train_experts(self, stages: Stages, plan: ExpertPlan, store: TrajectoryStore | None) -> ExpertSource:
        """Train the experts the store lacks, one Ray task per ``compute.experts_at_once`` of them (trained together
        there); every trajectory lands in the shared store."""
        import ray

        self._ensure_cluster()
        started = time.perf_counter()
        config = stages.config
        if store is None:
            store = TrajectoryStore(self._storage().join(self.run_id, f"trajectories-{experts_store_key(stages)}"),
                                    storage_options=self.storage_options)
            store.initialise(stages.expert_header())
        total = config.experts.num_experts
        done = set(store.completed())
        pending = [i for i in range(total) if i not in done]
        self._report.experts_skipped = sorted(done & set(range(total)))
        stages.on_event("experts", total - len(pending), total)
        payload = ray.put((config, payload_data(stages.data), plan))
        task = ray.remote(train_expert_task).options(**self._task_options(), max_retries=self.max_failures)
        prefix = self._progress.call()
        # one task trains a group together, on one worker's device; never fewer tasks than workers while there are
        # experts enough (8 missing, 4 workers, experts_at_once 8: four tasks of two, not one of eight)
        at_once = min(stages.experts_at_once(), max(1, -(-len(pending) // self.num_workers)))
        groups = [tuple(pending[k:k + at_once]) for k in range(0, len(pending), at_once)]
        waiting = {task.remote(payload, store, group, self.threads, (self._progress.board, f"{prefix}{g}")): g
                   for g, group in enumerate(groups)}
        trained: list[int] = []
        try:
            results = self._progress.collect(stages, "experts", waiting, prefix, total, total - len(pending),
                                             sizes={g: len(group) for g, group in enumerate(groups)})
            for index, did_train in (pair for outcome in results.values() for pair in outcome):
                (trained if did_train else self._report.experts_skipped).append(index)
        except ray.exceptions.RayError as exc:
            raise RayRunError(
                f"expert training failed in run {self.run_id}: {exc}; experts already in {store.uri} are kept, "
                "rerun with the same run_id and trajectory store to train only the missing ones",
                run_id=self.run_id, iteration=None, storage=store.uri,
            ) from exc
        self._report.experts_trained = sorted(trained)
        stages._timed("experts", started)
        log.info("ray.experts_done", trained=len(trained), skipped=total - len(trained), store=store.uri,
                 seconds=round(time.perf_counter() - started, 2))
        return StoreExperts(store, total)

    # -- stage 4: distillation as one TorchTrainer -------------------------------------------------------
    def distill(self, stages: Stages, experts: ExpertSource) -> tuple[SyntheticSet, list[IterationRecord]]:
        """Data-parallel distillation over ``num_workers`` Ray Train workers; resumes from ``run_id``'s checkpoint."""
        import ray
        from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        self._ensure_cluster()
        started = time.perf_counter()
        config = stages.config
        total = config.distill.iterations
        name = f"distill-ipc{config.ipc}"
        storage_path, filesystem = self._storage().for_ray_train(self.run_id)
        fingerprint = distill_key(stages)
        self._check_resumable(name, fingerprint)
        board = self._progress.board
        board.start_distillation.remote()  # actor calls run in order: before any worker's post
        loop_config = {
            "stages": ray.put((config, payload_data(stages.data))), "ipc": config.ipc,
            "experts": experts_spec(experts),
            "threads": self.threads, "checkpoint_every": self.checkpoint_every, "fingerprint": fingerprint,
            "use_gpu": self.use_gpu,
            "fault": _ray_distill.fault_from_env(),
            "progress": board,
            "checkpoints": {"url": self._storage().join(self.run_id, name),
                            "storage_options": dict(self.storage_options or {})},
        }
        trainer = TorchTrainer(
            _ray_distill.train_func, train_loop_config=loop_config,
            scaling_config=ScalingConfig(
                num_workers=self.num_workers, use_gpu=self.use_gpu, resources_per_worker=self.resources_per_worker,
                placement_strategy=self.placement_strategy,
            ),
            run_config=RunConfig(
                name=name, storage_path=storage_path, storage_filesystem=filesystem,
                # Train retries a worker group that cannot start forever unless told otherwise (mypy sees
                # Train V1's FailureConfig; V2's, used at run time, has controller_failure_limit)
                failure_config=FailureConfig(max_failures=self.max_failures,
                                             controller_failure_limit=self.max_failures),  # type: ignore[call-arg]
                checkpoint_config=CheckpointConfig(num_to_keep=2),
            ),
        )
        stages.on_event("distill", 0, total)
        log.info("ray.distill_start", run_id=self.run_id, workers=self.num_workers, iterations=total,
                 storage=self._storage().join(self.run_id, name))
        try:
            with scoped_env(START_TIMEOUT_ENV, f"{self.start_timeout_s:g}"):  # Train sends it to its controller
                result = self._progress.follow(trainer, stages, total)
        except Exception as exc:  # Ray Train raises its own TrainingFailedError family (and RayError)
            last = self._last_checkpoint_iteration(name)
            cause = getattr(exc, "controller_failure", None)
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if cause is not None and "Timeout" in type(cause).__name__:
                why = (f"the group of {self.num_workers} workers x {self.cpus_per_worker:g} CPU could not get its "
                       f"resources within {self.start_timeout_s:g} s, {self.max_failures + 1} times (a lost node "
                       "that nothing replaced?)")
            raise RayRunError(
                f"distillation run {self.run_id} failed after {self.max_failures} restarts (last checkpoint: "
                f"iteration {last}): {why}; rerun with the same run_id and storage to resume",
                run_id=self.run_id, iteration=last, storage=self._storage().join(self.run_id, name),
            ) from exc
        if result.checkpoint is None:
            raise RayRunError(f"distillation run {self.run_id} ended without a checkpoint", run_id=self.run_id,
                              iteration=None, storage=self._storage().join(self.run_id, name))
        state = _ray_distill.read_state(result.checkpoint)
        synthetic, history = _ray_distill.unpack_state(state)
        if stages.stopped is not None:
            log.warning("distill.budget_stop", budget=stages.stopped.budget, limit=stages.stopped.limit,
                        spent=round(stages.stopped.estimate, 2), iterations=len(history), of=total)
        self._report.distill_restarts = [int(r) for r in state["restarts"]]
        self._report.distill_seconds = float(state["seconds"])
        self._report.distill_fit_seconds = time.perf_counter() - started
        self._report.world_size = int(state["world_size"])
        self._report.checkpoint_path = result.checkpoint.path
        if state.get("unroll") is not None:
            stages.decisions["unroll"] = dict(state["unroll"])
        if stages.stopped is None:
            stages.on_event("distill", total, total, loss=history[-1].loss if history else float("nan"))
        stages._timed("distillation", started)
        log.info("ray.distill_done", run_id=self.run_id, restarts=self._report.distill_restarts,
                 seconds=round(self._report.distill_fit_seconds, 2))
        return synthetic, history

    def _latest_state(self, name: str) -> dict[str, Any] | None:
        return _ray_distill.newest_state(self._storage().join(self.run_id, name), dict(self.storage_options or {}))

    def _last_checkpoint_iteration(self, name: str) -> int | None:
        try:
            state = self._latest_state(name)
        except Exception:  # a failed run may leave storage unreadable; the error must still be raised
            return None
        return None if state is None else int(state["distiller"]["iteration"])

    def _check_resumable(self, name: str, fingerprint: str) -> None:
        """A run id resumes only the same settings and data (the iteration count may grow)."""
        state = self._latest_state(name)
        if state is not None and state.get("fingerprint", fingerprint) != fingerprint:
            raise ConfigError(
                f"run {self.run_id} in {self._storage().url} was checkpointed with other settings or data; "
                "use a new run_id (or the original settings) to resume it",
                field="run_id", value=self.run_id,
            )

    # -- stage 5: evaluation networks as Ray tasks ------------------------------------------------------
    def evaluate(self, stages: Stages, job: EvalJob) -> EvalResult:
        """Train the job's networks in parallel; same seeds (hence same numbers) as the local runtime."""
        import ray

        self._ensure_cluster()
        started = time.perf_counter()
        stages.on_event("evaluate", 0, job.seeds, what=job.what)
        payload = ray.put((stages.config, payload_data(stages.data), job))
        task = ray.remote(evaluate_network).options(**self._task_options(), max_retries=self.max_failures)
        prefix = self._progress.call()
        refs = {task.remote(payload, k, self.threads, (self._progress.board, f"{prefix}{k}")): k
                for k in range(job.seeds)}
        try:
            networks = self._progress.collect(stages, "evaluate", refs, prefix, job.seeds, 0, what=job.what)
            measured = [networks[k] for k in range(job.seeds)]
        except ray.exceptions.RayError as exc:
            raise RayRunError(f"evaluation ({job.what}) failed in run {self.run_id}: {exc}", run_id=self.run_id,
                              iteration=None, storage=self._storage().url) from exc
        stages._timed(EVAL_TIMING[job.what], started)
        return summarise(measured, stages.data.test.num_classes, time.perf_counter() - started)

    def evaluate_synthetic(self, stages: Stages, synthetic: SyntheticSet) -> EvalResult:
        return self.evaluate(stages, stages.condensed_job(synthetic))


def runtime_from_options(runtime: str | None, *, workers: int = 2, address: str | None = None,
                         storage: str | None = None, run_id: str | None = None,
                         storage_options: Mapping[str, Any] | None = None, use_gpu: bool = False,
                         gpus_per_task: float | None = None) -> Any:
    """Command-line style arguments for :func:`pad_sdk.runtime.resolve_runtime` (kept for existing callers)."""
    from pad_sdk.runtime import resolve_runtime

    if runtime in (None, "local"):
        return resolve_runtime(runtime)
    extra = {"run_id": run_id} if run_id is not None else {}  # "" reaches the validator, not a new id
    return resolve_runtime(runtime, num_workers=workers, address=address, storage=storage, use_gpu=use_gpu,
                           gpus_per_task=gpus_per_task, storage_options=dict(storage_options or {}) or None, **extra)
