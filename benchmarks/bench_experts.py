"""Experts trained together (``compute.experts_at_once``) against one at a time: images per second.

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.bench_experts [--device cpu|cuda] [--reps 3]

ConvNet-D3 on random 28x28 single-channel images, plain SGD with DSA, through the SDK's own path
(:func:`pad_sdk.core.experts.train_expert_group`; 1 expert is the one-at-a-time path). Settings: the
``cpu-small`` preset's experts (width 64, batch 64) and the setting of the first GPU run's 54,000 images/s
(width 128, batch 128). Every repetition measures each group size in turn (alternating, so a slow minute of a
shared machine hits all of them), one warm-up epoch then one timed epoch each; the record keeps every figure,
the median, and the median's ratio to one at a time. Written to ``results/experts_at_once.<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

from benchmarks._meta import commit, stamp
from benchmarks.bench_quality import RESULTS
from benchmarks.gpu_check import _sync

SETTINGS = ({"width": 64, "batch": 64}, {"width": 128, "batch": 128})


def group_throughput(device: torch.device, *, width: int, batch: int, images: int, side: int, at_once: int,
                     epochs: int = 1) -> float:
    """Images per second (all experts together) of ``at_once`` experts trained as one vectorised network,
    ``epochs`` timed after a warm-up epoch (cuDNN autotuning, allocator); 1 expert is one at a time."""
    from pad_sdk.core.augment import DiffAugment
    from pad_sdk.core.experts import ExpertPlan, train_expert_group
    from pad_sdk.core.networks import create_network
    from pad_sdk.core.seeding import make_generator
    from pad_sdk.core.training import LabelledImages, TrainRecipe

    g = make_generator(0)
    data = LabelledImages(torch.randn(images, 1, side, side, generator=g).to(device),
                          torch.randint(0, 10, (images,), generator=g).to(device), 10)

    def build() -> torch.nn.Module:
        return create_network("convnet", in_channels=1, num_classes=10, image_size=(side, side), width=width,
                              depth=3)

    seeds = list(range(at_once))
    warm_up, timed = (TrainRecipe(epochs=n, lr=0.01, batch_size=batch) for n in (1, epochs))
    train_expert_group(data, build, warm_up, ExpertPlan(), seeds=seeds, augment=DiffAugment(), device=device)
    _sync(device)
    began = time.perf_counter()
    train_expert_group(data, build, timed, ExpertPlan(), seeds=seeds, augment=DiffAugment(), device=device)
    _sync(device)
    return at_once * images * epochs / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cuda", "cpu"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--images", type=int, default=None, help="images per expert epoch (default 1024 on CPU, "
                        "10,000 on CUDA)")
    parser.add_argument("--groups", default=None, help="group sizes (default 1,2,4 on CPU, 1,4,8,16 on CUDA)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    images = args.images or (10_000 if device.type == "cuda" else 1024)
    groups = [int(g) for g in (args.groups or ("1,4,8,16" if device.type == "cuda" else "1,2,4")).split(",")]
    record = stamp(at_commit=commit(), device=str(device), images=images, threads=torch.get_num_threads(), rows=[])
    for setting in SETTINGS:
        figures: dict[int, list[float]] = {g: [] for g in groups}
        for _ in range(args.reps):
            for at_once in groups:
                figures[at_once].append(group_throughput(device, width=setting["width"], batch=setting["batch"],
                                                         images=images, side=28, at_once=at_once))
        single = statistics.median(figures[1]) if 1 in figures else None
        for at_once in groups:
            median = statistics.median(figures[at_once])
            row: dict[str, Any] = {**setting, "experts_at_once": at_once, "images_per_s": median,
                                   "all": figures[at_once], "ratio_to_one": median / single if single else None}
            record["rows"].append(row)
            ratio = "" if single is None else f" ({median / single:.2f}x one at a time)"
            print(f"width {setting['width']} batch {setting['batch']} experts_at_once {at_once}: {median:.0f} "
                  f"images/s{ratio}", flush=True)
    path = RESULTS / f"experts_at_once.{device.type}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
