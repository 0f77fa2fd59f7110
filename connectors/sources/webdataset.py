"""WebDataset shards: ``.tar`` files whose members ``{key}.{ext}`` group into samples.

A sample is the run of consecutive members that share a key (the member name up to the first dot of its
base name): one image (``.png``, ``.jpg``, ``.jpeg``, ``.webp``, ...) and its label, either ``{key}.cls``
(an integer class id as text) or ``{key}.json`` (an object whose ``label`` field, or the configured label
column, holds a class id or a class name). The shards are one ``.tar`` file, a folder of them, a glob, or
a brace pattern such as ``s3://bucket/shard-{000..099}.tar``.

Shards are streamed member by member (``tarfile`` in stream mode over an fsspec file), so memory holds
one read buffer, the images of one batch, and, from the scan, each sample's key and label.
"""

from __future__ import annotations

import itertools
import json
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from connectors._fs import fingerprint
from connectors.errors import (
    ConnectorError,
    CorruptDataError,
    DataValidationError,
    InvalidArgumentError,
    SchemaError,
    SourceNotFoundError,
)
from connectors.schema import ScanStats
from connectors.sources._decode import decode_image
from connectors.sources._limits import check_memory
from connectors.sources.base import RawChunk, ScanResult, Source

IMAGE_EXTS = frozenset({"png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff", "ppm", "pgm"})
LABEL_EXTS = ("cls", "json")
MAX_LABEL_BYTES = 1 << 20  # a .cls / .json member is a few bytes; more is not a label
MAX_SHARDS = 100_000  # a brace pattern that expands beyond this is a typo
READ_BLOCK = 4 << 20  # the fsspec read buffer per open shard
_BRACE = re.compile(r"\{([^{}]*)\}")


def is_shard_pattern(path: str) -> bool:
    """Whether ``path`` holds a brace pattern (``{000..099}`` or ``{a,b}``)."""
    return any(".." in m or "," in m for m in _BRACE.findall(path))


def expand_braces(pattern: str) -> list[str]:
    """``shard-{000..002}.tar`` -> shard-000.tar, shard-001.tar, shard-002.tar (zero padding kept).

    ``{a,b}`` lists alternatives; several braces give every combination, in order.
    """
    pieces: list[list[str]] = []
    last = 0
    for match in _BRACE.finditer(pattern):
        pieces.append([pattern[last : match.start()]])
        pieces.append(_alternatives(match.group(1), pattern))
        last = match.end()
    pieces.append([pattern[last:]])
    total = 1
    for options in pieces:
        total *= len(options)
    if total > MAX_SHARDS:
        raise InvalidArgumentError(f"the pattern expands to {total} shards", field="uri", allowed=f"<= {MAX_SHARDS}")
    return ["".join(parts) for parts in itertools.product(*pieces)]


