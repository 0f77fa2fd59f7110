"""One conformance suite that every layout runs on every filesystem (local, memory, S3 on moto)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from conn_data import FILESYSTEMS, LAYOUTS, Expected, Target, build

from connectors import open_source


@pytest.fixture(
    scope="module",
    params=[(lay, fs) for lay in LAYOUTS for fs in FILESYSTEMS],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def dataset(request: pytest.FixtureRequest, make_target: Callable[[str], Target]) -> tuple[Target, Expected]:
    layout, kind = request.param
    target = make_target(kind)
    expected = build(layout, target.fs, target.root)
    return target, expected


def _open(target: Target, expected: Expected):  # type: ignore[no-untyped-def]
    kwargs = dict(expected.open_kwargs)
    file = kwargs.pop("_file", None)
    uri = f"{target.uri}/{file}" if file else target.uri
    return open_source(uri, storage_options=target.storage_options, **kwargs)


def test_schema(dataset: tuple[Target, Expected]) -> None:
    target, exp = dataset
    schema = _open(target, exp).schema
    assert schema.image_shape == exp.images.shape[1:]
    assert schema.channels == exp.images.shape[1]
    assert schema.dtype == "uint8"
    assert schema.num_rows == len(exp.labels)
    assert schema.class_names == exp.class_names
    assert schema.class_counts == tuple(np.bincount(exp.labels, minlength=len(exp.class_names)))
    assert schema.stored_bytes > 0
    assert schema.splits == (None if exp.splits is None else tuple(sorted(exp.splits)))
    if exp.splits is not None:
        assert dict(zip(schema.splits or (), schema.split_counts or (), strict=True)) == exp.splits
    if exp.groups is not None:
        assert schema.group_values == tuple(sorted(set(exp.groups.tolist())))
    # The fingerprint is stable across opens and the URI carries no credentials.
    assert _open(target, exp).schema.fingerprint == schema.fingerprint
    assert "testing" not in schema.uri


def test_streams_all_rows_in_order(dataset: tuple[Target, Expected]) -> None:
    target, exp = dataset
    batches = list(_open(target, exp).iter_batches(batch_size=7))
    assert [len(b) for b in batches[:-1]] == [7] * (len(batches) - 1)
    images = np.concatenate([b.images for b in batches])
    np.testing.assert_array_equal(images, exp.images)
    np.testing.assert_array_equal(np.concatenate([b.labels for b in batches]), exp.labels)
    np.testing.assert_array_equal(np.concatenate([b.row_ids for b in batches]), np.arange(len(exp.labels)))
    assert all(b.labels.dtype == np.int64 and b.images.ndim == 4 for b in batches)
    if exp.groups is not None:
        np.testing.assert_array_equal(np.concatenate([b.groups for b in batches]), exp.groups)


def test_rows_subset_and_read_all(dataset: tuple[Target, Expected]) -> None:
    target, exp = dataset
    rows = np.array([1, 2, 13, 30, len(exp.labels) - 1])
    sub = _open(target, exp).read_all(rows=rows)
    np.testing.assert_array_equal(sub.row_ids, rows)
    np.testing.assert_array_equal(sub.images, exp.images[rows])
    np.testing.assert_array_equal(sub.labels, exp.labels[rows])


def test_split_selection(dataset: tuple[Target, Expected]) -> None:
    target, exp = dataset
    src = _open(target, exp)
    if exp.splits is None:
        assert src.schema.splits is None
        return
    for name, count in exp.splits.items():
        assert sum(len(b) for b in src.iter_batches(batch_size=4, split=name)) == count
