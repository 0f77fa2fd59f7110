"""What Ray itself costs on this machine, in units of one fresh worker start: the ratios the estimate uses.

The Ray runtime's estimate (``RayRuntime.start_up_costs``) measures one thing per run, how long fresh worker
processes take to start and import what the runtime's tasks import (a no-op ``StartProbe`` actor per worker),
and derives the trainer and pool-restart costs from it with ``TRAINER_STARTS`` and ``POOL_RESTART_STARTS``.
This benchmark measures those ratios on an embedded cluster (loopback only), with no work in between:

- ``cluster_s``: starting the embedded cluster;
- ``worker_start_s``: the StartProbe measurement itself (the unit);
- ``first_tasks_s`` / ``warm_tasks_s``: no-op tasks on a fresh, then a warm pool;
- per no-op ``TorchTrainer.fit``: its whole time, when its loop began, and the tasks after it.

    python -m benchmarks.bench_ray_startup          # -> benchmarks/results/ray_startup.json (about 90 s)

A real distillation's trainer also sets up the stages on each worker and writes a checkpoint, so it costs more
than a no-op fit (see docs/benchmarks.md, "Ray start-up").
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._meta import stamp
from benchmarks.bench_estimate import RAY_ENV, RAY_WORKERS

RESULTS = Path(__file__).resolve().parent / "results"


def _noop_task() -> int:
    import pad_sdk.runtime._ray_tasks  # noqa: F401  what every task of the runtime imports

    return os.getpid()


def _noop_loop(config: dict[str, Any]) -> None:
    import pad_sdk.runtime._ray_distill  # noqa: F401  what the distillation workers import

    Path(config["marks"], f"{os.getpid()}").write_text(f"{time.time()}")


def measure(fits: int = 2) -> dict[str, Any]:
    for name, value in RAY_ENV.items():
        os.environ.setdefault(name, value)
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from pad_sdk.runtime.ray import POOL_RESTART_STARTS, TRAINER_STARTS, RayRuntime

    def timed_tasks(task: Any) -> tuple[float, list[int]]:
        began = time.perf_counter()
        pids = ray.get([task.remote() for _ in range(RAY_WORKERS)])
        return time.perf_counter() - began, sorted(pids)

    with tempfile.TemporaryDirectory() as scratch, RayRuntime(num_workers=RAY_WORKERS, storage=scratch) as runtime:
        began = time.perf_counter()
        runtime._ensure_cluster()
        cluster = time.perf_counter() - began
        unit = runtime.start_up_costs().task_pool
        task = ray.remote(_noop_task).options(**runtime._task_options())
        first, first_pids = timed_tasks(task)
        warm, warm_pids = timed_tasks(task)
        rows = []
        for k in range(fits):
            marks = Path(scratch, f"marks-{k}")
            marks.mkdir()
            trainer = TorchTrainer(_noop_loop, train_loop_config={"marks": str(marks)},
                                   scaling_config=ScalingConfig(num_workers=RAY_WORKERS),
                                   run_config=RunConfig(name=f"noop-{k}", storage_path=str(Path(scratch, "train"))))
            began_wall, began = time.time(), time.perf_counter()
            trainer.fit()
            fit = time.perf_counter() - began
            loop_at = max(float(p.read_text()) for p in marks.iterdir()) - began_wall
            after, after_pids = timed_tasks(task)
            rows.append({"fit_s": round(fit, 2), "loop_began_after_s": round(loop_at, 2),
                         "fit_in_starts": round(fit / unit, 2), "tasks_after_s": round(after, 2),
                         "tasks_after_in_starts": round(after / unit, 2),
                         "pool_restarted": after_pids != warm_pids})
    return {"cluster_s": round(cluster, 2), "worker_start_s": round(unit, 2), "first_tasks_s": round(first, 2),
            "warm_tasks_s": round(warm, 3), "pool_was_fresh": first_pids != warm_pids or first > 10 * warm,
            "fits": rows, "workers": RAY_WORKERS,
            "used": {"TRAINER_STARTS": TRAINER_STARTS, "POOL_RESTART_STARTS": POOL_RESTART_STARTS}}


def main() -> None:
    figures = measure()
    path = RESULTS / "ray_startup.json"
    path.write_text(json.dumps({**stamp(), **figures}, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
