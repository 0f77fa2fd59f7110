"""Redaction: credentials, signed-URL parameters and user-info never reach a message, a log or a report."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# Option names whose values are credentials: never logged, never put in a message.
SECRET_OPTION_NAMES = frozenset(
    {
        "key",
        "secret",
        "token",
        "session_token",
        "password",
        "access_key",
        "secret_key",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "account_key",
        "sas_token",
        "client_secret",
        "credentials",
    }
)

_URL_QUERY = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"?]*)\?[^\s'\"]*")
_SIGNED_PARAMS = re.compile(
    r"(?<![\w-])((?:X-Amz-[A-Za-z-]+|Signature|AWSAccessKeyId|Expires|sig|se|sp|sv|Policy|Key-Pair-Id)=)[^&\s'\"]+"
)
_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")


def redact_uri(uri: str) -> str:
    """Return ``uri`` without user-info, query string or fragment (signed URLs carry secrets there)."""
    parts = urlsplit(uri)
    if not parts.scheme:
        return uri.split("?", 1)[0]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def collect_secrets(options: Mapping[str, Any] | None) -> tuple[str, ...]:
    """All credential values found in ``options`` (nested dicts included), longest first."""
    found: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, Mapping):
            for name, value in obj.items():
                if str(name).lower() in SECRET_OPTION_NAMES and isinstance(value, str) and value:
                    found.append(value)
                else:
                    walk(value)

    walk(options or {})
    return tuple(sorted(set(found), key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove secret values, URL query strings, signed-URL parameters and user-info from ``text``.

    A secret is replaced where it stands as a token of its own (not inside a longer word), so that a short
    secret does not mangle every bucket or path that happens to contain its letters."""
    for secret in secrets:
        text = re.sub(rf"(?<![A-Za-z0-9+/_-]){re.escape(secret)}(?![A-Za-z0-9+/_-])", "***", text)
    text = _URL_QUERY.sub(r"\1?<redacted>", text)
    text = _SIGNED_PARAMS.sub(r"\1***", text)
    return _USERINFO.sub(r"\1", text)


def leaks(exc: BaseException, secrets: tuple[str, ...]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = f"{current!s} {current.args!r}"
        if any(s in text for s in secrets) or _URL_QUERY.search(text) or _SIGNED_PARAMS.search(text):
            return True
        current = current.__cause__ or current.__context__
    return False
