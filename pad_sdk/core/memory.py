"""Choosing how to unroll the student: keep every step's graph (``full``) or rebuild it step by step
(``recompute``), from the memory the setting needs and the memory the device has.

``full`` keeps the graph of all N student steps until the outer backward: its peak grows with N x batch_syn
(111 GiB at IPC 50, N 80 on the GPU measured in issue 13). ``recompute`` keeps N + 1 flat parameter vectors
and one step's graph at a time, for about 1.25-1.45x the time. A middle ground (graph segments of k steps)
would trade only the N + 1 stored vectors (about 100 MB at N 80 for ConvNet-D3) against graph memory at the
same compute as ``recompute``, so it is not offered.

The footprint of one step is measured, not modelled: one student step of the real problem is run with
``saved_tensors_hooks`` counting the bytes autograd keeps for the backward (the same on CPU and GPU).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import torch

from pad_sdk.core.matching import StudentProblem, UnrollPlan

# Share of the free memory a distillation may plan to use when no budget is given: the device's free memory
# on a GPU (the caching allocator and other tensors need the rest), the available RAM on the host.
DEFAULT_BUDGET_SHARE = {"cuda": 0.85, "cpu": 0.5}
# Peak = factor x N x step + extra steps (full), or steps x step (recompute), per device type, measured:
# - CUDA, against the H200 table of issue 13 (ConvNet-D3 width 128, 28x28): the measured step is 0.277 GiB at
#   batch 100 and 1.379 GiB at batch 500; 80 steps of it are 22.2 / 110.3 GiB against 22.5 / 111.0 GiB of
#   torch.cuda.max_memory_allocated (full), and recompute peaked at 0.59 / 2.3 GiB (about 2 steps);
# - CPU, peak RSS of a fresh process over its first iteration (width 32 and 64, N 10 and 20, batch 100):
#   full 1.25-1.49 x N x step, recompute about 4.2 steps (allocator and convolution workspaces).
@dataclass(frozen=True)
class _Overhead:
    full_factor: float
    full_extra_steps: int
    recompute_steps: int


OVERHEAD = {"cuda": _Overhead(1.02, 2, 2), "cpu": _Overhead(1.3, 3, 5)}


@dataclass(frozen=True)
class UnrollChoice:
    """The unroll mode a distillation uses, and why (kept in the result, the report and the log)."""

    mode: str  # full | recompute
    reason: str
    requested: str  # auto | full | recompute
    step_bytes: int  # bytes autograd saves for one student step (with the graph for the outer backward)
    full_bytes: int  # estimated peak of the full unroll
    recompute_bytes: int  # estimated peak of the recomputing unroll
    budget_bytes: int | None  # the budget the choice was made against (None: no memory figure available)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def available_memory(device: torch.device) -> int | None:
    """Free bytes of ``device``: ``torch.cuda.mem_get_info`` on CUDA, MemAvailable (else free pages) on the host."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def default_budget(device: torch.device) -> int | None:
    """The memory a distillation plans to use on ``device`` when no budget is set."""
    free = available_memory(device)
    share = DEFAULT_BUDGET_SHARE.get(device.type, DEFAULT_BUDGET_SHARE["cpu"])
    return None if free is None else int(free * share)


def step_graph_bytes(problem: StudentProblem, start: torch.Tensor, plan: UnrollPlan) -> int:
    """Bytes autograd saves for one student step built with ``create_graph`` (step 0 of ``plan``).

    Tensors that share storage are counted once; the step is thrown away afterwards.
    """
    seen: set[tuple[int, int]] = set()
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        size = tensor.numel() * tensor.element_size()
        try:
            key = (tensor.untyped_storage().data_ptr(), size)
        except (RuntimeError, NotImplementedError):  # tensor subclasses without a storage
            key = (id(tensor), size)
        if key not in seen:
            seen.add(key)
            total += size
        return tensor

    theta = start.detach().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = problem.step_loss(theta, plan, 0)
        (grad,) = torch.autograd.grad(loss, theta, create_graph=True)
        student = theta - problem.lr * grad
    del student, grad, loss
    return total


def choose_unroll(requested: str, problem: StudentProblem, start: torch.Tensor, plan: UnrollPlan,
                  budget_bytes: int | None) -> UnrollChoice:
    """``full`` when its estimated peak fits ``budget_bytes``, else ``recompute`` (``requested`` other than
    ``auto`` is kept as it is, with the estimates for the record)."""
    step = step_graph_bytes(problem, start, plan)
    params = start.numel() * start.element_size()
    over = OVERHEAD.get(start.device.type, OVERHEAD["cpu"])
    # the graph of every step (full) or of one step at a time and N + 1 parameter vectors (recompute), plus
    # the start, target and student vectors and the leaves' gradients
    full = int(plan.steps * step * over.full_factor) + over.full_extra_steps * step + 4 * params
    recompute = over.recompute_steps * step + (plan.steps + 4) * params
    if requested != "auto":
        return UnrollChoice(requested, f"set by distill.unroll={requested}", requested, step, full, recompute,
                            budget_bytes)
    gib = 2**30
    if budget_bytes is None:
        return UnrollChoice("recompute", "no free-memory figure for this device: recompute (bounded memory)",
                            requested, step, full, recompute, None)
    if full <= budget_bytes:
        reason = f"full unroll needs ~{full / gib:.2f} GiB, within the {budget_bytes / gib:.2f} GiB budget"
        return UnrollChoice("full", reason, requested, step, full, recompute, budget_bytes)
    reason = (f"full unroll needs ~{full / gib:.2f} GiB, over the {budget_bytes / gib:.2f} GiB budget; recompute "
              f"needs ~{recompute / gib:.2f} GiB")
    return UnrollChoice("recompute", reason, requested, step, full, recompute, budget_bytes)
