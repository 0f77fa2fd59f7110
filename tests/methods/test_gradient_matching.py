"""The deep-only gradient distance against a loop-based reference, and DC's per-tensor rules."""

from __future__ import annotations

import math

import pytest
import torch

from pad_sdk.core.gradient_matching import deep_start_rows, gradient_distance, layer_distance
from pad_sdk.core.matching import ParameterSelection
from pad_sdk.core.networks import create_network
from pad_sdk.core.params import ParamSpec


def _reference(real: list[torch.Tensor], syn: list[torch.Tensor], cut: int) -> float:
    """Walk the flat vector tensor by tensor, row by row: a row of a >= 2-D tensor counts iff its first flat
    coordinate is at or after ``cut``; it contributes 1 - cos(real_row, syn_row) with DC's epsilon."""
    total, offset = 0.0, 0
    for r, s in zip(real, syn, strict=True):
        if r.dim() == 1:
            offset += r.numel()
            continue
        rest = r.numel() // r.shape[0]
        for row in range(r.shape[0]):
            if offset + row * rest >= cut:
                a = [float(v) for v in r.reshape(r.shape[0], -1)[row]]
                b = [float(v) for v in s.reshape(s.shape[0], -1)[row]]
                dot = sum(x * y for x, y in zip(a, b, strict=True))
                norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
                total += 1.0 - dot / (norm + 1e-6)
        offset += r.numel()
    return total


@pytest.fixture(scope="module")
def grads() -> tuple[ParamSpec, list[torch.Tensor], list[torch.Tensor]]:
    net = create_network("convnet", in_channels=1, num_classes=3, image_size=(8, 8), width=4, depth=2)
    g = torch.Generator().manual_seed(0)
    real = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in net.parameters()]
    syn = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in net.parameters()]
    return ParamSpec.of(net), real, syn


@pytest.mark.parametrize("mode,ratio", [("none", 0.0), ("depth", 0.1), ("depth", 0.25), ("depth", 0.5),
                                        ("depth", 0.9), ("layer", 0.25), ("layer", 0.5)])
def test_deep_only_distance_equals_loop_reference(grads, mode: str, ratio: float) -> None:
    spec, real, syn = grads
    selection = ParameterSelection(mode, ratio)  # type: ignore[arg-type]
    keep = selection.keep(spec, torch.zeros(spec.numel), torch.zeros(spec.numel))
    cut = keep.start or 0  # type: ignore[union-attr]
    got = gradient_distance(real, syn, deep_start_rows(spec, selection))
    assert float(got) == pytest.approx(_reference(real, syn, cut), rel=1e-9, abs=1e-12)


def test_depth_cut_inside_a_tensor_keeps_only_rows_after_it(grads) -> None:
    spec, _, _ = grads
    # width 4, depth 2 on 1 channel: conv1.w 36, conv1.b 4, norm1 4+4, conv2.w 4x36 at offset 48, ...
    assert spec.sizes[:5] == (36, 4, 4, 4, 144)
    cut = math.floor(0.25 * spec.numel)
    rows = deep_start_rows(spec, ParameterSelection("depth", 0.25))
    assert rows[:4] == (4, 4, 4, 4)  # every row of the first block lies before the cut
    assert rows[4] == math.ceil((cut - 48) / 36)  # conv2.w: rows starting at or after the cut stay
    assert rows[5:] == (0,) * (len(rows) - 5)


def test_bias_and_norm_tensors_contribute_nothing() -> None:
    assert float(layer_distance(torch.randn(7), torch.randn(7))) == 0.0
    w = torch.randn(3, 2, 3, 3)
    assert float(layer_distance(w, w)) == pytest.approx(0.0, abs=1e-5)
    assert float(layer_distance(w, -w)) == pytest.approx(6.0, abs=1e-5)  # 3 rows, cos -1 each


def test_error_selection_is_rejected(grads) -> None:
    with pytest.raises(ValueError, match="none, depth and layer"):
        deep_start_rows(grads[0], ParameterSelection("error", 0.5))
