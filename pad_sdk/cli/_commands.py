"""The ``pad-sdk`` commands: distill, sweep, evaluate, report, inspect, demo (registered on import)."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import pydantic
import typer
from rich.table import Table

from pad_sdk.cli._base import (
    EXIT_OK,
    EXIT_POLICY,
    SETTINGS,
    Address,
    CpuHour,
    Currency,
    Endpoint,
    GpuHour,
    Holdout,
    MaxRecallDrop,
    MaxSeedStd,
    MaxWallTime,
    MinRetention,
    Output,
    Overwrite,
    PolicyFile,
    Preset,
    RayStorage,
    Reads,
    RunId,
    RuntimeName,
    Seed,
    Sets,
    Source,
    SourceOpts,
    StorageOpts,
    StoragePrice,
    Trajectories,
    TransferPrice,
    Workers,
    app,
    configure_logging,
    console,
    handled,
    log,
    out,
    parse_assignments,
    progress_sink,
    storage_options_from,
)
from pad_sdk.cli._evaluate import _judge_evaluation, evaluate_export


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
    storage_options: dict[str, Any] | None
    trajectory_store: str | None
    overwrite: bool
    prices: dict[str, Any]
    source_options: dict[str, Any]


def _policy_limits(min_retention: float | None, max_recall_drop: float | None, max_seed_std: float | None,
                   max_wall_time: float | None) -> dict[str, dict[str, float]]:
    limits = {"acceptance": {"min_retention": min_retention, "max_seed_std": max_seed_std},
              "bias": {"max_class_recall_drop": max_recall_drop}, "budget": {"max_wall_time_s": max_wall_time}}
    return {section: {k: v for k, v in values.items() if v is not None} for section, values in limits.items()
            if any(v is not None for v in values.values())}


def _merged(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in updates.items():
        merged[key] = _merged(merged.get(key) or {}, value) if isinstance(value, dict) else value
    return merged


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
    return policies.load_policy(_merged(base, opts.policy_limits))


# RayRuntime fields the command line sets, by the option that sets them (for usage errors).
_RAY_OPTIONS = {"run_id": "--run-id", "storage": "--ray-storage", "num_workers": "--workers", "address": "--address"}


def _runtime(opts: RunOptions) -> Any:
    from pad_sdk.errors import ConfigError

    if opts.runtime == "local":
        return "local"
    if opts.runtime != "ray":
        raise ConfigError(f"unknown runtime {opts.runtime!r}; choose local or ray", field="runtime")
    try:
        from pad_sdk.runtime.ray import runtime_from_options  # Ray is heavy: imported only when asked for
    except ImportError as exc:
        raise ConfigError(f"the Ray runtime is not available here: {exc}", field="runtime") from exc
    try:
        return runtime_from_options("ray", workers=opts.workers, address=opts.address, storage=opts.ray_storage,
                                    run_id=opts.run_id, storage_options=opts.storage_options)
    except pydantic.ValidationError as exc:
        for error in exc.errors():
            option = _RAY_OPTIONS.get(str(error["loc"][0])) if error["loc"] else None
            if option is not None:
                message = str(error["msg"]).removeprefix("Value error, ")
                raise typer.BadParameter(message, param_hint=option) from exc
        raise


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
    import fsspec

    from pad_sdk.errors import ConfigError

    if opts.overwrite:
        return
    for uri in uris:
        fs, path = fsspec.core.url_to_fs(uri, **(opts.storage_options or {}))
        if fs.exists(f"{path.rstrip('/')}/manifest.json"):
            raise ConfigError(f"an export already exists at {uri}; pass --overwrite or choose another --output",
                              field="output")


def _execute(opts: RunOptions, ipcs: list[int] | None, kind: str) -> int:
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
                            on_event=sink, runtime=runtime, **opts.source_options)
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
    uris = [base] if kind == "distill" else [f"{base}/ipc-{r.config.ipc}" for r in results]
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
    log.info("cli.done", command=kind, overall=report.overall.value, recommended_ipc=report.recommended_ipc,
             report=written["html"])
    if policy is None:  # judged with default limits only for the reviewer's information
        return EXIT_OK
    failed = report.recommended_ipc is None if kind == "sweep" else report.overall.value == "fail"
    return EXIT_POLICY if failed else EXIT_OK


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


def _options(source: str, output: str, preset: str, policy: Path | None, limits: dict[str, dict[str, float]],
             sets: list[str] | None, seed: int, holdout_fraction: float, runtime: str, workers: int,
             address: str | None, run_id: str | None, ray_storage: str | None, endpoint_url: str | None,
             storage_option: list[str] | None, trajectory_store: str | None, overwrite: bool,
             prices: dict[str, Any], source_option: list[str] | None) -> RunOptions:
    _ray_only(runtime, run_id, ray_storage)
    on_ray = runtime == "ray"
    return RunOptions(
        source=source, output=output, preset=preset, policy_file=policy, policy_limits=limits,
        overrides=parse_assignments(sets, "--set"), seed=seed, holdout_fraction=holdout_fraction, runtime=runtime,
        workers=workers, address=address, run_id=run_id, ray_storage=_local_path_absolute(ray_storage),
        storage_options=storage_options_from(endpoint_url, storage_option),
        trajectory_store=_local_path_absolute(trajectory_store) if on_ray else trajectory_store,
        overwrite=overwrite, prices=prices, source_options=parse_assignments(source_option, "--source-option"),
    )


@app.command()
@handled
def distill(
    source: Source, output: Output, ipc: Annotated[int | None, typer.Option(
        help="images per class (default: the policy's compression target, else 10)")] = None,
    preset: Preset = "cpu-small", policy: PolicyFile = None, min_retention: MinRetention = None,
    max_recall_drop: MaxRecallDrop = None, max_seed_std: MaxSeedStd = None, max_wall_time: MaxWallTime = None,
    sets: Sets = None, seed: Seed = 0, holdout_fraction: Holdout = 0.2, runtime: RuntimeName = "local",
    workers: Workers = 2, address: Address = None, run_id: RunId = None, ray_storage: RayStorage = None,
    endpoint_url: Endpoint = None, storage_option: StorageOpts = None,
    trajectory_store: Trajectories = None, overwrite: Overwrite = False, currency: Currency = "USD",
    storage_price: StoragePrice = 0.023, transfer_price: TransferPrice = 0.09, reads_per_month: Reads = 1.0,
    cpu_hour_price: CpuHour = 0.10, gpu_hour_price: GpuHour = 1.01, source_option: SourceOpts = None,
) -> int:
    """Condense SOURCE at one IPC; write the export, report.json and report.html to --output."""
    prices = dict(currency=currency, storage_per_gb_month=storage_price, transfer_per_gb=transfer_price,
                  reads_per_month=reads_per_month, cpu_hour=cpu_hour_price, gpu_hour=gpu_hour_price)
    opts = _options(source, output, preset, policy,
                    _policy_limits(min_retention, max_recall_drop, max_seed_std, max_wall_time), sets, seed,
                    holdout_fraction, runtime, workers, address, run_id, ray_storage, endpoint_url, storage_option,
                    trajectory_store, overwrite, prices, source_option)
    return _execute(opts, None if ipc is None else [ipc], "distill")


@app.command("sweep")
@handled
def sweep_command(
    source: Source, output: Output,
    ipc: Annotated[list[int], typer.Option(help="an IPC to try (repeat: --ipc 1 --ipc 10 --ipc 50)")],
    preset: Preset = "cpu-small", policy: PolicyFile = None, min_retention: MinRetention = None,
    max_recall_drop: MaxRecallDrop = None, max_seed_std: MaxSeedStd = None, max_wall_time: MaxWallTime = None,
    sets: Sets = None, seed: Seed = 0, holdout_fraction: Holdout = 0.2, runtime: RuntimeName = "local",
    workers: Workers = 2, address: Address = None, run_id: RunId = None, ray_storage: RayStorage = None,
    endpoint_url: Endpoint = None, storage_option: StorageOpts = None,
    trajectory_store: Trajectories = None, overwrite: Overwrite = False, currency: Currency = "USD",
    storage_price: StoragePrice = 0.023, transfer_price: TransferPrice = 0.09, reads_per_month: Reads = 1.0,
    cpu_hour_price: CpuHour = 0.10, gpu_hour_price: GpuHour = 1.01, source_option: SourceOpts = None,
) -> int:
    """Condense SOURCE at several IPCs on the same experts (trained once) and recommend the smallest IPC that
    passes the policy. Writes --output/ipc-<k>/ exports and one report with the accuracy/cost curve."""
    prices = dict(currency=currency, storage_per_gb_month=storage_price, transfer_per_gb=transfer_price,
                  reads_per_month=reads_per_month, cpu_hour=cpu_hour_price, gpu_hour=gpu_hour_price)
    opts = _options(source, output, preset, policy,
                    _policy_limits(min_retention, max_recall_drop, max_seed_std, max_wall_time), sets, seed,
                    holdout_fraction, runtime, workers, address, run_id, ray_storage, endpoint_url, storage_option,
                    trajectory_store, overwrite, prices, source_option)
    return _execute(opts, sorted(set(ipc)), "sweep")

@app.command()
@handled
def evaluate(
    export: Annotated[str, typer.Argument(help="URL of an export written by distill or sweep")],
    source: Annotated[str, typer.Option(help="dataset URL whose holdout to test on (the export's source)")],
    seeds: Annotated[int | None, typer.Option(help="networks to train (default: as the run did)")] = None,
    policy: PolicyFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the measurements as JSON on stdout")] = False,
    endpoint_url: Endpoint = None, storage_option: StorageOpts = None,
) -> int:
    """Re-evaluate an existing export: train fresh networks on it and test on the source's holdout."""
    storage = storage_options_from(endpoint_url, storage_option)
    with progress_sink() as sink:
        measured = evaluate_export(export, source, seeds=seeds, storage_options=storage, on_event=sink)
    verdict = _judge_evaluation(measured, policy) if policy is not None else None
    if verdict is not None:
        measured["verdict"] = verdict.model_dump(mode="json")
    if as_json:
        out.print_json(json.dumps(measured))
    else:
        acc = measured["condensed"]
        title = f"Re-evaluation of {export} (IPC {measured['ipc']}, {measured['holdout_rows']} holdout rows)"
        table = Table(title=title)
        for column in ("class", "recall"):
            table.add_column(column, justify="right")
        for name, value in zip(measured["class_names"], acc["per_class_recall"], strict=True):
            table.add_row(name, "-" if value != value else f"{100 * value:.1f}%")
        out.print(table)
        recorded = measured["recorded_condensed_mean"]
        out.print(f"accuracy {100 * acc['mean']:.1f}% ± {100 * acc['std']:.1f}% over {len(acc['accuracies'])} "
                  f"networks" + ("" if recorded is None else f" (the run recorded {100 * recorded:.1f}%)"))
        if not measured["same_holdout_as_run"]:
            console.print("warning: this holdout differs from the one the run measured on")
        if verdict is not None:
            out.print(verdict.to_text(), markup=False, highlight=False)
    return EXIT_POLICY if verdict is not None and not verdict.passed else EXIT_OK


