"""Running ``distill`` and ``sweep`` from the command line: options, policy, runtime, export and report."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import typer

from pad_sdk.cli._base import (
    EXIT_OK,
    EXIT_POLICY,
    SETTINGS,
    console,
    log,
    out,
    parse_assignments,
    progress_sink,
    storage_options_from,
)
from pad_sdk.presets import merge_settings


@dataclass(frozen=True)
class RunOptions:
    """Everything ``distill`` and ``sweep`` share, gathered once from the command line."""

    source: str
    output: str
    preset: str
    policy_file: Path | None
    policy_limits: dict[str, dict[str, float]]
    overrides: dict[str, Any]
    seed: int
    holdout_fraction: float
    runtime: str
    workers: int
    address: str | None
    run_id: str | None
    ray_storage: str | None
    use_gpu: bool
    gpus_per_task: float | None
    fallback: str
    storage_options: dict[str, Any] | None
    trajectory_store: str | None
    overwrite: bool
    prices: dict[str, Any]
    source_options: dict[str, Any]
    force: bool = False
    data_memory_gib: float | None = None
    data_dir: str | None = None


def _policy_limits(min_retention: float | None, max_recall_drop: float | None, max_seed_std: float | None,
                   max_wall_time: float | None, max_compute_cost: float | None = None) -> dict[str, dict[str, float]]:
    limits = {"acceptance": {"min_retention": min_retention, "max_seed_std": max_seed_std},
              "bias": {"max_class_recall_drop": max_recall_drop},
              "budget": {"max_wall_time_s": max_wall_time, "max_compute_cost": max_compute_cost}}
    return {section: {k: v for k, v in values.items() if v is not None} for section, values in limits.items()
            if any(v is not None for v in values.values())}


def _policy(opts: RunOptions, ipc_hint: int) -> Any:
    """The policy from --policy, with the limit flags applied on top; flags alone start from the defaults."""
    import policies

    if opts.policy_file is None and not opts.policy_limits:
        return None
    if opts.policy_file is not None:
        base = policies.load_policy(opts.policy_file).model_dump(mode="json", exclude_none=True)
    else:
        base = policies.RunPolicy.default_for_ipc(ipc_hint, name="command-line limits").model_dump(
            mode="json", exclude_none=True)
    return policies.load_policy(merge_settings(base, opts.policy_limits))


# Runtime fields the command line sets, by the option that sets them (for usage errors).
_RUNTIME_OPTIONS = {"run_id": "--run-id", "storage": "--ray-storage", "num_workers": "--workers",
                    "address": "--address", "gpus_per_task": "--gpus-per-task",
                    "data_memory_gib": "--data-memory-gib", "data_dir": "--data-dir"}


def _runtime(opts: RunOptions) -> Any:
    from pad_sdk.errors import ConfigError
    from pad_sdk.runtime import resolve_runtime

    options: dict[str, Any] = {k: v for k, v in (("data_memory_gib", opts.data_memory_gib),
                                                 ("data_dir", opts.data_dir)) if v is not None}
    if opts.runtime == "ray":
        extra = {"run_id": opts.run_id} if opts.run_id is not None else {}  # "" reaches the validator, not a new id
        options.update(num_workers=opts.workers, address=opts.address, storage=opts.ray_storage,
                       storage_options=opts.storage_options, use_gpu=opts.use_gpu, gpus_per_task=opts.gpus_per_task,
                       **extra)
    try:
        return resolve_runtime(opts.runtime, **options)
    except ConfigError as exc:
        option = _RUNTIME_OPTIONS.get((exc.field or "").split(".")[0])
        if option is None:
            raise
        message = str(exc).split(": ", 2)[-1].removeprefix("Value error, ")
        raise typer.BadParameter(message, param_hint=option) from exc


def _public_url(url: str | None) -> str | None:
    """``url`` without a user or password in it: what may be printed and kept in a report."""
    if url is None:
        return None
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _ray_run(runtime: Any) -> dict[str, Any]:
    """How to find (and resume) a Ray run: its id, storage, workers and cluster; empty for the local runtime."""
    if getattr(runtime, "name", None) != "ray":
        return {}
    from pad_sdk.runtime.ray import DEFAULT_STORAGE

    facts = {"run_id": runtime.run_id, "storage": _public_url(runtime.storage or DEFAULT_STORAGE),
             "workers": runtime.num_workers, "address": _public_url(runtime.address)}
    return {k: v for k, v in facts.items() if v is not None}


def _resume_hint(ray_run: dict[str, Any]) -> str:
    return f"--run-id {shlex.quote(ray_run['run_id'])} --ray-storage {shlex.quote(ray_run['storage'])}"


def _refuse_existing(uris: list[str], opts: RunOptions) -> None:
    """Fail before hours of compute rather than after, when an export is in the way."""
    import connectors
    from pad_sdk.errors import ConfigError, translated_errors

    if opts.overwrite:
        return
    for uri in uris:
        with translated_errors():
            exists = connectors.export_exists(uri, storage_options=opts.storage_options)
        if exists:
            raise ConfigError(f"an export already exists at {uri}; pass --overwrite or choose another --output",
                              field="output")


def execute(opts: RunOptions, ipcs: list[int] | None, kind: str) -> int:
    from pad_sdk.api import sweep
    from pad_sdk.reports import Prices, build_report, save_report
    from pad_sdk.reports.text import summary_table, verdict_lines

    prices = Prices(**opts.prices)
    policy = _policy(opts, min(ipcs) if ipcs else 10)
    base = opts.output.rstrip("/")
    _refuse_existing([base] if kind == "distill" else [f"{base}/ipc-{k}" for k in ipcs or []], opts)
    runtime = _runtime(opts)
    ray_run = _ray_run(runtime)
    log.info("cli.start", command=kind, source=opts.source, ipcs=ipcs, preset=opts.preset, runtime=opts.runtime,
             **{f"ray_{k}": v for k, v in ray_run.items()})
    if ray_run and not SETTINGS.log_json:  # with --log-json, cli.start above carries the run id
        console.print(f"Ray run {ray_run['run_id']} (storage {ray_run['storage']}); to resume it if interrupted, "
                      f"rerun this command with {_resume_hint(ray_run)}", markup=False, highlight=False,
                      soft_wrap=True)
    try:
        with progress_sink() as sink:
            results = sweep(opts.source, ipcs=ipcs, preset=opts.preset, overrides=opts.overrides, policy=policy,
                            seed=opts.seed, holdout_fraction=opts.holdout_fraction,
                            trajectory_store=opts.trajectory_store, storage_options=opts.storage_options,
                            on_event=sink, runtime=runtime, fallback=opts.fallback, prices=prices,
                            force=opts.force, **opts.source_options)
    except BaseException:
        if ray_run and SETTINGS.log_json:
            log.warning("cli.ray_run_stopped", run_id=ray_run["run_id"], storage=ray_run["storage"])
        elif ray_run:
            console.print(f"Ray run {ray_run['run_id']} stopped; resume it with the same command and "
                          f"{_resume_hint(ray_run)}", markup=False, highlight=False, soft_wrap=True)
        raise
    finally:
        shutdown = getattr(runtime, "shutdown", None)
        if callable(shutdown):
            shutdown()
    uris = [base] if kind == "distill" else [f"{base}/ipc-{r.config.ipc}" for r in results]  # a stop may cut IPCs
    manifests = [r.save(uri, storage_options=opts.storage_options, overwrite=opts.overwrite)
                 for r, uri in zip(results, uris, strict=True)]
    report = build_report(results, manifests=manifests, export_uris=uris, prices=prices, runtime=opts.runtime,
                          runtime_options=ray_run)
    written = save_report(report, base, storage_options=opts.storage_options)
    out.print(summary_table(report))
    for line in verdict_lines(report):
        console.print(line, markup=False, highlight=False)
    out.print(f"export: {', '.join(uris)}\nreport: {written['json']}\nreport: {written['html']}",
              markup=False, highlight=False)
    if report.estimate is not None:
        est = report.estimate
        out.print(f"estimated {est.estimated_total_s:,.0f} s, took {est.actual_total_s:,.0f} s; peak memory estimated "
                  f"{est.estimated_peak_host_bytes / 2**20:,.0f} MiB, measured "
                  f"{(est.actual_peak_host_bytes or 0) / 2**20:,.0f} MiB (per stage: report.html)",
                  markup=False, highlight=False)
    partial = next((r for r in results if r.partial), None)
    if partial is not None:
        stop = partial.decisions["budget_stop"]
        console.print(f"stopped at the budget ({stop['budget']} = {stop['limit']:g}) during {stop['stage']}; "
                      f"the export holds the set as it was; not done: {', '.join(stop['not_done'])}",
                      markup=False, highlight=False, soft_wrap=True)
    log.info("cli.done", command=kind, overall=report.overall.value, recommended_ipc=report.recommended_ipc,
             report=written["html"])
    if any(r.partial for r in results):
        return EXIT_POLICY  # the budget cut the run: outputs are written, but it is not complete
    if policy is None:  # judged with default limits only for the reviewer's information
        return EXIT_OK
    failed = report.recommended_ipc is None if kind == "sweep" else report.overall.value == "fail"
    return EXIT_POLICY if failed else EXIT_OK


def show_plan(opts: RunOptions, ipcs: list[int] | None, as_json: bool) -> int:
    """``pad-sdk plan``: the estimate of the distill/sweep these options describe, as a table or JSON."""
    from rich.table import Table

    from pad_sdk.api import plan
    from pad_sdk.plans import format_seconds

    runtime = _runtime(opts)
    try:
        estimate = plan(opts.source, ipcs=ipcs, preset=opts.preset, overrides=opts.overrides,
                        policy=_policy(opts, min(ipcs) if ipcs else 10), seed=opts.seed,
                        holdout_fraction=opts.holdout_fraction, trajectory_store=opts.trajectory_store,
                        storage_options=opts.storage_options, runtime=runtime, fallback=opts.fallback,
                        prices=opts.prices, **opts.source_options)
    finally:
        shutdown = getattr(runtime, "shutdown", None)
        if callable(shutdown):
            shutdown()
    if as_json:
        out.print_json(estimate.model_dump_json())
    else:
        load = "unknown" if estimate.load_average is None else f"{estimate.load_average:.1f}"
        cpus = "" if estimate.cpus is None else f" on {estimate.cpus} CPUs"
        table = Table(title=f"Estimate for IPC {', '.join(map(str, estimate.ipcs))} on {estimate.device} "
                            f"({estimate.train_images:,} training images, load average {load}{cpus})")
        for column in ("stage", "time", "work", "host extra MiB", "cost"):
            table.add_column(column, justify="left" if column in ("stage", "work") else "right")
        for st in estimate.stages:
            table.add_row(st.stage, format_seconds(st.seconds), st.work, f"{st.extra_host_bytes / 2**20:,.1f}",
                          f"{st.cost:,.4f}")
        table.add_row("total", format_seconds(estimate.seconds), "", f"peak {estimate.peak_host_bytes / 2**20:,.0f}",
                      f"{estimate.cost:,.4f} {estimate.currency}")
        out.print(table)
        out.print(estimate.line(), markup=False, highlight=False, soft_wrap=True)
        for broken in estimate.over_budget:
            console.print(f"over budget: {broken['budget']} = {broken['limit']:g}, estimate {broken['estimate']:,.2f}; "
                          f"cut: {'; '.join(estimate.cuts)}; or run with --force", markup=False, highlight=False,
                          soft_wrap=True)
    return EXIT_POLICY if estimate.over_budget else EXIT_OK


def _local_path_absolute(url: str | None) -> str | None:
    """A local path as an absolute one: a Ray worker may run in another working directory than the driver."""
    if url is None or "://" in url:
        return url
    return os.path.abspath(os.path.expanduser(url))


def _ray_only(runtime: str, run_id: str | None, ray_storage: str | None) -> None:
    """--run-id and --ray-storage name a Ray run: refused (exit 2) rather than ignored without --runtime ray."""
    for option, value in (("--run-id", run_id), ("--ray-storage", ray_storage)):
        if value is not None and runtime == "local":
            raise typer.BadParameter("applies only with --runtime ray (this run is local)", param_hint=option)
        if value is not None and not value.strip():
            raise typer.BadParameter("must not be empty", param_hint=option)


def run_options(source: str, output: str | None, preset: str, policy: Path | None, limits: dict[str, dict[str, float]],
             sets: list[str] | None, seed: int, holdout_fraction: float, runtime: str, workers: int,
             address: str | None, run_id: str | None, ray_storage: str | None, endpoint_url: str | None,
             storage_option: list[str] | None, trajectory_store: str | None, overwrite: bool,
             prices: dict[str, Any], source_option: list[str] | None, use_gpu: bool = False,
             gpus_per_task: float | None = None, fallback: str = "none", force: bool = False, *,
             data_memory_gib: float | None = None, data_dir: str | None = None) -> RunOptions:
    _ray_only(runtime, run_id, ray_storage)
    if fallback not in ("none", "subset"):
        raise typer.BadParameter(f"choose none or subset, got {fallback!r}", param_hint="--fallback")
    if output is not None and not output.strip().rstrip("/"):  # given, but empty or "/"
        raise typer.BadParameter(f"must name a folder, got {output!r}", param_hint="--output")
    output = output if output is not None else ""  # plan writes nothing (None); distill and sweep give one
    if output and "://" not in output and os.path.isfile(os.path.expanduser(output)):
        raise typer.BadParameter(f"{output} is a file; the export needs a folder", param_hint="--output")
    on_ray = runtime == "ray"
    return RunOptions(
        source=source, output=output, preset=preset, policy_file=policy, policy_limits=limits,
        overrides=parse_assignments(sets, "--set"), seed=seed, holdout_fraction=holdout_fraction, runtime=runtime,
        workers=workers, address=address, run_id=run_id, ray_storage=_local_path_absolute(ray_storage),
        use_gpu=use_gpu, gpus_per_task=gpus_per_task, fallback=fallback,
        storage_options=storage_options_from(endpoint_url, storage_option),
        trajectory_store=_local_path_absolute(trajectory_store) if on_ray else trajectory_store,
        overwrite=overwrite, prices=prices, source_options=parse_assignments(source_option, "--source-option"),
        force=force, data_memory_gib=data_memory_gib, data_dir=data_dir,
    )
