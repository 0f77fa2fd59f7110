"""Test data for the CLI tests: digits as a Parquet table, and the fastest settings that run every stage."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pad_sdk.demo import load_digits_arrays

# The smallest budget that still runs every stage: one expert, a few iterations, one evaluation network.
FAST = ["--preset", "tiny", "--set", "experts.num_experts=1", "--set", "evaluation.seeds=1",
        "--set", "evaluation.epochs=5", "--set", "distill.iterations=3"]
PER_CLASS = 40  # 400 of the 1,797 digits keep each run to seconds


def digits_table() -> pa.Table:
    """A stratified subset of scikit-learn's digits as a Parquet table: image (64 uint8) and label columns."""
    images, labels, _ = load_digits_arrays()
    keep = np.concatenate([np.flatnonzero(labels == c)[:PER_CLASS] for c in range(10)])
    flat = pa.FixedSizeListArray.from_arrays(pa.array(images[keep].reshape(-1)), 64)
    return pa.table({"image": flat, "label": pa.array(labels[keep])})
