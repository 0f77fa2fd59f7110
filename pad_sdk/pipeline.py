"""The stages of one PAD run, as functions a runtime calls: prepare, score, experts, distil, evaluate.

The in-process runtime calls them in order; the Ray runtime calls the same functions inside workers.
Progress leaves through an ``on_event(stage, done, total, **facts)`` callback, never through prints.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog
import torch
from torch import nn

from pad_sdk.config import ComputeSettings, PadConfig
from pad_sdk.core.augment import DiffAugment
from pad_sdk.core.distill import Distiller, ExpertSource, IterationRecord
from pad_sdk.core.evaluate import EvalResult, random_subset, summarise, train_and_test
from pad_sdk.core.experts import ExpertPlan, VectorisedExperts, train_expert, train_expert_group
from pad_sdk.core.images import Images
from pad_sdk.core.networks import create_network
from pad_sdk.core.params import ParamSpec
from pad_sdk.core.scheduler import static_prune
from pad_sdk.core.scoring import ScoringRecipe, class_orders, el2n_run, el2n_scores
from pad_sdk.core.seeding import derive_seed, make_generator, seeded
from pad_sdk.core.synthetic import SyntheticSet, initialise_synthetic
from pad_sdk.core.training import Accuracy, TrainRecipe
from pad_sdk.data import Normalisation, PreparedData, to_float_images, to_labels  # noqa: F401  (re-exported)
from pad_sdk.errors import BudgetExhausted, ConfigError
from pad_sdk.trajectories import StoreExperts, TrajectoryStore

log = structlog.get_logger(__name__)
EventSink = Callable[..., None]


def _no_events(stage: str, done: int, total: int, **facts: Any) -> None:
    del stage, done, total, facts


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU; the only place a device is chosen."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@contextmanager
def compute_mode(settings: ComputeSettings, device: torch.device, *, training: bool = False) -> Iterator[None]:
    """TF32 and (for plain network training and evaluation) bfloat16 autocast on CUDA, as ``settings`` say;
    PyTorch's global flags are restored on exit. Elsewhere a no-op."""
    if device.type != "cuda":
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if settings.tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = settings.tf32
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=training and settings.bf16_training):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def scoring_key(config: PadConfig) -> str:
    """What EL2N orders depend on: one key for every cache of them (sweep, comparisons, runtimes)."""
    return f"scoring:{config.zca}:{config.seed}:{config.network.model_dump_json()}:{config.scoring.model_dump_json()}"


def experts_key(config: PadConfig) -> str:
    """What expert trajectories depend on (with the orders when the experts use them)."""
    static = config.experts.static_ratios(config.ipc) if config.experts.fiex == "static" else None
    scoring = scoring_key(config) if config.experts.fiex != "off" else "-"
    return (f"experts:{config.zca}:{config.seed}:{config.network.model_dump_json()}:"
            f"{config.experts.model_dump_json()}:{static}:{scoring}")


