"""Malformed arguments give a typed error that names the argument and what it accepts (issue 15)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from connectors import ConnectorError, InvalidArgumentError, stratified_split


@pytest.mark.parametrize("fraction", [1.5, 1.0, -0.2, math.nan, 0.0, math.inf, "0.2", True])
def test_holdout_fraction_outside_0_1_is_a_typed_error(fraction: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        stratified_split(np.arange(10) % 2, fraction, seed=0)  # type: ignore[arg-type]
    err = info.value
    assert err.field == "holdout_fraction" and err.allowed == "0 < value < 1"
    assert "holdout_fraction" in str(err) and "0 < value < 1" in str(err) and repr(fraction) in str(err)
    # Still a ValueError (callers that caught the bare one keep working) and a ConnectorError.
    assert isinstance(err, ValueError) and isinstance(err, ConnectorError)


@pytest.mark.parametrize("fraction", [1e-9, 0.5, 0.999, np.float32(0.25)])
def test_holdout_fraction_inside_0_1_splits(fraction: float) -> None:
    plan = stratified_split(np.arange(40) % 2, fraction, seed=0)
    assert plan.train_rows.size + plan.holdout_rows.size == 40
