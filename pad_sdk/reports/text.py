"""Terminal views of a report: rich tables that the CLI prints (nothing here prints by itself)."""

from __future__ import annotations

from rich.table import Table

from pad_sdk.reports._format import money, pct, runs, size
from pad_sdk.reports.model import RunReport

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def summary_table(report: RunReport) -> Table:
    """One row per IPC: accuracy (full / random / condensed), retention, size, cost, break-even, verdict."""
    currency = report.headline.cost.prices.currency
    table = Table(title=f"{report.title}: overall {report.overall.value.upper()}"
                  + (f", recommended IPC {report.recommended_ipc}" if report.kind == "sweep" else ""))
    for column in ("IPC", "images", "full data", "random", "condensed", "retention", "export", "reduction",
                   f"storage/mo ({currency})", "break-even", "verdict"):
        table.add_column(column, justify="right")
    for e in report.entries:
        acc = e.accuracy
        condensed = "-" if acc.condensed is None else f"{pct(acc.condensed.mean)} ± {pct(acc.condensed.std)}"
        status = e.verdict.status.value
        marker = " *" if e.ipc == report.recommended_ipc and report.kind == "sweep" else ""
        table.add_row(
            f"{e.ipc}{marker}", str(e.images), pct(acc.full.mean if acc.full else None),
            pct(acc.random.mean if acc.random else None), condensed, pct(acc.retention),
            size(e.cost.condensed_bytes), f"{e.cost.reduction_ratio:,.1f}x",
            money(e.cost.condensed_storage_month, currency).removesuffix(f" {currency}"),
            runs(e.cost.break_even_runs).replace(" training runs", " runs"),
            f"[{_STYLE[status]}]{status}[/]",
        )
    return table


def verdict_lines(report: RunReport) -> list[str]:
    """The failed and warned rules of every IPC, one line each (passes are in the HTML report)."""
    lines = []
    for e in report.entries:
        basis = "default limits" if e.verdict_basis == "default" else f"policy {e.verdict.policy_name or ''}".strip()
        for rule in e.verdict.rules:
            if rule.status.value != "pass":
                lines.append(f"IPC {e.ipc} [{rule.status.value}] {rule.rule} ({basis}): {rule.message}")
        check, fallback = e.decisions.get("subset_check"), e.decisions.get("fallback")
        if fallback:
            lines.append(f"IPC {e.ipc} [fallback] the delivered set is the {fallback['subset']} subset: "
                         f"{fallback['reason']}")
        elif check and check["subset_is_better"]:
            best = check["best_subset"]
            lines.append(f"IPC {e.ipc} [subset] a real {best} subset scored {check['subsets'][best]:.1%} on the "
                         f"validation split against {check['condensed']:.1%} for the condensed set; consider it "
                         "(fallback='subset') or a larger IPC")
    return lines
