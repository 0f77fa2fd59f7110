"""Real-world layouts beyond the conformance suite: Hugging Face repositories as `datasets` writes them,
WebDataset shards, and exports that `datasets` and pyarrow read as they are. Bad layouts give typed errors
that name the shard and the member."""

from __future__ import annotations

import io
import tarfile
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conn_data import hf_dataset, hf_parquet, make_images, png_bytes, tar_bytes

from connectors import (
    CorruptDataError,
    DataValidationError,
    SchemaError,
    SourceNotFoundError,
    open_source,
    write_condensed,
)

NAMES = ("cat", "dog", "eel")


def _write_split(path: Path, images: np.ndarray, labels: np.ndarray, names: tuple[str, ...] = NAMES) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(hf_parquet(hf_dataset(images, labels, names)))


def _repo(root: Path, layout: str, counts: dict[str, int], shape: tuple[int, int, int] = (1, 6, 6)) -> dict:
    """A repository with ``counts`` rows per split in ``layout`` ("{split}" is replaced); its arrays."""
    arrays = {}
    for seed, (split, n) in enumerate(counts.items()):
        images, labels = make_images(n, shape, seed), np.arange(n) % len(NAMES)
        _write_split(root / layout.format(split=split), images, labels)
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize(
    "layout",
    ["data/{split}-00000-of-00001.parquet", "{split}/0000.parquet", "{split}-00000-of-00001.parquet"],
)
def test_hf_repository_read_from_its_root_with_names_and_splits(tmp_path: Path, layout: str) -> None:
    arrays = _repo(tmp_path, layout, {"train": 14, "validation": 5, "test": 6})
    src = open_source(str(tmp_path))
    schema = src.schema
    assert schema.format == "huggingface"
    assert schema.class_names == NAMES  # from the ClassLabel feature, not "0".."2"
    assert dict(zip(schema.splits or (), schema.split_counts or (), strict=True)) == {
        "train": 14, "validation": 5, "test": 6}
    for split, (images, labels) in arrays.items():
        batch = src.read_all(split=split)
        np.testing.assert_array_equal(batch.images, images)
        np.testing.assert_array_equal(batch.labels, labels)


def test_hf_data_folder_and_several_shards_per_split(tmp_path: Path) -> None:
    images, labels = make_images(30, (3, 4, 4)), np.arange(30) % 3
    dataset = hf_dataset(images, labels, NAMES)
    for i in range(3):
        (tmp_path / "data").mkdir(exist_ok=True)
        shard = hf_parquet(dataset.shard(3, i, contiguous=True))
        (tmp_path / f"data/train-{i:05d}-of-00003.parquet").write_bytes(shard)
    _write_split(tmp_path / "data/test-00000-of-00001.parquet", images[:4], labels[:4])
    src = open_source(str(tmp_path / "data"))  # the data/ folder itself reads the same way
    assert src.schema.format == "huggingface" and src.schema.split_counts == (4, 30)
    np.testing.assert_array_equal(src.read_all(split="train").images, images)


def test_split_named_files_are_splits_not_shards_of_one_table(tmp_path: Path) -> None:
    _repo(tmp_path, "{split}.parquet", {"train": 8, "test": 4})
    src = open_source(str(tmp_path))
    assert src.schema.format == "huggingface" and src.schema.split_counts == (4, 8)


def test_hf_files_that_name_no_split_are_all_train(tmp_path: Path) -> None:
    _write_split(tmp_path / "data/00000.parquet", make_images(3, (1, 4, 4)), np.array([0, 1, 2]))
    _write_split(tmp_path / "data/00001.parquet", make_images(2, (1, 4, 4)), np.array([2, 2]))
    src = open_source(str(tmp_path))
    assert src.schema.format == "huggingface" and src.schema.splits == ("train",) and src.schema.num_rows == 5


def test_hf_image_feature_stored_as_a_path(tmp_path: Path) -> None:
    images = make_images(4, (1, 5, 5))
    (tmp_path / "images").mkdir()
    for i, img in enumerate(images):
        (tmp_path / f"images/{i}.png").write_bytes(png_bytes(img))
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(NAMES))})
    rows = {"image": [{"bytes": None, "path": f"images/{i}.png"} for i in range(4)], "label": [0, 1, 2, 0]}
    table = datasets.Dataset.from_dict(rows, features=features).data.table  # as `datasets` holds it
    (tmp_path / "data").mkdir()
    pq.write_table(table, tmp_path / "data/train-00000-of-00001.parquet")
    batch = open_source(str(tmp_path)).read_all()
    np.testing.assert_array_equal(batch.images, images)


