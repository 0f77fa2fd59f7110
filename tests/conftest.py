"""Shared fixtures: a local S3 server (moto, on 127.0.0.1) and a local Ray cluster (loopback only)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

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


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local Ray cluster bound to 127.0.0.1 (1 CPU, 256 MiB object store), shut down at session end."""
    ray = pytest.importorskip("ray")
    # Must be set before ray.init: loopback only, no auth token file, no usage stats (see STACK_NOTES).
    for name, value in {
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
    }.items():
        os.environ[name] = value
    temp_dir = tmp_path_factory.mktemp("ray")
    ray.init(
        num_cpus=1,
        include_dashboard=False,
        object_store_memory=256 * 1024**2,
        _temp_dir=str(temp_dir),
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
