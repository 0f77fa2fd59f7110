"""Throughput of expert training and EL2N scoring (images/s), and how time and peak memory grow with data.

Each size (1x, 2x, 4x of a stratified Fashion-MNIST training subset) runs in a fresh subprocess, so its
peak resident memory (ru_maxrss) is its own. One scoring run and one expert of two epochs each
(plain SGD + DSA, no scheduler), ConvNet-D3 at the cpu profile's width.

    nice -n 5 .venv/bin/python -m benchmarks.bench_scaling                 # 5k / 10k / 20k images, width 32
    nice -n 5 .venv/bin/python -m benchmarks.bench_scaling --base 2000 --width 64

The core holds the training set in the source's dtype (uint8: 784 B per 28x28 image) and converts a batch at a
time; the connectors' streaming read is flat (results/connectors.json).

``--pipeline`` measures a whole ``pad_sdk.distill`` call instead (scoring, experts with PAD's scheduler,
distillation, evaluation), at 1x, 2x, 4x, 8x of a 7,500-image subset, each in a fresh process, with the peak
resident memory of every stage (sampled every 20 ms and attributed to the stage the progress events name) and
the stage timings; written under the key ``pipeline`` of ``results/scaling.pipeline.json``:

    nice -n 5 .venv/bin/python -m benchmarks.bench_scaling --pipeline             # 7.5k / 15k / 30k / 60k

``--mapped`` reads the subset from a Parquet source over a zero memory budget (``LocalRuntime(data_memory_gib=0)``),
so the images are held in a file mapping, and records the process's own memory (RssAnon) beside the RSS;
written to ``results/scaling.pipeline.mapped.json``:

    nice -n 5 .venv/bin/python -m benchmarks.bench_scaling --pipeline --mapped --factors 1,8 --threads 1

``--runtime ray`` runs the same calls on the Ray runtime (``RayRuntime(num_workers=2)``, an embedded cluster on
127.0.0.1 with ``bench_estimate.RAY_ENV``; same data, settings and driver threads; the workers run 1 torch thread
each, the runtime's default) and measures the Ray processes the same way as the driver: every 20 ms, per stage,
the RSS of the processes descended from the run's process (read from /proc; the process list every 100 ms).

- **workers**: the task and actor processes (``ray::...`` process titles, or ``default_worker.py`` before a fresh
  worker sets its title), idle pooled ones and Ray Train's and Ray Data's own actors (``ray::TrainController``,
  ``ray::DatasetManager``, ...) included. Per stage: the largest single worker (``worker_peak_rss_mib_by_stage``),
  the sum over workers (``workers_total_peak_rss_mib_by_stage``) and that sum of their own memory (RssAnon,
  ``workers_total_peak_anon_mib_by_stage``): RSS counts shared pages (torch's libraries, the pages of Ray's
  shared-memory object store a worker has touched) once per process, so the RSS sum overstates what they hold.
- **system**: every other descendant (raylet, gcs_server, ``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``, the
  monitors, any short-lived helper process): their summed RSS, peak over the run (``ray_system_rss_mib``).

The titles and names seen are recorded. The stage before ``scoring`` (``read``) also holds the run's estimate: its
calibration runs a distillation iteration in the driver, and on Ray it starts the cluster. Written to
``results/scaling.pipeline.ray.json`` (``--output`` names another file, for smoke runs):

    nice -n 5 .venv/bin/python -m benchmarks.bench_scaling --pipeline --runtime ray --threads 1
    .venv/bin/python -m benchmarks.bench_scaling --pipeline --runtime ray --factors 1 --base 1000 \
        --output /tmp/scaling.pipeline.ray.smoke.json                            # a smoke run, minutes

``--runtime ray --mapped``: the Parquet source over the Ray runtime's zero data budget (``RayRuntime(
data_memory_gib=0)``), so no image enters the object store and every node maps its own copy; written to
``results/scaling.pipeline.ray.mapped.json``:

    nice -n 5 .venv/bin/python -m benchmarks.bench_scaling --pipeline --runtime ray --mapped --factors 1,8 --threads 1
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._meta import stamp
from benchmarks.bench_estimate import RAY_ENV, RAY_WORKERS

RESULTS = Path(__file__).parent / "results"
FMNIST = "/usr/share/datasets/fashion-mnist/"


def _one(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import torch

    import connectors
    from pad_sdk.core.experts import ExpertPlan
    from pad_sdk.data import arrays_to_raw, prepare
    from pad_sdk.pipeline import Stages
    from pad_sdk.presets import preset_config

    torch.set_num_threads(spec["threads"])
    source = connectors.open_source(FMNIST)
    train = source.read_all(split="train")  # uint8, the same 47 MB at every size
    rng = np.random.default_rng(0)
    per_class = spec["images"] // 10
    rows = np.sort(np.concatenate([rng.permutation(np.flatnonzero(train.labels == c))[:per_class]
                                   for c in range(10)]))
    images, labels = np.array(train.images[rows]), np.array(train.labels[rows])
    del train
    raw = arrays_to_raw(images, labels, test_images=images[:10], test_labels=labels[:10], class_names=None,
                        holdout_fraction=0.2, seed=0)
    data = prepare(raw, zca=False)
    del raw, images
    config = preset_config("cpu-small", 10, {
        "network": {"width": spec["width"]},
        "scoring": {"runs": 1, "epochs": spec["epochs"], "batch_size": 64},
        "experts": {"num_experts": 1, "epochs": spec["epochs"], "batch_size": 64, "fiex": "off"},
        # the distillation window must fit inside the experts' epochs to validate; it is not used here
        "distill": {"expert_epochs": 1, "min_start_epoch": 0, "current_max_start_epoch": 1,
                    "max_start_epoch": 1, "expansion_end": None},
    })
    stages = Stages(config, data)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    t0 = time.perf_counter()
    stages.score()
    scoring_s = time.perf_counter() - t0
    rss_scoring = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    t0 = time.perf_counter()
    stages.train_expert(0, ExpertPlan())
    expert_s = time.perf_counter() - t0
    n = len(data.train)
    seen = n * spec["epochs"]
    return {**spec, "train_images": n, "scoring_s": scoring_s, "expert_s": expert_s,
            "scoring_images_per_s": (seen + n) / scoring_s,  # training epochs plus the final scoring pass
            "expert_images_per_s": seen / expert_s,
            "peak_rss_mib_after_data": rss_data, "peak_rss_mib_after_scoring": rss_scoring,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10,
            "train_tensor_mib": data.train.images.nbytes / 2**20}


def _rss_mib(field: str = "VmRSS") -> float:
    """``VmRSS`` (everything resident, file-mapped pages too) or ``RssAnon`` (the process's own memory)."""
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 2**10
    return 0.0


def _status_mib(pid: int) -> tuple[float, float] | None:
    """``(VmRSS, RssAnon)`` of ``pid`` in MiB; None once it has exited (a zombie has neither field)."""
    rss = anon = None
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 2**10
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) / 2**10
    except OSError:
        return None
    return None if rss is None else (rss, anon or 0.0)


