"""Settings chosen on the validation split, and the check against real-image subsets.

Both use only the training data: the validation split is carved from it (:func:`pad_sdk.data.with_validation`)
and the holdout that the reports show is never looked at, so a reported accuracy is never the one a choice was
made on.

- :func:`probe_settings`: every distinct candidate (``auto.candidates``; one that sets what an earlier one set is
  not run again) distils for a fraction of the iterations from the same experts; one network trained on each
  probe's set is tested on the validation split; the best candidate's settings run the whole distillation when
  it beats the first (``preset``) by more than the validation split's noise (:func:`noise_margin`), else the
  first's do.
- :func:`subset_check`: the final set against real subsets of the same size (herding and k-center on the
  embeddings of the first expert's final network, and random), one network each on the validation split.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog
import torch

from pad_sdk.config import DistillSettings as DistillConfig
from pad_sdk.config import PadConfig
from pad_sdk.core.coresets import embed, per_class
from pad_sdk.core.distill import DistillSettings, ExpertSource
from pad_sdk.core.evaluate import random_subset
from pad_sdk.core.matching import ParameterSelection
from pad_sdk.core.params import load_flat_params
from pad_sdk.core.seeding import derive_seed, make_generator, seeded
from pad_sdk.core.synthetic import SyntheticSet, hard_label_set
from pad_sdk.pipeline import EvalJob, Stages
from pad_sdk.presets import MTT_START

log = structlog.get_logger(__name__)

# What each candidate changes in the distillation settings.
CANDIDATES: dict[str, Callable[[DistillSettings], dict[str, Any]]] = {
    "preset": lambda d: {},
    "datm": lambda d: {"selection_mode": "none"},
    "error_selection": lambda d: {"selection_mode": "error"},
    "depth_half": lambda d: {"selection_mode": "depth", "selection_ratio": 0.5},
    "hard_labels": lambda d: {"soft_labels": False},
    "real_init": lambda d: {"pix_init": "real"},
    "lr_img_half": lambda d: {"lr_img": d.lr_img / 2},
    "lr_img_double": lambda d: {"lr_img": d.lr_img * 2},
    # MTT's distillation on the same experts: hard labels, random real images, a fixed window, no threshold
    "mtt_settings": lambda d: {**MTT_START, "selection_mode": "none"},
}


@dataclass(frozen=True)
class Probe:
    name: str
    changes: dict[str, Any]  # distill settings the candidate changes
    validation_accuracy: float
    seconds: float


@dataclass(frozen=True)
class ProbeReport:
    """The probes in the order run, the chosen candidate and the seconds they cost together."""

    probes: tuple[Probe, ...]
    chosen: str
    iterations: int  # distillation iterations of each probe
    seconds: float
    margin: float = 0.0  # what another candidate had to gain over the first (noise_margin)
    validation_images: int = 0
    # candidates not run because they set what an earlier one set (at IPC 50 cpu-small's preset already
    # uses hard labels): candidate -> the earlier candidate
    same_as: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "iterations": self.iterations, "seconds": self.seconds,
                "margin": self.margin, "validation_images": self.validation_images,
                "probes": [asdict(p) for p in self.probes], "same_as": dict(self.same_as)}


def noise_margin(accuracy: float, images: int) -> float:
    """One binomial standard error of an accuracy measured on ``images`` validation images: a candidate must beat
    the first (the preset) by more than this to replace it. On 300 images at 84 % it is 2.1 points; without it,
    the random real start won the Fashion-MNIST IPC-50 probes against the herding start by one image of 300
    (84.7 % against 84.3 %), while on 5,000 other training images it is 1.0 point below it
    (results/fmnist_ipc50_diagnosis.cpu-seed0.json)."""
    return math.sqrt(max(accuracy * (1.0 - accuracy), 0.0) / max(images, 1))


def choose(probes: list[Probe], images: int) -> tuple[Probe, float]:
    """The first probe (the preset) unless another beats it by more than ``noise_margin``; then the best (the
    first of equals: candidates are in priority order)."""
    first = probes[0]
    margin = noise_margin(first.validation_accuracy, images)
    best = max(probes, key=lambda p: p.validation_accuracy)
    return (best if best.validation_accuracy - first.validation_accuracy > margin else first), margin


@dataclass(frozen=True)
class SubsetCheck:
    """Validation accuracy of the final set and of real subsets of its size; ``gain`` = set - best subset."""

    condensed: float
    subsets: dict[str, float]
    best_subset: str
    gain: float
    seconds: float

    @property
    def subset_is_better(self) -> bool:
        return self.gain < 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "subset_is_better": self.subset_is_better}


def with_distill(config: PadConfig, changes: dict[str, Any]) -> PadConfig:
    """``config`` with its distillation settings changed (the values come from a validated candidate)."""
    return config.model_copy(update={"distill": config.distill.model_copy(update=changes)})


def _effective(distill: DistillConfig) -> DistillConfig:
    """``distill`` with the parameter selection written one way when it compares every coordinate (with ratio
    0, ``depth``, ``error`` and ``none`` match the same parameters)."""
    if ParameterSelection(distill.selection_mode, distill.selection_ratio).compares_everything:
        return distill.model_copy(update={"selection_mode": "none", "selection_ratio": 0.0})
    return distill


def distinct_candidates(names: tuple[str, ...], distill: DistillConfig) -> tuple[dict[str, dict[str, Any]],
                                                                                dict[str, str]]:
    """The candidates worth a probe, in order, with their changes, and the others: a candidate whose settings
    equal an earlier one's (``hard_labels`` where the preset already has hard labels; ``datm`` and
    ``error_selection`` where the preset's selection ratio is 0, as at IPC 1) would repeat that probe exactly
    (same seed, same experts), so it maps to the earlier one instead of costing a probe."""
    run: dict[str, dict[str, Any]] = {}
    same_as: dict[str, str] = {}
    settings: dict[str, DistillConfig] = {}
    for name in names:
        changes = CANDIDATES[name](distill)
        resolved = _effective(distill.model_copy(update=changes))
        earlier = next((other for other, value in settings.items() if value == resolved), None)
        if earlier is not None:
            same_as[name] = earlier
            continue
        run[name], settings[name] = changes, resolved
    return run, same_as


def planned_candidates(config: PadConfig, has_validation: bool) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """What :func:`probe_settings` will run for ``config`` (the run and its estimate ask the same question): no
    candidates when probes are off, there is no validation split or nothing to distil, else the distinct ones."""
    if not config.auto.probes or not has_validation or config.distill.iterations == 0:
        return {}, {}
    return distinct_candidates(config.auto.candidates, config.distill)


def _validation_accuracy(stages: Stages, synthetic: SyntheticSet, seed: int) -> float:
    """One network (the evaluation recipe) trained on ``synthetic`` and tested on the validation split."""
    settings, fixed = stages.config.evaluation, synthetic.detached()
    job = EvalJob("probe", settings.recipe(float(fixed.lr)), 1, seed, synthetic=fixed, on_validation=True)
    accuracy, _correct = stages.run_eval_network(job, 0)
    return accuracy.accuracy


def probe_settings(stages: Stages, experts: ExpertSource, seed_offset: int = 0
                   ) -> tuple[PadConfig, ProbeReport | None]:
    """The configuration to distil with: ``stages.config`` changed by the best candidate (unchanged, and no
    report, when fewer than two candidates are planned: :func:`planned_candidates`)."""
    config, auto = stages.config, stages.config.auto
    validation = stages.data.validation
    candidates, same_as = planned_candidates(config, validation is not None)
    if len(candidates) < 2 or validation is None:
        return config, None
    started = time.perf_counter()
    iterations = max(1, round(auto.fraction * config.distill.iterations))
    seed = derive_seed(config.seed, 81, config.ipc, seed_offset)
    probes: list[Probe] = []
    for index, (name, changes) in enumerate(candidates.items()):
        began = time.perf_counter()
        trial = Stages(with_distill(config, {**changes, "iterations": iterations}), stages.data,
                       device=stages.device)
        distiller = trial.make_distiller(experts, config.ipc, seed_offset)
        with trial.compute():
            distiller.run(iterations)
        accuracy = _validation_accuracy(trial, distiller.synthetic, seed)
        probes.append(Probe(name, changes, accuracy, time.perf_counter() - began))
        stages.on_event("probes", index + 1, len(candidates), candidate=name, accuracy=accuracy)
    images = len(validation)
    best, margin = choose(probes, images)
    report = ProbeReport(tuple(probes), best.name, iterations, time.perf_counter() - started, margin, images,
                         same_as)
    stages.timings["probes"] = stages.timings.get("probes", 0.0) + report.seconds
    log.info("probes.done", chosen=best.name, accuracies={p.name: round(p.validation_accuracy, 4) for p in probes},
             margin=round(margin, 4), same_as=same_as, seconds=round(report.seconds, 1))
    return with_distill(config, best.changes), report


def subset_picks(stages: Stages, selector: str, experts: ExpertSource, ipc: int) -> torch.Tensor:
    """Training rows of a real subset with ``ipc`` images per class chosen by ``selector``."""
    train = stages.data.train
    if selector == "random":
        generator = make_generator(derive_seed(stages.config.seed, 83, ipc))
        return random_subset(train.labels, train.num_classes, ipc, generator)
    agent = seeded(0, stages.network_factory()).to(stages.device)
    load_flat_params(agent, experts[0][-1])
    return per_class(embed(agent, train.images), train.labels, train.num_classes, ipc, selector)


def subset_as_set(stages: Stages, rows: torch.Tensor) -> SyntheticSet:
    """Real training rows as a condensed set: hard labels and the random baseline's evaluation step size."""
    train = stages.data.train
    return hard_label_set(train.images[rows], train.labels[rows], train.num_classes,
                          stages.config.evaluation.random_lr)


