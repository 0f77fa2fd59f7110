"""mkdocs hook: the Benchmarks page's tables, rendered at build time from ``benchmarks/results/*.json``.

A placeholder line ``<!-- benchmarks: NAME -->`` in a page is replaced by the table of that result file, or
by a note saying it has not been measured yet and which command measures it. The page therefore always
shows the figures that are committed, never a copy that could fall behind them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
_PLACEHOLDER = re.compile(r"^<!-- benchmarks: (?P<name>[\w.-]+) -->$", re.MULTILINE)
COMMANDS = {
    "connectors": "nice -n 5 .venv/bin/python -m benchmarks.bench_connectors",
    "distill": "nice -n 5 .venv/bin/python -m benchmarks.bench_distill (add --suite fmnist for Fashion-MNIST)",
    "comparison": "nice -n 5 .venv/bin/python benchmarks/digits_comparison.py part ipc1 (then ... merge)",
    "ray": "nice -n 5 .venv/bin/python benchmarks/bench_ray.py",
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


def ray(data: dict[str, Any]) -> str:
    startup = data["ray_startup"]
    text = (f"Fixed start-up: embedded cluster {startup['embedded_cluster_start_seconds']:.1f} s; Ray Train run "
            f"{startup['trainer_fixed_overhead_seconds_1_worker']:.1f} s with 1 worker, "
            f"{startup['trainer_fixed_overhead_seconds_2_workers']:.1f} s with 2.\n\n")
    runs = [("in-process", data["in_process"]), ("Ray, 1 worker", data["ray_1_worker"]),
            ("Ray, 2 workers", data["ray_2_workers"])]
    text += _table(["runtime", "segments / iteration", "s / iteration", "mean matching loss", "accuracy %"],
                   [[label, r.get("segments_per_iteration", 1), f"{r['seconds_per_iteration']:.2f}",
                     f"{r['mean_matching_loss']:.4f}",
                     f"{100 * r['accuracy_mean']:.1f} ± {100 * r['accuracy_std']:.1f}"]
                    for label, r in runs])
    experts = data.get("experts", {})
    if experts:
        text += (f"\n\nExperts: {experts['local_seconds']:.0f} s in-process, {experts['ray_tasks_seconds']:.0f} s as "
                 f"Ray tasks; scoring on the driver {experts['scoring_seconds_driver']:.0f} s.")
    if data["ray_1_worker"].get("bit_identical_to_in_process"):
        text += " One Ray worker gave a condensed set bit-identical to the in-process one."
    settings = data.get("settings", {})
    text += (f"\n\nSettings: {settings.get('data')}, preset `{settings.get('preset')}` at IPC {settings.get('ipc')}, "
             f"{settings.get('iterations')} iterations, torch threads {settings.get('torch_threads')}. "
             f"Run: `{data.get('command')}`, commit {data.get('commit')}, {data.get('machine', {}).get('note', '')}.")
    return text


def render(name: str) -> str:
    kind = ("connectors" if name.startswith("connectors") else "distill" if name.startswith("distill")
            else "ray" if name.startswith("ray") else "comparison")
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return _missing(name, kind)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {"connectors": connectors, "distill": distill, "comparison": comparison, "ray": ray}[kind](data)
    except (KeyError, TypeError, ValueError) as exc:  # a result file in a newer layout: say so, do not guess
        return f"*`benchmarks/results/{name}.json` could not be tabulated ({type(exc).__name__}: {exc}).*"


def on_page_markdown(markdown: str, **_: Any) -> str:
    return _PLACEHOLDER.sub(lambda m: render(m["name"]), markdown)
