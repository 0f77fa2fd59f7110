"""Every bad-input case gets a typed error that names the problem (and exports write nothing)."""

from __future__ import annotations

import gzip
import importlib.util
import io
import socket
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest
from conn_data import Target, build, idx_bytes, make_images, png_bytes, write_parquet

import connectors
from connectors import (
    AccessDeniedError,
    CorruptDataError,
    DataValidationError,
    EmptyDatasetError,
    EndpointUnreachableError,
    InsufficientDataError,
    MissingBackendError,
    SchemaError,
    SourceNotFoundError,
    open_source,
    require_per_class,
)


@pytest.fixture
def mem(make_target: Callable[[str], Target]) -> Target:
    return make_target("memory")


def _png_table(images: list[np.ndarray], labels: list[int]) -> pa.Table:
    return pa.table({"image": pa.array([png_bytes(x) for x in images], pa.binary()), "label": labels})


def test_missing_image_column_lists_available(mem: Target) -> None:
    build("parquet_png", mem.fs, mem.root)
    with pytest.raises(SchemaError) as info:
        _ = open_source(mem.uri, label_column="cls").schema  # image column is "img", default is "image"
    assert info.value.column == "image"
    assert set(info.value.available) == {"img", "cls", "region"}
    assert "available columns: img, cls, region" in str(info.value)


def test_misnamed_label_column(mem: Target) -> None:
    build("parquet_hf", mem.fs, mem.root)
    with pytest.raises(SchemaError, match="label column 'lable' not found") as info:
        _ = open_source(mem.uri, label_column="lable").schema
    assert "label" in info.value.available


def test_undecodable_image_bytes(mem: Target) -> None:
    imgs = list(make_images(5, (1, 4, 4)))
    blobs = [png_bytes(x) for x in imgs]
    blobs[3] = b"\x89PNG not really"
    write_parquet(mem.fs, f"{mem.root}/d.parquet", pa.table({"image": pa.array(blobs), "label": [0] * 5}))
    with pytest.raises(DataValidationError, match="undecodable image bytes") as info:
        list(open_source(mem.uri).iter_batches(2))
    assert info.value.row == 3 and info.value.file is not None and info.value.file.endswith("d.parquet")


@pytest.mark.parametrize("other", [(1, 5, 4), (3, 4, 4)], ids=["size", "channels"])
def test_mixed_image_sizes_or_channels(mem: Target, other: tuple[int, int, int]) -> None:
    imgs = [*make_images(3, (1, 4, 4)), make_images(1, other)[0]]
    write_parquet(mem.fs, f"{mem.root}/d.parquet", _png_table(imgs, [0, 1, 0, 1]))
    with pytest.raises(DataValidationError, match="mixed image sizes or channel counts") as info:
        list(open_source(mem.uri).iter_batches(2))
    assert info.value.row == 3


def test_mixed_sizes_in_image_folder(make_target: Callable[[str], Target]) -> None:
    target = make_target("local")
    for i, shape in enumerate([(3, 4, 4), (3, 4, 4), (3, 6, 4)]):
        target.fs.makedirs(f"{target.root}/a", exist_ok=True)
        target.fs.pipe_file(f"{target.root}/a/{i}.png", png_bytes(make_images(1, shape)[0]))
    with pytest.raises(DataValidationError, match="mixed image sizes") as info:
        list(open_source(target.uri).iter_batches(8))
    assert info.value.file is not None and info.value.file.endswith("a/2.png")


def test_label_outside_class_list(mem: Target) -> None:
    write_parquet(mem.fs, f"{mem.root}/d.parquet", _png_table(list(make_images(4, (1, 4, 4))), [0, 1, 2, 1]))
    with pytest.raises(DataValidationError, match="outside the class list") as info:
        _ = open_source(mem.uri, class_names=["a", "b"]).schema
    assert info.value.value == "2"


def test_string_label_not_in_class_list(mem: Target) -> None:
    table = _png_table(list(make_images(2, (1, 4, 4))), [0, 0]).set_column(
        1, "label", pa.array(["cat", "yak"])
    )
    write_parquet(mem.fs, f"{mem.root}/d.parquet", table)
    with pytest.raises(DataValidationError, match="not in the class list"):
        _ = open_source(mem.uri, class_names=["cat", "dog"]).schema


