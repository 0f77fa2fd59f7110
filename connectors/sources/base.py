"""The :class:`Source` base: schema caching, label encoding, validation, split / row selection and
re-chunking to the requested batch size. Format readers only implement :meth:`Source._scan` (a pass over
the cheap columns) and :meth:`Source._iter_raw` (decoded chunks in row order)."""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import structlog

from connectors._fs import Location
from connectors.errors import DataValidationError, EmptyDatasetError, SchemaError
from connectors.schema import Batch, LabelEncoder, ScanStats, SourceSchema, check_finite
from connectors.sources._limits import DEFAULT_MEMORY_LIMIT, check_memory, nbytes

log = structlog.get_logger(__name__)

__all__ = ["RawChunk", "Source", "SourceOptions"]


@dataclass(frozen=True)
class SourceOptions:
    """Column names and overrides shared by every format (see :func:`connectors.open_source`)."""

    image_column: str = "image"
    label_column: str = "label"
    group_column: str | None = None
    split_column: str | None = None
    class_names: tuple[str, ...] | None = None
    image_shape: tuple[int, ...] | None = None
    memory_limit: int = DEFAULT_MEMORY_LIMIT


@dataclass
class RawChunk:
    """What a format reader yields: decoded images with raw (not yet encoded) labels.

    images (N, C, H, W); labels (N,) ints or strings; groups / splits (N,) or None; row_ids (N,) int64;
    file: the object the rows came from (for error messages).
    """

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None
    splits: np.ndarray | None
    row_ids: np.ndarray
    file: str | None


@dataclass
class ScanResult:
    """What :meth:`Source._scan` returns: the label statistics plus the facts only the reader knows."""

    stats: ScanStats
    image_shape: tuple[int, int, int]
    dtype: str
    stored_bytes: int
    fingerprint: str
    class_names: tuple[str, ...] | None = None  # names the files record (a Hugging Face ClassLabel)


