"""Digits written as a Parquet dataset (locally and on the local S3 server), and a CLI runner."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from cli_data import digits_table
from typer.testing import CliRunner


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    pq.write_table(digits_table(), root / "data.parquet")
    return root


@pytest.fixture(scope="session")
def digits_s3(s3_server: Any, s3_bucket: Callable[[], str]) -> str:
    bucket = s3_bucket()
    buffer = io.BytesIO()
    pq.write_table(digits_table(), buffer)
    s3_server.filesystem().pipe_file(f"{bucket}/digits/data.parquet", buffer.getvalue())
    return f"s3://{bucket}"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