def _alternatives(body: str, pattern: str) -> list[str]:
    range_match = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if range_match:
        lo, hi = range_match.groups()
        width = len(lo) if lo.startswith("0") else 0
        if int(hi) < int(lo) or int(hi) - int(lo) >= MAX_SHARDS:
            raise InvalidArgumentError(f"bad shard range {{{body}}}", field="uri", allowed="{000..099}")
        return [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    if "," in body:
        return body.split(",")
    if ".." in body:
        raise InvalidArgumentError(f"bad shard range {{{body}}} in {pattern}", field="uri", allowed="{000..099}")
    return ["{" + body + "}"]


@dataclass
class _Shard:
    path: str
    start: int  # global row id of its first sample
    keys: list[str] = field(default_factory=list)  # the image member of each sample
    labels: list[Any] = field(default_factory=list)


@dataclass
class _Sample:
    key: str
    image: tarfile.TarInfo | None = None
    label_member: str | None = None
    label: Any = None
    data: bytes | None = None


class WebDatasetSource(Source):
    """WebDataset ``.tar`` shards (see module docstring)."""

    format = "webdataset"
    _paths: list[str] | None = None
    _index: list[_Shard] | None = None
    _first_image: np.ndarray | None = None

    # -- shards ----------------------------------------------------------------------------------------
    def _shard_paths(self) -> list[str]:
        if self._paths is not None:
            return self._paths
        loc = self.location
        with loc.translating():
            if is_shard_pattern(loc.path):
                paths = expand_braces(loc.path)
                for path in paths:
                    with loc.translating(path):
                        if not loc.fs.isfile(path):
                            raise SourceNotFoundError(
                                "shard of the pattern not found", uri=loc.uri, file=loc.display(path)
                            )
            elif any(c in loc.path for c in "*?["):
                paths = sorted(loc.fs.glob(loc.path))
            elif loc.fs.isdir(loc.path):
                paths = sorted(p for p in loc.fs.find(loc.path) if p.endswith(".tar") and not _hidden(p))
            else:
                loc.fs.info(loc.path)  # FileNotFoundError -> SourceNotFoundError
                paths = [loc.path]
        if not paths:
            raise SourceNotFoundError("no .tar shards found", uri=loc.uri)
        if self.options.split_column or self.options.group_column:
            raise SchemaError("WebDataset shards have no split or group column", uri=loc.uri)
        self._paths = paths
        return paths

    def _root(self) -> str:
        path = self.location.path
        cut = min((i for i in (path.find("{"), path.find("*"), path.find("?"), path.find("[")) if i >= 0), default=-1)
        return path[:cut].rsplit("/", 1)[0] if cut >= 0 else path

    def _samples(self, path: str, read_images: bool | range) -> Iterator[_Sample]:
        """The samples of one shard, in order. ``read_images``: True (all), a range of sample positions
        within the shard, or False (labels only; the image bytes are skipped)."""
        loc = self.location
        shown = loc.display(path)
        with loc.translating(path), loc.fs.open(path, "rb", block_size=READ_BLOCK) as raw:
            size = loc.fs.size(path)
            try:
                with tarfile.open(fileobj=raw, mode="r|*") as tar:
                    yield from self._group(tar, shown, read_images)
                    _check_complete(tar, size, loc.uri, shown)
            except tarfile.TarError as exc:
                raise CorruptDataError(f"not a readable tar shard ({type(exc).__name__}: {exc})",
                                       uri=loc.uri, file=shown) from exc

    def _group(self, tar: tarfile.TarFile, shown: str, read_images: bool | range) -> Iterator[_Sample]:
        current: _Sample | None = None
        position = 0
        while (info := tar.next()) is not None:
            # TarFile keeps every member header it has read: not in a stream of any length
            tar.members.clear()  # type: ignore[attr-defined]
            if not info.isfile():
                continue
            base = info.name.rsplit("/", 1)[-1]
            if base.startswith(".") or "." not in base:
                continue
            stem, ext = base.split(".", 1)
            key = info.name[: len(info.name) - len(base)] + stem
            if current is None or key != current.key:
                if current is not None:
                    yield self._complete(current, shown)
                    position += 1
                current = _Sample(key)
            ext = ext.lower()
            if ext in IMAGE_EXTS and current.image is None:
                current.image = info
                wanted = read_images is True or (isinstance(read_images, range) and position in read_images)
                if wanted:
                    current.data = self._read(tar, info, shown)
            elif ext in LABEL_EXTS and current.label_member is None:
                current.label_member = info.name
                current.label = self._label(ext, self._read(tar, info, shown, MAX_LABEL_BYTES), shown, info.name)
        if current is not None:
            yield self._complete(current, shown)

    def _read(self, tar: tarfile.TarFile, info: tarfile.TarInfo, shown: str, limit: int | None = None) -> bytes:
        limit = self.options.memory_limit if limit is None else limit
        check_memory(info.size, limit, f"tar member of {info.size} bytes", uri=self.location.uri, file=shown,
                     column=info.name)
        handle: IO[bytes] | None = tar.extractfile(info)
        assert handle is not None  # regular files only
        return handle.read()

    def _label(self, ext: str, data: bytes, shown: str, member: str) -> Any:
        uri, column = self.location.uri, self.options.label_column
        text = data.decode("utf-8", errors="replace").strip()
        if ext == "cls":
            if not re.fullmatch(r"\d+", text):
                raise DataValidationError(".cls must hold a non-negative integer class id", uri=uri, file=shown,
                                          member=member, value=text)
            return int(text)
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise DataValidationError("label .json is not valid JSON", uri=uri, file=shown, member=member,
                                      value=text) from exc
        value = next((obj[k] for k in (column, "label", "cls") if isinstance(obj, dict) and k in obj), None)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise DataValidationError(
                f"label .json needs a {column!r} field holding a class id or a class name",
                uri=uri, file=shown, member=member, column=column, value=text,
            )
        return value

    def _complete(self, sample: _Sample, shown: str) -> _Sample:
        uri = self.location.uri
        if sample.image is None:
            raise DataValidationError("sample has no image member (.png, .jpg, .webp, ...)", uri=uri, file=shown,
                                      member=sample.label_member or sample.key)
        if sample.label_member is None:
            raise DataValidationError("sample has no label (.cls or .json member)", uri=uri, file=shown,
                                      member=sample.image.name)
        return sample

    # -- Source ----------------------------------------------------------------------------------------
    def _shards(self) -> list[_Shard]:
        if self._index is None:
            index, row = [], 0
            for path in self._shard_paths():
                shard = _Shard(path, row)
                first = self._first_image is None
                for sample in self._samples(path, range(0, 1) if first else False):
                    assert sample.image is not None
                    if sample.data is not None:
                        self._first_image = self._decode(sample.data, row, path, sample.image.name, None)
                    shard.keys.append(sample.image.name)
                    shard.labels.append(sample.label)
                    row += 1
                index.append(shard)
            self._index = index
        return self._index

    def _scan(self) -> ScanResult:
        loc = self.location
        stats = ScanStats()
        for shard in self._shards():
            if shard.labels:
                stats.add(_label_array(shard.labels), uri=loc.uri, file=loc.display(shard.path),
                          first_row=shard.start, column="<.cls/.json>")
        if self._first_image is None:
            stats.class_names(None, uri=loc.uri, column="<.cls/.json>")  # EmptyDatasetError
            raise AssertionError("unreachable")  # an image was decoded if any sample exists
        with loc.translating():
            digest, stored = fingerprint(loc.fs, self._shard_paths(), self._root())
        return ScanResult(stats, tuple(self._first_image.shape), self._first_image.dtype.name, stored, digest)

    def _iter_raw(self, batch_size: int, start: int, stop: int, split: str | None) -> Iterator[RawChunk]:
        for shard in self._shards():
            end = shard.start + len(shard.labels)
            if end <= start or shard.start >= stop:
                continue  # not opened at all
            wanted = range(max(start, shard.start) - shard.start, min(stop, end) - shard.start)
            yield from self._shard_chunks(shard, wanted, batch_size)

    def _shard_chunks(self, shard: _Shard, wanted: range, batch_size: int) -> Iterator[RawChunk]:
        loc = self.location
        shown = loc.display(shard.path)
        images: list[np.ndarray] = []
        rows: list[int] = []
        for position, sample in enumerate(self._samples(shard.path, wanted)):
            assert sample.image is not None
            if position >= len(shard.keys) or sample.image.name != shard.keys[position]:
                raise CorruptDataError("shard changed since it was scanned (reopen the source)", uri=loc.uri,
                                       file=shown, member=sample.image.name)
            if position not in wanted:
                continue
            assert sample.data is not None
            row = shard.start + position
            images.append(self._decode(sample.data, row, shard.path, sample.image.name, self._expected_shape()))
            rows.append(row)
            if len(rows) == batch_size or position == wanted[-1]:
                yield self._chunk(shard, images, rows)
                images, rows = [], []
            if position >= wanted[-1]:
                return  # the rest of the shard is not read

    def _chunk(self, shard: _Shard, images: list[np.ndarray], rows: list[int]) -> RawChunk:
        row_ids = np.asarray(rows, dtype=np.int64)
        labels = _label_array([shard.labels[r - shard.start] for r in rows])
        return RawChunk(np.stack(images), labels, None, None, row_ids, self.location.display(shard.path))

    def _expected_shape(self) -> tuple[int, ...] | None:
        return None if self._schema is None else self._schema.image_shape

    def _decode(self, data: bytes, row: int, path: str, member: str, expected: tuple[int, ...] | None) -> np.ndarray:
        loc, shown = self.location, self.location.display(path)
        try:
            img = decode_image(data, row=row, uri=loc.uri, file=shown, column="<image member>",
                               max_bytes=self.options.memory_limit)
        except ConnectorError as err:
            err.member = member
            err._name_file(shown)
            raise
        if expected is not None and img.shape != expected:
            raise DataValidationError(
                f"mixed image sizes or channel counts: expected {expected}, got {img.shape}",
                uri=loc.uri, file=shown, member=member, row=row,
            )
        return img


def _check_complete(tar: tarfile.TarFile, size: int | None, uri: str, shown: str) -> None:
    """A streamed tar that ends early (inside a member or a header) reads like a shorter archive: compare
    where its last member ends with the file's size (uncompressed shards, whose size is the tar's)."""
    if size is None or getattr(tar.fileobj, "comptype", "tar") != "tar":
        return
    left = size - tar.offset
    if left < 0 or 0 < left < tarfile.BLOCKSIZE:
        raise CorruptDataError(
            f"truncated tar shard: its members need {max(tar.offset, size + 1)} bytes or more, {size} present",
            uri=uri,
            file=shown,
        )


def _label_array(labels: list[Any]) -> np.ndarray:
    if all(isinstance(v, int) for v in labels):
        return np.asarray(labels, dtype=np.int64)
    return np.asarray(labels, dtype=object)


def _hidden(path: str) -> bool:
    return path.rstrip("/").rsplit("/", 1)[-1].startswith((".", "_"))
