"""Sizes that files declare are checked against the bytes present and the memory limit before any allocation
(issue 15: a 116-byte IDX file declaring 60 x 65535 x 65535 images was inspected as healthy, then read
into a MemoryError; a truncated IDX body passed inspection)."""

from __future__ import annotations

import gzip
import io
import struct
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from conn_data import Target, idx_bytes, make_images, png_bytes

from connectors import (
    CorruptDataError,
    DeclaredSizeError,
    InvalidArgumentError,
    MemoryLimitError,
    open_source,
)


@pytest.fixture
def local(make_target: Callable[[str], Target]) -> Target:
    return make_target("local")


@pytest.fixture
def bounded_memory() -> Iterator[None]:
    """Fail the test if Python or numpy allocated more than 16 MiB at once during it."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"peak allocation {peak} bytes"


def _idx_header(dtype_code: int, shape: tuple[int, ...]) -> bytes:
    return struct.pack(">HBB", 0, dtype_code, len(shape)) + struct.pack(">" + "I" * len(shape), *shape)


def _write_idx_pair(target: Target, images: bytes, labels: bytes, suffix: str = "") -> None:
    target.fs.pipe_file(f"{target.root}/train-images-idx3-ubyte{suffix}", images)
    target.fs.pipe_file(f"{target.root}/train-labels-idx1-ubyte{suffix}", labels)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_idx_header_declaring_huge_images_is_refused_at_inspection(
    local: Target, compress: bool, bounded_memory: None
) -> None:
    images = _idx_header(0x08, (60, 65535, 65535)) + bytes(100)
    labels = _idx_header(0x08, (60,)) + bytes(60)
    pack = (lambda b: gzip.compress(b, mtime=0)) if compress else (lambda b: b)
    _write_idx_pair(local, pack(images), pack(labels), ".gz" if compress else "")
    src = open_source(local.uri)
    with pytest.raises(DeclaredSizeError) as info:
        _ = src.schema  # inspection refuses it; it used to report (1, 65535, 65535)
    err = info.value
    assert err.declared == 16 + 60 * 65535 * 65535
    assert err.present < 200_000  # the file (or all its gzip data could ever expand to) is tiny
    assert err.file is not None and err.file.endswith("train-images-idx3-ubyte" + (".gz" if compress else ""))
    assert str(err.declared) in str(err) and str(err.present) in str(err)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_truncated_idx_body_fails_inspection(local: Target, compress: bool) -> None:
    imgs = make_images(10, (1, 28, 28))[:, 0]
    body = idx_bytes(imgs, compress=False)
    truncated = body[:-3000]
    _write_idx_pair(
        local,
        gzip.compress(truncated, mtime=0) if compress else truncated,
        idx_bytes(np.arange(10) % 2, compress=compress),
        ".gz" if compress else "",
    )
    with pytest.raises(DeclaredSizeError) as info:
        _ = open_source(local.uri).schema
    assert (info.value.declared, info.value.present) == (len(body), len(body) - 3000)


def test_truncated_gzip_stream_fails_inspection(local: Target) -> None:
    """The gzip stream itself cut short (not a short body recompressed): corrupt, at inspection."""
    imgs = make_images(50, (1, 28, 28))[:, 0]
    gz = idx_bytes(imgs, compress=True)
    _write_idx_pair(local, gz[: len(gz) // 2], idx_bytes(np.arange(50) % 2), ".gz")
    with pytest.raises(CorruptDataError) as info:
        _ = open_source(local.uri).schema
    assert info.value.file is not None and info.value.file.endswith("train-images-idx3-ubyte.gz")


def test_idx_image_over_the_memory_limit(local: Target) -> None:
    imgs = make_images(4, (1, 64, 64))[:, 0]
    _write_idx_pair(local, idx_bytes(imgs), idx_bytes(np.arange(4) % 2), ".gz")
    with pytest.raises(MemoryLimitError) as info:
        _ = open_source(local.uri, memory_limit=1000).schema
    assert (info.value.requested, info.value.limit) == (64 * 64, 1000)
    # A limit that holds a few images: read_all still reads everything, in smaller batches.
    src = open_source(local.uri, memory_limit=2 * 64 * 64)
    np.testing.assert_array_equal(src.read_all().images[:, 0], imgs)
    with pytest.raises(MemoryLimitError, match="lower batch_size"):
        next(src.iter_batches(4))


def test_memory_limit_must_be_positive(local: Target) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        open_source(local.uri, memory_limit=0)
    assert info.value.field == "memory_limit"


def _npz_with_declared_shape(real: tuple[int, ...], declared: tuple[int, ...], *, key: str = "image") -> bytes:
    """An npz whose ``key`` member holds the data of shape ``real`` under a header declaring ``declared``."""
    arrays = {"image": np.zeros((4, 2, 2), np.uint8), "label": np.zeros(4, np.int64)}
    arrays[key] = np.zeros(real, arrays[key].dtype)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            shape = declared if name == key else arr.shape
            header = {"descr": np.lib.format.dtype_to_descr(arr.dtype), "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(member, header)
            zf.writestr(f"{name}.npy", member.getvalue() + arr.tobytes())
    return out.getvalue()


@pytest.mark.parametrize(
    ("key", "real", "declared"),
    [("image", (4, 2, 2), (4, 65535, 65535)), ("label", (4,), (4_000_000_000_000,))],
    ids=["image", "labels"],
)
def test_npz_member_declaring_a_huge_shape_is_refused(
    local: Target, key: str, real: tuple[int, ...], declared: tuple[int, ...], bounded_memory: None
) -> None:
    local.fs.pipe_file(f"{local.root}/x.npz", _npz_with_declared_shape(real, declared, key=key))
    with pytest.raises(DeclaredSizeError) as info:
        _ = open_source(f"{local.uri}/x.npz").schema
    err = info.value
    itemsize = 1 if key == "image" else 8
    assert err.declared == int(np.prod(declared)) * itemsize
    assert err.present == int(np.prod(real)) * itemsize
    assert err.column == key and err.file is not None and err.file.endswith("x.npz")


def test_npz_image_over_the_memory_limit(local: Target) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, image=make_images(6, (1, 32, 32)), label=np.arange(6) % 2)
    local.fs.pipe_file(f"{local.root}/x.npz", buf.getvalue())
    with pytest.raises(MemoryLimitError) as info:
        _ = open_source(f"{local.uri}/x.npz", memory_limit=512).schema
    assert info.value.requested == 32 * 32 and info.value.column == "image"


def test_fortran_npz_is_read_whole_only_under_the_limit(local: Target) -> None:
    images = np.asfortranarray(make_images(6, (1, 8, 8)))
    buf = io.BytesIO()
    np.savez(buf, image=images, label=np.arange(6) % 2)
    local.fs.pipe_file(f"{local.root}/x.npz", buf.getvalue())
    np.testing.assert_array_equal(open_source(f"{local.uri}/x.npz").read_all().images, images)
    with pytest.raises(MemoryLimitError, match="Fortran"):
        _ = open_source(f"{local.uri}/x.npz", memory_limit=6 * 64 - 1).schema


def test_png_declaring_more_pixels_than_the_limit(local: Target) -> None:
    local.fs.makedirs(f"{local.root}/a", exist_ok=True)
    for i in range(3):
        local.fs.pipe_file(f"{local.root}/a/{i}.png", png_bytes(make_images(1, (3, 4, 4))[0]))
    big = np.zeros((3, 200, 300), np.uint8)  # compresses to a few hundred bytes
    local.fs.pipe_file(f"{local.root}/a/3.png", png_bytes(big))
    src = open_source(local.uri, memory_limit=100_000)
    with pytest.raises(MemoryLimitError, match="image of 300 x 200") as info:
        list(src.iter_batches(2))
    assert info.value.file is not None and info.value.file.endswith("a/3.png") and info.value.row == 3
