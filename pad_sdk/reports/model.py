"""The review report: one frozen object built from a run's results, saved as JSON, rendered as HTML.

A :class:`RunReport` holds plain numbers only (plus the condensed-image grid as an inlined PNG), so the JSON
file alone is enough to render the HTML again later (``pad-sdk report report.json``).
"""

from __future__ import annotations

import base64
import json
import math
import platform
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import policies
from pad_sdk.core.evaluate import EvalResult
from pad_sdk.measure import measured_results
from pad_sdk.pipeline import resolve_device
from pad_sdk.reports.cost import CostSection, Prices, cost_section
from pad_sdk.reports.figures import condensed_grid_png
from pad_sdk.result import DistillResult

REPORT_VERSION = 1
# Loss curves longer than this are thinned to every k-th point: enough for a picture, small in JSON.
MAX_LOSS_POINTS = 2000
_VERSIONED = ("pad-sdk", "torch", "numpy", "pyarrow", "pydantic", "ray", "s3fs", "fsspec")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EvalSummary(_Frozen):
    """Holdout accuracy of networks trained on one set; fractions in [0, 1]; recall None where undefined."""

    mean: float
    std: float
    accuracies: tuple[float, ...]
    per_class_recall: tuple[float | None, ...]
    train_seconds: float = Field(description="all networks together")
    seconds_per_model: float

    @classmethod
    def of(cls, result: EvalResult) -> EvalSummary:
        n = max(1, len(result.accuracies))
        return cls(
            mean=result.mean, std=result.std, accuracies=tuple(result.accuracies),
            # a class absent from the holdout has NaN recall; JSON has no NaN, so it becomes None
            per_class_recall=tuple(None if math.isnan(v) else float(v) for v in result.per_class_recall),
            train_seconds=result.train_seconds, seconds_per_model=result.train_seconds / n,
        )


class AccuracySection(_Frozen):
    """Condensed vs random subset of equal size vs full data, for one IPC."""

    condensed: EvalSummary | None
    random: EvalSummary | None
    full: EvalSummary | None
    retention: float | None = Field(description="condensed mean / full-data mean")
    group_accuracy: dict[str, dict[str, float]] | None = Field(
        default=None, description="per group value: accuracy by set; present when the source has a group column")
    cross_architecture: dict[str, dict[str, float]] | None = Field(
        default=None, description="per architecture: mean/std accuracy of the condensed set, when run")


class IpcEntry(_Frozen):
    """Everything measured for one images-per-class setting."""

    ipc: int
    images: int
    learned_lr: float | None
    export_uri: str | None
    accuracy: AccuracySection
    cost: CostSection
    verdict: policies.Verdict
    verdict_basis: Literal["policy", "default"] = Field(
        description="policy: the run's policy; default: RunPolicy.default_for_ipc, as no policy was given")
    timings: dict[str, float]
    decisions: dict[str, Any] = Field(
        default_factory=dict, description="settings chosen during the run and why, e.g. the unroll mode")
    loss_history: tuple[float, ...]
    loss_stride: int = Field(default=1, description="loss_history keeps every k-th iteration")
    grid_png: str = Field(description="base64 PNG: the condensed images, one row per class")
    config: dict[str, Any]


class Provenance(_Frozen):
    """Where the data came from and how the run was made."""

    run_id: str
    created_at: str
    source_uri: str | None
    source_fingerprint: str | None
    source_format: str | None
    source_rows: int | None
    split: dict[str, Any] | None
    source_held: str = Field("memory", description="where the run held the training images: memory, or a file "
                             "mapping (a source over the local runtime's data budget)")
    class_names: tuple[str, ...]
    policy_name: str | None
    policy: dict[str, Any] | None
    preset: str
    seed: int
    runtime: str
    runtime_options: dict[str, str | int] = Field(
        default_factory=dict, description="where the runtime ran, e.g. a Ray run's run_id and storage URL (what "
        "resumes it); never credentials")
    hardware: Literal["cpu", "gpu"]
    versions: dict[str, str]


class EstimateRow(_Frozen):
    """One stage: the seconds the opening estimate predicted, and those measured (None: not run or not timed)."""

    stage: str
    estimated_s: float
    actual_s: float | None


class EstimateSection(_Frozen):
    """The run's opening estimate against what it measured, so a review sees how far to trust the next one."""

    line: str
    rows: tuple[EstimateRow, ...]
    estimated_total_s: float
    actual_total_s: float
    estimated_peak_host_bytes: int
    actual_peak_host_bytes: int | None = Field(description="peak resident memory of the run's process")
    load_average: float | None = Field(description="1-minute load average while calibrating (noise indicator)")
    partial: bool = Field(description="the budget stopped the run: stages not done have no actual time")


