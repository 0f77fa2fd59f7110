"""mkdocs hook: the Benchmarks page's tables, rendered at build time from ``benchmarks/results/*.json``.

A placeholder line ``<!-- benchmarks: NAME -->`` in a page is replaced by the table of that result file, or
by a note saying it has not been measured yet and which command measures it; ``<!-- benchmarks-summary:
NAME -->`` by a section of ``benchmarks/results/SUMMARY.md``, rendered by the same code that writes it.
The page therefore always shows the figures that are committed, never a copy that could fall behind them.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
_PLACEHOLDER = re.compile(r"^<!-- benchmarks: (?P<name>[\w.-]+) -->$", re.MULTILINE)
_SECTION = re.compile(r"^<!-- benchmarks-summary: (?P<name>[\w.-]+) -->$", re.MULTILINE)
COMMANDS = {
    "connectors": "nice -n 5 .venv/bin/python -m benchmarks.bench_connectors",
    "distill": "nice -n 5 .venv/bin/python -m benchmarks.bench_distill (add --suite fmnist for Fashion-MNIST)",
    "comparison": "nice -n 5 .venv/bin/python benchmarks/digits_comparison.py part ipc1 (then ... merge)",
    "estimate": "nice -n 5 .venv/bin/python -m benchmarks.bench_estimate",
}


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _missing(name: str, kind: str) -> str:
    return f"*Not measured yet* (`benchmarks/results/{name}.json` is absent). Measure it with `{COMMANDS[kind]}`."


def connectors(data: dict[str, Any]) -> str:
    reads = [("local Parquet", "read_local_parquet"), ("local IDX (gzip)", "read_local_idx_gz"),
             ("Parquet on a local S3 server (moto)", "read_s3_parquet")]
    rows = [[label, f"{data[key]['rows']:,}", f"{data[key]['seconds_best']:.2f}", f"{data[key]['images_per_s']:,}"]
            for label, key in reads if key in data]
    text = _table(["read", "rows", "best of 3 (s)", "images/s"], rows)
    stream = data.get("streaming_peak_memory", {}).get("runs", [])
    if stream:
        text += "\n\nPeak memory while streaming batches of " + f"{data['batch_size']:,} images:\n\n" + _table(
            ["dataset size (batches)", "rows", "dataset bytes", "peak bytes", "peak / one batch"],
            [[r["dataset_x_batch"], f"{r['rows']:,}", f"{r['dataset_bytes']:,}", f"{r['peak_bytes']:,}",
              r["peak_over_batch"]] for r in stream])
    return text + f"\n\nData: {data.get('data', '?')}, image shape {data.get('image_shape')}."


def distill(data: dict[str, Any]) -> str:
    rows = [[f"{'x'.join(map(str, r['shape']))}", r["ipc"], r["width"], r["syn_steps"], r.get("batch_syn", "all"),
             r["unroll"], f"{r['median_s_per_iteration']:.2f}", f"{r['peak_rss_gib']:.2f}"]
            for r in data.get("rows", [])]
    text = _table(["image", "IPC", "width", "N", "batch_syn", "unroll", "median s / iteration",
                   "peak memory (GiB)"], rows)
    facts = [f"`{data[k]}`" if k == "command" else str(data[k]) for k in ("command", "commit", "machine", "timestamp")
             if k in data]
    return text + ("\n\nRun: " + ", ".join(facts) + "." if facts else "")


def comparison(data: dict[str, Any]) -> str:
    rows = [[r["method"], r["ipc"], f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}", len(r["accuracies"]),
             f"{r['seconds']:.1f}", f"{r['condensed_bytes']:,}"] for r in data.get("rows", [])]
    text = _table(["method", "IPC", "accuracy % (mean ± std over seeds)", "seeds", "condensation s / run",
                   "bytes"], rows)
    settings = data.get("settings", {})
    if settings:
        text += (f"\n\nSettings: preset `{settings.get('preset')}`, overrides "
                 f"`{json.dumps(settings.get('overrides', {}))}`, {settings.get('eval_networks', 1)} evaluation "
                 f"network(s) per seed.")
    shared = data.get("shared_seconds", {})
    if shared:
        text += " Shared, once for all methods: " + ", ".join(f"{k} {v:.0f} s" for k, v in shared.items()) + "."
    return text


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def estimate(data: dict[str, Any]) -> str:
    rows = [[r["case"], r["preset"], r["ipc"], r["runtime"], f"{r['train_images']:,}", f"{r['estimated_s']:.0f}",
             f"{r['actual_s']:.0f}", f"{100 * r['time_error']:+.0f} %", r["estimated_peak_host_mib"],
             r["actual_peak_host_mib"], f"{100 * r['memory_error']:+.0f} %",
             f"{r['load_average_before']:.1f} / {_num(r.get('calibration_load_average'))} / "
             f"{r['load_average_after']:.1f}", _num(r.get("calibration_cpu_share"), "{:.0%}"),
             r.get("commit", data.get("commit", "-"))] for r in data.get("rows", [])]
    text = _table(["case", "preset", "IPC", "runtime", "train images", "estimated s", "measured s", "time error",
                   "estimated peak MiB", "measured peak MiB", "memory error", "load before / calibrating / after",
                   "CPU share calibrating", "commit"], rows)
    stages = [[r["case"], stage, f"{seconds:.1f}", "-" if r["actual_stages"].get(stage) is None
               else f"{r['actual_stages'][stage]:.1f}"]
              for r in data.get("rows", []) for stage, seconds in r["estimated_stages"].items()]
    text += "\n\nPer stage (seconds; calibration has no separate measurement):\n\n" + _table(
        ["case", "stage", "estimated", "measured"], stages)
    facts = [f"`{data[k]}`" if k == "command" else str(data[k]) for k in ("command", "commit", "machine", "timestamp")
             if k in data]
    return text + ("\n\nRun: " + ", ".join(facts) + "." if facts else "")


def render(name: str) -> str:
    kind = ("connectors" if name.startswith("connectors") else "distill" if name.startswith("distill")
            else "estimate" if name.startswith("estimate") else "comparison")
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return _missing(name, kind)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {"connectors": connectors, "distill": distill, "comparison": comparison,
                "estimate": estimate}[kind](data)
    except (KeyError, TypeError, ValueError) as exc:  # a result file in a newer layout: say so, do not guess
        return f"*`benchmarks/results/{name}.json` could not be tabulated ({type(exc).__name__}: {exc}).*"


def summary_section(name: str) -> str:
    """A section of ``benchmarks/results/SUMMARY.md`` (``python -m benchmarks.summary`` writes the same lines),
    without its heading: the page gives its own heading and protocol."""
    if str(RESULTS.parents[1]) not in sys.path:
        sys.path.insert(0, str(RESULTS.parents[1]))
    from benchmarks import summary

    sections = {"quality-cpu": lambda: summary.quality_section("cpu"),
                "quality-paper": lambda: summary.quality_section("paper"),
                "scaling": summary.scaling_section, "ray": summary.ray_section, "gpu": summary.gpu_section}
    try:
        lines = sections[name]()
    except (KeyError, TypeError, ValueError) as exc:  # a record in a newer layout: say so, do not guess
        return f"*Section {name!r} of the benchmark summary could not be rendered ({type(exc).__name__}: {exc}).*"
    while lines and (lines[0].startswith("## ") or not lines[0].strip()):
        lines = lines[1:]
    return "\n".join(lines).rstrip()


def on_page_markdown(markdown: str, **_: Any) -> str:
    markdown = _SECTION.sub(lambda m: summary_section(m["name"]), markdown)
    return _PLACEHOLDER.sub(lambda m: render(m["name"]), markdown)
