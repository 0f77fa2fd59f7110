"""NumPy ``.npz`` archives with an image array and a label array (names configurable).

Images stream: the ``.npy`` member is opened inside the zip, its header parsed, and ``batch_size`` rows
read at a time. This works for stored and for compressed (``np.savez_compressed``) archives, since zip
members decompress incrementally; a compressed archive must be decompressed from the start to reach
later rows, so holdout reads near the end cost a full pass. Fortran-ordered arrays cannot be streamed
and are loaded whole. Label, group and split arrays (1-D) are loaded whole. Nothing is unpickled.

Nothing a header declares is trusted: each ``.npy`` shape must fit in its zip entry, each entry in the
archive (and within what its compressed size can expand to), and every allocation under the memory limit.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, Any

import numpy as np

from connectors._fs import fingerprint
from connectors.errors import ConnectorError, CorruptDataError, SchemaError
from connectors.schema import ScanStats
from connectors.sources._limits import check_memory, check_present, deflate_capacity, nbytes
from connectors.sources.base import RawChunk, ScanResult, Source

_Info = tuple[tuple[int, ...], np.dtype, bool, np.ndarray, np.ndarray | None, np.ndarray | None]


class NpzSource(Source):
    """A ``.npz`` archive (see module docstring). Images (N, H, W), (N, C, H, W) or (N, H, W, C)."""

    format = "npz"
    _cache: _Info | None = None

    def _member(
        self, zf: zipfile.ZipFile, key: str | None, role: str, stack: ExitStack
    ) -> tuple[IO[bytes], zipfile.ZipInfo]:
        names = [n.removesuffix(".npy") for n in zf.namelist()]
        if key not in names:
            raise SchemaError(
                f"{role} array {key!r} not found in the npz archive",
                available=tuple(names),
                uri=self.location.uri,
                column=key,
            )
        entry = zf.getinfo(f"{key}.npy")
        # The zip directory declares sizes too: the entry must lie inside the archive, and its
        # uncompressed size must be reachable from its compressed size.
        uri, file = self.location.uri, self.location.display(self.location.path)
        archive = int(self.location.fs.size(self.location.path))
        what = f"zip entry {key}.npy (present: the archive's size)"
        check_present(entry.header_offset + entry.compress_size, archive, what, uri=uri, file=file, column=key)
        if entry.compress_type in _CAPACITY:
            what = f"zip entry {key}.npy (present: the most its compressed size expands to)"
            capacity = _CAPACITY[entry.compress_type](entry.compress_size)
            check_present(entry.file_size, capacity, what, uri=uri, file=file, column=key)
        return stack.enter_context(zf.open(entry)), entry

    @contextmanager
    def _zip_errors(self) -> Iterator[None]:
        """Translate what ``zipfile`` raises on a damaged archive into CorruptDataError.

        A corrupted directory or entry header shows up as BadZipFile, but also as ValueError (a negative
        seek), NotImplementedError (an unknown compression method), RuntimeError ("encrypted"),
        struct.error, OverflowError, ...: all mean the archive is not what it claims.
        """
        try:
            yield
        except ConnectorError:
            raise
        except (ValueError, NotImplementedError, RuntimeError, struct.error, OverflowError, KeyError) as exc:
            raise CorruptDataError(
                f"damaged npz archive ({type(exc).__name__}: {exc})",
                uri=self.location.uri,
                file=self.location.display(self.location.path),
            ) from exc

    def _header(
        self, f: IO[bytes], entry: zipfile.ZipInfo, key: str
    ) -> tuple[tuple[int, ...], np.dtype, bool]:
        """Parse a ``.npy`` header; the size it declares must fit in the zip entry that holds it."""
        uri, file = self.location.uri, self.location.display(self.location.path)
        try:
            version = np.lib.format.read_magic(f)
            reader = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = reader(f)
        except (ValueError, SyntaxError, TypeError) as exc:
            raise CorruptDataError(f"not a .npy member ({exc})", uri=uri, file=file, column=key) from exc
        if dtype.hasobject:
            raise SchemaError("object arrays are not read (they would need unpickling)", uri=uri, column=key)
        if dtype.itemsize == 0:
            raise SchemaError(f"arrays of {dtype} hold no data", uri=uri, column=key)
        shape = tuple(int(d) for d in shape)
        what = f"npz array {key!r} of shape {shape} {dtype}"
        check_present(nbytes(shape, dtype.itemsize), entry.file_size - f.tell(), what, uri=uri, file=file, column=key)
        return shape, dtype, bool(fortran)

    def _whole(self, zf: zipfile.ZipFile, key: str | None, role: str) -> np.ndarray | None:
        """Load a small 1-D array (labels, groups, splits) whole."""
        if key is None:
            return None
        with ExitStack() as stack:
            f, entry = self._member(zf, key, role, stack)
            shape, dtype, fortran = self._header(f, entry, key)
            if len(shape) != 1:
                raise SchemaError(
                    f"{role} array must be 1-D, got shape {shape}", uri=self.location.uri, column=key
                )
            return self._read_array(f, shape, dtype, fortran, key)

    def _read_array(
        self, f: IO[bytes], shape: tuple[int, ...], dtype: np.dtype, fortran: bool, key: str
    ) -> np.ndarray:
        """Read a whole array whose header was checked; refuses one larger than the memory limit."""
        uri, file = self.location.uri, self.location.display(self.location.path)
        size = nbytes(shape, dtype.itemsize)
        check_memory(size, self.options.memory_limit, f"npz array {key!r} of shape {shape}", uri=uri, column=key)
        buf = _read_into(f, size)
        if len(buf) < size:
            raise CorruptDataError(f"truncated npz array {key!r}", uri=uri, file=file, column=key)
        arr = np.frombuffer(buf, dtype=dtype)
        arr = arr.reshape(shape[::-1]).transpose() if fortran else arr.reshape(shape)
        return arr.astype(dtype.newbyteorder("="), copy=not dtype.isnative)

    def _info(self) -> _Info:
        if self._cache is None:
            loc, opts = self.location, self.options
            with ExitStack() as stack, loc.translating(loc.path), self._zip_errors():
                zf = stack.enter_context(zipfile.ZipFile(stack.enter_context(loc.fs.open(loc.path, "rb"))))
                f, entry = self._member(zf, opts.image_column, "image", stack)
                shape, dtype, fortran = self._header(f, entry, opts.image_column)
                labels = self._whole(zf, opts.label_column, "label")
                groups = self._whole(zf, opts.group_column, "group")
                splits = self._whole(zf, opts.split_column, "split")
            assert labels is not None
            for name, arr in (("label", labels), ("group", groups), ("split", splits)):
                if arr is not None and arr.shape[0] != shape[0]:
                    raise CorruptDataError(f"{shape[0]} images but {arr.shape[0]} {name} values", uri=loc.uri)
            if len(shape) not in (3, 4):
                raise SchemaError(
                    f"image array must be (N, H, W) or (N, C, H, W), got {shape}",
                    uri=loc.uri,
                    column=opts.image_column,
                )
            what = "one npz image" if not fortran else f"the Fortran-ordered image array {shape}"
            need = nbytes(shape if fortran else shape[1:], dtype.itemsize)
            check_memory(need, opts.memory_limit, what, uri=loc.uri, column=opts.image_column)
            self._cache = (shape, dtype, fortran, labels, groups, splits)
        return self._cache

    def _to_nchw(self, arr: np.ndarray) -> np.ndarray:
        if arr.ndim == 3:
            return arr[:, None]
        if _channels_last(arr.shape[1:]):
            return np.ascontiguousarray(np.moveaxis(arr, -1, 1))
        return arr

    def _scan(self) -> ScanResult:
        shape, dtype, _, labels, groups, splits = self._info()
        stats = ScanStats()
        stats.add(labels, splits, groups, uri=self.location.uri, column=self.options.label_column)
        with self.location.translating():
            digest, stored = fingerprint(self.location.fs, [self.location.path], self.location.path)
        return ScanResult(stats, _chw(shape[1:]), dtype.newbyteorder("=").name, stored, digest)

    def _iter_raw(self, batch_size: int, start: int, stop: int, split: str | None) -> Iterator[RawChunk]:
        loc, opts = self.location, self.options
        shape, dtype, fortran, labels, groups, splits = self._info()
        per = nbytes(shape[1:], dtype.itemsize)
        with ExitStack() as stack, loc.translating(loc.path), self._zip_errors():
            zf = stack.enter_context(zipfile.ZipFile(stack.enter_context(loc.fs.open(loc.path, "rb"))))
            f, entry = self._member(zf, opts.image_column, "image", stack)
            self._header(f, entry, str(opts.image_column))
            whole = self._read_array(f, shape, dtype, fortran, str(opts.image_column)) if fortran else None
            if whole is None:
                _skip(f, start * per)
            for s in range(start, stop, batch_size):
                count = min(batch_size, stop - s)
                if whole is not None:
                    arr = np.ascontiguousarray(whole[s : s + count])
                else:
                    check_memory(
                        count * per, opts.memory_limit, f"{count} npz rows", uri=loc.uri, column=opts.image_column
                    )
                    data = f.read(count * per)
                    if len(data) < count * per:
                        raise CorruptDataError(
                            "truncated npz image array", uri=loc.uri, column=opts.image_column
                        )
                    arr = np.frombuffer(data, dtype=dtype).reshape(count, *shape[1:])
                    arr = arr.astype(dtype.newbyteorder("="), copy=not dtype.isnative)
                yield RawChunk(
                    self._to_nchw(arr),
                    labels[s : s + count],
                    _part(groups, s, count),
                    _part(splits, s, count),
                    np.arange(s, s + count, dtype=np.int64),
                    loc.display(loc.path),
                )


# Compression methods whose expansion is bounded: the most ``n`` compressed bytes can expand to.
_CAPACITY: dict[int, Callable[[int], int]] = {
    zipfile.ZIP_STORED: lambda n: n,
    zipfile.ZIP_DEFLATED: deflate_capacity,
}


def _channels_last(row: tuple[int, ...]) -> bool:
    return len(row) == 3 and row[0] not in (1, 3, 4) and row[2] in (1, 3, 4)


def _chw(row: tuple[int, ...]) -> tuple[int, int, int]:
    """The (C, H, W) that :meth:`NpzSource._to_nchw` gives one stored row, without allocating it."""
    if len(row) == 2:
        return (1, row[0], row[1])
    if _channels_last(row):
        return (row[2], row[0], row[1])
    return (row[0], row[1], row[2])


def _read_into(f: IO[bytes], size: int) -> bytearray:
    """Read up to ``size`` bytes into one writable buffer (no second copy of a whole array)."""
    buf = bytearray(size)
    view = memoryview(buf)
    pos = 0
    while pos < size:
        chunk = f.read(min(size - pos, 1 << 22))
        if not chunk:
            return buf[:pos]
        view[pos : pos + len(chunk)] = chunk
        pos += len(chunk)
    return buf


def _part(arr: np.ndarray | None, start: int, count: int) -> np.ndarray | None:
    return None if arr is None else arr[start : start + count]


def _skip(f: Any, nbytes: int) -> None:
    # Zip members of compressed archives are not seekable cheaply: read forward in bounded pieces.
    while nbytes > 0:
        got = len(f.read(min(nbytes, 1 << 22)))
        if got == 0:
            return
        nbytes -= got
