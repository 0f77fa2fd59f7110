"""NumPy ``.npz`` archives with an image array and a label array (names configurable).

Images stream: the ``.npy`` member is opened inside the zip, its header parsed, and ``batch_size`` rows
read at a time. This works for stored and for compressed (``np.savez_compressed``) archives, since zip
members decompress incrementally; a compressed archive must be decompressed from the start to reach
later rows, so holdout reads near the end cost a full pass. Fortran-ordered arrays cannot be streamed
and are loaded whole. Label, group and split arrays (1-D) are loaded whole. Nothing is unpickled.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from typing import IO, Any

import numpy as np

from connectors._fs import fingerprint
from connectors.errors import CorruptDataError, SchemaError
from connectors.schema import ScanStats
from connectors.sources.base import RawChunk, ScanResult, Source


class NpzSource(Source):
    """A ``.npz`` archive (see module docstring). Images (N, H, W), (N, C, H, W) or (N, H, W, C)."""

    format = "npz"
    _cache: (
        tuple[tuple[int, ...], np.dtype, bool, np.ndarray, np.ndarray | None, np.ndarray | None] | None
    ) = None

    def _member(self, zf: zipfile.ZipFile, key: str | None, role: str, stack: ExitStack) -> IO[bytes]:
        names = [n.removesuffix(".npy") for n in zf.namelist()]
        if key not in names:
            raise SchemaError(
                f"{role} array {key!r} not found in the npz archive",
                available=tuple(names),
                uri=self.location.uri,
                column=key,
            )
        return stack.enter_context(zf.open(f"{key}.npy"))

    def _header(self, f: IO[bytes], key: str) -> tuple[tuple[int, ...], np.dtype, bool]:
        try:
            version = np.lib.format.read_magic(f)
            reader = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = reader(f)
        except ValueError as exc:
            raise CorruptDataError(f"not a .npy member ({exc})", uri=self.location.uri, column=key) from exc
        if dtype.hasobject:
            raise SchemaError(
                "object arrays are not read (they would need unpickling)", uri=self.location.uri, column=key
            )
        return tuple(shape), dtype, bool(fortran)

    def _whole(self, zf: zipfile.ZipFile, key: str | None, role: str) -> np.ndarray | None:
        """Load a small 1-D array (labels, groups, splits) whole."""
        if key is None:
            return None
        with ExitStack() as stack:
            try:
                arr = np.lib.format.read_array(self._member(zf, key, role, stack), allow_pickle=False)
            except ValueError as exc:  # object arrays, bad headers
                raise SchemaError(
                    f"{role} array cannot be read ({exc})", uri=self.location.uri, column=key
                ) from exc
        if arr.ndim != 1:
            raise SchemaError(
                f"{role} array must be 1-D, got shape {arr.shape}", uri=self.location.uri, column=key
            )
        return arr

    def _info(
        self,
    ) -> tuple[tuple[int, ...], np.dtype, bool, np.ndarray, np.ndarray | None, np.ndarray | None]:
        if self._cache is None:
            loc, opts = self.location, self.options
            with ExitStack() as stack, loc.translating(loc.path):
                zf = stack.enter_context(zipfile.ZipFile(stack.enter_context(loc.fs.open(loc.path, "rb"))))
                shape, dtype, fortran = self._header(
                    self._member(zf, opts.image_column, "image", stack), opts.image_column
                )
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
            self._cache = (shape, dtype, fortran, labels, groups, splits)
        return self._cache

    def _to_nchw(self, arr: np.ndarray) -> np.ndarray:
        if arr.ndim == 3:
            return arr[:, None]
        if arr.shape[1] not in (1, 3, 4) and arr.shape[3] in (1, 3, 4):  # channels-last storage
            return np.ascontiguousarray(np.moveaxis(arr, -1, 1))
        return arr

    def _scan(self) -> ScanResult:
        shape, dtype, _, labels, groups, splits = self._info()
        stats = ScanStats()
        stats.add(labels, splits, groups, uri=self.location.uri, column=self.options.label_column)
        probe = self._to_nchw(np.empty((1, *shape[1:]), dtype=dtype))
        with self.location.translating():
            digest, stored = fingerprint(self.location.fs, [self.location.path], self.location.path)
        return ScanResult(stats, tuple(probe.shape[1:]), dtype.newbyteorder("=").name, stored, digest)

    def _iter_raw(self, batch_size: int, start: int, stop: int, split: str | None) -> Iterator[RawChunk]:
        loc, opts = self.location, self.options
        shape, dtype, fortran, labels, groups, splits = self._info()
        per = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        with ExitStack() as stack, loc.translating(loc.path):
            zf = stack.enter_context(zipfile.ZipFile(stack.enter_context(loc.fs.open(loc.path, "rb"))))
            f = self._member(zf, opts.image_column, "image", stack)
            self._header(f, str(opts.image_column))
            whole = np.lib.format.read_array(f, allow_pickle=False) if fortran else None
            if whole is None:
                _skip(f, start * per)
            for s in range(start, stop, batch_size):
                count = min(batch_size, stop - s)
                if whole is not None:
                    arr = np.ascontiguousarray(whole[s : s + count])
                else:
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


def _part(arr: np.ndarray | None, start: int, count: int) -> np.ndarray | None:
    return None if arr is None else arr[start : start + count]


def _skip(f: Any, nbytes: int) -> None:
    # Zip members of compressed archives are not seekable cheaply: read forward in bounded pieces.
    while nbytes > 0:
        got = len(f.read(min(nbytes, 1 << 22)))
        if got == 0:
            return
        nbytes -= got
