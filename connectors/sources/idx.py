"""MNIST-style IDX files (gzip or not), the layout Fashion-MNIST ships in.

The URI is either one images file (its labels file is found by name: ``images-idx3`` -> ``labels-idx1``)
or a directory of ``{split}-images-idx3-ubyte[.gz]`` / ``{split}-labels-idx1-ubyte[.gz]`` pairs; the
prefix names the split (``train``; ``t10k`` and ``test`` become ``test``). Images stream in chunks: the
header is parsed, then ``batch_size`` images are read at a time (through ``gzip`` when compressed, which
decompresses incrementally). Labels (one byte per row) are read whole.

Headers are not trusted: the size each one declares is checked against the bytes present (see
:meth:`IdxSource._checked_header`) and every read against the memory limit, before anything is allocated.
"""

from __future__ import annotations

import gzip
import re
import struct
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO, BinaryIO, cast

import numpy as np

from connectors._fs import fingerprint
from connectors.errors import CorruptDataError, SourceNotFoundError
from connectors.schema import ScanStats
from connectors.sources._limits import check_memory, check_present, deflate_capacity, nbytes
from connectors.sources.base import RawChunk, ScanResult, Source

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IMAGES = re.compile(r"^(?P<prefix>.*?)[-_.]?images[-_.]idx3[-_.]ubyte(\.gz)?$")
_SPLIT_NAMES = {"t10k": "test", "test": "test", "train": "train"}


@dataclass(frozen=True)
class _Pair:
    split: str | None
    images: str
    labels: str


@dataclass(frozen=True)
class _Header:
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int

    @property
    def row_bytes(self) -> int:
        return nbytes(self.shape[1:], self.dtype.itemsize)

    @property
    def data_bytes(self) -> int:
        return nbytes(self.shape, self.dtype.itemsize)


