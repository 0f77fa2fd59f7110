"""``pad_sdk.compare``: condensation methods and real-image baselines under one evaluation protocol.

Each (method, IPC, seed) run condenses the training split and trains ``eval_networks`` fresh networks on
the result with the preset's evaluation recipe (same networks, augmentation and epochs for every method;
the step size is the learned one for trajectory methods, the random baseline's otherwise). Scoring and
experts are computed once per settings and shared across methods, IPCs and seeds; a run's seed varies its
own condensation randomness and its evaluation networks, so all methods see the same networks per seed.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from pad_sdk.core.evaluate import SeedStatistics, evaluate_set
from pad_sdk.core.seeding import derive_seed
from pad_sdk.core.synthetic import HARD_LABEL_LOGIT, SyntheticSet
from pad_sdk.data import ArrayLike, prepare, read_input
from pad_sdk.methods import Method, MethodContext, get_method, method_label
from pad_sdk.pipeline import EventSink
from pad_sdk.presets import preset_config
from pad_sdk.runtime import LocalRuntime

log = structlog.get_logger(__name__)

DEFAULT_METHODS = ("pad", "datm", "mtt", "dc", "dm", "random", "herding", "kcenter", "el2n-easy", "el2n-hard",
                   "el2n-middle")


def condensed_bytes(synthetic: SyntheticSet) -> int:
    """Storage of a condensed set: float32 pixels, int64 class ids, and float32 label logits when the labels
    are soft (hard one-hot labels are implied by the class ids), plus the float32 step size."""
    images = synthetic.images.numel() * 4
    classes = synthetic.classes.numel() * 8
    hard = bool((synthetic.label_logits.max(dim=1).values == HARD_LABEL_LOGIT).all())
    labels = 0 if hard else synthetic.label_logits.numel() * 4
    return int(images + classes + labels + 4)


@dataclass(frozen=True)
class ComparisonRow(SeedStatistics):
    """One method at one IPC: holdout accuracy per seed (fractions), mean condensation seconds per run, bytes.
    ``seeds`` are the runs' indices (empty: 0 .. n-1), so rows measured for different seeds in parallel
    processes can be put together (:func:`merge_rows`)."""

    method: str
    ipc: int
    accuracies: tuple[float, ...]
    seconds: float
    condensed_bytes: int
    seeds: tuple[int, ...] = ()

    @property
    def run_indices(self) -> tuple[int, ...]:
        return self.seeds or tuple(range(len(self.accuracies)))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "accuracies": list(self.accuracies), "seeds": list(self.run_indices),
                "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> ComparisonRow:
        return cls(row["method"], int(row["ipc"]), tuple(row["accuracies"]), float(row["seconds"]),
                   int(row["condensed_bytes"]), tuple(row.get("seeds", ())))


def merge_rows(rows: Sequence[ComparisonRow]) -> ComparisonRow:
    """One row from rows of the same method and IPC measured for different seeds (ordered by seed; the
    seconds are the mean over the runs). A seed measured twice, or rows of different methods, is an error."""
    if len({(r.method, r.ipc) for r in rows}) != 1:
        raise ValueError(f"rows of different methods or IPCs cannot be merged: {[(r.method, r.ipc) for r in rows]}")
    by_seed: dict[int, float] = {}
    weighted = 0.0
    for row in rows:
        for seed, accuracy in zip(row.run_indices, row.accuracies, strict=True):
            if seed in by_seed:
                raise ValueError(f"{row.method} IPC {row.ipc}: seed {seed} was measured twice")
            by_seed[seed] = accuracy
        weighted += row.seconds * len(row.accuracies)
    seeds = tuple(sorted(by_seed))
    return ComparisonRow(rows[0].method, rows[0].ipc, tuple(by_seed[s] for s in seeds), weighted / len(seeds),
                         max(r.condensed_bytes for r in rows), seeds)


@dataclass(frozen=True)
class ComparisonTable:
    """Rows per (method, IPC) plus the settings and the shared costs (scoring, experts) of the comparison."""

    rows: tuple[ComparisonRow, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    shared_seconds: Mapping[str, float] = field(default_factory=dict)

    def row(self, method: str, ipc: int) -> ComparisonRow:
        for row in self.rows:
            if row.method == method and row.ipc == ipc:
                return row
        raise KeyError(f"no row for method {method!r} at IPC {ipc}")

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [r.to_dict() for r in self.rows], "settings": dict(self.settings),
                "shared_seconds": dict(self.shared_seconds)}

    def to_json(self, path: str | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComparisonTable:
        rows = tuple(ComparisonRow.from_dict(r) for r in data["rows"])
        return cls(rows, dict(data.get("settings", {})), dict(data.get("shared_seconds", {})))

    @classmethod
    def from_json(cls, text: str) -> ComparisonTable:
        return cls.from_dict(json.loads(text))

    def to_markdown(self) -> str:
        """Methods as rows, IPCs as columns: accuracy mean +- std in %, seconds per run, bytes."""
        ipcs = sorted({r.ipc for r in self.rows})
        methods = list(dict.fromkeys(r.method for r in self.rows))
        header = "| method | " + " | ".join(f"IPC {i} acc % | s/run | bytes" for i in ipcs) + " |"
        lines = [header, "|---|" + "---:|---:|---:|" * len(ipcs)]
        for method in methods:
            cells = []
            for ipc in ipcs:
                try:
                    r = self.row(method, ipc)
                except KeyError:
                    cells.append("- | - | -")
                    continue
                cells.append(f"{100 * r.mean:.1f} ± {100 * r.std:.1f} | {r.seconds:.1f} | {r.condensed_bytes:,}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()


def compare(
    source: Any,
    labels: ArrayLike | None = None,
    *,
    methods: Sequence[str | Method] = DEFAULT_METHODS,
    ipc: int | Sequence[int] = (1, 10),
    seeds: int = 3,
    preset: str = "cpu-small",
    overrides: Mapping[str, Any] | None = None,
    eval_networks: int = 1,
    seed: int = 0,
    test_images: ArrayLike | None = None,
    test_labels: ArrayLike | None = None,
    class_names: tuple[str, ...] | None = None,
    holdout_fraction: float = 0.2,
    on_event: EventSink | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> ComparisonTable:
    """Condense ``source`` with every method at every IPC for ``seeds`` seeds; evaluate all alike.

    Args:
        source, labels, test_images, test_labels, class_names, holdout_fraction: as for :func:`pad_sdk.distill`.
        methods: registered names (``"pad"``), names with switches (``"dc:fiex=on,fiem=on"``) or method
            objects from :func:`pad_sdk.methods.get_method`.
        ipc: one IPC or several. seeds: runs per (method, IPC); the table's std is over them.
        preset, overrides: the settings (shared scoring, experts, trajectory budgets, evaluation recipe).
        eval_networks: networks trained per run (their mean is the run's accuracy).
    """
    ipcs = [ipc] if isinstance(ipc, int) else list(ipc)
    chosen = [get_method(m) for m in methods]  # unknown names fail before any work
    raw = read_input(source, labels, LocalRuntime(), test_images=test_images, test_labels=test_labels,
                      class_names=class_names, holdout_fraction=holdout_fraction, seed=seed,
                      storage_options=storage_options, source_options={})
    first = preset_config(preset, ipcs[0], {**dict(overrides or {}), "seed": seed})
    context = MethodContext(prepare(raw, zca=first.zca), preset, dict(overrides or {}), seed, on_event)
    rows = [measure(context, method, size, seeds, eval_networks) for size in ipcs for method in chosen]
    settings = {"preset": preset, "ipc": ipcs, "seeds": seeds, "eval_networks": eval_networks, "seed": seed,
                "overrides": dict(overrides or {}), "evaluation": first.evaluation.model_dump(mode="json"),
                "train": len(context.data.train), "holdout": len(context.data.test)}
    return ComparisonTable(tuple(rows), settings, dict(context.shared_seconds))


def measure(context: MethodContext, method: Method, ipc: int, seeds: int | Sequence[int], eval_networks: int,
            on_seed: Callable[[ComparisonRow], None] | None = None) -> ComparisonRow:
    """Condense and evaluate ``method`` at ``ipc`` for every seed (``seeds`` runs, or these run indices: a run
    depends only on its index, so parallel processes can share the seeds); ``on_seed`` receives the row so far
    after each seed (a benchmark cut short keeps the seeds it finished)."""
    runs = tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)
    config = context.config(ipc)
    stages = context.stages(config)
    accuracies: list[float] = []
    seconds: list[float] = []
    size = 0
    for run in runs:
        shared_before = sum(context.shared_seconds.values())
        started = time.perf_counter()
        synthetic = method.condense(context, ipc, run)
        # shared scoring / experts trained during this run are reported separately, not as the method's time
        seconds.append(time.perf_counter() - started - (sum(context.shared_seconds.values()) - shared_before))
        result = evaluate_set(
            synthetic.images, synthetic.label_logits, context.data.test, stages.network_factory(),
            config.evaluation.recipe(float(synthetic.lr)), seeds=eval_networks,
            seed=derive_seed(context.seed, 41, run), augment=stages.augment, device=stages.device,
        )
        accuracies.append(result.mean)
        size = condensed_bytes(synthetic)
        log.info("compare.run", method=method_label(method), ipc=ipc, seed=run, accuracy=round(result.mean, 4),
                 seconds=round(seconds[-1], 1))
        if on_seed is not None:
            on_seed(ComparisonRow(method_label(method), ipc, tuple(accuracies), statistics.fmean(seconds), size,
                                  runs[:len(accuracies)]))
    return ComparisonRow(method_label(method), ipc, tuple(accuracies), statistics.fmean(seconds), size, runs)