class Stages:
    """Stage functions bound to one configuration, dataset and device."""

    def __init__(self, config: PadConfig, data: PreparedData, *, on_event: EventSink | None = None,
                 device: torch.device | None = None) -> None:
        self.config = config
        self.data = data
        # networks live on ``device``; the data stays where it is and moves batch by batch
        self.device = device if device is not None else resolve_device(config.device)
        self.on_event = on_event or _no_events
        self.augment = DiffAugment()
        self.timings: dict[str, float] = {}
        self.decisions: dict[str, Any] = {}  # settings chosen during the run (unroll mode), with the reasons
        self.stopped: BudgetExhausted | None = None  # set when the budget stopped the distillation early

    # -- networks --------------------------------------------------------------------------------
    def network_factory(self, name: str | None = None) -> Callable[[], nn.Module]:
        settings = self.config.network
        channels, height, width = self.data.train.image_shape
        kwargs = settings.kwargs((height, width)) if name in (None, settings.name) else {}

        def build() -> nn.Module:
            return create_network(
                name or settings.name, in_channels=channels, num_classes=self.data.train.num_classes,
                image_size=(height, width), **kwargs,
            )

        return build

    def compute(self, *, training: bool = False) -> Any:
        """The run's compute mode (TF32, bf16 training) on its device: see :func:`compute_mode`."""
        return compute_mode(self.config.compute, self.device, training=training)

    def _timed(self, stage: str, started: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - started

    # -- stage 2: difficulty -----------------------------------------------------------------------
    def scoring_recipe(self) -> ScoringRecipe:
        return ScoringRecipe(self.config.scoring.runs, self.config.scoring.recipe())

    def score(self) -> torch.Tensor:
        """EL2N score (N,) of every training example."""
        started = time.perf_counter()
        total = self.config.scoring.runs
        self.on_event("scoring", 0, total)
        with self.compute(training=True):
            scores = el2n_scores(
                self.data.train, self.network_factory(), self.scoring_recipe(), seed=derive_seed(self.config.seed, 11),
                augment=self.augment, device=self.device,
                on_run_end=lambda run: self.on_event("scoring", run + 1, total),
                on_epoch=lambda run, epoch: self.on_event("scoring", run, total, epoch=epoch + 1,
                                                          epochs=self.config.scoring.epochs),
            )
        self._timed("scoring", started)
        return scores

    def score_run(self, run: int, on_epoch: Callable[[int], None] | None = None) -> torch.Tensor:
        """One agent's EL2N scores (N,) float64: :meth:`score` is ``mean_of_runs`` of runs 0..runs-1;
        ``on_epoch(e)`` after each of its epochs."""
        with self.compute(training=True):
            return el2n_run(self.data.train, self.network_factory(), self.scoring_recipe(), run,
                            seed=derive_seed(self.config.seed, 11), augment=self.augment, device=self.device,
                            on_epoch=on_epoch)

    def orders(self, scores: torch.Tensor) -> list[torch.Tensor]:
        return class_orders(scores, self.data.train.labels, self.data.train.num_classes)

    # -- stage 3: experts ---------------------------------------------------------------------------
    def expert_plan(self, orders: Sequence[torch.Tensor] | None) -> ExpertPlan:
        experts = self.config.experts
        if experts.fiex == "scheduler":
            if orders is None:
                raise ConfigError("experts.fiex=scheduler needs difficulty orders; run the scoring stage first",
                                  field="experts.fiex", value=experts.fiex)
            return ExpertPlan(schedule=experts.schedule.schedule(), orders=tuple(orders))
        if experts.fiex == "static":
            if orders is None:
                raise ConfigError("experts.fiex=static needs difficulty orders; run the scoring stage first",
                                  field="experts.fiex", value=experts.fiex)
            hard, easy = experts.static_ratios(self.config.ipc)
            kept = static_prune(list(orders), hard=hard, easy=easy)
            return ExpertPlan(subset=torch.cat(kept))
        return ExpertPlan()

    def pruning_kept_share(self, orders: Sequence[torch.Tensor] | None) -> dict[str, float] | None:
        """Per class, the smallest share of its examples that the experts trained on in the epochs the
        matching windows cover (so a policy can check that pruning does not erase a class)."""
        if orders is None:
            return None
        plan = self.expert_plan(orders)
        epochs = self.config.experts.epochs
        pick = plan.epoch_indices(epochs)
        if pick is None:
            return None
        d = self.config.distill
        window = range(d.min_start_epoch, min(epochs, d.max_start_epoch + d.expert_epochs))
        labels = self.data.train.labels
        totals = torch.bincount(labels, minlength=self.data.train.num_classes).float()
        shares = torch.stack([
            torch.bincount(labels[pick(e)], minlength=self.data.train.num_classes).float() / totals for e in window
        ]).min(dim=0).values
        return {name: float(v) for name, v in zip(self.data.class_names, shares, strict=True)}

    def expert_header(self) -> dict[str, Any]:
        network = self.network_factory()()
        return {
            "network": {"name": self.config.network.name,
                        **self.config.network.kwargs(self.data.train.image_shape[1:]),
                        "image_shape": list(self.data.train.image_shape),
                        "num_classes": self.data.train.num_classes},
            "param_names": [n for n, _ in network.named_parameters()],
            "param_shapes": [list(p.shape) for p in network.parameters()],
            "epochs": self.config.experts.epochs,
            "fingerprint": f"seed={self.config.seed};n={len(self.data.train)}",
        }

    def trajectory_bytes(self) -> int:
        """Bytes of all expert trajectories in float32: experts x (epochs + 1) x parameters."""
        params = sum(p.numel() for p in self.network_factory()().parameters())
        experts = self.config.experts
        return int(experts.num_experts * (experts.epochs + 1) * params * 4)

    def train_expert(self, index: int, plan: ExpertPlan, on_epoch: Callable[[int], None] | None = None
                     ) -> torch.Tensor:
        with self.compute(training=True):
            return train_expert(
                self.data.train, self.network_factory(), self.config.experts.recipe(), plan,
                seed=self.expert_seed(index), augment=self.augment, device=self.device,
                on_epoch=on_epoch,
            )

    def train_expert_group(self, indices: Sequence[int], plan: ExpertPlan,
                           on_epoch: Callable[[int], None] | None = None) -> list[torch.Tensor]:
        """Experts ``indices`` trained together (``compute.experts_at_once``; one index is :meth:`train_expert`)."""
        with self.compute(training=True):
            return train_expert_group(
                self.data.train, self.network_factory(), self.config.experts.recipe(), plan,
                seeds=[self.expert_seed(index) for index in indices], augment=self.augment,
                device=self.device, on_epoch=on_epoch,
            )

    def expert_seed(self, index: int) -> int:
        """Expert ``index``'s seed: its initialisation, shuffles and augmentations, and its stored record."""
        return derive_seed(self.config.seed, 21, index)

    def train_experts(self, plan: ExpertPlan, store: TrajectoryStore | None = None) -> ExpertSource:
        """Train the experts that ``store`` lacks (all of them without a store); return them all."""
        started = time.perf_counter()
        total = self.config.experts.num_experts
        done = set(store.completed()) if store is not None else set()
        trajectories: dict[int, torch.Tensor] = {}
        finished = len(done & set(range(total)))
        self.on_event("experts", finished, total)
        epochs, at_once = self.config.experts.epochs, self.experts_at_once()
        missing = [index for index in range(total) if index not in done]
        for first in range(0, len(missing), at_once):
            group = missing[first:first + at_once]
            on_epoch = functools.partial(self._expert_epoch, finished, total, epochs, len(group))
            for index, trajectory in zip(group, self.train_expert_group(group, plan, on_epoch), strict=True):
                if store is not None:
                    store.save(index, trajectory, seed=self.expert_seed(index))
                else:
                    trajectories[index] = trajectory
                finished += 1
                self.on_event("experts", finished, total)
        self._timed("experts", started)
        if store is not None:
            return StoreExperts(store, total)
        return [trajectories[i] for i in range(total)]

    def _expert_epoch(self, finished: int, total: int, epochs: int, together: int, epoch: int) -> None:
        self.on_event("experts", finished, total, epoch=epoch + 1, epochs=epochs,
                      **({"partial": together * (epoch + 1) / epochs} if together > 1 else {}))

    def experts_at_once(self) -> int:
        """How many experts train together: ``compute.experts_at_once``, or 1 for a network that cannot be
        stacked (buffers, dropout), which the log says once."""
        wanted = self.config.compute.experts_at_once
        if wanted > 1 and not VectorisedExperts.supports(self.network_factory()()):
            log.warning("experts.one_at_a_time", reason="the network has buffers or dropout", experts_at_once=wanted)
            return 1
        return wanted

    # -- stage 4: distillation -----------------------------------------------------------------------
    def make_distiller(self, experts: ExpertSource, ipc: int | None = None, seed_offset: int = 0) -> Distiller:
        ipc = ipc or self.config.ipc
        settings = self.config.distill
        generator = make_generator(derive_seed(self.config.seed, 31, ipc, seed_offset))
        network = seeded(0, self.network_factory()).to(self.device)
        spec = ParamSpec.of(network)
        final_params = [experts[i][-1].to(self.device) for i in range(min(len(experts), 10))]
        synthetic = initialise_synthetic(
            self.data.train, ipc, network=network, spec=spec, final_params=final_params, settings=settings,
            generator=generator,
        )
        synthetic = SyntheticSet(
            synthetic.images.to(self.device), synthetic.label_logits.to(self.device), synthetic.lr.to(self.device),
            synthetic.classes,
        )
        return Distiller(synthetic, network, experts, settings, generator, augment=self.augment)

    def distill(self, experts: ExpertSource, ipc: int | None = None) -> tuple[SyntheticSet, list[IterationRecord]]:
        started = time.perf_counter()
        distiller = self.make_distiller(experts, ipc)
        total = self.config.distill.iterations
        self.on_event("distill", 0, total)
        try:
            with self.compute():
                distiller.run(total, lambda r: self.on_event("distill", r.iteration + 1, total, loss=r.loss))
        except BudgetExhausted as exc:  # keep what the iterations so far made: the run returns it as partial
            self.stopped = exc
            log.warning("distill.budget_stop", budget=exc.budget, limit=exc.limit, spent=round(exc.estimate, 2),
                        iterations=distiller.iteration, of=total)
        self.record_unroll(distiller)
        self._timed("distillation", started)
        return distiller.synthetic.detached(), distiller.history

    def record_unroll(self, distiller: Distiller) -> None:
        if distiller.unroll is not None:
            self.decisions["unroll"] = distiller.unroll.to_dict()
            log.info("distill.unroll", mode=distiller.unroll.mode, reason=distiller.unroll.reason)

    # -- stage 5: evaluation ------------------------------------------------------------------------
    # An evaluation is an :class:`EvalJob` (what to train on, how, how many networks); a runtime runs its
    # networks (``run_eval_network``) here or elsewhere and combines them with ``summarise``.
    def condensed_job(self, synthetic: SyntheticSet, architecture: str | None = None) -> EvalJob:
        settings, fixed = self.config.evaluation, synthetic.detached()
        return EvalJob("condensed", settings.recipe(float(fixed.lr)), settings.seeds,
                       derive_seed(self.config.seed, 41), architecture, synthetic=fixed)

    def random_job(self, ipc: int | None = None) -> EvalJob:
        settings = self.config.evaluation
        ipc = ipc or self.config.ipc
        generator = make_generator(derive_seed(self.config.seed, 51, ipc))
        picks = random_subset(self.data.train.labels, self.data.train.num_classes, ipc, generator)
        return EvalJob("random", settings.recipe(settings.random_lr), settings.seeds,
                       derive_seed(self.config.seed, 41), rows=picks)

    def full_job(self) -> EvalJob | None:
        settings = self.config.evaluation
        if settings.full_epochs == 0:
            return None
        recipe = TrainRecipe(
            epochs=settings.full_epochs, lr=settings.full_lr, batch_size=256, momentum=settings.momentum,
            weight_decay=settings.weight_decay, decay_at_half=True, augment=settings.augment,
        )
        return EvalJob("full", recipe, 1, derive_seed(self.config.seed, 61))

    def run_eval_network(self, job: EvalJob, index: int) -> tuple[Accuracy, torch.Tensor]:
        """Network ``index`` of ``job``: trained on its set, tested on the holdout."""
        images: Images
        if job.synthetic is not None:
            images, targets = job.synthetic.images, job.synthetic.label_logits
        elif job.rows is not None:
            images, targets = self.data.train.images[job.rows], self.data.train.labels[job.rows]
        else:
            images, targets = self.data.train.images, self.data.train.labels
        test = self.data.validation if job.on_validation else self.data.test
        if test is None:
            raise ConfigError("this evaluation needs a validation split; set auto.validation_fraction above 0",
                              field="auto.validation_fraction")
        def on_epoch(epoch: int) -> None:  # settings-choosing networks (on validation) report per network
            self.on_event("evaluate", index, job.seeds, what=job.what, epoch=epoch + 1, epochs=job.recipe.epochs)

        with self.compute(training=True):
            return train_and_test(images, targets, test, self.network_factory(job.architecture),
                                  job.recipe, seed=job.seed, index=index, augment=self.augment, device=self.device,
                                  on_epoch=None if job.on_validation else on_epoch)

    def evaluate(self, job: EvalJob) -> EvalResult:
        """All networks of ``job`` in this process, one after the other."""
        started = time.perf_counter()
        self.on_event("evaluate", 0, job.seeds, what=job.what)
        runs = []
        for k in range(job.seeds):
            runs.append(self.run_eval_network(job, k))
            self.on_event("evaluate", k + 1, job.seeds, what=job.what)
        self._timed(EVAL_TIMING[job.what], started)
        return summarise(runs, self.data.test.num_classes, time.perf_counter() - started)

    def evaluate_synthetic(self, synthetic: SyntheticSet, architecture: str | None = None) -> EvalResult:
        return self.evaluate(self.condensed_job(synthetic, architecture))

    def evaluate_random(self, ipc: int | None = None) -> EvalResult:
        return self.evaluate(self.random_job(ipc))

    def evaluate_full(self) -> EvalResult | None:
        job = self.full_job()
        return None if job is None else self.evaluate(job)


EVAL_TIMING = {"condensed": "evaluation", "random": "evaluation", "full": "full_reference"}


@dataclass(frozen=True)
class EvalJob:
    """One evaluation: ``seeds`` networks trained with ``recipe`` on the condensed set (``synthetic``), on
    training rows ``rows`` (a real subset), or on the whole training set (neither), tested on the holdout."""

    what: str  # condensed | random | full
    recipe: TrainRecipe
    seeds: int
    seed: int
    architecture: str | None = None
    synthetic: SyntheticSet | None = None
    rows: torch.Tensor | None = None
    on_validation: bool = False  # test on the validation split (choosing settings) instead of the holdout
