"""Parquet sources: one file, a directory of shards, or a glob, read row group by row group.

Image columns may hold encoded bytes (binary, or the Hugging Face ``datasets`` struct
``{bytes, path}``) or numeric arrays (fixed-size binary / list, nested lists, fixed-shape tensors).
Flat numeric arrays are (C, H, W) in C order; their shape comes from ``image_shape=``, from the file's
``pad:image_shape`` metadata (written by :func:`connectors.write_condensed`), or, for square
single-channel images, from the length alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from connectors._fs import fingerprint
from connectors.errors import CorruptDataError, DataValidationError, SchemaError, SourceNotFoundError
from connectors.schema import ScanStats
from connectors.sources._arrow_images import ImageColumn
from connectors.sources.base import RawChunk, ScanResult, Source

SHAPE_METADATA_KEY = b"pad:image_shape"
HF_METADATA_KEY = b"huggingface"
_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class _RowGroup:
    fragment: pads.ParquetFileFragment
    file: str
    start: int
    num_rows: int


class ParquetSource(Source):
    """A Parquet dataset (see module docstring). Peak memory ~ one row group + two batches."""

    format = "parquet"

    def _files(self) -> list[str]:
        loc = self.location
        with loc.translating():
            if any(c in loc.path for c in _GLOB_CHARS):
                files = sorted(loc.fs.glob(loc.path))
            elif loc.fs.isdir(loc.path):
                found = sorted(p for p in loc.fs.find(loc.path) if not _hidden(p))
                files = [p for p in found if p.endswith((".parquet", ".parq", ".pq"))] or found
            else:
                loc.fs.info(loc.path)  # FileNotFoundError -> SourceNotFoundError
                files = [loc.path]
        if not files:
            raise SourceNotFoundError("no Parquet files found", uri=loc.uri)
        return files

    _groups_cache: list[_RowGroup] | None = None

    def _row_groups(self) -> list[_RowGroup]:
        """Every row group of every file, in row order, with its first global row id (footers only)."""
        if self._groups_cache is None:
            groups: list[_RowGroup] = []
            row = 0
            for path in self._files():
                # One dataset per file so that a corrupt footer is reported with its file name.
                with self.location.translating(path):
                    frag = next(
                        iter(
                            pads.dataset(path, format="parquet", filesystem=self.location.fs).get_fragments()
                        )
                    )
                    for piece in frag.split_by_row_group():
                        n = piece.row_groups[0].num_rows
                        groups.append(_RowGroup(piece, path, row, n))
                        row += n
            self._groups_cache = groups
        return self._groups_cache

    def _arrow_schema(self) -> pa.Schema:
        groups = self._row_groups()
        if not groups:
            raise SourceNotFoundError("Parquet files hold no row groups", uri=self.location.uri)
        with self.location.translating(groups[0].file):
            return groups[0].fragment.physical_schema

    def _columns(self) -> list[str]:
        opts = self.options
        names = self._arrow_schema().names
        cols = [opts.image_column, opts.label_column, opts.group_column, opts.split_column]
        for role, col in zip(("image", "label", "group", "split"), cols, strict=True):
            if col is not None and col not in names:
                raise SchemaError(
                    f"{role} column {col!r} not found",
                    available=tuple(names),
                    uri=self.location.uri,
                    column=col,
                )
        self._check_same_types([c for c in cols if c is not None])
        return [c for c in cols if c is not None]

    def _check_same_types(self, columns: list[str]) -> None:
        """Every file must give the columns read the first file's types (shards of one table)."""
        first = self._arrow_schema()
        checked: set[str] = set()
        for group in self._row_groups():
            if group.file in checked:
                continue
            checked.add(group.file)
            with self.location.translating(group.file):
                schema = group.fragment.physical_schema
            for col in columns:
                index = schema.get_field_index(col)
                if index < 0 or schema.field(index).type != first.field(col).type:
                    got = "missing" if index < 0 else str(schema.field(index).type)
                    raise SchemaError(
                        f"column {col!r} is {got} in this file but {first.field(col).type} in the first file",
                        uri=self.location.uri,
                        file=self.location.display(group.file),
                        column=col,
                    )

    def _scan(self) -> ScanResult:
        opts, loc = self.options, self.location
        self._columns()
        stats = ScanStats()
        cheap = [c for c in (opts.label_column, opts.split_column, opts.group_column) if c is not None]
        files = sorted({g.file for g in self._row_groups()})
        for group in self._row_groups():
            seen = 0
            with loc.translating(group.file):
                for rb in group.fragment.to_batches(columns=cheap, batch_size=65536, use_threads=False):
                    labels = _labels(rb.column(opts.label_column), group.file, loc.uri, opts.label_column)
                    stats.add(
                        labels,
                        self._splits(rb, group.file),
                        _opt(rb, opts.group_column, group.file, loc.uri),
                        uri=loc.uri,
                        file=loc.display(group.file),
                        first_row=group.start,
                        column=opts.label_column,
                    )
                    seen += rb.num_rows
            self._check_group_rows(group, seen)
        first = next((g for g in self._row_groups() if g.num_rows), None)
        shape: tuple[int, int, int] = (1, 1, 1)
        dtype = "uint8"
        if first is not None:
            with loc.translating(first.file):
                rb = next(
                    iter(
                        first.fragment.to_batches(
                            columns=[opts.image_column], batch_size=1, use_threads=False
                        )
                    )
                )
            if not rb.num_rows:
                self._check_group_rows(first, 0)
            img = self._images(rb.column(opts.image_column), np.array([first.start]), first.file)
            shape, dtype = tuple(img.shape[1:]), img.dtype.name
        with loc.translating():
            digest, stored = fingerprint(loc.fs, files, loc.path)
        return ScanResult(stats, shape, dtype, stored, digest, self._recorded_class_names())

    def _file_split(self, path: str) -> str | None:
        """The split every row of ``path`` belongs to, when the layout names it (None: a split column)."""
        return None

    def _splits(self, rb: pa.RecordBatch, path: str) -> np.ndarray | None:
        named = self._file_split(path)
        if named is not None:
            return np.full(rb.num_rows, named, dtype=object)
        return _opt(rb, self.options.split_column, path, self.location.uri)

    def _recorded_class_names(self) -> tuple[str, ...] | None:
        """The label column's class names from the Hugging Face ``ClassLabel`` feature, if recorded."""
        feature = hf_features(self._arrow_schema()).get(self.options.label_column)
        if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and feature.get("names"):
            return tuple(str(n) for n in feature["names"])
        return None

    def _iter_raw(self, batch_size: int, start: int, stop: int, split: str | None) -> Iterator[RawChunk]:
        opts, loc = self.options, self.location
        cols = self._columns()
        for group in self._row_groups():
            if group.start + group.num_rows <= start or group.start >= stop:
                continue  # whole row group outside the requested range: not read at all
            if split is not None and self._file_split(group.file) not in (None, split):
                continue  # a file of another split (split from the file name): not read at all
            row = group.start
            # use_threads=False: Arrow's threaded scanner reads ahead (~10 MB measured for 1024-row row
            # groups of 28x28 images); single-threaded scanning keeps the peak at one batch.
            with loc.translating(group.file):
                batches = group.fragment.to_batches(columns=cols, batch_size=batch_size, use_threads=False)
                for rb in batches:
                    row_ids = np.arange(row, row + rb.num_rows, dtype=np.int64)
                    row += rb.num_rows
                    if row > group.start + group.num_rows:
                        self._check_group_rows(group, row - group.start)
                    if not rb.num_rows or row_ids[-1] < start or row_ids[0] >= stop:
                        continue
                    yield RawChunk(
                        images=self._images(rb.column(opts.image_column), row_ids, group.file),
                        labels=_labels(rb.column(opts.label_column), group.file, loc.uri, opts.label_column),
                        groups=_opt(rb, opts.group_column, group.file, loc.uri),
                        splits=self._splits(rb, group.file),
                        row_ids=row_ids,
                        file=loc.display(group.file),
                    )
            self._check_group_rows(group, row - group.start)

    def shard_bounds(self, target_rows: int) -> list[tuple[int, int]]:
        """Row ranges aligned to row groups (so each shard reads only its own row groups)."""
        bounds: list[tuple[int, int]] = []
        for group in self._row_groups():
            end = group.start + group.num_rows
            if bounds and bounds[-1][1] - bounds[-1][0] < target_rows:
                bounds[-1] = (bounds[-1][0], end)
            elif group.num_rows:
                bounds.append((group.start, end))
        return bounds

    # -- image column decoding -----------------------------------------------------------------------
    def _check_group_rows(self, group: _RowGroup, seen: int) -> None:
        if seen != group.num_rows:
            raise CorruptDataError(
                f"a row group declares {group.num_rows} rows but holds {seen}",
                uri=self.location.uri,
                file=self.location.display(group.file),
            )

    def _images(self, col: pa.ChunkedArray | pa.Array, row_ids: np.ndarray, file: str) -> np.ndarray:
        """Arrow image column (N rows) -> (N, C, H, W) numpy array."""
        return ImageColumn(self.location, self.options, self._recorded_shape).read(col, row_ids, file)

    def _recorded_shape(self) -> tuple[int, ...] | None:
        meta = self._arrow_schema().metadata or {}
        raw = meta.get(SHAPE_METADATA_KEY)
        return tuple(json.loads(raw)) if raw else None


def hf_features(schema: pa.Schema) -> dict[str, object]:
    """The ``datasets`` features recorded in a Parquet schema's ``huggingface`` metadata ({} if none)."""
    raw = (schema.metadata or {}).get(HF_METADATA_KEY)
    if not raw:
        return {}
    try:
        features = json.loads(raw).get("info", {}).get("features", {})
    except (ValueError, AttributeError):
        return {}  # unreadable metadata is ignored: it only names classes
    return features if isinstance(features, dict) else {}


def _hidden(path: str) -> bool:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name.startswith(("_", "."))


def _labels(col: pa.Array | pa.ChunkedArray, file: str, uri: str, name: str) -> np.ndarray:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if arr.null_count:
        raise DataValidationError("label is missing (null)", uri=uri, file=file, column=name)
    return arr.to_numpy(zero_copy_only=False)


def _opt(rb: pa.RecordBatch, name: str | None, file: str, uri: str) -> np.ndarray | None:
    if name is None:
        return None
    arr = rb.column(name)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if arr.null_count:
        raise DataValidationError("value is missing (null)", uri=uri, file=file, column=name)
    return arr.to_numpy(zero_copy_only=False)
