"""This process's host resources: resident memory now and at its peak, a sampler of the peak while a block runs,
and the machine's load, which makes timings taken on it less certain."""

from __future__ import annotations

import os
import resource
import threading


def process_rss_bytes() -> int:
    """Resident memory of this process now (``/proc``), else its peak so far (``getrusage``)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def usable_cpus() -> int | None:
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
