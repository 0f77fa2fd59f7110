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

import time
from collections.abc import Callable, Sequence
from typing import Literal

import torch

from pad_sdk.calibration import Calibration
from pad_sdk.config import PadConfig
from pad_sdk.core.experts import VectorisedExperts
from pad_sdk.core.params import flatten_params
from pad_sdk.core.training import LabelledImages
from pad_sdk.host import load_average, load_notes, peak_rss_bytes, process_rss_bytes, usable_cpus
from pad_sdk.pipeline import Stages
from pad_sdk.plans import STAGE_ORDER, Plan, StageEstimate
from pad_sdk.probes import planned_candidates
from pad_sdk.reports.cost import Prices
from pad_sdk.runtime import StartUpCosts
from pad_sdk.trajectories import spills_trajectories


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


def _experts_estimate(cal: Calibration, cfg: PadConfig, stages: Stages, params: int) -> StageEstimate:
    """The experts: one at a time, or ``compute.experts_at_once`` together (a vectorised step, timed as such;
    both runtimes train such a group in one process) where the network can be stacked."""
    e, train = cfg.experts, stages.data.train
    # timed at the calibration's batch (at most its sample), so the per-image cost divides by that batch
    images, batch = expert_images(cfg, train), cal.batch_for(min(e.batch_size, len(train)))
    at_once = min(cfg.compute.experts_at_once, e.num_experts)
    if at_once > 1 and VectorisedExperts.supports(stages.network_factory()()):
        per_image = cal.experts_step(cfg, batch, e.augment, at_once) / (at_once * batch)
        key, how = cal.experts_step_key(batch, e.augment, at_once), f", {at_once} at a time"
    else:
        per_image = cal.train_step(cfg, batch, e.augment) / batch
        key, how = cal.step_key(cfg, batch, e.augment), ""
    trajectories = e.num_experts * (e.epochs + 1) * params * 4
    return StageEstimate(stage="experts", seconds=e.num_experts * images * per_image,
                         work=f"{e.num_experts} experts x {e.epochs} epochs ({images:,} images each){how}",
                         extra_host_bytes=trajectories + _rise(cal, [key]))


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
    ev, auto = cfg.evaluation, cfg.auto
    if trajectory and "experts" not in shared:
        out.append(_experts_estimate(cal, cfg, stages, params))
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
    load_before = load_average()
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
    loads = [x for x in (load_before, load_average()) if x is not None]
    load = max(loads) if loads else None
    cpus = usable_cpus()
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
    unroll = max((Calibration.unroll_bytes(cfg) for cfg in configs), default=0) \
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
