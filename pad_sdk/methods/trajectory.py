"""Trajectory matching: PAD, DATM and MTT as settings of the one Distiller, with PAD's filters as switches.

- ``pad``: DATM-style matching with both filters: experts trained under the data scheduler (``fiex``) and
  the shallow-parameter cut in the matching loss (``fiem``, ratio alpha from the preset per IPC).
- ``datm``: the same machinery with both filters off.
- ``mtt``: additionally hard labels, a fixed start window (no sequential generation) and random real
  initial images (DATM adds soft labels, the growing window and correctly-classified initial images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pad_sdk.core.distill import SyntheticSet
from pad_sdk.methods.base import MethodContext
from pad_sdk.presets import MTT_START, published_start
from pad_sdk.probes import probe_settings


@dataclass(frozen=True)
class TrajectoryMatching:
    """Trajectory matching; ``fiex``: scheduler experts, ``fiem``: depth-based parameter selection,
    ``mtt``: MTT's simplifications (hard labels, fixed window, random real initialisation)."""

    name: str = "pad"
    fiex: bool = True
    fiem: bool = True
    mtt: bool = False

    def overrides(self, preset: str | None = None, ipc: int | None = None) -> dict[str, Any]:
        """The settings this method changes on top of the preset (which is PAD's) at ``ipc``. DATM and MTT
        keep their published start where the preset chose PAD's own (``presets.published_start``)."""
        distill: dict[str, Any] = {} if self.fiem else {"selection_mode": "none"}
        if not (self.fiex or self.fiem) and preset is not None and ipc is not None:
            distill.update(published_start(preset, ipc))
        if self.mtt:
            distill.update(MTT_START)
        overrides: dict[str, Any] = {"distill": distill}
        if not self.fiex:  # with fiex on the experts are the preset's (cpu-small's are plain at IPC 1 and >= 50)
            overrides["experts"] = {"fiex": "off"}
        if (self.fiex, self.fiem, self.mtt) != (True, True, False):
            # DATM, MTT and the ablations are fixed methods: only the SDK default (pad) chooses its settings
            overrides["auto"] = {"probes": False}
        return overrides

    def condense(self, context: MethodContext, ipc: int, seed: int) -> SyntheticSet:
        config = context.config(ipc, self.overrides(context.preset, ipc))
        stages = context.stages(config)
        experts = context.experts(config)
        config, _report = probe_settings(stages, experts, seed)  # the SDK's own choice, as pad_sdk.distill makes it
        stages = context.stages(config)
        distiller = stages.make_distiller(experts, ipc, seed_offset=seed)
        distiller.run(config.distill.iterations)
        return distiller.synthetic.detached()
