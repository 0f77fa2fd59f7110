"""What a source looks like (:class:`SourceSchema`), what it yields (:class:`Batch`), and the checks
every batch goes through (label mapping, shape consistency, finite values)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from connectors.errors import DataValidationError, EmptyDatasetError, SchemaError

#: The most classes derived from integer labels (ids 0..max). A larger id is almost surely a corrupt
#: label, and would otherwise allocate a class list of that length; pass class_names= for more classes.
MAX_DERIVED_CLASSES = 100_000

__all__ = ["Batch", "LabelEncoder", "ScanStats", "SourceSchema", "check_finite"]


@dataclass(frozen=True)
class SourceSchema:
    """Facts about a source, known before any image is decoded in bulk.

    Attributes:
        image_shape: (C, H, W) of every image.
        channels: C (1 grey, 3 RGB, 4 RGBA).
        dtype: numpy dtype name of the images as yielded (``"uint8"`` for PNG/JPEG/IDX).
        num_rows: rows in the whole source (all splits).
        class_names: index = class id. Integer labels without given names become ``"0".."K-1"``;
            string labels are sorted (a stable, recorded order) unless ``class_names`` was given.
        class_counts: rows per class id (all splits).
        stored_bytes: bytes of the stored objects (compressed, as billed by storage).
        group_column / group_values: the optional group attribute and its sorted distinct values.
        splits / split_counts: distinct split names and their row counts, or None without a split.
        uri: redacted URI. fingerprint: sha256 over object names, sizes and ETags/mtimes.
        format: ``"parquet"``, ``"imagefolder"``, ``"idx"`` or ``"npz"``.
    """

    image_shape: tuple[int, int, int]
    channels: int
    dtype: str
    num_rows: int
    class_names: tuple[str, ...]
    class_counts: tuple[int, ...]
    stored_bytes: int
    group_column: str | None
    group_values: tuple[Any, ...] | None
    splits: tuple[str, ...] | None
    split_counts: tuple[int, ...] | None
    uri: str
    fingerprint: str
    format: str

    @property
    def num_classes(self) -> int:
        """K, the number of classes."""
        return len(self.class_names)

    @property
    def bytes_per_image(self) -> int:
        """Decoded bytes of one image (C * H * W * itemsize)."""
        c, h, w = self.image_shape
        return c * h * w * np.dtype(self.dtype).itemsize

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Batch:
    """A batch of examples.

    Attributes:
        images: (N, C, H, W) in the source dtype.
        labels: (N,) int64 class ids.
        groups: (N,) group values, or None when the source has no group column.
        row_ids: (N,) int64 global row index (stable across reads; the order of the source).
    """

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None
    row_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, index: np.ndarray | slice) -> Batch:
        """The rows selected by ``index`` (boolean mask, integer positions or slice)."""
        return Batch(
            self.images[index],
            self.labels[index],
            None if self.groups is None else self.groups[index],
            self.row_ids[index],
        )

    @staticmethod
    def concat(parts: Sequence[Batch]) -> Batch:
        """Concatenate batches in order (all must agree on having groups)."""
        if len(parts) == 1:
            return parts[0]
        groups = None if parts[0].groups is None else np.concatenate([p.groups for p in parts if p.groups is not None])
        return Batch(
            np.concatenate([p.images for p in parts]),
            np.concatenate([p.labels for p in parts]),
            groups,
            np.concatenate([p.row_ids for p in parts]),
        )


class ScanStats:
    """Accumulates label / split / group statistics over a streamed scan of the label columns."""

    def __init__(self) -> None:
        self.num_rows = 0
        self.labels: Counter[Any] = Counter()
        self.splits: Counter[str] = Counter()
        self.groups: set[Any] = set()
        self.string_labels: bool | None = None

    def add(
        self,
        labels: np.ndarray,
        splits: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        *,
        uri: str | None = None,
        file: str | None = None,
        first_row: int = 0,
        column: str = "label",
    ) -> None:
        """Count one chunk of raw labels (ints or strings) and, if present, split and group values."""
        kind = _label_kind(labels, column=column, uri=uri, file=file)
        if self.string_labels is None:
            self.string_labels = kind == "str"
        elif self.string_labels != (kind == "str"):
            raise DataValidationError("labels mix strings and integers", uri=uri, file=file, column=column)
        if kind == "int" and labels.size and labels.min() < 0:
            bad = int(np.argmax(labels < 0))
            raise DataValidationError(
                "negative label",
                uri=uri,
                file=file,
                column=column,
                row=first_row + bad,
                value=int(labels[bad]),
            )
        values, counts = np.unique(labels, return_counts=True)
        self.labels.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
        if splits is not None:
            self.splits.update(Counter(splits.astype(str).tolist()))
        if groups is not None:
            self.groups.update(np.unique(groups).tolist())
        self.num_rows += int(labels.shape[0])

    def class_names(self, given: Sequence[str] | None, *, uri: str | None, column: str) -> tuple[str, ...]:
        """The class list: ``given`` when set (checked against the data), else derived from the labels."""
        if self.num_rows == 0:
            raise EmptyDatasetError("dataset has no rows", uri=uri)
        if given is not None:
            names = tuple(str(n) for n in given)
            if len(set(names)) != len(names):
                raise SchemaError("class_names contains duplicates", uri=uri, column=column)
            return names
        if self.string_labels:
            return tuple(sorted(str(v) for v in self.labels))
        top = int(max(self.labels))
        if top >= MAX_DERIVED_CLASSES:
            raise DataValidationError(
                f"label {top} would make {top + 1} classes (at most {MAX_DERIVED_CLASSES} are derived from "
                "integer labels); fix the label column, or pass class_names= to name every class",
                uri=uri,
                column=column,
                value=top,
            )
        return tuple(str(i) for i in range(top + 1))

    def class_counts(self, encoder: LabelEncoder) -> tuple[int, ...]:
        """Rows per class id (validates every seen label against the class list)."""
        counts = [0] * len(encoder.class_names)
        for raw, n in self.labels.items():
            counts[int(encoder.encode(np.asarray([raw]))[0])] += n
        return tuple(counts)

    def split_info(self) -> tuple[tuple[str, ...] | None, tuple[int, ...] | None]:
        """(sorted split names, their counts) or (None, None) when no split column was scanned."""
        if not self.splits:
            return None, None
        names = tuple(sorted(self.splits))
        return names, tuple(self.splits[n] for n in names)


class LabelEncoder:
    """Maps raw labels (integer ids or class-name strings) to int64 class ids, rejecting bad ones."""

    def __init__(self, class_names: Sequence[str], string_labels: bool, column: str = "label") -> None:
        self.class_names = tuple(class_names)
        self.string_labels = string_labels
        self.column = column
        self._index = {name: i for i, name in enumerate(self.class_names)}

    def encode(
        self,
        raw: np.ndarray,
        *,
        row_ids: np.ndarray | None = None,
        uri: str | None = None,
        file: str | None = None,
    ) -> np.ndarray:
        """(N,) raw labels -> (N,) int64 class ids; DataValidationError naming the first bad row."""
        kind = _label_kind(raw, column=self.column, uri=uri, file=file)
        if self.string_labels != (kind == "str"):
            raise DataValidationError(
                "labels mix strings and integers", uri=uri, file=file, column=self.column
            )
        if kind == "str":
            ids = np.fromiter((self._index.get(str(v), -1) for v in raw), np.int64, count=len(raw))
            bad = np.flatnonzero(ids < 0)
            message = "label is not in the class list"
        else:
            ids = np.array(raw, dtype=np.int64)  # a copy: Arrow's zero-copy buffers are read-only
            bad = np.flatnonzero((ids < 0) | (ids >= len(self.class_names)))
            message = f"label outside the class list 0..{len(self.class_names) - 1}"
        if bad.size:
            i = int(bad[0])
            raise DataValidationError(
                "negative label" if kind == "int" and ids[i] < 0 else message,
                uri=uri,
                file=file,
                column=self.column,
                row=None if row_ids is None else int(row_ids[i]),
                value=raw[i].item(),
            )
        return ids


def check_finite(
    images: np.ndarray, row_ids: np.ndarray, *, uri: str | None, file: str | None, column: str
) -> None:
    """Raise DataValidationError naming the first row with a NaN or inf (float images only)."""
    if images.dtype.kind != "f" or images.size == 0:
        return
    finite = np.isfinite(images.reshape(images.shape[0], -1)).all(axis=1)
    if not finite.all():
        i = int(np.argmin(finite))
        bad = images[i][~np.isfinite(images[i])].flat[0]
        raise DataValidationError(
            "image contains NaN or inf",
            uri=uri,
            file=file,
            column=column,
            row=int(row_ids[i]),
            value=float(bad),
        )


def _label_kind(labels: np.ndarray, *, column: str, uri: str | None, file: str | None) -> str:
    if labels.dtype.kind in "iu":
        return "int"
    if labels.dtype.kind in "US" or (labels.dtype.kind == "O" and all(isinstance(v, str) for v in labels)):
        return "str"
    raise SchemaError(
        f"label column has unsupported type {labels.dtype} (want integers or strings)",
        uri=uri,
        file=file,
        column=column,
    )
