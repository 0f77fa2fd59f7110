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
import fcntl
import os
import pickle
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, replace
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


def _batch_rows(src: connectors.Source) -> int:
    """Rows per streamed batch: :data:`READ_BATCH`, or fewer where the source's own batch memory limit says so."""
    schema = src.schema
    row_bytes = int(np.prod(schema.image_shape)) * np.dtype(schema.dtype).itemsize
    return max(1, min(READ_BATCH, src.options.memory_limit // max(1, row_bytes)))


@dataclass(frozen=True)
class _Written:
    """What :func:`_write_pixels` wrote: the pixel file's layout, and each row's label and group."""

    labels: np.ndarray
    groups: np.ndarray | None
    scale: float
    dtype: np.dtype
    shape: tuple[int, ...]

    def mapped(self, path: Path) -> SplitRows:
        count = int(self.labels.shape[0])
        pixels = np.memmap(path, dtype=self.dtype, mode="r+", shape=(count, *self.shape))
        images = StoredImages(torch.from_numpy(pixels), scale=self.scale, rows=torch.arange(count))
        return SplitRows(images, self.labels, self.groups)


def _write_pixels(src: connectors.Source, split: str | None, path: Path, field: str) -> _Written:
    """Stream the rows of ``split`` into ``path`` (raw pixels, row after row), validated as in memory."""
    labels, groups, scale, dtype, shape = [], [], 1.0, None, None
    with open(path, "wb") as out:
        for stored, batch in _stored_batches(src.iter_batches(_batch_rows(src), split=split), field):
            pixels = stored.pixels.numpy()
            if dtype is None:
                dtype, shape = pixels.dtype, pixels.shape[1:]
            scale = max(scale, stored.scale)  # integer sources: 0/1 masks are read as they are, else / 255
            out.write(np.ascontiguousarray(pixels, dtype=dtype).tobytes())
            labels.append(np.asarray(batch.labels, dtype=np.int64))
            if batch.groups is not None:
                groups.append(batch.groups)
    if not labels or dtype is None or shape is None:
        raise DataError(f"the source has no rows{'' if split is None else f' in split {split!r}'}", field=field)
    return _Written(np.concatenate(labels), np.concatenate(groups) if groups else None, scale, np.dtype(dtype),
                    tuple(shape))


def _write_error(folder: str | Path | None, exc: OSError, schema: connectors.SourceSchema | None = None) -> ConfigError:
    where = folder or tempfile.gettempdir()
    if schema is None:
        return ConfigError(f"cannot write the training images under {where}: {exc.strerror}; set data_dir to a "
                           "writable folder", field="data_dir")
    return ConfigError(f"cannot write the training images under {where}: {exc.strerror}; data_dir needs about "
                       f"{stored_bytes(schema):,} bytes free", field="data_dir")


def read_mapped(src: connectors.Source, split: str | None, folder: str | Path | None,
                field: str = "images") -> SplitRows:
    """Stream the rows of ``split`` (all rows for None) into a file under ``folder`` and map it."""
    try:
        handle, name = tempfile.mkstemp(prefix="pad-sdk-data-", suffix=".pixels", dir=folder)
    except OSError as exc:
        raise _write_error(folder, exc) from None
    os.close(handle)
    path = Path(name)
    try:
        rows = _write_pixels(src, split, path, field).mapped(path)
    except OSError as exc:  # e.g. the disk filled up: the file goes, the error says where and how much
        raise _write_error(folder, exc, src.schema) from None
    finally:
        _unlink(path)  # the mapping stays valid; the space returns with the last reference to it
    weakref.finalize(rows.images.pixels, _unlink, path)  # where unlinking an open file failed (not on Linux)
    return rows


NODE_FILE_PREFIX = "pad-sdk-node-"


def node_mapped(src: connectors.Source, split: str | None, folder: str | Path | None, key: str,
                field: str = "images") -> SplitRows:
    """The rows of ``split`` from a file under ``folder`` that every process of this machine shares.

    The first process to ask writes it (streamed from the source, as :func:`read_mapped` does), under an
    exclusive lock so that concurrent tasks of one node write it once; the others, and every later call, map
    it. Unlike :func:`read_mapped`'s file it stays until :func:`remove_node_files` removes it (``key`` names
    the files of one run: ``[A-Za-z0-9_-]``).
    """
    where = Path(folder or tempfile.gettempdir())
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create data_dir {where}: {exc.strerror}", field="data_dir") from None
    stem = where / f"{NODE_FILE_PREFIX}{key}-{split or 'all'}"
    pixels, layout = stem.with_suffix(".pixels"), stem.with_suffix(".layout")
    try:
        with open(stem.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when a task dies
            if not layout.exists():  # written last: its presence means the pixels are complete
                partial = stem.with_suffix(".partial")
                try:
                    written = _write_pixels(src, split, partial, field)
                    partial.replace(pixels)
                finally:
                    _unlink(partial)
                with open(layout.with_suffix(".layout-partial"), "wb") as out:
                    pickle.dump(written, out)
                layout.with_suffix(".layout-partial").replace(layout)
                log.info("data.node_file_written", uri=src.schema.uri, split=split, path=str(pixels),
                         rows=int(written.labels.shape[0]))
            with open(layout, "rb") as saved:
                written = pickle.load(saved)
    except OSError as exc:
        raise _write_error(folder, exc, src.schema) from None
    return written.mapped(pixels)


def remove_node_files(folder: str | Path | None, key: str) -> int:
    """Remove this machine's files of run ``key`` under ``folder``; returns how many went."""
    where = Path(folder or tempfile.gettempdir())
    removed = 0
    for path in where.glob(f"{NODE_FILE_PREFIX}{key}-*"):
        _unlink(path)
        removed += not path.exists()
    return removed


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
