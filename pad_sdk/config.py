"""Run settings: frozen, validated pydantic models, one per concern, built once at the edge.

``PadConfig`` bundles them. Presets (see :mod:`pad_sdk.presets`) fill them per IPC; every field can be
overridden. Cross-field errors name both fields and the fix.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pad_sdk.core.scheduler import DataSchedule
from pad_sdk.core.training import TrainRecipe
from pad_sdk.errors import ConfigError


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NetworkSettings(_Frozen):
    """The agent/expert/student network (ConvNet-D3, width 128, instance norm, average pooling by default)."""

    name: str = "convnet"
    width: int = Field(128, ge=1, le=4096)
    depth: int | None = Field(
        None, ge=1, le=8, description="None: by image size (8-16 px: 2, 32: 3, 64: 4, 128: 5, as the papers use)"
    )
    norm: Literal["instance", "batch", "none"] = "instance"
    pooling: Literal["avg", "max", "none"] = "avg"

    def resolved_depth(self, image_size: tuple[int, int]) -> int:
        """The ConvNet depth for ``image_size``: the papers keep the last normalised map at 8x8 (28 px counts
        as 32); on 8x8 digits a third block would normalise 2x2 maps, which trains poorly, so depth 2."""
        if self.depth is not None:
            return self.depth
        side = 32 if min(image_size) == 28 else min(image_size)
        return max(2, min(5, round(math.log2(max(side, 1) / 4))))

    def kwargs(self, image_size: tuple[int, int]) -> dict[str, object]:
        depth = self.resolved_depth(image_size)
        if self.name == "convnet":
            return {"width": self.width, "depth": depth, "norm": self.norm, "pooling": self.pooling}
        if self.name == "mlp":
            return {"width": self.width, "depth": self.depth or 2}
        return {"width": self.width, "norm": self.norm}


class ScoringSettings(_Frozen):
    """EL2N scoring: ``runs`` short agent trainings of ``epochs`` each (Data Diet: 10 runs, epochs 10-20)."""

    runs: int = Field(10, ge=1)
    epochs: int = Field(10, ge=1)
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    batch_size: int = Field(256, ge=1)

    def recipe(self) -> TrainRecipe:
        return TrainRecipe(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, momentum=self.momentum)


class ScheduleSettings(_Frozen):
    """PAD's data scheduler; epochs are fractions of the expert's epochs (official: 20/40/60 of 100)."""

    init_ratio: float = Field(0.75, gt=0, le=1)
    add_end: float = Field(0.2, ge=0, le=1)
    remove_first: float = Field(0.4, ge=0, le=1)
    remove_second: float = Field(0.6, ge=0, le=1)
    easy_ratio_first: float = Field(0.1, ge=0, lt=1)
    easy_ratio_second: float = Field(0.2, ge=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> ScheduleSettings:
        if not self.add_end <= self.remove_first <= self.remove_second:
            raise ValueError(
                "experts.schedule.add_end <= remove_first <= remove_second must hold "
                f"(got {self.add_end}, {self.remove_first}, {self.remove_second})"
            )
        return self

    def schedule(self) -> DataSchedule:
        return DataSchedule(**self.model_dump())


class ExpertSettings(_Frozen):
    """Expert trajectories (MTT/DATM: SGD lr 0.01, no momentum, batch 256, DSA, 100 experts x 100 epochs).

    ``fiex`` is PAD's first filter: ``scheduler`` (the paper's data scheduler), ``static`` (prune a fixed
    share of every class once: ``prune_hard`` of the hardest and ``prune_easy`` of the easiest; when both
    are None, 20 % hard at IPC <= 10 and 10 % easy above, the paper's best ablation points) or ``off``.
    """

    num_experts: int = Field(100, ge=1)
    epochs: int = Field(100, ge=1)
    lr: float = Field(0.01, gt=0)
    batch_size: int = Field(256, ge=1)
    augment: bool = True
    fiex: Literal["scheduler", "static", "off"] = "scheduler"
    schedule: ScheduleSettings = ScheduleSettings()
    prune_hard: float | None = Field(None, ge=0, lt=1)
    prune_easy: float | None = Field(None, ge=0, lt=1)

    @model_validator(mode="after")
    def _pruning_leaves_data(self) -> ExpertSettings:
        if (self.prune_hard or 0) + (self.prune_easy or 0) >= 1:
            raise ValueError(
                f"experts.prune_hard ({self.prune_hard}) + experts.prune_easy ({self.prune_easy}) must be below 1"
            )
        return self

    def static_ratios(self, ipc: int) -> tuple[float, float]:
        """(hard, easy) shares removed by static pruning at ``ipc``."""
        if self.prune_hard is None and self.prune_easy is None:
            return (0.2, 0.0) if ipc <= 10 else (0.0, 0.1)
        return self.prune_hard or 0.0, self.prune_easy or 0.0

    def recipe(self) -> TrainRecipe:
        return TrainRecipe(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, augment=self.augment)


class DistillSettings(_Frozen):
    """DATM-style trajectory matching with PAD's parameter selection (official CIFAR-10 IPC10 defaults)."""

    iterations: int = Field(10000, ge=0)
    syn_steps: int = Field(80, ge=1, description="N: unrolled student steps per iteration")
    expert_epochs: int = Field(2, ge=1, description="M: expert epochs the student must cover")
    min_start_epoch: int = Field(0, ge=0, description="T-")
    current_max_start_epoch: int = Field(10, ge=1, description="T: initial upper bound of the start epoch")
    max_start_epoch: int = Field(20, ge=1, description="T+: final upper bound of the start epoch")
    expansion_end: int | None = Field(
        1000, ge=1, description="iterations over which T grows to T+ (sequential generation); None: fixed [T-, T+)"
    )
    lr_img: float = Field(100.0, gt=0)
    lr_lr: float = Field(1e-5, ge=0)
    lr_y: float = Field(2.0, ge=0)
    lr_init: float = Field(0.01, gt=0, description="initial learnable student step size alpha_syn")
    image_momentum: float = Field(0.5, ge=0, lt=1)
    lr_momentum: float = Field(0.5, ge=0, lt=1)
    label_momentum: float = Field(0.9, ge=0, lt=1)
    batch_syn: int | None = Field(None, ge=1, description="synthetic minibatch; None: the whole set")
    threshold: float = Field(1.0, gt=0, description="optimisers step only when the matching loss <= threshold")
    selection_mode: Literal["none", "depth", "layer", "error"] = "depth"
    selection_ratio: float = Field(0.5, ge=0, lt=1, description="alpha: fraction of parameters dropped")
    pix_init: Literal["correct", "real", "herding", "noise"] = Field(
        "correct", description="initial images: correct (real images an expert classifies correctly, DATM/PAD), "
        "real (random real), herding (herding on the first expert's embeddings, per class), noise")
    soft_labels: bool = True
    learn_labels: bool = True
    learn_lr: bool = True
    unroll: Literal["auto", "full", "recompute"] = Field(
        "auto", description="full: keep every student step's graph (fastest, memory grows with syn_steps x "
        "batch_syn); recompute: rebuild one step at a time (bounded memory, ~1.25-1.45x the time); auto: full "
        "when its measured footprint fits memory_budget_gib, else recompute")
    memory_budget_gib: float | None = Field(
        None, gt=0, description="memory the unroll may plan to use; None: 85 % of the GPU's free memory, or half "
        "of the available RAM on a CPU")
    augment: bool = True

    @model_validator(mode="after")
    def _windows(self) -> DistillSettings:
        if self.min_start_epoch >= self.max_start_epoch:
            raise ValueError(
                f"distill.min_start_epoch ({self.min_start_epoch}) must be below distill.max_start_epoch "
                f"({self.max_start_epoch})"
            )
        if self.expansion_end is not None and not (
            self.min_start_epoch < self.current_max_start_epoch <= self.max_start_epoch
        ):
            raise ValueError(
                "with sequential generation, distill.min_start_epoch < distill.current_max_start_epoch <= "
                f"distill.max_start_epoch must hold (got {self.min_start_epoch}, {self.current_max_start_epoch}, "
                f"{self.max_start_epoch}); lower current_max_start_epoch or set expansion_end to null"
            )
        return self


class EvalSettings(_Frozen):
    """Evaluation: fresh networks trained on the condensed set (SGD momentum 0.9, wd 5e-4, lr x0.1 at half)."""

    epochs: int = Field(1000, ge=1)
    seeds: int = Field(5, ge=1)
    batch_size: int = Field(128, ge=1)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    augment: bool = True
    random_lr: float = Field(0.01, gt=0, description="lr for the random-subset baseline (hard labels)")
    full_epochs: int = Field(30, ge=0, description="epochs of the full-data reference; 0 skips it")
    full_lr: float = Field(0.01, gt=0)
    random_baseline: bool = True
    architectures: tuple[str, ...] = Field((), description="extra networks for cross-architecture evaluation")

    def recipe(self, lr: float, *, decay: bool = True) -> TrainRecipe:
        return TrainRecipe(
            epochs=self.epochs,
            lr=lr,
            batch_size=self.batch_size,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            decay_at_half=decay,
            augment=self.augment,
        )


class ComputeSettings(_Frozen):
    """How the GPU computes (each is measured on and off by ``python -m benchmarks.gpu_check``).

    ``tf32``: TensorFloat-32 for matmuls and convolutions on Ampere or newer (None keeps PyTorch's defaults:
    on for cuDNN convolutions, off for matmuls). ``bf16_training``: bfloat16 autocast for scoring agents,
    experts and evaluation networks (never for the distillation itself, whose matching loss is a small
    difference of large parameter vectors). ``experts_at_once``: experts trained together as one vectorised
    network (each still draws its own initialisation, shuffles and augmentations, so its trajectory is the one
    it gets alone, up to float rounding); for a GPU that one small network leaves idle. On this project's
    CPU it is slower (2 cores, ConvNet-D3 at 28x28: 0.55x-0.58x the images per second of one at a time,
    benchmarks/results/experts_at_once.cpu.json), hence 1 by default. ``spill_trajectories_gib``: see the field
    (no effect on results).
    """

    tf32: bool | None = None
    bf16_training: bool = False
    experts_at_once: int = Field(1, ge=1, le=64, description="experts trained together in one vectorised step "
                                 "(on Ray, one task per group)")
    spill_trajectories_gib: float | None = Field(
        1.0, ge=0, description="expert trajectories larger than this (GiB, all experts together) go to a "
        "temporary local trajectory store instead of memory when no trajectory_store is given; 0 always, None never")


PROBE_CANDIDATES = ("preset", "datm", "error_selection", "depth_half", "hard_labels", "real_init", "mtt_settings",
                    "lr_img_half", "lr_img_double")
SUBSET_SELECTORS = ("herding", "kcenter", "random")


class AutoSettings(_Frozen):
    """Settings chosen by measurement on a validation split carved from the training data (never the holdout).

    ``validation_fraction`` of every class is set aside (stratified, seeded; 0 turns everything here off).
    ``probes``: each distinct candidate in ``candidates`` (one that sets what an earlier one set is not run
    again) distils for ``fraction`` of ``distill.iterations`` and is scored by one network trained on it and
    tested on the validation split; the best continues as the run's settings. ``subset_check``: the final set
    is compared on the validation split with real subsets of the same size chosen by each of ``subsets``.
    Candidates: ``preset`` (as configured), ``datm`` (no parameter selection), ``error_selection`` (the
    official code's error-based selection), ``depth_half`` (the depth cut at the paper's IPC-10 ratio, 0.5:
    for a preset whose ratio is 0), ``hard_labels``, ``real_init`` (random real initial images),
    ``mtt_settings`` (MTT's distillation on the same experts; not a default: on digits IPC 10 it moved the mean
    by +0.3 +- 0.4 points, within noise), ``lr_img_half`` / ``lr_img_double``.
    """

    validation_fraction: float = Field(0.0, ge=0, lt=0.5)
    probes: bool = True
    fraction: float = Field(0.1, gt=0, le=1, description="share of distill.iterations each probe runs")
    candidates: tuple[str, ...] = ("preset", "datm", "error_selection", "hard_labels", "real_init")
    subset_check: bool = True
    subsets: tuple[str, ...] = SUBSET_SELECTORS

    @model_validator(mode="after")
    def _known(self) -> AutoSettings:
        unknown = [c for c in self.candidates if c not in PROBE_CANDIDATES]
        if unknown:
            raise ValueError(f"auto.candidates {unknown} are unknown; choose from {', '.join(PROBE_CANDIDATES)}")
        strange = [s for s in self.subsets if s not in SUBSET_SELECTORS]
        if strange:
            raise ValueError(f"auto.subsets {strange} are unknown; choose from {', '.join(SUBSET_SELECTORS)}")
        return self


class PadConfig(_Frozen):
    """Everything one PAD run needs besides the data."""

    ipc: int = Field(10, ge=1, description="images per class of the condensed set")
    network: NetworkSettings = NetworkSettings()
    scoring: ScoringSettings = ScoringSettings()
    experts: ExpertSettings = ExpertSettings()
    distill: DistillSettings = DistillSettings()
    evaluation: EvalSettings = EvalSettings()
    compute: ComputeSettings = ComputeSettings()
    auto: AutoSettings = AutoSettings()
    zca: bool = False
    seed: int = 0
    device: str = "auto"
    preset: str | None = None

    @model_validator(mode="after")
    def _trajectory_long_enough(self) -> PadConfig:
        needed = self.distill.max_start_epoch + self.distill.expert_epochs
        if needed > self.experts.epochs:
            raise ValueError(
                f"distill.max_start_epoch + distill.expert_epochs = {needed} exceeds experts.epochs "
                f"({self.experts.epochs}); train longer experts or lower max_start_epoch"
            )
        return self


def validate_config(data: dict[str, object]) -> PadConfig:
    """Build a :class:`PadConfig` from a plain mapping, raising :class:`ConfigError` naming the field."""
    try:
        return PadConfig.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, "invalid settings") from exc


def config_error(exc: ValidationError, what: str) -> ConfigError:
    """A pydantic validation error as a :class:`ConfigError` naming the first bad field (and listing all)."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
    return ConfigError(f"{what}: {problems}", field=field, value=first.get("input"))
