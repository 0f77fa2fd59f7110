"""The policy exception tree.

``PolicyError`` is the root of everything this package raises on purpose. The SDK puts it under its own
``PadError`` by re-raising at its boundary; ``policies`` cannot import ``pad_sdk`` (see DESIGN section 4),
so the tree here is self-contained:

    PolicyError
    ├── PolicyValidationError   a policy or a result mapping is malformed (field, message, allowed values)
    ├── PolicyFileError         a file could not be read or parsed (file, line, column)
    ├── CompressionInfeasibleError  a compression target cannot be met on this dataset
    └── PolicyViolation         strict judging found a failed rule (carries the whole verdict)
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the verdict module imports nothing from here at runtime; avoid the cycle anyway
    from policies.verdict import RuleResult, Verdict

# Messages quote user input (values, keys, file names). A hostile file must not turn into a huge message:
# each quoted value, each issue line and each message is cut to these lengths, and at most
# MAX_LISTED_ISSUES issues are spelled out (``issues`` still holds all of them).
MAX_VALUE_CHARS = 120
MAX_ISSUE_CHARS = 400
MAX_MESSAGE_CHARS = 4000
MAX_LISTED_ISSUES = 25

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, MAX_VALUE_CHARS, MAX_VALUE_CHARS, 40


def short_repr(value: Any) -> str:
    """A ``repr`` of at most :data:`MAX_VALUE_CHARS` characters, built without rendering ``value`` whole."""
    try:
        text = repr(value) if isinstance(value, str | bytes | float) else _REPR.repr(value)
    except ValueError:  # an int too long to print
        text = f"<{type(value).__name__}>"
    return cap(text, MAX_VALUE_CHARS)


def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class FieldIssue:
    """One problem with one field: where it is, what is wrong, and what would be accepted.

    ``path`` is dotted from the run policy root (``bias.max_class_recall_drop``); list items and mapping
    keys appear as ``[index]`` / ``[key]``. ``allowed`` is ``None`` when no short description exists.
    """

    path: str
    message: str
    allowed: str | None = None

    def __str__(self) -> str:
        where = self.path or "<root>"
        hint = f" (allowed: {self.allowed})" if self.allowed else ""
        return f"{where}: {self.message}{hint}"


class PolicyError(Exception):
    """Root of every error raised on purpose by the ``policies`` package."""


class PolicyValidationError(PolicyError, ValueError):
    """A policy (or measured results) failed validation.

    ``issues`` lists every problem found, not just the first, so a reviewer fixes a file in one pass.
    ``source`` names the file or object that was being validated, when known.
    """

    def __init__(self, issues: Iterable[FieldIssue], *, source: str | None = None, what: str = "policy"):
        self.issues: tuple[FieldIssue, ...] = tuple(issues)
        self.source = source
        self.what = what
        origin = f" in {cap(source, 300)}" if source else ""
        count = len(self.issues)
        plural = "problem" if count == 1 else "problems"
        lines = [f"invalid {what}{origin} ({count} {plural}):"]
        lines += [f"  - {cap(str(issue), MAX_ISSUE_CHARS)}" for issue in self.issues[:MAX_LISTED_ISSUES]]
        if count > MAX_LISTED_ISSUES:
            lines.append(f"  ... and {count - MAX_LISTED_ISSUES} more")
        super().__init__(cap("\n".join(lines), MAX_MESSAGE_CHARS))

    @property
    def paths(self) -> tuple[str, ...]:
        """The field paths that have a problem, in the order found."""
        return tuple(issue.path for issue in self.issues)


class PolicyFileError(PolicyError):
    """A policy file could not be read or parsed (YAML/JSON syntax, duplicate keys, unknown format)."""

    def __init__(self, message: str, *, path: str, line: int | None = None, column: int | None = None):
        self.path = path
        self.line = line
        self.column = column
        shown = cap(path, 300)
        where = shown if line is None else f"{shown}, line {line}" + (f", column {column}" if column else "")
        super().__init__(cap(f"{where}: {message}", MAX_MESSAGE_CHARS))


class CompressionInfeasibleError(PolicyError, ValueError):
    """The compression target cannot be reached on the dataset at hand.

    Carries the requested target, the resolved images per class, and the feasible range so that a caller
    (or a reviewer) can pick a valid target without re-deriving it.
    """

    def __init__(self, message: str, *, target: str, requested_ipc: int, min_ipc: int, max_ipc: int):
        self.target = target
        self.requested_ipc = requested_ipc
        self.min_ipc = min_ipc
        self.max_ipc = max_ipc
        super().__init__(message)


class PolicyViolation(PolicyError):
    """Raised by strict judging when at least one rule failed; ``verdict`` holds every rule's outcome."""

    def __init__(self, verdict: Verdict):
        self.verdict = verdict
        lines = [f"policy {verdict.policy_name or '<unnamed>'} failed {len(self.failures)} rule(s):"]
        lines += [f"  - {r.rule}: {r.message}" for r in self.failures]
        super().__init__("\n".join(lines))

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        """The rules that failed (warnings are not violations)."""
        return self.verdict.failures
