"""The stages on a real CUDA device (``pytest -m gpu``); skipped with a reason on machines without one.

``tests/test_device.py`` covers the same class of bug on CPU-only machines with a simulated device;
``python -m benchmarks.gpu_check`` runs these tests on the GPU machine and records the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import pad_sdk
from pad_sdk.config import DistillSettings
from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.distill import Distiller, SyntheticSet
from pad_sdk.core.experts import ExpertPlan, train_expert, train_expert_group
from pad_sdk.core.networks import create_network
from pad_sdk.core.params import ParamSpec, flatten_params
from pad_sdk.core.seeding import make_generator, seeded
from pad_sdk.core.training import LabelledImages, TrainRecipe
from pad_sdk.data import arrays_to_raw, prepare
from pad_sdk.demo import load_digits_arrays
from pad_sdk.methods import MethodContext, get_method

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]

SMALL: dict[str, Any] = {"experts": {"num_experts": 2, "epochs": 4},
                         "distill": {"iterations": 4, "syn_steps": 3, "min_start_epoch": 0,
                                     "current_max_start_epoch": 1, "max_start_epoch": 2, "expansion_end": None},
                         "evaluation": {"epochs": 20, "seeds": 2, "full_epochs": 2}}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    return load_digits_arrays()


@pytest.mark.parametrize("method", ["pad", "datm", "mtt"])
def test_trajectory_methods_run_on_cuda_close_to_the_cpu_run(digits: Any, method: str) -> None:
    images, labels, names = digits
    runs = {device: pad_sdk.distill(images, labels, ipc=1, preset="tiny", class_names=names, method=method,
                                    overrides={**SMALL, "device": device, "compute": {"tf32": False}})
            for device in ("cuda", "cpu")}
    gpu, cpu = runs["cuda"], runs["cpu"]
    assert gpu.images.device.type == "cpu" and torch.isfinite(gpu.images).all()
    assert np.allclose(gpu.loss_history, cpu.loss_history, rtol=1e-3, atol=1e-4)
    assert gpu.accuracy is not None and cpu.accuracy is not None
    assert abs(gpu.accuracy.condensed.mean - cpu.accuracy.condensed.mean) < 0.1


@pytest.mark.parametrize("method", ["dc", "dm", "herding", "kcenter"])
def test_other_methods_run_on_cuda(digits: Any, method: str) -> None:
    images, labels, names = digits
    raw = arrays_to_raw(images, labels, test_images=None, test_labels=None, class_names=names,
                        holdout_fraction=0.2, seed=0)
    context = MethodContext(prepare(raw, zca=False), "tiny", {**SMALL, "device": "cuda"}, seed=1)
    synthetic = get_method(method).condense(context, 1, 0)
    assert synthetic.images.shape == (10, 1, 8, 8) and torch.isfinite(synthetic.images).all()


def test_probes_subset_check_and_the_herding_start_run_on_cuda(digits: Any) -> None:
    """The validation-split stages (probes, subset check, subset fallback) and the herding start on CUDA."""
    images, labels, names = digits
    overrides = {**SMALL, "distill": {**SMALL["distill"], "pix_init": "herding"}, "compute": {"tf32": False},
                 "auto": {"validation_fraction": 0.2, "candidates": ("preset", "datm"), "fraction": 0.5}}
    runs = {device: pad_sdk.distill(images, labels, ipc=1, preset="tiny", class_names=names, method="pad", seed=1,
                                    fallback="subset", overrides={**overrides, "device": device})
            for device in ("cuda", "cpu")}
    gpu, cpu = runs["cuda"], runs["cpu"]
    assert [p["name"] for p in gpu.decisions["probes"]["probes"]] == ["preset", "datm"]
    assert set(gpu.decisions["subset_check"]["subsets"]) == {"herding", "kcenter", "random"}
    assert gpu.images.device.type == "cpu" and torch.isfinite(gpu.images).all()
    assert abs(gpu.decisions["subset_check"]["condensed"] - cpu.decisions["subset_check"]["condensed"]) < 0.15


def test_experts_trained_together_on_cuda_follow_their_own_trajectories() -> None:
    """compute.experts_at_once on CUDA: one vectorised step for several experts, each as it trains alone."""
    g = make_generator(0)
    data = LabelledImages(torch.randn(512, 1, 28, 28, generator=g), torch.arange(512) % 10, 10)

    def build() -> torch.nn.Module:
        return create_network("convnet", in_channels=1, num_classes=10, image_size=(28, 28), width=32, depth=3)

    recipe, device, cudnn_tf32 = TrainRecipe(epochs=2, lr=0.01, batch_size=128), torch.device("cuda"), \
        torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # grouped and plain convolutions round alike only in full FP32
    try:
        together = train_expert_group(data, build, recipe, ExpertPlan(), seeds=[1, 2, 3], augment=DiffAugment(),
                                      device=device)
        alone = [train_expert(data, build, recipe, ExpertPlan(), seed=s, augment=DiffAugment(), device=device)
                 for s in (1, 2, 3)]
    finally:
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
    for grouped, single in zip(together, alone, strict=True):
        assert grouped.device.type == "cpu" and torch.allclose(grouped, single, atol=1e-4, rtol=1e-3)


def test_auto_unroll_keeps_the_peak_under_a_small_budget_on_cuda() -> None:
    device = torch.device("cuda")
    net = seeded(0, lambda: create_network("convnet", in_channels=1, num_classes=10, image_size=(28, 28), width=128,
                                           depth=3)).to(device)
    start = flatten_params(net)
    experts = [(start + 0.01 * torch.randn(6, ParamSpec.of(net).numel, device=device)).cpu()]
    synthetic = SyntheticSet(torch.randn(500, 1, 28, 28, device=device), torch.randn(500, 10, device=device),
                             torch.tensor(0.01, device=device), (torch.arange(500) % 10).to(device))
    budget_gib = 4.0
    settings = DistillSettings(iterations=2, syn_steps=40, expert_epochs=2, current_max_start_epoch=2,
                               max_start_epoch=3, threshold=1e9, memory_budget_gib=budget_gib)
    distiller = Distiller(synthetic, net, experts, settings, make_generator(0), augment=DiffAugment())
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    distiller.run(2)
    torch.cuda.synchronize()
    assert distiller.unroll is not None and distiller.unroll.mode == "recompute"  # full would need ~55 GiB
    assert torch.cuda.max_memory_allocated() < budget_gib * 2**30
