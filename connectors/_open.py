"""``open_source``: URL + format -> a :class:`~connectors.sources.base.Source`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fsspec.spec import AbstractFileSystem

from connectors._fs import Location, resolve
from connectors.errors import InvalidArgumentError, SchemaError
from connectors.sources._limits import DEFAULT_MEMORY_LIMIT
from connectors.sources.base import Source, SourceOptions
from connectors.sources.huggingface import HuggingFaceSource, looks_like_repository
from connectors.sources.idx import IdxSource
from connectors.sources.imagefolder import IMAGE_EXTENSIONS, ImageFolderSource
from connectors.sources.npz import NpzSource
from connectors.sources.parquet import ParquetSource
from connectors.sources.webdataset import WebDatasetSource, is_shard_pattern

# One registry: a format name -> its reader. An unknown name lists the valid ones.
FORMATS: dict[str, type[Source]] = {
    "parquet": ParquetSource,
    "imagefolder": ImageFolderSource,
    "idx": IdxSource,
    "npz": NpzSource,
    "huggingface": HuggingFaceSource,
    "webdataset": WebDatasetSource,
}


def open_source(
    uri: str,
    *,
    format: str = "auto",
    image_column: str = "image",
    label_column: str = "label",
    group_column: str | None = None,
    split_column: str | None = None,
    class_names: Sequence[str] | None = None,
    image_shape: Sequence[int] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    filesystem: AbstractFileSystem | None = None,
    memory_limit: int | None = None,
) -> Source:
    """Open a dataset by URL. Nothing is read beyond a listing until ``schema`` or a batch is asked for.

    Args:
        uri: any fsspec URL (``/path``, ``file://``, ``s3://bucket/prefix``, ``memory://``, ...).
        format: ``"auto"`` (by extension / directory contents) or one of :data:`FORMATS`: ``"parquet"``,
            ``"huggingface"`` (a dataset repository: splits from file names, ClassLabel names),
            ``"webdataset"`` (``.tar`` shards; a brace pattern such as ``shard-{000..099}.tar``),
            ``"imagefolder"``, ``"idx"``, ``"npz"``. A folder holding ``data/`` or
            ``{split}-XXXXX-of-XXXXX.parquet`` files is read as a Hugging Face repository.
        image_column, label_column, group_column, split_column: column (Parquet) or array (npz) names.
        class_names: the class list (index = class id); default: derived from the labels.
        image_shape: (C, H, W) or (H, W) for flat numeric image columns whose shape is not recorded.
        storage_options: fsspec options; for S3 also ``endpoint_url``, ``region``, ``profile``, ``anon``,
            ``key``, ``secret``, ``token``. Credentials never appear in errors or logs.
        filesystem: an fsspec filesystem instance to use instead of resolving ``uri``'s protocol.
        memory_limit: the largest single buffer (bytes) a reader may allocate: a batch, a label array,
            one decoded image (default :data:`DEFAULT_MEMORY_LIMIT`, 2 GiB). Sizes that files declare
            are checked against it, and against the bytes actually present, before anything is
            allocated (MemoryLimitError, DeclaredSizeError).
    """
    if memory_limit is not None and (
        isinstance(memory_limit, bool) or not isinstance(memory_limit, int) or memory_limit < 1
    ):
        raise InvalidArgumentError(
            f"must be a positive number of bytes, got {memory_limit!r}",
            field="memory_limit",
            allowed="an integer >= 1",
        )
    loc = resolve(uri, storage_options, filesystem)
    fmt = _detect(loc) if format == "auto" else format
    if fmt not in FORMATS:
        raise SchemaError(f"unknown format {format!r}; valid: auto, {', '.join(FORMATS)}", uri=loc.uri)
    options = SourceOptions(
        image_column=image_column,
        label_column=label_column,
        group_column=group_column,
        split_column=split_column,
        class_names=None if class_names is None else tuple(class_names),
        image_shape=None if image_shape is None else tuple(int(d) for d in image_shape),
        memory_limit=DEFAULT_MEMORY_LIMIT if memory_limit is None else memory_limit,
    )
    return FORMATS[fmt](loc, options)


def _detect(loc: Location) -> str:
    name = loc.path.rstrip("/").rsplit("/", 1)[-1].lower()
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".tar") or is_shard_pattern(loc.path):
        return "webdataset"
    if name.endswith((".parquet", ".parq", ".pq")) or any(c in loc.path for c in "*?["):
        return "parquet"
    if "-ubyte" in name or "idx3" in name:
        return "idx"
    with loc.translating():
        entries = loc.fs.ls(loc.path, detail=True)
    names = [e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries]
    dirs = [n for n, e in zip(names, entries, strict=True) if e["type"] == "directory"]
    names = [n.lower() for n in names]
    if looks_like_repository(names, dirs) and _holds_parquet(loc):
        return "huggingface"
    if any(n.endswith((".parquet", ".parq", ".pq")) for n in names):
        return "parquet"
    if any(n.endswith(".tar") for n in names):
        return "webdataset"
    if any("idx3-ubyte" in n for n in names):
        return "idx"
    if any(e["type"] == "directory" for e in entries):
        return "imagefolder"
    if any(n.endswith(IMAGE_EXTENSIONS) for n in names):
        raise SchemaError(
            "images lie directly in the folder; an image folder needs one sub-folder per class", uri=loc.uri
        )
    raise SchemaError(
        "cannot detect the dataset format; pass format=", uri=loc.uri, available=tuple(sorted(names))[:20]
    )


def _holds_parquet(loc: Location) -> bool:
    """Whether any Parquet file lies below the folder (a class folder named ``data`` holds images)."""
    with loc.translating():
        return any(p.lower().endswith((".parquet", ".parq", ".pq")) for p in loc.fs.find(loc.path))
