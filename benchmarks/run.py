"""``make bench``: quality, speed, memory and scaling figures into benchmarks/results/ (JSON + SUMMARY.md).

    python -m benchmarks.run                                # profile cpu, every part (a few hours on 2 cores)
    python -m benchmarks.run --only speed,scaling --quick   # fewer iterations / smaller sizes
    python -m benchmarks.run --profile paper --only quality # published settings; run it on a GPU machine
    python -m benchmarks.run --only summary                 # rewrite SUMMARY.md from the JSON records

Each part runs in its own process (under ``nice`` when available) and writes its JSON record(s) as it goes,
with the command, commit, machine and time stamp; SUMMARY.md is rewritten at the end from all records.
Fashion-MNIST comes from the Debian package ``dataset-fashion-mnist`` (installed with apt-get when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import summary
from benchmarks._meta import stamp
from benchmarks.bench_quality import PARTS as QUALITY_PARTS

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
PARTS = ("quality", "speed", "scaling", "ray", "connectors")


def ensure_fashion_mnist() -> None:
    """Install the Debian package when the IDX files are missing; otherwise say how to get them."""
    if FMNIST_DIR.is_dir() and any(FMNIST_DIR.glob("train-images-idx3-ubyte*")):
        return
    apt = shutil.which("apt-get")
    if apt is None:
        raise SystemExit(f"Fashion-MNIST is missing ({FMNIST_DIR}) and apt-get is not available: install the "
                         "Debian package dataset-fashion-mnist, or put the four IDX files there.")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    print("installing dataset-fashion-mnist with apt-get", flush=True)
    done = subprocess.run([*sudo, apt, "install", "-y", "dataset-fashion-mnist"], check=False)
    if done.returncode != 0 or not FMNIST_DIR.is_dir():
        raise SystemExit("apt-get install dataset-fashion-mnist failed; run it as root (then make bench again).")


def commands(part: str, profile: str, quick: bool) -> list[list[str]]:
    """The harness commands of one part (module and arguments)."""
    if part == "quality":
        parts = "ipc10,ipc1" if quick else ("ipc10" if profile == "paper" else ",".join(QUALITY_PARTS))
        return [["benchmarks.bench_quality", "--profile", profile, "--parts", parts, "--resume"]]
    if part == "speed":
        iterations = "2" if quick else "4"
        widths = "64" if quick else "128,64"
        return [["benchmarks.bench_distill", "--suite", "fmnist", "--widths", widths, "--iterations", iterations],
                ["benchmarks.bench_distill", "--suite", "batch", "--iterations", iterations]]
    if part == "scaling":
        return [["benchmarks.bench_scaling", "--base", "2000" if quick else "5000"]]
    if part == "ray":
        return [["benchmarks.bench_ray", "--iterations", "10" if quick else "30"], ["benchmarks.bench_ray_data"]]
    if part == "connectors":
        return [["benchmarks.bench_connectors"]]
    raise ValueError(part)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", choices=["cpu", "paper"])
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated, from {', '.join(PARTS)}, "
                        "or 'summary' to only rewrite SUMMARY.md")
    parser.add_argument("--quick", action="store_true", help="fewer iterations and smaller sizes")
    args = parser.parse_args(argv)
    parts = [p for p in args.only.split(",") if p]
    unknown = sorted(set(parts) - {*PARTS, "summary"})
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}, summary")
    if {"quality", "scaling", "connectors", "ray"} & set(parts):
        ensure_fashion_mnist()
    nice = ["nice", "-n", "5"] if shutil.which("nice") else []
    log = []
    for part in (p for p in PARTS if p in parts):
        for cmd in commands(part, args.profile, args.quick):
            print(f"== {part}: python -m {' '.join(cmd)}", flush=True)
            started = time.perf_counter()
            code = subprocess.run([*nice, sys.executable, "-m", *cmd], check=False).returncode
            log.append({"part": part, "command": "python -m " + " ".join(cmd), "returncode": code,
                        "seconds": round(time.perf_counter() - started, 1)})
    if log:
        record = stamp(profile=args.profile, quick=args.quick, parts=log)
        (summary.RESULTS / f"run.{args.profile}.json").write_text(json.dumps(record, indent=2) + "\n")
    summary.write_summary()
    print(f"wrote {summary.RESULTS / 'SUMMARY.md'}")
    failed = [entry["command"] for entry in log if entry["returncode"] != 0]
    if failed:
        raise SystemExit(f"failed: {failed}")


if __name__ == "__main__":
    main()