def test_hf_split_missing_a_shard_or_with_none_names_it(tmp_path: Path) -> None:
    _repo(tmp_path / "a", "data/{split}-00000-of-00002.parquet", {"train": 6})
    with pytest.raises(SourceNotFoundError, match="missing 1 of its 2 shards") as err:
        _ = open_source(str(tmp_path / "a")).schema
    assert err.value.file is not None and err.value.file.endswith("data/train-00001-of-00002.parquet")
    _repo(tmp_path / "b", "{split}/0.parquet", {"train": 6})
    (tmp_path / "b/test").mkdir()
    (tmp_path / "b/test/README.txt").write_text("shards went missing")
    with pytest.raises(SourceNotFoundError, match="split 'test' has no shards") as err:
        _ = open_source(str(tmp_path / "b"), format="huggingface").schema
    assert err.value.file is not None and err.value.file.endswith("/test")


def test_hf_shards_with_mixed_image_sizes_name_the_shard_and_row(tmp_path: Path) -> None:
    _write_split(tmp_path / "data/train-00000-of-00002.parquet", make_images(4, (1, 6, 6)), np.arange(4) % 3)
    _write_split(tmp_path / "data/train-00001-of-00002.parquet", make_images(4, (1, 5, 5)), np.arange(4) % 3)
    with pytest.raises(DataValidationError, match="mixed image sizes") as err:
        list(open_source(str(tmp_path)).iter_batches(batch_size=3))
    assert err.value.file is not None and err.value.file.endswith("train-00001-of-00002.parquet")
    assert err.value.row == 4


def test_hf_file_without_a_split_name_is_refused(tmp_path: Path) -> None:
    _repo(tmp_path, "data/{split}-00000-of-00001.parquet", {"train": 4})
    _write_split(tmp_path / "data/extra.parquet", make_images(2, (1, 6, 6)), np.array([0, 1]))
    with pytest.raises(SchemaError, match="cannot tell this file's split") as err:
        _ = open_source(str(tmp_path)).schema
    assert err.value.file is not None and err.value.file.endswith("data/extra.parquet")


# -- WebDataset ------------------------------------------------------------------------------------------
def _shard(path: Path, images: np.ndarray, labels: list[bytes | None], first: int = 0, ext: str = "cls") -> None:
    members: list[tuple[str, bytes]] = []
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        members.append((f"{first + i:06d}.png", png_bytes(img)))
        if label is not None:
            members.append((f"{first + i:06d}.{ext}", label))
    path.write_bytes(tar_bytes(members))


def test_webdataset_json_labels_with_class_names_and_a_folder_of_shards(tmp_path: Path) -> None:
    images = make_images(6, (1, 4, 4))
    _shard(tmp_path / "a.tar", images[:3], [b'{"label": "dog"}', b'{"label": "cat"}', b'{"label": "dog"}'], ext="json")
    _shard(tmp_path / "b.tar", images[3:], [b'{"label": "eel"}'] * 3, first=3, ext="json")
    src = open_source(str(tmp_path))
    assert src.schema.format == "webdataset" and src.schema.class_names == ("cat", "dog", "eel")
    batch = src.read_all()
    np.testing.assert_array_equal(batch.images, images)
    assert batch.labels.tolist() == [1, 0, 1, 2, 2, 2]
    # an explicit shard list, in the order given
    listed = open_source(str(tmp_path / "{b,a}.tar")).read_all()
    assert listed.labels.tolist() == [2, 2, 2, 1, 0, 1]


@pytest.mark.parametrize(
    ("labels", "error", "message", "member"),
    [
        ([b"1", b"two", b"0"], DataValidationError, "integer class id", "000001.cls"),
        ([b"1", None, b"0"], DataValidationError, "no label", "000001.png"),
        ([b"1", b"-3", b"0"], DataValidationError, "integer class id", "000001.cls"),
    ],
)
def test_webdataset_bad_labels_name_the_shard_and_member(
    tmp_path: Path, labels: list[bytes | None], error: type, message: str, member: str
) -> None:
    _shard(tmp_path / "shard-000.tar", make_images(3, (1, 4, 4)), [b"0", b"1", b"2"])
    _shard(tmp_path / "shard-001.tar", make_images(3, (1, 4, 4)), labels)
    with pytest.raises(error, match=message) as err:
        _ = open_source(str(tmp_path / "shard-{000..001}.tar")).schema
    assert err.value.file.endswith("shard-001.tar") and err.value.member == member
    assert "shard-001.tar" in str(err.value) and member in str(err.value)


