"""Reading a connector source on the cluster with Ray Data, so that the driver never holds the images.

Ray Data's read tasks stream the source's shards from storage (local files or ``s3://``) on the workers
into the object store; one task then assembles the training and holdout sets from those blocks with the
same code as the in-process path (:func:`pad_sdk.data.raw_from_source`), and another normalises them
(:func:`pad_sdk.data.prepare`). Both results stay in the object store. The driver gets a *shape-only* copy:
labels, class names, statistics and groups are real, the image tensors are on PyTorch's ``meta`` device
(shape and dtype, no storage), so any computation on images that slipped onto the driver fails at once
instead of quietly copying the dataset. The runtime hands the tasks the reference (``ref``) instead.

A source over the runtime's memory budget never enters the object store: ``ref`` is then a small recipe
(:class:`NodeFiles`, :class:`NodePrepared`) and each node that runs a task streams the source once, straight
from storage, into a file that all its processes map (:func:`pad_sdk.disk_data.node_mapped`). Tasks index the
mapping exactly as the in-process runtime indexes its own (:mod:`pad_sdk.disk_data`), so the minibatches, the
scheduler's subsets and the condensed set are those of an in-memory run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import connectors
from pad_sdk.core.images import Images
from pad_sdk.core.training import LabelledImages
from pad_sdk.core.zca import ZCAWhitening
from pad_sdk.data import (
    Normalisation,
    PreparedData,
    RawData,
    prepare,
    prepared_with,
    raw_from_source,
    splits_to_read,
)
from pad_sdk.disk_data import node_mapped, remove_node_files
from pad_sdk.errors import DataError, PadError


@dataclass(frozen=True)
class ClusterRaw(RawData):
    """:class:`~pad_sdk.data.RawData` with shape-only images; ``ref`` is the real one in the object store."""

    ref: Any = None


@dataclass(frozen=True)
class ClusterData(PreparedData):
    """:class:`~pad_sdk.pipeline.PreparedData` with shape-only images; ``ref`` is the real one."""

    ref: Any = None


def shape_only(tensor: Images) -> torch.Tensor:
    return torch.empty(tensor.shape, dtype=tensor.dtype, device="meta")


def _raw_outline(raw: RawData) -> ClusterRaw:
    return ClusterRaw(shape_only(raw.train_images), raw.train_labels, shape_only(raw.test_images), raw.test_labels,
                      raw.class_names, raw.source, raw.test_groups, raw.group_column)


def _data_outline(data: PreparedData) -> ClusterData:
    def outline(part: LabelledImages) -> LabelledImages:
        return LabelledImages(shape_only(part.images), part.labels, part.num_classes)

    return ClusterData(outline(data.train), outline(data.test), data.class_names, data.normalisation, data.zca,
                       data.test_groups, data.group_column)


HELD_ON_NODES = "file mapping on each node"


@dataclass(frozen=True)
class NodeFiles:
    """The raw data of a source over the memory budget, as a recipe: each node maps its own copy of the
    source's splits under ``folder`` (written once per node, from storage), then splits it as every runtime does."""

    source: connectors.Source
    holdout_fraction: float
    seed: int
    folder: str | None
    key: str  # names this run's files on every node (removed by the runtime's shutdown)

    def raw(self) -> RawData:
        """The node's mapping, split as every runtime splits it. Not cached in the process: a pooled worker
        would keep removed files' space until it exits; mapping and splitting cost milliseconds."""

        def read(src: connectors.Source, split: str | None) -> Any:
            return node_mapped(src, split, self.folder, self.key, "images" if split is None else f"{split} images")

        raw = raw_from_source(self.source, read, holdout_fraction=self.holdout_fraction, seed=self.seed)
        return dataclasses.replace(raw, source={**raw.source, "held": HELD_ON_NODES})


@dataclass(frozen=True)
class NodePrepared:
    """The prepared data of :class:`NodeFiles`: the node's mapping read through the fitted normalisation."""

    files: NodeFiles
    normalisation: Normalisation
    zca: ZCAWhitening | None

    def data(self) -> PreparedData:
        return prepared_with(self.files.raw(), self.normalisation, self.zca)


def resolve(value: Any) -> Any:
    """In a task: the real data behind ``value`` (an object-store reference, or a node-file recipe), or
    ``value`` itself."""
    import ray

    if isinstance(value, ray.ObjectRef):
        value = ray.get(value)
    if isinstance(value, NodeFiles):
        return value.raw()
    if isinstance(value, NodePrepared):
        return value.data()
    return value


def payload_data(data: PreparedData) -> Any:
    """What a task is sent for ``data``: the reference when the images live on the cluster, else the data."""
    return data.ref if isinstance(data, ClusterData) else data


