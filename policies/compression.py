"""Compression policy: how small the condensed set is, and what that means on a given dataset.

A reviewer states the target in one of three ways: images per class (``ipc``), a fraction of the source
images (``fraction``), or a byte budget for the condensed set (``byte_budget``). :meth:`resolve` turns the
target into an IPC for the dataset at hand and back into the fraction and bytes it means.

Rounding is always down: a fraction or a byte budget is a ceiling the condensed set must not exceed. The
IPC must be at least 1 and at most the size of the smallest class, because the synthetic images of a class
start from real images of that class (DESIGN 3d) and a class cannot lend more images than it has.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from pydantic import ConfigDict, Field, model_validator

from policies._base import PolicyModel, conflict
from policies.errors import CompressionInfeasibleError


class CompressionResolution(PolicyModel):
    """A compression target resolved on a dataset.

    ``fraction`` is condensed images / source images; ``reduction_ratio`` is source bytes / condensed bytes
    (``total_stored_bytes`` when given, else ``source_images * bytes_per_image``).
    """

    ipc: int = Field(ge=1)
    images: int = Field(ge=1)
    fraction: float = Field(gt=0, le=1)
    condensed_bytes: int = Field(ge=0)
    reduction_ratio: float = Field(gt=0)
    num_classes: int = Field(ge=1)
    source_images: int = Field(ge=1)
    source_bytes: int = Field(ge=0)


class CompressionPolicy(PolicyModel):
    """Exactly one of ``ipc``, ``fraction`` or ``byte_budget`` sets the size of the condensed set."""

    _what: ClassVar[str] = "compression policy"
    # Editors and CI see the one-of rule too: exactly one of the three keys holds a non-null value
    # (a branch matches only when its key is a number, so two numbers match two branches and fail).
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["ipc"], "properties": {"ipc": {"type": "integer"}}},
                {"required": ["fraction"], "properties": {"fraction": {"type": "number"}}},
                {"required": ["byte_budget"], "properties": {"byte_budget": {"type": "integer"}}},
            ]
        }
    )

    ipc: int | None = Field(default=None, ge=1, le=100_000, description="Synthetic images per class.")
    fraction: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Condensed images as a fraction of the source images (0.01 = 1%).",
    )
    byte_budget: int | None = Field(
        default=None, ge=1, description="Most bytes the condensed images may take (bytes_per_image each)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> CompressionPolicy:
        chosen = [name for name in ("ipc", "fraction", "byte_budget") if getattr(self, name) is not None]
        if len(chosen) != 1:
            got = "none" if not chosen else " and ".join(chosen)
            raise conflict(
                chosen[-1] if chosen else "ipc",
                f"set exactly one of ipc, fraction or byte_budget (got {got})",
                "exactly one of ipc, fraction, byte_budget",
            )
        return self

    @property
    def target(self) -> str:
        """Which of the three settings is the target: ``"ipc"``, ``"fraction"`` or ``"byte_budget"``."""
        if self.ipc is not None:
            return "ipc"
        return "fraction" if self.fraction is not None else "byte_budget"

    def resolve(
        self, class_counts: Sequence[int], bytes_per_image: int, total_stored_bytes: int | None = None
    ) -> CompressionResolution:
        """Resolve the target to images per class on a dataset with ``class_counts`` images per class.

        ``bytes_per_image`` is the stored size of one condensed image (with its label); ``total_stored_bytes``
        is the source's size in storage (defaults to ``sum(class_counts) * bytes_per_image``).
        Raises :class:`CompressionInfeasibleError` when the target needs fewer than one image per class or
        more than the smallest class holds, and ``ValueError`` for malformed inputs.
        """
        counts = _check_counts(class_counts)
        if isinstance(bytes_per_image, bool) or not isinstance(bytes_per_image, int) or bytes_per_image < 1:
            raise ValueError(f"bytes_per_image must be a positive integer, got {bytes_per_image!r}")
        if total_stored_bytes is not None and (
            isinstance(total_stored_bytes, bool)
            or not isinstance(total_stored_bytes, int)
            or total_stored_bytes < 1
        ):
            raise ValueError(f"total_stored_bytes must be a positive integer, got {total_stored_bytes!r}")
        k, n, smallest = len(counts), sum(counts), min(counts)
        ipc, wanted = self._raw_ipc(k, n, bytes_per_image)
        if ipc < 1:
            raise CompressionInfeasibleError(
                f"{wanted} gives {ipc} images per class on {k} classes; the least feasible target is "
                f"{self._describe_ipc(1, k, n, bytes_per_image)}",
                target=self.target,
                requested_ipc=ipc,
                min_ipc=1,
                max_ipc=smallest,
            )
        if ipc > smallest:
            raise CompressionInfeasibleError(
                f"{wanted} gives {ipc} images per class, but the smallest class has only {smallest} "
                f"images; the largest feasible target is "
                f"{self._describe_ipc(smallest, k, n, bytes_per_image)}",
                target=self.target,
                requested_ipc=ipc,
                min_ipc=1,
                max_ipc=smallest,
            )
        source_bytes = total_stored_bytes if total_stored_bytes is not None else n * bytes_per_image
        images = ipc * k
        return CompressionResolution(
            ipc=ipc,
            images=images,
            fraction=images / n,
            condensed_bytes=images * bytes_per_image,
            reduction_ratio=source_bytes / (images * bytes_per_image),
            num_classes=k,
            source_images=n,
            source_bytes=source_bytes,
        )

    def _raw_ipc(self, k: int, n: int, bytes_per_image: int) -> tuple[int, str]:
        """The IPC the target asks for (possibly 0 or too large) and a phrase naming the target."""
        if self.ipc is not None:
            return self.ipc, f"ipc={self.ipc}"
        if self.fraction is not None:
            # The small epsilon keeps 0.1 * 1000 / 10 (= 9.999999999999998) from flooring to 9.
            return math.floor(self.fraction * n / k + 1e-9), f"fraction={self.fraction} of {n} images"
        assert self.byte_budget is not None  # guaranteed by _exactly_one
        return self.byte_budget // (bytes_per_image * k), (
            f"byte_budget={self.byte_budget} at {bytes_per_image} bytes per image"
        )

    def _describe_ipc(self, ipc: int, k: int, n: int, bytes_per_image: int) -> str:
        """The setting of this policy's kind that yields ``ipc``: how a reviewer would fix the file."""
        if self.target == "ipc":
            return f"ipc={ipc}"
        if self.target == "fraction":
            return f"fraction={ipc * k / n:.6g} (ipc={ipc})"
        return f"byte_budget={ipc * k * bytes_per_image} (ipc={ipc})"


def _check_counts(class_counts: Sequence[int]) -> list[int]:
    counts = list(class_counts)
    if not counts:
        raise ValueError("class_counts is empty; a dataset needs at least one class")
    bad = [c for c in counts if isinstance(c, bool) or not isinstance(c, int) or c < 1]
    if bad:
        raise ValueError(f"class_counts must be positive integers (one per class), got {bad[:5]}")
    return counts