def test_webdataset_mixed_image_sizes_name_the_shard_and_member(tmp_path: Path) -> None:
    _shard(tmp_path / "shard-0.tar", make_images(3, (1, 4, 4)), [b"0", b"1", b"2"])
    _shard(tmp_path / "shard-1.tar", make_images(3, (1, 5, 5)), [b"0", b"1", b"2"], first=3)
    with pytest.raises(DataValidationError, match="mixed image sizes") as err:
        list(open_source(str(tmp_path / "shard-{0..1}.tar")).iter_batches(batch_size=2))
    assert err.value.file.endswith("shard-1.tar") and err.value.member == "000003.png" and err.value.row == 3


def test_webdataset_missing_or_corrupt_shards(tmp_path: Path) -> None:
    _shard(tmp_path / "shard-000.tar", make_images(2, (1, 4, 4)), [b"0", b"1"])
    with pytest.raises(SourceNotFoundError) as missing:
        _ = open_source(str(tmp_path / "shard-{000..002}.tar")).schema
    assert missing.value.file.endswith("shard-001.tar")
    good = (tmp_path / "shard-000.tar").read_bytes()
    # members of 512-byte blocks: header, png, header, cls, header, png (2560..3072), ...
    for cut in (2600, 2100):  # inside the second image's bytes; inside its header
        (tmp_path / "shard-001.tar").write_bytes(good[:cut])
        with pytest.raises(CorruptDataError, match="tar shard") as corrupt:
            _ = open_source(str(tmp_path / "shard-{000..001}.tar")).schema
        assert corrupt.value.file.endswith("shard-001.tar")
    (tmp_path / "x.tar").write_bytes(b"\x01not a tar at all" * 40)
    with pytest.raises(CorruptDataError, match="not a readable tar shard"):
        _ = open_source(str(tmp_path / "x.tar")).schema


def test_webdataset_streams_in_bounded_memory(tmp_path: Path) -> None:
    n, shape = 1200, (3, 32, 32)
    images = make_images(n, shape)
    for s in range(3):
        rows = range(s * 400, (s + 1) * 400)
        _shard(tmp_path / f"s-{s}.tar", images[rows.start : rows.stop], [b"%d" % (i % 3) for i in rows], rows.start)
    src = open_source(str(tmp_path / "s-{0..2}.tar"))
    assert src.schema.num_rows == n
    tracemalloc.start()
    try:
        seen = 0
        for batch in src.iter_batches(batch_size=16):
            np.testing.assert_array_equal(batch.images, images[seen : seen + len(batch)])
            seen += len(batch)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == n
    # all images decoded are 3.7 MB; a streamed pass holds a few batches (48 KB each) plus read buffers
    assert peak < images.nbytes / 4, peak


# -- exports that other tools read -----------------------------------------------------------------------
def test_export_loads_in_datasets_with_class_label_names(tmp_path: Path) -> None:
    import datasets

    rng = np.random.default_rng(0)
    images = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    soft = rng.standard_normal((6, 3)).astype(np.float32)
    write_condensed(str(tmp_path / "export"), images=images, labels=np.array([0, 1, 2, 2, 1, 0]),
                    class_names=NAMES, soft_labels=soft)
    data_file = str(tmp_path / "export/data.parquet")
    ds = datasets.load_dataset("parquet", data_files=data_file, split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.features["label"].names == list(NAMES)
    assert [ds.features["label"].int2str(v) for v in ds["label"]] == ["cat", "dog", "eel", "eel", "dog", "cat"]
    np.testing.assert_array_equal(np.asarray(ds["image"], dtype=np.float32), images.reshape(6, -1))
    np.testing.assert_array_equal(np.asarray(ds["soft_label"], dtype=np.float32), soft)
    # plain pyarrow reads it too; the image shape is in the table's metadata
    table = pq.read_table(data_file)
    assert table.num_rows == 6 and table.schema.metadata[b"pad:image_shape"] == b"[1, 3, 3]"


def test_tar_members_in_folders_keep_their_keys(tmp_path: Path) -> None:
    images = make_images(2, (1, 4, 4))
    members = [("a/1.png", png_bytes(images[0])), ("a/1.cls", b"0"), ("b/1.png", png_bytes(images[1])),
               ("b/1.cls", b"1")]
    (tmp_path / "t.tar").write_bytes(tar_bytes(members))
    batch = open_source(str(tmp_path / "t.tar")).read_all()
    assert batch.labels.tolist() == [0, 1]
    with tarfile.open(fileobj=io.BytesIO((tmp_path / "t.tar").read_bytes())) as tar:
        assert len(tar.getnames()) == 4
