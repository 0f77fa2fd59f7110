"""Synthetic datasets in every supported layout, written through any fsspec filesystem."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.spec import AbstractFileSystem
from PIL import Image

CLASSES = ("cat", "dog", "eel")
FILESYSTEMS = ("local", "memory", "s3")


@dataclass(frozen=True)
class Target:
    """Where a test dataset lives: ``fs`` + backend ``root`` for writing, ``uri`` + options for reading."""

    kind: str
    fs: AbstractFileSystem
    root: str
    uri: str
    storage_options: dict[str, Any] | None

    def child(self, name: str) -> Target:
        return Target(self.kind, self.fs, f"{self.root}/{name}", f"{self.uri}/{name}", self.storage_options)


@dataclass
class Expected:
    """What a reader must yield: images (N, C, H, W), labels (N,) ids, in row order."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    splits: dict[str, int] | None = None
    groups: np.ndarray | None = None
    open_kwargs: dict[str, Any] = field(default_factory=dict)


def make_images(n: int, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """(n, C, H, W) uint8 random images."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def png_bytes(img: np.ndarray) -> bytes:
    """(C, H, W) uint8 -> PNG bytes."""
    arr = img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def write_parquet(fs: AbstractFileSystem, path: str, table: pa.Table, row_group_size: int = 16) -> None:
    with fs.open(path, "wb") as f:
        pq.write_table(table, f, row_group_size=row_group_size)


def idx_bytes(arr: np.ndarray, compress: bool = True) -> bytes:
    """uint8 array -> IDX file bytes (gzip-compressed by default)."""
    head = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    raw = head + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    return gzip.compress(raw, mtime=0) if compress else raw


def build(layout: str, fs: AbstractFileSystem, root: str, n: int = 45) -> Expected:
    """Write ``layout`` under ``root`` on ``fs``; return what a reader must see."""
    labels = np.arange(n) % len(CLASSES)
    fs.makedirs(root, exist_ok=True)
    if layout in EXTRA_LAYOUTS:
        return EXTRA_LAYOUTS[layout](fs, root, labels)
    if layout == "parquet_png":  # two shards, string labels, a group column, PNG bytes
        images = make_images(n, (1, 8, 8))
        groups = np.array(["eu", "us", "asia"])[(np.arange(n) // 5) % 3]
        half = n // 2
        for i, sl in enumerate((slice(0, half), slice(half, n))):
            table = pa.table(
                {
                    "img": pa.array([png_bytes(x) for x in images[sl]], pa.binary()),
                    "cls": pa.array([CLASSES[y] for y in labels[sl]]),
                    "region": pa.array(groups[sl]),
                }
            )
            write_parquet(fs, f"{root}/part-{i}.parquet", table)
        return Expected(
            images,
            labels,
            CLASSES,
            groups=groups,
            open_kwargs={"image_column": "img", "label_column": "cls", "group_column": "region"},
        )
    if layout == "parquet_hf":  # Hugging Face image struct {bytes, path}, RGB, int labels
        images = make_images(n, (3, 6, 5))
        struct_arr = pa.array(
            [{"bytes": png_bytes(x), "path": f"{i}.png"} for i, x in enumerate(images)],
            pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
        )
        write_parquet(fs, f"{root}/train.parquet", pa.table({"image": struct_arr, "label": labels}))
        return Expected(images, labels, ("0", "1", "2"), open_kwargs={})
    if layout == "parquet_array":  # fixed-size numeric arrays with a split column
        images = make_images(n, (1, 7, 7))
        flat = pa.FixedSizeListArray.from_arrays(pa.array(images.reshape(-1)), 49)
        splits = np.where(np.arange(n) % 5 == 0, "test", "train")
        write_parquet(fs, f"{root}/data.parquet", pa.table({"image": flat, "label": labels, "split": splits}))
        return Expected(
            images,
            labels,
            ("0", "1", "2"),
            splits={"test": int((splits == "test").sum()), "train": int((splits == "train").sum())},
            open_kwargs={"split_column": "split"},
        )
    if layout == "imagefolder":
        images = make_images(n, (3, 5, 6))
        order = np.argsort(labels, kind="stable")  # readers list class folders in sorted order
        for i in range(n):
            fs.makedirs(f"{root}/{CLASSES[labels[i]]}", exist_ok=True)
            fs.pipe_file(f"{root}/{CLASSES[labels[i]]}/{i:04d}.png", png_bytes(images[i]))
        return Expected(images[order], labels[order], CLASSES, open_kwargs={})
    if layout == "idx":
        images = make_images(n, (1, 6, 6))
        n_train = n - 10
        for prefix, sl in (("train", slice(0, n_train)), ("t10k", slice(n_train, n))):
            fs.pipe_file(f"{root}/{prefix}-images-idx3-ubyte.gz", idx_bytes(images[sl, 0]))
            fs.pipe_file(f"{root}/{prefix}-labels-idx1-ubyte.gz", idx_bytes(labels[sl]))
        return Expected(
            images, labels, ("0", "1", "2"), splits={"test": 10, "train": n_train}, open_kwargs={}
        )
    if layout == "npz":
        images = make_images(n, (1, 5, 5))
        buf = io.BytesIO()
        np.savez(buf, x=images[:, 0], y=labels)
        fs.pipe_file(f"{root}/data.npz", buf.getvalue())
        return Expected(
            images,
            labels,
            ("0", "1", "2"),
            open_kwargs={"image_column": "x", "label_column": "y", "_file": "data.npz"},
        )
    raise ValueError(layout)


def build_hf_repo(fs: AbstractFileSystem, root: str, labels: np.ndarray) -> Expected:
    """A Hugging Face repository written by `datasets`: data/{split}-XXXXX-of-XXXXX.parquet."""
    n = len(labels)
    images = make_images(n, (3, 4, 6))
    n_train = n - 9
    for split, sl, shards in (("train", slice(0, n_train), 2), ("test", slice(n_train, n), 1)):
        dataset = hf_dataset(images[sl], labels[sl], CLASSES)
        for i in range(shards):
            path = f"{root}/data/{split}-{i:05d}-of-{shards:05d}.parquet"
            fs.makedirs(f"{root}/data", exist_ok=True)
            fs.pipe_file(path, hf_parquet(dataset.shard(shards, i, contiguous=True)))
    return Expected(images, labels, CLASSES, splits={"train": n_train, "test": n - n_train})


def build_webdataset(fs: AbstractFileSystem, root: str, labels: np.ndarray) -> Expected:
    """Three tar shards read through a brace pattern; .cls and .json labels."""
    n = len(labels)
    images = make_images(n, (3, 5, 4))
    per = -(-n // 3)
    for s in range(3):
        members: list[tuple[str, bytes]] = []
        for i in range(s * per, min(n, (s + 1) * per)):
            label = (f"{i:06d}.cls", b"%d" % labels[i]) if s < 2 else (f"{i:06d}.json", b'{"label": %d}' % labels[i])
            members += [(f"{i:06d}.png", png_bytes(images[i])), label]
        fs.pipe_file(f"{root}/shard-{s:03d}.tar", tar_bytes(members))
    return Expected(images, labels, ("0", "1", "2"), open_kwargs={"_file": "shard-{000..002}.tar"})


EXTRA_LAYOUTS = {"hf_repo": build_hf_repo, "webdataset": build_webdataset}


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A tar archive holding ``members`` (name, bytes) in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def hf_dataset(images: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> Any:
    """A `datasets.Dataset` with an ``Image`` and a ``ClassLabel`` feature, as the library builds it."""
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(names))})
    rows = {"image": [{"bytes": png_bytes(x), "path": None} for x in images], "label": labels.tolist()}
    return datasets.Dataset.from_dict(rows, features=features)


def hf_parquet(dataset: Any) -> bytes:
    """The Parquet bytes that `datasets` writes for ``dataset`` (as in a repository's data/ folder)."""
    buf = io.BytesIO()
    dataset.to_parquet(buf)
    return buf.getvalue()


LAYOUTS = ("parquet_png", "parquet_hf", "parquet_array", "imagefolder", "idx", "npz", "hf_repo", "webdataset")
