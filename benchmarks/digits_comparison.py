"""Digits comparison: every method and baseline at IPC 1 and 10, 3 seeds, cpu-small (reduced budgets).

    nice -n 5 .venv/bin/python benchmarks/digits_comparison.py part ipc1      # one part per process
    .venv/bin/python benchmarks/digits_comparison.py merge                    # -> digits_comparison.{json,md}

Budget overrides on top of cpu-small (two CPU cores shared with other jobs, load ~9): 4 experts instead of 6,
40 distillation iterations of 10 steps instead of 150 of 20, 80 evaluation epochs instead of 300, one
evaluation network per seed. Far from converged: the numbers compare methods at equal small budgets.
"""

from __future__ import annotations

import json
import pathlib
import sys

import torch
from sklearn.datasets import load_digits

from pad_sdk.compare import DEFAULT_METHODS, ComparisonTable, compare

RESULTS = pathlib.Path(__file__).parent / "results"
OVERRIDES = {"experts": {"num_experts": 4}, "distill": {"iterations": 40, "syn_steps": 10},
             "evaluation": {"epochs": 80}}
ABLATIONS_TM = ("pad:fiex=off", "pad:fiem=off")
ABLATIONS_GM_DM = ("dc:fiex=on", "dc:fiem=on", "dm:fiex=on", "dm:fiem=on")
# At IPC 1 the preset's alpha is 0 (official CIFAR-10 IPC1), so pad[fiem=off] is pad and pad[fiex=off] is datm.
PARTS = {
    "ipc1": (1, DEFAULT_METHODS + ABLATIONS_GM_DM),
    "ipc10": (10, DEFAULT_METHODS),
    "ipc10-ablations": (10, ABLATIONS_TM + ABLATIONS_GM_DM),
}


def run_part(name: str) -> None:
    torch.set_num_threads(1)
    ipc, methods = PARTS[name]
    digits = load_digits()
    table = compare(digits.images, digits.target, methods=methods, ipc=[ipc], seeds=3, preset="cpu-small",
                    overrides=OVERRIDES)
    table.to_json(str(RESULTS / f"digits_comparison.{name}.json"))
    print(table)


def merge() -> None:
    parts = [json.loads((RESULTS / f"digits_comparison.{n}.json").read_text()) for n in PARTS]
    merged = ComparisonTable.from_dict({
        "rows": [r for p in parts for r in p["rows"]],
        "settings": {**parts[0]["settings"], "ipc": [1, 10]},
        "shared_seconds": {f"{n}:{k}": v for n, p in zip(PARTS, parts, strict=True)
                           for k, v in p["shared_seconds"].items()},
    })
    merged.to_json(str(RESULTS / "digits_comparison.json"))
    (RESULTS / "digits_comparison.md").write_text(merged.to_markdown() + "\n")
    print(merged)


if __name__ == "__main__":
    run_part(sys.argv[2]) if sys.argv[1] == "part" else merge()
