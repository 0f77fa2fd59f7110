"""Seconds per distillation iteration and peak memory, per unroll mode, N and synthetic batch.

Each setting runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its own. Experts
are random-walk trajectories of the right shape (the cost of an iteration does not depend on what the
experts learned), so the figures isolate the distillation step itself.

    python -m benchmarks.bench_distill                      # digits IPC 10 (cpu-small settings)
    python -m benchmarks.bench_distill --suite fmnist       # Fashion-MNIST shapes, width 128/64, N 10/20/40
    python -m benchmarks.bench_distill --suite fmnist --widths 64 --iterations 3
    python -m benchmarks.bench_distill --suite batch        # width 64, N 20, synthetic batch 25/50/100

Unroll modes: ``full`` keeps the graph of all N student steps (memory grows with N x batch);
``recompute`` keeps only the student parameters at segment boundaries and recomputes each segment's graph
in the backward pass (activation checkpointing), trading extra forward passes for memory. Each record
carries, per (width, N, batch), the recompute/full ratios of time and peak memory measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks._meta import stamp

RESULTS = Path(__file__).parent / "results"


def _one(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one setting in this process and return its timings and peak memory."""
    import torch

    from pad_sdk.config import DistillSettings
    from pad_sdk.core.augment import DiffAugment
    from pad_sdk.core.distill import Distiller, SyntheticSet
    from pad_sdk.core.networks import create_network
    from pad_sdk.core.params import ParamSpec, flatten_params
    from pad_sdk.core.seeding import make_generator, seeded

    torch.set_num_threads(spec.get("threads", 2))
    c, h, w = spec["shape"]
    k, ipc = spec["classes"], spec["ipc"]
    net = seeded(0, lambda: create_network("convnet", in_channels=c, num_classes=k, image_size=(h, w),
                                           width=spec["width"], depth=spec["depth"]))
    g = make_generator(0)
    start = flatten_params(net)
    epochs = spec["expert_epochs"] + 2
    steps = torch.randn(epochs, start.numel(), generator=g) * 1e-3
    experts = [torch.cat([start[None], start[None] + steps.cumsum(0)])]
    settings = DistillSettings(
        iterations=spec["iterations"], syn_steps=spec["syn_steps"], expert_epochs=spec["expert_epochs"],
        min_start_epoch=0, current_max_start_epoch=1, max_start_epoch=2, expansion_end=None,
        selection_ratio=spec["alpha"], unroll=spec["unroll"], batch_syn=spec.get("batch_syn"), threshold=1e9,
    )
    synthetic = SyntheticSet(torch.randn(k * ipc, c, h, w, generator=g), torch.randn(k * ipc, k, generator=g),
                             torch.tensor(0.01), torch.arange(k).repeat_interleave(ipc))
    distiller = Distiller(synthetic, net, experts, settings, g, augment=DiffAugment())
    times = []
    for _ in range(spec["iterations"]):
        t0 = time.perf_counter()
        distiller.step()
        times.append(time.perf_counter() - t0)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    steady = times[1:] or times
    return {**spec, "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "median_s_per_iteration": statistics.median(steady), "all_s": times,
            "peak_rss_gib": peak_kib / 2**20, "params": ParamSpec.of(net).numel}


def _run(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_distill", "--one", json.dumps(spec)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _suite(name: str, iterations: int, widths: tuple[int, ...] = (128, 64),
           steps: tuple[int, ...] = (10, 20, 40)) -> list[dict[str, Any]]:
    if name == "digits":
        # digits IPC 10 with the cpu-small settings: width 64, depth 2, N 20, M 3, alpha 0.5
        base = {"shape": [1, 8, 8], "classes": 10, "ipc": 10, "width": 64, "depth": 2, "syn_steps": 20,
                "expert_epochs": 3, "alpha": 0.5, "iterations": iterations}
        return [base | {"unroll": u} for u in ("full", "recompute")]
    if name == "fmnist":
        # the ANCHORS.md setting: Fashion-MNIST 28x28x1, ConvNet-D3, IPC 10, M 2, alpha 0.5, ZCA off
        specs = []
        for width in widths:
            for n in steps:
                for unroll in ("full", "recompute"):
                    specs.append({"shape": [1, 28, 28], "classes": 10, "ipc": 10, "width": width, "depth": 3,
                                  "syn_steps": n, "expert_epochs": 2, "alpha": 0.5, "unroll": unroll,
                                  "iterations": iterations})
        return specs
    if name == "batch":
        return [{"shape": [1, 28, 28], "classes": 10, "ipc": 10, "width": 64, "depth": 3, "syn_steps": 20,
                 "expert_epochs": 2, "alpha": 0.5, "unroll": u, "batch_syn": b, "iterations": iterations}
                for b in (25, 50, 100) for u in ("full", "recompute")]
    raise SystemExit(f"unknown suite {name}")


def _key(row: dict[str, Any]) -> tuple[int, int, int, str]:
    return row["width"], row["syn_steps"], row.get("batch_syn") or 0, row["unroll"]


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """recompute / full time and peak memory for every setting measured in both modes."""
    out = []
    for full in (r for r in rows if r["unroll"] == "full"):
        key = (full["width"], full["syn_steps"], full.get("batch_syn"))
        for rec in rows:
            if rec["unroll"] == "recompute" and (rec["width"], rec["syn_steps"], rec.get("batch_syn")) == key:
                out.append({"width": key[0], "syn_steps": key[1], "batch_syn": key[2],
                            "time_ratio": rec["median_s_per_iteration"] / full["median_s_per_iteration"],
                            "peak_ratio": rec["peak_rss_gib"] / full["peak_rss_gib"]})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="digits", choices=["digits", "fmnist", "batch"])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--widths", default="128,64", help="fmnist suite: network widths")
    parser.add_argument("--syn-steps", default="10,20,40", help="fmnist suite: unroll lengths N")
    parser.add_argument("--update", action="store_true",
                        help="keep the file's rows for settings not measured now (a partial rerun)")
    parser.add_argument("--output", help="results file name (default distill_<suite>.json)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(_one(json.loads(args.one))))
        return
    rows: list[dict[str, Any]] = []
    widths = tuple(int(w) for w in args.widths.split(","))
    output = RESULTS / (args.output or f"distill_{args.suite}.json")
    steps = tuple(int(n) for n in args.syn_steps.split(","))
    specs = _suite(args.suite, args.iterations, widths, steps)
    if args.update and output.exists():
        measured = {_key(spec) for spec in specs}
        rows = [r for r in json.loads(output.read_text())["rows"] if _key(r) not in measured]
    for spec in specs:
        row = _run(spec)
        rows.append(row)
        rows.sort(key=_key)
        print(f"{row['unroll']:>9} width {row['width']:>3} N {row['syn_steps']:>3} batch {row.get('batch_syn')}: "
              f"{row['median_s_per_iteration']:.3f} s/it, peak {row['peak_rss_gib']:.2f} GiB", flush=True)
        # rewritten after every setting, so a run cut short keeps what it measured
        record = stamp(suite=args.suite, rows=rows, recompute_over_full=ratios(rows))
        RESULTS.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