class IdxSource(Source):
    """IDX images + labels (see module docstring)."""

    format = "idx"
    _pairs_cache: list[tuple[_Pair, _Header, np.ndarray, int]] | None = None

    def _pairs(self) -> list[tuple[_Pair, _Header, np.ndarray, int]]:
        """(pair, image header, raw labels, first row) for each split, train first."""
        if self._pairs_cache is None:
            out = []
            row = 0
            for pair in self._find_pairs():
                header, labels = self._read_pair(pair)
                out.append((pair, header, labels, row))
                row += header.shape[0]
            self._pairs_cache = out
        return self._pairs_cache

    def _find_pairs(self) -> list[_Pair]:
        loc = self.location
        with loc.translating():
            if loc.fs.isdir(loc.path):
                files = sorted(loc.fs.ls(loc.path, detail=False))
                single = False
            else:
                loc.fs.info(loc.path)
                files, single = [loc.path], True
            pairs = []
            for path in files:
                name = path.rsplit("/", 1)[-1]
                match = _IMAGES.match(name)
                if not match:
                    continue
                labels = path[: len(path) - len(name)] + name.replace("images", "labels").replace(
                    "idx3", "idx1"
                )
                if not loc.fs.exists(labels):
                    raise SourceNotFoundError(
                        "IDX labels file not found next to the images file",
                        uri=loc.uri,
                        file=loc.display(labels),
                    )
                prefix = match.group("prefix")
                split = None if single else _SPLIT_NAMES.get(prefix, prefix or "default")
                pairs.append(_Pair(split, path, labels))
        if not pairs:
            raise SourceNotFoundError("no IDX images file (*-images-idx3-ubyte[.gz]) found", uri=loc.uri)
        return sorted(pairs, key=lambda p: (p.split != "train", p.split or ""))

    def _open(self, path: str, stack: ExitStack) -> IO[bytes]:
        raw = stack.enter_context(self.location.fs.open(path, "rb"))
        magic = raw.read(2)
        raw.seek(0)
        # Detect gzip by its magic bytes, not the file name.
        if magic == b"\x1f\x8b":
            return cast(BinaryIO, stack.enter_context(gzip.GzipFile(fileobj=raw)))
        return raw

    def _header(self, f: IO[bytes], path: str) -> _Header:
        head = f.read(4)
        if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in _DTYPES or head[3] == 0:
            raise CorruptDataError(
                "not an IDX file (bad magic number)",
                uri=self.location.uri,
                file=self.location.display(path),
                value=head,
            )
        dims_raw = f.read(4 * head[3])
        if len(dims_raw) < 4 * head[3]:
            raise CorruptDataError(
                "truncated IDX header", uri=self.location.uri, file=self.location.display(path)
            )
        shape = struct.unpack(">" + "I" * head[3], dims_raw)
        return _Header(np.dtype(_DTYPES[head[2]]), shape, 4 + 4 * head[3])

    def _checked_header(self, path: str) -> _Header:
        """Parse ``path``'s header and check the size it declares against the bytes present.

        Plain files: the file size. Gzip files: the most the compressed size can expand to, then the
        gzip trailer's length field (one small read); only when that disagrees (a truncated file, or
        several gzip members) are the bytes decompressed and counted, in bounded memory.
        """
        loc = self.location
        with ExitStack() as stack, loc.translating(path):
            size = int(loc.fs.size(path))
            raw = stack.enter_context(loc.fs.open(path, "rb"))
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            f = cast(IO[bytes], gzip.GzipFile(fileobj=raw)) if compressed else raw
            header = self._header(f, path)
            declared = header.offset + header.data_bytes
            shown = loc.display(path)
            if not compressed:
                check_present(declared, size, "IDX file", uri=loc.uri, file=shown)
                return header
            what = "gzip IDX file (present: the most its compressed size expands to)"
            check_present(declared, deflate_capacity(size), what, uri=loc.uri, file=shown)
            raw.seek(max(0, size - 4))
            if int.from_bytes(raw.read(4), "little") != declared % 2**32:
                raw.seek(0)
                present = _count(cast(IO[bytes], gzip.GzipFile(fileobj=raw)), declared)
                check_present(declared, present, "IDX file (decompressed)", uri=loc.uri, file=shown)
        return header

    def _read_pair(self, pair: _Pair) -> tuple[_Header, np.ndarray]:
        loc, limit = self.location, self.options.memory_limit
        header = self._checked_header(pair.images)
        lab_header = self._checked_header(pair.labels)
        if len(header.shape) not in (3, 4) or len(lab_header.shape) != 1:
            raise CorruptDataError(
                f"unexpected IDX shapes {header.shape} / {lab_header.shape}",
                uri=loc.uri,
                file=loc.display(pair.images),
            )
        if lab_header.dtype.kind not in "iu":
            raise CorruptDataError(
                f"IDX labels must be integers, got {lab_header.dtype}", uri=loc.uri, file=loc.display(pair.labels)
            )
        if lab_header.shape[0] != header.shape[0]:
            raise CorruptDataError(
                f"{header.shape[0]} images but {lab_header.shape[0]} labels",
                uri=loc.uri,
                file=loc.display(pair.labels),
            )
        check_memory(header.row_bytes, limit, "one IDX image", uri=loc.uri, file=loc.display(pair.images))
        with ExitStack() as stack, loc.translating(pair.labels):
            f = self._open(pair.labels, stack)
            f.seek(lab_header.offset)
            labels = self._read_exact(f, lab_header, lab_header.shape[0], pair.labels)
        return header, labels.astype(np.int64)

    def _read_exact(self, f: IO[bytes], header: _Header, count: int, path: str) -> np.ndarray:
        loc = self.location
        want = header.row_bytes * count
        # Checked before reading: a buffered read allocates the whole request up front.
        check_memory(want, self.options.memory_limit, f"{count} IDX rows", uri=loc.uri, file=loc.display(path))
        data = f.read(want)
        if len(data) < want:
            raise CorruptDataError(
                f"truncated IDX file: expected {want} bytes, got {len(data)}",
                uri=loc.uri,
                file=loc.display(path),
            )
        arr = np.frombuffer(data, dtype=header.dtype).reshape(count, *header.shape[1:])
        return arr.astype(header.dtype.newbyteorder("="), copy=not header.dtype.isnative)

    def _scan(self) -> ScanResult:
        stats = ScanStats()
        pairs = self._pairs()
        for pair, _, labels, row in pairs:
            splits = None if pair.split is None else np.full(len(labels), pair.split)
            stats.add(
                labels, splits, uri=self.location.uri, file=self.location.display(pair.labels), first_row=row
            )
        header = pairs[0][1]
        dims = header.shape[1:]
        shape = (1, *dims) if len(dims) == 2 else (dims[2], dims[0], dims[1])
        files = [p for pair, *_ in pairs for p in (pair.images, pair.labels)]
        with self.location.translating():
            digest, stored = fingerprint(self.location.fs, files, self.location.path)
        return ScanResult(stats, shape, header.dtype.newbyteorder("=").name, stored, digest)

    def _iter_raw(self, batch_size: int, start: int, stop: int, split: str | None) -> Iterator[RawChunk]:
        loc = self.location
        for pair, header, labels, first in self._pairs():
            n = header.shape[0]
            lo, hi = max(start, first) - first, min(stop, first + n) - first
            if lo >= hi or (split is not None and pair.split != split):
                continue
            per = header.row_bytes
            with ExitStack() as stack, loc.translating(pair.images):
                f = self._open(pair.images, stack)
                # gzip "seeks" forward by decompressing; plain files seek directly.
                f.seek(header.offset + lo * per)
                for s in range(lo, hi, batch_size):
                    count = min(batch_size, hi - s)
                    images = self._read_exact(f, header, count, pair.images)
                    images = images[:, None] if images.ndim == 3 else np.moveaxis(images, -1, 1)
                    yield RawChunk(
                        images,
                        labels[s : s + count],
                        None,
                        None if pair.split is None else np.full(count, pair.split),
                        np.arange(first + s, first + s + count, dtype=np.int64),
                        loc.display(pair.images),
                    )


def _count(f: IO[bytes], enough: int) -> int:
    """Bytes readable from ``f`` (read in 1 MiB pieces), stopping once ``enough`` have been seen."""
    total = 0
    while total < enough:
        got = len(f.read(min(enough - total, 1 << 20)))
        if got == 0:
            break
        total += got
    return total
