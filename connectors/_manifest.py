"""The export manifest: building it, its digest, and the checks a reader makes before trusting it.

Pure functions over dicts and bytes (no I/O): :mod:`connectors.export` reads and writes the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from connectors import _commit
from connectors.errors import ExportVerificationError

MANIFEST_NAME = "manifest.json"
EXPORT_FORMAT = "pad-condensed"
EXPORT_VERSION = 2
DIGEST_KEY = "manifest_sha256"


def build(body: Mapping[str, Any], files: Mapping[str, bytes], folder: str | None) -> dict[str, Any]:
    """The full manifest for ``files`` stored under ``folder`` (None: at the export's top level)."""
    manifest = {
        **body,
        "files": {
            name: {
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "path": name if folder is None else f"{folder}/{name}",
            }
            for name, data in files.items()
        },
    }
    manifest[DIGEST_KEY] = digest(manifest)
    return manifest


def serialise(manifest: Mapping[str, Any]) -> bytes:
    """The bytes of ``manifest.json`` (what reports count as the manifest's size)."""
    return json.dumps(manifest, indent=2, sort_keys=True).encode()


def digest(manifest: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of everything in the manifest except the digest itself."""
    body = {key: value for key, value in manifest.items() if key != DIGEST_KEY}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse(raw: bytes, uri: str) -> dict[str, Any]:
    """``manifest.json`` bytes -> the manifest; ExportVerificationError unless it is one we can read."""
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise ExportVerificationError("manifest.json is not valid JSON", uri=uri) from exc
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != EXPORT_FORMAT
        or not isinstance(manifest.get("files"), dict)
        or "schema" not in manifest
    ):
        raise ExportVerificationError("manifest.json is not a pad-condensed manifest", uri=uri)
    if manifest.get("version") not in (1, EXPORT_VERSION):
        raise ExportVerificationError(
            f"manifest.json has format version {manifest.get('version')!r}; this pad-sdk reads 1 and "
            f"{EXPORT_VERSION}",
            uri=uri,
        )
    return manifest


def verify_digest(manifest: Mapping[str, Any], uri: str) -> None:
    """Refuse a manifest whose content does not match its digest (or that has none: version 1)."""
    if manifest.get("version") == 1:
        raise ExportVerificationError(
            "export format version 1 has no manifest digest, so its class names, learned lr and metadata "
            "cannot be verified; read it with verify=False if you trust it, and save it again to upgrade it",
            uri=uri,
            file=MANIFEST_NAME,
        )
    stated = manifest.get(DIGEST_KEY)
    if not isinstance(stated, str):
        raise ExportVerificationError(f"manifest.json has no {DIGEST_KEY}", uri=uri, file=MANIFEST_NAME)
    try:
        actual = digest(manifest)
    except ValueError as exc:  # NaN / Infinity: never written by us
        raise ExportVerificationError("manifest.json holds non-finite numbers", uri=uri, file=MANIFEST_NAME) from exc
    if actual != stated:
        raise ExportVerificationError(
            f"manifest.json was changed after it was written (its content does not match {DIGEST_KEY}: "
            "class names, learned lr, schema, metadata or file list were edited)",
            uri=uri,
            file=MANIFEST_NAME,
        )


def file_path(manifest: Mapping[str, Any], name: str, entry: Any, uri: str) -> str:
    """Where (relative to the export) the file ``name`` is; refuses anything outside the export.

    Version 1 files lie at the top level; version 2 names a ``path``: the top level, or one staging
    folder of the writer's form (``.staging-<time>-<random>/``).
    """
    path = entry.get("path", name) if isinstance(entry, dict) and manifest.get("version") != 1 else name
    folder, _, base = str(path).rpartition("/")
    safe_name = "/" not in name and not name.startswith(".") and name != MANIFEST_NAME
    if not (isinstance(entry, dict) and safe_name and base == name and (folder == "" or _is_staging(folder))):
        raise ExportVerificationError("manifest names an unsafe file", uri=uri, file=str(path)[:200])
    return str(path)


def staging_in_use(raw: bytes | None) -> set[str] | None:
    """The staging folders a manifest reads from; None when it is unreadable.

    Only names of the staging form count: a folder named by an edited manifest is never removed.
    """
    try:
        files = json.loads(raw or b"{}").get("files") or {}
        folders = {str(entry.get("path", "")).rpartition("/")[0] for entry in files.values()}
    except (ValueError, AttributeError):
        return None
    return {f for f in folders if _is_staging(f)}


def _is_staging(folder: str) -> bool:
    return "/" not in folder and _commit.staging_age_s(folder) is not None
