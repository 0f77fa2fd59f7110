"""Hand-built run results with known numbers, so report arithmetic is checked without training."""

from __future__ import annotations

from typing import Any

import torch

from pad_sdk.core.evaluate import EvalResult
from pad_sdk.pipeline import Normalisation
from pad_sdk.presets import preset_config
from pad_sdk.result import AccuracyReport, CondensedSet, DistillResult

CLASSES = tuple(str(c) for c in range(10))


def make_result(ipc: int, *, condensed_acc: tuple[float, ...] = (0.80, 0.84), full_acc: float = 0.95,
                random_acc: tuple[float, ...] = (0.60, 0.64), timings: dict[str, float] | None = None,
                stored_bytes: int | None = 1_000_000, policy: Any = None, verdict: Any = None,
                condensed_seconds: float = 2.0, full_seconds: float = 10.0) -> DistillResult:
    """A DistillResult with the given measurements (images are seeded noise, 10 classes of 1x8x8)."""
    generator = torch.Generator().manual_seed(ipc)
    labels = torch.arange(10).repeat_interleave(ipc)
    recall = tuple(0.5 + 0.05 * c for c in range(10))
    accuracy = AccuracyReport(
        condensed=EvalResult(condensed_acc, recall, condensed_seconds),
        random=EvalResult(random_acc, tuple(r - 0.2 for r in recall), 1.0),
        full=EvalResult((full_acc,), tuple(min(1.0, r + 0.3) for r in recall), full_seconds),
    )
    condensed = CondensedSet(
        images=torch.randn(10 * ipc, 1, 8, 8, generator=generator), labels=labels,
        label_logits=torch.randn(10 * ipc, 10, generator=generator), learned_lr=0.01, class_names=CLASSES,
        normalisation=Normalisation((0.3,), (0.2,)), metadata={},
    )
    source = {"uri": "s3://bucket/digits/", "fingerprint": "abc123", "stored_bytes": stored_bytes, "rows": 1797,
              "format": "parquet", "split": {"seed": 0, "fraction": 0.2}}
    return DistillResult(
        condensed=condensed, config=preset_config("tiny", ipc), accuracy=accuracy, verdict=verdict,
        timings=timings if timings is not None else {"scoring": 30.0, "experts": 300.0, "distillation": 60.0,
                                                     "evaluation": 20.0, "full_reference": 10.0, "total": 420.0},
        loss_history=tuple(1.0 - 0.01 * i for i in range(50)), source=source, policy=policy,
    )
