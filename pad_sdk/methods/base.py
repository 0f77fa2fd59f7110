"""What every condensation method and baseline shares: the context it runs in and the set it returns.

A method is a frozen dataclass whose fields are its switches (PAD's filters ``fiex`` and ``fiem`` among
them); ``condense(context, ipc, seed)`` returns a :class:`SyntheticSet`, so one evaluation protocol judges
methods and real-image baselines alike. The context caches what methods can share: difficulty orders,
expert trajectories (cached by their settings: with and without the data scheduler differ) and an agent
network for embeddings.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import torch

from pad_sdk.config import PadConfig
from pad_sdk.core.distill import ExpertSource
from pad_sdk.core.networks import Network
from pad_sdk.core.params import load_flat_params
from pad_sdk.core.scheduler import static_prune
from pad_sdk.core.seeding import seeded
from pad_sdk.core.synthetic import SyntheticSet, hard_label_set
from pad_sdk.data import PreparedData, with_validation
from pad_sdk.pipeline import EventSink, Stages, experts_key, scoring_key
from pad_sdk.presets import merge_settings, preset_config
from pad_sdk.runtime import LocalRuntime, Runtime
from pad_sdk.trajectories import TrajectoryStore, spills_trajectories


class Method(Protocol):
    """A condensation method or baseline, configured by its fields."""

    name: str

    def condense(self, context: MethodContext, ipc: int, seed: int) -> SyntheticSet: ...


@dataclass
class MethodContext:
    """Prepared data, settings per IPC, and the caches methods share within one comparison.

    ``seed`` fixes scoring and experts (shared by every run); a run's own ``seed`` argument varies only
    its condensation and evaluation randomness.
    """

    data: PreparedData
    preset: str = "cpu-small"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    on_event: EventSink | None = None
    runtime: Runtime | None = None  # where scoring and experts run (None: in this process)
    trajectory_store: str | None = None  # fsspec URL for the experts (None: in memory, or the runtime's own)
    storage_options: Mapping[str, Any] | None = None
    # share of the training data set aside for choosing settings (None: the preset's auto.validation_fraction)
    validation_fraction: float | None = None
    shared_seconds: dict[str, float] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)
    _children: list[float] = field(default_factory=list)
    _spill_dir: tempfile.TemporaryDirectory[str] | None = None

    def __post_init__(self) -> None:
        fraction = self.validation_fraction
        if fraction is None:
            fraction = self.config(1).auto.validation_fraction
        self.data = with_validation(self.data, fraction, self.seed)

    def config(self, ipc: int, extra: Mapping[str, Any] | None = None) -> PadConfig:
        merged = merge_settings(merge_settings(dict(self.overrides), dict(extra or {})), {"seed": self.seed})
        return preset_config(self.preset, ipc, merged)

    def stages(self, config: PadConfig) -> Stages:
        return Stages(config, self.data, on_event=self.on_event)

    def _shared(self, key: str, compute: Any) -> Any:
        """``compute()`` once per key; its own seconds (without nested shared stages) go to ``shared_seconds``."""
        if key not in self._cache:
            self._children.append(0.0)
            started = time.perf_counter()
            self._cache[key] = compute()
            elapsed = time.perf_counter() - started
            own = elapsed - self._children.pop()
            if self._children:
                self._children[-1] += elapsed
            stage = key.split(":")[0]
            self.shared_seconds[stage] = self.shared_seconds.get(stage, 0.0) + own
        return self._cache[key]

    # The one owner of the scoring and expert caches: sweeps and comparisons alike ask here, by the keys of
    # ``pipeline.scoring_key`` / ``experts_key``; ``stages`` (default: new ones) receives the stage timings.
    def orders(self, config: PadConfig, stages: Stages | None = None) -> list[torch.Tensor]:
        """Per-class EL2N orders, easiest first (scored once per scoring settings)."""
        run = stages or self.stages(config)
        return self._shared(scoring_key(config), lambda: run.orders(self._runtime().score(run)))

    def cached_orders(self, config: PadConfig) -> list[torch.Tensor] | None:
        """The orders for ``config`` if they were computed, without computing them."""
        return self._cache.get(scoring_key(config))

    def experts(self, config: PadConfig, stages: Stages | None = None) -> ExpertSource:
        """Expert trajectories for ``config`` (trained once per expert settings); where they are kept goes
        into the run's ``decisions["trajectories"]``."""
        run = stages or self.stages(config)
        key = experts_key(config)

        def train() -> ExpertSource:
            orders = self.orders(config, run) if config.experts.fiex != "off" else None
            size = run.trajectory_bytes()
            store = self._store(run, size)
            self._cache[f"where:{key}"] = self._where(run, store, size)
            return self._runtime().train_experts(run, run.expert_plan(orders), store)

        experts = self._shared(key, train)
        run.decisions["trajectories"] = dict(self._cache[f"where:{key}"])
        return experts

    def _runtime(self) -> Runtime:
        return self.runtime if self.runtime is not None else LocalRuntime()

    def _store(self, stages: Stages, size: int) -> TrajectoryStore | None:
        """The trajectory store of the next expert variant: the given URL for the first, a sub-folder after.

        Without a URL, trajectories stay in memory up to ``compute.spill_trajectories_gib``; beyond it they go
        to a temporary local store that lives as long as this context (removed when it is collected or the
        process exits). A runtime that keeps its own store (Ray) is given None and decides itself.
        """
        variants = sum(key.startswith("experts:") for key in self._cache)
        if self.trajectory_store is not None:
            url = self.trajectory_store + ("" if variants == 0 else f"/variant-{variants}")
            store = TrajectoryStore(url, storage_options=self.storage_options)
        elif not self._runtime_keeps() and spills_trajectories(stages.config, size):
            if self._spill_dir is None:
                self._spill_dir = tempfile.TemporaryDirectory(prefix="pad-sdk-trajectories-")
            store = TrajectoryStore(f"{self._spill_dir.name}/variant-{variants}")
        else:
            return None
        store.initialise(stages.expert_header())
        return store

    def _runtime_keeps(self) -> bool:
        return bool(getattr(self.runtime, "keeps_trajectories", False))

    def _where(self, stages: Stages, store: TrajectoryStore | None, size: int) -> dict[str, Any]:
        limit = stages.config.compute.spill_trajectories_gib
        if store is None:
            where = "the runtime's store" if self._runtime_keeps() else "memory"
            return {"where": where, "bytes": size, "reason": f"{size / 2**30:.2f} GiB of trajectories, within the "
                    f"spill limit ({limit} GiB)" if where == "memory" else "the runtime keeps them"}
        given = self.trajectory_store is not None
        reason = ("trajectory_store was given" if given else
                  f"{size / 2**30:.2f} GiB of trajectories exceed compute.spill_trajectories_gib ({limit})")
        return {"where": store.uri, "bytes": size, "reason": reason, "temporary": not given}

    def agent(self, ipc: int) -> Network:
        """A trained network for embeddings: the final checkpoint of the first plain expert (no filters)."""
        config = self.config(ipc, {"experts": {"fiex": "off"}})
        trajectory = self.experts(config)[0]
        stages = self.stages(config)
        network = seeded(0, stages.network_factory()).to(stages.device)
        load_flat_params(network, trajectory[-1])
        return cast(Network, network.eval())

    def real_pools(self, config: PadConfig, prune: bool) -> list[torch.Tensor]:
        """Per class, the global indices of the real pool; with ``prune``, PAD's static difficulty pruning
        (``experts.static_ratios``: 20 % hardest removed at IPC <= 10, else 10 % easiest)."""
        if not prune:
            return self.data.train.class_indices()
        hard, easy = config.experts.static_ratios(config.ipc)
        return static_prune(self.orders(config), hard=hard, easy=easy)


def hard_labelled(context: MethodContext, images: torch.Tensor, classes: torch.Tensor, lr: float) -> SyntheticSet:
    """A condensed set (S, C, H, W) with one-hot label logits (S, K) and a fixed evaluation step size."""
    return hard_label_set(images, classes, context.data.train.num_classes, lr)
