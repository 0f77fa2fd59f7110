"""Ray Data access to any connector source, so that Ray Train workers stream their shards.

Ray is imported inside the functions: importing ``connectors`` never imports Ray.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from connectors.sources.base import Source

if TYPE_CHECKING:
    import ray.data

__all__ = ["to_ray_dataset"]


def _read_shard(source: Source, start: int, stop: int, split: str | None, batch_size: int) -> Iterator[Any]:
    """Runs in a Ray worker: stream rows [start, stop) of ``source`` as Arrow blocks."""
    from ray.data.block import BlockAccessor

    rows = np.arange(start, stop, dtype=np.int64)
    for batch in source.iter_batches(batch_size, split=split, rows=rows):
        columns: dict[str, np.ndarray] = {
            "image": batch.images,
            "label": batch.labels,
            "row_id": batch.row_ids,
        }
        if batch.groups is not None:
            columns["group"] = batch.groups
        yield BlockAccessor.batch_to_block(columns)


def to_ray_dataset(
    src: Source, *, split: str | None = None, rows_per_task: int | None = None, batch_size: int = 1024
) -> ray.data.Dataset:
    """A lazy ``ray.data.Dataset`` over ``src`` with columns image (C, H, W tensor), label, row_id[, group].

    One read task per shard of about ``rows_per_task`` rows (Parquet shards follow row groups); each
    task streams its rows with :meth:`Source.iter_batches`, so workers never hold more than a batch or
    two. Credentials in the source's storage options travel to the workers with the task (never logged).
    """
    import ray.data
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    schema = src.schema  # computed once on the driver; pickled with the source into each task
    per_row = schema.bytes_per_image + 24

    class _ConnectorDatasource(Datasource):
        def get_name(self) -> str:
            return f"Connector[{schema.format}]"

        def estimate_inmemory_data_size(self) -> int:
            return schema.num_rows * per_row

        def get_read_tasks(
            self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
        ) -> list[ReadTask]:
            target = rows_per_task or max(1, -(-schema.num_rows // max(1, parallelism)))
            tasks = []
            for start, stop in src.shard_bounds(target):
                meta = BlockMetadata(
                    num_rows=None if split else stop - start,
                    size_bytes=(stop - start) * per_row,
                    exec_stats=None,
                    input_files=None,
                )
                tasks.append(
                    ReadTask(
                        functools.partial(_read_shard, src, start, stop, split, batch_size),
                        meta,
                        per_task_row_limit=per_task_row_limit,
                    )
                )
            return tasks

    return ray.data.read_datasource(_ConnectorDatasource())