def _descendants(root: int) -> list[int]:
    """Every live process below ``root`` (parent links from ``/proc/<pid>/stat``; no psutil in the venv)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        parent = int(stat[stat.rindex(b")") + 2:].split()[1])  # the name in brackets may hold spaces
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().decode("utf-8", "replace").replace("\0", " ").split()
    except OSError:
        return []


# raylet's agents set a ray:: title too, but they are Ray's system processes, not task or actor workers
RAY_AGENTS = frozenset({"ray::DashboardAgent", "ray::RuntimeEnvAgent"})


def _process_name(args: list[str]) -> str:
    """``raylet``, ``log_monitor.py``, ``ray::DashboardAgent``, ``python -m x``: what a system process is."""
    script = next((a for a in args[1:3] if a.endswith(".py")), None)
    if script is not None:
        return os.path.basename(script)
    for flag in ("-m", "-c"):
        if flag in args[1:3]:
            at = args.index(flag)
            return f"{os.path.basename(args[0])} {flag} {args[at + 1][:40] if at + 1 < len(args) else ''}".rstrip()
    return os.path.basename(args[0])


class _RayMemory:
    """The Ray processes under this one, sampled with the driver: ``ray::`` task/actor workers (and fresh ones
    still named ``default_worker.py``) against every other descendant (Ray's system processes)."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.samples = 0
        self.worker_peak: dict[str, float] = {}
        self.workers_total: dict[str, float] = {}
        self.workers_anon: dict[str, float] = {}
        self.workers_count: dict[str, int] = {}
        self.system_peak = 0.0
        self.all_peak = 0.0
        self.worker_titles: set[str] = set()
        self.system_names: set[str] = set()

    def sample(self, stage: str, driver_rss: float) -> None:
        if self.samples % 5 == 0:  # the process list every 100 ms; the memory of the known ones every 20 ms
            self.pids = _descendants(os.getpid())
        self.samples += 1
        largest = total = anon = system = 0.0
        count = 0
        for pid in self.pids:
            memory, args = _status_mib(pid), _cmdline(pid)
            if memory is None or not args:
                continue
            titled = args[0].startswith("ray::") and args[0] not in RAY_AGENTS
            if titled or any(a.endswith("default_worker.py") for a in args[:3]):
                largest, total, anon, count = max(largest, memory[0]), total + memory[0], anon + memory[1], count + 1
                self.worker_titles.add(args[0] if titled else "default_worker.py")
            else:
                system += memory[0]
                self.system_names.add(_process_name(args))
        self.worker_peak[stage] = max(self.worker_peak.get(stage, 0.0), largest)
        self.workers_total[stage] = max(self.workers_total.get(stage, 0.0), total)
        self.workers_anon[stage] = max(self.workers_anon.get(stage, 0.0), anon)
        self.workers_count[stage] = max(self.workers_count.get(stage, 0), count)
        self.system_peak = max(self.system_peak, system)
        self.all_peak = max(self.all_peak, driver_rss + total + system)

    def record(self) -> dict[str, Any]:
        return {"worker_peak_rss_mib_by_stage": self.worker_peak,
                "workers_total_peak_rss_mib_by_stage": self.workers_total,
                "workers_total_peak_anon_mib_by_stage": self.workers_anon,
                "workers_max_count_by_stage": self.workers_count,
                "worker_peak_rss_mib": max(self.worker_peak.values(), default=0.0),
                "workers_total_peak_rss_mib": max(self.workers_total.values(), default=0.0),
                "ray_system_rss_mib": self.system_peak,
                "driver_workers_system_peak_rss_mib": self.all_peak,
                "ray_worker_titles": sorted(self.worker_titles), "ray_system_processes": sorted(self.system_names)}


def _write_source(folder: str, images: Any, labels: Any, test_images: Any, test_labels: Any) -> str:
    """The subset as one Parquet source with a split column (uint8 pixels), for the mapped mode."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    pixels = np.concatenate([images, test_images]).reshape(len(images) + len(test_images), -1)
    table = pa.table({"image": pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1)), pixels.shape[1]),
                      "label": pa.array(np.concatenate([labels, test_labels])),
                      "split": pa.array(["train"] * len(images) + ["test"] * len(test_images))})
    pq.write_table(table, f"{folder}/data.parquet", row_group_size=4096)
    return folder


def _pipeline_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One whole ``pad_sdk.distill`` on a stratified subset of ``spec["images"]`` Fashion-MNIST training
    images (holdout: the first 2,000 of the test split), with per-stage peak RSS; on the Ray runtime
    (``spec["runtime"] == "ray"``) also of its worker and system processes (:class:`_RayMemory`)."""
    import threading

    import numpy as np
    import torch

    import connectors
    import pad_sdk

    torch.set_num_threads(spec["threads"])
    source = connectors.open_source(FMNIST)
    train, test = source.read_all(split="train"), source.read_all(split="test")
    rng = np.random.default_rng(0)
    per_class = spec["images"] // 10
    rows = np.sort(np.concatenate([rng.permutation(np.flatnonzero(train.labels == c))[:per_class]
                                   for c in range(10)]))
    images, labels = np.array(train.images[rows]), np.array(train.labels[rows])
    test_images, test_labels = np.array(test.images[:2000]), np.array(test.labels[:2000])
    del train, test
    train_bytes, count = images.nbytes, len(labels)
    inputs: dict[str, Any] = dict(images=images, labels=labels, test_images=test_images, test_labels=test_labels)
    on_ray = spec.get("runtime", "local") == "ray"
    folder = None
    if spec.get("mapped"):  # read from a source over the memory budget: the pixels go to a file mapping
        folder = tempfile.mkdtemp(prefix="pad-bench-")
        inputs = dict(images=_write_source(folder, images, labels, test_images, test_labels))
        if not on_ray:  # (the Ray runtime gets the same budget below: each node maps its own copy)
            inputs["runtime"] = pad_sdk.LocalRuntime(data_memory_gib=0, data_dir=folder)
        del images, labels, test_images, test_labels
    gc.collect()
    peaks: dict[str, float] = {}
    anon: dict[str, float] = {}
    stage = ["read"]
    stop = threading.Event()
    ray_memory = _RayMemory() if on_ray else None

    def sample() -> None:
        while not stop.is_set():
            rss = _rss_mib()
            peaks[stage[0]] = max(peaks.get(stage[0], 0.0), rss)
            anon[stage[0]] = max(anon.get(stage[0], 0.0), _rss_mib("RssAnon"))
            if ray_memory is not None:
                ray_memory.sample(stage[0], rss)
            stop.wait(0.02)

    def on_event(name: str, done: int, total: int, **facts: Any) -> None:
        stage[0] = name

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    source = inputs.pop("images")
    settings: dict[str, Any] = dict(ipc=spec["ipc"], preset="cpu-small", overrides=spec["overrides"], seed=0,
                                    on_event=on_event)
    ray_facts: dict[str, Any] = {}
    if on_ray:  # the cluster starts inside the timed call (the run's estimate measures its workers' start)
        from pad_sdk.runtime.ray import RayRuntime

        budget = {"data_memory_gib": 0, "data_dir": folder} if folder is not None else {}
        with RayRuntime(num_workers=RAY_WORKERS, **budget) as engine:
            started = time.perf_counter()
            result = pad_sdk.distill(source, **inputs, **settings, runtime=engine)
            total_s = time.perf_counter() - started
            stop.set()
            sampler.join()  # before the cluster shuts down
            ray_facts = {"ray_workers": RAY_WORKERS, "ray_worker_threads": engine.threads,
                         **(ray_memory.record() if ray_memory is not None else {})}
    else:
        started = time.perf_counter()
        result = pad_sdk.distill(source, **inputs, **settings)
        total_s = time.perf_counter() - started
    stop.set()  # (already stopped on the Ray runtime)
    sampler.join()
    accuracy = result.accuracy.condensed.mean if result.accuracy is not None else None
    return {**{k: v for k, v in spec.items() if k != "overrides"}, **ray_facts, "train_images": count,
            "total_s": total_s, "timings_s": dict(result.timings), "peak_rss_mib_by_stage": peaks,
            "peak_anon_rss_mib_by_stage": anon, "peak_anon_rss_mib": max(anon.values()),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10,
            "held": result.source.get("held", "memory") if result.source else "memory",
            "train_uint8_mib": train_bytes / 2**20, "train_float32_mib": train_bytes * 4 / 2**20,
            "trajectories": result.decisions.get("trajectories"), "condensed_accuracy": accuracy}


# cpu-small cut so that 8x (60,000 images) runs in minutes on 2 cores; the stages and their order stay.
PIPELINE_OVERRIDES: dict[str, Any] = {
    "network": {"width": 32},
    "scoring": {"runs": 1, "epochs": 1},
    "experts": {"num_experts": 2, "epochs": 3},
    "distill": {"iterations": 10, "syn_steps": 10, "expert_epochs": 1, "min_start_epoch": 0,
                "current_max_start_epoch": 1, "max_start_epoch": 2, "expansion_end": None},
    "evaluation": {"seeds": 1, "epochs": 50, "full_epochs": 0},
    "auto": {"probes": False, "subset_check": False, "validation_fraction": 0.0},
}


def _pipeline_path(args: argparse.Namespace) -> Path:
    """``--output`` (a file name under results/, or a path), else the record of the mode."""
    if args.output:
        return Path(args.output) if os.sep in args.output else RESULTS / args.output
    if args.runtime == "ray":
        return RESULTS / ("scaling.pipeline.ray.mapped.json" if args.mapped else "scaling.pipeline.ray.json")
    return RESULTS / ("scaling.pipeline.mapped.json" if args.mapped else "scaling.pipeline.json")


def pipeline(args: argparse.Namespace) -> None:
    rows = []
    path = _pipeline_path(args)
    on_ray = args.runtime == "ray"
    env = {**os.environ, **(RAY_ENV if on_ray else {})}
    for factor in (int(f) for f in args.factors.split(",")):
        spec = {"factor": factor, "images": args.base * factor, "threads": args.threads, "ipc": 10,
                "overrides": PIPELINE_OVERRIDES, "mapped": args.mapped, "runtime": args.runtime}
        out = subprocess.run([sys.executable, "-m", "benchmarks.bench_scaling", "--pipeline-one", json.dumps(spec)],
                             capture_output=True, text=True, check=False, env=env)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr, flush=True)
            out.check_returncode()
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        base = rows[0]
        for r in rows:
            r["time_ratio"] = r["total_s"] / base["total_s"]
            r["peak_rss_ratio"] = r["peak_rss_mib"] / base["peak_rss_mib"]
            if on_ray:  # None when the 1x run saw no worker (it always starts some; kept safe)
                for key in ("worker_peak_rss", "workers_total_peak_rss"):
                    r[f"{key}_ratio"] = (r[f"{key}_mib"] / base[f"{key}_mib"]) if base[f"{key}_mib"] else None
        workers = (f"; largest worker {row['worker_peak_rss_mib']:.0f} MiB, workers together "
                   f"{row['workers_total_peak_rss_mib']:.0f} MiB, Ray system {row['ray_system_rss_mib']:.0f} MiB"
                   if on_ray else "")
        print(f"{factor}x ({row['train_images']} images): {row['total_s']:.0f} s, peak {row['peak_rss_mib']:.0f} MiB "
              f"({row['peak_rss_ratio']:.2f}x of 1x){workers}", flush=True)
        record = stamp(suite="scaling-pipeline", dataset="fashion-mnist train subset (stratified, seed 0); holdout: "
                       "first 2,000 test images", runtime=args.runtime, settings=PIPELINE_OVERRIDES, pipeline=rows)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n")