def collect_rows(dataset: Any, what: str) -> connectors.Batch:
    """All rows of a (materialised) Ray dataset of connector columns, as one batch in row order."""
    parts = [
        connectors.Batch(np.asarray(b["image"]), np.asarray(b["label"], dtype=np.int64),
                         None if "group" not in b else np.asarray(b["group"]), np.asarray(b["row_id"], dtype=np.int64))
        for b in dataset.iter_batches(batch_size=None, batch_format="numpy")
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        raise DataError(f"no rows in {what}", field="source")
    batch = connectors.Batch.concat(parts)
    return batch.take(np.argsort(batch.row_ids, kind="stable"))


def load_task(src: connectors.Source, datasets: Mapping[str | None, Any], holdout_fraction: float,
              seed: int) -> tuple[RawData, ClusterRaw]:
    """Runs on a worker: the train/holdout sets from the Ray Data blocks, and their shape-only outline."""

    def read(source: connectors.Source, split: str | None) -> connectors.Batch:
        return collect_rows(datasets[split], f"split {split!r} of {source.location.uri}" if split else
                            source.location.uri)

    raw = raw_from_source(src, read, holdout_fraction=holdout_fraction, seed=seed)
    return raw, _raw_outline(raw)


def prepare_task(raw: RawData, zca: bool, threads: int) -> tuple[PreparedData, ClusterData]:
    """Runs on a worker: normalise (and whiten) the real data; return it and its shape-only outline. The
    thread count is set as in the other tasks: float32 statistics over millions of pixels depend on it."""
    torch.set_num_threads(threads)
    data = prepare(raw, zca=zca)
    return data, _data_outline(data)


def outline_task(files: NodeFiles) -> ClusterRaw:
    """Runs on a worker: write (or map) the node's files and return the driver's shape-only outline."""
    return _raw_outline(files.raw())


def prepare_files_task(files: NodeFiles, zca: bool, threads: int) -> tuple[NodePrepared, ClusterData]:
    """Runs on a worker: fit the normalisation (and whitening) on the node's mapping, a batch at a time."""
    torch.set_num_threads(threads)
    data = prepare(files.raw(), zca=zca)
    return NodePrepared(files, data.normalisation, data.zca), _data_outline(data)


def unwrapped(ref: Any) -> Any:
    """``ray.get(ref)``, with a pad-sdk error raised in the task re-raised as itself (a clear, typed error)."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if hasattr(exc, "cause") else None
        if isinstance(cause, PadError):
            raise cause from None
        raise


def read_on_cluster(src: connectors.Source, *, holdout_fraction: float, seed: int,
                    task_options: Mapping[str, Any]) -> ClusterRaw:
    """Read ``src`` with Ray Data on the workers; the driver keeps the outline (see the module docstring)."""
    import ray
    from ray.data import DataContext

    context = DataContext.get_current()
    bars, context.enable_progress_bars = context.enable_progress_bars, False  # our own events report progress
    try:
        datasets = {split: connectors.to_ray_dataset(src, split=split).materialize()
                    for split in splits_to_read(src.schema)}
    finally:
        context.enable_progress_bars = bars
    task: Any = ray.remote(load_task).options(num_returns=2, **task_options)  # Ray's stubs miss num_returns
    raw_ref, outline_ref = task.remote(src, datasets, holdout_fraction, seed)
    outline = unwrapped(outline_ref)
    return dataclasses.replace(outline, ref=raw_ref)


def read_on_nodes(src: connectors.Source, *, holdout_fraction: float, seed: int, folder: str | None, key: str,
                  task_options: Mapping[str, Any]) -> ClusterRaw:
    """A source over the memory budget: one task writes its node's files and returns the outline; every other
    node writes its own copy when a task first needs the data there (module docstring)."""
    import ray

    files = NodeFiles(src, holdout_fraction, seed, folder, key)
    outline = unwrapped(ray.remote(outline_task).options(**task_options).remote(files))
    return dataclasses.replace(outline, ref=files)


def prepare_on_cluster(raw: ClusterRaw, zca: bool, task_options: Mapping[str, Any], threads: int) -> ClusterData:
    import ray

    if isinstance(raw.ref, NodeFiles):
        task: Any = ray.remote(prepare_files_task).options(**task_options)
        recipe, outline = unwrapped(task.remote(raw.ref, zca, threads))
        return dataclasses.replace(outline, ref=recipe)
    task = ray.remote(prepare_task).options(num_returns=2, **task_options)
    data_ref, outline_ref = task.remote(raw.ref, zca, threads)
    outline = unwrapped(outline_ref)
    return dataclasses.replace(outline, ref=data_ref)


def remove_files_on_nodes(folder: str | None, key: str, timeout_s: float = 30.0) -> int:
    """Remove run ``key``'s node files on every live node (a zero-CPU task pinned to each); returns how many
    files went. Best effort: a node that does not answer within ``timeout_s`` keeps its files (named by key)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task: Any = ray.remote(remove_node_files)
    refs = [task.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
            .remote(folder, key) for node in ray.nodes() if node.get("Alive")]
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    return sum(int(count) for count in ray.get(done))
