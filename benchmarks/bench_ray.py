"""Ray runtime benchmark: start-up overhead, seconds per distillation iteration (in-process vs Ray with one
and two workers, same settings), and condensed-set accuracy at equal iterations with one and two workers.

Run: ``nice -n 5 .venv/bin/python -m benchmarks.bench_ray [--iterations 30]`` -> benchmarks/results/ray.json
Settings: sklearn digits, preset ``cpu-small`` at IPC 10, fewer iterations; torch single-threaded
everywhere (a Ray worker gets one CPU, and CPU results depend on the thread count).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import structlog
import torch
from sklearn.datasets import load_digits

from benchmarks._meta import stamp
from pad_sdk.data import arrays_to_raw, prepare
from pad_sdk.pipeline import Stages
from pad_sdk.presets import preset_config
from pad_sdk.runtime import LocalRuntime
from pad_sdk.runtime.ray import RayRuntime

log = structlog.get_logger("bench_ray")
RESULTS = Path(__file__).parent / "results" / "ray.json"


def build_stages(iterations: int, ipc: int) -> Stages:
    digits = load_digits()
    raw = arrays_to_raw(digits.images, digits.target, test_images=None, test_labels=None, class_names=None,
                        holdout_fraction=0.2, seed=0)
    config = preset_config("cpu-small", ipc, {"seed": 0, "distill": {"iterations": iterations}})
    return Stages(config, prepare(raw, zca=config.zca))


def ray_distill(stages: Stages, experts: Any, workers: int, storage: str) -> dict[str, Any]:
    runtime = RayRuntime(num_workers=workers, storage=storage, checkpoint_every=10)
    synthetic, history = runtime.distill(stages, experts)
    evaluation = runtime.evaluate_synthetic(stages, synthetic)
    iterations = len(history)
    report = runtime.report
    return {
        "workers": workers,
        "fit_seconds": round(report.distill_fit_seconds, 2),
        "iteration_seconds_total": round(report.distill_seconds, 3),
        "seconds_per_iteration": round(report.distill_seconds / iterations, 4),
        "fixed_overhead_seconds": round(report.distill_fit_seconds - report.distill_seconds, 2),
        "segments_per_iteration": workers,
        "mean_matching_loss": round(sum(r.loss for r in history) / iterations, 4),
        "accuracy_mean": round(evaluation.mean, 4),
        "accuracy_std": round(evaluation.std, 4),
        "accuracies": [round(a, 4) for a in evaluation.accuracies],
        "evaluation_seconds": round(evaluation.train_seconds, 2),
        "_synthetic": synthetic,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--ipc", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    stages = build_stages(args.iterations, args.ipc)
    local = LocalRuntime()
    started = time.perf_counter()
    local_scores = stages.score()
    plan = stages.expert_plan(stages.orders(local_scores))
    scoring_seconds = time.perf_counter() - started
    started = time.perf_counter()
    experts = local.train_experts(stages, plan, None)
    local_experts_seconds = time.perf_counter() - started

    # in-process, timed as the Ray workers time themselves: the iterations only, set-up apart
    started = time.perf_counter()
    distiller = stages.make_distiller(experts)
    local_setup = time.perf_counter() - started
    started = time.perf_counter()
    distiller.run(stages.config.distill.iterations)
    local_distill = time.perf_counter() - started
    local_synthetic, local_history = distiller.synthetic.detached(), distiller.history
    started = time.perf_counter()
    local_eval = local.evaluate_synthetic(stages, local_synthetic)
    local_eval_seconds = time.perf_counter() - started

    storage = tempfile.mkdtemp(prefix="pad-bench-ray-")
    runtime = RayRuntime(num_workers=2, storage=storage)
    started = time.perf_counter()
    runtime._ensure_cluster()  # the embedded cluster: what `ray.init` costs a user with no address
    startup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    runtime.train_experts(stages, plan, None)
    ray_experts_seconds = time.perf_counter() - started

    started = time.perf_counter()
    ray_scores = runtime.score(stages)
    ray_scoring_seconds = time.perf_counter() - started

    one = ray_distill(stages, experts, 1, storage)
    two = ray_distill(stages, experts, 2, storage)
    one_images, two_images = one.pop("_synthetic").images, two.pop("_synthetic").images
    same_as_local = bool(torch.equal(one_images, local_synthetic.images))
    runtime.shutdown()
    # how far the 2-worker set is from the 1-worker one, against how far distillation moved the images at all
    start = stages.make_distiller(experts).synthetic.images
    moved = float((local_synthetic.images - start).abs().mean())
    apart = float((two_images - one_images).abs().mean())

    iterations = len(local_history)
    head = stamp()
    head["machine"]["ray"] = ray.__version__
    results = {
        **head,
        "note": "shared 2-core machine; Ray workers run at nice +15 (Ray's default), in-process at the caller's",
        "settings": {"data": "sklearn digits (1,438 train / 359 holdout)", "preset": "cpu-small", "ipc": args.ipc,
                     "iterations": iterations, "syn_steps": stages.config.distill.syn_steps,
                     "experts": stages.config.experts.num_experts, "torch_threads": 1,
                     "evaluation_seeds": stages.config.evaluation.seeds},
        "ray_startup": {
            "embedded_cluster_start_seconds": round(startup_seconds, 2),
            "trainer_fixed_overhead_seconds_1_worker": one["fixed_overhead_seconds"],
            "trainer_fixed_overhead_seconds_2_workers": two["fixed_overhead_seconds"],
        },
        "experts": {"local_seconds": round(local_experts_seconds, 2),
                    "ray_tasks_seconds": round(ray_experts_seconds, 2),
                    "scoring_seconds_driver": round(scoring_seconds, 2)},
        "in_process": {
            "seconds_per_iteration": round(local_distill / iterations, 4),
            "distill_seconds": round(local_distill, 2), "setup_seconds": round(local_setup, 2),
            "mean_matching_loss": round(sum(r.loss for r in local_history) / iterations, 4),
            "accuracy_mean": round(local_eval.mean, 4), "accuracy_std": round(local_eval.std, 4),
            "evaluation_seconds": round(local_eval_seconds, 2),
        },
        "ray_1_worker": {**one, "bit_identical_to_in_process": same_as_local},
        "ray_2_workers": {**two, "mean_abs_pixel_difference_to_1_worker": round(apart, 5),
                          "mean_abs_pixel_change_by_distillation_1_worker": round(moved, 5)},
        "scoring": {"driver_seconds": round(scoring_seconds, 2), "ray_tasks_seconds": round(ray_scoring_seconds, 2),
                    "runs": stages.config.scoring.runs,
                    "bit_identical_to_in_process": bool(torch.equal(ray_scores, local_scores))},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    log.info("bench_ray.done", results=str(RESULTS))
    print(json.dumps(results, indent=2))  # the benchmark's output is its report


if __name__ == "__main__":
    main()
