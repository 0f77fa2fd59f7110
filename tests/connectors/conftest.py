"""Filesystem targets for the conformance suite: local files, fsspec memory, S3 on the moto server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import fsspec
import pytest
from conn_data import Target

# The `datasets` library (imported lazily) writes test repositories: never online, no progress bars.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="module")
def make_target(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], Target]]:
    """Factory: a fresh, empty dataset root on the named filesystem (each call gives a new root)."""
    tmp_path = tmp_path_factory.mktemp("targets")
    memory_roots: list[str] = []

    def make(kind: str) -> Target:
        if kind == "local":
            root = tmp_path / uuid.uuid4().hex[:8]
            root.mkdir()
            return Target(kind, fsspec.filesystem("file"), str(root), str(root), None)
        if kind == "memory":
            root = f"/{uuid.uuid4().hex}"
            memory_roots.append(root)
            return Target(kind, fsspec.filesystem("memory"), root, f"memory://{root}", None)
        if kind == "s3":
            server = request.getfixturevalue("s3_server")
            bucket = request.getfixturevalue("s3_bucket")()
            return Target(
                kind, server.filesystem(), f"{bucket}/data", f"s3://{bucket}/data", server.storage_options
            )
        raise ValueError(kind)

    yield make
    mem = fsspec.filesystem("memory")
    for root in memory_roots:
        if mem.exists(root):
            mem.rm(root, recursive=True)
