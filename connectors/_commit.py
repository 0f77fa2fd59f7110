"""Storage primitives for committing an export: create-only and atomic writes, a writer lock, staging.

The export protocol (see :mod:`connectors.export`) needs three things from a filesystem:

- a **create-only** write that fails when the object exists. Local files: the bytes go to a temporary
  file which is then hard-linked to its name (``os.link`` fails if the name exists, and a reader never
  sees half a file); where hard links are not supported, ``open(..., "xb")``. S3: a conditional PUT
  (``If-None-Match: *``, through s3fs's ``mode="create"``). The memory filesystem checks under the GIL.
  Other backends get fsspec's ``mode="create"``, as atomic as the backend makes it.
- an **atomic replace**: local files are written aside and ``os.replace``-d; an S3 PUT replaces an object
  atomically by itself.
- a **writer lock**: the object ``.pad-export.lock``, created create-only, holding the writer's token,
  start time, host and process id. It is broken when its writer is known dead (same host, no such
  process) or when it is older than :data:`LOCK_STALE_S`.

On an S3-compatible store that ignores ``If-None-Match``, create-only degrades to last-writer-wins; the
writer reads its object back and reports a conflict when it lost, and readers verify every byte, so an
export is never silently torn, but two writers may both believe they won. A store or backend that
refuses the conditional write (501 NotImplemented, no ``mode`` argument) gets check-then-write, with
the same read-back, and a logged warning.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import structlog

from connectors._fs import Location
from connectors.errors import ExportConflictError

log = structlog.get_logger(__name__)

LOCK_NAME = ".pad-export.lock"
STAGING_PREFIX = ".staging-"
#: A lock this old belongs to a writer that died (a save holds it for seconds).
LOCK_STALE_S = 600.0
#: Staging folders of unfinished saves are removed by the next save once they are this old.
STAGING_STALE_S = 3600.0

_TOKEN = re.compile(r"^(?P<stamp>\d{8}T\d{6})-[0-9a-f]{12}$")
_LOCAL = ("file", "local")


def new_token() -> str:
    """A unique, time-stamped name for one save (UTC second + 48 random bits)."""
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(6)}"


def staging_age_s(name: str, now: float | None = None) -> float | None:
    """Seconds since the staging entry ``name`` (``.staging-<token>[...]``) was made; None if not ours."""
    if not name.startswith(STAGING_PREFIX):
        return None
    match = _TOKEN.match(name[len(STAGING_PREFIX) :].split(".", 1)[0])
    if match is None:
        return None
    made = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S").replace(tzinfo=UTC).timestamp()
    return (time.time() if now is None else now) - made


def create_only(loc: Location, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` only if nothing is there (FileExistsError otherwise)."""
    if loc.protocol in _LOCAL:
        _create_local(path, data)
        return
    try:
        loc.fs.pipe_file(path, data, mode="create")
    except FileExistsError:
        raise
    except Exception as exc:
        if not _unsupported(exc):
            raise
        # The backend or store has no create-only write: check, then write (a race window remains;
        # the read-back below still catches a writer that overwrote us before it).
        log.warning("create_only_write_unsupported", uri=loc.uri, error=type(exc).__name__)
        if loc.fs.exists(path):
            raise FileExistsError(path) from None
        loc.fs.pipe_file(path, data)
    # A store that ignores If-None-Match overwrites silently: read back what is there now.
    if loc.fs.cat_file(path) != data:
        raise FileExistsError(path)


def _unsupported(exc: BaseException) -> bool:
    """True when ``exc`` says create-only writes are not supported (not that the write failed)."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, NotImplementedError) or (
            isinstance(current, TypeError) and "mode" in str(current)  # a backend without the argument
        ):
            return True
        response = getattr(current, "response", None)
        code = ((response or {}).get("Error") or {}).get("Code") if isinstance(response, dict) else None
        if code in ("NotImplemented", "501"):
            return True
        current = current.__cause__ or current.__context__
    return False


def replace(loc: Location, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old bytes or the new, never a mixture."""
    if loc.protocol not in _LOCAL:
        loc.fs.pipe_file(path, data)
        return
    tmp = _write_aside(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


@contextlib.contextmanager
def write_lock(loc: Location, token: str) -> Iterator[None]:
    """Hold the export's writer lock for the block; ExportConflictError when another writer holds it."""
    path = loc.join(LOCK_NAME)
    body = json.dumps(
        {"token": token, "created_at": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
    ).encode()
    with loc.translating(path):
        try:
            create_only(loc, path, body)
        except FileExistsError:
            _break_if_stale(loc, path)
            try:
                create_only(loc, path, body)
            except FileExistsError:
                raise _busy(loc, path) from None
    try:
        yield
    finally:
        try:
            with loc.translating(path):
                if loc.fs.cat_file(path) == body:
                    loc.fs.rm_file(path)
        except Exception:  # the lock expires by itself; a failed release must not hide the real outcome
            log.warning("export_lock_not_released", uri=loc.uri, file=LOCK_NAME)


def staging_entries(loc: Location) -> list[str]:
    """Names of the staging entries (folders, temporary files) directly below the export."""
    with loc.translating(loc.path):
        if not loc.fs.isdir(loc.path):
            return []
        entries = loc.fs.ls(loc.path, detail=False)
    names = [str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries]
    return sorted(n for n in names if n.startswith(STAGING_PREFIX))


def _create_local(path: str, data: bytes) -> None:
    tmp = _write_aside(path, data)
    try:
        os.link(tmp, path)  # atomic, fails if ``path`` exists, and ``path`` appears complete
    except FileExistsError:
        raise
    except OSError:  # no hard links here (some network / FUSE filesystems): exclusive create instead
        with open(path, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        _unlink_quietly(tmp)


def _write_aside(path: str, data: bytes) -> str:
    # Named like a staging entry, so that one left by a killed writer is cleaned up like one.
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f"{STAGING_PREFIX}{new_token()}.{name}.tmp")
    with open(tmp, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _lock_info(loc: Location, path: str) -> tuple[bytes, dict[str, Any]]:
    raw = loc.fs.cat_file(path)
    try:
        info = json.loads(raw)
    except ValueError:
        info = {}
    return raw, info if isinstance(info, dict) else {}


def _break_if_stale(loc: Location, path: str) -> None:
    try:
        raw, info = _lock_info(loc, path)
    except FileNotFoundError:
        return  # released meanwhile
    created = info.get("created_at")
    fresh = isinstance(created, int | float) and time.time() - created < LOCK_STALE_S
    if fresh and not _dead_here(info):
        return
    # Remove it only if it is still the stale lock we read (another writer may have broken it already).
    if loc.fs.cat_file(path) == raw:
        log.warning("export_stale_lock_broken", uri=loc.uri, file=LOCK_NAME, lock=info)
        loc.fs.rm_file(path)


def _dead_here(info: dict[str, Any]) -> bool:
    """True when the lock's writer ran on this host and its process is gone (killed, crashed)."""
    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _busy(loc: Location, path: str) -> ExportConflictError:
    try:
        _, info = _lock_info(loc, path)
    except FileNotFoundError:
        info = {}
    since = info.get("created_at")
    when = (
        datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds")
        if isinstance(since, int | float)
        else "an unknown time"
    )
    return ExportConflictError(
        f"another save to this URL is in progress (lock {LOCK_NAME} taken at {when}); retry when it has "
        f"finished, or remove the lock if no writer is running (it expires after {LOCK_STALE_S:g} s)",
        uri=loc.uri,
        file=loc.display(path),
    )
