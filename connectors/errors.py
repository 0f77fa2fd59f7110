"""The connector exception tree.

Every failure that a connector reports is a :class:`ConnectorError`. Subclasses say what kind of
problem it is; attributes carry the facts (URI, file, row, column, value) as plain values so that the
SDK layer can translate them into its own error tree without parsing messages. URIs stored on errors
are always redacted (no credentials, no signed-URL query strings).
"""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = [
    "AccessDeniedError",
    "ConnectorError",
    "CorruptDataError",
    "DataValidationError",
    "DeclaredSizeError",
    "EmptyDatasetError",
    "EndpointUnreachableError",
    "ExportConflictError",
    "ExportExistsError",
    "ExportVerificationError",
    "InsufficientDataError",
    "InvalidArgumentError",
    "MemoryLimitError",
    "MissingBackendError",
    "SchemaError",
    "SourceNotFoundError",
    "StorageTimeoutError",
]

# Messages quote user input (names, values, listings): keep them short enough for a log line or a report.
MAX_MESSAGE_CHARS = 2000


class ConnectorError(Exception):
    """Root of every error raised by ``connectors``.

    Attributes:
        uri: the redacted URI of the dataset or export involved, or None.
        file: the redacted path of the object inside it, or None.
        row: the global row id of the offending example, or None.
        column: the column (or array / field) involved, or None.
        value: a short ``repr`` of the offending value, or None.
        member: the entry inside ``file`` (a tar member of a WebDataset shard), or None.
    """

    def __init__(
        self,
        message: str,
        *,
        uri: str | None = None,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        value: Any = None,
        member: str | None = None,
    ) -> None:
        self.message = message
        self.uri = uri
        self.file = file
        self.row = row
        self.column = column
        self.member = member
        # Keep the value short and printable: it ends up in logs and reports.
        self.value = None if value is None else _short_repr(value)
        super().__init__(self._format())

    def _name_file(self, file: str) -> None:
        """Set ``file`` after the fact (a caller that knows the exact object) and refresh the message."""
        self.file = file
        self.args = (self._format(),)

    def _format(self) -> str:
        facts = [
            f"{name}={val}"
            for name, val in (
                ("uri", self.uri),
                ("file", self.file),
                ("member", self.member),
                ("row", self.row),
                ("column", self.column),
                ("value", self.value),
            )
            if val is not None
        ]
        text = f"{self.message} ({', '.join(facts)})" if facts else self.message
        return _cap(text, MAX_MESSAGE_CHARS)


class SourceNotFoundError(ConnectorError):
    """A bucket, object, file or directory does not exist."""


class AccessDeniedError(ConnectorError):
    """The storage backend refused access (permissions, credentials, read-only location)."""


class EndpointUnreachableError(ConnectorError):
    """The storage endpoint could not be reached (connection refused, DNS, timeout)."""


class StorageTimeoutError(EndpointUnreachableError):
    """The storage endpoint did not answer in time, after the configured retries.

    Attributes:
        timeout: which limit was hit: ``"connect"`` (no connection) or ``"read"`` (connected, no answer).
        seconds: that limit in seconds, when known.
        attempts: the configured number of attempts, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        timeout: str,
        seconds: float | None = None,
        attempts: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.timeout = timeout
        self.seconds = seconds
        self.attempts = attempts
        super().__init__(message, **kwargs)


class MissingBackendError(ConnectorError):
    """The URL's protocol needs an fsspec backend that is not installed.

    Attributes:
        package: the package to install (e.g. ``"s3fs"``), or None when unknown.
    """

    def __init__(self, message: str, *, package: str | None = None, **kwargs: Any) -> None:
        self.package = package
        super().__init__(message, **kwargs)


class SchemaError(ConnectorError):
    """A column / array is missing, misnamed or of an unsupported type.

    Attributes:
        available: the column names that do exist.
    """

    def __init__(self, message: str, *, available: tuple[str, ...] = (), **kwargs: Any) -> None:
        self.available = tuple(available)
        if self.available:
            message = f"{message}; available columns: {', '.join(self.available)}"
        super().__init__(message, **kwargs)


class DataValidationError(ConnectorError):
    """A value is invalid: undecodable image, mixed shapes, bad label, NaN/inf, ..."""


class EmptyDatasetError(DataValidationError):
    """The dataset (or the selected split) has no rows."""


class InsufficientDataError(DataValidationError):
    """A class has fewer examples than requested.

    Attributes:
        class_name: the class that is short. requested / available: the counts.
    """

    def __init__(
        self, message: str, *, class_name: str, requested: int, available: int, **kwargs: Any
    ) -> None:
        self.class_name = class_name
        self.requested = requested
        self.available = available
        super().__init__(message, **kwargs)


class CorruptDataError(ConnectorError):
    """A file is truncated or not in the format it claims (Parquet, IDX, gzip, npz, PNG)."""


class DeclaredSizeError(CorruptDataError):
    """A size that a file declares (a header's shape, a zip entry's length) exceeds the bytes present.

    Attributes:
        declared: the byte count the file declares. present: the byte count actually there (or the most
            its compressed form can hold).
    """

    def __init__(self, message: str, *, declared: int, present: int, **kwargs: Any) -> None:
        self.declared = int(declared)
        self.present = int(present)
        super().__init__(f"{message}: declares {self.declared} bytes, {self.present} present", **kwargs)


class MemoryLimitError(ConnectorError):
    """Reading would allocate more than the memory limit (``open_source(memory_limit=...)``).

    Attributes:
        requested: the bytes one allocation would need. limit: the limit in bytes.
    """

    def __init__(self, message: str, *, requested: int, limit: int, **kwargs: Any) -> None:
        self.requested = int(requested)
        self.limit = int(limit)
        super().__init__(
            f"{message}: needs {self.requested} bytes, over the memory limit of {self.limit} bytes", **kwargs
        )


class InvalidArgumentError(ConnectorError, ValueError):
    """An argument is out of range or malformed (a fraction outside (0, 1), a URL with ``..``).

    Attributes:
        field: the argument's name. allowed: what would be accepted.
    """

    def __init__(self, message: str, *, field: str, allowed: str | None = None, **kwargs: Any) -> None:
        self.field = field
        self.allowed = allowed
        hint = f" (allowed: {allowed})" if allowed else ""
        super().__init__(f"{field}: {message}{hint}", **kwargs)


class ExportVerificationError(ConnectorError):
    """An export has no manifest, or its files do not match the manifest's sizes / sha256."""


class ExportExistsError(ConnectorError):
    """An export already exists at the target URI and ``overwrite`` was not set."""


class ExportConflictError(ExportExistsError):
    """Another writer committed an export at the same URI first (concurrent saves without ``overwrite``).

    Nothing of the losing write is left behind; the winner's export is complete and verifies.
    """


def _short_repr(value: Any, limit: int = 80) -> str:
    # Containers go through reprlib, which bounds the work as well as the text: a nested value that
    # shares its parts (a YAML alias bomb) is never rendered whole.
    try:
        text = repr(value) if isinstance(value, str | bytes | float) else _REPR.repr(value)
    except ValueError:  # an int too long to print
        text = f"<{type(value).__name__}>"
    return _cap(text, limit)


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 200, 200, 60
