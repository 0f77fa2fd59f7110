"""A source read by the Ray runtime: Ray Data streams its shards from S3 on the workers, the images stay on
the cluster (the driver holds shape-only tensors), and every stage gives the in-process numbers."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from ray_digits import single_threaded

import pad_sdk
from pad_sdk.api import load_source, prepare
from pad_sdk.errors import DataError
from pad_sdk.pipeline import Stages
from pad_sdk.presets import preset_config
from pad_sdk.runtime.ray import RayRuntime

pytestmark = [pytest.mark.ray, pytest.mark.s3, pytest.mark.slow]
PER_CLASS = 40


@pytest.fixture(scope="module")
def digits_on_s3(s3_server: Any, s3_bucket: Callable[[], str]) -> tuple[str, dict[str, Any]]:
    """400 digits with a group column, in row groups of 64 rows (so Ray Data reads several shards)."""
    from pad_sdk.demo import load_digits_arrays

    images, labels, _ = load_digits_arrays()
    keep = np.concatenate([np.flatnonzero(labels == c)[:PER_CLASS] for c in range(10)])
    table = pa.table({
        "image": pa.FixedSizeListArray.from_arrays(pa.array(images[keep].reshape(-1)), 64),
        "label": pa.array(labels[keep]),
        "site": pa.array(["north" if i % 3 else "south" for i in range(len(keep))]),
    })
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=64)
    bucket = s3_bucket()
    s3_server.filesystem().pipe_file(f"{bucket}/digits/data.parquet", buffer.getvalue())
    return f"s3://{bucket}/digits/", s3_server.storage_options


def test_the_driver_keeps_labels_and_shapes_and_tasks_give_the_local_numbers(
        two_nodes: Any, digits_on_s3: tuple[str, dict[str, Any]], tmp_path: Any) -> None:
    uri, options = digits_on_s3
    runtime = RayRuntime(num_workers=1, storage=str(tmp_path / "runs"))
    raw = runtime.load(uri, holdout_fraction=0.2, seed=0, storage_options=options,
                       open_kwargs={"group_column": "site"})
    local_raw = load_source(uri, holdout_fraction=0.2, seed=0, storage_options=options, group_column="site")

    # on the driver: real labels, groups and provenance; images as shape-only (meta) tensors
    assert raw.train_images.is_meta and raw.test_images.is_meta
    assert raw.train_images.shape == local_raw.train_images.shape == (320, 1, 8, 8)
    assert torch.equal(raw.train_labels, local_raw.train_labels)
    assert torch.equal(raw.test_labels, local_raw.test_labels)
    assert list(raw.test_groups) == list(local_raw.test_groups)  # type: ignore[arg-type]
    assert raw.source == local_raw.source and "key" not in str(raw.source).lower()

    data = runtime.prepare(raw, zca=False)
    local_data = prepare(local_raw, zca=False)
    assert data.train.images.is_meta and data.test.images.is_meta
    assert data.normalisation == local_data.normalisation

    # the stages that touch images run as tasks on the cluster copy, with the in-process results
    config = preset_config("tiny", 1, {"seed": 0})
    stages, local = Stages(config, data), Stages(config, local_data)
    with single_threaded():
        assert torch.equal(runtime.score(stages), local.score())
        job = stages.random_job()
        assert torch.equal(job.rows, local.random_job().rows)  # type: ignore[arg-type]
        on_cluster, here = runtime.evaluate(stages, job), local.evaluate(job)
    assert on_cluster.accuracies == here.accuracies
    assert torch.equal(on_cluster.example_correct, here.example_correct)  # type: ignore[arg-type]
    assert stages.timings["scoring"] > 0 and stages.timings["evaluation"] > 0


def _tiny_run(options: dict[str, Any], experts: int) -> dict[str, Any]:
    """``pad_sdk.distill`` keywords for a seconds-long run on the S3 digits (the same for Ray and in process)."""
    return dict(ipc=1, preset="tiny", storage_options=options, seed=0,
                overrides={"experts": {"num_experts": experts}, "distill": {"iterations": 3},
                           "evaluation": {"seeds": 1, "epochs": 5}})


def test_distill_from_s3_with_ray_gives_the_in_process_result(
        two_nodes: Any, digits_on_s3: tuple[str, dict[str, Any]], tmp_path: Any) -> None:
    uri, options = digits_on_s3
    settings = _tiny_run(options, experts=1)
    runtime = RayRuntime(num_workers=1, storage=str(tmp_path / "runs"), torch_threads=1)
    on_ray = pad_sdk.distill(uri, runtime=runtime, **settings)
    with single_threaded():
        here = pad_sdk.distill(uri, **settings)
    assert runtime.report.experts_trained == [0]
    assert torch.equal(on_ray.condensed.images, here.condensed.images)
    assert on_ray.accuracy is not None and here.accuracy is not None
    assert on_ray.accuracy.condensed.accuracies == here.accuracy.condensed.accuracies
    assert on_ray.accuracy.full is not None and here.accuracy.full is not None
    assert on_ray.accuracy.full.accuracies == here.accuracy.full.accuracies
    assert on_ray.source == here.source


def test_a_data_error_in_a_cluster_task_is_raised_as_itself(two_nodes: Any, tmp_path: Any) -> None:
    import ray

    from pad_sdk.api import RawData
    from pad_sdk.runtime._ray_data import ClusterRaw, shape_only

    images, labels = torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long)
    real = RawData(images, labels, images, labels, ("zero", "one"), {"uri": "memory://x"})
    outline = ClusterRaw(shape_only(images), labels, shape_only(images), labels, ("zero", "one"), {"uri": "memory://x"},
                         ref=ray.put(real))
    runtime = RayRuntime(num_workers=1, storage=str(tmp_path / "runs"))
    with pytest.raises(DataError, match=r"classes \['one'\] have no training examples") as caught:
        runtime.prepare(outline, zca=False)
    assert "RayTaskError" not in str(caught.value) and "Traceback" not in str(caught.value)


def test_an_export_reads_in_ray_data_as_it_is(ray_cluster: Any, tmp_path: Any) -> None:
    import connectors

    rng = np.random.default_rng(0)
    images = rng.standard_normal((5, 1, 2, 3)).astype(np.float32)
    connectors.write_condensed(str(tmp_path / "export"), images=images, labels=np.array([1, 0, 1, 0, 1]),
                               class_names=["no", "yes"], soft_labels=rng.standard_normal((5, 2)).astype(np.float32))
    rows = ray_cluster.data.read_parquet(str(tmp_path / "export" / "data.parquet")).take_all()
    assert [int(r["label"]) for r in rows] == [1, 0, 1, 0, 1]
    np.testing.assert_array_equal(np.stack([r["image"] for r in rows]), images.reshape(5, -1))


def test_a_source_over_the_budget_is_mapped_on_each_node_with_the_in_memory_result(
        two_nodes: Any, digits_on_s3: tuple[str, dict[str, Any]], tmp_path: Any) -> None:
    uri, options = digits_on_s3
    settings = _tiny_run(options, experts=2)
    folder = tmp_path / "node-data"
    runtime = RayRuntime(num_workers=1, storage=str(tmp_path / "runs"), torch_threads=1, data_memory_gib=0,
                         data_dir=str(folder))
    try:
        raw = runtime.load(uri, holdout_fraction=0.2, seed=0, storage_options=options, open_kwargs={})
        assert raw.train_images.is_meta and raw.source["held"] == "file mapping on each node"
        assert runtime.prepare(raw, zca=False).train.images.is_meta  # the driver never holds the images
        mapped = pad_sdk.distill(uri, runtime=runtime, **settings)
        written = sorted(path.suffix for path in folder.iterdir())
    finally:
        runtime.shutdown()
    with single_threaded():
        here = pad_sdk.distill(uri, **settings)
    # both nodes share this machine's folder: one copy, written by the first task that needed it
    assert written == [".layout", ".lock", ".pixels"]
    assert list(folder.iterdir()) == []  # removed on every node at shutdown
    assert mapped.source["held"] == "file mapping on each node"
    assert torch.equal(mapped.condensed.images, here.condensed.images)
    assert mapped.accuracy is not None and here.accuracy is not None
    assert mapped.accuracy.condensed.accuracies == here.accuracy.condensed.accuracies
