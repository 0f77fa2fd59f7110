"""Every stage runs with the networks on an accelerator and the data on the host, checked on a CPU-only machine.

``tests/device_sim.py`` turns PyTorch's ``meta`` device into a working accelerator that refuses to mix host
and device tensors in one operation, as CUDA does. The first GPU run of pad-sdk crashed at the first
distillation step on exactly that (a host batch fed to a network on the GPU); these tests fail on that class
of bug without a GPU. ``tests/gpu/`` runs the same stages on a real CUDA device when one is present.
"""

from __future__ import annotations

from typing import Any

import device_sim
import numpy as np
import pytest
import torch

import pad_sdk
from pad_sdk.core.networks import create_network
from pad_sdk.core.params import ParamSpec, flatten_params, functional_forward
from pad_sdk.data import arrays_to_raw, prepare
from pad_sdk.demo import load_digits_arrays
from pad_sdk.methods import MethodContext, get_method
from pad_sdk.pipeline import Stages

pytestmark = pytest.mark.slow

# the tiny preset cut further: the simulated device runs every operation through Python
SMALL: dict[str, Any] = {
    "experts": {"num_experts": 2, "epochs": 4},
    "distill": {"iterations": 2, "syn_steps": 3, "min_start_epoch": 0, "current_max_start_epoch": 1,
                "max_start_epoch": 2, "expansion_end": None},
    "evaluation": {"epochs": 3, "seeds": 1, "full_epochs": 1},
}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    return load_digits_arrays()


def test_the_simulated_device_refuses_a_host_batch_for_a_device_network() -> None:
    """The bug of the first GPU run, reproduced: initialisation fed host images to a network on the GPU."""
    network = create_network("convnet", in_channels=1, num_classes=10, image_size=(8, 8), width=8, depth=2)
    spec, images = ParamSpec.of(network), torch.randn(4, 1, 8, 8)
    expected = functional_forward(network, spec, flatten_params(network), images)
    with device_sim.simulated_device() as device:
        network.to(device)
        params = flatten_params(network)
        with pytest.raises(RuntimeError, match="same device"):
            functional_forward(network, spec, params, images)
        on_device = functional_forward(network, spec, params, images.to(device))
        assert on_device.device == device and device_sim.CONVOLUTIONS["device"] > 0
        assert torch.equal(on_device.cpu(), expected)  # the same kernels, the same numbers


def _distill(digits: tuple[np.ndarray, np.ndarray, tuple[str, ...]], method: str, device: str,
             overrides: dict[str, Any] = SMALL) -> pad_sdk.DistillResult:
    images, labels, names = digits
    return pad_sdk.distill(images, labels, ipc=1, preset="tiny", class_names=names, method=method, seed=1,
                           overrides={**overrides, "device": device})


def test_pad_runs_every_stage_on_the_device_and_matches_the_host_run(digits: Any) -> None:
    """Scoring, experts (data scheduler), initialisation, distillation and evaluation with host data."""
    with device_sim.simulated_device():
        on_device = _distill(digits, "pad", "meta")
        convolutions = dict(device_sim.CONVOLUTIONS)
    assert convolutions.get("host", 0) == 0 and convolutions["device"] > 0
    on_host = _distill(digits, "pad", "cpu")
    assert torch.equal(on_device.images, on_host.images) and on_device.images.device.type == "cpu"
    assert torch.equal(on_device.soft_labels, on_host.soft_labels)  # type: ignore[arg-type]
    assert on_device.loss_history == on_host.loss_history
    assert on_device.accuracy is not None and on_host.accuracy is not None
    assert on_device.accuracy.condensed.accuracies == on_host.accuracy.condensed.accuracies
    assert on_device.decisions["unroll"]["mode"] in ("full", "recompute")


def test_mtt_hard_labels_and_real_initialisation_run_on_the_device(digits: Any) -> None:
    with device_sim.simulated_device():
        result = _distill(digits, "mtt", "meta")
        assert device_sim.CONVOLUTIONS.get("host", 0) == 0
    assert result.images.shape == (10, 1, 8, 8) and result.images.device.type == "cpu"


