"""pad-sdk: condense large labelled image datasets with PAD (Prioritize Alignment in Dataset Distillation).

The names a pipeline needs::

    import pad_sdk
    pad_sdk.plan(images, labels, ipc=10).line()               # what it will cost, before spending it
    result = pad_sdk.distill(images, labels, ipc=10)          # or pad_sdk.distill("s3://bucket/data/")
    result.accuracy.condensed.mean, result.verdict, result.save("s3://bucket/condensed/")
    condensed = pad_sdk.load_condensed("s3://bucket/condensed/")
    pad_sdk.evaluate_export("s3://bucket/condensed/", "s3://bucket/data/")  # repeats the run's evaluation
    loader = torch.utils.data.DataLoader(condensed.dataset(), batch_size=128)
"""

from pad_sdk.api import distill, plan, sweep
from pad_sdk.compare import compare
from pad_sdk.config import PadConfig
from pad_sdk.errors import (
    BudgetError,
    BudgetExceeded,
    BudgetExhausted,
    ConfigError,
    ConnectorError,
    DataError,
    DistillationError,
    PadError,
    PolicyError,
    PolicyViolation,
    TrajectoryStoreError,
    WorkerError,
)
from pad_sdk.exports import evaluate_export
from pad_sdk.plans import Plan
from pad_sdk.presets import available_presets, preset_config
from pad_sdk.result import AccuracyReport, CondensedDataset, CondensedSet, DistillResult, load_condensed
from pad_sdk.runtime import LocalRuntime

__version__ = "0.1.0"

__all__ = [
    "AccuracyReport",
    "BudgetError",
    "BudgetExceeded",
    "BudgetExhausted",
    "CondensedDataset",
    "CondensedSet",
    "ConfigError",
    "ConnectorError",
    "DataError",
    "DistillResult",
    "DistillationError",
    "LocalRuntime",
    "PadConfig",
    "PadError",
    "Plan",
    "PolicyError",
    "PolicyViolation",
    "TrajectoryStoreError",
    "WorkerError",
    "__version__",
    "available_presets",
    "compare",
    "distill",
    "evaluate_export",
    "load_condensed",
    "plan",
    "preset_config",
    "sweep",
]
