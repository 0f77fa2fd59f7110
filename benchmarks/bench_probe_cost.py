"""What the probes cost beside the rest of one SDK run (issue #14: at most 0.5x of a plain PAD run).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_probe_cost --ipc 1,10,50

One ``pad_sdk.distill`` call per IPC on the cpu profile's Fashion-MNIST data and settings
(``bench_quality.PROFILES["cpu"]``: the 3,000-image training subset, the official test split as the
holdout), probes on as in the SDK default. The figures are the result's own ``timings``: ``probes`` against
the sum of every other stage (scoring, experts, distillation, subset check, evaluation), which is what the
same run costs with ``auto.probes`` off, since the probes change no other stage's work (the chosen settings
only replace the distillation's). The validation split, the subset check and the evaluation are the
preset's, so the denominator is the SDK default's run, not the benchmark's single evaluation network.
Written to ``results/probe_cost.cpu.json`` (one entry per IPC, kept across runs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

import pad_sdk
from benchmarks._meta import commit, stamp
from benchmarks.bench_quality import PROFILES, RESULTS, load_fashion_mnist


def shares(timings: dict[str, float]) -> dict[str, Any]:
    """The probes' seconds against the other stages' (``total`` is the whole call, not a stage)."""
    probes = timings.get("probes", 0.0)
    rest = sum(seconds for stage, seconds in timings.items() if stage not in ("probes", "total"))
    return {"probes_seconds": probes, "other_stages_seconds": round(rest, 1),
            "ratio": round(probes / rest, 3) if rest else None}


def measure(ipc: int) -> dict[str, Any]:
    settings = PROFILES["cpu"]
    raw = load_fashion_mnist(settings["train_per_class"])
    result = pad_sdk.distill(raw.train_images, raw.train_labels.numpy(), ipc=ipc, preset=settings["preset"],
                             overrides=settings["overrides"], class_names=raw.class_names,
                             test_images=raw.test_images[:], test_labels=raw.test_labels.numpy())
    timings = {stage: round(seconds, 1) for stage, seconds in result.timings.items()}
    report = result.decisions.get("probes") or {}
    return {"ipc": ipc, "timings": timings, **shares(timings),
            "probed": [p["name"] for p in report.get("probes", [])], "same_as": report.get("same_as", {}),
            "chosen": report.get("chosen"),
            "accuracy": result.accuracy.condensed.mean if result.accuracy else None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ipc", default="1,10,50", help="comma-separated IPCs, one SDK run each")
    parser.add_argument("--out", type=Path, default=RESULTS / "probe_cost.cpu.json")
    parser.add_argument("--refresh", action="store_true",
                        help="no run: recompute the shares of the entries in --out from their timings")
    args = parser.parse_args(argv)
    if args.refresh:
        record = json.loads(args.out.read_text())
        for entry in record["runs"].values():
            entry.update(shares(entry["timings"]))
        args.out.write_text(json.dumps(record, indent=2) + "\n")
        return
    torch.set_num_threads(PROFILES["cpu"]["threads"])
    record: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
    for ipc in (int(x) for x in args.ipc.split(",") if x):
        entry = measure(ipc)
        record["runs"][str(ipc)] = {**entry, **stamp(at_commit=commit())}
        args.out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"IPC {ipc}: probes {entry['probes_seconds']:.0f} s, other stages {entry['other_stages_seconds']:.0f} s,"
              f" ratio {entry['ratio']}", flush=True)


if __name__ == "__main__":
    main()
