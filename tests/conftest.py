"""Shared fixtures: a local S3 server (moto, on 127.0.0.1) and a local Ray cluster (loopback only)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Every distill/sweep opens with a calibrated estimate (a few seconds per distinct network and settings in a
# process). The suite runs hundreds of small runs with many settings, so it switches the opening estimate off;
# the tests of the estimate, the budgets and the CLI's plan switch it back on (``estimate_on``), and the docs
# pages run with the default.
os.environ.setdefault("PAD_SDK_ESTIMATE", "off")

# Under pytest-xdist (make test: two workers on the machine's two cores) each worker trains with one thread:
# two workers each starting an OpenMP pool per core oversubscribe the cores, and a spinning pool that loses
# its core slows small networks many times over.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

S3_KEY = "testing"
S3_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """A running moto S3 server. ``storage_options`` are ready for fsspec / connectors."""

    endpoint_url: str

    @property
    def storage_options(self) -> dict[str, Any]:
        # Instances are cached by fsspec per options (client start-up costs ~0.5 s); listings are not,
        # so that a reader never sees a stale directory listing after a test wrote to the bucket.
        return {
            "key": S3_KEY,
            "secret": S3_KEY,
            "use_listings_cache": False,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": S3_REGION},
        }

    def filesystem(self) -> Any:
        """A fresh (uncached) s3fs instance, for tests that write fixtures."""
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options, skip_instance_cache=True)

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_KEY,
            region_name=S3_REGION,
        )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's standalone S3 server on a free loopback port (a real HTTP endpoint), for the session."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> Callable[[], str]:
    """Factory: creates a fresh, uniquely named bucket and returns its name."""

    def make() -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        s3_server.client().create_bucket(Bucket=name)
        return name

    return make


RAY_ENV = {
    # Must be set before the cluster starts: loopback only, no auth token file, no usage stats, and
    # Train V2 knobs that make a tiny fit take seconds instead of ~25 s (see STACK_NOTES).
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
}


@pytest.fixture(scope="session")
def ray_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A ``ray.cluster_utils.Cluster`` on 127.0.0.1 with a 1-CPU head node, connected to this process.

    Tests may add worker nodes (``ray_nodes.add_node(num_cpus=1)``) and remove them again to kill
    everything on them; the head node (the driver's) always stays.
    """
    for name, value in RAY_ENV.items():
        os.environ[name] = value
    ray = pytest.importorskip("ray")  # after the environment: Ray reads the loopback switch on import
    from ray.cluster_utils import Cluster

    from pad_sdk.runtime._ray_env import apply_cluster_env

    apply_cluster_env()  # in case an earlier test imported ray before the switch was set
    # A short path: Ray's socket paths under it must stay within AF_UNIX's 107 bytes (pytest-xdist's
    # per-worker base temp directories are long)
    temp_dir = Path(tempfile.mkdtemp(prefix="padray-"))
    # Cluster() records its address in $RAY_TMPDIR/ray/ray_current_cluster, where any plain ray.init() on
    # this machine would find (and join) it: keep that file in our temp directory.
    previous = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = str(temp_dir)
    (temp_dir / "ray").mkdir()
    try:
        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "object_store_memory": 256 * 1024**2, "include_dashboard": False,
                            "temp_dir": str(temp_dir)},
        )
    finally:
        if previous is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = previous
    ray.init(
        address=cluster.address,
        log_to_driver=False,
        # no State API without ray[default]: Train V2's placement group cleaner would log every second
        runtime_env={"worker_process_setup_hook": "pad_sdk.runtime._ray_env.mute_placement_group_cleaner"},
    )
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster(ray_nodes: Any) -> Any:
    """The connected local Ray cluster (1 CPU on the head node, 256 MiB object store), as the ``ray`` module."""
    import ray

    return ray


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Each test starts and ends with structlog's defaults.

    The CLI configures structlog globally (as a program should), printing to the stderr of the moment;
    in-process CLI tests would otherwise leave later tests logging into a closed capture stream.
    """
    import structlog

    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def estimate_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's default: every run opens with its estimate (the suite switches it off, see the top)."""
    monkeypatch.setenv("PAD_SDK_ESTIMATE", "on")


# "ray" as a word in a test's id: tests/ray/, test_cli_ray.py, test_ray_..., [ray.md]; not "array"
RAY_ID = re.compile(r"(?<![a-z])ray(?![a-z])")


def _uses_ray(item: pytest.Item) -> bool:
    return "ray" in item.keywords or "ray_nodes" in getattr(item, "fixturenames", ())


def _in_ray_group(nodeid: str) -> bool:
    """Tests of the session Ray cluster (and of Ray options). A docs page that uses Ray starts its own cluster
    in a subprocess: it runs beside the group, on the other worker, which has the time for it."""
    return RAY_ID.search(nodeid.lower()) is not None and not nodeid.startswith("tests/docs/")


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: absent without xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``make test`` runs two pytest-xdist workers (``-n 2``); every test whose id says "ray" goes to one of them.

    There is then one Ray cluster at a time (2 CPUs), whose session fixtures (cluster, second node, reference
    runs) are built once; those tests mostly wait on Ray (starts, health checks, restarts) while the other
    worker trains networks. (``--dist loadgroup`` would do this with markers, but xdist 3.8 sets a node id
    attribute that pytest 9 no longer reads; the scheduler hook is public.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class RayTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "ray" if _in_ray_group(nodeid) else nodeid

    return RayTogether(config, log)


# The Ray group is the suite's critical path: one worker runs it test after test, and its Ray processes (raylet,
# tasks, Train workers, started from that worker) wait on each other, so each of its tests took 3-5x as long
# beside the other worker's training as alone (2026-12-02: 57 s alone against 296 s in the suite; 134 s
# against 382 s). The other worker lowers its own priority when its first test is not a Ray test, so the Ray
# processes get the cores when they need them and the training tests take the rest. Mild (weight ~1/3 under
# full contention): the few wall-clock bounds outside the Ray group allow 2-10 s for milliseconds of work.
OTHER_WORKER_NICENESS = 5
_first_test_seen = False


def pytest_runtest_setup(item: pytest.Item) -> None:
    global _first_test_seen
    if _first_test_seen:
        return
    _first_test_seen = True
    if "PYTEST_XDIST_WORKER" in os.environ and not _in_ray_group(item.nodeid) and hasattr(os, "nice"):
        os.nice(OTHER_WORKER_NICENESS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The Ray group, the longest, comes first, so that it does not start last and finish alone. A test that
    uses the Ray cluster must say "ray" in its id, or the scheduler would start a second cluster."""
    unnamed = [item.nodeid for item in items if _uses_ray(item) and not _in_ray_group(item.nodeid)]
    if unnamed:
        raise pytest.UsageError(f"tests use the Ray cluster without 'ray' in their id: {unnamed}; rename them")
    items.sort(key=lambda item: not _in_ray_group(item.nodeid))  # stable: the order within each part is kept
