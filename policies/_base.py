"""Shared model configuration and the small helpers every policy module uses."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

# Comparisons against a limit tolerate float noise: 0.56 / 0.8 is 0.7000000000000001, and a reviewer who
# wrote "at least 0.7" expects that to meet the limit. 1e-9 is far below any meaningful accuracy step.
EPS = 1e-9


class PolicyModel(BaseModel):
    """Base of every policy and result model: frozen, unknown keys rejected, no silent coercion.

    ``strict=True`` stops pydantic from turning ``"0.5"`` into ``0.5`` or ``1`` into ``True``: a policy
    file with a quoted number is a mistake worth reporting, not guessing. Integers are still accepted where
    a float is expected (``min_retention: 1``). NaN and infinity are rejected: no limit can compare to them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    # The name used in error messages ("invalid run policy ..."); subclasses override.
    _what: ClassVar[str] = "policy"

    @classmethod
    def validate_or_raise(cls, data: Any, *, source: str | None = None) -> Self:
        """``model_validate`` that raises :class:`~policies.errors.PolicyValidationError` instead.

        Pydantic's own error is translated at this boundary so callers see one exception type that names
        the field path and the allowed values (STYLE habit 5).
        """
        from policies._translate import translate_validation_error  # local: _translate imports models

        if isinstance(data, cls):
            return data
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise translate_validation_error(exc, cls, source=source, what=cls._what) from exc


def conflict(field: str, message: str, allowed: str | None = None) -> PydanticCustomError:
    """A cross-field error that names the field to change (relative to the model that raises it).

    Model validators raise this instead of ``ValueError`` so the translated error points at
    ``bias.warn_margin`` rather than at ``bias`` as a whole.
    """
    # Braces in the message would be read as format fields by pydantic-core; double them.
    safe = message.replace("{", "{{").replace("}", "}}")
    return PydanticCustomError("policy_conflict", safe, {"field": field, "allowed": allowed or ""})


def pct(value: float) -> str:
    """0.912 -> '91.2%': how accuracies and shares are shown to reviewers."""
    return f"{value * 100:.1f}%"


def pts(value: float) -> str:
    """0.05 -> '5.0 points': how differences of accuracies are shown."""
    return f"{value * 100:.1f} points"
