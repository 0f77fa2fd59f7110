"""Render a :class:`RunReport` as one self-contained HTML file, and save a report as JSON + HTML."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fsspec
import jinja2
import pydantic

from pad_sdk.errors import ConnectorError, DataError
from pad_sdk.reports._format import money, num, pct, runs, secs, size
from pad_sdk.reports._template import REPORT_TEMPLATE
from pad_sdk.reports.figures import data_uri, loss_curves_png, recall_bars_png, sweep_png
from pad_sdk.reports.model import RunReport

JSON_NAME = "report.json"
HTML_NAME = "report.html"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(size=size, money=money, secs=secs, pct=pct, num=num, runs=runs)
    return env


def render_html(report: RunReport) -> str:
    """The report as one HTML document: inline CSS, figures as PNG data URIs, no scripts, no external URLs."""
    names = report.provenance.class_names
    figures: dict[str, Any] = {
        "recall": {e.ipc: data_uri(recall_bars_png(e, names)) for e in report.entries},
        "loss": data_uri(loss_curves_png(report.entries)),
    }
    if report.kind == "sweep":
        figures["sweep"] = data_uri(
            sweep_png(report.entries, report.headline.cost.prices.currency, report.recommended_ipc))
    return _environment().from_string(REPORT_TEMPLATE).render(r=report, figs=figures)


def write_bytes(uri: str, data: bytes, storage_options: Mapping[str, Any] | None) -> None:
    """Write ``data`` to ``uri`` (any fsspec URL), creating the parent directory."""
    try:
        fs, path = fsspec.core.url_to_fs(uri, **dict(storage_options or {}))
        parent = path.rsplit("/", 1)[0]
        if parent and parent != path:
            fs.makedirs(parent, exist_ok=True)
        fs.pipe_file(path, data)
    except (OSError, ValueError, ImportError) as exc:
        raise ConnectorError(f"could not write the report: {exc}", uri=uri) from exc


def save_report(report: RunReport, directory: str, *, storage_options: Mapping[str, Any] | None = None,
                html: bool = True) -> dict[str, str]:
    """Write ``report.json`` (and ``report.html``) under ``directory`` (any fsspec URL); returns their URIs."""
    base = directory.rstrip("/")
    written = {"json": f"{base}/{JSON_NAME}"}
    write_bytes(written["json"], report.to_json().encode(), storage_options)
    if html:
        written["html"] = f"{base}/{HTML_NAME}"
        write_bytes(written["html"], render_html(report).encode(), storage_options)
    return written


def load_report(uri: str, *, storage_options: Mapping[str, Any] | None = None) -> RunReport:
    """Read a ``report.json`` written by :func:`save_report`."""
    try:
        with fsspec.open(uri, "rb", **dict(storage_options or {})) as handle:
            text = handle.read()
    except (OSError, ValueError, ImportError) as exc:
        raise ConnectorError(f"could not read the report: {exc}", uri=uri) from exc
    try:
        return RunReport.from_json(text)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "report"
        raise DataError(f"{uri} is not a pad-sdk report ({exc.error_count()} problems; first: {where}: "
                        f"{first['msg']})", field=where) from exc