def subset_check(stages: Stages, synthetic: SyntheticSet, experts: ExpertSource | None
                 ) -> tuple[SubsetCheck, dict[str, torch.Tensor]] | None:
    """The final set against real subsets of its size on the validation split (None when it cannot run)."""
    auto = stages.config.auto
    if not auto.subset_check or stages.data.validation is None:
        return None
    started = time.perf_counter()
    ipc = int(torch.bincount(synthetic.classes.cpu()).max())
    seed = derive_seed(stages.config.seed, 82, ipc)
    condensed = _validation_accuracy(stages, synthetic, seed)
    picks: dict[str, torch.Tensor] = {}
    scores: dict[str, float] = {}
    for selector in auto.subsets:
        if selector != "random" and (experts is None or len(experts) == 0):
            continue  # herding and k-center embed with an expert's network
        picks[selector] = subset_picks(stages, selector, experts, ipc)  # type: ignore[arg-type]
        scores[selector] = _validation_accuracy(stages, subset_as_set(stages, picks[selector]), seed)
    if not scores:
        return None
    best = max(scores, key=lambda name: scores[name])
    check = SubsetCheck(condensed, scores, best, condensed - scores[best], time.perf_counter() - started)
    stages.timings["subset_check"] = stages.timings.get("subset_check", 0.0) + check.seconds
    log.info("subset_check.done", condensed=round(condensed, 4), best_subset=best, gain=round(check.gain, 4))
    return check, picks

