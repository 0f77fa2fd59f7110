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
import statistics
import sys

import torch
from sklearn.datasets import load_digits

from pad_sdk.compare import DEFAULT_METHODS, ComparisonTable, measure
from pad_sdk.data import arrays_to_raw, prepare
from pad_sdk.methods import MethodContext, get_method

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
    """Like :func:`pad_sdk.compare`, but the JSON is rewritten after every row, so a cut-short part keeps
    what it measured."""
    torch.set_num_threads(1)
    ipc, methods = PARTS[name]
    digits = load_digits()
    raw = arrays_to_raw(digits.images, digits.target, test_images=None, test_labels=None, class_names=None,
                        holdout_fraction=0.2, seed=0)
    context = MethodContext(prepare(raw, zca=False), "cpu-small", OVERRIDES, 0)
    rows = []
    for spec in methods:
        rows.append(measure(context, get_method(spec), ipc, 3, 1))
        table = ComparisonTable(tuple(rows), {"preset": "cpu-small", "ipc": [ipc], "seeds": 3, "eval_networks": 1,
                                              "overrides": OVERRIDES}, dict(context.shared_seconds))
        table.to_json(str(RESULTS / f"digits_comparison.{name}.json"))
    print(table)


# (what is measured, method with the filter(s), method without, IPCs where the pair differs)
GAINS = (
    ("TM: both filters (pad vs datm)", "pad", "datm", (1, 10)),
    ("TM: FIEX only (pad[fiem=off] vs datm)", "pad[fiem=off]", "datm", (10,)),
    ("TM: FIEM only (pad[fiex=off] vs datm)", "pad[fiex=off]", "datm", (10,)),
    ("DC: FIEX (dc[fiex=on] vs dc)", "dc[fiex=on]", "dc", (1, 10)),
    ("DC: FIEM (dc[fiem=on] vs dc)", "dc[fiem=on]", "dc", (1, 10)),
    ("DM: FIEX (dm[fiex=on] vs dm)", "dm[fiex=on]", "dm", (1, 10)),
    ("DM: FIEM (dm[fiem=on] vs dm)", "dm[fiem=on]", "dm", (1, 10)),
)


def gains_markdown(table: ComparisonTable) -> str:
    """Accuracy gain of each filter in points, mean and std of the per-seed paired differences (the same
    evaluation networks per seed for both methods)."""
    lines = ["| filter | IPC | with % | without % | gain (points) |", "|---|---:|---:|---:|---:|"]
    for title, with_, without, ipcs in GAINS:
        for ipc in ipcs:
            try:
                a, b = table.row(with_, ipc), table.row(without, ipc)
            except KeyError:
                continue
            diffs = [100 * (x - y) for x, y in zip(a.accuracies, b.accuracies, strict=True)]
            mean = statistics.fmean(diffs)
            std = statistics.pstdev(diffs) if len(diffs) > 1 else 0.0
            lines.append(f"| {title} | {ipc} | {100 * a.mean:.1f} | {100 * b.mean:.1f} | {mean:+.1f} ± {std:.1f} |")
    return "\n".join(lines)


def merge() -> None:
    names = [n for n in PARTS if (RESULTS / f"digits_comparison.{n}.json").exists()]
    parts = [json.loads((RESULTS / f"digits_comparison.{n}.json").read_text()) for n in names]
    merged = ComparisonTable.from_dict({
        "rows": [r for p in parts for r in p["rows"]],
        "settings": {**parts[0]["settings"], "ipc": [1, 10]},
        "shared_seconds": {f"{n}:{k}": v for n, p in zip(names, parts, strict=True)
                           for k, v in p["shared_seconds"].items()},
    })
    merged.to_json(str(RESULTS / "digits_comparison.json"))
    text = merged.to_markdown() + "\n\nFilter gains (paired over seeds):\n\n" + gains_markdown(merged) + "\n"
    (RESULTS / "digits_comparison.md").write_text(text)
    print(text)


if __name__ == "__main__":
    run_part(sys.argv[2]) if sys.argv[1] == "part" else merge()