@pytest.mark.parametrize("method", ["dc", "dm", "herding"])
def test_matching_methods_and_coresets_put_their_networks_on_the_device(digits: Any, method: str) -> None:
    """DC/DM used to build their networks on the images' device (the host), whatever the configured one."""
    images, labels, names = digits
    raw = arrays_to_raw(images, labels, test_images=None, test_labels=None, class_names=names,
                        holdout_fraction=0.2, seed=0)
    data = prepare(raw, zca=False)
    with device_sim.simulated_device():
        context = MethodContext(data, "tiny", {**SMALL, "device": "meta"}, seed=1)
        synthetic = get_method(method).condense(context, 1, 0)
        assert device_sim.CONVOLUTIONS.get("host", 0) == 0 and device_sim.CONVOLUTIONS["device"] > 0
    assert synthetic.images.device.type == "cpu" and synthetic.images.shape == (10, 1, 8, 8)
    assert Stages(context.config(1), data).device.type == "meta"


def test_validation_stages_and_the_herding_start_run_on_the_device(digits: Any) -> None:
    """Stages added after the first GPU run: the probes, the subset check and its fallback (validation split),
    and the herding start (cpu-small's at IPC >= 50). On the device they give what the host run gives."""
    images, labels, names = digits
    overrides = {**SMALL, "distill": {**SMALL["distill"], "pix_init": "herding"},
                 "auto": {"validation_fraction": 0.2, "candidates": ("preset", "datm", "hard_labels"), "fraction": 0.5}}

    def run(device: str) -> pad_sdk.DistillResult:
        return pad_sdk.distill(images, labels, ipc=1, preset="tiny", class_names=names, method="pad", seed=1,
                               fallback="subset", overrides={**overrides, "device": device})

    with device_sim.simulated_device():
        on_device = run("meta")
        assert device_sim.CONVOLUTIONS.get("host", 0) == 0 and device_sim.CONVOLUTIONS["device"] > 0
    on_host = run("cpu")
    probes, check = on_device.decisions["probes"], on_device.decisions["subset_check"]
    assert [p["name"] for p in probes["probes"]] == ["preset", "datm", "hard_labels"]
    assert set(check["subsets"]) == {"herding", "kcenter", "random"}
    for key in ("probes", "subset_check"):  # the same choices from the same numbers, seconds aside
        assert _without_seconds(on_device.decisions[key]) == _without_seconds(on_host.decisions[key])
    assert on_device.decisions.get("fallback") == on_host.decisions.get("fallback")
    assert torch.equal(on_device.images, on_host.images) and on_device.images.device.type == "cpu"


def _without_seconds(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


def test_the_plan_calibrates_on_the_device(digits: Any) -> None:
    """The estimate times the run's kinds of work on the run's device, so its calibration must place them there."""
    images, labels, names = digits
    with device_sim.simulated_device():
        plan = pad_sdk.plan(images, labels, ipcs=[1, 5], preset="tiny", class_names=names, method="pad",
                            overrides={**SMALL, "device": "meta"})
        assert device_sim.CONVOLUTIONS.get("host", 0) == 0 and device_sim.CONVOLUTIONS["device"] > 0
    assert plan.device == "meta" and plan.ipcs == (1, 5)
    assert any(stage.stage == "calibration" and stage.seconds > 0 for stage in plan.stages)


def test_experts_trained_together_run_on_the_device(digits: Any) -> None:
    """compute.experts_at_once: the vectorised expert step takes its batches to the device too."""
    overrides = {**SMALL, "compute": {"experts_at_once": 2}}
    with device_sim.simulated_device():
        on_device = _distill(digits, "pad", "meta", overrides)
        assert device_sim.CONVOLUTIONS.get("host", 0) == 0 and device_sim.CONVOLUTIONS["device"] > 0
    assert torch.equal(on_device.images, _distill(digits, "pad", "cpu", overrides).images)
