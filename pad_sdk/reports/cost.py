"""Storage, transfer and compute cost of a run, and when the distillation pays for itself.

All prices are configurable through :class:`Prices`. The defaults are public list prices, chosen so that a
report is meaningful out of the box; a review should replace them with the organisation's own rates:

* storage: USD 0.023 per GB-month (AWS S3 Standard, us-east-1, first 50 TB);
* transfer: USD 0.09 per GB read out (AWS data transfer out to the internet, first 10 TB / month);
* compute: USD 0.10 per CPU machine-hour (m7i.large on demand, 2 vCPU) and USD 1.01 per GPU hour
  (g5.xlarge on demand, one NVIDIA A10G).

A GB is 10^9 bytes. Compute is priced per wall-clock hour of the machine that ran the stage.

Break-even: distilling costs ``C_d`` once (scoring + experts + distillation compute). Every later training
run on the condensed set instead of the full data saves ``C_full - C_condensed`` (the measured time to train
one evaluation network on each, at the same hourly price). The distillation pays for itself after
``C_d / (C_full - C_condensed)`` future training runs; when training on the condensed set is not cheaper,
it never does (``None``). Storage savings are reported separately and not folded in, so the two reasons to
distil stay visible.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GB = 1e9
# The stages a run spends compute on, in pipeline order; ``full_reference`` is the full-data baseline that
# the evaluation trains (it is not needed to produce the condensed set).
STAGES = ("scoring", "experts", "distillation", "evaluation", "full_reference")
# The stages whose cost buys the condensed set (the rest only measures it).
PRODUCTION_STAGES = ("scoring", "experts", "distillation")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Prices(_Frozen):
    """Unit prices for the cost section; every amount is in ``currency``."""

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of every amount")
    storage_per_gb_month: float = Field(default=0.023, ge=0, description="object storage, per GB (1e9 bytes) and month")
    transfer_per_gb: float = Field(default=0.09, ge=0, description="data transfer out, per GB read")
    reads_per_month: float = Field(default=1.0, ge=0, description="how often the whole dataset is read out per month")
    cpu_hour: float = Field(default=0.10, ge=0, description="one CPU machine, per wall-clock hour")
    gpu_hour: float = Field(default=1.01, ge=0, description="one GPU machine, per wall-clock hour")

    def hour_price(self, hardware: Literal["cpu", "gpu"]) -> float:
        return self.gpu_hour if hardware == "gpu" else self.cpu_hour


class StageCost(_Frozen):
    """Measured wall-clock seconds of one stage and their cost."""

    stage: str
    seconds: float
    cost: float


class CostSection(_Frozen):
    """What the condensed set costs and saves, for one IPC."""

    prices: Prices
    hardware: Literal["cpu", "gpu"]
    source_bytes: int
    source_bytes_basis: str = Field(description="where source_bytes comes from (stored objects, or array bytes)")
    condensed_bytes: int
    condensed_bytes_basis: str
    reduction_ratio: float = Field(description="source bytes / condensed bytes")
    source_storage_month: float
    condensed_storage_month: float
    storage_saving_month: float
    source_transfer_month: float
    condensed_transfer_month: float
    stages: tuple[StageCost, ...] = Field(description="stage time measured for this IPC (shared stages once)")
    distillation_seconds: float = Field(description="scoring + experts + distillation to produce this set alone")
    distillation_cost: float
    full_train_seconds: float | None = Field(description="measured time to train one network on the full data")
    condensed_train_seconds: float | None = Field(description="measured time to train one on the condensed set")
    full_train_cost: float | None
    condensed_train_cost: float | None
    break_even_runs: float | None = Field(description="future training runs until distillation has paid off")
    break_even_note: str

    @property
    def compute_seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    @property
    def compute_cost(self) -> float:
        return sum(s.cost for s in self.stages)


def storage_cost(num_bytes: int, prices: Prices) -> float:
    """Monthly storage cost of ``num_bytes``."""
    return num_bytes / GB * prices.storage_per_gb_month


def transfer_cost(num_bytes: int, prices: Prices) -> float:
    """Monthly transfer cost of reading ``num_bytes`` out ``prices.reads_per_month`` times."""
    return num_bytes / GB * prices.transfer_per_gb * prices.reads_per_month


def break_even(distillation_cost: float, full_train_cost: float | None,
               condensed_train_cost: float | None) -> tuple[float | None, str]:
    """Future training runs after which distillation has paid for itself, and a sentence saying why."""
    if full_train_cost is None or condensed_train_cost is None:
        return None, "not measured: the run had no full-data reference or no condensed evaluation"
    saving = full_train_cost - condensed_train_cost
    if saving <= 0:
        return None, ("never at these settings: training on the condensed set took as long as on the full data "
                      "(the saving is in storage, not compute)")
    runs = distillation_cost / saving
    return runs, f"pays for itself after {runs:,.1f} training runs on the condensed set instead of the full data"


def cost_section(*, prices: Prices, hardware: Literal["cpu", "gpu"], source_bytes: int, source_bytes_basis: str,
                 condensed_bytes: int, condensed_bytes_basis: str, stage_seconds: dict[str, float],
                 shared_seconds: dict[str, float], full_train_seconds: float | None,
                 condensed_train_seconds: float | None) -> CostSection:
    """Price one IPC's measurements.

    ``stage_seconds`` are the stage times measured while producing this IPC; ``shared_seconds`` the times of
    stages that a sweep ran once for every IPC (scoring, experts), added to the production cost so that each
    IPC's break-even is what that IPC would cost on its own.
    """
    hour = prices.hour_price(hardware)
    stages = tuple(StageCost(stage=s, seconds=stage_seconds[s], cost=stage_seconds[s] / 3600 * hour)
                   for s in STAGES if s in stage_seconds)
    production = {s: stage_seconds.get(s, 0.0) for s in PRODUCTION_STAGES}
    for stage, seconds in shared_seconds.items():
        production[stage] = production[stage] or seconds
    distill_seconds = sum(production.values())
    distill_cost = distill_seconds / 3600 * hour
    full_cost = None if full_train_seconds is None else full_train_seconds / 3600 * hour
    cond_cost = None if condensed_train_seconds is None else condensed_train_seconds / 3600 * hour
    runs, note = break_even(distill_cost, full_cost, cond_cost)
    source_storage, condensed_storage = storage_cost(source_bytes, prices), storage_cost(condensed_bytes, prices)
    return CostSection(
        prices=prices, hardware=hardware,
        source_bytes=source_bytes, source_bytes_basis=source_bytes_basis,
        condensed_bytes=condensed_bytes, condensed_bytes_basis=condensed_bytes_basis,
        reduction_ratio=source_bytes / condensed_bytes if condensed_bytes else 0.0,
        source_storage_month=source_storage, condensed_storage_month=condensed_storage,
        storage_saving_month=source_storage - condensed_storage,
        source_transfer_month=transfer_cost(source_bytes, prices),
        condensed_transfer_month=transfer_cost(condensed_bytes, prices),
        stages=stages, distillation_seconds=distill_seconds, distillation_cost=distill_cost,
        full_train_seconds=full_train_seconds, condensed_train_seconds=condensed_train_seconds,
        full_train_cost=full_cost, condensed_train_cost=cond_cost, break_even_runs=runs, break_even_note=note,
    )
