"""Building blocks that turn one limit and some measurements into a :class:`RuleResult` with a sentence."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from policies.verdict import RuleResult, Status, grade_at_least, grade_at_most

Fmt = Callable[[float], str]

# Long offender lists are cut in the sentence (all of them stay in RuleResult.offenders).
_MAX_NAMED = 8


def not_measured(rule: str, limit: float | None, missing: str, subject: str | None = None) -> RuleResult:
    """A rule that could not be checked: ``warn``, so a missing measurement is never a silent pass."""
    return RuleResult(
        rule=rule,
        status=Status.WARN,
        measured=None,
        limit=limit,
        subject=subject,
        message=f"Not measured: {missing} was not reported, so this rule could not be checked.",
    )


def single(
    rule: str,
    measured: float,
    limit: float,
    margin: float,
    *,
    at_least: bool,
    quantity: str,
    fmt: Fmt,
    warn_note: str | None = None,
) -> RuleResult:
    """One measured value against one limit, e.g. accuracy retained or wall time.

    ``warn_note`` replaces the default "within the warn margin of ..." clause of a warning.
    """
    grade = grade_at_least if at_least else grade_at_most
    status = grade(measured, limit, margin)
    bound = "at least" if at_least else "at most"
    if status is Status.PASS:
        message = f"{quantity} is {fmt(measured)}, meeting the limit of {bound} {fmt(limit)}."
    elif status is Status.WARN:
        note = warn_note or f"within the warn margin of {fmt(margin)}"
        message = f"{quantity} is {fmt(measured)}, meeting the limit of {bound} {fmt(limit)} but {note}."
    else:
        message = f"{quantity} is {fmt(measured)}, breaking the limit of {bound} {fmt(limit)}."
    return RuleResult(rule=rule, status=status, measured=measured, limit=limit, message=message)


def per_subject(
    rule: str,
    values: Mapping[str, float],
    limit: float,
    margin: float,
    *,
    at_least: bool,
    what: str,
    quantity: str,
    fmt: Fmt,
    order: list[str] | None = None,
) -> RuleResult:
    """The same limit applied to every class or group; ``measured`` is the worst subject's value.

    ``values`` must not be empty. ``order`` fixes the order offenders are listed in (class order).
    """
    grade = grade_at_least if at_least else grade_at_most
    names = order if order is not None else list(values)
    statuses = {name: grade(values[name], limit, margin) for name in names}
    worst_name = (min if at_least else max)(names, key=lambda name: values[name])
    status = max(statuses.values(), key=lambda s: s.severity)
    offenders = tuple(name for name in names if statuses[name] is not Status.PASS)
    bound = f"{'at least' if at_least else 'at most'} {fmt(limit)}"
    n = len(names)
    if status is Status.PASS:
        message = (
            f"All {n} {what} meet the limit of {bound} for {quantity} "
            f"(worst: {worst_name!r} at {fmt(values[worst_name])})."
        )
    elif status is Status.WARN:
        verb = "is" if len(offenders) == 1 else "are"
        message = (
            f"All {n} {what} meet the limit of {bound} for {quantity}, but {len(offenders)} {verb} "
            f"within the warn margin of {fmt(margin)}: {_named(offenders, values, fmt)}."
        )
    else:
        failing = tuple(name for name in names if statuses[name] is Status.FAIL)
        message = (
            f"{len(failing)} of {n} {what} break the limit of {bound} for {quantity}: "
            f"{_named(failing, values, fmt)}."
        )
    return RuleResult(
        rule=rule,
        status=status,
        measured=values[worst_name],
        limit=limit,
        message=message,
        subject=worst_name,
        offenders=offenders,
    )


def _named(names: tuple[str, ...], values: Mapping[str, float], fmt: Fmt) -> str:
    shown = [f"{name!r} ({fmt(values[name])})" for name in names[:_MAX_NAMED]]
    if len(names) > _MAX_NAMED:
        shown.append(f"and {len(names) - _MAX_NAMED} more")
    return ", ".join(shown)
