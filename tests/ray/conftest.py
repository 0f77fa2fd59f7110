"""Fixtures of the Ray runtime tests: the digits case, its in-process reference, and a second node.

Every test here uses the session cluster of ``tests/conftest.py`` (``ray_nodes``): a 1-CPU head node
(the driver's) plus one 1-CPU worker node added here, so two Ray Train workers run on two nodes and a
test can kill one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ray_digits import CHECKPOINT_EVERY, Case, Reference, TwoWorkerRun, build_case, single_threaded

from pad_sdk.runtime import LocalRuntime
from pad_sdk.runtime.ray import RayRuntime
from pad_sdk.trajectories import TrajectoryStore


@pytest.fixture(scope="session")
def case() -> Case:
    return build_case()


@pytest.fixture(scope="session")
def reference(case: Case) -> Reference:
    local = LocalRuntime()
    with single_threaded():
        experts = local.train_experts(case.stages, case.plan, None)
        synthetic, history = local.distill(case.stages, experts)
        evaluation = local.evaluate_synthetic(case.stages, synthetic)
    return Reference(list(experts), synthetic, history, evaluation)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def two_nodes(ray_nodes: Any) -> Any:
    """The session cluster with one extra 1-CPU worker node (2 CPUs in all)."""
    if not ray_nodes.worker_nodes:
        ray_nodes.add_node(num_cpus=1, object_store_memory=128 * 1024**2)
    return ray_nodes


@pytest.fixture(scope="session")
def two_worker_run(two_nodes: Any, case: Case, reference: Reference, s3_server: Any,
                   s3_bucket: Callable[[], str]) -> TwoWorkerRun:
    """Experts and 2-worker distillation with everything (trajectories, checkpoints) on the local S3 server;
    expert 0 is put into the store beforehand, so only expert 1 should be trained."""
    bucket = s3_bucket()
    options = s3_server.storage_options
    store = TrajectoryStore(f"s3://{bucket}/trajectories", storage_options=options)
    store.initialise(case.stages.expert_header())
    store.save(0, reference.experts[0], seed=0)
    fs = s3_server.filesystem()
    etag = fs.info(f"{bucket}/trajectories/expert-00000.safetensors")["ETag"]
    runtime = RayRuntime(num_workers=2, storage=f"s3://{bucket}/runs", storage_options=options,
                         checkpoint_every=CHECKPOINT_EVERY)
    experts = runtime.train_experts(case.stages, case.plan, store)
    synthetic, history = runtime.distill(case.stages, experts)
    return TwoWorkerRun(runtime, synthetic, history, store, etag, fs, bucket)
