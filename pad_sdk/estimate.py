"""What a run will cost before it spends anything: time, peak memory, bytes and money, per stage.

The estimate is measured, then multiplied. A short calibration times the real network on the real data
shape for each kind of work a run does (a training step at each batch size the stages use, a forward pass
for scoring and testing, one distillation iteration with the real unroll), then the counts that the settings
imply (runs, epochs, experts, iterations, images, the probes and subset checks the ``auto`` settings add)
multiply those times.

Peak host memory is measured the same way. After the calibration has run every kind of work once, the process's
resident memory holds the interpreter, torch, the prepared data and what the allocator keeps of that work (its
arenas, thread pools, convolution workspaces): that is the floor of every stage. A sampler thread also records
how far the resident memory rises above that floor while each kind of work runs (memory taken and handed back
every call: the activations of a batch, the unroll's autograd graph). A stage's peak is the floor, plus the
expert trajectories it holds, plus the largest such rise among its kinds of work; the run's peak is the largest
stage's, and never below the process's own peak so far (``ru_maxrss``, which the calibration may have raised).
What it cannot know: memory taken by other code in the process later, or an allocator that fragments over hours.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import resource
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from pad_sdk.config import PadConfig
from pad_sdk.core.params import flatten_params
from pad_sdk.core.seeding import make_generator, seeded
from pad_sdk.core.training import LabelledImages, TrainRecipe, predict_logits, train_network
from pad_sdk.data import PreparedData
from pad_sdk.pipeline import Stages, spills_trajectories
from pad_sdk.probes import planned_candidates
from pad_sdk.reports.cost import Prices
from pad_sdk.runtime import StartUpCosts

# Stage names match the keys of ``DistillResult.timings``, so that a report can set estimate against actual.
# stages a plan shows as measured, not estimated: they ran before the plan was made (or to make it)
MEASURED_STAGES = ("load", "calibration")
STAGE_ORDER = ("load", "calibration", "scoring", "experts", "probes", "distillation", "subset_check", "evaluation",
               "full_reference")
# Images per inference chunk: ``predict_logits``'s default, the chunk every stage's inference passes.
FORWARD_BATCH: int = inspect.signature(predict_logits).parameters["batch_size"].default
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


def process_rss_bytes() -> int:
    """Resident memory of this process now (``/proc``), else its peak so far (``getrusage``)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def load_notes(load: float | None, cpus: int | None, cpu_share: float | None) -> tuple[str, ...]:
    """What the plan says when its timings were taken on a busy machine. The calibration takes the fastest of a
    few timings, so short bursts of other work do not count; a load that lasts the whole calibration does, and
    the estimate then assumes it lasts the whole run. Whether it will is what no calibration can know."""
    if load is None or cpus is None or load <= cpus:
        return ()
    share = "" if cpu_share is None else f", got {cpu_share:.0%} of its CPUs"
    return (f"calibrated under load {load:.1f} on {cpus} CPUs{share}: the times assume that load lasts "
            "(a quieter machine runs faster; plan again when it is quiet)",)


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (``getrusage``; kilobytes on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class RssSampler:
    """The highest resident memory of this process while a block runs, sampled every ``interval`` seconds by a
    thread (torch releases the GIL in its kernels, so the thread sees memory a kernel holds). ``rise`` is that
    peak above the resident memory when the block began, never negative; ``ru_maxrss`` also counts when the
    block raised the process's high-water mark (a peak shorter than the interval)."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.start = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, process_rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.start = process_rss_bytes()
        self.peak = self.start
        self._high_water = peak_rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pad-rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, process_rss_bytes())
        high_water = peak_rss_bytes()
        if high_water > self._high_water:  # the block set a new high-water mark: that is its peak
            self.peak = max(self.peak, high_water)

    @property
    def rise(self) -> int:
        return max(0, self.peak - self.start)


# Seconds measured in this process, by kind of work and what it depends on (see ``Calibration._timed``).
_MEASURED: dict[tuple[Any, ...], float] = {}
_MEASURED_RISE: dict[tuple[Any, ...], int] = {}  # bytes the work takes and hands back per call, by the same key
_MEASURED_BYTES: dict[str, int] = {}  # unroll peak bytes, by the distillation's key


# -- calibration ------------------------------------------------------------------------------------------
def calibration_sample(data: PreparedData, per_class: int, generator: torch.Generator) -> PreparedData:
    """A small stratified sample of the training data to time work on: the real rows, or (when the images live
    on a cluster and only their shape is here) random images of the same shape."""
    train = data.train
    picks = torch.cat([idx[:per_class] for idx in train.class_indices()])
    if train.images.is_meta:
        images = torch.randn((picks.numel(), *train.image_shape), generator=generator)
    else:
        images = train.images[picks]
    return dataclasses.replace(data, train=LabelledImages(images, train.labels[picks], train.num_classes),
                               validation=None)


class Calibration:
    """Measured seconds of the run's kinds of work on its network, data shape and device (cached per kind)."""

    def __init__(self, data: PreparedData, device: torch.device, *, max_ipc: int, repeats: int = 3,
                 time_cap: float = 2.0) -> None:
        per_class = max(max_ipc, -(-512 // data.train.num_classes))
        self.sample = calibration_sample(data, per_class, make_generator(0))
        # the largest inference chunk a stage passes at once (predict_logits's batches)
        sets = (data.train, data.test, data.validation)
        self.forward_batch = min(FORWARD_BATCH, max(len(images) for images in sets if images is not None))
        self.device = device
        self.repeats = repeats
        self.time_cap = time_cap
        self.seconds: dict[str, float] = {}
        self.rise_bytes: dict[str, int] = {}  # per kind of work: resident memory it takes and gives back per call

    def _timed(self, key: str, cfg: PadConfig, work: Callable[[], None], repeats: int | None = None) -> float:
        """Seconds of ``work`` (the fastest of a few timings after a warm-up run); measured once per process for
        the same network, data shape and device (a sweep, or a pipeline's repeated calls, calibrate once)."""
        shape = self.sample.train.image_shape
        full_key = (key, cfg.network.model_dump_json(), cfg.compute.model_dump_json(), shape,
                    self.sample.train.num_classes, str(self.device))
        if full_key not in _MEASURED:
            work()  # warm-up: first-call allocations and kernel selection (what the allocator keeps of them
            # stays in the process: the estimate's floor, read after the calibration)
            times: list[float] = []
            rise = 0
            # up to ``repeats`` timings, fewer when they already took ``time_cap`` seconds (slow kinds of work),
            # more (up to 3x) while each is still much faster than the best before it: a fresh process runs its
            # first seconds of work several times slower (measured: 0.44 s against 0.014 s for one step)
            while len(times) < 3 * (repeats or self.repeats) and sum(times) < 3 * self.time_cap:
                with RssSampler() as sampled:
                    began = time.perf_counter()
                    work()
                    times.append(time.perf_counter() - began)
                rise = max(rise, sampled.rise)
                settled = len(times) >= 2 and times[-1] > 0.8 * min(times[:-1])
                if len(times) >= (repeats or self.repeats) and (settled or sum(times) >= self.time_cap):
                    break
            # the least-disturbed timing: on a shared machine the others include waits for other processes
            _MEASURED[full_key] = min(times)
            _MEASURED_RISE[full_key] = rise
        self.seconds[key] = _MEASURED[full_key]
        self.rise_bytes[key] = _MEASURED_RISE[full_key]
        return self.seconds[key]

    def _stages(self, cfg: PadConfig) -> Stages:
        return Stages(cfg, self.sample, device=self.device)

    def train_step(self, cfg: PadConfig, batch: int, augment: bool, architecture: str | None = None) -> float:
        """Seconds of one SGD step at ``batch`` images (the real training loop, DSA when ``augment``)."""
        stages = self._stages(cfg)
        train = self.sample.train
        batch = max(1, min(batch, len(train)))
        network = seeded(0, stages.network_factory(architecture)).to(self.device)
        rows = torch.randperm(len(train), generator=make_generator(1))[:batch]
        recipe = TrainRecipe(epochs=1, lr=0.01, batch_size=batch, momentum=0.9, augment=augment)
        generator = make_generator(0)

        def step() -> None:
            with stages.compute(training=True):
                train_network(network, train.images[rows], train.labels[rows], recipe, generator=generator,
                              augment=stages.augment)

        return self._timed(self.step_key(cfg, batch, augment, architecture), cfg, step)

    def step_key(self, cfg: PadConfig, batch: int, augment: bool, architecture: str | None = None) -> str:
        batch = max(1, min(batch, len(self.sample.train)))
        return f"train_step[b={batch},aug={int(augment)},{architecture or cfg.network.name}]"

    def forward_image(self, cfg: PadConfig) -> float:
        """Seconds per image of an inference pass (scoring the data, testing on the holdout), timed on one chunk
        of the size the stages pass at once (the sample repeated up to it): its activations are the stage's
        memory rise."""
        train = self.sample.train
        network = seeded(0, self._stages(cfg).network_factory()).to(self.device)
        images = train.images[torch.arange(self.forward_batch) % len(train)]

        def forward() -> None:
            predict_logits(network, images, batch_size=FORWARD_BATCH)

        return self._timed(self.forward_key, cfg, forward) / self.forward_batch

    @property
    def forward_key(self) -> str:
        return f"forward[{self.forward_batch} images]"

    def distill_iteration(self, cfg: PadConfig) -> tuple[float, int]:
        """Seconds of one distillation iteration at ``cfg``'s IPC, and the unroll's peak bytes (as the run will
        choose them: :mod:`pad_sdk.core.memory` measures the bytes autograd saves per student step)."""
        key = self.distill_key(cfg)
        made: list[Any] = []

        def iteration() -> None:
            if not made:
                made.append(self._distiller(cfg))
            stages, distiller = made[0]
            with stages.compute():
                distiller.step()
            unroll = distiller.unroll
            if unroll is not None:
                _MEASURED_BYTES[key] = unroll.full_bytes if unroll.mode == "full" else unroll.recompute_bytes

        seconds = self._timed(key, cfg, iteration)
        return seconds, _MEASURED_BYTES.get(key, 0)

    @staticmethod
    def distill_key(cfg: PadConfig) -> str:
        return f"distill_iteration[ipc={cfg.ipc},{cfg.distill.model_dump_json()}]"

    def _distiller(self, cfg: PadConfig) -> tuple[Stages, Any]:
        # experts of the real shape: a trajectory drifting from a real initialisation (its values do not change
        # the work), and real images at random (the correct-image search needs trained experts)
        stages = Stages(cfg.model_copy(update={"distill": cfg.distill.model_copy(update={"pix_init": "real"})}),
                        self.sample, device=self.device)
        start = flatten_params(seeded(0, stages.network_factory())).detach()
        drift = torch.randn((cfg.experts.epochs + 1, start.numel()), generator=make_generator(0)) * 1e-3
        trajectory = start + drift.cumsum(0)
        return stages, stages.make_distiller([trajectory, trajectory.flip(0).contiguous()])


# -- the counts the settings imply -------------------------------------------------------------------------
def expert_images(cfg: PadConfig, train: LabelledImages) -> int:
    """Images one expert trains on over all its epochs (PAD's scheduler and static pruning shrink epochs)."""
    experts = cfg.experts
    counts = torch.bincount(train.labels, minlength=train.num_classes).tolist()
    if experts.fiex == "scheduler":
        schedule = experts.schedule.schedule()
        total = 0
        for epoch in range(experts.epochs):
            for size in counts:
                begin, end = schedule.window(epoch, experts.epochs, size)
                total += end - begin
        return total
    if experts.fiex == "static":
        hard, easy = experts.static_ratios(cfg.ipc)
        return experts.epochs * sum(max(1, size - int(size * hard) - int(size * easy)) for size in counts)
    return experts.epochs * len(train)


def _eval_network(cal: Calibration, cfg: PadConfig, epochs: int, images: int, batch: int, augment: bool,
                  tested: int, architecture: str | None = None) -> float:
    """Seconds of one evaluation network: ``epochs`` over ``images`` at ``batch``, then a test on ``tested``."""
    return epochs * _epoch_seconds(cal, cfg, images, batch, augment, architecture) + tested * cal.forward_image(cfg)


def _epoch_seconds(cal: Calibration, cfg: PadConfig, images: int, batch: int, augment: bool,
                   architecture: str | None = None) -> float:
    """One epoch over ``images`` at ``batch``: the full batches, and the last, partial one by its share."""
    batch = max(1, min(batch, images))
    full, rest = divmod(images, batch)
    return (full + rest / batch) * cal.train_step(cfg, batch, augment, architecture)


def _rise(cal: Calibration, keys: Sequence[str]) -> int:
    """The largest measured per-call memory rise among these kinds of work (all measured already)."""
    return max((cal.rise_bytes.get(key, 0) for key in keys), default=0)


def _step_key(cal: Calibration, cfg: PadConfig, images: int, batch: int, augment: bool,
              architecture: str | None = None) -> str:
    return cal.step_key(cfg, max(1, min(batch, images)), augment, architecture)


def _stage_seconds(cfg: PadConfig, stages: Stages, cal: Calibration, trajectory: bool, evaluate: bool,
                   shared: set[str]) -> list[StageEstimate]:
    """The stages of one IPC; ``shared`` names the ones an earlier IPC of the sweep already counted."""
    train, classes = stages.data.train, stages.data.train.num_classes
    n = len(train)
    test_n = len(stages.data.test)
    validation_n = 0 if stages.data.validation is None else len(stages.data.validation)
    params = flatten_params(stages.network_factory()()).numel()
    out: list[StageEstimate] = []
    if trajectory and cfg.experts.fiex != "off" and "scoring" not in shared:
        s = cfg.scoring
        per_run = s.epochs * _epoch_seconds(cal, cfg, n, s.batch_size, True) + n * cal.forward_image(cfg)
        out.append(StageEstimate(stage="scoring", seconds=s.runs * per_run,
                                 work=f"{s.runs} runs x {s.epochs} epochs x {n:,} images",
                                 extra_host_bytes=_rise(cal, [_step_key(cal, cfg, n, s.batch_size, True),
                                                              cal.forward_key])))
    iter_seconds = cal.distill_iteration(cfg)[0] if trajectory else 0.0
    set_size = cfg.ipc * classes
    e, ev, auto = cfg.experts, cfg.evaluation, cfg.auto
    if trajectory and "experts" not in shared:
        images = expert_images(cfg, train)
        steps_per_image = cal.train_step(cfg, e.batch_size, e.augment) / min(e.batch_size, n)
        trajectories = e.num_experts * (e.epochs + 1) * params * 4
        out.append(StageEstimate(stage="experts", seconds=e.num_experts * images * steps_per_image,
                                 work=f"{e.num_experts} experts x {e.epochs} epochs ({images:,} images each)",
                                 extra_host_bytes=trajectories + _rise(cal, [_step_key(cal, cfg, n, e.batch_size,
                                                                                       e.augment)])))
    validation = validation_n > 0
    eval_net = _eval_network(cal, cfg, ev.epochs, set_size, ev.batch_size, ev.augment, 0)
    eval_keys = [_step_key(cal, cfg, set_size, ev.batch_size, ev.augment), cal.forward_key]
    distill_keys = [cal.distill_key(cfg)] if trajectory else []
    probed = len(planned_candidates(cfg, validation)[0])
    if trajectory and probed >= 2:
        probe_iterations = max(1, round(auto.fraction * cfg.distill.iterations))
        per = probe_iterations * iter_seconds + eval_net + validation_n * cal.forward_image(cfg)
        out.append(StageEstimate(stage="probes", seconds=probed * per,
                                 work=f"{probed} candidates x {probe_iterations} iterations + 1 network",
                                 extra_host_bytes=_rise(cal, distill_keys + eval_keys)))
    if trajectory:
        d = cfg.distill
        out.append(StageEstimate(stage="distillation", seconds=d.iterations * iter_seconds,
                                 work=f"{d.iterations} iterations x {d.syn_steps} unrolled steps",
                                 extra_host_bytes=_rise(cal, distill_keys)))
    if auto.subset_check and validation:
        selectors = list(auto.subsets) if trajectory else [s for s in auto.subsets if s == "random"]
        embeds = sum(1 for s in selectors if s != "random")
        forward = cal.forward_image(cfg)
        seconds = (1 + len(selectors)) * (eval_net + validation_n * forward) + embeds * n * forward
        out.append(StageEstimate(stage="subset_check", seconds=seconds,
                                 work=f"{1 + len(selectors)} networks x {ev.epochs} epochs on {set_size} images",
                                 extra_host_bytes=_rise(cal, eval_keys)))
    if evaluate:
        networks = ev.seeds * (2 if ev.random_baseline else 1)
        seconds = networks * (eval_net + test_n * cal.forward_image(cfg))
        for arch in ev.architectures:
            seconds += ev.seeds * _eval_network(cal, cfg, ev.epochs, set_size, ev.batch_size, ev.augment, test_n, arch)
        arch_keys = [_step_key(cal, cfg, set_size, ev.batch_size, ev.augment, a) for a in ev.architectures]
        out.append(StageEstimate(stage="evaluation", seconds=seconds,
                                 work=f"{networks} networks x {ev.epochs} epochs on {set_size} images",
                                 extra_host_bytes=_rise(cal, eval_keys + arch_keys)))
        if ev.full_epochs > 0 and "full_reference" not in shared:
            seconds = _eval_network(cal, cfg, ev.full_epochs, n, 256, ev.augment, test_n)
            out.append(StageEstimate(stage="full_reference", seconds=seconds,
                                     work=f"1 network x {ev.full_epochs} epochs x {n:,} images",
                                     extra_host_bytes=_rise(cal, [_step_key(cal, cfg, n, 256, ev.augment),
                                                                  cal.forward_key])))
    return out


# the order stages run in (STAGE_ORDER is the order a plan shows them in); which of them a runtime's tasks and
# trainer run (the others stay in the calling process)
_RUN_ORDER = ("scoring", "experts", "probes", "distillation", "subset_check", "full_reference", "evaluation")
_TASK_STAGES = frozenset({"scoring", "experts", "full_reference", "evaluation"})


def _add_start_up(estimates: list[StageEstimate], costs: StartUpCosts, pool: str) -> str:
    """Add a runtime's start-up costs to one IPC's stages, in the order they run. ``pool`` is the task pool's state
    before them ("cold", "warm", or "displaced" by a trainer); returns its state after them."""
    by_name = {est.stage: i for i, est in enumerate(estimates)}
    for name in _RUN_ORDER:
        if name not in by_name:
            continue
        i = by_name[name]
        extra, why = 0.0, ""
        if name == "distillation":
            extra, why, pool = costs.trainer, "trainer start-up", "displaced"
        elif name in _TASK_STAGES and pool != "warm":
            extra = costs.task_pool if pool == "cold" else costs.pool_restart
            why, pool = "worker start-up" if pool == "cold" else "worker pool restart", "warm"
        if extra > 0:
            est = estimates[i]
            estimates[i] = est.model_copy(update={"seconds": est.seconds + extra,
                                                  "work": f"{est.work} + {why} {extra:.1f} s"})
    return pool


def estimate_run(configs: Sequence[PadConfig], stages_of: Callable[[PadConfig], Stages], *, trajectory: bool,
                 evaluate: bool = True, runtime: str = "local", prices: Prices | None = None,
                 source_bytes: int | None = None, trajectory_store: str | None = None,
                 start_up: Callable[[], StartUpCosts] | None = None, loaded_s: float | None = None) -> Plan:
    """The plan of a run over ``configs`` (one per IPC), from a calibration on the first one's stages.

    ``start_up`` measures the runtime's own start-up costs (a Ray cluster's worker and trainer starts), timed as
    part of the calibration; ``loaded_s`` is what reading the source (and starting a cluster) already took, shown
    as the measured stage ``load``.
    """
    prices = prices or Prices()
    began = time.perf_counter()
    load_before = _load_average()
    cpu_began = time.process_time()
    first = stages_of(configs[0])
    cal = Calibration(first.data, first.device, max_ipc=max(cfg.ipc for cfg in configs))
    costs = start_up() if start_up is not None else StartUpCosts()
    merged: dict[str, StageEstimate] = {}
    shared: set[str] = set()
    pool = "cold"
    for cfg in configs:
        estimates = _stage_seconds(cfg, first if cfg is configs[0] else stages_of(cfg), cal, trajectory, evaluate,
                                   shared)
        pool = _add_start_up(estimates, costs, pool)
        for est in estimates:
            old = merged.get(est.stage)
            merged[est.stage] = est if old is None else old.model_copy(update={
                "seconds": old.seconds + est.seconds, "work": f"{old.work}; {est.work}",
                "extra_host_bytes": max(old.extra_host_bytes, est.extra_host_bytes)})
        shared |= {"scoring", "experts", "full_reference"}
    calibration_seconds = time.perf_counter() - began
    # every kind of work has run once: what the process holds now (data, torch, the allocator's working memory)
    # is every stage's floor; what a stage takes and gives back per call comes on top (its extra_host_bytes)
    floor = process_rss_bytes()
    loads = [x for x in (load_before, _load_average()) if x is not None]
    load = max(loads) if loads else None
    cpus = _cpus()
    threads = max(1, min(torch.get_num_threads(), cpus or 1))
    cpu_share = round((time.process_time() - cpu_began) / max(calibration_seconds, 1e-9) / threads, 3) \
        if calibration_seconds > 0.5 else None  # a calibration found in this process's cache measures nothing
    merged["calibration"] = StageEstimate(stage="calibration", seconds=calibration_seconds,
                                          work=f"{len(cal.seconds)} timed kinds of work"
                                          + (f"; {costs.how}" if costs.how else ""))
    if loaded_s is not None:
        merged["load"] = StageEstimate(stage="load", seconds=loaded_s, work="measured: reading the source"
                                       + (" and starting the cluster" if runtime == "ray" else ""))
    hardware: Literal["cpu", "gpu"] = "gpu" if first.device.type == "cuda" else "cpu"
    data = first.data
    data_bytes = sum(int(t.images.nbytes) for t in (data.train, data.test))
    # images in a file mapping stay on the host: each minibatch moves to the device (pad_sdk.disk_data)
    device_data_bytes = sum(int(t.images.nbytes) for t in (data.train, data.test)
                            if not getattr(t.images, "mapped", False))
    trajectories_bytes = first.trajectory_bytes()
    export_bytes = sum(cfg.ipc * data.train.num_classes * (data.train.images[0].numel() + data.train.num_classes) * 4
                       for cfg in configs)
    hour = prices.hour_price(hardware)
    ordered = []
    reader = "load" if "load" in merged else "calibration"  # the source's bytes are read before the stages
    for name in STAGE_ORDER:
        if name not in merged:
            continue
        est = merged[name]
        read = (source_bytes or data_bytes) if name == reader else 0
        written = trajectories_bytes if name == "experts" and trajectory_store else 0
        written += export_bytes if name == "distillation" or (name == "evaluation" and not trajectory) else 0
        ordered.append(est.model_copy(update={"cost": est.seconds / 3600 * hour, "read_bytes": read,
                                              "written_bytes": written}))
    # with a trajectory store (given, the Ray runtime's, or the spill store beyond compute.spill_trajectories_gib)
    # the experts live there and are read back a few at a time
    stored = trajectory_store or runtime == "ray" or spills_trajectories(configs[0], trajectories_bytes)
    held = 0 if stored else trajectories_bytes
    extra = max((s.extra_host_bytes if s.stage != "experts" else 0 for s in ordered), default=0)
    # never below the process's own high-water mark so far: the run's measured peak (ru_maxrss) includes it
    peak_host = max(peak_rss_bytes(), floor + max(held + extra, max((s.extra_host_bytes for s in ordered),
                                                                    default=0)))
    unroll = max((_MEASURED_BYTES.get(Calibration.distill_key(cfg), 0) for cfg in configs), default=0) \
        if trajectory else 0
    seconds = sum(s.seconds for s in ordered)
    return Plan(
        ipcs=tuple(cfg.ipc for cfg in configs), preset=configs[0].preset, device=str(first.device),
        hardware=hardware, runtime=runtime, train_images=len(data.train), image_shape=data.train.image_shape,
        stages=tuple(ordered), seconds=seconds, peak_host_bytes=int(peak_host),
        peak_device_bytes=None if hardware == "cpu" else int(device_data_bytes + unroll + held),
        read_bytes=sum(s.read_bytes for s in ordered), written_bytes=sum(s.written_bytes for s in ordered),
        cost=seconds / 3600 * hour, currency=prices.currency, calibration=dict(cal.seconds),
        load_average=load, cpus=cpus, cpu_share=cpu_share, notes=load_notes(load, cpus, cpu_share),
    )
