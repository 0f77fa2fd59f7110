"""Condensed sets -> bytes: input validation, the Parquet table and the preview grid of an export."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from connectors.errors import DataValidationError, EmptyDatasetError
from connectors.schema import check_finite


def check_inputs(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    soft_labels: np.ndarray | None,
    learned_lr: float | None,
) -> tuple[str, ...]:
    """Validate everything before any byte is written; returns the class names as a tuple."""
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.dtype.kind != "f":
        raise DataValidationError(
            "images must be a float array (N, C, H, W)",
            column="images",
            value=getattr(images, "shape", type(images).__name__),
        )
    n = images.shape[0]
    if n == 0:
        raise EmptyDatasetError("no images to export", column="images")
    names = tuple(str(c) for c in class_names)
    if not names or len(set(names)) != len(names):
        raise DataValidationError("class_names must be non-empty and unique", column="class_names")
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise DataValidationError(f"labels must be ({n},) integers", column="labels", value=labels.shape)
    bad = np.flatnonzero((labels < 0) | (labels >= len(names)))
    if bad.size:
        raise DataValidationError(
            f"label outside the class list 0..{len(names) - 1}",
            column="labels",
            row=int(bad[0]),
            value=int(labels[bad[0]]),
        )
    check_finite(images, np.arange(n), uri=None, file=None, column="images")
    if soft_labels is not None:
        if soft_labels.shape != (n, len(names)) or soft_labels.dtype.kind != "f":
            raise DataValidationError(
                f"soft_labels must be ({n}, {len(names)}) floats",
                column="soft_labels",
                value=soft_labels.shape,
            )
        check_finite(soft_labels, np.arange(n), uri=None, file=None, column="soft_labels")
    if learned_lr is not None and not (math.isfinite(learned_lr) and learned_lr > 0):
        raise DataValidationError(
            "learned_lr must be a finite positive number", column="learned_lr", value=learned_lr
        )
    return names


def jsonable(value: Mapping[str, Any] | None, field: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"{field} is not JSON-serialisable ({exc})", column=field) from exc


def parquet_bytes(
    images: np.ndarray, labels: np.ndarray, soft: np.ndarray | None, names: tuple[str, ...]
) -> bytes:
    n = images.shape[0]
    flat = pa.array(np.ascontiguousarray(images).reshape(-1))
    cols: dict[str, pa.Array] = {
        "image": pa.FixedSizeListArray.from_arrays(flat, math.prod(images.shape[1:])),
        "label": pa.array(np.asarray(labels, dtype=np.int64)),
    }
    if soft is not None:
        cols["soft_label"] = pa.FixedSizeListArray.from_arrays(pa.array(soft.reshape(-1)), soft.shape[1])
    table = pa.table(cols).replace_schema_metadata(
        {
            "pad:image_shape": json.dumps(list(images.shape[1:])),
            "pad:class_names": json.dumps(list(names)),
            "huggingface": json.dumps(hf_features_metadata(images, soft, names)),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", row_group_size=max(1, min(n, 4096)))
    return buf.getvalue()


def hf_features_metadata(images: np.ndarray, soft: np.ndarray | None, names: tuple[str, ...]) -> dict[str, Any]:
    """The ``huggingface`` schema metadata that the ``datasets`` library reads as the table's features.

    ``label`` is a ``ClassLabel`` with the class names; ``image`` and ``soft_label`` are fixed-length float
    sequences (the exact values, C * H * W per image in C order; ``pad:image_shape`` records (C, H, W)).
    ``Sequence`` is the spelling every ``datasets`` release reads (2.x to 5.x).
    """

    def floats(length: int, dtype: np.dtype) -> dict[str, Any]:
        return {"feature": {"dtype": dtype.name, "_type": "Value"}, "length": length, "_type": "Sequence"}

    features: dict[str, Any] = {
        "image": floats(math.prod(images.shape[1:]), images.dtype),
        "label": {"names": list(names), "_type": "ClassLabel"},
    }
    if soft is not None:
        features["soft_label"] = floats(soft.shape[1], soft.dtype)
    return {"info": {"features": features}}


def preview_png(images: np.ndarray, labels: np.ndarray, per_class: int = 10, max_classes: int = 20) -> bytes:
    """A grid (rows = classes, up to ``per_class`` images each), each image min-max scaled to 0..255."""
    c, h, w = images.shape[1:]
    classes = np.unique(labels)[:max_classes]
    pad = 2
    grid = np.zeros((len(classes) * (h + pad) + pad, per_class * (w + pad) + pad, 3), dtype=np.uint8)
    for r, cls in enumerate(classes):
        for k, i in enumerate(np.flatnonzero(labels == cls)[:per_class]):
            img = images[i, :3] if c >= 3 else images[i, :1].repeat(3, axis=0)
            lo, hi = float(img.min()), float(img.max())
            scaled = ((img - lo) / (hi - lo) * 255.0) if hi > lo else np.zeros_like(img)
            y, x = pad + r * (h + pad), pad + k * (w + pad)
            grid[y : y + h, x : x + w] = np.moveaxis(scaled, 0, -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grid, "RGB").save(buf, format="PNG")
    return buf.getvalue()
