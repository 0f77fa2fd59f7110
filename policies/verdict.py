"""Verdicts: the outcome of judging measured results against a run policy.

Each rule gives ``pass``, ``warn`` or ``fail`` with the measured value, the limit and a sentence for the
reviewer. The warn band is one documented scheme for every limit rule:

* an "at least L" rule with margin m: ``fail`` if measured < L, ``warn`` if L <= measured < L + m,
  ``pass`` if measured >= L + m;
* an "at most L" rule with margin m: ``fail`` if measured > L, ``warn`` if L - m < measured <= L,
  ``pass`` if measured <= L - m.

So a value exactly at the limit meets it (inclusive limits) but warns when a margin is set. Comparisons
tolerate 1e-9 of float noise. A rule whose measurement is missing is ``warn`` ("not measured"), never a
silent ``pass``: a reviewer must see that a check was not made.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from policies._base import EPS


class Status(StrEnum):
    """Outcome of one rule, ordered pass < warn < fail."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def severity(self) -> int:
        """0 for pass, 1 for warn, 2 for fail: the overall verdict is the most severe rule."""
        return _SEVERITY[self]


_SEVERITY = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


def grade_at_least(measured: float, limit: float, margin: float = 0.0) -> Status:
    """Grade an "at least ``limit``" rule with a warn band of ``margin`` above the limit."""
    tol = EPS * max(1.0, abs(limit))
    if measured < limit - tol:
        return Status.FAIL
    if margin > 0 and measured < limit + margin - tol:
        return Status.WARN
    return Status.PASS


def grade_at_most(measured: float, limit: float, margin: float = 0.0) -> Status:
    """Grade an "at most ``limit``" rule with a warn band of ``margin`` below the limit."""
    tol = EPS * max(1.0, abs(limit))
    if measured > limit + tol:
        return Status.FAIL
    if margin > 0 and measured > limit - margin + tol:
        return Status.WARN
    return Status.PASS


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuleResult(_Frozen):
    """The outcome of one rule.

    ``rule`` is a stable id (``acceptance.min_retention``) that reports and dashboards may key on.
    ``measured`` is the value compared with ``limit`` (for per-class rules: the worst class, named in
    ``subject``); ``offenders`` lists every class or group that did not pass. ``measured`` is ``None`` when
    the rule could not be measured.
    """

    rule: str
    status: Status
    measured: float | None
    limit: float | None
    message: str
    subject: str | None = None
    offenders: tuple[str, ...] = ()


class ClassRemediation(_Frozen):
    """A suggested fix for a class that failed a per-class recall rule.

    ``extra_ipc = max(1, ceil(current_ipc * shortfall / max(condensed_recall, 0.1)))`` where
    ``shortfall = target_recall - condensed_recall``. That assumes recall grows in proportion to the images
    per class, which holds only roughly (returns diminish), so treat it as the next step to try and
    re-judge, not a guarantee. The 0.1 floor keeps a class with (near) zero recall from asking for an
    unbounded number of images. When the current IPC is unknown, ``current_ipc`` is ``None`` and the
    suggestion is +1.
    """

    class_name: str
    rules: tuple[str, ...]
    condensed_recall: float
    target_recall: float
    shortfall: float
    current_ipc: int | None
    extra_ipc: int = Field(ge=1)

    @property
    def suggested_ipc(self) -> int | None:
        """The images per class to try next for this class, when the current IPC is known."""
        return None if self.current_ipc is None else self.current_ipc + self.extra_ipc


class Verdict(_Frozen):
    """Every rule's outcome, the overall status (the most severe rule) and the offered remediation."""

    status: Status
    rules: tuple[RuleResult, ...]
    remediation: tuple[ClassRemediation, ...] = ()
    policy_name: str | None = None

    @classmethod
    def from_rules(
        cls,
        rules: list[RuleResult],
        remediation: list[ClassRemediation] | None = None,
        policy_name: str | None = None,
    ) -> Verdict:
        """Build a verdict whose status is the most severe of ``rules`` (pass when there are none)."""
        worst = max((r.status for r in rules), key=lambda s: s.severity, default=Status.PASS)
        return cls(
            status=worst, rules=tuple(rules), remediation=tuple(remediation or ()), policy_name=policy_name
        )

    @property
    def passed(self) -> bool:
        """True unless a rule failed (warnings do not block)."""
        return self.status is not Status.FAIL

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        """The rules that failed."""
        return tuple(r for r in self.rules if r.status is Status.FAIL)

    @property
    def warnings(self) -> tuple[RuleResult, ...]:
        """The rules that warned (near the limit, or not measured)."""
        return tuple(r for r in self.rules if r.status is Status.WARN)

    def rule(self, rule_id: str) -> RuleResult:
        """The first result for ``rule_id``; ``KeyError`` listing the ids present when it is absent."""
        for r in self.rules:
            if r.rule == rule_id:
                return r
        raise KeyError(f"no result for rule {rule_id!r}; present: {', '.join(r.rule for r in self.rules)}")

    def to_text(self) -> str:
        """A plain-text summary for logs, CLI output and review notes."""
        counts = {s: sum(r.status is s for r in self.rules) for s in Status}
        name = f" {self.policy_name!r}" if self.policy_name else ""
        head = (
            f"{self.status.value.upper()}: policy{name} - {counts[Status.PASS]} pass, "
            f"{counts[Status.WARN]} warn, {counts[Status.FAIL]} fail"
        )
        lines = [head]
        for r in self.rules:
            lines.append(f"  [{r.status.value}] {r.rule}: {r.message}")
        if self.remediation:
            lines.append("  remediation:")
            for fix in self.remediation:
                now = "?" if fix.current_ipc is None else str(fix.current_ipc)
                lines.append(
                    f"    - class {fix.class_name!r}: recall {fix.condensed_recall:.3f} must reach "
                    f"{fix.target_recall:.3f}; raise its images per class from {now} by "
                    f"+{fix.extra_ipc} ({', '.join(fix.rules)})"
                )
        return "\n".join(lines)
