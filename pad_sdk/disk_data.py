"""A source larger than the memory budget: read once, in batches, into a local file that is then mapped.

Every stage after intake indexes the training images (``images[rows]``: shuffled minibatches of EL2N
scoring and of expert epochs, the scheduler's kept subset as an index filter, the ``ipc`` initial images per
class), so a memory-mapped file serves them as well as memory does: a minibatch reads its rows, the operating
system keeps hot pages cached and drops them under memory pressure (file pages, not the process's own
memory). The minibatch order, the subsets and the pixel values are those of an in-memory run, so the
condensed set is the same for a seed.

The file is unlinked as soon as it is mapped: its space goes back when the run's last reference to the
images does, and a crashed run leaves nothing behind. ``data_dir`` chooses where it is written (default:
the system's temporary directory); it needs the training set's size in the source dtype free.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import structlog
import torch

import connectors
from pad_sdk.core.images import StoredImages
from pad_sdk.data import RawData, SplitRows, raw_from_source, to_stored_images
from pad_sdk.errors import ConfigError, DataError

log = structlog.get_logger(__name__)

BUDGET_SHARE = 0.25  # default data budget: this share of the memory available when the run starts
READ_BATCH = 4096  # rows per streamed batch while writing the file


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``), or the physical memory where that is unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def data_budget(gib: float | None) -> int:
    """The budget in bytes: ``gib`` GiB, or :data:`BUDGET_SHARE` of the available memory for None."""
    return int(BUDGET_SHARE * available_memory()) if gib is None else int(gib * 2**30)


def stored_bytes(schema: connectors.SourceSchema) -> int:
    """Bytes the source's images take held as :class:`StoredImages` (8- and 16-bit stay, the rest float32)."""
    dtype = np.dtype(schema.dtype)
    itemsize = dtype.itemsize if dtype in (np.uint8, np.uint16) else (1 if dtype.kind in "biu" else 4)
    return int(schema.num_rows * int(np.prod(schema.image_shape)) * itemsize)


def _stored_batches(batches: Iterator[connectors.Batch], field: str) -> Iterator[tuple[StoredImages, connectors.Batch]]:
    """Each batch validated and converted as in memory; a bad row is named by its row id in the source."""
    for batch in batches:
        try:
            yield to_stored_images(batch.images, field), batch
        except DataError as exc:
            if exc.row is None:
                raise
            row = int(batch.row_ids[exc.row])
            raise DataError(str(exc).replace(f"row {exc.row}", f"row {row}", 1), field=exc.field, row=row) from None


def read_mapped(src: connectors.Source, split: str | None, folder: str | Path | None,
                field: str = "images") -> SplitRows:
    """Stream the rows of ``split`` (all rows for None) into a file under ``folder`` and map it."""
    schema = src.schema
    row_bytes = int(np.prod(schema.image_shape)) * np.dtype(schema.dtype).itemsize
    size = max(1, min(READ_BATCH, src.options.memory_limit // max(1, row_bytes)))  # the source's batch limit
    try:
        handle, name = tempfile.mkstemp(prefix="pad-sdk-data-", suffix=".pixels", dir=folder)
    except OSError as exc:
        raise ConfigError(f"cannot write the training images under {folder or tempfile.gettempdir()}: "
                          f"{exc.strerror}; set data_dir to a writable folder", field="data_dir") from None
    path = Path(name)
    labels, groups, count, scale, dtype, shape = [], [], 0, 1.0, None, None
    try:
        with os.fdopen(handle, "wb") as out:
            for stored, batch in _stored_batches(src.iter_batches(size, split=split), field):
                pixels = stored.pixels.numpy()
                if dtype is None:
                    dtype, shape = pixels.dtype, pixels.shape[1:]
                scale = max(scale, stored.scale)  # integer sources: 0/1 masks are read as they are, else / 255
                out.write(np.ascontiguousarray(pixels, dtype=dtype).tobytes())
                labels.append(np.asarray(batch.labels, dtype=np.int64))
                if batch.groups is not None:
                    groups.append(batch.groups)
                count += len(batch)
        if count == 0 or dtype is None or shape is None:
            raise DataError(f"the source has no rows{'' if split is None else f' in split {split!r}'}", field=field)
        array = np.memmap(path, dtype=dtype, mode="r+", shape=(count, *shape))
    except OSError as exc:  # e.g. the disk filled up: the file goes, the error says where and how much
        raise ConfigError(f"cannot write the training images under {folder or tempfile.gettempdir()}: "
                          f"{exc.strerror}; data_dir needs about {stored_bytes(schema):,} bytes free",
                          field="data_dir") from None
    finally:
        _unlink(path)  # the mapping stays valid; the space returns with the last reference to it
    mapped = torch.from_numpy(array)
    weakref.finalize(mapped, _unlink, path)  # where unlinking an open file failed (not on Linux)
    images = StoredImages(mapped, scale=scale, rows=torch.arange(count))
    return SplitRows(images, np.concatenate(labels), np.concatenate(groups) if groups else None)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def raw_on_disk(src: connectors.Source, *, holdout_fraction: float, seed: int,
                folder: str | Path | None = None) -> RawData:
    """As :func:`pad_sdk.data.raw_from_source`, with every split's pixels in a file mapping under ``folder``."""
    if folder is not None:
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create data_dir {folder}: {exc.strerror}", field="data_dir") from None
    def read(source: connectors.Source, split: str | None) -> SplitRows:
        return read_mapped(source, split, folder, "images" if split is None else f"{split} images")

    raw = raw_from_source(src, read, holdout_fraction=holdout_fraction, seed=seed)
    log.info("data.mapped", uri=src.schema.uri, rows=src.schema.num_rows, bytes=stored_bytes(src.schema),
             folder=str(folder or tempfile.gettempdir()))
    return replace(raw, source={**raw.source, "held": "file mapping"})
