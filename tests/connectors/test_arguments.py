"""Malformed arguments give a typed error that names the argument and what it accepts (issue 15)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conn_data import Target

from connectors import (
    ConnectorError,
    InvalidArgumentError,
    open_source,
    read_condensed,
    stratified_split,
    write_condensed,
)


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


def _condensed() -> dict[str, Any]:
    return {
        "images": np.zeros((2, 1, 3, 3), np.float32),
        "labels": np.array([0, 1]),
        "class_names": ["a", "b"],
    }


@pytest.mark.s3
@pytest.mark.parametrize("path", ["exports/../escaped", "exports/./x", "../x", "exports/.."])
def test_dot_segments_in_s3_export_url_are_refused(s3_server: Any, s3_bucket: Callable[[], str], path: str) -> None:
    bucket = s3_bucket()
    uri = f"s3://{bucket}/{path}"
    with pytest.raises(InvalidArgumentError) as info:
        write_condensed(uri, storage_options=s3_server.storage_options, **_condensed())
    assert info.value.field == "uri" and info.value.uri == uri and uri in str(info.value)
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # nothing written
    with pytest.raises(InvalidArgumentError):
        read_condensed(uri, storage_options=s3_server.storage_options)


def test_dot_segments_on_other_object_stores_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="path segments") as info:
        open_source("memory://data/../other")
    assert info.value.uri == "memory://data/../other"


def test_dot_segments_in_local_paths_are_resolved(make_target: Callable[[str], Target]) -> None:
    target = make_target("local")
    write_condensed(f"{target.uri}/a/../b", **_condensed())
    assert read_condensed(f"{target.uri}/b").class_names == ("a", "b")


def test_messages_quoting_user_input_are_capped(make_target: Callable[[str], Target]) -> None:
    target = make_target("memory")
    with pytest.raises(InvalidArgumentError) as info:
        open_source(target.uri, memory_limit="x" * 1_000_000)  # type: ignore[arg-type]
    assert len(str(info.value)) <= 2000
    huge = ConnectorError("m" * 1_000_000, value=["v" * 1000] * 1000)
    assert len(str(huge)) <= 2000 and len(huge.value or "") <= 80
