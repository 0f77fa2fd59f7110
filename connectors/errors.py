"""The connector exception tree.

Every failure that a connector reports is a :class:`ConnectorError`. Subclasses say what kind of
problem it is; attributes carry the facts (URI, file, row, column, value) as plain values so that the
SDK layer can translate them into its own error tree without parsing messages. URIs stored on errors
are always redacted (no credentials, no signed-URL query strings).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccessDeniedError",
    "ConnectorError",
    "CorruptDataError",
    "DataValidationError",
    "EmptyDatasetError",
    "EndpointUnreachableError",
    "ExportExistsError",
    "ExportVerificationError",
    "InsufficientDataError",
    "MissingBackendError",
    "SchemaError",
    "SourceNotFoundError",
]


class ConnectorError(Exception):
    """Root of every error raised by ``connectors``.

    Attributes:
        uri: the redacted URI of the dataset or export involved, or None.
        file: the redacted path of the object inside it, or None.
        row: the global row id of the offending example, or None.
        column: the column (or array / field) involved, or None.
        value: a short ``repr`` of the offending value, or None.
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
    ) -> None:
        self.message = message
        self.uri = uri
        self.file = file
        self.row = row
        self.column = column
        # Keep the value short and printable: it ends up in logs and reports.
        self.value = None if value is None else _short_repr(value)
        super().__init__(self._format())

    def _format(self) -> str:
        facts = [
            f"{name}={val}"
            for name, val in (
                ("uri", self.uri),
                ("file", self.file),
                ("row", self.row),
                ("column", self.column),
                ("value", self.value),
            )
            if val is not None
        ]
        return f"{self.message} ({', '.join(facts)})" if facts else self.message


class SourceNotFoundError(ConnectorError):
    """A bucket, object, file or directory does not exist."""


class AccessDeniedError(ConnectorError):
    """The storage backend refused access (permissions, credentials, read-only location)."""


class EndpointUnreachableError(ConnectorError):
    """The storage endpoint could not be reached (connection refused, DNS, timeout)."""


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


class ExportVerificationError(ConnectorError):
    """An export has no manifest, or its files do not match the manifest's sizes / sha256."""


class ExportExistsError(ConnectorError):
    """An export already exists at the target URI and ``overwrite`` was not set."""


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
