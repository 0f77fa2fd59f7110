"""The Ray Train function of the distillation stage: data parallel over trajectory segments.

Every rank builds the same :class:`~pad_sdk.core.distill.Distiller` (same seed, so the same initial
synthetic set) but samples experts and start epochs from its own generator, so k ranks match k segments
per iteration. Between ``compute_gradients`` and ``apply_step`` the gradients of the images, label logits
and step size, and the loss, are averaged over the process group; every rank then takes the same step, so
the replicas never diverge. Rank 0's generator continues the in-process runtime's stream, which makes one
worker reproduce the in-process result exactly.

Progress leaves through the runtime's progress actor (:mod:`pad_sdk.runtime._ray_progress`): rank 0 posts
every iteration (a fire-and-forget call), the driver reads it for its ``on_event`` callback (progress lines,
remaining time, the budget guard) and may ask the workers to stop. Rank 0 reads that request at most every
``STOP_CHECK_S`` and shares it with the other ranks in the loss's all-reduce, so every rank stops after the
same iteration, with a checkpoint.

Checkpoints hold plain tensors, numbers and lists (``torch.load(weights_only=True)`` reads them, nothing
is unpickled): the shared synthetic state, every rank's sampler state, and the iteration history.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog
import torch

from pad_sdk.core.distill import Distiller, ExpertSource, IterationRecord, SyntheticSet
from pad_sdk.core.seeding import derive_seed
from pad_sdk.pipeline import Stages
from pad_sdk.runtime._ray_data import resolve
from pad_sdk.trajectories import StoreExperts

log = structlog.get_logger(__name__)

STATE_FILE = "distill-state.pt"
FORMAT_VERSION = 1
STOP_CHECK_S = 0.5  # how often rank 0 asks the driver's board whether to stop


class _StopRequested(Exception):
    """Raised after the iteration at which every rank agreed to stop (its checkpoint is written)."""


# A test seam, read on the driver only: JSON {"iteration", "rank", "marker", "action": "kill"|"pause"}.
FAULT_ENV = "PAD_SDK_RAY_FAULT"


def open_experts(spec: dict[str, Any]) -> ExpertSource:
    """The experts a worker reads: from the shared trajectory store, or a list put in the object store."""
    import ray

    if spec["kind"] == "store":
        return StoreExperts(spec["store"], spec["count"])
    return list(ray.get(spec["ref"]))


def train_func(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker; ``config`` is built by ``RayRuntime.distill``."""
    import ray
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(config["threads"])  # results depend on the thread count; keep it explicit
    pad_config, data = ray.get(config["stages"])
    # with GPUs, Ray Train assigns each worker its device (the local rank's GPU); without, the config decides
    device = ray.train.torch.get_device() if config.get("use_gpu") else None
    stages = Stages(pad_config, resolve(data), device=device)
    ipc = config["ipc"]
    distiller = stages.make_distiller(open_experts(config["experts"]), ipc)
    if rank > 0:
        # Same synthetic initialisation as rank 0, but its own segment stream.
        distiller.reseed_sampler(derive_seed(pad_config.seed, 31, ipc, 0, rank))
    run = _RunState(config["fingerprint"])
    state = _resume_state(ray.train.get_checkpoint(), config["checkpoints"])
    if state is not None:
        run.restore(state, distiller, rank, pad_config.seed, ipc)
        log.info("distill.resumed", rank=rank, iteration=distiller.iteration)

    total, every = pad_config.distill.iterations, config["checkpoint_every"]
    first = distiller.iteration
    began = time.perf_counter()
    board = config.get("progress") if rank == 0 else None
    stop = _StopVote(board)

    def after(record: IterationRecord) -> None:
        nonlocal began
        run.seconds += time.perf_counter() - began
        run.history.append([record.iteration, record.expert, record.start_epoch, record.loss, float(record.stepped),
                            record.lr])
        if board is not None:
            board.post.remote(distiller.iteration, record.loss)
        if distiller.iteration % every == 0 or distiller.iteration == total or stop.agreed:
            _report(distiller, run, rank, world)
        if stop.agreed and distiller.iteration < total:
            raise _StopRequested
        if distiller.iteration < total:
            _maybe_fault(config.get("fault"), distiller.iteration, rank)
        began = time.perf_counter()

    if first < total:
        _maybe_fault(config.get("fault"), first, rank)
    # the in-process loop, with the gradients (and the stop vote) averaged over the workers between gradients
    # and step
    try:
        distiller.run(total, after, reduce=lambda loss: stop.share(_average_gradients(distiller, loss, world,
                                                                                      stop.ask())))
    except _StopRequested:
        log.info("distill.stopped_by_driver", rank=rank, iteration=distiller.iteration, of=total)
        return
    if distiller.iteration == first:
        _report(distiller, run, rank, world)  # nothing left to run (0 iterations, or resumed when done)


