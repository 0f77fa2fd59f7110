"""The public surface is small and deliberate: adding or removing a name is a reviewed change."""

from __future__ import annotations

import pad_sdk


def test_pad_sdk_exports_exactly_these_names() -> None:
    assert sorted(pad_sdk.__all__) == sorted(
        [
            "AccuracyReport", "BudgetError", "BudgetExceeded", "BudgetExhausted",
            "CondensedDataset", "CondensedSet", "ConfigError", "ConnectorError", "DataError",
            "DistillResult", "DistillationError", "LocalRuntime", "PadConfig", "PadError", "PolicyError",
            "PolicyViolation",
            "TrajectoryStoreError", "WorkerError", "__version__", "available_presets", "compare", "distill",
            "evaluate_export", "load_condensed", "Plan", "plan", "preset_config", "sweep",
        ]
    )
    for name in pad_sdk.__all__:
        assert hasattr(pad_sdk, name), name


def test_every_error_derives_from_pad_error() -> None:
    for name in ("BudgetExceeded", "BudgetExhausted", "ConfigError", "ConnectorError", "DataError",
                 "DistillationError", "PolicyError", "PolicyViolation", "TrajectoryStoreError", "WorkerError"):
        assert issubclass(getattr(pad_sdk, name), pad_sdk.PadError)


def test_lower_layers_do_not_import_torch_or_pad_sdk() -> None:
    import subprocess
    import sys

    code = ("import sys, connectors, policies; "
            "bad = [m for m in ('torch', 'pad_sdk', 'ray') if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
