"""S3 requests have connect / read timeouts and bounded retries by default, and a timeout says which limit
was hit (issue 15: an endpoint that accepted connections and never answered gave an error after 417 s).

The endpoints here are sockets on 127.0.0.1 that this test owns; each stops by itself.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from connectors import EndpointUnreachableError, InvalidArgumentError, StorageTimeoutError, open_source
from connectors._fs import (
    S3_CONNECT_TIMEOUT_S,
    S3_MAX_ATTEMPTS,
    S3_READ_TIMEOUT_S,
    normalise_storage_options,
)

LIFETIME_S = 30.0  # the longest any endpoint below lives, whatever the test does


@pytest.fixture
def silent_endpoint() -> Iterator[tuple[str, list[socket.socket]]]:
    """``http://127.0.0.1:<port>`` that accepts every connection and never sends a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        deadline = time.monotonic() + LIFETIME_S
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        server.close()


@pytest.fixture
def unaccepting_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` whose accept queue is full: new connections are never established."""
    server = socket.create_server(("127.0.0.1", 0), backlog=0)
    fillers: list[socket.socket] = []
    try:
        while len(fillers) < 64:  # fill the queue; the first connect that hangs shows it is full
            sock = socket.socket()
            sock.settimeout(0.3)
            try:
                sock.connect(server.getsockname())
            except OSError:
                sock.close()
                break
            fillers.append(sock)
        else:
            pytest.skip("could not fill the listen queue on this kernel")
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        for sock in fillers:
            sock.close()
        server.close()


def _options(endpoint: str, **limits: float) -> dict[str, object]:
    return {"key": "testing", "secret": "testing", "endpoint_url": endpoint, **limits}


@pytest.mark.s3
def test_silent_endpoint_gives_a_read_timeout_quickly(silent_endpoint: tuple[str, list[socket.socket]]) -> None:
    endpoint, accepted = silent_endpoint
    started = time.monotonic()
    with pytest.raises(StorageTimeoutError) as info:
        _ = open_source(
            "s3://bucket-x/data.parquet", storage_options=_options(endpoint, read_timeout=0.5, max_attempts=2)
        ).schema
    elapsed = time.monotonic() - started
    err = info.value
    assert (err.timeout, err.seconds, err.attempts) == ("read", 0.5, 2)
    assert "storage timeout (read)" in str(err) and "after 0.5 s, 2 attempt(s)" in str(err)
    assert err.uri == "s3://bucket-x/data.parquet"
    assert isinstance(err, EndpointUnreachableError)  # existing handlers still catch it
    # Attempts are bounded: botocore's, not multiplied by s3fs's own retry loop (5 x 5 before).
    assert len(accepted) <= 2 * 2
    assert elapsed < 10, elapsed


@pytest.mark.s3
def test_unaccepting_endpoint_gives_a_connect_timeout(unaccepting_endpoint: str) -> None:
    started = time.monotonic()
    with pytest.raises(StorageTimeoutError) as info:
        _ = open_source(
            "s3://bucket-x/data.parquet",
            storage_options=_options(unaccepting_endpoint, connect_timeout=0.5, max_attempts=1),
        ).schema
    assert (info.value.timeout, info.value.seconds, info.value.attempts) == ("connect", 0.5, 1)
    assert "storage timeout (connect)" in str(info.value)
    assert time.monotonic() - started < 10


def test_s3_defaults_bound_timeouts_and_retries() -> None:
    opts = normalise_storage_options("s3", {"endpoint_url": "http://127.0.0.1:9"})
    assert opts["config_kwargs"] == {
        "connect_timeout": S3_CONNECT_TIMEOUT_S,
        "read_timeout": S3_READ_TIMEOUT_S,
        "retries": {"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"},
    }
    # A silent endpoint fails within about a minute by default (it took 417 s before).
    assert S3_MAX_ATTEMPTS * (S3_CONNECT_TIMEOUT_S + S3_READ_TIMEOUT_S) <= 60
    # Friendly names override the defaults; explicit botocore config wins over both.
    opts = normalise_storage_options(
        "s3", {"read_timeout": 2, "max_attempts": 5, "config_kwargs": {"read_timeout": 7}}
    )
    assert opts["config_kwargs"]["read_timeout"] == 7 and opts["config_kwargs"]["retries"]["max_attempts"] == 5
    assert normalise_storage_options("file", {"read_timeout": 2}) == {"read_timeout": 2}  # S3 only


@pytest.mark.parametrize("name", ["connect_timeout", "read_timeout", "max_attempts"])
@pytest.mark.parametrize("value", [0, -1, "10", True])
def test_bad_timeout_options_are_typed(name: str, value: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        normalise_storage_options("s3", {name: value})
    assert info.value.field == name
