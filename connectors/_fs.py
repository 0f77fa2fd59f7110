"""URL resolution, storage options and error translation (redaction lives in :mod:`connectors._redact`).

fsspec resolves every URL (``/path``, ``file://``, ``s3://``, ``memory://``, ...); this module adds the
three things fsspec leaves to us: friendly storage options for S3, redaction of credentials, and the
translation of backend exceptions (OSError, botocore, aiohttp, pyarrow, gzip/zip) into the
:mod:`connectors.errors` tree at the boundary.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import fsspec
import structlog
from fsspec.spec import AbstractFileSystem

from connectors._redact import collect_secrets, leaks, redact_uri, scrub
from connectors.errors import (
    AccessDeniedError,
    ConnectorError,
    CorruptDataError,
    EndpointUnreachableError,
    InvalidArgumentError,
    MissingBackendError,
    SourceNotFoundError,
    StorageTimeoutError,
)

log = structlog.get_logger(__name__)

# Packages that provide the fsspec backend for a protocol (for the "install X" hint).
_BACKEND_PACKAGES = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
    "adl": "adlfs",
    "hf": "huggingface_hub",
    "http": "aiohttp",
    "https": "aiohttp",
    "sftp": "paramiko",
    "ssh": "paramiko",
    "smb": "smbprotocol",
    "hdfs": "pyarrow",
    "oci": "ocifs",
}

# Names of exception classes (anywhere in the MRO) that mean "could not reach the endpoint". Matching
# by name keeps botocore / aiohttp optional imports out of this module.
_UNREACHABLE_NAMES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ConnectionClosedError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "FSTimeoutError",
        "ReadTimeoutError",
        "ProxyConnectionError",
    }
)
# Which limit a timeout exception means (matched by class name anywhere in the MRO, like the set above).
_CONNECT_TIMEOUT_NAMES = frozenset({"ConnectTimeoutError", "ConnectionTimeoutError", "ServerTimeoutError"})
_READ_TIMEOUT_NAMES = frozenset({"ReadTimeoutError", "SocketTimeoutError"})

#: S3 defaults (each settable through storage options of the same name). s3fs's own defaults retry 5 x 5
#: times with a 15 s read timeout: an endpoint that accepts connections and never answers took 417 s to
#: fail. With these it fails after about ``max_attempts`` x ``read_timeout`` (45 s).
S3_CONNECT_TIMEOUT_S = 5.0
S3_READ_TIMEOUT_S = 15.0
S3_MAX_ATTEMPTS = 3

_CREDENTIAL_NAMES = frozenset({"NoCredentialsError", "PartialCredentialsError", "ProfileNotFound"})
_NOT_FOUND_CODES = frozenset({"NoSuchBucket", "NoSuchKey", "404", "NotFound"})
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "403",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "AllAccessDisabled",
    }
)
_TRANSLATED_MODULE_PREFIXES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec", "pyarrow")

def normalise_storage_options(protocol: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Map the SDK's friendly option names onto the backend's own.

    For S3 (s3fs): ``endpoint_url``/``endpoint`` and ``region`` go into ``client_kwargs`` (where s3fs
    expects them); ``connect_timeout`` and ``read_timeout`` (seconds) and ``max_attempts`` (attempts per
    request, retries included) go into botocore's ``config_kwargs``, with the defaults
    :data:`S3_CONNECT_TIMEOUT_S`, :data:`S3_READ_TIMEOUT_S`, :data:`S3_MAX_ATTEMPTS` (values already in
    ``config_kwargs`` win); ``profile``, ``anon``, ``key``, ``secret``, ``token`` pass through unchanged.
    Other protocols get ``options`` as they are.
    """
    opts = dict(options or {})
    if protocol not in ("s3", "s3a"):
        return opts
    client_kwargs = dict(opts.pop("client_kwargs", None) or {})
    endpoint = opts.pop("endpoint_url", None) or opts.pop("endpoint", None)
    if endpoint:
        client_kwargs.setdefault("endpoint_url", endpoint)
    region = opts.pop("region", None) or opts.pop("region_name", None)
    if region:
        client_kwargs.setdefault("region_name", region)
    if client_kwargs:
        opts["client_kwargs"] = client_kwargs
    config = dict(opts.pop("config_kwargs", None) or {})
    for name, default in (("connect_timeout", S3_CONNECT_TIMEOUT_S), ("read_timeout", S3_READ_TIMEOUT_S)):
        config.setdefault(name, _positive(opts.pop(name, default), name))
    attempts = _positive(opts.pop("max_attempts", S3_MAX_ATTEMPTS), "max_attempts")
    config.setdefault("retries", {"max_attempts": int(attempts), "mode": "standard"})
    opts["config_kwargs"] = config
    return opts


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgumentError(f"must be a positive number, got {value!r}", field=name, allowed="a number > 0")
    return value


