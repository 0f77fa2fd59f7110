"""Tests for pad_sdk.core.augment: DSA families, replayable draws, siamese sharing, RNG hygiene."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from pad_sdk.core.augment import FAMILIES, AugmentDraw, DiffAugment, DSAConfig
from pad_sdk.errors import ConfigError, DataError

FULL = "color_crop_cutout_flip_scale_rotate"


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n: int, c: int, h: int, w: int | None = None, seed: int = 0, **kw: object) -> torch.Tensor:
    """(n, c, h, w) uniform [0, 1) images from their own generator (no global RNG in tests either)."""
    return torch.rand(n, c, h, w or h, generator=_gen(seed), **kw)  # type: ignore[call-overload]


# ---------------------------------------------------------------------------------------------- smoke


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("size", [8, 28, 32])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    ("strategy", "single"),
    [(name, True) for name in FAMILIES] + [(FULL, True), (FULL, False)],
    ids=[*FAMILIES, "full-S", "full-M"],
)
def test_shape_finite_and_gradient(strategy: str, single: bool, channels: int, size: int, batch: int) -> None:
    augment = DiffAugment(DSAConfig(strategy=strategy, single_family=single))
    x = _images(batch, channels, size).requires_grad_()
    y = augment(x, generator=_gen(size + batch))
    assert y.shape == x.shape
    assert y.dtype == x.dtype
    assert torch.isfinite(y).all()
    # Random weights: a plain sum can have an identically-zero gradient through the contrast mean.
    (y * _images(batch, channels, size, seed=99)).sum().backward()
    assert x.grad is not None
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", FAMILIES)
def test_float64_non_square_and_non_contiguous_one_channel(name: str) -> None:
    augment = DiffAugment(DSAConfig(strategy=name))
    # A 1-channel slice of a 3-channel batch is non-contiguous: the official crop's .view crashes on it.
    x = _images(4, 3, 24, 36, dtype=torch.float64)[:, 1:2].requires_grad_()
    assert not x.is_contiguous()
    y = augment(x, generator=_gen(1))
    assert y.shape == (4, 1, 24, 36)
    assert y.dtype == torch.float64
    assert y.is_contiguous()
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# -------------------------------------------------------------------------------------- determinism


def test_same_seed_same_output_different_seed_different_output() -> None:
    augment = DiffAugment(DSAConfig(single_family=False))
    x = _images(6, 3, 16)
    first = augment(x, generator=_gen(7))
    assert torch.equal(first, augment(x, generator=_gen(7)))
    assert not torch.allclose(first, augment(x, generator=_gen(8)))


def test_replayed_draw_gives_identical_output_and_matches_call() -> None:
    augment = DiffAugment(DSAConfig(single_family=False))
    x = _images(5, 3, 16)
    draw = augment.sample(5, (16, 16), generator=_gen(3))
    assert draw.families == FAMILIES
    assert torch.equal(augment.apply(x, draw), augment.apply(x, draw))
    assert torch.equal(augment.apply(x, draw), augment(x, generator=_gen(3)))


@pytest.mark.parametrize("strategy", [*FAMILIES, FULL])
def test_siamese_draw_gives_same_transform_across_batch_sizes(strategy: str) -> None:
    augment = DiffAugment(DSAConfig(strategy=strategy, single_family=False, flip=0.5))
    image = _images(1, 3, 20)
    small, large = image.expand(3, -1, -1, -1), image.expand(7, -1, -1, -1)
    for seed in range(4):  # several draws so flip is exercised both ways
        draw = augment.sample(3, (20, 20), generator=_gen(seed), siamese=True)
        out_small, out_large = augment.apply(small, draw), augment.apply(large, draw)
        assert out_small.shape[0] == 3 and out_large.shape[0] == 7
        reference = out_small[0]
        assert all(torch.equal(reference, row) for row in [*out_small, *out_large])


def test_per_sample_draw_differs_across_samples_and_rejects_other_batch_sizes() -> None:
    augment = DiffAugment(DSAConfig(strategy="rotate"))
    x = _images(1, 3, 16).expand(4, -1, -1, -1)
    draw = augment.sample(4, (16, 16), generator=_gen(0))
    out = augment.apply(x, draw)
    assert not torch.allclose(out[0], out[1])
    with pytest.raises(DataError, match="siamese=True"):
        augment.apply(_images(3, 3, 16), draw)
    with pytest.raises(DataError, match="size"):
        augment.apply(_images(4, 3, 17), draw)


def test_single_family_mode_picks_one_family_per_call_covering_all() -> None:
    augment = DiffAugment(DSAConfig())
    g = _gen(0)
    picked = [augment.sample(2, (8, 8), generator=g).families for _ in range(200)]
    assert all(len(families) == 1 for families in picked)
    assert {families[0] for families in picked} == set(FAMILIES)


def test_global_rng_state_untouched() -> None:
    before = torch.get_rng_state()
    x = _images(4, 3, 16).requires_grad_()
    for single in (True, False):
        augment = DiffAugment(DSAConfig(single_family=single))
        g = _gen(5)
        for _ in range(20):
            augment(x, generator=g).sum().backward()
            augment.apply(x, augment.sample(4, (16, 16), generator=g, siamese=True))
    assert torch.equal(before, torch.get_rng_state())


# -------------------------------------------------------------------------------------- semantics


def test_flip_probability_one_is_torch_flip_and_zero_is_identity() -> None:
    x = _images(5, 3, 12, 10)
    always = DiffAugment(DSAConfig(strategy="flip", flip=1.0))(x, generator=_gen(0))
    assert torch.equal(always, torch.flip(x, dims=[3]))
    never = DiffAugment(DSAConfig(strategy="flip", flip=0.0))(x, generator=_gen(0))
    assert torch.equal(never, x)


@pytest.mark.parametrize(("strategy", "config"), [("rotate", {"rotate": 0.0}), ("scale", {"scale": 1.0})])
@pytest.mark.parametrize(("height", "width"), [(8, 8), (28, 28), (32, 24)])
def test_zero_rotation_and_unit_scale_are_identity(
    strategy: str, config: dict[str, Any], height: int, width: int
) -> None:
    x = _images(5, 3, height, width)
    identity = DiffAugment(DSAConfig(strategy=strategy, **config))(x, generator=_gen(0))
    assert (identity - x).abs().max() < 1e-5
    # The test can fail: the default magnitudes do move pixels.
    moved = DiffAugment(DSAConfig(strategy=strategy))(x, generator=_gen(0))
    assert (moved - x).abs().max() > 1e-2


def test_quarter_turn_matches_rot90() -> None:
    # With align_corners=False a 90-degree rotation maps pixel centres onto pixel centres exactly, which
    # pins the sign convention of the rotation matrix: +pi/2 equals torch.rot90(k=1, dims=(2, 3)).
    x = _images(2, 3, 10, dtype=torch.float64)
    draw = AugmentDraw(
        families=("rotate",),
        image_size=(10, 10),
        batch_size=1,
        siamese=True,
        rotate=torch.tensor([math.pi / 2], dtype=torch.float64),
    )
    out = DiffAugment().apply(x, draw)
    assert torch.allclose(out, torch.rot90(x, k=1, dims=(2, 3)), atol=1e-12)


def test_scale_factor_two_zooms_out_to_the_centre_half() -> None:
    # sx = sy = 2 samples twice as far from the centre: the image shrinks to its central half, zero around.
    x = torch.ones(1, 1, 16, 16, dtype=torch.float64)
    draw = AugmentDraw(
        families=("scale",),
        image_size=(16, 16),
        batch_size=1,
        siamese=True,
        scale=torch.tensor([[2.0, 2.0]], dtype=torch.float64),
    )
    out = DiffAugment().apply(x, draw)[0, 0]
    assert torch.allclose(out[4:12, 4:12], torch.ones(8, 8, dtype=torch.float64))
    assert out[:4].abs().max() == 0 and out[:, 12:].abs().max() == 0


def test_color_matches_per_sample_formula() -> None:
    cfg = DSAConfig(strategy="color")
    x = _images(6, 3, 9, dtype=torch.float64)
    draw = DiffAugment(cfg).sample(6, (9, 9), generator=_gen(2))
    out = DiffAugment(cfg).apply(x, draw)
    assert draw.brightness is not None and draw.saturation is not None and draw.contrast is not None
    for i in range(6):  # slow reference, one sample at a time, the official formulas written out
        b, s, c = draw.brightness[i], draw.saturation[i], draw.contrast[i]
        assert -0.5 <= b <= 0.5 and 0 <= s <= 2 and 0.5 <= c <= 1.5
        xi = x[i] + b
        xi = (xi - xi.mean(0)) * s + xi.mean(0)
        xi = (xi - xi.mean()) * c + xi.mean()
        assert torch.allclose(out[i], xi, atol=1e-12)


def test_geometric_parameters_span_the_configured_ranges() -> None:
    cfg = DSAConfig(strategy="flip_scale_rotate", single_family=False, flip=0.3, scale=1.2, rotate=15.0)
    draw = DiffAugment(cfg).sample(2000, (8, 8), generator=_gen(11))
    assert draw.flip is not None and draw.scale is not None and draw.rotate is not None
    assert abs(draw.flip.double().mean().item() - 0.3) < 0.04
    assert draw.scale.min() >= 1 / 1.2 and draw.scale.max() <= 1.2
    assert draw.scale.min() < 1 / 1.2 + 0.01 and draw.scale.max() > 1.2 - 0.01
    assert not torch.equal(draw.scale[:, 0], draw.scale[:, 1])  # x and y scales are independent
    degrees = torch.rad2deg(draw.rotate)
    assert degrees.abs().max() <= 15.0 and degrees.abs().max() > 14.9


def test_cutout_zeroes_exactly_the_drawn_square() -> None:
    cfg = DSAConfig(strategy="cutout", cutout=0.5)
    n, size = 300, 32
    draw = DiffAugment(cfg).sample(n, (size, size), generator=_gen(4))
    out = DiffAugment(cfg).apply(torch.ones(n, 3, size, size), draw)
    assert draw.cutout is not None
    top, left, bottom, right = draw.cutout.T
    zero = out == 0
    assert torch.equal(zero[:, 0], zero[:, 2])  # the same square in every channel
    expected_area = (bottom - top) * (right - left)
    assert torch.equal(zero[:, 0].sum(dim=(1, 2)), expected_area)
    for i in range(0, n, 37):  # and it is that rectangle, not just that many pixels
        assert zero[i, 0, top[i] : bottom[i], left[i] : right[i]].all()
    # 0.5 * 32 = 16 px sides: an unclipped square covers exactly a quarter; squares over an edge are clipped
    # (the centre is drawn from 0..32, so down to an 8 x 8 corner).
    full = (bottom - top == 16) & (right - left == 16)
    assert n // 10 < full.sum() < n
    assert (zero[full].float().mean(dim=(1, 2, 3)) == 0.25).all()
    assert (expected_area >= 64).all() and (expected_area[~full] < 256).all()


def test_crop_shifts_content_by_the_drawn_pixels_with_zero_fill() -> None:
    n, h, w = 200, 16, 24
    cfg = DSAConfig(strategy="crop", crop=0.125)  # up to 2 px vertically, 3 px horizontally
    # Every pixel has a distinct non-zero value, so a shift can be read off the output exactly.
    x = (torch.arange(h * w, dtype=torch.float32) + 1).reshape(1, 1, h, w).expand(n, 1, h, w)
    draw = DiffAugment(cfg).sample(n, (h, w), generator=_gen(6))
    out = DiffAugment(cfg).apply(x, draw)
    assert draw.crop is not None
    assert draw.crop[:, 0].abs().max() == 2 and draw.crop[:, 1].abs().max() == 3
    for i in range(n):
        dy, dx = (int(v) for v in draw.crop[i])
        expected = torch.zeros(h, w)
        expected[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
            0, 0, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
        ]
        assert torch.equal(out[i, 0], expected), (dy, dx)


# ------------------------------------------------------------------------------------------ config


def test_none_strategy_returns_input_and_unknown_family_names_the_valid_ones() -> None:
    x = _images(2, 3, 8)
    assert DiffAugment(DSAConfig(strategy="none"))(x, generator=_gen(0)) is x
    with pytest.raises(ConfigError, match="valid families are") as info:
        DSAConfig(strategy="color_zoom")
    assert info.value.field == "strategy"


@pytest.mark.parametrize("bad", [{"flip": 1.5}, {"scale": 0.8}, {"rotate": -1.0}, {"cutout": 2.0}])
def test_out_of_range_magnitudes_are_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        DSAConfig(**bad)  # type: ignore[arg-type]
