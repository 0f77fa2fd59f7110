"""Measured seconds and memory of each kind of work a run does, on its network, data shape and device.

:class:`Calibration` times a training step at each batch size the stages use, an inference pass, one
distillation iteration with the real unroll, and a vectorised step of experts trained together; and records
how far resident memory rises while each runs. :mod:`pad_sdk.estimate` multiplies these by the counts the
settings imply. Measurements are cached per process (a sweep, or a pipeline's repeated calls, calibrate once).
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable
from typing import Any

import torch

from pad_sdk.config import PadConfig
from pad_sdk.core.experts import VectorisedExperts
from pad_sdk.core.params import flatten_params
from pad_sdk.core.seeding import make_generator, seeded
from pad_sdk.core.training import LabelledImages, TrainRecipe, predict_logits, train_network
from pad_sdk.data import PreparedData
from pad_sdk.host import RssSampler
from pad_sdk.pipeline import Stages

# Images per inference chunk: ``predict_logits``'s default, the chunk every stage's inference passes.
FORWARD_BATCH: int = inspect.signature(predict_logits).parameters["batch_size"].default


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
        compute = cfg.compute.model_dump_json(exclude={"experts_at_once", "spill_trajectories_gib"})  # no effect here
        full_key = (key, cfg.network.model_dump_json(), compute, shape,
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

    def experts_step(self, cfg: PadConfig, batch: int, augment: bool, at_once: int) -> float:
        """Seconds of one SGD step of ``at_once`` experts trained together (:class:`VectorisedExperts`), each on
        its own ``batch`` images, DSA drawn per expert when ``augment`` (as :func:`train_expert_group` does)."""
        stages = self._stages(cfg)
        train = self.sample.train
        batch = self.batch_for(batch)
        networks = [seeded(k, stages.network_factory()).to(self.device) for k in range(at_once)]
        experts = VectorisedExperts(networks, cfg.experts.recipe(), soft=False)
        rows = torch.randperm(len(train), generator=make_generator(1))[:batch]
        images, labels = train.images[rows], train.labels[rows]
        generator = make_generator(0)

        def step() -> None:
            with stages.compute(training=True):
                xs = [images.to(self.device) for _ in range(at_once)]
                if augment and stages.augment is not None:
                    xs = [stages.augment(x, generator=generator) for x in xs]
                experts.step(torch.stack(xs), labels.to(self.device).expand(at_once, -1))

        return self._timed(self.experts_step_key(batch, augment, at_once), cfg, step)

    def batch_for(self, batch: int) -> int:
        """The batch a step is timed at: ``batch``, or the whole calibration sample when that is smaller (the
        per-image cost is then the sample's, which is what dividing by this batch gives)."""
        return max(1, min(batch, len(self.sample.train)))

    def experts_step_key(self, batch: int, augment: bool, at_once: int) -> str:
        return f"experts_step[b={self.batch_for(batch)},aug={int(augment)},k={at_once}]"

    def step_key(self, cfg: PadConfig, batch: int, augment: bool, architecture: str | None = None) -> str:
        batch = self.batch_for(batch)
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

    @staticmethod
    def unroll_bytes(cfg: PadConfig) -> int:
        """The unroll's peak bytes that :meth:`distill_iteration` measured for ``cfg`` in this process (0 if none)."""
        return _MEASURED_BYTES.get(Calibration.distill_key(cfg), 0)

    def _distiller(self, cfg: PadConfig) -> tuple[Stages, Any]:
        # experts of the real shape: a trajectory drifting from a real initialisation (its values do not change
        # the work), and real images at random (the correct-image search needs trained experts)
        stages = Stages(cfg.model_copy(update={"distill": cfg.distill.model_copy(update={"pix_init": "real"})}),
                        self.sample, device=self.device)
        start = flatten_params(seeded(0, stages.network_factory())).detach()
        drift = torch.randn((cfg.experts.epochs + 1, start.numel()), generator=make_generator(0)) * 1e-3
        trajectory = start + drift.cumsum(0)
        return stages, stages.make_distiller([trajectory, trajectory.flip(0).contiguous()])
