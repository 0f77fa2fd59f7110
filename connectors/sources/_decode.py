"""Decoding of encoded images (PNG / JPEG / anything Pillow reads) into (N, C, H, W) arrays."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from connectors.errors import DataValidationError
from connectors.sources._limits import DEFAULT_MEMORY_LIMIT, check_memory

# Pillow modes we keep as they are, with their channel count; anything else (palette, CMYK, LA, ...)
# is converted to RGB so that one dataset yields one channel count.
_MODES = {"L": 1, "RGB": 3, "RGBA": 4, "I;16": 1, "I": 1, "F": 1}
_BAND_BYTES = {"I;16": 2, "I;16B": 2, "I;16L": 2, "I": 4, "F": 4}


def decode_image(
    data: bytes,
    *,
    row: int,
    uri: str | None,
    file: str | None,
    column: str,
    max_bytes: int = DEFAULT_MEMORY_LIMIT,
) -> np.ndarray:
    """Decode one encoded image -> (C, H, W) array (uint8 for 8-bit PNG/JPEG).

    The dimensions the image header declares are checked against ``max_bytes`` before any pixel is
    decoded (MemoryLimitError); bytes Pillow cannot decode give DataValidationError.
    """
    # Pillow's decoders fail on hostile bytes in many ways (struct.error, IndexError, zlib.error, its
    # decompression-bomb guard, ...): each one means "not a decodable image", hence the broad excepts.
    try:
        img = Image.open(io.BytesIO(data))
    except Exception as exc:
        raise _undecodable(exc, data, row=row, uri=uri, file=file, column=column) from exc
    with img:
        width, height = img.size
        need = width * height * len(img.getbands()) * _BAND_BYTES.get(img.mode, 1)
        need += width * height * 3 if img.mode not in _MODES else 0  # the RGB copy
        what = f"image of {width} x {height} ({img.mode})"
        check_memory(need, max_bytes, what, uri=uri, file=file, row=row, column=column)
        try:
            img.load()
            arr = np.asarray(img.convert("RGB")) if img.mode not in _MODES else np.asarray(img)
        except Exception as exc:
            raise _undecodable(exc, data, row=row, uri=uri, file=file, column=column) from exc
    if not arr.dtype.isnative:  # 16-bit PNGs decode big-endian; yield native order
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)


def _undecodable(
    exc: Exception, data: bytes, *, row: int, uri: str | None, file: str | None, column: str
) -> DataValidationError:
    return DataValidationError(
        f"undecodable image bytes ({type(exc).__name__})",
        uri=uri,
        file=file,
        row=row,
        column=column,
        value=bytes(data[:8]),
    )


def decode_images(
    blobs: Sequence[bytes | None],
    row_ids: np.ndarray,
    *,
    uri: str | None,
    file: str | None,
    column: str,
    max_bytes: int = DEFAULT_MEMORY_LIMIT,
) -> np.ndarray:
    """Decode a chunk of encoded images -> (N, C, H, W); all must share one shape and dtype."""
    out: np.ndarray | None = None
    for i, data in enumerate(blobs):
        row = int(row_ids[i])
        if data is None:
            raise DataValidationError(
                "image is missing (null bytes)", uri=uri, file=file, row=row, column=column
            )
        img = decode_image(data, row=row, uri=uri, file=file, column=column, max_bytes=max_bytes)
        if out is None:
            out = np.empty((len(blobs), *img.shape), dtype=img.dtype)
        elif img.shape != out.shape[1:] or img.dtype != out.dtype:
            raise DataValidationError(
                f"mixed image sizes or channel counts: expected {out.shape[1:]} {out.dtype}, got "
                f"{img.shape} {img.dtype}",
                uri=uri,
                file=file,
                row=row,
                column=column,
            )
        out[i] = img
    if out is None:
        return np.empty((0, 1, 1, 1), dtype=np.uint8)
    return out
