"""A driver process for the interruption test: trains the experts and starts distilling on the given
cluster; the test kills this process while a worker is paused (``PAD_SDK_RAY_FAULT``), mid-run.

Usage: python interrupted_driver.py ADDRESS STORAGE RUN_ID
"""

from __future__ import annotations

import sys

from ray_digits import CHECKPOINT_EVERY, build_case

from pad_sdk.runtime.ray import RayRuntime


def main(address: str, storage: str, run_id: str) -> None:
    case = build_case()
    runtime = RayRuntime(num_workers=1, address=address, storage=storage, run_id=run_id,
                         checkpoint_every=CHECKPOINT_EVERY)
    experts = runtime.train_experts(case.stages, case.plan, None)
    runtime.distill(case.stages, experts)
    raise SystemExit("the test should have killed this driver before distillation finished")


if __name__ == "__main__":
    main(*sys.argv[1:4])
