"""A source over the local runtime's memory budget is read into a file mapping, with an in-memory run's results."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.datasets import load_digits

import pad_sdk
from pad_sdk.errors import ConfigError, DataError
from pad_sdk.runtime import LocalRuntime, resolve_runtime

DIGITS = load_digits()


def _write(path: Path, images: np.ndarray, labels: np.ndarray, split: np.ndarray | None = None) -> str:
    flat = images.reshape(len(images), -1)
    columns = {"image": pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1]),
               "label": pa.array(labels)}
    if split is not None:
        columns["split"] = pa.array(split)
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path / "data.parquet", row_group_size=500)
    return str(path)


def _digits_source(tmp_path: Path, split: bool = False) -> tuple[str, dict[str, str]]:
    pixels = (DIGITS.images * 255 / 16).astype(np.uint8)
    names = np.where(np.arange(len(pixels)) % 5 == 0, "test", "train") if split else None
    return _write(tmp_path / "source", pixels, DIGITS.target, names), ({"split_column": "split"} if split else {})


def _load(runtime: LocalRuntime, uri: str, options: dict[str, str]) -> pad_sdk.data.RawData:
    return runtime.load(uri, holdout_fraction=0.2, seed=0, storage_options=None, open_kwargs=options)


@pytest.mark.parametrize("split", [False, True], ids=["stratified-holdout", "split-column"])
def test_a_source_over_the_budget_is_mapped_with_the_same_rows(tmp_path: Path, split: bool) -> None:
    uri, options = _digits_source(tmp_path, split)
    folder = tmp_path / "mapped"
    memory, mapped = _load(LocalRuntime(), uri, options), _load(LocalRuntime(0, str(folder)), uri, options)

    assert not memory.train_images.mapped and mapped.train_images.mapped and mapped.test_images.mapped
    assert mapped.source["held"] == "file mapping" and "held" not in memory.source
    assert mapped.train_images.pixels.dtype == torch.uint8  # the source's dtype, as in memory
    for a, b in ((memory.train_images, mapped.train_images), (memory.test_images, mapped.test_images)):
        assert a.shape == b.shape and a.nbytes == b.nbytes
        assert torch.equal(a.materialise(), b.materialise())
    assert torch.equal(memory.train_labels, mapped.train_labels)
    assert torch.equal(memory.test_labels, mapped.test_labels)
    assert os.listdir(folder) == []  # unlinked once mapped: nothing to clean up, even after a crash


def test_a_mapped_run_gives_the_in_memory_condensed_set(tmp_path: Path) -> None:
    uri, _ = _digits_source(tmp_path)
    settings = dict(ipc=2, preset="tiny", seed=0, evaluate=False, overrides={"distill": {"iterations": 10}})
    memory = pad_sdk.distill(uri, **settings)  # type: ignore[arg-type]
    mapped = pad_sdk.distill(uri, runtime=LocalRuntime(data_memory_gib=0, data_dir=str(tmp_path / "m")),
                             **settings)  # type: ignore[arg-type]
    assert torch.equal(memory.condensed.images, mapped.condensed.images)
    assert memory.loss_history == mapped.loss_history


def test_a_bad_row_past_the_first_batch_is_named_by_its_row_id_and_nothing_is_left(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (5000, 1, 2, 2)).astype(np.int16)
    images[4321, 0, 1, 0] = 300  # checked where the pixels are stored, a batch of 4096 rows at a time
    uri = _write(tmp_path / "bad", images, np.arange(5000) % 2)
    folder = tmp_path / "mapped"
    with pytest.raises(DataError, match="images row 4321 has integer pixel values outside") as raised:
        _load(LocalRuntime(0, str(folder)), uri, {})
    assert raised.value.row == 4321
    assert os.listdir(folder) == []


def test_a_data_dir_that_cannot_be_written_is_a_config_error(tmp_path: Path) -> None:
    uri, _ = _digits_source(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(ConfigError, match="data_dir") as raised:
        _load(LocalRuntime(0, str(tmp_path / "a-file" / "data")), uri, {})
    assert raised.value.field == "data_dir"


def test_the_budget_is_a_checked_setting() -> None:
    with pytest.raises(ConfigError, match="data_memory_gib"):
        LocalRuntime(data_memory_gib=-1)
    runtime = resolve_runtime("local", data_memory_gib=0.5, data_dir="/tmp")
    assert isinstance(runtime, LocalRuntime) and runtime.data_memory_gib == 0.5
    with pytest.raises(ConfigError, match="num_workers"):
        resolve_runtime("local", num_workers=2)


def test_node_files_are_written_once_for_concurrent_readers_and_removed_by_key(tmp_path: Path) -> None:
    import threading

    import structlog

    import connectors
    from pad_sdk.disk_data import node_mapped, read_mapped, remove_node_files

    uri, _ = _digits_source(tmp_path)
    folder = tmp_path / "node"
    results: list[pad_sdk.data.SplitRows] = []
    with structlog.testing.capture_logs() as logs:
        readers = [threading.Thread(target=lambda: results.append(node_mapped(connectors.open_source(uri), None,
                                                                              folder, "run1")))
                   for _ in range(4)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
    assert len(results) == 4 and sum(r["event"] == "data.node_file_written" for r in logs) == 1  # one writer
    private = read_mapped(connectors.open_source(uri), None, tmp_path)
    for rows in results:
        assert rows.images.mapped and torch.equal(rows.images.materialise(), private.images.materialise())
        assert np.array_equal(rows.labels, private.labels)
    assert remove_node_files(folder, "other") == 0 and len(os.listdir(folder)) == 3  # pixels, layout, lock
    assert remove_node_files(folder, "run1") == 3 and os.listdir(folder) == []
