"""Starting or joining a Ray cluster, and mapping an fsspec storage URL to what Ray Train accepts.

Everything here was measured on Ray 2.60 (DESIGN.md section 7): Ray binds the host's address unless
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, enables token auth (and writes a token file) unless
``RAY_AUTH_MODE=disabled``, and Train V2 polls its workers every 2 s unless told otherwise.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import fsspec
import structlog

log = structlog.get_logger(__name__)

# Set (as defaults: a user's own value wins) before ray.init, so raylets and workers inherit them.
CLUSTER_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # bind 127.0.0.1 for an embedded cluster, not all interfaces
    "RAY_AUTH_MODE": "disabled",  # no token file written to the user's home for a throw-away local cluster
    "RAY_USAGE_STATS_ENABLED": "0",
}
# Train V2 knobs: a 0.25 s controller poll saves ~9 s per fit; the watcher and metrics only add noise on CPU.
TRAIN_ENV = {
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
}
OBJECT_STORE_BYTES = 256 * 1024**2
# Read by TorchTrainer.fit() in the driver and passed on to its controller (Ray 2.60: default 60 s).
START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"


@contextmanager
def scoped_env(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` for the duration of the block; the previous value (or none) after it."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def mute_placement_group_cleaner() -> None:
    """Worker set-up hook: without ``ray[default]`` there is no State API, and Train V2's placement group
    cleaner logs a failed state query about once a second for the whole run (harmless, STACK_NOTES G4)."""
    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)


def set_default_env(values: Mapping[str, str]) -> None:
    for name, value in values.items():
        os.environ.setdefault(name, value)


def apply_cluster_env() -> None:
    """Set the loopback/quiet defaults before a cluster starts in this process.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when ``ray`` is imported; if it was imported
    before (by the user, or Ray Data in the connectors), the cached flag is brought in line with the
    environment, or the new cluster would bind the host's address on all interfaces.
    """
    set_default_env(CLUSTER_ENV)
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0":
        constants.ENABLE_RAY_CLUSTER = False  # type: ignore[attr-defined]


@dataclass
class ClusterHandle:
    """The Ray connection a runtime uses; ``owned`` when this process started the cluster."""

    owned: bool
    address: str | None

    def shutdown(self) -> None:
        """Shut the cluster down if (and only if) this process started it."""
        import ray

        if self.owned and ray.is_initialized():
            ray.shutdown()
            log.info("ray.shutdown")
        self.owned = False


def connect(address: str | None, *, num_cpus: int | None, temp_dir: str,
            object_store_bytes: int | None = None) -> ClusterHandle:
    """Join ``address`` (or ``RAY_ADDRESS``), reuse an already-initialised Ray, or start an embedded cluster."""
    set_default_env(TRAIN_ENV)
    target = address or os.environ.get("RAY_ADDRESS")
    if not target:
        apply_cluster_env()  # before ``import ray`` where possible
    import ray

    if ray.is_initialized():
        return ClusterHandle(owned=False, address=address)
    runtime_env = {"worker_process_setup_hook": "pad_sdk.runtime._ray_env.mute_placement_group_cleaner"}
    if target:
        ray.init(address=target, runtime_env=runtime_env, log_to_driver=False)
        log.info("ray.joined", address=target)
        return ClusterHandle(owned=False, address=target)
    os.makedirs(temp_dir, exist_ok=True)
    ray.init(
        num_cpus=num_cpus, include_dashboard=False, object_store_memory=object_store_bytes or OBJECT_STORE_BYTES,
        _temp_dir=temp_dir,
        runtime_env=runtime_env, log_to_driver=False,
    )
    log.info("ray.started", num_cpus=num_cpus, temp_dir=temp_dir)
    return ClusterHandle(owned=True, address=None)


def ray_temp_dir(storage_root: str | None) -> str:
    """Ray's session directory: under a local storage root when its path is short enough for Ray's unix
    sockets (about 107 bytes, and Ray appends ~50), else under the system temp directory."""
    if storage_root is not None and len(storage_root) < 48:
        return os.path.join(storage_root, "ray-tmp")
    return os.path.join(tempfile.gettempdir(), "pad-sdk-ray-tmp")


@dataclass(frozen=True)
class Storage:
    """A shared storage prefix as fsspec sees it (for the trajectory store) and as Ray Train needs it."""

    url: str
    storage_options: Mapping[str, Any]

    def __post_init__(self) -> None:
        # a relative local path would name another directory in a worker started elsewhere
        if "://" not in self.url and not os.path.isabs(self.url):
            object.__setattr__(self, "url", os.path.abspath(self.url))

    @property
    def is_local(self) -> bool:
        fs, _ = fsspec.core.url_to_fs(self.url, **dict(self.storage_options))
        return "file" in _protocols(fs)

    def join(self, *parts: str) -> str:
        return "/".join([self.url.rstrip("/"), *parts])

    def local_root(self) -> str | None:
        if not self.is_local:
            return None
        _, root = fsspec.core.url_to_fs(self.url)
        return str(root)

    def for_ray_train(self, *parts: str) -> tuple[str, Any]:
        """(storage_path, storage_filesystem) for ``RunConfig``: a plain path for local storage; otherwise the
        fsspec filesystem wrapped for pyarrow, so the same storage options (endpoint, keys) apply."""
        fs, root = fsspec.core.url_to_fs(self.join(*parts), **dict(self.storage_options))
        if "file" in _protocols(fs):
            os.makedirs(root, exist_ok=True)
            return str(root), None
        import pyarrow.fs as pafs

        fs.makedirs(root, exist_ok=True)
        return str(root), pafs.PyFileSystem(pafs.FSSpecHandler(fs))


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
