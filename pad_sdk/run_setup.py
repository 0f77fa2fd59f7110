"""What a run reads and decides before any training: the arguments checked, the policy and data read, one
configuration per IPC, and the up-front estimate (:func:`pad_sdk.sweep` and :func:`pad_sdk.plan` share it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import ValidationError

import policies
from pad_sdk.config import PadConfig, config_error, validate_config
from pad_sdk.data import RawData, read_input
from pad_sdk.errors import ConfigError, DataError, translated_errors
from pad_sdk.estimate import estimate_run
from pad_sdk.methods import MethodContext, TrajectoryMatching, get_method
from pad_sdk.pipeline import EventSink, Stages
from pad_sdk.plans import Plan
from pad_sdk.presets import merge_settings, preset_config
from pad_sdk.reports.cost import Prices
from pad_sdk.runtime import LocalRuntime, Runtime, resolve_runtime


def policy_overrides(policy: policies.RunPolicy | None) -> dict[str, Any]:
    """The PAD knobs a reviewer set in the policy, as settings overrides."""
    if policy is None or policy.pad is None:
        return {}
    pad = policy.pad
    experts: dict[str, Any] = {}
    distill: dict[str, Any] = {}
    if pad.hard_prune_ratio is not None or pad.easy_prune_ratio is not None:
        experts.update(fiex="static", prune_hard=pad.hard_prune_ratio, prune_easy=pad.easy_prune_ratio)
    if pad.fiex is False:
        experts["fiex"] = "off"
    elif pad.fiex is True:  # pinned on where the preset trains plain experts (cpu-small at IPC 1, >= 50)
        experts.setdefault("fiex", "scheduler")
    if pad.fiem is False:
        distill["selection_mode"] = "none"
    if pad.selection_mode is not None:
        distill["selection_mode"] = pad.selection_mode
    if pad.parameter_selection_ratio is not None:
        distill["selection_ratio"] = pad.parameter_selection_ratio
    return {k: v for k, v in (("experts", experts), ("distill", distill)) if v}


def resolve_ipc(ipc: int | None, policy: policies.RunPolicy | None, raw: RawData) -> int:
    if ipc is not None:
        return ipc
    if policy is None:
        return 10
    counts = torch.bincount(raw.train_labels, minlength=len(raw.class_names)).tolist()
    # one condensed image costs its float32 pixels plus its label logits
    per_image = int(raw.train_images[0].numel() * 4 + len(raw.class_names) * 4 + 8)
    stored = raw.source.get("stored_bytes")
    with translated_errors():
        return policy.compression.resolve(counts, per_image, stored).ipc


@dataclass
class Run:
    """What a run reads and decides before any training: the method, policy, data, settings, contexts."""

    engine: Runtime
    chosen: Any
    trajectory: bool
    policy: policies.RunPolicy | None
    raw: RawData
    configs: list[PadConfig]
    make_context: Any
    contexts: dict[bool, MethodContext] = field(default_factory=dict)  # per ZCA setting: data and shared caches

    def context(self, cfg: PadConfig) -> MethodContext:
        if cfg.zca not in self.contexts:
            self.contexts[cfg.zca] = self.make_context(cfg)
        return self.contexts[cfg.zca]


def setup_run(source: Any, labels: Any, *, ipcs: list[int] | None, preset: str, overrides: Mapping[str, Any] | None,
              config: Any, policy: Any, test_images: Any, test_labels: Any, class_names: Any, holdout_fraction: float,
              seed: int, trajectory_store: str | None, storage_options: Mapping[str, Any] | None,
              on_event: EventSink | None, runtime: Runtime | str | None, method: str, fallback: str,
              source_options: Mapping[str, Any]) -> Run:
    """Validate the arguments, read the data and build the settings: everything before the first stage."""
    if fallback not in ("none", "subset"):
        raise ConfigError(f"fallback must be 'none' or 'subset', got {fallback!r}", field="fallback", value=fallback)
    engine = resolve_runtime(runtime)
    chosen = get_method(method)
    trajectory = isinstance(chosen, TrajectoryMatching)
    with translated_errors():
        run_policy = policies.load_policy(policy) if policy is not None else None
    # read: trajectory methods run through the runtime, which also decides where the images are held (the Ray
    # runtime reads a source with Ray Data and keeps the images on the cluster); the others need them here
    loader = engine if trajectory or isinstance(engine, LocalRuntime) else LocalRuntime()
    raw = read_input(source, labels, loader, test_images=test_images, test_labels=test_labels,
                     class_names=class_names, holdout_fraction=holdout_fraction, seed=seed,
                     storage_options=storage_options, source_options=dict(source_options))
    configs = configs_for(raw, chosen, method, trajectory, run_policy, ipcs, preset, overrides, config, seed)
    check_feasible(raw, configs)

    def make_context(cfg: PadConfig) -> MethodContext:
        return MethodContext(loader.prepare(raw, cfg.zca), preset, dict(overrides or {}), seed, on_event,
                             runtime=engine, trajectory_store=trajectory_store, storage_options=storage_options,
                             validation_fraction=cfg.auto.validation_fraction)

    return Run(engine, chosen, trajectory, run_policy, raw, configs, make_context)


def read_prices(prices: Prices | Mapping[str, Any] | None) -> Prices:
    if prices is None or isinstance(prices, Prices):
        return prices or Prices()
    try:
        return Prices(**dict(prices))
    except ValidationError as exc:
        raise config_error(exc, "invalid prices") from exc


def estimate_for(run: Run, evaluate: bool, prices: Prices, trajectory_store: str | None, loaded_s: float) -> Plan:
    stored = run.raw.source.get("stored_bytes")
    start_up = getattr(run.engine, "start_up_costs", None)  # a runtime of the user's own may not measure it
    return estimate_run(run.configs, lambda cfg: Stages(cfg, run.context(cfg).data), trajectory=run.trajectory,
                        evaluate=evaluate, runtime=run.engine.name, prices=prices,
                        source_bytes=stored if isinstance(stored, int) else None, trajectory_store=trajectory_store,
                        start_up=start_up if callable(start_up) else None, loaded_s=loaded_s)


def configs_for(raw: RawData, chosen: Any, method: str, trajectory: bool, run_policy: policies.RunPolicy | None,
             ipcs: list[int] | None, preset: str, overrides: Mapping[str, Any] | None,
             config: PadConfig | Mapping[str, Any] | None, seed: int) -> list[PadConfig]:
    """One configuration per IPC: the preset, the method's and the policy's settings, then the overrides."""
    if config is not None:
        return [config if isinstance(config, PadConfig) else validate_config(dict(config))]
    targets = ipcs or [resolve_ipc(None, run_policy, raw)]
    policy_settings, user = policy_overrides(run_policy), {**(overrides or {}), "seed": seed}
    configs = []
    for target in targets:  # the method's settings may depend on the IPC (presets.published_start)
        method_overrides = chosen.overrides(preset, target) if trajectory and method != "pad" else {}
        configs.append(preset_config(preset, target, merge_settings(merge_settings(method_overrides, policy_settings),
                                                                    user)))
    return configs


def check_feasible(raw: RawData, configs: list[PadConfig]) -> None:
    """What would fail after hours of scoring and experts, refused before any training."""
    counts = torch.bincount(raw.train_labels, minlength=len(raw.class_names))
    present = int((counts > 0).sum())
    if present < 2:
        raise DataError(f"the training data has {present} class(es); condensing needs at least two (a one-class "
                        "classifier is always right)", field="labels")
    smallest = int(counts[counts > 0].min())
    for cfg in configs:
        if cfg.ipc > smallest and cfg.distill.pix_init != "noise":
            name = raw.class_names[int(torch.nonzero(counts == smallest)[0])]
            raise DataError(f"ipc={cfg.ipc} needs {cfg.ipc} real images per class, but class {name!r} has "
                            f"{smallest} training images; lower the IPC", field="ipc")


