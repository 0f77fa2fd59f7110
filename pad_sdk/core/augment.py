"""Differentiable siamese augmentation (DSA, Zhao & Bilen 2021).

Six transformation families, each differentiable w.r.t. the images: ``color`` (brightness, saturation and
contrast together), ``crop`` (translation with zero padding), ``cutout``, ``flip``, ``scale`` and
``rotate``. A call is split in two steps so the same random transform can be replayed:

* :meth:`DiffAugment.sample` draws every random number into an :class:`AugmentDraw` (from an explicit
  ``torch.Generator``, never the global RNG);
* :meth:`DiffAugment.apply` applies a draw to a batch, deterministically.

With ``siamese=True`` a draw holds one value per parameter, shared by the whole batch, so DC/DSA and DM
can apply the very same transform to a real batch and to a synthetic batch of another size.

The parameter distributions follow the official DatasetCondensation ``DiffAugment`` (mode "S": one
family chosen at random per call), with two deliberate differences: ``reshape`` instead of ``view``
(the official crop crashes on 1-channel images, PAD_SPEC pitfall 10) and an explicit
``align_corners=False`` (the official code relies on that default).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F

from pad_sdk.errors import ConfigError, DataError

__all__ = ["FAMILIES", "AugmentDraw", "DSAConfig", "DiffAugment"]

#: Valid family names, in the order the official code lists them.
FAMILIES: tuple[str, ...] = ("color", "crop", "cutout", "flip", "scale", "rotate")
_DISABLED = frozenset({"", "none"})


@dataclass(frozen=True)
class DSAConfig:
    """DSA strategy and magnitudes (defaults: the official ``ParamDiffAug`` used by MTT/DATM/PAD).

    Attributes:
        strategy: family names joined by ``"_"``; ``"none"`` (or ``""``) disables augmentation.
        single_family: official mode "S": each call applies ONE family chosen uniformly at random.
            ``False`` (mode "M") applies every family in ``strategy`` order.
        flip: probability of a horizontal flip.
        scale: x and y scale factors are drawn independently from U(1/scale, scale); must be >= 1.
        rotate: rotation angle drawn from U(-rotate, rotate), in degrees.
        crop: maximal translation as a fraction of the image side (rounded to whole pixels).
        cutout: side of the zeroed square as a fraction of the image side.
        brightness: additive offset drawn from U(-0.5, 0.5) * brightness.
        saturation: distance to the channel mean is multiplied by U(0, 1) * saturation.
        contrast: distance to the image mean is multiplied by U(0, 1) + contrast.
    """

    strategy: str = "color_crop_cutout_flip_scale_rotate"
    single_family: bool = True
    flip: float = 0.5
    scale: float = 1.2
    rotate: float = 15.0
    crop: float = 0.125
    cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5

    def __post_init__(self) -> None:
        unknown = [name for name in self.families if name not in FAMILIES]
        if unknown:
            raise ConfigError(
                f"unknown DSA families {unknown} in strategy {self.strategy!r}; valid families are "
                f"{list(FAMILIES)} joined by '_', or 'none'",
                field="strategy",
                value=self.strategy,
            )
        if not 0.0 <= self.flip <= 1.0:
            raise ConfigError(f"flip is a probability, got {self.flip}", field="flip", value=self.flip)
        if self.scale < 1.0:
            raise ConfigError(
                f"scale is the max factor of U(1/scale, scale) and must be >= 1, got {self.scale}",
                field="scale",
                value=self.scale,
            )
        for name in ("rotate", "crop", "cutout", "brightness", "saturation", "contrast"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ConfigError(f"{name} must be finite and >= 0, got {value}", field=name, value=value)
        if self.crop > 1.0 or self.cutout > 1.0:
            raise ConfigError(
                "crop and cutout are fractions of the image side and must be <= 1", field="crop"
            )

    @property
    def families(self) -> tuple[str, ...]:
        """Family names of ``strategy`` in order; empty when augmentation is disabled."""
        if self.strategy.lower() in _DISABLED:
            return ()
        return tuple(self.strategy.split("_"))


@dataclass(frozen=True)
class AugmentDraw:
    """Every random number of one augmentation call, fully resolved (no config needed to replay it).

    ``B`` is the batch size the draw was made for, or 1 for a siamese draw (broadcast to any batch).
    Only the fields of the drawn ``families`` are set; the others are ``None``. Tensors live on the
    generator's device and are moved to the images' device by :meth:`DiffAugment.apply`.

    Attributes:
        families: families to apply, in order.
        image_size: ``(H, W)`` the draw was made for (crop and cutout are in pixels).
        batch_size: ``B``.
        siamese: whether one draw is shared by every sample.
        brightness: ``(B,)`` additive offset.
        saturation: ``(B,)`` factor on the distance to the per-pixel channel mean.
        contrast: ``(B,)`` factor on the distance to the per-image mean.
        crop: ``(B, 2)`` long, ``(dy, dx)``: content moves down by dy and right by dx pixels, zero fill.
        cutout: ``(B, 4)`` long, ``(top, left, bottom, right)`` of the zeroed box, half-open, clipped to
            the image.
        flip: ``(B,)`` bool, horizontal flip.
        scale: ``(B, 2)`` ``(sx, sy)`` of the affine sampling grid (sx > 1 zooms out).
        rotate: ``(B,)`` angle in radians.
    """

    families: tuple[str, ...]
    image_size: tuple[int, int]
    batch_size: int
    siamese: bool
    brightness: torch.Tensor | None = None
    saturation: torch.Tensor | None = None
    contrast: torch.Tensor | None = None
    crop: torch.Tensor | None = None
    cutout: torch.Tensor | None = None
    flip: torch.Tensor | None = None
    scale: torch.Tensor | None = None
    rotate: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> AugmentDraw:
        """The same draw with every tensor on ``device``."""
        moved: dict[str, Any] = {
            f.name: value.to(device)
            for f in fields(self)
            if isinstance(value := getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)


# --------------------------------------------------------------------------------------------------------
# Sampling: one function per family, each returning the AugmentDraw fields it sets.
# --------------------------------------------------------------------------------------------------------

_Params = dict[str, torch.Tensor]


def _rand(n: int, generator: torch.Generator) -> torch.Tensor:
    """``(n,)`` U(0, 1) in float64 on the generator's device (cast to the image dtype at apply time)."""
    return torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device)


