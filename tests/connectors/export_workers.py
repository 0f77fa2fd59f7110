"""Processes that save exports, for the concurrency and crash tests (run with multiprocessing or as scripts).

Each writer's condensed set is filled with its own id, so a reader can tell whose export it got.
"""

from __future__ import annotations

import sys
from multiprocessing.synchronize import Barrier
from typing import Any

import numpy as np

import connectors


def condensed(writer_id: int, n: int = 40) -> dict[str, Any]:
    """A condensed set whose every image value is ``writer_id``."""
    return {
        "images": np.full((n, 1, 6, 6), float(writer_id), np.float32),
        "labels": np.arange(n) % 4,
        "class_names": [f"w{writer_id}-c{k}" for k in range(4)],
        "learned_lr": 0.01 * (writer_id + 1),
        "metadata": {"writer": writer_id},
    }


def writer_of(export: connectors.CondensedExport) -> int:
    """The id of the writer whose export this is (every value is that id)."""
    ids = np.unique(export.images)
    assert ids.size == 1, f"an export mixing writers: {ids}"
    assert export.manifest["metadata"]["writer"] == int(ids[0])
    assert export.class_names[0].startswith(f"w{int(ids[0])}-")
    return int(ids[0])


def race(
    writer_id: int,
    barrier: Barrier,
    jobs: Any,
    results: Any,
    storage_options: dict[str, Any] | None,
) -> None:
    """Loop: take a URI from ``jobs`` (None ends), wait for the other writer, save, report the outcome."""
    while (uri := jobs.get()) is not None:
        barrier.wait(timeout=60)
        try:
            connectors.write_condensed(uri, storage_options=storage_options, **condensed(writer_id))
            results.put((writer_id, uri, "ok"))
        except connectors.ConnectorError as exc:
            results.put((writer_id, uri, type(exc).__name__))


def overwrite_forever(uri: str, ready_file: str) -> None:
    """Save writer 1 and writer 2 in turns, with overwrite, until killed; touches ``ready_file`` once."""
    i = 0
    while True:
        connectors.write_condensed(uri, overwrite=True, **condensed(1 + i % 2))
        if i == 0:
            open(ready_file, "w").close()
        i += 1


if __name__ == "__main__":
    overwrite_forever(sys.argv[1], sys.argv[2])
