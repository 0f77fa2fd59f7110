"""Progress between the Ray runtime's driver and its workers, through one small actor per runtime.

The tasks (scoring agents, experts, evaluation networks) post their share done after every epoch, and rank 0 of
the distillation workers every iteration and its loss (fire-and-forget calls). The driver waits on its tasks or
its trainer with a short timeout and, in between, reads the board and calls the run's ``on_event`` as the
in-process loops do, so progress bars, remaining times, log lines and the budget guard behave the same on Ray.
A budget the callback finds spent in distillation asks the workers to stop (``_ray_distill`` shares the request
among the ranks, so every rank stops after the same iteration).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pad_sdk.errors import BudgetExhausted
from pad_sdk.pipeline import Stages

POLL_S = 0.5  # how often the driver reads the board while its tasks or trainer run


class ProgressBoard:
    """The actor (no CPU of its own, one per runtime): the distillation's last iteration and loss, whether the
    driver asked its workers to stop, and the share done of each running task, keyed by the driver's call and
    the task's unit."""

    def __init__(self) -> None:
        self.done, self.loss, self.stop = 0, float("nan"), False
        self.units: dict[str, float] = {}

    def start_distillation(self) -> None:
        self.done, self.loss, self.stop = 0, float("nan"), False

    def post(self, done: int, loss: float) -> None:
        self.done, self.loss = max(self.done, done), loss

    def read(self) -> tuple[int, float]:
        return self.done, self.loss

    def request_stop(self) -> None:
        self.stop = True

    def stop_requested(self) -> bool:
        return self.stop

    def post_share(self, key: str, share: float) -> None:
        self.units[key] = share

    def shares(self, prefix: str) -> dict[str, float]:
        return {k: v for k, v in self.units.items() if k.startswith(prefix)}

    def forget(self, prefix: str) -> None:
        self.units = {k: v for k, v in self.units.items() if not k.startswith(prefix)}


def share_poster(progress: tuple[Any, str] | None, epochs: int) -> Callable[[int], None] | None:
    """A task's ``on_epoch(e)`` (0-based): posts its share done under its key, ``progress`` = (board, key)."""
    if progress is None or epochs <= 0:
        return None
    board, key = progress
    return lambda epoch: board.post_share.remote(key, (epoch + 1) / epochs)


class DriverProgress:
    """The driver's side: the board (started on first use, on the driver's node, so that it lives as long as the
    driver whichever worker node is lost), one key prefix per call, and the waits that report."""

    def __init__(self) -> None:
        self._board: Any = None
        self._calls = 0

    @property
    def board(self) -> Any:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if self._board is None:
            actor: Any = ray.remote(ProgressBoard).options(  # Ray's stubs do not type actor handles
                num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
                    ray.get_runtime_context().get_node_id(), soft=True))
            self._board = actor.remote()
        return self._board

    def call(self) -> str:
        """A fresh key prefix: the units of one call post under ``f"{prefix}{unit}"``."""
        self._calls += 1
        return f"{self._calls}:"

    def collect(self, stages: Stages, stage: str, refs: dict[Any, int], prefix: str, total: int, finished: int,
                sizes: Mapping[int, int] | None = None, **facts: Any) -> dict[int, Any]:
        """The results of tasks (reference -> unit), passing their completions and, between them, the summed share
        of the running ones (``partial``) to the run's ``on_event``; a unit counts ``sizes[unit]`` (default 1: a
        task training several experts together counts each). On any error (a failed task, a budget the callback
        finds spent) the tasks still running are cancelled."""
        sizes = sizes or {}
        import ray

        board = self.board
        results: dict[int, Any] = {}
        waiting = list(refs)
        try:
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1, timeout=POLL_S)
                if ready:
                    results[refs[ready[0]]] = ray.get(ready[0])
                    finished += sizes.get(refs[ready[0]], 1)
                    stages.on_event(stage, finished, total, **facts)
                    continue
                try:
                    shares = ray.get(board.shares.remote(prefix), timeout=POLL_S * 10)
                except ray.exceptions.GetTimeoutError:
                    continue
                running = {f"{prefix}{refs[ref]}": sizes.get(refs[ref], 1) for ref in waiting}
                partial = sum(v * running[k] for k, v in shares.items() if k in running)
                if partial > 0:
                    stages.on_event(stage, finished, total, partial=round(partial, 3), **facts)
        except BaseException:
            for ref in waiting:
                ray.cancel(ref)
            raise
        finally:
            board.forget.remote(prefix)
        return results

    def follow(self, trainer: Any, stages: Stages, total: int) -> Any:
        """``trainer.fit()`` in a thread while this one passes the workers' iterations to the run's ``on_event``;
        a budget the callback finds spent asks the workers to stop after their current iteration
        (``stages.stopped``), and the fit then ends with that iteration's checkpoint."""
        import ray

        board = self.board
        shown = 0
        with ThreadPoolExecutor(1, thread_name_prefix="pad-ray-fit") as pool:
            fit = pool.submit(trainer.fit)
            while True:
                try:
                    return fit.result(timeout=POLL_S)
                except FutureTimeout:
                    pass
                try:
                    done, loss = ray.get(board.read.remote(), timeout=POLL_S * 10)
                except ray.exceptions.RayError:  # progress is a courtesy: the fit decides whether the run succeeds
                    continue
                if done <= shown or stages.stopped is not None:
                    continue
                shown = done
                try:
                    stages.on_event("distill", done, total, loss=loss)
                except BudgetExhausted as exc:
                    stages.stopped = exc
                    board.request_stop.remote()
                except BaseException:  # the caller's callback failed, or an interrupt: stop the workers, then raise
                    board.request_stop.remote()
                    raise

    def close(self) -> None:
        """Stop the board (the cluster may be gone already)."""
        if self._board is not None:
            import ray

            with contextlib.suppress(Exception):  # a board whose cluster is gone needs no stopping
                ray.kill(self._board)
            self._board = None
