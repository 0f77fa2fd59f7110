"""How close the opening estimate comes: predicted against measured time and peak memory, per case.

Every case runs ``pad_sdk.distill`` in a fresh subprocess (so that its peak resident memory is its own); the
run estimates itself before training (the estimate it logs as ``run.estimate`` and keeps in
``result.estimate``), then measures. Recorded per case: the estimate per stage and in total, the measured
stage times (``result.timings``) and total, the process's peak RSS (``ru_maxrss``), and the load average
before and after (the machine is shared: figures taken under another process's load are noisy).

    nice -n 5 python -m benchmarks.bench_estimate                  # every case
    nice -n 5 python -m benchmarks.bench_estimate --cases digits-tiny fmnist-tiny
    python -m benchmarks.bench_estimate --cases digits-cpu-small --keep   # rerun one, keep the other rows

Each row records the commit, command and load it ran with (``--keep`` rows may come from earlier runs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._meta import commit, stamp

RESULTS = Path(__file__).resolve().parent / "results"
# name: (data, train images per class (None: all), preset, ipc, runtime)
CASES: dict[str, tuple[str, int | None, str, int, str]] = {
    "digits-tiny": ("digits", None, "tiny", 10, "local"),
    "digits-cpu-small": ("digits", None, "cpu-small", 1, "local"),
    "fmnist-tiny": ("fmnist", 100, "tiny", 10, "local"),
    "fmnist-cpu-small": ("fmnist", 50, "cpu-small", 1, "local"),
    "digits-tiny-ray": ("digits", None, "tiny", 10, "ray"),
}
FMNIST_TEST_ROWS = 2000  # of the official 10,000 test images, seeded: the holdout every evaluation tests on
RAY_WORKERS = 2  # distillation workers of the Ray case, on an embedded cluster bound to 127.0.0.1
# as tests/conftest.py's RAY_ENV: loopback only, no auth token file, no usage stats, quick Train V2 start-up
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
           "RAY_TRAIN_METRICS_ENABLED": "0"}


def _data(kind: str, per_class: int | None) -> dict[str, Any]:
    if kind == "digits":
        from pad_sdk.demo import load_digits_arrays

        images, labels, names = load_digits_arrays()
        return {"source": images, "labels": labels, "class_names": names}
    import torch

    from benchmarks.bench_quality import load_fashion_mnist

    raw = load_fashion_mnist(per_class)
    rows = torch.randperm(len(raw.test_labels), generator=torch.Generator().manual_seed(0))[:FMNIST_TEST_ROWS]
    return {"source": raw.train_images, "labels": raw.train_labels, "test_images": raw.test_images[rows],
            "test_labels": raw.test_labels[rows], "class_names": raw.class_names}


def child(name: str) -> dict[str, Any]:
    """One case in this (fresh) process: the run's own estimate against what it measured."""
    import pad_sdk

    kind, per_class, preset, ipc, runtime = CASES[name]
    data = _data(kind, per_class)
    began = time.perf_counter()
    if runtime == "ray":
        from pad_sdk.runtime.ray import RayRuntime

        with RayRuntime(num_workers=RAY_WORKERS) as engine:
            result = pad_sdk.distill(**data, ipc=ipc, preset=preset, runtime=engine)
    else:
        result = pad_sdk.distill(**data, ipc=ipc, preset=preset)
    wall = time.perf_counter() - began
    estimate = result.estimate or {}
    actual = {k: round(float(v), 2) for k, v in result.timings.items()}
    return {
        "case": name, "data": kind, "train_per_class": per_class, "train_images": estimate.get("train_images"),
        "preset": preset, "ipc": ipc, "runtime": runtime,
        "estimated_stages": {s["stage"]: round(s["seconds"], 2) for s in estimate.get("stages", [])},
        "actual_stages": actual,
        "estimated_s": round(float(estimate.get("seconds", 0.0)), 1), "actual_s": round(wall, 1),
        "estimated_peak_host_mib": round(estimate.get("peak_host_bytes", 0) / 2**20),
        "actual_peak_host_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "calibration_load_average": estimate.get("load_average"),
        "calibration_cpu_share": estimate.get("cpu_share"),
        "estimate_notes": estimate.get("notes", []),
        **({"ray_workers": RAY_WORKERS} if runtime == "ray" else {}),
    }


def run(cases: list[str], keep: bool = False) -> Path:
    at_commit = commit()
    path = RESULTS / "estimate.json"
    kept: list[dict[str, Any]] = []
    if keep and path.exists():
        old = json.loads(path.read_text())
        kept = [{"commit": old.get("commit"), "command": old.get("command"), **row} for row in old.get("rows", [])
                if row["case"] not in cases]
    rows: list[dict[str, Any]] = []
    for name in cases:
        load_before = round(os.getloadavg()[0], 2)
        env = {**os.environ, **(RAY_ENV if CASES[name][4] == "ray" else {})}
        done = subprocess.run([sys.executable, "-m", "benchmarks.bench_estimate", "--child", name],
                              capture_output=True, text=True, check=False, env=env)
        line = next((x for x in reversed(done.stdout.splitlines()) if x.startswith("{")), None)
        if done.returncode != 0 or line is None:
            print(f"case {name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr, flush=True)
            continue
        row = json.loads(line)
        row["load_average_before"], row["load_average_after"] = load_before, round(os.getloadavg()[0], 2)
        row["time_error"] = round(row["estimated_s"] / row["actual_s"] - 1, 3)
        row["memory_error"] = round(row["estimated_peak_host_mib"] / row["actual_peak_host_mib"] - 1, 3)
        header = stamp(at_commit=at_commit)
        rows.append({"commit": at_commit, "command": header["command"], **row})
        # written after every case, so that a run cut short keeps the cases it finished
        order = {case: i for i, case in enumerate(CASES)}
        merged = sorted(kept + rows, key=lambda r: order.get(r["case"], len(order)))
        path.write_text(json.dumps({**header, "rows": merged}, indent=2) + "\n")
        print(f"{name}: estimated {row['estimated_s']} s vs {row['actual_s']} s ({row['time_error']:+.0%}); "
              f"peak {row['estimated_peak_host_mib']} vs {row['actual_peak_host_mib']} MiB "
              f"({row['memory_error']:+.0%}); load {load_before} -> {row['load_average_after']}", flush=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--keep", action="store_true", help="keep the recorded rows of the cases not rerun")
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)), flush=True)
        return
    print(f"wrote {run(args.cases, keep=args.keep)}")


if __name__ == "__main__":
    main()
