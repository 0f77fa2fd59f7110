"""Saving is atomic (issue 15): concurrent saves to one URL give one winner and a typed conflict, an
overwrite killed with SIGKILL leaves a readable export, and the manifest's metadata is verified."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import export_workers
import numpy as np
import pytest
import structlog
from conn_data import Target
from export_workers import condensed, writer_of
from fsspec.implementations.memory import MemoryFileSystem

from connectors import (
    ConnectorError,
    ExportConflictError,
    ExportExistsError,
    ExportVerificationError,
    read_condensed,
    write_condensed,
)
from connectors._commit import LOCK_NAME, STAGING_PREFIX


@contextlib.contextmanager
def racers(storage_options: dict[str, Any] | None) -> Iterator[Callable[[str], list[tuple[int, str]]]]:
    """Two writer processes that save to the URI they are given at the same moment (a barrier)."""
    ctx = mp.get_context("spawn")  # no fork of a process that runs a moto server thread
    barrier, results = ctx.Barrier(2), ctx.Queue()
    jobs = [ctx.Queue(), ctx.Queue()]
    procs = [
        ctx.Process(target=export_workers.race, args=(i, barrier, jobs[i], results, storage_options), daemon=True)
        for i in range(2)
    ]
    for proc in procs:
        proc.start()

    def run(uri: str) -> list[tuple[int, str]]:
        for queue in jobs:
            queue.put(uri)
        outcomes = [results.get(timeout=120) for _ in procs]
        assert {o[1] for o in outcomes} == {uri}
        return sorted((writer, outcome) for writer, _, outcome in outcomes)

    try:
        yield run
    finally:
        for queue in jobs:
            queue.put(None)
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


def _check_race(outcomes: list[tuple[int, str]], read: Callable[[], Any]) -> None:
    winners = [writer for writer, outcome in outcomes if outcome == "ok"]
    losers = [outcome for _, outcome in outcomes if outcome != "ok"]
    assert len(winners) == 1, outcomes  # before the fix: both "ok", and a torn export
    # The loser either lost the commit or the lock (conflict) or started after the winner had finished.
    assert losers[0] in ("ExportConflictError", "ExportExistsError"), outcomes
    assert writer_of(read()) == winners[0]


def test_concurrent_local_saves_have_one_winner(make_target: Callable[[str], Target]) -> None:
    target = make_target("local")
    with racers(None) as run:
        for round_ in range(6):
            uri = f"{target.uri}/race-{round_}"
            _check_race(run(uri), lambda uri=uri: read_condensed(uri))  # type: ignore[misc]
            leftovers = [p.name for p in Path(uri).iterdir() if p.name.startswith((".", "_"))]
            assert leftovers == [], leftovers  # no staging folder, temporary file or lock left


@pytest.mark.s3
def test_concurrent_s3_saves_have_one_winner(make_target: Callable[[str], Target]) -> None:
    target = make_target("s3")
    options = target.storage_options
    with racers(options) as run:
        for round_ in range(4):
            uri = f"{target.uri}/race-{round_}"
            _check_race(run(uri), lambda uri=uri: read_condensed(uri, storage_options=options))  # type: ignore[misc]
            names = [p.rsplit("/", 1)[-1] for p in target.fs.find(f"{target.root}/race-{round_}")]
            assert sorted(names) == ["data.parquet", "manifest.json", "preview.png"], names


def test_overwrite_killed_at_random_moments_leaves_a_readable_export(make_target: Callable[[str], Target]) -> None:
    target = make_target("local")
    uri = f"{target.uri}/export"
    write_condensed(uri, **condensed(1))  # the old good export
    rng = random.Random(15)
    seen = set()
    for trial in range(6):
        ready = Path(target.root) / f"ready-{trial}"
        proc = subprocess.Popen([sys.executable, export_workers.__file__, uri, str(ready)])
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():
                assert proc.poll() is None, "the writer died by itself"
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))  # somewhere inside one of its saves
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        seen.add(writer_of(read_condensed(uri)))  # complete, verified, one writer's data
    assert seen <= {1, 2}
    # The next save breaks the dead writer's lock and succeeds; its young leftovers are listed, not lost.
    with structlog.testing.capture_logs() as logs:
        write_condensed(uri, overwrite=True, **condensed(3))
    assert writer_of(read_condensed(uri)) == 3
    leftovers = sorted(p.name for p in Path(uri).iterdir() if p.name.startswith(STAGING_PREFIX))
    listed = [e for e in logs if e["event"] == "export_staging_present"]
    assert (listed[0]["staging"] if listed else []) == leftovers


def test_old_leftovers_are_removed_young_ones_listed(make_target: Callable[[str], Target]) -> None:
    target = make_target("memory")
    old, young = f"{STAGING_PREFIX}20200101T000000-0123456789ab", f"{STAGING_PREFIX}{_now_token()}"
    for name in (old, young):
        target.fs.pipe_file(f"{target.root}/{name}/data.parquet", b"partial")
    with structlog.testing.capture_logs() as logs:
        write_condensed(target.uri, **condensed(1))
    assert not target.fs.exists(f"{target.root}/{old}")
    assert target.fs.exists(f"{target.root}/{young}/data.parquet")
    assert [e["staging"] for e in logs if e["event"] == "export_staging_present"] == [[young]]


def _now_token() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-abcdefabcdef"


class FailingFS(MemoryFileSystem):
    """A memory filesystem whose writes to paths ending with ``fail_on`` fail (a real write error)."""

    def __init__(self, fail_on: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_on = fail_on

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        if path.endswith(self.fail_on):
            raise OSError(5, "Input/output error", path)
        super().pipe_file(path, value, mode=mode, **kwargs)


def test_overwrite_failing_before_its_commit_keeps_the_old_export(make_target: Callable[[str], Target]) -> None:
    root = make_target("memory").root  # memory filesystems share one store: FailingFS sees this export
    write_condensed(root, filesystem=MemoryFileSystem(), **condensed(1))
    fs = FailingFS("manifest.json", skip_instance_cache=True)
    with pytest.raises(ConnectorError, match="Input/output error"):
        write_condensed(root, filesystem=fs, overwrite=True, **condensed(2))
    assert writer_of(read_condensed(root, filesystem=fs)) == 1
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.find(root)) == ["data.parquet", "manifest.json", "preview.png"]


def test_overwrite_failing_after_its_commit_leaves_the_new_export(make_target: Callable[[str], Target]) -> None:
    """The final names cannot be written: the committed manifest still points at the complete staged files."""
    root = make_target("memory").root
    write_condensed(root, filesystem=MemoryFileSystem(), **condensed(1))
    fs = FailingFS(f"{root}/data.parquet", skip_instance_cache=True)
    manifest = write_condensed(root, filesystem=fs, overwrite=True, **condensed(2))
    assert manifest["files"]["data.parquet"]["path"].startswith(STAGING_PREFIX)
    assert writer_of(read_condensed(root, filesystem=fs)) == 2


@pytest.mark.parametrize(
    ("field", "edit"),
    [
        ("class_names", lambda m: m["class_names"].__setitem__(0, "edited")),
        ("learned_lr", lambda m: m.__setitem__("learned_lr", 0.5)),
        ("metadata", lambda m: m["metadata"].__setitem__("writer", 7)),
        ("schema", lambda m: m["schema"].__setitem__("num_classes", 9)),
        ("source", lambda m: m["source"].__setitem__("uri", "s3://elsewhere")),
        ("added key", lambda m: m.__setitem__("note", "hello")),
        ("digest removed", lambda m: m.pop("manifest_sha256")),
    ],
)
def test_edited_manifest_metadata_is_refused(
    make_target: Callable[[str], Target], field: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    target = make_target("local")
    write_condensed(target.uri, **condensed(1))
    path = Path(target.root) / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    with pytest.raises(ExportVerificationError, match="manifest") as info:
        read_condensed(target.uri)  # before the fix: verified, and returned the edited values
    assert info.value.file == "manifest.json"
    assert read_condensed(target.uri, verify=False).manifest == manifest  # explicitly unchecked


def test_version_1_exports_are_refused_with_a_way_out(make_target: Callable[[str], Target]) -> None:
    """An export written before the digest existed (same files; version 1; no digest, no paths)."""
    target = make_target("local")
    write_condensed(target.uri, **condensed(1))
    path = Path(target.root) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.pop("manifest_sha256")
    manifest["version"] = 1
    for entry in manifest["files"].values():
        entry.pop("path")
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    with pytest.raises(ExportVerificationError, match=r"version 1 has no manifest digest.*verify=False"):
        read_condensed(target.uri)
    old = read_condensed(target.uri, verify=False)
    assert writer_of(old) == 1
    # Saving it again upgrades it.
    write_condensed(
        target.uri,
        overwrite=True,
        images=old.images,
        labels=old.labels,
        class_names=old.class_names,
        learned_lr=old.learned_lr,
        metadata=old.manifest["metadata"],
    )
    assert read_condensed(target.uri).manifest["version"] == 2


def test_unsafe_file_paths_in_a_manifest_are_refused(make_target: Callable[[str], Target]) -> None:
    target = make_target("local")
    write_condensed(target.uri, **condensed(1))
    path = Path(target.root) / "manifest.json"
    for unsafe in ("../data.parquet", "/etc/data.parquet", ".staging-x/../../data.parquet", "sub/data.parquet"):
        manifest = json.loads(path.read_text())
        manifest["files"]["data.parquet"]["path"] = unsafe
        path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        with pytest.raises(ExportVerificationError, match="unsafe file"):
            read_condensed(target.uri, verify=False)


def test_a_live_writers_lock_gives_a_conflict_a_dead_writers_is_broken(
    make_target: Callable[[str], Target],
) -> None:
    target = make_target("local")
    lock = Path(target.root) / LOCK_NAME
    lock.write_text(json.dumps({"token": "t", "created_at": time.time(), "host": os.uname().nodename, "pid": 1}))
    with pytest.raises(ExportConflictError, match="in progress") as info:
        write_condensed(target.uri, **condensed(1))
    assert info.value.file is not None and info.value.file.endswith(LOCK_NAME)
    assert lock.exists() and not (Path(target.root) / "manifest.json").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"created_at": time.time(), "host": os.uname().nodename, "pid": int(dead.stdout)}))
    write_condensed(target.uri, **condensed(1))
    assert writer_of(read_condensed(target.uri)) == 1 and not lock.exists()


def test_existing_export_is_exists_error_not_conflict(make_target: Callable[[str], Target]) -> None:
    target = make_target("memory")
    write_condensed(target.uri, **condensed(1))
    with pytest.raises(ExportExistsError) as info:
        write_condensed(target.uri, **condensed(2))
    assert not isinstance(info.value, ExportConflictError)
    assert writer_of(read_condensed(target.uri)) == 1


def test_round_trip_manifest_is_what_was_written(make_target: Callable[[str], Target]) -> None:
    target = make_target("local")
    manifest = write_condensed(target.uri, **condensed(1))
    raw = (Path(target.root) / "manifest.json").read_bytes()
    assert raw == json.dumps(manifest, indent=2, sort_keys=True).encode()  # reports size it this way
    assert {e["path"] for e in manifest["files"].values()} == {"data.parquet", "preview.png"}
    assert np.array_equal(read_condensed(target.uri).images, condensed(1)["images"])


class NoConditionalWritesFS(MemoryFileSystem):
    """A store that refuses create-only writes (like an S3 endpoint answering If-None-Match with 501)."""

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        if mode == "create":
            raise NotImplementedError("conditional writes are not supported")
        super().pipe_file(path, value, **kwargs)


def test_store_without_create_only_writes_still_saves_and_refuses_a_second(
    make_target: Callable[[str], Target],
) -> None:
    root = make_target("memory").root
    fs = NoConditionalWritesFS(skip_instance_cache=True)
    with structlog.testing.capture_logs() as logs:
        write_condensed(root, filesystem=fs, **condensed(1))
    assert any(e["event"] == "create_only_write_unsupported" for e in logs)
    with pytest.raises(ExportExistsError):
        write_condensed(root, filesystem=fs, **condensed(2))
    assert writer_of(read_condensed(root, filesystem=fs)) == 1