def estimate_section(results: Sequence[DistillResult]) -> EstimateSection | None:
    """Estimate against actual per stage (shared stages timed on the first result only), or None without one."""
    first = results[0]
    if first.estimate is None:
        return None
    plan = first.estimate
    actual: dict[str, float] = {}
    for index, result in enumerate(results):
        for stage, seconds in result.timings.items():
            if stage != "total" and (index == 0 or stage not in ("scoring", "experts")):
                actual[stage] = actual.get(stage, 0.0) + float(seconds)
    measured = ("load", "calibration")  # ran before (or to make) the plan: their figures are what they took
    rows = tuple(EstimateRow(stage=s["stage"], estimated_s=float(s["seconds"]),
                             actual_s=float(s["seconds"]) if s["stage"] in measured else actual.get(s["stage"]))
                 for s in plan["stages"])
    peak = first.decisions.get("resources", {}).get("peak_host_bytes")
    return EstimateSection(
        line=_plan_line(plan), rows=rows, estimated_total_s=float(plan["seconds"]),
        actual_total_s=sum(float(r.timings.get("total", 0.0)) for r in results),
        estimated_peak_host_bytes=int(plan["peak_host_bytes"]),
        actual_peak_host_bytes=None if peak is None else int(max(r.decisions.get("resources", {}).get(
            "peak_host_bytes", 0) for r in results)),
        load_average=plan.get("load_average"), partial=any("budget_stop" in r.decisions for r in results))


def _plan_line(plan: Mapping[str, Any]) -> str:
    from pad_sdk.plans import Plan

    return Plan.model_validate(plan).line()


class RunReport(_Frozen):
    """The review report of a single run (``kind="distill"``) or a compression sweep (``kind="sweep"``)."""

    report_version: int = REPORT_VERSION
    title: str
    kind: Literal["distill", "sweep"]
    provenance: Provenance
    entries: tuple[IpcEntry, ...] = Field(min_length=1)
    recommended_ipc: int | None = Field(description="smallest IPC whose verdict passes (warnings allowed)")
    overall: policies.Status
    estimate: EstimateSection | None = Field(default=None, description="the opening estimate against the actuals")

    @property
    def headline(self) -> IpcEntry:
        """The entry a reviewer decides on: the recommended IPC, else the first."""
        return next((e for e in self.entries if e.ipc == self.recommended_ipc), self.entries[0])

    def entry(self, ipc: int) -> IpcEntry:
        for e in self.entries:
            if e.ipc == ipc:
                return e
        raise KeyError(f"no entry for IPC {ipc}; present: {[e.ipc for e in self.entries]}")

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> RunReport:
        return cls.model_validate_json(text)


def recommend_ipc(entries: Sequence[IpcEntry]) -> int | None:
    """The smallest IPC whose verdict passes (a warning passes, a failed rule does not)."""
    passing = [e.ipc for e in entries if e.verdict.passed]
    return min(passing) if passing else None


def _overall(entries: Sequence[IpcEntry], recommended: int | None, kind: str) -> policies.Status:
    if kind == "distill" or len(entries) == 1:
        return entries[0].verdict.status
    if recommended is None:
        return policies.Status.FAIL
    return next(e.verdict.status for e in entries if e.ipc == recommended)


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def _verdict(result: DistillResult) -> tuple[policies.Verdict, Literal["policy", "default"]]:
    """The run's verdict; without a policy, the default limits for its IPC (so every report is judged)."""
    if result.verdict is not None:
        return result.verdict, "policy"
    results = dict(result.measurements) or measured_results(
        result.accuracy, result.condensed.class_names, result.config, result.timings)
    default = policies.RunPolicy.default_for_ipc(result.config.ipc)
    return default.judge(results), "default"


def _manifest_bytes(manifest: Mapping[str, Any]) -> int:
    # The export's files plus the manifest itself, serialised exactly as connectors writes it.
    listed = sum(int(f["size"]) for f in manifest["files"].values())
    return listed + len(json.dumps(manifest, indent=2, sort_keys=True).encode())


def _estimated_export_bytes(result: DistillResult) -> int:
    c = result.condensed
    logits = 0 if c.label_logits is None else c.label_logits.numel() * 4
    return int(c.images.numel() * 4 + c.labels.numel() * 8 + logits)


def _source_bytes(result: DistillResult, override: tuple[int, str] | None) -> tuple[int, str]:
    stored = result.source.get("stored_bytes")
    if stored is not None:
        return int(stored), f"stored objects ({result.source.get('format') or 'source'})"
    if override is not None:
        return override
    # In-memory input without a stated size: rows x the float32 pixels the pipeline held.
    c, h, w = result.condensed.images.shape[1:]
    rows = int(result.source.get("rows") or 0)
    return rows * int(c * h * w) * 4, "estimated: in-memory input, rows x float32 pixels (not stored anywhere)"


def _loss(history: Sequence[float]) -> tuple[tuple[float, ...], int]:
    stride = max(1, math.ceil(len(history) / MAX_LOSS_POINTS))
    return tuple(float(v) for v in history[::stride]), stride


