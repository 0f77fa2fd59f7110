"""Where the images are held: reading Fashion-MNIST in the driver against reading it with the Ray runtime.

    nice -n 5 .venv/bin/python -m benchmarks.bench_ray_data      # -> benchmarks/results/ray_data.json

Each way runs in a fresh process that reads the Debian package's IDX files (70,000 images, the official
split) and normalises them, then reports how much its resident memory grew and how long it took. The
in-process runtime holds the float32 tensors in the driver; the Ray runtime reads with Ray Data on the
workers and keeps them in the object store, so the driver should grow by labels and shapes only. Both
ways must agree on the labels and the normalisation statistics (checked here).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._meta import stamp

RESULTS = Path(__file__).parent / "results" / "ray_data.json"
FMNIST = "/usr/share/datasets/fashion-mnist/"


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(way: str) -> dict[str, Any]:
    """Runs in its own process: read and normalise the data one way; memory growth of this process."""
    import torch

    torch.set_num_threads(1)
    from pad_sdk.runtime import LocalRuntime
    from pad_sdk.runtime.ray import RayRuntime

    runtime: Any = LocalRuntime() if way == "local" else RayRuntime(num_workers=1, num_cpus=2,
                                                                     storage=tempfile.mkdtemp(prefix="pad-bench-"))
    if way == "ray":
        runtime._ensure_cluster()  # the cluster's own start-up is not what this measures
    before, started = _rss_mib(), time.perf_counter()
    raw = runtime.load(FMNIST, holdout_fraction=0.2, seed=0, storage_options=None, open_kwargs={})
    data = runtime.prepare(raw, zca=False)
    seconds, after = time.perf_counter() - started, _rss_mib()
    result = {
        "way": way, "seconds": round(seconds, 2), "driver_rss_growth_mib": round(after - before, 1),
        "train": len(data.train), "holdout": len(data.test), "images_on_driver": not data.train.images.is_meta,
        "float32_train_and_holdout_mib": round(4 * (data.train.images.numel() + data.test.images.numel()) / 2**20, 1),
        "normalisation": {"mean": list(data.normalisation.mean), "std": list(data.normalisation.std)},
        "label_checksum": int((data.train.labels * torch.arange(len(data.train))).sum() % 1_000_003),
    }
    if way == "ray":
        runtime.shutdown()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--way", choices=["local", "ray"], help="(internal) measure one way in this process")
    args = parser.parse_args(argv)
    if args.way:
        print(json.dumps(measure(args.way)))
        return
    ways = {}
    for way in ("local", "ray"):
        done = subprocess.run([sys.executable, "-m", "benchmarks.bench_ray_data", "--way", way], check=True,
                              capture_output=True, text=True)
        ways[way] = json.loads(done.stdout.strip().splitlines()[-1])
    agree = (ways["local"]["normalisation"] == ways["ray"]["normalisation"]
             and ways["local"]["label_checksum"] == ways["ray"]["label_checksum"])
    record = stamp(data=FMNIST, ways=ways, same_labels_and_statistics=agree)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    if not agree:
        raise SystemExit("the two ways disagree on labels or normalisation statistics")


if __name__ == "__main__":
    main()
