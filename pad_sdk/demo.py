"""The demo: PAD on scikit-learn's bundled 8x8 digits (1,797 images, no download), IPC 1 and 10.

Runs the compression sweep (experts trained once, shared by both IPCs), writes each condensed set and the
review report (``report.json`` for machines, ``report.html`` for people) under the output directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pad_sdk.api import sweep
from pad_sdk.pipeline import EventSink
from pad_sdk.reports import Prices, RunReport, build_report, save_report
from pad_sdk.result import DistillResult


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Digits as uint8 images (1797, 1, 8, 8) scaled from 0..16 to 0..255, labels (1797,), class names."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no network access

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return images, digits.target.astype(np.int64), tuple(str(c) for c in range(10))


@dataclass(frozen=True)
class DemoResult:
    results: tuple[DistillResult, ...]
    report: RunReport
    report_path: Path
    html_path: Path

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for result in self.results:
            acc = result.accuracy
            assert acc is not None
            rows.append({
                "ipc": result.config.ipc,
                "images": int(result.images.shape[0]),
                "full": None if acc.full is None else acc.full.mean,
                "random_mean": None if acc.random is None else acc.random.mean,
                "random_std": None if acc.random is None else acc.random.std,
                "pad_mean": acc.condensed.mean,
                "pad_std": acc.condensed.std,
                "seconds": result.timings.get("total"),
            })
        return rows


def run_demo(output: str | Path, *, preset: str = "cpu-small", ipcs: tuple[int, ...] = (1, 10), seed: int = 0,
             on_event: EventSink | None = None, prices: Prices | None = None) -> DemoResult:
    """Run the whole pipeline on digits at each IPC (experts shared) and write the outputs."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    images, labels, names = load_digits_arrays()
    results = sweep(images, labels, ipcs=list(ipcs), preset=preset, class_names=names, seed=seed,
                    on_event=on_event)
    uris = [str(out / f"condensed-ipc{result.config.ipc}") for result in results]
    manifests = [result.save(uri, overwrite=True) for result, uri in zip(results, uris, strict=True)]
    # The digits live in memory, not in storage: size them as the uint8 arrays scikit-learn ships.
    source_bytes = (int(images.nbytes + labels.nbytes), "in-memory arrays: uint8 images + int64 labels")
    report = build_report(results, manifests=manifests, export_uris=uris, prices=prices, source_bytes=source_bytes,
                          title="PAD on scikit-learn digits")
    written = save_report(report, str(out))
    return DemoResult(tuple(results), report, Path(written["json"]), Path(written["html"]))