class Source(ABC):
    """A readable dataset. Open one with :func:`connectors.open_source`.

    Reading streams: :meth:`iter_batches` holds at most about two batches (plus one stored chunk, e.g. a
    Parquet row group) in memory, whatever the dataset size.
    """

    format: ClassVar[str]

    def __init__(self, location: Location, options: SourceOptions) -> None:
        self.location = location
        self.options = options
        self._schema: SourceSchema | None = None
        self._encoder: LabelEncoder | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location.uri!r})"

    # -- what format readers implement -------------------------------------------------------------
    @abstractmethod
    def _scan(self) -> ScanResult:
        """One pass over labels (and split / group values): counts, image shape, bytes, fingerprint."""

    @abstractmethod
    def _iter_raw(self, batch_size: int, start: int, stop: int, split: str | None) -> Iterator[RawChunk]:
        """Chunks of about ``batch_size`` rows covering at least rows [start, stop), in row order.

        ``split`` is a hint: readers that store splits apart (IDX) skip the other splits' files.
        """

    def shard_bounds(self, target_rows: int) -> list[tuple[int, int]]:
        """Row ranges [start, stop) that partition the source, each about ``target_rows`` long."""
        return even_bounds(self.schema.num_rows, target_rows)

    # -- public API ----------------------------------------------------------------------------------
    @property
    def schema(self) -> SourceSchema:
        """The :class:`SourceSchema` (computed on first access by a streamed scan of the label column)."""
        if self._schema is None:
            self._schema, self._encoder = self._build_schema()
        return self._schema

    def iter_batches(
        self,
        batch_size: int = 1024,
        *,
        split: str | None = None,
        rows: Sequence[int] | np.ndarray | None = None,
    ) -> Iterator[Batch]:
        """Stream the dataset in batches of ``batch_size`` rows (the last one may be shorter).

        Args:
            split: only rows of this split (needs a split column / split-aware layout).
            rows: only these global row ids (sorted, unique), e.g. a holdout from
                :func:`connectors.stratified_split`. Still streamed: reading stops after the last one.
        Yields:
            :class:`Batch` with images (N, C, H, W) in the source dtype, labels (N,) int64.
        Raises:
            MemoryLimitError when one batch of images would exceed the source's ``memory_limit``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        schema = self.schema
        check_memory(
            self._row_bytes() * min(batch_size, schema.num_rows),
            self.options.memory_limit,
            f"a batch of {batch_size} images of shape {schema.image_shape} {schema.dtype}; lower batch_size",
            uri=self.location.uri,
        )
        wanted = self._check_rows(rows, schema.num_rows)
        self._check_split(split, schema)
        start, stop = (
            (0, schema.num_rows)
            if wanted is None or not wanted.size
            else (int(wanted[0]), int(wanted[-1]) + 1)
        )
        if wanted is not None and not wanted.size:
            return
        pending: list[Batch] = []
        held = 0
        for chunk in self._iter_raw(batch_size, start, stop, split):
            batch = self._select(self._validate(chunk, schema), chunk, split, wanted, start, stop)
            if batch is None:
                continue
            pending.append(batch)
            held += len(batch)
            while held >= batch_size:
                merged = Batch.concat(pending)
                yield merged.take(slice(0, batch_size))
                rest = merged.take(slice(batch_size, None))
                pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
        if held:
            yield Batch.concat(pending)

    def read_all(self, split: str | None = None, rows: Sequence[int] | np.ndarray | None = None) -> Batch:
        """Load the selected rows into memory as one :class:`Batch` (for small data only)."""
        # Batches as large as the memory limit allows (one image at least), at most 65536 rows.
        batch_size = max(1, min(65536, self.options.memory_limit // max(1, self._row_bytes())))
        parts = list(self.iter_batches(batch_size, split=split, rows=rows))
        if not parts:
            raise EmptyDatasetError("no rows selected", uri=self.location.uri)
        return Batch.concat(parts)

    # -- internals -----------------------------------------------------------------------------------
    def _row_bytes(self) -> int:
        schema = self.schema
        return nbytes(schema.image_shape, np.dtype(schema.dtype).itemsize)

    def _build_schema(self) -> tuple[SourceSchema, LabelEncoder]:
        opts = self.options
        scan = self._scan()
        given = opts.class_names if opts.class_names is not None else scan.class_names
        names = scan.stats.class_names(given, uri=self.location.uri, column=opts.label_column)
        encoder = LabelEncoder(names, bool(scan.stats.string_labels), opts.label_column)
        splits, split_counts = scan.stats.split_info()
        schema = SourceSchema(
            image_shape=scan.image_shape,
            channels=scan.image_shape[0],
            dtype=scan.dtype,
            num_rows=scan.stats.num_rows,
            class_names=names,
            class_counts=scan.stats.class_counts(encoder),
            stored_bytes=scan.stored_bytes,
            group_column=opts.group_column,
            group_values=tuple(sorted(scan.stats.groups)) if opts.group_column else None,
            splits=splits,
            split_counts=split_counts,
            uri=self.location.uri,
            fingerprint=scan.fingerprint,
            format=self.format,
        )
        log.info(
            "source_opened",
            uri=schema.uri,
            format=schema.format,
            rows=schema.num_rows,
            classes=schema.num_classes,
            image_shape=schema.image_shape,
        )
        return schema, encoder

    def _validate(self, chunk: RawChunk, schema: SourceSchema) -> Batch:
        uri, col = self.location.uri, self.options.image_column
        if chunk.images.shape[1:] != schema.image_shape:
            raise DataValidationError(
                f"mixed image sizes or channel counts: expected {schema.image_shape}, got "
                f"{tuple(chunk.images.shape[1:])}",
                uri=uri,
                file=chunk.file,
                column=col,
                row=int(chunk.row_ids[0]) if len(chunk.row_ids) else None,
            )
        if chunk.images.dtype != np.dtype(schema.dtype):
            raise DataValidationError(
                f"mixed image dtypes: expected {schema.dtype}, got {chunk.images.dtype}",
                uri=uri,
                file=chunk.file,
                column=col,
            )
        check_finite(chunk.images, chunk.row_ids, uri=uri, file=chunk.file, column=col)
        assert self._encoder is not None  # set together with the schema
        labels = self._encoder.encode(chunk.labels, row_ids=chunk.row_ids, uri=uri, file=chunk.file)
        return Batch(chunk.images, labels, chunk.groups, chunk.row_ids)

    @staticmethod
    def _select(
        batch: Batch, chunk: RawChunk, split: str | None, wanted: np.ndarray | None, start: int, stop: int
    ) -> Batch | None:
        keep = (batch.row_ids >= start) & (batch.row_ids < stop)
        if split is not None and chunk.splits is not None:
            keep &= chunk.splits.astype(str) == split
        if wanted is not None:
            keep &= np.isin(batch.row_ids, wanted, assume_unique=True)
        if keep.all():
            return batch if len(batch) else None
        return batch.take(keep) if keep.any() else None

    def _check_split(self, split: str | None, schema: SourceSchema) -> None:
        if split is not None and (schema.splits is None or split not in schema.splits):
            raise SchemaError(
                f"split {split!r} not found (splits: {schema.splits})",
                uri=self.location.uri,
                column=self.options.split_column,
            )

    def _check_rows(self, rows: Sequence[int] | np.ndarray | None, num_rows: int) -> np.ndarray | None:
        if rows is None:
            return None
        arr = np.asarray(rows, dtype=np.int64)
        if arr.ndim != 1 or (arr.size > 1 and np.any(np.diff(arr) <= 0)):
            raise ValueError("rows must be a 1-D sorted array of unique row ids")
        if arr.size and (arr[0] < 0 or arr[-1] >= num_rows):
            raise DataValidationError(
                f"row id outside 0..{num_rows - 1}",
                uri=self.location.uri,
                value=int(arr[0] if arr[0] < 0 else arr[-1]),
            )
        return arr


def even_bounds(num_rows: int, target_rows: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of about ``target_rows`` rows covering ``num_rows``."""
    parts = max(1, math.ceil(num_rows / max(1, target_rows)))
    edges = np.linspace(0, num_rows, parts + 1).astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]
