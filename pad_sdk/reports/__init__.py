"""Review reports: one :class:`RunReport` per run or sweep, saved as JSON for machines and HTML for people.

::

    from pad_sdk.reports import Prices, build_report, save_report
    results = pad_sdk.sweep(source, ipcs=[1, 10, 50], policy="policy.yaml")
    manifests = [r.save(f"s3://bucket/condensed/ipc{r.config.ipc}") for r in results]
    report = build_report(results, manifests=manifests, prices=Prices(storage_per_gb_month=0.021))
    report.recommended_ipc            # smallest IPC whose verdict passes
    save_report(report, "s3://bucket/condensed/")   # report.json + report.html
"""

from pad_sdk.reports.cost import CostSection, Prices, StageCost
from pad_sdk.reports.html import load_report, render_html, save_report
from pad_sdk.reports.model import (
    AccuracySection,
    EvalSummary,
    IpcEntry,
    Provenance,
    RunReport,
    build_report,
    recommend_ipc,
)

__all__ = [
    "AccuracySection",
    "CostSection",
    "EvalSummary",
    "IpcEntry",
    "Prices",
    "Provenance",
    "RunReport",
    "StageCost",
    "build_report",
    "load_report",
    "recommend_ipc",
    "render_html",
    "save_report",
]
