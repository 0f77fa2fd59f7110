"""Connector benchmark: read throughput (images/s) from local Parquet and from a local S3 server (moto on
127.0.0.1), and streaming peak memory at 1x/2x/4x/10x the batch budget.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_connectors.py`` -> benchmarks/results/connectors.json
Uses Fashion-MNIST's 60,000 training images when the Debian package is installed, synthetic data otherwise.
"""

from __future__ import annotations

import gc
import json
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import boto3
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import structlog
from moto.server import ThreadedMotoServer

from connectors import open_source

log = structlog.get_logger("bench_connectors")
FASHION = Path("/usr/share/datasets/fashion-mnist")
BATCH = 1024
RESULTS = Path(__file__).parent / "results" / "connectors.json"


def load_data() -> tuple[np.ndarray, np.ndarray, str]:
    """(60000, 28, 28) uint8 images, (60000,) labels and where they came from."""
    if FASHION.exists():
        batch = open_source(str(FASHION)).read_all(split="train")
        return batch.images[:, 0], batch.labels, "fashion-mnist (Debian package)"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (60000, 28, 28), np.uint8), rng.integers(0, 10, 60000), "synthetic"


def parquet_table(images: np.ndarray, labels: np.ndarray) -> pa.Table:
    flat = pa.FixedSizeListArray.from_arrays(pa.array(images.reshape(-1)), images[0].size)
    return pa.table({"image": flat, "label": pa.array(labels.astype(np.int64))})


def time_read(uri: str, storage_options: dict[str, Any] | None, repeats: int = 3) -> dict[str, Any]:
    """Best-of-``repeats`` full streaming pass (open + schema scan + all batches)."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        src = open_source(uri, storage_options=storage_options)
        n = sum(len(b) for b in src.iter_batches(BATCH))
        runs.append(time.perf_counter() - t0)
    best = min(runs)
    return {
        "rows": n,
        "seconds_best": round(best, 3),
        "seconds_all": [round(r, 3) for r in runs],
        "images_per_s": round(n / best),
    }


def peak_while_streaming(path: str) -> tuple[int, int, int]:
    """(tracemalloc peak, Arrow-pool peak sampled at every batch, rows) for one streaming pass.

    tracemalloc sees numpy and Python allocations; Arrow's own memory pool (where Parquet pages are
    decoded, and which zero-copy batches point into) is outside it, so it is sampled separately.
    """
    src = open_source(path)
    _ = src.schema
    gc.collect()
    base = pa.total_allocated_bytes()
    arrow_peak = 0
    rows = 0
    tracemalloc.start()
    for batch in src.iter_batches(BATCH):
        rows += len(batch)
        arrow_peak = max(arrow_peak, pa.total_allocated_bytes() - base)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, arrow_peak, rows


def main() -> None:
    images, labels, origin = load_data()
    out: dict[str, Any] = {
        "data": origin,
        "rows": len(labels),
        "image_shape": [1, 28, 28],
        "batch_size": BATCH,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        local = f"{tmp}/fmnist.parquet"
        table = parquet_table(images, labels)
        pq.write_table(table, local, row_group_size=4096, compression="zstd")
        out["parquet_bytes"] = Path(local).stat().st_size
        out["read_local_parquet"] = time_read(local, None)
        if FASHION.exists():
            out["read_local_idx_gz"] = time_read(str(FASHION / "train-images-idx3-ubyte.gz"), None)

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            boto3.client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                region_name="us-east-1",
            ).create_bucket(Bucket="bench")
            options = {"key": "testing", "secret": "testing", "endpoint_url": endpoint, "region": "us-east-1"}
            fs = fsspec.filesystem(
                "s3",
                key="testing",
                secret="testing",
                skip_instance_cache=True,
                client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
            )
            fs.put_file(local, "bench/fmnist/part-0.parquet")
            out["read_s3_parquet"] = time_read("s3://bench/fmnist/part-0.parquet", options)
        finally:
            server.stop()

        batch_bytes = BATCH * 784
        memory = []
        for factor in (1, 2, 4, 10):
            n = BATCH * factor
            path = f"{tmp}/mem{factor}.parquet"
            pq.write_table(parquet_table(images[:n], labels[:n]), path, row_group_size=BATCH)
            peak, arrow_peak, rows = peak_while_streaming(path)
            total = peak + arrow_peak
            memory.append(
                {
                    "dataset_x_batch": factor,
                    "rows": rows,
                    "dataset_bytes": n * 784,
                    "tracemalloc_peak_bytes": peak,
                    "arrow_peak_bytes": arrow_peak,
                    "peak_bytes": total,
                    "peak_over_batch": round(total / batch_bytes, 2),
                }
            )
        out["streaming_peak_memory"] = {
            "batch_bytes": batch_bytes,
            "tracer": "tracemalloc peak + Arrow pool sampled per batch",
            "runs": memory,
        }
        gc.collect()
        tracemalloc.start()
        open_source(f"{tmp}/mem10.parquet").read_all()
        out["read_all_peak_bytes_10x"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    log.info(
        "bench_done",
        results=str(RESULTS),
        local=out["read_local_parquet"]["images_per_s"],
        s3=out["read_s3_parquet"]["images_per_s"],
    )


if __name__ == "__main__":
    main()
