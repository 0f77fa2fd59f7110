"""Export: exact round trip on every filesystem, verification, and failed writes leave nothing accepted."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conn_data import FILESYSTEMS, Target
from fsspec.implementations.memory import MemoryFileSystem

from connectors import (
    ConnectorError,
    DataValidationError,
    ExportExistsError,
    ExportVerificationError,
    open_source,
    read_condensed,
    write_condensed,
)


def _condensed(n: int = 12, k: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    return {
        "images": rng.standard_normal((n, 1, 5, 5)).astype(np.float32),
        "labels": np.arange(n) % k,
        "class_names": ["a", "b", "c"][:k],
        "soft_labels": rng.standard_normal((n, k)).astype(np.float32),
        "learned_lr": 0.0123,
        "source_uri": "s3://src/data?X-Amz-Signature=abc",
        "source_fingerprint": "fp",
        "policy": {"name": "default", "ipc": 4},
        "metadata": {"run": "r1"},
    }


@pytest.mark.parametrize("kind", FILESYSTEMS)
def test_round_trip_is_exact(make_target: Callable[[str], Target], kind: str) -> None:
    target = make_target(kind)
    data = _condensed()
    manifest = write_condensed(target.uri, storage_options=target.storage_options, **data)
    out = read_condensed(target.uri, storage_options=target.storage_options)
    np.testing.assert_array_equal(out.images, data["images"])
    np.testing.assert_array_equal(out.labels, data["labels"])
    np.testing.assert_array_equal(out.soft_labels, data["soft_labels"])
    assert out.learned_lr == 0.0123 and out.class_names == ("a", "b", "c")
    assert set(manifest["files"]) == {"data.parquet", "preview.png"}
    assert manifest["source"] == {"uri": "s3://src/data?<redacted>", "fingerprint": "fp"}
    assert out.manifest == json.loads(json.dumps(manifest))
    # The exported Parquet is itself a readable source (shape recorded in its metadata).
    src = open_source(f"{target.uri}/data.parquet", storage_options=target.storage_options)
    assert src.schema.image_shape == (1, 5, 5) and src.schema.dtype == "float32"


def test_reader_refuses_tampered_or_uncommitted_export(make_target: Callable[[str], Target]) -> None:
    target = make_target("memory")
    write_condensed(target.uri, **_condensed())
    data_path = f"{target.root}/data.parquet"
    good = target.fs.cat_file(data_path)
    target.fs.pipe_file(data_path, good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(ExportVerificationError, match="does not match the manifest") as info:
        read_condensed(target.uri)
    assert info.value.file == "data.parquet"
    target.fs.rm_file(f"{target.root}/manifest.json")
    with pytest.raises(ExportVerificationError, match=r"no manifest\.json"):
        read_condensed(target.uri)


def test_existing_export_needs_overwrite(make_target: Callable[[str], Target]) -> None:
    target = make_target("local")
    write_condensed(target.uri, **_condensed())
    with pytest.raises(ExportExistsError):
        write_condensed(target.uri, **_condensed())
    write_condensed(target.uri, overwrite=True, **_condensed(n=6))
    assert read_condensed(target.uri).images.shape[0] == 6


def test_bad_input_writes_nothing(make_target: Callable[[str], Target]) -> None:
    target = make_target("local")
    data = _condensed()
    data["images"][5, 0, 2, 2] = np.nan
    with pytest.raises(DataValidationError, match="NaN or inf") as info:
        write_condensed(f"{target.uri}/out", **data)
    assert info.value.row == 5
    assert not target.fs.exists(f"{target.root}/out")
    with pytest.raises(DataValidationError, match="outside the class list"):
        write_condensed(f"{target.uri}/out", **{**_condensed(), "labels": np.full(12, 3)})
    assert not target.fs.exists(f"{target.root}/out")


class FullDiskFS(MemoryFileSystem):
    """An in-memory filesystem that runs out of space after ``limit`` bytes (a real write failure)."""

    def __init__(self, limit: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit, self.used = limit, 0

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        if self.used + len(value) > self.limit:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        self.used += len(value)
        super().pipe_file(path, value, mode=mode, **kwargs)


def test_failed_write_leaves_no_accepted_export(make_target: Callable[[str], Target]) -> None:
    root = make_target("memory").root
    data = _condensed()
    fs = FullDiskFS(limit=len(_data_parquet_size_probe(data)) + 10, skip_instance_cache=True)
    with pytest.raises(ConnectorError, match="No space left"):
        write_condensed(root, filesystem=fs, **data)
    assert fs.find(root) == []  # the partial data.parquet was removed
    with pytest.raises(ExportVerificationError):
        read_condensed(root, filesystem=fs)


def test_write_into_unwritable_location_fails_cleanly(make_target: Callable[[str], Target]) -> None:
    target = make_target("local")
    target.fs.pipe_file(f"{target.root}/blocker", b"a file, not a folder")
    with pytest.raises(ConnectorError):
        write_condensed(f"{target.uri}/blocker/export", **_condensed())
    assert target.fs.find(target.root) == [f"{target.root}/blocker"]


@pytest.mark.s3
def test_write_to_missing_bucket_fails_cleanly(s3_server: Any) -> None:
    with pytest.raises(ConnectorError):
        write_condensed(
            "s3://no-such-bucket-xyz/export", storage_options=s3_server.storage_options, **_condensed()
        )


def _data_parquet_size_probe(data: dict[str, Any]) -> bytes:
    probe = MemoryFileSystem(skip_instance_cache=True)
    write_condensed("/probe-size", filesystem=probe, overwrite=True, **data)
    blob = probe.cat_file("/probe-size/data.parquet")
    probe.rm("/probe-size", recursive=True)
    return blob
