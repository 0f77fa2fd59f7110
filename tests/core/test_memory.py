"""``distill.unroll: auto``: full or recompute from the measured footprint of a step and a memory budget."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from pad_sdk.config import DistillSettings
from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.matching import StudentProblem, plan_unroll
from pad_sdk.core.memory import available_memory, choose_unroll, default_budget, step_graph_bytes
from pad_sdk.core.networks import create_network
from pad_sdk.core.params import ParamSpec, flatten_params
from pad_sdk.core.seeding import make_generator, seeded


def _problem(batch: int, steps: int = 5) -> tuple[StudentProblem, torch.Tensor, object]:
    network = seeded(0, lambda: create_network("convnet", in_channels=1, num_classes=10, image_size=(8, 8),
                                               width=16, depth=2))
    images = torch.randn(batch, 1, 8, 8, requires_grad=True)
    logits = torch.randn(batch, 10, requires_grad=True)
    problem = StudentProblem(network, ParamSpec.of(network), images, logits, torch.tensor(0.01, requires_grad=True),
                             DiffAugment())
    plan = plan_unroll(batch, steps, batch, (8, 8), DiffAugment(), make_generator(0))
    return problem, flatten_params(network), plan


def test_auto_is_the_default_unroll() -> None:
    assert DistillSettings().unroll == "auto"


def test_a_step_footprint_grows_with_the_synthetic_batch() -> None:
    small = step_graph_bytes(*_problem(20))  # type: ignore[arg-type]
    large = step_graph_bytes(*_problem(80))  # type: ignore[arg-type]
    assert small > 0 and 3.0 < large / small < 4.5


def test_auto_picks_full_within_the_budget_and_recompute_over_it() -> None:
    problem, start, plan = _problem(40, steps=10)
    roomy = choose_unroll("auto", problem, start, plan, budget_bytes=2**40)
    assert roomy.mode == "full" and "within" in roomy.reason
    assert roomy.full_bytes > 10 * roomy.step_bytes > roomy.recompute_bytes
    tight = choose_unroll("auto", problem, start, plan, budget_bytes=roomy.full_bytes // 2)
    assert tight.mode == "recompute" and "over the" in tight.reason
    unknown = choose_unroll("auto", problem, start, plan, budget_bytes=None)
    assert unknown.mode == "recompute" and unknown.budget_bytes is None
    forced = choose_unroll("full", problem, start, plan, budget_bytes=1)
    assert forced.mode == "full" and forced.reason == "set by distill.unroll=full"


def test_the_host_budget_comes_from_available_memory() -> None:
    free = available_memory(torch.device("cpu"))
    budget = default_budget(torch.device("cpu"))
    assert free is not None and budget is not None and 0 < budget < free


_PEAK_SCRIPT = textwrap.dedent("""
    import json, sys, torch
    from pad_sdk.config import DistillSettings
    from pad_sdk.core.augment import DiffAugment
    from pad_sdk.core.distill import Distiller, SyntheticSet
    from pad_sdk.core.networks import create_network
    from pad_sdk.core.params import ParamSpec, flatten_params
    from pad_sdk.core.seeding import make_generator, seeded

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

    torch.set_num_threads(1)
    budget_gib = float(sys.argv[1])
    net = seeded(0, lambda: create_network("convnet", in_channels=1, num_classes=10, image_size=(28, 28), width=32,
                                           depth=3))
    start = flatten_params(net)
    experts = [start + 0.01 * torch.randn(6, ParamSpec.of(net).numel, generator=make_generator(1))]
    synthetic = SyntheticSet(torch.randn(100, 1, 28, 28), torch.randn(100, 10), torch.tensor(0.01),
                             torch.arange(100) % 10)
    settings = DistillSettings(iterations=1, syn_steps=10, expert_epochs=2, current_max_start_epoch=2,
                               max_start_epoch=3, threshold=1e9, memory_budget_gib=budget_gib)
    distiller = Distiller(synthetic, net, experts, settings, make_generator(0), augment=DiffAugment())
    base = status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current resident size
    distiller.run(1)
    print(json.dumps({"peak": status("VmHWM:") - base, **distiller.unroll.to_dict()}))
""")


@pytest.mark.slow
def test_a_small_budget_picks_recompute_and_the_peak_stays_under_it() -> None:
    """In a fresh process (its own peak RSS): the full unroll would need about 1.1 GiB; the budget is 0.5 GiB."""
    budget = 0.5
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(budget)], capture_output=True, text=True,
                         timeout=300, check=True)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["full_bytes"] > budget * 2**30, record  # the setting does not fit in full mode
    assert record["mode"] == "recompute", record
    assert record["recompute_bytes"] < budget * 2**30
    assert 0 < record["peak"] < budget * 2**30, record
