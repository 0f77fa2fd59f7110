"""Export and verified import of condensed datasets.

An export is a folder (any fsspec URL) holding::

    data.parquet   images (exact float values), labels, optional soft labels
    preview.png    a grid of up to 10 images per class (rows = classes)
    manifest.json  schema, class names, learned lr, source, policy, metadata, the size + sha256 + path of
                   every file, and ``manifest_sha256``: a sha256 over all of the above (canonical JSON)

A reader accepts an export only if its manifest exists, its ``manifest_sha256`` matches the manifest's
content (so an edited class name or learned lr is refused, not returned) and every file matches its size
and sha256. The digest detects edits and corruption; it is not a signature (whoever can write the folder
can recompute it). Exports of format version 1 (pad-sdk before the digest) are refused with a message
saying so: ``verify=False`` reads them unchecked, and saving the result again upgrades them.

Commit protocol (:mod:`connectors._commit` has the storage primitives). Inputs are validated before
anything is written. A save then

1. removes staging entries older than an hour left by killed writers (younger ones are logged);
2. writes the files under its own staging folder ``.staging-<time>-<random>/``;
3. takes the writer lock ``.pad-export.lock`` (create-only; a concurrent save gets ExportConflictError);
4. commits with one manifest write that points at the staging folder: create-only without ``overwrite``
   (if another save committed first: ExportConflictError), an atomic replace with it. Until this write the
   previous export is untouched and readable; after it the new one is complete;
5. writes the files under their final names (each atomically), replaces the manifest by one pointing at
   them, removes its staging folder (and that of an export it replaced, if a killed save left one in
   use) and releases the lock.

A save killed before step 4 leaves the previous export (or none) and a staging folder; killed during step
5, a committed export that points at its staging folder. Either way every reader sees a complete export.
A failed save removes what it wrote. Readers that meet a file being replaced re-read the manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import structlog
from fsspec.spec import AbstractFileSystem

from connectors import _commit, _manifest
from connectors._export_data import check_inputs, jsonable, parquet_bytes, preview_png
from connectors._fs import Location, resolve
from connectors._manifest import EXPORT_FORMAT, EXPORT_VERSION, MANIFEST_NAME
from connectors._redact import redact_uri, scrub
from connectors.errors import (
    ConnectorError,
    ExportConflictError,
    ExportExistsError,
    ExportVerificationError,
    SourceNotFoundError,
)

__all__ = ["MANIFEST_NAME", "CondensedExport", "read_condensed", "write_condensed"]

log = structlog.get_logger(__name__)

DATA_NAME = "data.parquet"
PREVIEW_NAME = "preview.png"
_READ_ATTEMPTS = 3


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
        overwrite: replace an existing export; it stays readable until the new one is committed.
    Raises:
        DataValidationError (nothing written), ExportExistsError (an export was there already),
        ExportConflictError (another save to ``uri`` is running or committed first), storage errors
        (what this save wrote is removed).
    """
    names = check_inputs(images, labels, class_names, soft_labels, learned_lr)
    files = {
        DATA_NAME: parquet_bytes(images, labels, soft_labels, names),
        PREVIEW_NAME: preview_png(images, labels),
    }
    body: dict[str, Any] = {
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
        "policy": jsonable(policy, "policy"),
        "metadata": jsonable(metadata, "metadata"),
    }
    loc = resolve(uri, storage_options, filesystem)
    with loc.translating(loc.join(MANIFEST_NAME)):
        existed = loc.fs.exists(loc.join(MANIFEST_NAME))
    if existed and not overwrite:
        raise ExportExistsError("an export already exists here (pass overwrite=True)", uri=loc.uri)
    _clean_staging(loc)
    token = _commit.new_token()
    staging = f"{_commit.STAGING_PREFIX}{token}"
    committed = False
    try:
        _write_files(loc, staging, files)
        with _commit.write_lock(loc, token):
            replaced = _manifest.staging_in_use(_manifest_bytes(loc)) or set()
            staged = _manifest.build(body, files, staging)
            _commit_manifest(loc, staged, overwrite)
            committed = True
            manifest = _promote(loc, body, files, staged)
            # A replaced export that a killed save left in its staging folder: nothing reads it now.
            for folder in sorted(replaced - {staging}):
                with contextlib.suppress(Exception):
                    loc.fs.rm(loc.join(folder), recursive=True)
    except BaseException:
        if not committed:
            _remove_quietly(loc, [loc.join(staging, name) for name in files], folder=loc.join(staging))
            log.warning("export_failed", uri=loc.uri)
        raise
    log.info(
        "export_written",
        uri=loc.uri,
        images=body["schema"]["num_images"],
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
    """Read an export, refusing it (ExportVerificationError) unless the manifest and every file verify.

    ``verify=False`` skips the sha256 checks (of the manifest and of the files): only for exports known
    to be intact. A reader that meets an export being replaced by a concurrent save reads it again.
    """
    loc = resolve(uri, storage_options, filesystem)
    for attempt in range(_READ_ATTEMPTS):
        raw = _manifest_bytes(loc)
        if raw is None:
            raise ExportVerificationError("no manifest.json: not a committed export", uri=loc.uri)
        manifest = _manifest.parse(raw, loc.uri)
        try:
            return _load(loc, manifest, verify)
        except ExportVerificationError:
            # A save that replaced the export while we read it changes the manifest: read again.
            if attempt == _READ_ATTEMPTS - 1 or _manifest_bytes(loc) == raw:
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


def _load(loc: Location, manifest: dict[str, Any], verify: bool) -> CondensedExport:
    if verify:
        _manifest.verify_digest(manifest, loc.uri)
    contents: dict[str, bytes] = {}
    for name, entry in manifest["files"].items():
        path = _manifest.file_path(manifest, name, entry, loc.uri)
        try:
            with loc.translating(loc.join(path)):
                data = loc.fs.cat_file(loc.join(path))
        except SourceNotFoundError as exc:
            raise ExportVerificationError(
                "file listed in the manifest is missing", uri=loc.uri, file=path
            ) from exc
        if verify and (
            len(data) != entry.get("size") or hashlib.sha256(data).hexdigest() != entry.get("sha256")
        ):
            raise ExportVerificationError(
                "file does not match the manifest (size or sha256)", uri=loc.uri, file=path, value=len(data)
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


def export_exists(uri: str, *, storage_options: Mapping[str, Any] | None = None,
                  filesystem: AbstractFileSystem | None = None) -> bool:
    """Whether a committed export (its manifest) is at ``uri``; storage errors (credentials, an endpoint that
    does not answer) are the typed connector errors, not the backend's."""
    loc = resolve(uri, storage_options, filesystem)
    with loc.translating(loc.join(MANIFEST_NAME)):
        return bool(loc.fs.exists(loc.join(MANIFEST_NAME)))


def _manifest_bytes(loc: Location) -> bytes | None:
    try:
        with loc.translating(loc.join(MANIFEST_NAME)):
            return bytes(loc.fs.cat_file(loc.join(MANIFEST_NAME)))
    except SourceNotFoundError:
        return None


def _write_files(loc: Location, folder: str, files: Mapping[str, bytes]) -> None:
    with loc.translating(loc.join(folder)):
        loc.fs.makedirs(loc.join(folder), exist_ok=True)
    for name, data in files.items():
        with loc.translating(loc.join(folder, name)):
            loc.fs.pipe_file(loc.join(folder, name), data)


def _commit_manifest(loc: Location, manifest: Mapping[str, Any], overwrite: bool) -> None:
    """The commit: one manifest write, create-only unless ``overwrite`` (then an atomic replace)."""
    path = loc.join(MANIFEST_NAME)
    with loc.translating(path):
        if overwrite:
            _commit.replace(loc, path, _manifest.serialise(manifest))
            return
        try:
            _commit.create_only(loc, path, _manifest.serialise(manifest))
        except FileExistsError:  # it was not there when this save started
            raise ExportConflictError(
                "another save to this URL committed first; its export is complete (pass overwrite=True to "
                "replace it)",
                uri=loc.uri,
            ) from None


def _promote(
    loc: Location, body: Mapping[str, Any], files: Mapping[str, bytes], staged: dict[str, Any]
) -> dict[str, Any]:
    """Move the committed files to their final names; returns the manifest in force afterwards.

    Runs under the writer lock, after the commit: the export is complete whatever happens here. A
    failure leaves the staged manifest (pointing at the staging folder) in force.
    """
    folder = staged["files"][DATA_NAME]["path"].rpartition("/")[0]
    final = _manifest.build(body, files, None)
    try:
        for name, data in files.items():
            with loc.translating(loc.join(name)):
                _commit.replace(loc, loc.join(name), data)
        with loc.translating(loc.join(MANIFEST_NAME)):
            _commit.replace(loc, loc.join(MANIFEST_NAME), _manifest.serialise(final))
    except Exception:
        log.warning("export_not_moved_to_final_names", uri=loc.uri, staging=folder, exc_info=True)
        return staged
    _remove_quietly(loc, [loc.join(folder, name) for name in files], folder=loc.join(folder))
    return final


def _clean_staging(loc: Location) -> None:
    """Remove staging entries of killed saves older than STAGING_STALE_S; log the younger ones.

    Best effort: a listing or removal that fails is logged and the save goes on.
    """
    try:
        in_use = _manifest.staging_in_use(_manifest_bytes(loc))
        names = _commit.staging_entries(loc)
    except ConnectorError:
        log.warning("export_staging_not_listed", uri=loc.uri, exc_info=True)
        return
    if in_use is None:  # an unreadable manifest: nothing can be known to be unused
        return
    young = []
    for name in names:
        age = _commit.staging_age_s(name)
        if age is None or name in in_use:  # not ours, or the committed export reads from it
            continue
        if age < _commit.STAGING_STALE_S:
            young.append(name)
            continue
        try:
            loc.fs.rm(loc.join(name), recursive=True)
            log.info("export_staging_removed", uri=loc.uri, staging=name, age_s=round(age))
        except Exception:  # e.g. removed by another save meanwhile
            log.warning("export_staging_not_removed", uri=loc.uri, staging=name)
    if young:
        log.warning("export_staging_present", uri=loc.uri, staging=young)


def _remove_quietly(loc: Location, paths: list[str], folder: str | None = None) -> None:
    for path in paths:
        try:
            if loc.fs.exists(path):
                loc.fs.rm_file(path)
        except Exception:  # cleanup is best effort; nothing references these files
            log.warning("export_cleanup_failed", uri=loc.uri, file=path.rsplit("/", 1)[-1])
    if folder is not None:
        with contextlib.suppress(Exception):  # object stores have no folders to remove
            if loc.fs.isdir(folder) and not loc.fs.ls(folder, detail=False):
                loc.fs.rmdir(folder)
