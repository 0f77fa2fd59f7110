"""Translate pydantic's ``ValidationError`` into :class:`PolicyValidationError`.

Pydantic knows what went wrong; the reviewer needs to know *where* (a dotted path from the file's root)
and *what would be accepted*. The accepted values are read from the model itself (field type, bounds,
literal choices, the keys a section allows), so they cannot drift from the validation that produced the
error.
"""

from __future__ import annotations

import difflib
import types
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from policies.errors import FieldIssue, PolicyValidationError, short_repr


def translate_validation_error(
    exc: ValidationError, model: type[BaseModel], *, source: str | None = None, what: str = "policy"
) -> PolicyValidationError:
    """Build one :class:`PolicyValidationError` carrying every issue in ``exc``."""
    issues = [_issue(err, model) for err in exc.errors(include_url=False)]
    return PolicyValidationError(issues, source=source, what=what)


def _issue(err: Any, model: type[BaseModel]) -> FieldIssue:
    loc: tuple[str | int, ...] = tuple(err["loc"])
    ctx: dict[str, Any] = err.get("ctx") or {}
    kind = err["type"]
    if kind == "policy_conflict":
        # Cross-field checks name the field to change relative to the model that raised them.
        path = _join(model, (*loc, ctx["field"]))
        return FieldIssue(path, err["msg"], ctx.get("allowed") or None)
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        keys = sorted(parent.model_fields) if parent else []
        message = f"unknown key {short_repr(loc[-1])}"
        close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        return FieldIssue(_join(model, loc), message, ", ".join(keys) or None)
    if ctx.get("allowed"):
        return FieldIssue(_join(model, loc), err["msg"], str(ctx["allowed"]))
    info = _field_at(model, loc)
    message = err["msg"] if kind == "missing" else f"{err['msg']}, got {short_repr(err['input'])}"
    return FieldIssue(_join(model, loc), message, describe_field(info) if info else None)


def _join(model: type[BaseModel] | None, loc: tuple[str | int, ...]) -> str:
    """Render a pydantic location as ``bias.max_class_recall_drop`` or ``per_class_recall_full[cat]``.

    Field names are joined with dots; list indices and mapping keys (class names, group values) are
    bracketed, so a class called ``ipc`` cannot be mistaken for a field.
    """
    path = ""
    current = model
    for part in loc:
        if isinstance(part, str) and current is not None:
            # A field, or an unknown key where a field was expected: both read as fields.
            path += f".{part}" if path else part
            info = current.model_fields.get(part)
            nested = _models_in(info.annotation) if info else []
            current = nested[0] if nested else None
        else:
            path += f"[{part}]"
            current = None
    return path


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return None
        nested = _models_in(current.model_fields[part].annotation)
        current = nested[0] if nested else None
    return current


def _field_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> FieldInfo | None:
    current: type[BaseModel] | None = model
    info: FieldInfo | None = None
    for part in loc:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            # Past the last model: an item of a list or mapping field; its field describes it best.
            break
        info = current.model_fields[part]
        nested = _models_in(info.annotation)
        current = nested[0] if nested else None
    return info


def describe_field(info: FieldInfo) -> str:
    """A short English description of what a field accepts: 'a number, 0 <= value <= 1, or null'."""
    kinds = _kinds(info.annotation)
    bounds = _bounds(info.metadata)
    non_null = [k for k in kinds if k != "null"]
    text = " or ".join(non_null) if non_null else "null"
    if bounds:
        text += f", {bounds}"
    if "null" in kinds and non_null:
        text += ", or null"
    return text


def _kinds(annotation: Any) -> list[str]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return [k for arg in get_args(annotation) for k in _kinds(arg)]
    if origin is Literal:
        return ["one of " + ", ".join(repr(v) for v in get_args(annotation))]
    if origin in (tuple, list, frozenset, set):
        return ["a list"]
    if origin is dict:
        return ["a mapping"]
    simple = {type(None): "null", bool: "true or false", int: "an integer", float: "a number", str: "text"}
    if annotation in simple:
        return [simple[annotation]]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return ["a mapping with keys " + ", ".join(annotation.model_fields)]
    return [getattr(annotation, "__name__", str(annotation))]


def _bounds(metadata: list[Any]) -> str:
    low = high = ""
    for item in metadata:
        if isinstance(item, at.Ge):
            low = f"{item.ge} <= "
        elif isinstance(item, at.Gt):
            low = f"{item.gt} < "
        elif isinstance(item, at.Le):
            high = f" <= {item.le}"
        elif isinstance(item, at.Lt):
            high = f" < {item.lt}"
        elif isinstance(item, at.MinLen):
            low = f"at least {item.min_length} long"
    patterns = [item.pattern for item in metadata if isinstance(getattr(item, "pattern", None), str)]
    if patterns:
        return f"matching {patterns[0]}"
    if low.startswith("at least"):
        return low
    return f"{low}value{high}" if (low or high) else ""