@app.command()
@handled
def report(
    report_json: Annotated[str, typer.Argument(help="a report.json written by distill, sweep or demo")],
    output: Annotated[str | None, typer.Option("--output", "-o", help="HTML file to write "
                                               "(default: report.html next to the JSON)")] = None,
    endpoint_url: Endpoint = None, storage_option: StorageOpts = None,
) -> int:
    """Render a saved report.json as the self-contained HTML report (and print its summary)."""
    from pad_sdk.reports import load_report, render_html
    from pad_sdk.reports.html import write_bytes
    from pad_sdk.reports.text import summary_table

    storage = storage_options_from(endpoint_url, storage_option)
    loaded = load_report(report_json, storage_options=storage)
    beside = report_json.rsplit("/", 1)[0] + "/report.html" if "/" in report_json else "report.html"
    target = output or beside
    write_bytes(target, render_html(loaded).encode(), storage)
    out.print(summary_table(loaded))
    out.print(f"report: {target}", markup=False, highlight=False)
    return EXIT_OK


@app.command()
@handled
def inspect(
    url: Annotated[str, typer.Argument(help="a dataset URL, or an export written by distill/sweep")],
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON on stdout")] = False,
    endpoint_url: Endpoint = None, storage_option: StorageOpts = None,
) -> int:
    """Show a source's schema and class counts, or an export's manifest (verified against its files)."""
    import fsspec

    import connectors
    from pad_sdk.errors import translated_errors

    storage = storage_options_from(endpoint_url, storage_option)
    fs, path = fsspec.core.url_to_fs(url, **(storage or {}))
    with translated_errors():
        if fs.exists(f"{path.rstrip('/')}/manifest.json"):
            manifest = connectors.read_condensed(url, storage_options=storage, verify=True).manifest
            info: dict[str, Any] = {"kind": "export", "verified": True, **manifest}
            info.pop("metadata", None)
        else:
            info = {"kind": "source", **connectors.open_source(url, storage_options=storage).schema.to_dict()}
    if as_json:
        out.print_json(json.dumps(info, default=str))
        return EXIT_OK
    table = Table(title=f"{info['kind']}: {url}", show_header=False)
    if info["kind"] == "export":
        schema = info["schema"]
        rows = [("format", f"{info['format']} v{info['version']} (manifest verified)"), ("created", info["created_at"]),
                ("images", schema["num_images"]), ("image shape", schema["image_shape"]),
                ("classes", ", ".join(info["class_names"])), ("learned lr", info["learned_lr"]),
                ("source", info["source"]), ("files", {k: v["size"] for k, v in info["files"].items()}),
                ("policy", (info.get("policy") or {}).get("name", "-") if info.get("policy") else "-")]
    else:
        rows = [(k, info[k]) for k in ("format", "num_rows", "image_shape", "dtype", "stored_bytes", "fingerprint",
                                       "splits", "split_counts", "group_column")]
        rows.append(("class counts", ", ".join(f"{n}: {c}" for n, c in
                                               zip(info["class_names"], info["class_counts"], strict=True))))
    for key, value in rows:
        table.add_row(key, str(value))
    out.print(table)
    return EXIT_OK


