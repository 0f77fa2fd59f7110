"""What every benchmark record states: the command, the commit, the machine and the time stamp."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """CPU model, usable cores, memory, accelerator, load at the time of the run and library versions."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": _cpu_model(), "cores": cores, "memory_gib": _memory_gib(), "gpu": gpu,
            "load_average": [round(v, 2) for v in os.getloadavg()], "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "pad_sdk", "connectors", "policies"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


def command() -> str:
    """The command line as a user would type it from the repository root (``python -m benchmarks.x ...``)."""
    script = sys.argv[0]
    if script.endswith(".py") and os.path.basename(os.path.dirname(script)) == "benchmarks":
        script = "-m benchmarks." + os.path.basename(script)[:-3]
    return " ".join(["python", script, *sys.argv[1:]])


def stamp(*, at_commit: str | None = None, **extra: Any) -> dict[str, Any]:
    """The header of a results file. A long run passes ``at_commit``, the commit read when it started, so that
    commits made while it runs do not relabel its figures."""
    return {"command": command(), "commit": at_commit or commit(),
            "machine": machine(), "timestamp": datetime.now(UTC).isoformat(timespec="seconds"), **extra}
