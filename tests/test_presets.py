"""Presets mirror the official PAD settings and stay valid for every IPC."""

from __future__ import annotations

import pytest

from pad_sdk import ConfigError, preset_config
from pad_sdk.presets import available_presets, nearest_official_ipc


@pytest.mark.parametrize(
    ("ipc", "n", "m", "t_minus", "t_plus", "alpha", "lr_img"),
    [(1, 80, 2, 0, 4, 0.0, 100.0), (10, 80, 2, 0, 20, 0.5, 100.0), (50, 80, 3, 0, 40, 0.25, 1000.0),
     (500, 40, 2, 40, 70, 0.5, 50.0), (1000, 100, 2, 40, 60, 0.5, 50.0)],
)
def test_paper_preset_matches_the_official_cifar10_configs(ipc: int, n: int, m: int, t_minus: int, t_plus: int,
                                                           alpha: float, lr_img: float) -> None:
    d = preset_config("paper", ipc).distill
    assert (d.syn_steps, d.expert_epochs, d.min_start_epoch, d.max_start_epoch) == (n, m, t_minus, t_plus)
    assert (d.selection_ratio, d.lr_img, d.iterations) == (alpha, lr_img, 10000)
    cfg = preset_config("paper", ipc)
    assert cfg.experts.num_experts == 100 and cfg.experts.epochs == 100 and cfg.zca


def test_ipc_between_official_ones_uses_the_nearest() -> None:
    assert [nearest_official_ipc(i) for i in (2, 3, 4, 20, 30, 200)] == [1, 1, 10, 10, 50, 500]


@pytest.mark.parametrize("name", available_presets())
@pytest.mark.parametrize("ipc", [1, 2, 5, 10, 20, 50, 100, 500, 1000])
def test_every_preset_is_valid_at_every_ipc(name: str, ipc: int) -> None:
    cfg = preset_config(name, ipc)
    assert cfg.ipc == ipc and cfg.preset == name
    assert cfg.distill.max_start_epoch + cfg.distill.expert_epochs <= cfg.experts.epochs


def test_overrides_apply_on_top_and_are_validated() -> None:
    cfg = preset_config("cpu-small", 10, {"distill": {"iterations": 7}, "network": {"width": 32}})
    assert cfg.distill.iterations == 7 and cfg.network.width == 32 and cfg.distill.syn_steps == 20
    with pytest.raises(ConfigError) as info:
        preset_config("cpu-small", 10, {"distill": {"selection_ratio": 1.5}})
    assert info.value.field == "distill.selection_ratio"
    with pytest.raises(ConfigError, match="current_max_start_epoch"):
        preset_config("cpu-small", 10, {"distill": {"current_max_start_epoch": 0}})