def gather(repeats: int = 3) -> None:
    """Seconds to read one shuffled epoch of the 60,000 training images in minibatches of 256 (``images[rows]``,
    float32 out), held in memory and in a file mapping, alternating, one thread: what mapping costs a stage."""
    import torch

    import connectors
    from pad_sdk.data import raw_from_source, read_here
    from pad_sdk.disk_data import raw_on_disk

    torch.set_num_threads(1)
    source = connectors.open_source(FMNIST)
    held = {"memory": raw_from_source(source, read_here, holdout_fraction=0.2, seed=0).train_images,
            "file mapping": raw_on_disk(source, holdout_fraction=0.2, seed=0,
                                        folder=tempfile.mkdtemp(prefix="pad-bench-")).train_images}
    assert torch.equal(held["memory"][0:512], held["file mapping"][0:512])
    generator = torch.Generator().manual_seed(0)
    seconds: dict[str, list[float]] = {name: [] for name in held}
    for _ in range(repeats):
        for name, images in held.items():
            order = torch.randperm(len(images), generator=generator)
            started = time.perf_counter()
            for rows in torch.split(order, 256):
                images[rows]
            seconds[name].append(time.perf_counter() - started)
    record = stamp(suite="mapped-gather", images=len(held["memory"]), batch=256, seconds=seconds,
                   ratio=min(seconds["file mapping"]) / min(seconds["memory"]))
    print(json.dumps(record["seconds"]), f"ratio (best of {repeats}) {record['ratio']:.2f}", flush=True)
    (RESULTS / "scaling.gather.json").write_text(json.dumps(record, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=int, default=5000, help="images at 1x (stratified, a multiple of 10)")
    parser.add_argument("--factors", default="1,2,4")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2, help="at least 2 (the config needs a window)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pipeline", action="store_true", help="whole pad_sdk.distill calls (base 7500, 1,2,4,8)")
    parser.add_argument("--mapped", action="store_true", help="with --pipeline: read a Parquet source over a zero "
                        "memory budget, so the images are held in a file mapping (scaling.pipeline.mapped.json; with "
                        "--runtime ray: each node's, scaling.pipeline.ray.mapped.json)")
    parser.add_argument("--runtime", choices=("local", "ray"), default="local", help="with --pipeline: the "
                        "runtime of the calls; ray also measures its worker processes (scaling.pipeline.ray.json)")
    parser.add_argument("--output", help="with --pipeline: the results file (a name under benchmarks/results/ or a "
                        "path) instead of the mode's own, e.g. for a smoke run")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--pipeline-one", help=argparse.SUPPRESS)
    parser.add_argument("--gather", action="store_true", help="one shuffled epoch of minibatch reads, in memory "
                        "and mapped, alternating (results/scaling.gather.json)")
    args = parser.parse_args(argv)
    if args.gather:
        gather()
        return
    if args.one:
        print(json.dumps(_one(json.loads(args.one))))
        return
    if args.pipeline_one:
        print(json.dumps(_pipeline_one(json.loads(args.pipeline_one))))
        return
    if args.pipeline:
        if "--base" not in (argv or sys.argv):
            args.base = 7500
        if "--factors" not in (argv or sys.argv):
            args.factors = "1,2,4,8"
        pipeline(args)
        return
    rows = []
    for factor in (int(f) for f in args.factors.split(",")):
        spec = {"factor": factor, "images": args.base * factor, "width": args.width, "epochs": args.epochs,
                "threads": args.threads}
        out = subprocess.run([sys.executable, "-m", "benchmarks.bench_scaling", "--one", json.dumps(spec)],
                             capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{factor}x ({row['train_images']} images): expert {row['expert_images_per_s']:.0f} img/s, "
              f"scoring {row['scoring_images_per_s']:.0f} img/s, peak {row['peak_rss_mib']:.0f} MiB", flush=True)
        base = rows[0]
        for r in rows:
            r["expert_time_ratio"] = r["expert_s"] / base["expert_s"]
            r["scoring_time_ratio"] = r["scoring_s"] / base["scoring_s"]
            r["peak_rss_ratio"] = r["peak_rss_mib"] / base["peak_rss_mib"]
        record = stamp(suite="scaling", dataset="fashion-mnist train subset (stratified, seed 0)", rows=rows)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "scaling.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
