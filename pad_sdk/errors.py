"""The pad-sdk exception tree.

Every error that pad-sdk raises on purpose derives from :class:`PadError`, so a pipeline can catch one
type. Each subclass carries the facts a user needs to fix the problem (the field, the URI, the
iteration, the metric) as attributes, and says them in its message.

Errors raised by the lower layers (``connectors``, ``policies``) are translated at the SDK boundary
into the matching class here, which also derives from the lower-layer class, so
``except connectors.ConnectorError`` keeps working after translation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class PadError(Exception):
    """Root of every error pad-sdk raises on purpose."""


class ConfigError(PadError, ValueError):
    """A setting is missing, out of range, or contradicts another setting.

    Attributes:
        field: dotted path of the offending setting (e.g. ``distill.max_start_epoch``).
        value: the rejected value, when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class DataError(PadError, ValueError):
    """The input data cannot be used (shape, labels, non-finite values, too few examples)."""

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.row = row


class DistillationError(PadError, RuntimeError):
    """Distillation could not continue (e.g. a non-finite matching loss).

    Attributes:
        iteration: the distillation iteration at which it happened.
    """

    def __init__(self, message: str, *, iteration: int | None = None) -> None:
        super().__init__(message)
        self.iteration = iteration


class TrajectoryStoreError(PadError, OSError):
    """The trajectory store is missing, incomplete, or was written for another network."""

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.uri = uri


class WorkerError(PadError, RuntimeError):
    """A distributed worker failed and the run could not recover."""


# -- translations of the lower layers' errors ----------------------------------------------------------
import connectors.errors as _connector_errors  # noqa: E402  (the lower layers import nothing of ours)
import policies.errors as _policy_errors  # noqa: E402


class ConnectorError(PadError, _connector_errors.ConnectorError):
    """Reading or writing storage failed; carries ``uri``, ``file``, ``row``, ``column`` of the cause."""


class PolicyError(PadError, _policy_errors.PolicyError):
    """A policy file or object is invalid (its message names the field and the allowed values)."""


class PolicyViolation(PolicyError):
    """A strict run failed a policy rule; ``verdict`` holds every rule's measured value and limit."""

    def __init__(self, message: str, *, verdict: object) -> None:
        super().__init__(message)
        self.verdict = verdict


@contextmanager
def translated_errors() -> Iterator[None]:
    """Re-raise ``connectors`` and ``policies`` errors as pad-sdk errors, keeping the cause and its facts."""
    try:
        yield
    except PadError:
        raise
    except _policy_errors.PolicyViolation as exc:
        raise PolicyViolation(str(exc), verdict=exc.verdict) from exc
    except _connector_errors.ConnectorError as exc:
        translated = ConnectorError(str(exc))
        translated.__dict__.update(vars(exc))
        raise translated from exc
    except _policy_errors.PolicyError as exc:
        translated_policy = PolicyError(str(exc))
        translated_policy.__dict__.update(vars(exc))
        raise translated_policy from exc


class BudgetError(PadError):
    """A run's budget (``policy.budget``) is, or would be, exceeded.

    Attributes:
        budget: the policy field, e.g. ``budget.max_wall_time_s``.
        limit: its value. estimate: what the run was estimated (or measured) to need.
    """

    def __init__(self, message: str, *, budget: str, limit: float, estimate: float) -> None:
        super().__init__(message)
        self.budget = budget
        self.limit = limit
        self.estimate = estimate


class BudgetExceeded(BudgetError, ValueError):
    """The estimate of a run breaks its budget: refused before any training (``force=True`` runs it anyway).

    ``plan`` holds the whole estimate (a :class:`pad_sdk.plans.Plan`); ``suggestions`` what to cut."""

    def __init__(self, message: str, *, budget: str, limit: float, estimate: float, plan: Any,
                 suggestions: list[str]) -> None:
        super().__init__(message, budget=budget, limit=limit, estimate=estimate)
        self.plan = plan
        self.suggestions = suggestions


class BudgetExhausted(BudgetError, RuntimeError):
    """A run reached its budget before it had a condensed set to return (during scoring, experts or probes).

    Attributes:
        stage: the stage it stopped in. done: stages finished. not_done: stages not run (or not finished).
        checkpoint: where the finished work is kept (the trajectory store of completed experts), or None.
    """

    def __init__(self, message: str, *, budget: str, limit: float, estimate: float, stage: str,
                 done: tuple[str, ...] = (), not_done: tuple[str, ...] = (), checkpoint: str | None = None) -> None:
        super().__init__(message, budget=budget, limit=limit, estimate=estimate)
        self.stage = stage
        self.done = done
        self.not_done = not_done
        self.checkpoint = checkpoint
