"""Property (issue 15): every supported format, truncated or corrupted anywhere, reads correctly or fails with
a typed connectors error, within bounded memory.

"Correctly" means a self-consistent read (the right number of rows, every image in the schema's shape,
every label a valid class id): formats without checksums (plain IDX, stored npz, uncompressed Parquet
pages) cannot tell a changed pixel from the original. Memory is bounded twice: each source gets a small
``memory_limit`` (so the declared-size guards are exercised), and the process's address space is capped
around each read (RLIMIT_AS, Linux), so an allocation that slipped past the guards fails the test.

Set ``PAD_FUZZ_EXAMPLES`` to run more (random) examples than the bounded, deterministic default.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conn_data import build, idx_bytes, make_images
from fsspec.implementations.memory import MemoryFileSystem

from connectors import ConnectorError, open_source

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")

EXAMPLES = int(os.environ.get("PAD_FUZZ_EXAMPLES", "0")) or 40
MEMORY_LIMIT = 4 * 2**20  # per source: far above these datasets' needs, far below any runaway header
HEADROOM = 1024 * 2**20  # address space allowed on top of what the process already maps

FS = MemoryFileSystem(skip_instance_cache=True)  # where the templates are built


def _templates() -> dict[str, tuple[dict[str, bytes], dict[str, Any]]]:
    """layout -> ({relative path: bytes}, open_source kwargs; ``_file`` names the file to open), built once.

    Parquet with PNG bytes and with numeric arrays (snappy pages), IDX gzip-compressed and plain, npz
    stored and deflated, and an image folder of PNGs.
    """
    out: dict[str, tuple[dict[str, bytes], dict[str, Any]]] = {}
    for layout in ("parquet_png", "parquet_array", "idx", "npz", "imagefolder"):
        root = f"/fuzz-template-{uuid.uuid4().hex}"
        expected = build(layout, FS, root, n=12)
        out[layout] = ({p[len(root) + 1 :]: FS.cat_file(p) for p in FS.find(root)}, expected.open_kwargs)
        FS.rm(root, recursive=True)
    images, labels = make_images(12, (1, 5, 5))[:, 0], np.arange(12) % 3
    plain = {"train-images-idx3-ubyte": images, "train-labels-idx1-ubyte": labels}
    out["idx_plain"] = ({name: idx_bytes(arr, compress=False) for name, arr in plain.items()}, {})
    buf = io.BytesIO()
    np.savez_compressed(buf, x=images, y=labels)
    npz_kwargs = {"image_column": "x", "label_column": "y", "_file": "data.npz"}
    out["npz_deflated"] = ({"data.npz": buf.getvalue()}, npz_kwargs)
    return out


TEMPLATES = _templates()

# A mutation: (kind, offset, value). Offsets favour the first 64 bytes, where headers and footers' lengths
# live (and the end, for Parquet footers: negative offsets count from the end).
_offset = st.one_of(st.integers(0, 63), st.integers(-64, -1), st.integers(0, 1 << 20))
_mutation = st.tuples(st.sampled_from(["truncate", "flip", "ff", "zero"]), _offset, st.integers(1, 255))


def _mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, offset, value in mutations:
        if not buf:
            break
        at = offset % len(buf)
        if kind == "truncate":
            del buf[at:]
        elif kind == "flip":
            buf[at] ^= value
        else:  # four bytes of 0xFF (a huge length or dimension) or of zeros
            buf[at : at + 4] = (b"\xff" if kind == "ff" else b"\x00") * len(buf[at : at + 4])
    return bytes(buf)


@contextlib.contextmanager
def _address_space_capped() -> Iterator[None]:
    try:
        import resource
    except ImportError:  # not POSIX: the memory_limit guard still applies
        yield
        return
    with open("/proc/self/statm") as fh:
        mapped = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = mapped + HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _read_or_typed_error(uri: str, kwargs: dict[str, Any]) -> None:
    try:
        with _address_space_capped():
            src = open_source(uri, memory_limit=MEMORY_LIMIT, **kwargs)
            schema = src.schema
            batch = src.read_all()
            chunks = list(src.iter_batches(5))
    except ConnectorError:
        return  # typed, names what is wrong: the other acceptable outcome
    assert batch.images.shape == (schema.num_rows, *schema.image_shape)
    assert batch.labels.shape == (schema.num_rows,)
    assert batch.labels.min() >= 0 and batch.labels.max() < schema.num_classes
    assert sum(len(c) for c in chunks) == schema.num_rows
    assert all(c.images.shape[1:] == schema.image_shape for c in chunks)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc to size the address-space cap")
@pytest.mark.parametrize("layout", sorted(TEMPLATES))
def test_corrupted_files_read_consistently_or_fail_typed(layout: str, tmp_path: Path) -> None:
    """Real files: a local read(n) allocates n bytes up front, where a memory filesystem would not."""
    files, kwargs = TEMPLATES[layout]
    names = sorted(files)

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize="PAD_FUZZ_EXAMPLES" not in os.environ,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(target=st.integers(0, len(names) - 1), mutations=st.lists(_mutation, min_size=1, max_size=3))
    # Always tried: huge header fields (IDX dimensions at bytes 4-15, zip / npy / PNG lengths), a cut
    # body, and a damaged end (Parquet footer length, zip directory, gzip trailer).
    @hypothesis.example(target=0, mutations=[("ff", 8, 1)])
    @hypothesis.example(target=0, mutations=[("ff", 12, 1)])
    @hypothesis.example(target=len(names) - 1, mutations=[("ff", 4, 1)])
    @hypothesis.example(target=0, mutations=[("truncate", -40, 1)])
    @hypothesis.example(target=0, mutations=[("ff", -8, 1)])
    def check(target: int, mutations: list[tuple[str, int, int]]) -> None:
        root = tmp_path / uuid.uuid4().hex
        try:
            for name, data in files.items():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_bytes(_mutate(data, mutations) if name == names[target] else data)
            uri = str(root / kwargs["_file"]) if "_file" in kwargs else str(root)
            _read_or_typed_error(uri, {k: v for k, v in kwargs.items() if k != "_file"})
        finally:
            shutil.rmtree(root)

    check()


def test_mutations_do_what_they_say() -> None:
    assert _mutate(b"abcdef", [("truncate", 2, 1)]) == b"ab"
    assert _mutate(b"abcdef", [("ff", -2, 1)]) == b"abcd\xff\xff"
    assert _mutate(b"\x00", [("flip", 7, 3)]) == b"\x03"
    assert _mutate(b"abc", [("zero", 1, 1)]) == b"a\x00\x00"
