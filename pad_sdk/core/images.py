"""Training images held in their source dtype and turned into network input one batch at a time.

Almost every image dataset is 8-bit: held as uint8 it takes a quarter of the memory float32 would (60,000
Fashion-MNIST images: 47 MiB instead of 188 MiB). :class:`StoredImages` keeps the pixels as they came and
applies the whole input transform (scale to [0, 1], per-channel normalisation, optional ZCA whitening) to
the rows a caller indexes, on the device those rows live on. Each step is the same element-wise arithmetic
as converting everything up front, so a batch gets the same values as before (ZCA's matrix product may
round differently from one whole-tensor product, within float32 rounding).

Code that trains on images indexes them (``images[rows]``, ``images[a:b]``) and never needs the whole
float tensor; :data:`Images` is what such code accepts: a float tensor or stored images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from pad_sdk.core.zca import ZCAWhitening

__all__ = ["Images", "StoredImages", "batches", "normalise"]


@dataclass(frozen=True)
class StoredImages:
    """Images (N, C, H, W) stored as ``pixels`` (uint8, uint16 or float32) and read as float32 network input.

    ``x = ((pixels / scale) - mean) / std``, then ZCA when ``zca`` is set. ``mean``/``std`` are per channel;
    without them the images are read in [0, 1] (the raw data, before normalisation).
    """

    pixels: torch.Tensor
    scale: float = 1.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    zca: ZCAWhitening | None = None
    # The images are ``pixels[rows]`` when set: pixels in a file mapping (a training set over the memory
    # budget, :mod:`pad_sdk.disk_data`), whose splits and subsets select rows instead of copying them.
    rows: torch.Tensor | None = None

    # -- what code that trains on images uses, with the meaning a float tensor gives it ------------------
    def __getitem__(self, index: torch.Tensor | slice | int) -> torch.Tensor:
        """The float32 input of the indexed rows (an int gives one image, (C, H, W)), on their device."""
        rows = self.pixels[index] if self.rows is None else self.pixels[self.rows[index]]
        single = rows.dim() == 3
        out = self.convert(rows.unsqueeze(0) if single else rows)
        return out[0] if single else out

    def __len__(self) -> int:
        return int(self.shape[0])

    @property
    def shape(self) -> torch.Size:
        if self.rows is None:
            return self.pixels.shape
        return torch.Size((int(self.rows.numel()), *self.pixels.shape[1:]))

    @property
    def mapped(self) -> bool:
        """Whether the pixels live in a file mapping (read from disk a batch at a time) rather than memory."""
        return self.rows is not None

    @property
    def device(self) -> torch.device:
        return self.pixels.device

    @property
    def is_meta(self) -> bool:
        return self.pixels.is_meta

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of what indexing returns (the stored dtype is ``pixels.dtype``)."""
        return torch.float32

    @property
    def nbytes(self) -> int:
        """Bytes of these images' pixels (what a float32 copy would multiply by 4 / itemsize); for mapped
        pixels, what reading them all would take."""
        return int(self.shape.numel() * self.pixels.element_size())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> StoredImages:
        """The same images with the pixels (and the ZCA matrices) on ``device``; the conversion then runs
        there. A no-op when they are there already, and for mapped pixels, which stay in the host's file
        mapping: the code that trains on them moves each batch to its network's device."""
        device = torch.device(device)
        if self.pixels.device == device or self.mapped:
            return self
        zca = self.zca
        if zca is not None:
            zca = ZCAWhitening(zca.mean.to(device), zca.transform_matrix.to(device), zca.inverse_matrix.to(device))
        return replace(self, pixels=self.pixels.to(device, non_blocking=non_blocking), zca=zca)

    def detach(self) -> StoredImages:
        return self

    def subset(self, index: torch.Tensor) -> StoredImages:
        """The indexed rows, still stored (not converted); mapped pixels are selected, not copied."""
        if self.rows is not None:
            return replace(self, rows=self.rows[index])
        return replace(self, pixels=self.pixels[index])

    def normalised(self, mean: tuple[float, ...], std: tuple[float, ...],
                   zca: ZCAWhitening | None = None) -> StoredImages:
        """The same pixels read through a normalisation (and whitening): nothing is copied."""
        return replace(self, mean=tuple(mean), std=tuple(std), zca=zca)

    def convert(self, rows: torch.Tensor) -> torch.Tensor:
        """Stored rows (n, C, H, W) -> float32 network input, on the rows' device."""
        x = rows.float()
        if self.scale != 1.0:
            x = x / self.scale
        if self.mean is not None and self.std is not None:
            x = normalise(x, self.mean, self.std)
        if self.zca is not None:
            x = self.zca.transform(x)
        return x

    def materialise(self) -> torch.Tensor:
        """Every image as one float32 tensor (N x C x H x W x 4 bytes): only for small sets."""
        return self[0:len(self)]


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``(images - mean) / std`` per channel of (N, C, H, W) float images, on their device."""
    shape = (1, -1, 1, 1)  # built on the host, then moved: a copy, as the simulated device tests expect
    return (images - torch.tensor(mean).view(shape).to(images.device)) / torch.tensor(std).view(shape).to(
        images.device)


# What code that only indexes images accepts: a float tensor or stored images.
Images = torch.Tensor | StoredImages


def batches(images: Images, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive float32 chunks of at most ``batch_size`` images, in order."""
    for start in range(0, int(images.shape[0]), batch_size):
        yield images[start:start + batch_size]