def _randint(low: int, high: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``(n,)`` integers in ``[low, high)`` on the generator's device."""
    return torch.randint(low, high, (n,), generator=generator, device=generator.device)


def _sample_color(cfg: DSAConfig, n: int, size: tuple[int, int], g: torch.Generator) -> _Params:
    return {
        "brightness": (_rand(n, g) - 0.5) * cfg.brightness,
        "saturation": _rand(n, g) * cfg.saturation,
        "contrast": _rand(n, g) + cfg.contrast,
    }


def _sample_crop(cfg: DSAConfig, n: int, size: tuple[int, int], g: torch.Generator) -> _Params:
    # Round half up to whole pixels, as the official code does: 0.125 * 28 -> 4 px, 0.125 * 32 -> 4 px.
    max_shift = [int(side * cfg.crop + 0.5) for side in size]
    return {"crop": torch.stack([_randint(-m, m + 1, n, g) for m in max_shift], dim=1)}


def _sample_cutout(cfg: DSAConfig, n: int, size: tuple[int, int], g: torch.Generator) -> _Params:
    starts, ends = [], []
    for side in size:
        length = int(side * cfg.cutout + 0.5)
        # Official centre distribution: U{0, ..., side} for an even length, U{0, ..., side-1} for odd,
        # so an even-length square is as likely to overhang the bottom/right edge as the top/left one.
        centre = _randint(0, side + 1 - length % 2, n, g)
        start = centre - length // 2
        starts.append(start.clamp(0, side))
        ends.append((start + length).clamp(0, side))
    return {"cutout": torch.stack([starts[0], starts[1], ends[0], ends[1]], dim=1)}


def _sample_flip(cfg: DSAConfig, n: int, size: tuple[int, int], g: torch.Generator) -> _Params:
    return {"flip": _rand(n, g) < cfg.flip}


def _sample_scale(cfg: DSAConfig, n: int, size: tuple[int, int], g: torch.Generator) -> _Params:
    low, high = 1.0 / cfg.scale, cfg.scale
    return {"scale": torch.stack([_rand(n, g) * (high - low) + low for _ in range(2)], dim=1)}


def _sample_rotate(cfg: DSAConfig, n: int, size: tuple[int, int], g: torch.Generator) -> _Params:
    return {"rotate": (_rand(n, g) - 0.5) * (2.0 * math.radians(cfg.rotate))}


# --------------------------------------------------------------------------------------------------------
# Application: one function per family, (N, C, H, W) -> (N, C, H, W), loop-free over samples.
# Draw tensors have a leading dim of N or 1 (siamese); both broadcast.
# --------------------------------------------------------------------------------------------------------


def _per_sample(value: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` draw field -> ``(B, 1, 1, 1)`` in x's dtype, ready to broadcast against x."""
    assert value is not None, "family applied without its drawn parameters"
    return value.to(dtype=x.dtype).reshape(-1, 1, 1, 1)


def _apply_color(x: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
    # Same order and formulas as the official brightness -> saturation -> contrast chain; each step
    # sees the previous one's output.
    x = x + _per_sample(draw.brightness, x)
    channel_mean = x.mean(dim=1, keepdim=True)
    x = (x - channel_mean) * _per_sample(draw.saturation, x) + channel_mean
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - image_mean) * _per_sample(draw.contrast, x) + image_mean


def _apply_crop(x: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
    assert draw.crop is not None
    n, c, h, w = x.shape
    dy, dx = draw.crop[:, 0:1], draw.crop[:, 1:2]  # (B, 1) each
    # Source index into the image padded by one zero pixel on every side: any source outside the image
    # clamps onto the padding, so the shifted-in border is zero. One gather over the flattened padded
    # image replaces the official 3-D fancy indexing and works for any channel count.
    rows = (torch.arange(h, device=x.device) - dy + 1).clamp(0, h + 1)  # (B, H)
    cols = (torch.arange(w, device=x.device) - dx + 1).clamp(0, w + 1)  # (B, W)
    index = (rows[:, :, None] * (w + 2) + cols[:, None, :]).reshape(-1, 1, h * w).expand(n, c, h * w)
    padded = F.pad(x, (1, 1, 1, 1)).reshape(n, c, (h + 2) * (w + 2))
    return padded.gather(2, index).reshape(n, c, h, w)


def _apply_cutout(x: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
    assert draw.cutout is not None
    _, _, h, w = x.shape
    top, left, bottom, right = (draw.cutout[:, i : i + 1] for i in range(4))  # (B, 1) each
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= top) & (rows < bottom)  # (B, H)
    in_cols = (cols >= left) & (cols < right)  # (B, W)
    keep = ~(in_rows[:, None, :, None] & in_cols[:, None, None, :])  # (B, 1, H, W)
    # Multiplying by a 0/1 mask (rather than in-place assignment) keeps the op out-of-place for autograd.
    return x * keep.to(x.dtype)


def _apply_flip(x: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
    assert draw.flip is not None
    return torch.where(draw.flip.reshape(-1, 1, 1, 1), x.flip(3), x)


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample x (N, C, H, W) through affine maps theta (B, 2, 3), B in {1, N}, bilinear, zero padding.

    ``align_corners=False`` is the official code's (implicit) choice; with it the identity map samples
    pixel centres exactly, so an identity warp reproduces x up to float rounding.
    """
    theta = theta.expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _apply_scale(x: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
    assert draw.scale is not None
    s = draw.scale.to(x.dtype)
    zero = torch.zeros_like(s[:, 0])
    theta = torch.stack(
        [torch.stack([s[:, 0], zero, zero], dim=1), torch.stack([zero, s[:, 1], zero], dim=1)], dim=1
    )
    return _warp(x, theta)


def _apply_rotate(x: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
    assert draw.rotate is not None
    angle = draw.rotate.to(x.dtype)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], dim=1), torch.stack([sin, cos, zero], dim=1)], dim=1)
    return _warp(x, theta)


_Sampler = Callable[[DSAConfig, int, tuple[int, int], torch.Generator], _Params]
_Applier = Callable[[torch.Tensor, AugmentDraw], torch.Tensor]

#: name -> (draw the family's random numbers, apply them). The registry keeps DiffAugment free of
#: per-family if/elif chains; FAMILIES and this dict must list the same names.
_REGISTRY: dict[str, tuple[_Sampler, _Applier]] = {
    "color": (_sample_color, _apply_color),
    "crop": (_sample_crop, _apply_crop),
    "cutout": (_sample_cutout, _apply_cutout),
    "flip": (_sample_flip, _apply_flip),
    "scale": (_sample_scale, _apply_scale),
    "rotate": (_sample_rotate, _apply_rotate),
}
assert tuple(_REGISTRY) == FAMILIES


class DiffAugment:
    """Differentiable siamese augmentation with explicit, replayable randomness.

    Example::

        augment = DiffAugment(DSAConfig())
        draw = augment.sample(len(real), real.shape[-2:], generator=g, siamese=True)
        real_aug, syn_aug = augment.apply(real, draw), augment.apply(syn, draw)
    """

    def __init__(self, config: DSAConfig = DSAConfig()) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f"DiffAugment({self.config!r})"

    def sample(
        self,
        batch_size: int,
        image_size: tuple[int, int],
        *,
        generator: torch.Generator,
        siamese: bool = False,
    ) -> AugmentDraw:
        """Draw the random numbers of one call.

        Args:
            batch_size: N, the number of images the draw is for (ignored beyond validation if siamese).
            image_size: ``(H, W)``.
            generator: the only source of randomness; its device decides where the draw's tensors live.
            siamese: draw one value per parameter shared by every sample; the draw then applies to
                batches of any size.

        Returns:
            An :class:`AugmentDraw` with tensors of leading size ``batch_size`` (or 1 if siamese).
        """
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}", field="batch_size")
        height, width = (int(side) for side in image_size)
        if height < 1 or width < 1:
            raise DataError(f"image_size must be positive, got {tuple(image_size)}", field="image_size")
        families = self.config.families
        if self.config.single_family and families:
            # Mode "S": one family for the whole call (the whole batch), as in the official code.
            pick = int(torch.randint(len(families), (1,), generator=generator, device=generator.device))
            families = (families[pick],)
        n = 1 if siamese else batch_size
        params: _Params = {}
        for name in families:
            sampler, _ = _REGISTRY[name]
            params.update(sampler(self.config, n, (height, width), generator))
        return AugmentDraw(
            families=families, image_size=(height, width), batch_size=n, siamese=siamese, **params
        )

    def apply(self, x: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
        """Apply a draw to a batch; deterministic, differentiable w.r.t. x.

        Args:
            x: ``(N, C, H, W)`` images, any floating dtype and device; ``(H, W)`` must match the draw,
                and N must equal the draw's batch size unless the draw is siamese.

        Returns:
            ``(N, C, H, W)`` augmented images, same dtype and device as x. With no families, x itself.
        """
        if x.ndim != 4:
            raise DataError(f"expected images of shape (N, C, H, W), got {tuple(x.shape)}", field="x")
        if tuple(x.shape[-2:]) != draw.image_size:
            raise DataError(
                f"draw was made for images of size {draw.image_size}, got {tuple(x.shape[-2:])}", field="x"
            )
        if not draw.siamese and x.shape[0] != draw.batch_size:
            raise DataError(
                f"draw was made for a batch of {draw.batch_size}, got {x.shape[0]}; "
                "use sample(..., siamese=True) to share one draw across batch sizes",
                field="x",
            )
        if not draw.families:
            return x
        draw = draw.to(x.device)
        for name in draw.families:
            _, applier = _REGISTRY[name]
            x = applier(x, draw)
        # Promise a contiguous result whatever the family ops return (free when it already is), so callers
        # may .view() it: the official code's .view on a non-contiguous crop is PAD_SPEC pitfall 10.
        return x.contiguous()

    def __call__(self, x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """Sample a per-sample draw for x ``(N, C, H, W)`` and apply it."""
        if x.ndim != 4:
            raise DataError(f"expected images of shape (N, C, H, W), got {tuple(x.shape)}", field="x")
        draw = self.sample(x.shape[0], (x.shape[2], x.shape[3]), generator=generator)
        return self.apply(x, draw)
