"""Image columns of Arrow tables (Parquet shards): encoded bytes, Hugging Face ``Image`` structs, or numeric arrays.

Encoded images are binary values or the Hugging Face ``datasets`` struct ``{bytes, path}`` (a row stored as a
path only is fetched relative to its shard, then to the source's root). Numeric images are fixed-size binary,
(nested) lists or fixed-shape tensors; flat arrays are (C, H, W) in C order, shaped by ``image_shape=``, the
file's recorded shape, or, for square single-channel images, their length alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from connectors._fs import Location
from connectors.errors import ConnectorError, CorruptDataError, DataValidationError, SchemaError, SourceNotFoundError
from connectors.sources._decode import decode_images

if TYPE_CHECKING:
    from connectors.sources.base import SourceOptions


class ImageColumn:
    """Reads one image column of a source's Arrow batches into (N, C, H, W) arrays, naming bad rows."""

    def __init__(self, location: Location, options: SourceOptions,
                 recorded_shape: Callable[[], tuple[int, ...] | None]) -> None:
        self.location = location
        self.options = options
        self.recorded_shape = recorded_shape

    def read(self, col: pa.ChunkedArray | pa.Array, row_ids: np.ndarray, file: str) -> np.ndarray:
        """Arrow image column (N rows) -> (N, C, H, W) numpy array."""
        try:
            return self._decode(col, row_ids, file)
        except ConnectorError:
            raise
        except (ValueError, pa.ArrowException) as exc:  # arrays whose lengths disagree with their shape
            raise CorruptDataError(
                f"image column cannot be read ({type(exc).__name__}: {exc})",
                uri=self.location.uri,
                file=self.location.display(file),
                column=self.options.image_column,
            ) from exc

    def _decode(self, col: pa.ChunkedArray | pa.Array, row_ids: np.ndarray, file: str) -> np.ndarray:
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        uri, name, shown = self.location.uri, self.options.image_column, self.location.display(file)
        if arr.null_count:
            bad = int(np.argmax(arr.is_null().to_numpy(zero_copy_only=False)))
            raise DataValidationError(
                "image is missing (null)", uri=uri, file=shown, row=int(row_ids[bad]), column=name
            )
        typ = arr.type
        if pa.types.is_struct(typ):
            if typ.get_field_index("bytes") < 0:
                raise SchemaError(
                    "image struct has no 'bytes' field",
                    uri=uri,
                    column=name,
                    available=tuple(f.name for f in typ),
                )
            blobs = self._struct_blobs(arr, file)
            return decode_images(blobs, row_ids, uri=uri, file=shown, column=name, max_bytes=self.options.memory_limit)
        if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
            blobs = arr.to_pylist()
            return decode_images(blobs, row_ids, uri=uri, file=shown, column=name, max_bytes=self.options.memory_limit)
        if isinstance(typ, pa.FixedShapeTensorType):
            return self._fit(arr.to_numpy_ndarray(), tuple(typ.shape), row_ids, shown)
        if pa.types.is_fixed_size_binary(typ):
            flat = np.frombuffer(
                arr.buffers()[1],
                np.uint8,
                count=len(arr) * typ.byte_width,
                offset=arr.offset * typ.byte_width,
            )
            return self._fit(flat.reshape(len(arr), -1), None, row_ids, shown)
        if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
            return self._nested(arr, row_ids, shown)
        raise SchemaError(f"image column has unsupported type {typ}", uri=uri, column=name)

    def _struct_blobs(self, arr: pa.StructArray, file: str) -> list[bytes | None]:
        """Encoded bytes of a Hugging Face ``Image`` struct; rows stored as a path only are fetched.

        A path is read relative to the shard's folder, then to the source's root (``datasets`` records
        paths relative to the repository); paths with ``..`` or outside the source are refused.
        """
        blobs: list[bytes | None] = arr.field("bytes").to_pylist()
        if None not in blobs or arr.type.get_field_index("path") < 0:
            return blobs
        loc = self.location
        paths = arr.field("path").to_pylist()
        wanted = {
            i: self._image_path(p, file) for i, (b, p) in enumerate(zip(blobs, paths, strict=True)) if b is None and p
        }
        if wanted:
            with loc.translating(next(iter(wanted.values()))):
                fetched = loc.fs.cat(sorted(set(wanted.values())), on_error="raise")
            for i, path in wanted.items():
                blobs[i] = fetched[path]
        return blobs

    def _image_path(self, recorded: str, file: str) -> str:
        root = self.location.path.rstrip("/")
        parts = recorded.replace("\\", "/").split("/")
        if ".." in parts or recorded.startswith("/") or "://" in recorded:
            raise DataValidationError(
                "image path must be relative to the dataset, without '..'",
                uri=self.location.uri,
                file=self.location.display(file),
                column=self.options.image_column,
                value=recorded,
            )
        for base in (file.rsplit("/", 1)[0], root):
            candidate = f"{base}/{recorded}"
            with self.location.translating(candidate):
                if self.location.fs.isfile(candidate):
                    return candidate
        raise SourceNotFoundError(
            "image file named by the image column's path not found",
            uri=self.location.uri,
            file=self.location.display(file),
            column=self.options.image_column,
            value=recorded,
        )

    def _nested(self, arr: pa.Array, row_ids: np.ndarray, file: str) -> np.ndarray:
        dims: list[int] = []
        values = arr
        while (
            pa.types.is_list(values.type)
            or pa.types.is_large_list(values.type)
            or pa.types.is_fixed_size_list(values.type)
        ):
            lengths = _list_lengths(values)
            if lengths.size and np.any(lengths != lengths[0]):
                bad = int(np.argmax(lengths != lengths[0])) // max(1, math.prod(dims))
                raise DataValidationError(
                    "mixed image sizes or channel counts",
                    uri=self.location.uri,
                    file=file,
                    row=int(row_ids[min(bad, len(row_ids) - 1)]),
                    column=self.options.image_column,
                )
            dims.append(int(lengths[0]) if lengths.size else 0)
            values = values.flatten()
        flat = values.to_numpy(zero_copy_only=False)
        if len(dims) == 1:
            return self._fit(flat.reshape(len(arr), -1), None, row_ids, file)
        return self._fit(flat.reshape(len(arr), *dims), tuple(dims), row_ids, file)

    def _fit(
        self, arr: np.ndarray, natural: tuple[int, ...] | None, row_ids: np.ndarray, file: str
    ) -> np.ndarray:
        """Reshape (N, ...) numeric images to (N, C, H, W) using the configured / recorded shape."""
        n, per = arr.shape[0], math.prod(arr.shape[1:])
        shape = self.options.image_shape or self.recorded_shape()
        if shape is None and natural is not None and len(natural) in (2, 3):
            hwc = len(natural) == 3 and natural[-1] in (1, 3, 4) and natural[0] not in (1, 3, 4)
            arr = np.moveaxis(arr, -1, 1) if hwc else arr
            return np.ascontiguousarray(arr.reshape(n, -1, *arr.shape[-2:]))
        if shape is None and math.isqrt(per) ** 2 == per:
            shape = (1, math.isqrt(per), math.isqrt(per))
        if shape is None or math.prod(shape) != per:
            raise SchemaError(
                f"cannot infer image shape from {per} values per row; pass image_shape=(C, H, W)",
                uri=self.location.uri,
                file=file,
                column=self.options.image_column,
            )
        shape = (1, *shape) if len(shape) == 2 else tuple(shape)
        return np.ascontiguousarray(arr.reshape(n, *shape))


def _list_lengths(arr: pa.Array) -> np.ndarray:
    if pa.types.is_fixed_size_list(arr.type):
        return np.full(len(arr), arr.type.list_size, dtype=np.int64)
    offsets = arr.offsets.to_numpy()
    return np.diff(offsets)
