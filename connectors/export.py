"""Export and verified import of condensed datasets.

An export is a folder (any fsspec URL) holding::

    data.parquet   images (exact float values), labels, optional soft labels
    preview.png    a grid of up to 10 images per class (rows = classes)
    manifest.json  schema, class names, learned lr, source, policy, and the size + sha256 of every file

Commit protocol: inputs are validated before anything is written; files are written under temporary
names and moved into place; ``manifest.json`` is written last. A reader accepts only an export whose
manifest exists and whose files match it, so a failed or interrupted write is never accepted; on failure
the writer also removes what it wrote.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import secrets as _secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import structlog
from fsspec.spec import AbstractFileSystem
from PIL import Image

from connectors._fs import Location, redact_uri, resolve, scrub
from connectors.errors import (
    DataValidationError,
    EmptyDatasetError,
    ExportExistsError,
    ExportVerificationError,
    SourceNotFoundError,
)
from connectors.schema import check_finite

__all__ = ["MANIFEST_NAME", "CondensedExport", "read_condensed", "write_condensed"]

log = structlog.get_logger(__name__)

MANIFEST_NAME = "manifest.json"
DATA_NAME = "data.parquet"
PREVIEW_NAME = "preview.png"
EXPORT_FORMAT = "pad-condensed"
EXPORT_VERSION = 1


@dataclass(frozen=True)
class CondensedExport:
    """A verified condensed set: images (N, C, H, W) float, labels (N,) int64, soft_labels (N, K) or None."""

    images: np.ndarray
    labels: np.ndarray
    soft_labels: np.ndarray | None
    learned_lr: float | None
    class_names: tuple[str, ...]
    manifest: dict[str, Any]


def write_condensed(
    uri: str,
    *,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    soft_labels: np.ndarray | None = None,
    learned_lr: float | None = None,
    source_uri: str | None = None,
    source_fingerprint: str | None = None,
    policy: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    filesystem: AbstractFileSystem | None = None,
) -> dict[str, Any]:
    """Write a condensed set to ``uri`` and return its manifest (also written as ``manifest.json``).

    Args:
        images: (N, C, H, W) float32 (any float dtype is stored as given, values exact).
        labels: (N,) integer class ids in [0, K). class_names: K names (index = class id).
        soft_labels: optional (N, K) float label logits / probabilities.
        learned_lr: optional learned student step size. source_uri / source_fingerprint: provenance
            (the URI is stored redacted). policy / metadata: JSON-serialisable dicts.
        overwrite: replace an existing export (its manifest is removed first, so a failure leaves none).
    Raises:
        DataValidationError (nothing written), ExportExistsError, storage errors (partial files removed).
    """
    names = _check_inputs(images, labels, class_names, soft_labels, learned_lr)
    files = {
        DATA_NAME: _parquet_bytes(images, labels, soft_labels, names),
        PREVIEW_NAME: _preview_png(images, labels),
    }
    manifest: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "schema": {
            "num_images": int(images.shape[0]),
            "image_shape": list(images.shape[1:]),
            "dtype": images.dtype.name,
            "num_classes": len(names),
            "soft_labels": None
            if soft_labels is None
            else {"shape": list(soft_labels.shape), "dtype": soft_labels.dtype.name},
        },
        "class_names": list(names),
        "learned_lr": None if learned_lr is None else float(learned_lr),
        "source": {
            "uri": None if source_uri is None else scrub(redact_uri(source_uri)),
            "fingerprint": source_fingerprint,
        },
        "policy": _jsonable(policy, "policy"),
        "metadata": _jsonable(metadata, "metadata"),
        "files": {
            name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in files.items()
        },
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    loc = resolve(uri, storage_options, filesystem)
    _prepare_target(loc, overwrite)
    token = _secrets.token_hex(6)
    written: list[str] = []
    try:
        for name, data in [*files.items(), (MANIFEST_NAME, manifest_bytes)]:  # manifest last: the commit
            tmp, final = loc.join(f".{name}.{token}.tmp"), loc.join(name)
            written.append(tmp)
            with loc.translating(final):
                loc.fs.pipe_file(tmp, data)
                written.append(final)
                loc.fs.mv(tmp, final)
            written.remove(tmp)
    except BaseException:
        _remove_quietly(loc, written[::-1])
        log.warning("export_failed", uri=loc.uri)
        raise
    log.info(
        "export_written",
        uri=loc.uri,
        images=manifest["schema"]["num_images"],
        bytes=sum(f["size"] for f in manifest["files"].values()),
    )
    return manifest


def read_condensed(
    uri: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    verify: bool = True,
    filesystem: AbstractFileSystem | None = None,
) -> CondensedExport:
    """Read an export, refusing it (ExportVerificationError) unless every file matches the manifest."""
    loc = resolve(uri, storage_options, filesystem)
    manifest = _read_manifest(loc)
    contents: dict[str, bytes] = {}
    for name, entry in manifest["files"].items():
        if "/" in name or name.startswith(".") or name == MANIFEST_NAME:
            raise ExportVerificationError("manifest names an unsafe file", uri=loc.uri, file=name)
        try:
            with loc.translating(loc.join(name)):
                data = loc.fs.cat_file(loc.join(name))
        except SourceNotFoundError as exc:
            raise ExportVerificationError(
                "file listed in the manifest is missing", uri=loc.uri, file=name
            ) from exc
        if verify and (
            len(data) != entry.get("size") or hashlib.sha256(data).hexdigest() != entry.get("sha256")
        ):
            raise ExportVerificationError(
                "file does not match the manifest (size or sha256)", uri=loc.uri, file=name, value=len(data)
            )
        contents[name] = data
    if DATA_NAME not in contents:
        raise ExportVerificationError(f"manifest lists no {DATA_NAME}", uri=loc.uri)
    with loc.translating(loc.join(DATA_NAME)):
        table = pq.read_table(pa.BufferReader(contents[DATA_NAME]))
    schema = manifest["schema"]
    n, shape = int(schema["num_images"]), tuple(schema["image_shape"])
    if table.num_rows != n:
        raise ExportVerificationError(f"{table.num_rows} rows but the manifest says {n}", uri=loc.uri)
    images = table.column("image").combine_chunks().flatten().to_numpy().reshape(n, *shape)
    soft = None
    if "soft_label" in table.column_names:
        soft = table.column("soft_label").combine_chunks().flatten().to_numpy().reshape(n, -1)
    return CondensedExport(
        images=images,
        labels=table.column("label").to_numpy().astype(np.int64),
        soft_labels=soft,
        learned_lr=manifest.get("learned_lr"),
        class_names=tuple(manifest["class_names"]),
        manifest=manifest,
    )


def _read_manifest(loc: Location) -> dict[str, Any]:
    try:
        with loc.translating(loc.join(MANIFEST_NAME)):
            raw = loc.fs.cat_file(loc.join(MANIFEST_NAME))
    except SourceNotFoundError as exc:
        raise ExportVerificationError("no manifest.json: not a committed export", uri=loc.uri) from exc
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise ExportVerificationError("manifest.json is not valid JSON", uri=loc.uri) from exc
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != EXPORT_FORMAT
        or not isinstance(manifest.get("files"), dict)
        or "schema" not in manifest
    ):
        raise ExportVerificationError("manifest.json is not a pad-condensed manifest", uri=loc.uri)
    return manifest


def _prepare_target(loc: Location, overwrite: bool) -> None:
    manifest = loc.join(MANIFEST_NAME)
    with loc.translating(loc.path):
        if loc.fs.exists(manifest):
            if not overwrite:
                raise ExportExistsError("an export already exists here (pass overwrite=True)", uri=loc.uri)
            # Un-commit first: from here on no reader accepts the old export, whatever happens next.
            loc.fs.rm_file(manifest)
        loc.fs.makedirs(loc.path, exist_ok=True)


def _remove_quietly(loc: Location, paths: list[str]) -> None:
    for path in paths:
        try:
            if loc.fs.exists(path):
                loc.fs.rm_file(path)
        except Exception:  # cleanup is best effort; the manifest was never written
            log.warning("export_cleanup_failed", uri=loc.uri, file=path.rsplit("/", 1)[-1])


def _check_inputs(
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


def _jsonable(value: Mapping[str, Any] | None, field: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"{field} is not JSON-serialisable ({exc})", column=field) from exc


def _parquet_bytes(
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
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", row_group_size=max(1, min(n, 4096)))
    return buf.getvalue()


def _preview_png(images: np.ndarray, labels: np.ndarray, per_class: int = 10, max_classes: int = 20) -> bytes:
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
