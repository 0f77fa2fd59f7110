"""The plan of a run: what ``pad_sdk.plan`` returns and a run opens with, per stage and in total (seconds, host
and device memory, bytes moved, money), and what to cut when it breaks a budget. :mod:`pad_sdk.estimate` measures
and fills it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Stage names match the keys of ``DistillResult.timings``, so that a report can set estimate against actual.
# stages a plan shows as measured, not estimated: they ran before the plan was made (or to make it)
MEASURED_STAGES = ("load", "calibration")
STAGE_ORDER = ("load", "calibration", "scoring", "experts", "probes", "distillation", "subset_check", "evaluation",
               "full_reference")
# What to cut when a stage is too expensive: the settings that scale it.
CUTS = {
    "scoring": "scoring.runs / scoring.epochs",
    "experts": "experts.num_experts / experts.epochs",
    "probes": "auto.probes=false or auto.fraction",
    "distillation": "distill.iterations",
    "subset_check": "auto.subset_check=false",
    "evaluation": "evaluation.epochs / evaluation.seeds",
    "full_reference": "evaluation.full_epochs=0",
}
SMALLER_PRESET = {"paper": "cpu-small", "cpu-small": "tiny"}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StageEstimate(_Frozen):
    """One stage: seconds, extra host memory over the process baseline, bytes moved, money, and how."""

    stage: str
    seconds: float
    work: str = Field(description="the counts multiplied, e.g. '6 experts x 20 epochs x 43,200 images'")
    extra_host_bytes: int = 0
    read_bytes: int = 0
    written_bytes: int = 0
    cost: float = 0.0


class Plan(_Frozen):
    """The estimate of one ``distill``/``sweep`` call (shared stages counted once). JSON-ready."""

    ipcs: tuple[int, ...]
    preset: str | None
    device: str
    hardware: Literal["cpu", "gpu"]
    runtime: str
    train_images: int
    image_shape: tuple[int, int, int]
    stages: tuple[StageEstimate, ...]
    seconds: float
    peak_host_bytes: int
    peak_device_bytes: int | None = Field(description="None on a CPU (the host is the device)")
    read_bytes: int
    written_bytes: int
    cost: float
    currency: str
    calibration: dict[str, float] = Field(description="measured seconds per unit of each kind of work")
    load_average: float | None = Field(description="1-minute load average while calibrating, the higher of before "
                                       "and after (noise indicator)")
    cpus: int | None = Field(None, description="CPUs this process may use")
    cpu_share: float | None = Field(None, description="CPU seconds the calibration got per wall second and torch "
                                    "thread (near 1 on an idle machine; low when other processes took the CPUs)")
    notes: tuple[str, ...] = Field((), description="what makes this estimate less certain (e.g. a loaded machine)")
    over_budget: tuple[dict[str, Any], ...] = Field((), description="budgets the estimate breaks (by pad_sdk.plan)")
    cuts: tuple[str, ...] = Field((), description="what to cut to fit the budget, when it is broken")

    def stage(self, name: str) -> StageEstimate | None:
        return next((s for s in self.stages if s.stage == name), None)

    def line(self) -> str:
        """The one-line summary that opens a run."""
        parts = ", ".join(f"{s.stage} {format_seconds(s.seconds)}" for s in self.stages if s.seconds >= 0.5)
        device = "" if self.peak_device_bytes is None else f", device peak {self.peak_device_bytes / 2**30:.2f} GiB"
        notes = "".join(f"; {note}" for note in self.notes)
        return (f"estimate: {format_seconds(self.seconds)} ({parts}); host peak {self.peak_host_bytes / 2**30:.2f} GiB"
                f"{device}; reads {self.read_bytes / 1e6:,.1f} MB, writes {self.written_bytes / 1e6:,.1f} MB; "
                f"{self.cost:,.4f} {self.currency}{notes}")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def suggested_cuts(self) -> list[str]:
        """What to cut, largest stage first, plus a smaller preset and a training subset."""
        ranked = sorted((s for s in self.stages if s.stage in CUTS), key=lambda s: -s.seconds)
        tips = [f"{s.stage} ({format_seconds(s.seconds)}): lower {CUTS[s.stage]}" for s in ranked[:3] if s.seconds > 0]
        if self.preset in SMALLER_PRESET:
            tips.append(f"a smaller preset (--preset {SMALLER_PRESET[self.preset]})")
        tips.append(f"a training subset (fewer than the {self.train_images:,} training images: every stage but "
                    "distillation scales with them)")
        return tips


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
