"""MNIST-style IDX files (gzip or not), the layout Fashion-MNIST ships in.

The URI is either one images file (its labels file is found by name: ``images-idx3`` -> ``labels-idx1``)
or a directory of ``{split}-images-idx3-ubyte[.gz]`` / ``{split}-labels-idx1-ubyte[.gz]`` pairs; the
prefix names the split (``train``; ``t10k`` and ``test`` become ``test``). Images stream in chunks: the
header is parsed, then ``batch_size`` images are read at a time (through ``gzip`` when compressed, which
decompresses incrementally). Labels (one byte per row) are read whole.
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

    def _read_pair(self, pair: _Pair) -> tuple[_Header, np.ndarray]:
        loc = self.location
        with ExitStack() as stack, loc.translating(pair.images):
            header = self._header(self._open(pair.images, stack), pair.images)
        with ExitStack() as stack, loc.translating(pair.labels):
            f = self._open(pair.labels, stack)
            lab_header = self._header(f, pair.labels)
            labels = self._read_exact(f, lab_header, lab_header.shape[0], pair.labels)
        if len(header.shape) not in (3, 4) or len(lab_header.shape) != 1:
            raise CorruptDataError(
                f"unexpected IDX shapes {header.shape} / {lab_header.shape}",
                uri=loc.uri,
                file=loc.display(pair.images),
            )
        if lab_header.shape[0] != header.shape[0]:
            raise CorruptDataError(
                f"{header.shape[0]} images but {lab_header.shape[0]} labels",
                uri=loc.uri,
                file=loc.display(pair.labels),
            )
        return header, labels.astype(np.int64)

    def _read_exact(self, f: IO[bytes], header: _Header, count: int, path: str) -> np.ndarray:
        per = int(np.prod(header.shape[1:], dtype=np.int64)) * header.dtype.itemsize
        data = f.read(per * count)
        if len(data) < per * count:
            raise CorruptDataError(
                f"truncated IDX file: expected {per * count} bytes, got {len(data)}",
                uri=self.location.uri,
                file=self.location.display(path),
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
            per = int(np.prod(header.shape[1:])) * header.dtype.itemsize
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