def _accuracy(result: DistillResult) -> AccuracySection:
    acc = result.accuracy
    if acc is None:
        return AccuracySection(condensed=None, random=None, full=None, retention=None)
    return AccuracySection(
        condensed=EvalSummary.of(acc.condensed),
        random=None if acc.random is None else EvalSummary.of(acc.random),
        full=None if acc.full is None else EvalSummary.of(acc.full),
        retention=acc.retention,
        group_accuracy=acc.group_accuracy,
        cross_architecture=None if not acc.cross_architecture else {
            arch: {"mean": r.mean, "std": r.std} for arch, r in acc.cross_architecture.items()},
    )


def build_report(
    results: Sequence[DistillResult],
    *,
    manifests: Sequence[Mapping[str, Any] | None] | None = None,
    export_uris: Sequence[str | None] | None = None,
    prices: Prices | None = None,
    source_bytes: tuple[int, str] | None = None,
    runtime: str = "local",
    title: str | None = None,
    run_id: str | None = None,
    runtime_options: Mapping[str, str | int] | None = None,
) -> RunReport:
    """Build the report of one run (one result) or a sweep (several results from :func:`pad_sdk.sweep`).

    Args:
        manifests: the manifest each export returned (``result.save(...)``), for the condensed bytes; without
            one, the bytes are estimated from the arrays and the report says so.
        export_uris: where each condensed set was written (shown in the report).
        prices: unit prices (:class:`Prices` defaults otherwise).
        source_bytes: ``(bytes, basis)`` for in-memory input, whose stored size the run cannot know.
        runtime_options: what identifies the run on its runtime (for Ray: ``run_id``, ``storage``, ``workers``,
            ``address``), shown next to the runtime; pass no credentials.
    """
    if not results:
        raise ValueError("build_report needs at least one result")
    prices = prices or Prices()
    manifests = list(manifests) if manifests is not None else [None] * len(results)
    uris = list(export_uris) if export_uris is not None else [None] * len(results)
    first = results[0]
    hardware: Literal["cpu", "gpu"] = "gpu" if resolve_device(first.config.device).type == "cuda" else "cpu"
    # Stages a sweep ran once (scoring, experts) are timed on the first result only.
    shared = {s: float(first.timings[s]) for s in ("scoring", "experts") if s in first.timings}
    entries = []
    for result, manifest, uri in zip(results, manifests, uris, strict=True):
        src_bytes, src_basis = _source_bytes(result, source_bytes)
        if manifest is not None:
            out_bytes, out_basis = _manifest_bytes(manifest), "export files and manifest"
        else:
            out_bytes, out_basis = _estimated_export_bytes(result), "estimated from the arrays (not exported)"
        accuracy = _accuracy(result)
        verdict, basis = _verdict(result)
        loss, stride = _loss(result.loss_history)
        cost = cost_section(
            prices=prices, hardware=hardware, source_bytes=src_bytes, source_bytes_basis=src_basis,
            condensed_bytes=out_bytes, condensed_bytes_basis=out_basis,
            stage_seconds={k: float(v) for k, v in result.timings.items()}, shared_seconds=shared,
            full_train_seconds=None if accuracy.full is None else accuracy.full.seconds_per_model,
            condensed_train_seconds=None if accuracy.condensed is None else accuracy.condensed.seconds_per_model,
        )
        entries.append(IpcEntry(
            ipc=result.config.ipc, images=int(result.images.shape[0]), learned_lr=result.learned_lr,
            export_uri=uri, accuracy=accuracy, cost=cost, verdict=verdict, verdict_basis=basis,
            timings={k: float(v) for k, v in result.timings.items()}, loss_history=loss, loss_stride=stride,
            decisions=json.loads(json.dumps(dict(result.decisions), default=str)),
            grid_png=base64.b64encode(condensed_grid_png(result.condensed)).decode(),
            config=result.config.model_dump(mode="json"),
        ))
    kind: Literal["distill", "sweep"] = "sweep" if len(entries) > 1 else "distill"
    recommended = recommend_ipc(entries)
    policy = dict(first.policy) if first.policy is not None else None
    now = datetime.now(UTC)
    provenance = Provenance(
        run_id=run_id or f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        created_at=now.isoformat(timespec="seconds"),
        source_uri=first.source.get("uri"), source_fingerprint=first.source.get("fingerprint"),
        source_format=first.source.get("format"), source_rows=first.source.get("rows"),
        split=first.source.get("split"), source_held=first.source.get("held", "memory"),
        class_names=tuple(first.condensed.class_names),
        policy_name=None if policy is None else policy.get("name"), policy=policy,
        preset=first.config.preset or "custom", seed=first.config.seed, runtime=runtime,
        runtime_options=dict(runtime_options or {}), hardware=hardware,
        versions=_versions(),
    )
    default_title = "PAD distillation review" + (" (compression sweep)" if kind == "sweep" else "")
    return RunReport(title=title or default_title, kind=kind, provenance=provenance, entries=tuple(entries),
                     recommended_ipc=recommended, overall=_overall(entries, recommended, kind),
                     estimate=estimate_section(results))