@dataclass(frozen=True)
class Timeouts:
    """The S3 limits in force, for error messages: seconds to connect / to read, attempts per request."""

    connect: float | None = None
    read: float | None = None
    attempts: int | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Timeouts:
        config = options.get("config_kwargs") or {}
        retries = config.get("retries") or {}
        return cls(config.get("connect_timeout"), config.get("read_timeout"), retries.get("max_attempts"))


@dataclass(frozen=True)
class Location:
    """A resolved URL: the fsspec filesystem, the backend path, and the redacted URI for messages."""

    fs: AbstractFileSystem
    path: str
    uri: str
    protocol: str
    secrets: tuple[str, ...] = field(default=(), repr=False)
    timeouts: Timeouts = field(default_factory=Timeouts, repr=False)

    def join(self, *names: str) -> str:
        """Backend path of ``names`` below this location."""
        return "/".join([self.path.rstrip("/"), *names])

    def display(self, path: str) -> str:
        """A redacted, human-readable name for a backend ``path`` (used in errors and logs)."""
        if self.protocol in ("file", "local"):
            return path
        return f"{self.protocol}://{path.removeprefix(self.protocol + '://')}"

    def translating(self, file: str | None = None) -> contextlib.AbstractContextManager[None]:
        """Context manager translating backend errors raised inside it (see :func:`translate_errors`)."""
        return translate_errors(
            self.uri, file=None if file is None else self.display(file), secrets=self.secrets, timeouts=self.timeouts
        )


def resolve(
    uri: str,
    storage_options: Mapping[str, Any] | None = None,
    filesystem: AbstractFileSystem | None = None,
) -> Location:
    """Resolve ``uri`` to a :class:`Location`.

    ``filesystem`` (an fsspec instance) may be injected, e.g. by tests; ``uri`` is then a path on it.
    Raises MissingBackendError when the protocol's backend package is not installed, and
    InvalidArgumentError for ``.`` or ``..`` path segments outside the local filesystem (object stores
    keep them as literal key names: ``s3://b/x/../y`` would write the key ``x/../y``).
    """
    secrets = collect_secrets(storage_options)
    safe_uri = scrub(redact_uri(uri), secrets)
    protocol = urlsplit(uri).scheme or "file"
    if filesystem is not None:
        proto = filesystem.protocol if isinstance(filesystem.protocol, str) else filesystem.protocol[0]
        path = filesystem._strip_protocol(uri)
        _refuse_dot_segments(proto, path, safe_uri)
        return Location(filesystem, path, safe_uri, proto, secrets)
    if len(protocol) == 1:  # a Windows drive letter, not a protocol
        protocol = "file"
    try:
        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as exc:
        package = _BACKEND_PACKAGES.get(protocol)
        hint = f"; install {package} (pip install {package})" if package else ""
        raise MissingBackendError(
            f"no filesystem backend for protocol {protocol!r}{hint}", package=package, uri=safe_uri
        ) from exc
    options = normalise_storage_options(protocol, storage_options)
    with translate_errors(safe_uri, secrets=secrets):
        fs, path = fsspec.core.url_to_fs(uri, **options)
    _refuse_dot_segments(protocol, path, safe_uri)
    timeouts = Timeouts()
    if protocol in ("s3", "s3a"):
        # botocore retries each request (config_kwargs["retries"]); s3fs's own retry loop on top of it
        # would multiply the attempts (and the wait on a silent endpoint).
        fs.retries = 1
        timeouts = Timeouts.from_options(options)
    return Location(fs, path, safe_uri, protocol, secrets, timeouts)


def _refuse_dot_segments(protocol: str, path: str, uri: str) -> None:
    if protocol in ("file", "local"):
        return  # the operating system resolves them
    if any(part in (".", "..") for part in path.split("/")):
        raise InvalidArgumentError(
            "'.' and '..' path segments are not resolved by object stores (they would become part of key "
            "names); give the path without them",
            field="uri",
            uri=uri,
        )


