"""Fashion-MNIST quality: methods and baselines at IPC 1, 10 and 50 under one evaluation protocol.

    nice -n 5 .venv/bin/python -m benchmarks.bench_quality --profile cpu            # the whole matrix
    nice -n 5 .venv/bin/python -m benchmarks.bench_quality --profile cpu --parts ipc10,ipc1
    .venv/bin/python -m benchmarks.bench_quality --profile paper --parts ipc10       # on a GPU machine

Data: the Debian package ``dataset-fashion-mnist`` (IDX files under /usr/share/datasets/fashion-mnist),
read through ``connectors.open_source``. Evaluation: the official 10,000 test images, ConvNet-D3 trained
from scratch on the condensed set (see ``PROFILES`` for the recipe). The JSON is rewritten after every
row, so a run cut short keeps what it measured; rows already in the file are skipped on a rerun with
``--resume``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._meta import commit, stamp
from pad_sdk.compare import ComparisonRow, ComparisonTable, measure
from pad_sdk.data import RawData, load_source, prepare
from pad_sdk.methods import MethodContext, get_method, method_label

RESULTS = Path(__file__).parent / "results"
FMNIST = "/usr/share/datasets/fashion-mnist/"

# cpu: the whole matrix on two shared cores within a few hours. Everything that differs from the paper is
# here: a stratified training subset, width 32 instead of 128, 4 experts x 20 epochs instead of 100 x 100,
# 2 scoring runs x 5 epochs, 100 distillation iterations of N = 20 instead of 10,000 of 80, 200 evaluation
# epochs instead of 1000, one evaluation network per seed instead of 5, no ZCA.
# paper: the published settings (preset ``paper``: 100 experts x 100 epochs, 10,000 iterations, N = 80,
# ZCA, 1000 evaluation epochs, 5 networks) on all 60,000 training images; for a GPU.
PROFILES: dict[str, dict[str, Any]] = {
    "cpu": {"preset": "cpu-small", "train_per_class": 300, "seeds": 3, "eval_networks": 1, "threads": 1,
            "overrides": {"network": {"width": 32},
                          "scoring": {"runs": 2, "epochs": 5, "batch_size": 64},
                          "experts": {"num_experts": 4, "epochs": 20, "batch_size": 64},
                          # batch_syn 100 changes nothing at IPC 1 and 10 (all images each step); at IPC 50
                          # each of the 20 steps takes 100 of the 500 images, so an iteration costs as at IPC 10
                          "distill": {"iterations": 100, "syn_steps": 20, "batch_syn": 100},
                          "evaluation": {"epochs": 200, "batch_size": 128}}},
    "paper": {"preset": "paper", "train_per_class": None, "seeds": 3, "eval_networks": 5, "threads": None,
              "overrides": {}},
}
# parts in the order they run (cheapest figures first, so a time-boxed run has the headline rows)
PARTS: dict[str, tuple[int, tuple[str, ...]]] = {
    "ipc10": (10, ("random", "herding", "kcenter", "pad")),
    "ipc1": (1, ("random", "herding", "kcenter", "pad")),
    "ablation": (10, ("pad:fiex=off", "pad:fiem=off", "datm")),
    "ipc50": (50, ("random", "herding", "kcenter", "pad")),
    "methods10": (10, ("mtt", "dc", "dsa", "dm")),
    "methods1": (1, ("datm", "mtt", "dc", "dsa", "dm")),
    "methods50": (50, ("datm", "mtt", "dc", "dsa", "dm")),
}


def load_fashion_mnist(train_per_class: int | None, seed: int = 0, data_dir: str = FMNIST) -> RawData:
    """The official train/test split; ``train_per_class`` keeps a seeded stratified subset of train."""
    raw = load_source(data_dir, holdout_fraction=0.2, seed=seed)
    if train_per_class is None:
        return raw
    rng = np.random.default_rng(seed)
    labels = raw.train_labels.numpy()
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:train_per_class]
                                   for c in range(len(raw.class_names))]))
    rows = torch.from_numpy(keep)
    source = dict(raw.source, train_subset={"per_class": train_per_class, "seed": seed, "rows": len(keep)})
    return RawData(raw.train_images[rows], raw.train_labels[rows], raw.test_images, raw.test_labels,
                   raw.class_names, source)


def output_path(profile: str, tag: str | None = None) -> Path:
    """One file per profile; a ``tag`` names a file of its own (parts run in parallel processes), and the
    summary merges them."""
    return RESULTS / (f"fmnist_quality.{profile}.{tag}.json" if tag else f"fmnist_quality.{profile}.json")


def run(profile: str, parts: list[str], resume: bool, tag: str | None = None,
        only: set[str] | None = None, seeds: tuple[int, ...] | None = None) -> None:
    """The parts' rows into one results file; ``seeds``: only these runs (the profile's seeds by default), for
    runs split over processes (benchmarks.summary puts the rows of one method and IPC together by seed)."""
    settings = PROFILES[profile]
    runs = seeds if seeds is not None else tuple(range(settings["seeds"]))
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    raw = load_fashion_mnist(settings["train_per_class"])
    context = MethodContext(prepare(raw, zca=settings["preset"] == "paper"), settings["preset"],
                            settings["overrides"], 0)
    path = output_path(profile, tag)
    started_at = commit()  # the code this run imported; later commits must not relabel its figures
    done: list[dict[str, Any]] = []
    if resume and path.exists():
        done = json.loads(path.read_text())["rows"]
    # a row with fewer seeds than the profile's is partial (a run cut short) and is measured again
    rows = [ComparisonRow.from_dict(r) for r in done if len(r["accuracies"]) >= len(runs)]

    def write(extra: ComparisonRow | None) -> None:
        table = ComparisonTable(tuple(rows) + ((extra,) if extra else ()), {}, dict(context.shared_seconds))
        record = stamp(at_commit=started_at, profile=profile, profile_settings=settings,
                       data={"uri": FMNIST, "train": len(context.data.train), "test": len(context.data.test),
                             "subset": raw.source.get("train_subset")},
                       evaluation=context.config(10).evaluation.model_dump(mode="json"), **table.to_dict())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n")

    for part in parts:
        ipc, methods = PARTS[part]
        for spec in methods:
            if only is not None and spec not in only:
                continue
            method = get_method(spec)
            if any(r.method == method_label(method) and r.ipc == ipc for r in rows):
                continue
            rows.append(measure(context, method, ipc, runs, settings["eval_networks"], write))
            write(None)
            print(f"{method_label(method)} IPC {ipc}: {100 * rows[-1].mean:.1f} ± {100 * rows[-1].std:.1f} "
                  f"({rows[-1].seconds:.0f} s/run; shared {dict(context.shared_seconds)})", flush=True)


LOG_LINE = re.compile(r"compare\.run\s+accuracy=([0-9.]+) ipc=(\d+) method=(\S+) seconds=([0-9.]+) seed=(\d+)")


def recover_from_log(profile: str, log: Path, tag: str | None = None) -> None:
    """Add the seeds that a run cut short had finished (its ``compare.run`` log events) as partial rows of
    its results file, marked ``recovered_from_log``; complete rows the file already holds are kept as they are."""
    path = output_path(profile, tag)
    record = json.loads(path.read_text())
    record["rows"] = [r for r in record["rows"] if not r.get("recovered_from_log")]  # recovered again below
    have = {(r["method"], int(r["ipc"])) for r in record["rows"]}
    found: dict[tuple[str, int], dict[int, tuple[float, float]]] = {}
    for match in LOG_LINE.finditer(log.read_text()):
        accuracy, ipc, method, seconds, seed = match.groups()
        found.setdefault((method, int(ipc)), {})[int(seed)] = (float(accuracy), float(seconds))
    for (method, ipc), seeds in found.items():
        if (method, ipc) in have:
            continue
        accuracies = [seeds[k][0] for k in sorted(seeds)]
        record["rows"].append({"method": method, "ipc": ipc, "accuracies": accuracies,
                               "seconds": statistics.fmean(seeds[k][1] for k in seeds), "condensed_bytes": 0,
                               "mean": statistics.fmean(accuracies),
                               "std": statistics.pstdev(accuracies) if len(accuracies) > 1 else 0.0,
                               "recovered_from_log": str(log)})
        print(f"recovered {method} IPC {ipc}: seeds {sorted(seeds)}")
    path.write_text(json.dumps(record, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {', '.join(PARTS)}")
    parser.add_argument("--resume", action="store_true", help="keep the rows already in the results file")
    parser.add_argument("--methods", help="comma-separated: run only these methods of the parts (e.g. datm)")
    parser.add_argument("--tag", help="write fmnist_quality.<profile>.<tag>.json (for parts run in parallel)")
    parser.add_argument("--seeds", help="comma-separated run indices: only these seeds (e.g. 2, with --tag, "
                        "while another process runs 0,1)")
    parser.add_argument("--recover-log", type=Path,
                        help="add the finished seeds of a run cut short, from its log, as partial rows; no run")
    args = parser.parse_args(argv)
    if args.recover_log:
        recover_from_log(args.profile, args.recover_log, args.tag)
        return
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else None
    run(args.profile, parts, args.resume, args.tag, set(args.methods.split(",")) if args.methods else None, seeds)


if __name__ == "__main__":
    main()