def test_negative_label(mem: Target) -> None:
    write_parquet(mem.fs, f"{mem.root}/d.parquet", _png_table(list(make_images(4, (1, 4, 4))), [0, 1, -1, 1]))
    with pytest.raises(DataValidationError, match="negative label") as info:
        _ = open_source(mem.uri).schema
    assert info.value.row == 2 and info.value.value == "-1"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_float_images(mem: Target, bad: float) -> None:
    images = np.random.default_rng(0).random((6, 1, 3, 3), dtype=np.float32)
    images[4, 0, 1, 2] = bad
    buf = io.BytesIO()
    np.savez(buf, image=images, label=np.zeros(6, np.int64))
    mem.fs.pipe_file(f"{mem.root}/d.npz", buf.getvalue())
    with pytest.raises(DataValidationError, match="NaN or inf") as info:
        list(open_source(f"{mem.uri}/d.npz").iter_batches(4))
    assert info.value.row == 4


def test_empty_dataset(mem: Target) -> None:
    write_parquet(
        mem.fs,
        f"{mem.root}/d.parquet",
        pa.table({"image": pa.array([], pa.binary()), "label": pa.array([], pa.int64())}),
    )
    with pytest.raises(EmptyDatasetError):
        _ = open_source(mem.uri).schema


def test_class_with_fewer_examples_than_requested(mem: Target) -> None:
    build("parquet_png", mem.fs, mem.root)
    schema = open_source(mem.uri, image_column="img", label_column="cls").schema
    require_per_class(schema.class_counts, 15, schema.class_names)  # 15 per class: fine
    with pytest.raises(InsufficientDataError) as info:
        require_per_class(schema.class_counts, 16, schema.class_names, uri=schema.uri)
    assert (info.value.class_name, info.value.requested, info.value.available) == ("cat", 16, 15)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_parquet(mem: Target, damage: str) -> None:
    build("parquet_hf", mem.fs, mem.root)
    path = f"{mem.root}/train.parquet"
    data = mem.fs.cat_file(path)
    mem.fs.pipe_file(path, data[: len(data) // 2] if damage == "truncated" else b"PAR1" + b"\x00" * 64)
    with pytest.raises(CorruptDataError) as info:
        _ = open_source(mem.uri).schema
    assert info.value.file is not None and info.value.file.endswith("train.parquet")


@pytest.mark.parametrize("damage", ["truncated_gzip", "corrupt_gzip", "truncated_raw", "bad_magic"])
def test_corrupt_idx(mem: Target, damage: str) -> None:
    images, labels = make_images(50, (1, 6, 6))[:, 0], np.arange(50) % 3
    raw = idx_bytes(images, compress=False)
    data = {
        "truncated_gzip": gzip.compress(raw)[:-40],
        "corrupt_gzip": gzip.compress(raw)[:30] + b"\xff" * 200,
        "truncated_raw": raw[:-100],
        "bad_magic": b"\x12\x34" + raw[2:],
    }[damage]
    mem.fs.pipe_file(f"{mem.root}/train-images-idx3-ubyte", data)
    mem.fs.pipe_file(f"{mem.root}/train-labels-idx1-ubyte", idx_bytes(labels, compress=False))
    with pytest.raises(CorruptDataError):
        list(open_source(mem.uri, format="idx").iter_batches(16))


def test_truncated_npz(mem: Target) -> None:
    build("npz", mem.fs, mem.root)
    data = mem.fs.cat_file(f"{mem.root}/data.npz")
    mem.fs.pipe_file(f"{mem.root}/data.npz", data[: len(data) - 300])
    with pytest.raises(CorruptDataError):
        list(open_source(f"{mem.uri}/data.npz", image_column="x", label_column="y").iter_batches(8))


def test_huge_integer_label_is_refused_not_allocated(mem: Target) -> None:
    """Found by the corruption property test: one label 2**60 made a class list of 2**60 names."""
    write_parquet(mem.fs, f"{mem.root}/d.parquet", _png_table(list(make_images(3, (1, 4, 4))), [0, 1, 2**60]))
    with pytest.raises(DataValidationError, match="would make 1152921504606846977 classes") as info:
        _ = open_source(mem.uri).schema
    assert info.value.value == str(2**60) and info.value.column == "label"


def test_null_group_value_is_typed(mem: Target) -> None:
    table = _png_table(list(make_images(3, (1, 4, 4))), [0, 1, 0]).append_column("site", pa.array(["a", None, "b"]))
    write_parquet(mem.fs, f"{mem.root}/d.parquet", table)
    with pytest.raises(DataValidationError, match="missing") as info:
        _ = open_source(mem.uri, group_column="site").schema
    assert info.value.column == "site"


def test_shards_whose_column_types_differ(mem: Target) -> None:
    """Found by the property test: a flipped type byte made one shard's group column binary."""
    images = list(make_images(4, (1, 4, 4)))
    first = _png_table(images[:2], [0, 1]).append_column("site", pa.array(["a", "b"]))
    second = _png_table(images[2:], [0, 1]).append_column("site", pa.array([b"a", b"b"], pa.binary()))
    write_parquet(mem.fs, f"{mem.root}/part-0.parquet", first)
    write_parquet(mem.fs, f"{mem.root}/part-1.parquet", second)
    with pytest.raises(SchemaError, match="column 'site' is binary in this file but string") as info:
        _ = open_source(mem.uri, group_column="site").schema
    assert info.value.file is not None and info.value.file.endswith("part-1.parquet")


def test_damaged_zip_directory_is_corrupt_data(mem: Target) -> None:
    """Found by the property test: zipfile answered a damaged directory with a bare ValueError."""
    buf = io.BytesIO()
    np.savez(buf, image=make_images(3, (1, 4, 4)), label=np.zeros(3, np.int64))
    data = bytearray(buf.getvalue())
    data[-3] ^= 1  # the high byte of the central directory's offset
    mem.fs.pipe_file(f"{mem.root}/d.npz", bytes(data))
    with pytest.raises(CorruptDataError):
        _ = open_source(f"{mem.uri}/d.npz").schema


def test_missing_local_path(tmp_path: object) -> None:
    with pytest.raises(SourceNotFoundError):
        _ = open_source(f"{tmp_path}/nope.parquet").schema


@pytest.mark.s3
def test_missing_bucket_and_object(make_target: Callable[[str], Target]) -> None:
    target = make_target("s3")
    build("parquet_hf", target.fs, target.root)
    with pytest.raises(SourceNotFoundError):
        _ = open_source("s3://no-such-bucket-here/x.parquet", storage_options=target.storage_options).schema
    with pytest.raises(SourceNotFoundError):
        _ = open_source(f"{target.uri}/missing.parquet", storage_options=target.storage_options).schema


@pytest.mark.s3
def test_denied_access(make_target: Callable[[str], Target], monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.settings

    target = make_target("s3")
    build("parquet_hf", target.fs, target.root)
    # Switch moto's server (same process) to enforcing IAM: the dummy key is then unknown -> 403.
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    options = {**target.storage_options, "key": "AKIADENIED0000000000"}  # type: ignore[dict-item]
    with pytest.raises(AccessDeniedError):
        _ = open_source(f"{target.uri}/train.parquet", storage_options=options).schema


@pytest.mark.s3
def test_unreachable_endpoint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    options = {
        "key": "k",
        "secret": "s",
        "endpoint_url": f"http://127.0.0.1:{port}",
        "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
    }
    with pytest.raises(EndpointUnreachableError):
        _ = open_source("s3://bucket-x/data.parquet", storage_options=options).schema


def test_missing_backend_names_the_package() -> None:
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed")
    with pytest.raises(MissingBackendError, match="install gcsfs") as info:
        open_source("gs://bucket/data.parquet")
    assert info.value.package == "gcsfs"


def test_unknown_format_lists_valid_ones(mem: Target) -> None:
    with pytest.raises(SchemaError, match="valid: auto, parquet, imagefolder, idx, npz, huggingface, webdataset"):
        open_source(mem.uri, format="tfrecord")


def test_error_tree() -> None:
    for name in connectors.__all__:
        obj = getattr(connectors, name)
        if isinstance(obj, type) and name.endswith("Error"):
            assert issubclass(obj, connectors.ConnectorError)