def translate(
    exc: BaseException,
    uri: str | None,
    *,
    file: str | None = None,
    secrets: Iterable[str] = (),
    timeouts: Timeouts | None = None,
) -> ConnectorError | None:
    """Map a backend exception onto the :mod:`connectors.errors` tree; None if it is not ours to map."""
    if isinstance(exc, ConnectorError):
        return exc
    names = {cls.__name__ for cls in type(exc).__mro__}
    module = type(exc).__module__ or ""
    code = _client_error_code(exc)
    detail = scrub(f"{type(exc).__name__}: {exc}", secrets)
    kwargs: dict[str, Any] = {"uri": uri, "file": file}
    timeout = _timeout_kind(names, exc)
    if timeout is not None:
        return _timeout_error(timeout, timeouts or Timeouts(), detail, kwargs)
    if names & _UNREACHABLE_NAMES or isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return EndpointUnreachableError(f"storage endpoint unreachable: {detail}", **kwargs)
    if names & _CREDENTIAL_NAMES or code in _DENIED_CODES or isinstance(exc, PermissionError):
        return AccessDeniedError(f"access denied: {detail}", **kwargs)
    if code in _NOT_FOUND_CODES or isinstance(exc, FileNotFoundError):
        return SourceNotFoundError(f"not found: {detail}", **kwargs)
    if isinstance(exc, EOFError | zlib.error | zipfile.BadZipFile) or "ArrowInvalid" in names:
        return CorruptDataError(f"corrupt or truncated data: {detail}", **kwargs)
    if isinstance(exc, OSError) or module.startswith(_TRANSLATED_MODULE_PREFIXES):
        return ConnectorError(f"storage error: {detail}", **kwargs)
    return None


def _timeout_kind(names: set[str], exc: BaseException) -> str | None:
    if names & _CONNECT_TIMEOUT_NAMES:
        return "connect"
    if names & _READ_TIMEOUT_NAMES:
        return "read"
    if "FSTimeoutError" in names or isinstance(exc, TimeoutError):
        return "unknown"
    return None


def _timeout_error(kind: str, timeouts: Timeouts, detail: str, kwargs: dict[str, Any]) -> StorageTimeoutError:
    seconds = {"connect": timeouts.connect, "read": timeouts.read}.get(kind)
    what = {"connect": "connecting to", "read": "waiting for an answer from"}.get(kind, "waiting for")
    limit = f" after {seconds:g} s" if seconds is not None else ""
    tries = f", {timeouts.attempts} attempt(s)" if timeouts.attempts is not None else ""
    hint = "; raise connect_timeout / read_timeout / max_attempts in storage_options if the store is just slow"
    return StorageTimeoutError(
        f"storage timeout ({kind}): gave up {what} the endpoint{limit}{tries}{hint}: {detail}",
        timeout=kind,
        seconds=seconds,
        attempts=timeouts.attempts,
        **kwargs,
    )


@contextlib.contextmanager
def translate_errors(
    uri: str | None, *, file: str | None = None, secrets: Iterable[str] = (), timeouts: Timeouts | None = None
) -> Iterator[None]:
    """Translate backend exceptions raised in the block; ConnectorErrors and our own bugs pass through.

    The original exception is chained (``raise ... from exc``) unless its text contained a secret, in
    which case the chain is cut so that a printed traceback cannot leak it.
    """
    secrets = tuple(secrets)
    try:
        yield
    except ConnectorError:
        raise
    except Exception as exc:
        err = translate(exc, uri, file=file, secrets=secrets, timeouts=timeouts)
        if err is None:
            raise
        log.debug("connector_error", error_type=type(err).__name__, uri=uri, file=file)
        if leaks(exc, secrets):
            raise err from None
        raise err from exc


def fingerprint(
    fs: AbstractFileSystem,
    paths: Iterable[str],
    root: str,
    infos: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[str, int]:
    """(sha256 over relative name, size and version tag of each object, total stored bytes).

    The version tag is the ETag where the backend has one (S3), else the modification time, so that a
    rewritten object changes the fingerprint without reading any data. ``infos`` (path -> fs info, e.g.
    from ``fs.find(detail=True)``) saves one metadata request per object.
    """
    entries = []
    total = 0
    prefix = root.rstrip("/") + "/"
    for path in sorted(paths):
        info = infos[path] if infos is not None and path in infos else fs.info(path)
        size = int(info.get("size") or 0)
        total += size
        tag = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
        tag = tag or info.get("created")
        rel = path[len(prefix) :] if path.startswith(prefix) else path.rsplit("/", 1)[-1]
        entries.append([rel, size, str(tag)])
    digest = hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode()).hexdigest()
    return digest, total


def _client_error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        code = (response.get("Error") or {}).get("Code")
        return str(code) if code is not None else None
    return None