@app.command()
@handled
def demo(
    output: Annotated[Path, typer.Option(help="directory for the condensed sets and the report")] = Path("demo-output"),
    preset: Preset = "cpu-small",
    ipc: Annotated[list[int] | None, typer.Option(help="images per class (repeat for several)")] = None,
    seed: Seed = 0,
    verbose: Annotated[bool, typer.Option(help="log every stage")] = False,
) -> int:
    """Run PAD on scikit-learn's bundled digits (no download) and write report.json + report.html."""
    from pad_sdk.demo import run_demo
    from pad_sdk.reports.text import summary_table

    if verbose:
        configure_logging(verbose=True, log_json=SETTINGS.log_json)
    with progress_sink() as sink:
        result = run_demo(output, preset=preset, ipcs=tuple(ipc or (1, 10)), seed=seed, on_event=sink)
    table = Table(title=f"PAD on digits (holdout accuracy, preset {preset})")
    for column in ("IPC", "images", "full data", "random subset", "PAD", "seconds"):
        table.add_column(column, justify="right")
    for row in result.rows():
        full = "-" if row["full"] is None else f"{100 * row['full']:.1f}"
        rand = "-" if row["random_mean"] is None else f"{100 * row['random_mean']:.1f} ± {100 * row['random_std']:.1f}"
        table.add_row(str(row["ipc"]), str(row["images"]), full, rand,
                      f"{100 * row['pad_mean']:.1f} ± {100 * row['pad_std']:.1f}", f"{row['seconds']:.0f}")
    out.print(table)
    out.print(summary_table(result.report))
    out.print(f"report: {result.report_path}\nreport: {result.html_path}", markup=False, highlight=False)
    return EXIT_OK
