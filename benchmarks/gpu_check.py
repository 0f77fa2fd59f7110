"""One GPU check for whoever holds a GPU for a few minutes: correctness, speed, quality and the gpu tests.

    PYTHONPATH=. python -m benchmarks.gpu_check                     # on the GPU machine (about 8 minutes, H200)
    PYTHONPATH=. python -m benchmarks.gpu_check --device cpu --quick  # every part at toy sizes, on a CPU
    ... [--parts same_work,speed,quality,tests] [--output NAME] [--data DIR]

It runs from a source checkout without installing the project: it needs torch, numpy, pyarrow, fsspec,
PyYAML, pydantic and structlog (bring the last two as wheels to a machine without network). Fashion-MNIST
is read from the Debian path or ``--data``. The record, ``benchmarks/results/gpu_check[.NAME].json``, is
rewritten after every part (a run cut short keeps what it measured) and states the machine, the commit and
the versions.

Parts:
- ``same_work``: the cpu profile's PAD run at IPC 10, seed 0 (benchmarks.bench_quality) on this device, with
  its distance to the CPU record's accuracy for the same seed.
- ``speed``: seconds per distillation iteration and peak device memory for IPC 10 / 50 (batch_syn 100 / 500)
  and N 20 / 40 / 80, unroll full / recompute / auto, with each iteration's loss (equal loss curves); then
  each compute option on and off: TF32 (distillation), bf16 autocast (expert training, images per second),
  ``compute.experts_at_once`` 1 / 4 / 8 / 16 (experts trained together, images per second of all of them).
- ``quality``: a mid budget (10,000 training images, width 128, 8 experts x 20 epochs, 400 iterations of N 30,
  300 evaluation epochs) for pad, datm, mtt, herding and random at IPC 10, one seed.
- ``tests``: ``pytest -m gpu tests/gpu`` (skips everything without CUDA).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks._meta import commit, stamp

RESULTS = Path(__file__).parent / "results"
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist/"
PARTS = ("same_work", "speed", "quality", "tests")


def _versions() -> dict[str, Any]:
    import numpy
    import pydantic

    return {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "numpy": numpy.__version__, "pydantic": pydantic.__version__, "python": sys.version.split()[0]}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


# -- same_work -------------------------------------------------------------------------------------------
def same_work(device: torch.device, quick: bool, data_dir: str) -> dict[str, Any]:
    from benchmarks.bench_quality import PROFILES, load_fashion_mnist
    from pad_sdk.compare import measure
    from pad_sdk.data import prepare
    from pad_sdk.methods import MethodContext, get_method

    settings = json.loads(json.dumps(PROFILES["cpu"]))
    overrides = {**settings["overrides"], "device": device.type}
    per_class = settings["train_per_class"]
    if quick:
        per_class = 30
        overrides = {**overrides, "scoring": {"runs": 1, "epochs": 1, "batch_size": 64},
                     "experts": {"num_experts": 2, "epochs": 6, "batch_size": 64},
                     "distill": {"iterations": 4, "syn_steps": 4, "batch_syn": 100, "min_start_epoch": 0,
                                 "current_max_start_epoch": 2, "max_start_epoch": 3, "expansion_end": None},
                     "evaluation": {"epochs": 5, "batch_size": 128}}
    raw = load_fashion_mnist(per_class, data_dir=data_dir)
    context = MethodContext(prepare(raw, zca=False), settings["preset"], overrides, 0)
    started = time.perf_counter()
    row = measure(context, get_method("pad"), 10, 1, settings["eval_networks"])
    seconds = time.perf_counter() - started
    record: dict[str, Any] = {"accuracy": row.accuracies[0], "seconds": seconds,
                              "shared_seconds": dict(context.shared_seconds), "quick": quick}
    reference = RESULTS / "fmnist_quality.cpu.json"
    if not quick and reference.exists():
        rows = json.loads(reference.read_text())["rows"]
        cpu = next((r for r in rows if r["method"] == "pad" and r["ipc"] == 10), None)
        if cpu is not None:
            record["cpu_record_accuracy"] = cpu["accuracies"][0]
            record["points_from_cpu_record"] = 100 * (row.accuracies[0] - cpu["accuracies"][0])
            record["cpu_record_seconds"] = cpu["seconds"]
    return record


# -- speed -------------------------------------------------------------------------------------------------
def _distill_setting(device: torch.device, *, width: int, ipc: int, batch: int, steps: int, unroll: str,
                     iterations: int, side: int, budget_gib: float | None = None) -> dict[str, Any]:
    from pad_sdk.config import DistillSettings
    from pad_sdk.core.augment import DiffAugment
    from pad_sdk.core.distill import Distiller, SyntheticSet
    from pad_sdk.core.networks import create_network
    from pad_sdk.core.params import flatten_params
    from pad_sdk.core.seeding import make_generator, seeded

    classes = 10
    net = seeded(0, lambda: create_network("convnet", in_channels=1, num_classes=classes, image_size=(side, side),
                                           width=width, depth=3)).to(device)
    g = make_generator(0)
    start = flatten_params(net).cpu()
    walk = torch.randn(4, start.numel(), generator=g) * 1e-3
    experts = [torch.cat([start[None], start[None] + walk.cumsum(0)])]
    size = classes * ipc
    synthetic = SyntheticSet(torch.randn(size, 1, side, side, generator=g).to(device),
                             torch.randn(size, classes, generator=g).to(device), torch.tensor(0.01, device=device),
                             torch.arange(classes).repeat_interleave(ipc).to(device))
    settings = DistillSettings(iterations=iterations, syn_steps=steps, expert_epochs=2, min_start_epoch=0,
                               current_max_start_epoch=1, max_start_epoch=2, expansion_end=None, batch_syn=batch,
                               selection_ratio=0.5, unroll=unroll, threshold=1e9, memory_budget_gib=budget_gib)
    distiller = Distiller(synthetic, net, experts, settings, g, augment=DiffAugment())
    times, losses = [], []
    _sync(device)
    _reset_peak(device)
    for _ in range(iterations):
        began = time.perf_counter()
        record = distiller.step()
        _sync(device)
        times.append(time.perf_counter() - began)
        losses.append(record.loss)
    steady = times[1:] or times
    assert distiller.unroll is not None
    return {"width": width, "ipc": ipc, "batch_syn": batch, "syn_steps": steps, "unroll": unroll,
            "chosen": distiller.unroll.mode, "reason": distiller.unroll.reason,
            "step_gib": distiller.unroll.step_bytes / 2**30,
            "estimated_full_gib": distiller.unroll.full_bytes / 2**30,
            "estimated_recompute_gib": distiller.unroll.recompute_bytes / 2**30,
            "s_per_iteration": statistics.median(steady), "all_s": times, "peak_gib": _peak_gib(device),
            "losses": losses}


def speed(device: torch.device, quick: bool, write: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    from benchmarks.bench_experts import group_throughput
    from pad_sdk.config import ComputeSettings
    from pad_sdk.pipeline import compute_mode

    width, side, iterations = (16, 28, 3) if quick else (128, 28, 5)
    grid = [(10, 100), (50, 500)]
    lengths = (2, 4) if quick else (20, 40, 80)
    out: dict[str, Any] = {"distill": [], "options": {}}
    for ipc, batch in grid:
        for steps in lengths:
            for unroll in ("full", "recompute", "auto"):
                if unroll == "full" and device.type == "cuda":
                    # the full unroll at this setting would not fit: record the estimate instead of an OOM
                    free, _ = torch.cuda.mem_get_info(device)
                    probe = _distill_setting(device, width=width, ipc=ipc, batch=batch, steps=1, unroll="full",
                                             iterations=1, side=side)
                    if 1.05 * steps * probe["step_gib"] > 0.95 * free / 2**30:
                        out["distill"].append({"ipc": ipc, "syn_steps": steps, "unroll": "full",
                                               "skipped": "estimated to exceed the free memory"})
                        continue
                try:
                    row = _distill_setting(device, width=width, ipc=ipc, batch=batch, steps=steps, unroll=unroll,
                                           iterations=iterations, side=side)
                except torch.OutOfMemoryError as exc:
                    row = {"ipc": ipc, "syn_steps": steps, "unroll": unroll, "error": str(exc).splitlines()[0]}
                    torch.cuda.empty_cache()
                out["distill"].append(row)
                print(f"speed IPC {ipc} N {steps} {unroll}: {row.get('s_per_iteration', row.get('error'))} s/it, "
                      f"peak {row.get('peak_gib')} GiB", flush=True)
                write(out)
    # a 16 GiB budget at the largest setting (the target: IPC 50, N 80 within 16 GiB)
    out["budget_16gib"] = _distill_setting(device, width=width, ipc=50, batch=500, steps=lengths[-1], unroll="auto",
                                           iterations=iterations, side=side, budget_gib=16.0)
    # compute options one at a time, on and off
    tf32 = {}
    for flag in (False, True):
        with compute_mode(ComputeSettings(tf32=flag), device):
            tf32[str(flag)] = _distill_setting(device, width=width, ipc=10, batch=100, steps=lengths[-1],
                                               unroll="full", iterations=iterations, side=side)
    out["options"]["tf32_distill"] = tf32
    images = 2000 if quick else 20000
    bf16 = {}
    for flag in (False, True):
        with compute_mode(ComputeSettings(bf16_training=flag), device, training=True):
            bf16[str(flag)] = {"images_per_s": group_throughput(device, width=width, batch=128, images=images,
                                                                 side=side, at_once=1, epochs=1 if quick else 3)}
    out["options"]["bf16_expert_training"] = bf16
    write(out)
    # compute.experts_at_once: images/s of all experts together (the target: >= 4x one at a time)
    grouped = {}
    for at_once in (1, 4) if quick else (1, 4, 8, 16):
        grouped[str(at_once)] = {"images_per_s": group_throughput(device, width=width, batch=128,
                                                                   images=images // 2, side=side, at_once=at_once)}
        print(f"speed experts_at_once {at_once}: {grouped[str(at_once)]['images_per_s']:.0f} images/s", flush=True)
    out["options"]["experts_at_once"] = grouped
    out["options"]["not_measured"] = ["channels_last (the functional student unroll takes flat parameter views)",
                                      "CUDA graphs / torch.compile of the student step"]
    return out


# -- quality --------------------------------------------------------------------------------------------------
def quality(device: torch.device, quick: bool, data_dir: str,
            write: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    from benchmarks.bench_quality import load_fashion_mnist
    from pad_sdk.compare import measure
    from pad_sdk.data import prepare
    from pad_sdk.methods import MethodContext, get_method

    per_class = 20 if quick else 1000
    overrides: dict[str, Any] = {
        "device": device.type, "network": {"width": 16 if quick else 128},
        "scoring": {"runs": 1 if quick else 2, "epochs": 1 if quick else 5},
        "experts": {"num_experts": 2 if quick else 8, "epochs": 6 if quick else 20},
        "distill": {"iterations": 4 if quick else 400, "syn_steps": 4 if quick else 30},
        "evaluation": {"epochs": 5 if quick else 300},
    }
    raw = load_fashion_mnist(per_class, data_dir=data_dir)
    context = MethodContext(prepare(raw, zca=False), "tiny" if quick else "cpu-small", overrides, 0)
    rows: dict[str, Any] = {}
    for name in ("pad", "datm", "mtt", "herding", "random"):
        started = time.perf_counter()
        row = measure(context, get_method(name), 10, 1, 1)
        rows[name] = {"accuracy": row.accuracies[0], "seconds": time.perf_counter() - started}
        print(f"quality {name}: {100 * row.accuracies[0]:.2f} %", flush=True)
        write({"rows": rows, "settings": {"train_per_class": per_class, "overrides": overrides}})
    return {"rows": rows, "settings": {"train_per_class": per_class, "overrides": overrides},
            "shared_seconds": dict(context.shared_seconds)}


# -- tests ------------------------------------------------------------------------------------------------------
def gpu_tests() -> dict[str, Any]:
    command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests/gpu", "-p", "no:cacheprovider",
               "-o", "addopts=", "-o", "timeout=0"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
    return {"command": " ".join(command[1:]), "exit_code": done.returncode, "tail": tail}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="every part at toy sizes")
    parser.add_argument("--output", default=None, help="record name: results/gpu_check.NAME.json")
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--copy-to", default=None, help="also write the record into this folder at every rewrite")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    name = f"gpu_check.{args.output}.json" if args.output else (
        "gpu_check.json" if device.type == "cuda" and not args.quick else f"gpu_check.{device.type}-quick.json")
    path = RESULTS / name
    record = stamp(at_commit=commit(), device=str(device), quick=args.quick, versions=_versions(),
                   gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None, parts={}, seconds={})

    def save() -> None:
        text = json.dumps(record, indent=2, default=str) + "\n"
        for folder in (path.parent, *([Path(args.copy_to)] if args.copy_to else [])):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / path.name).write_text(text)

    def partial(part: str) -> Callable[[dict[str, Any]], None]:
        def write(value: dict[str, Any]) -> None:
            record["parts"][part] = {**value, "partial": True}
            save()
        return write

    for part in parts:
        began = time.perf_counter()
        try:
            if part == "same_work":
                record["parts"][part] = same_work(device, args.quick, args.data)
            elif part == "speed":
                record["parts"][part] = speed(device, args.quick, partial(part))
            elif part == "quality":
                record["parts"][part] = quality(device, args.quick, args.data, partial(part))
            else:
                record["parts"][part] = gpu_tests()
        except Exception as exc:  # one failed part must not lose the others' figures
            record["parts"][part] = {**record["parts"].get(part, {}), "error": f"{type(exc).__name__}: {exc}"}
        record["seconds"][part] = time.perf_counter() - began
        save()
        print(f"{part}: {record['seconds'][part]:.1f} s -> {path}", flush=True)


if __name__ == "__main__":
    main()