class _RunState:
    """What a checkpoint carries besides the distiller: history rows, restarts, compute seconds."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.history: list[list[float]] = []
        self.restarts: list[int] = []
        self.seconds = 0.0

    def restore(self, state: dict[str, Any], distiller: Distiller, rank: int, seed: int, ipc: int) -> None:
        distiller.load_state_dict(state["distiller"])
        samplers = state["samplers"]
        if rank < len(samplers):
            distiller.load_sampler_state(samplers[rank])
        else:  # more workers than when the checkpoint was written: a fresh stream for the new rank
            distiller.reseed_sampler(derive_seed(seed, 31, ipc, 0, rank, distiller.iteration))
        self.history = [list(map(float, row)) for row in state["history"].tolist()]
        self.restarts = [*map(int, state["restarts"]), distiller.iteration]
        self.seconds = float(state["seconds"])


class _StopVote:
    """Rank 0's view of the driver's stop request (asked at most every ``STOP_CHECK_S``), and what the ranks
    agreed in the last all-reduce."""

    def __init__(self, board: Any) -> None:
        self.board, self.asked, self.agreed = board, time.monotonic(), False

    def ask(self) -> bool:
        if self.board is None or time.monotonic() - self.asked < STOP_CHECK_S:
            return False
        import ray

        self.asked = time.monotonic()
        try:
            return bool(ray.get(self.board.stop_requested.remote(), timeout=STOP_CHECK_S * 10))
        except ray.exceptions.RayError:  # the board is gone (its driver's node): carry on, the fit decides
            self.board = None
            return False

    def share(self, reduced: tuple[float, bool]) -> float:
        loss, self.agreed = reduced
        return loss


def _average_gradients(distiller: Distiller, loss: float, world: int, stop: bool = False) -> tuple[float, bool]:
    """All-reduce (mean) the leaves' gradients and the loss, and (any) the stop vote; a single worker is left
    untouched (bit-exact)."""
    if world == 1:
        return loss, stop
    import torch.distributed as dist

    synthetic = distiller.synthetic
    for leaf in (synthetic.images, synthetic.label_logits, synthetic.lr):
        if leaf.grad is not None:  # the same leaves have gradients on every rank (same settings)
            dist.all_reduce(leaf.grad, op=dist.ReduceOp.SUM)
            leaf.grad.div_(world)
    total = torch.tensor([loss, float(stop)], dtype=torch.float64, device=synthetic.images.device)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return float(total[0]) / world, bool(total[1] > 0)


def _report(distiller: Distiller, run: _RunState, rank: int, world: int) -> None:
    """Every rank reports (it is a barrier); rank 0 attaches the checkpoint with all ranks' sampler states."""
    import ray.train

    sampler = distiller.sampler_state()
    samplers = [sampler]
    if world > 1:
        import torch.distributed as dist

        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, sampler)
        samplers = gathered
    metrics = {"iteration": distiller.iteration, "loss": run.history[-1][3] if run.history else float("nan")}
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = None
        if rank == 0:
            state = {
                "format_version": FORMAT_VERSION,
                "distiller": _to_cpu(distiller.state_dict()),
                "samplers": samplers,
                "history": torch.tensor(run.history, dtype=torch.float64).reshape(-1, 6),
                "restarts": list(run.restarts),
                "seconds": run.seconds,
                "world_size": world,
                "fingerprint": run.fingerprint,
                "unroll": None if distiller.unroll is None else distiller.unroll.to_dict(),
            }
            torch.save(state, Path(directory) / STATE_FILE)
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        ray.train.report(metrics, checkpoint=checkpoint)


def _resume_state(checkpoint: Any, stored: dict[str, Any]) -> dict[str, Any] | None:
    """The newer of Ray's registered checkpoint and the newest readable one in storage.

    Ray registers a reported checkpoint only when its controller next polls the worker; a worker (or a
    driver) killed right after reporting leaves a complete checkpoint in storage that Ray does not know.
    """
    candidates = [newest_state(stored["url"], stored["storage_options"])]
    if checkpoint is not None:
        candidates.append(read_state(checkpoint))
    found = [c for c in candidates if c is not None]
    return max(found, key=lambda c: int(c["distiller"]["iteration"])) if found else None


def newest_state(url: str, storage_options: dict[str, Any]) -> dict[str, Any] | None:
    """The newest checkpoint under ``url`` whose state file reads completely (names carry a timestamp)."""
    import io

    import fsspec

    fs, root = fsspec.core.url_to_fs(url, **storage_options)
    if not fs.exists(root):
        return None
    fs.invalidate_cache(root)
    names = sorted((p for p in fs.ls(root, detail=False) if p.rsplit("/", 1)[-1].startswith("checkpoint_")),
                   reverse=True)
    for path in names:
        try:
            return dict(torch.load(io.BytesIO(fs.cat_file(f"{path}/{STATE_FILE}")), weights_only=True))
        except Exception:  # missing or half-written (its writer died): try the one before
            continue
    return None


def read_state(checkpoint: Any) -> dict[str, Any]:
    """A checkpoint's state, read without unpickling."""
    with checkpoint.as_directory() as directory:
        return dict(torch.load(Path(directory) / STATE_FILE, weights_only=True))


def unpack_state(state: dict[str, Any]) -> tuple[SyntheticSet, list[IterationRecord]]:
    d = state["distiller"]
    synthetic = SyntheticSet(d["images"], d["label_logits"], d["lr"], d["classes"])
    history = [
        IterationRecord(int(row[0]), int(row[1]), int(row[2]), float(row[3]), bool(row[4]), float(row[5]))
        for row in state["history"].tolist()
    ]
    return synthetic, history


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


def fault_from_env() -> dict[str, Any] | None:
    """The fault to inject (tests only), from ``PAD_SDK_RAY_FAULT`` on the driver."""
    raw = os.environ.get(FAULT_ENV)
    return json.loads(raw) if raw else None


def _maybe_fault(fault: dict[str, Any] | None, iteration: int, rank: int) -> None:
    """Once per marker file: at the chosen iteration and rank, record where this worker runs, then die
    (``kill``) or wait to be killed from outside (``pause``: a node or the driver is killed by the test)."""
    if not fault or fault["iteration"] != iteration or fault["rank"] != rank:
        return
    marker = Path(fault["marker"])
    if marker.exists():
        return  # already injected: the restarted attempt must run through
    import ray

    facts = {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id(), "iteration": iteration}
    partial = marker.with_suffix(".partial")
    partial.write_text(json.dumps(facts))
    partial.rename(marker)
    log.warning("distill.fault_injected", action=fault["action"], **facts)
    if fault["action"] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(float(fault.get("pause_s", 300)))
