"""Seeded, stratified train / holdout splits for sources that ship without a test split."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from connectors.errors import EmptyDatasetError, InsufficientDataError, InvalidArgumentError

__all__ = ["SplitPlan", "require_per_class", "stratified_split"]


@dataclass(frozen=True)
class SplitPlan:
    """A recorded split. train_rows / holdout_rows: sorted int64 row ids (disjoint, covering all rows)."""

    train_rows: np.ndarray
    holdout_rows: np.ndarray
    seed: int
    fraction: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (sizes, seed, fraction and a sha256 of the holdout ids)."""
        digest = hashlib.sha256(self.holdout_rows.astype("<i8").tobytes()).hexdigest()
        return {
            "seed": self.seed,
            "fraction": self.fraction,
            "train_size": int(self.train_rows.size),
            "holdout_size": int(self.holdout_rows.size),
            "holdout_sha256": digest,
        }


def stratified_split(labels: np.ndarray, holdout_fraction: float, seed: int) -> SplitPlan:
    """Split row ids 0..N-1 per class: ``round(n_c * fraction)`` rows of each class go to the holdout.

    Every class keeps at least one row in train (a singleton class has no holdout rows). The result
    depends only on (labels, fraction, seed): classes are visited in sorted order with one
    ``numpy.random.default_rng(seed)`` generator.

    Args:
        labels: (N,) integer class ids, in row order.
        holdout_fraction: the share of each class to hold out, strictly between 0 and 1.
    Raises:
        InvalidArgumentError (a ValueError) naming ``holdout_fraction`` when it is not in (0, 1) (NaN
        included); EmptyDatasetError when there are no labels.
    """
    if not _is_fraction(holdout_fraction):
        raise InvalidArgumentError(
            f"must be strictly between 0 and 1, got {holdout_fraction!r}",
            field="holdout_fraction",
            allowed="0 < value < 1",
            value=holdout_fraction,
        )
    labels = np.asarray(labels)
    if labels.size == 0:
        raise EmptyDatasetError("cannot split an empty dataset")
    rng = np.random.default_rng(seed)
    holdout: list[np.ndarray] = []
    for cls in np.unique(labels):
        rows = np.flatnonzero(labels == cls)
        n_hold = min(round(rows.size * holdout_fraction), rows.size - 1)
        if n_hold > 0:
            holdout.append(rng.permutation(rows)[:n_hold])
    hold = np.sort(np.concatenate(holdout)) if holdout else np.empty(0, np.int64)
    mask = np.ones(labels.size, dtype=bool)
    mask[hold] = False
    return SplitPlan(np.flatnonzero(mask).astype(np.int64), hold.astype(np.int64), seed, holdout_fraction)


def _is_fraction(value: Any) -> bool:
    # NaN fails both comparisons; bools and strings are not fractions even where Python would compare them.
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return False
    return 0.0 < float(value) < 1.0


def require_per_class(
    class_counts: Sequence[int], requested: int, class_names: Sequence[str], uri: str | None = None
) -> None:
    """Raise InsufficientDataError if any class has fewer than ``requested`` examples."""
    for name, count in zip(class_names, class_counts, strict=True):
        if count < requested:
            raise InsufficientDataError(
                f"class {name!r} has {count} examples, fewer than the {requested} requested",
                class_name=str(name),
                requested=requested,
                available=int(count),
                uri=uri,
            )
