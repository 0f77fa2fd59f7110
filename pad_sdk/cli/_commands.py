"""The ``pad-sdk`` commands: distill, sweep, evaluate, report, inspect, demo (registered on import)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pad_sdk.cli._base import (
    EXIT_OK,
    EXIT_POLICY,
    SETTINGS,
    Address,
    CpuHour,
    Currency,
    DataDir,
    DataMemory,
    Endpoint,
    Fallback,
    Force,
    GpuHour,
    GpusPerTask,
    Holdout,
    MaxComputeCost,
    MaxRecallDrop,
    MaxSeedStd,
    MaxWallTime,
    MinRetention,
    Output,
    Overwrite,
    PlanJson,
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
    UseGpu,
    Workers,
    app,
    configure_logging,
    console,
    handled,
    out,
    progress_sink,
    storage_options_from,
)
from pad_sdk.cli._evaluate import _judge_evaluation
from pad_sdk.cli._run import _policy_limits, execute, run_options, show_plan

IpcList = Annotated[list[int] | None, typer.Option()]


def _run_command(kind: str, ipc_help: str, doc: str) -> Any:
    """``distill`` and ``sweep`` share every option but the IPC's meaning: one definition for both."""

    def command(
        source: Source, output: Output = None,
        ipc: IpcList = None,  # its help differs per command: set below
        preset: Preset = "cpu-small", policy: PolicyFile = None, min_retention: MinRetention = None,
        max_recall_drop: MaxRecallDrop = None, max_seed_std: MaxSeedStd = None, max_wall_time: MaxWallTime = None,
        max_compute_cost: MaxComputeCost = None,
        sets: Sets = None, seed: Seed = 0, holdout_fraction: Holdout = 0.2, runtime: RuntimeName = "local",
        workers: Workers = 2, address: Address = None, run_id: RunId = None, ray_storage: RayStorage = None,
        use_gpu: UseGpu = False, gpus_per_task: GpusPerTask = None, fallback: Fallback = "none",
        endpoint_url: Endpoint = None, storage_option: StorageOpts = None,
        trajectory_store: Trajectories = None, overwrite: Overwrite = False, currency: Currency = "USD",
        storage_price: StoragePrice = 0.023, transfer_price: TransferPrice = 0.09, reads_per_month: Reads = 1.0,
        cpu_hour_price: CpuHour = 0.10, gpu_hour_price: GpuHour = 1.01, source_option: SourceOpts = None,
        force: Force = False, as_json: PlanJson = False, data_memory_gib: DataMemory = None, data_dir: DataDir = None,
    ) -> int:
        if kind == "distill" and ipc is not None and len(ipc) > 1:
            raise typer.BadParameter("distill takes one IPC; use sweep for several", param_hint="--ipc")
        if kind == "sweep" and not ipc:
            raise typer.BadParameter("give at least one IPC (--ipc 1 --ipc 10 ...)", param_hint="--ipc")
        if kind != "plan" and output is None:
            raise typer.BadParameter("Missing option: the export needs a folder", param_hint="--output")
        if kind != "plan" and as_json:
            raise typer.BadParameter("applies only to plan (distill and sweep log JSON with --log-json)",
                                     param_hint="--json")
        prices = dict(currency=currency, storage_per_gb_month=storage_price, transfer_per_gb=transfer_price,
                      reads_per_month=reads_per_month, cpu_hour=cpu_hour_price, gpu_hour=gpu_hour_price)
        opts = run_options(source, output, preset, policy,
                           _policy_limits(min_retention, max_recall_drop, max_seed_std, max_wall_time,
                                          max_compute_cost), sets, seed,
                           holdout_fraction, runtime, workers, address, run_id, ray_storage, endpoint_url,
                           storage_option, trajectory_store, overwrite, prices, source_option, use_gpu, gpus_per_task,
                           fallback, force, data_memory_gib=data_memory_gib, data_dir=data_dir)
        if kind == "plan":
            return show_plan(opts, sorted(set(ipc)) if ipc else None, as_json)
        ipcs = (None if not ipc else list(ipc)) if kind == "distill" else sorted(set(ipc or []))
        return execute(opts, ipcs, kind)

    command.__doc__ = doc
    command.__name__ = kind
    command.__annotations__["ipc"] = Annotated[list[int] | None, typer.Option(help=ipc_help)]
    return handled(command)


app.command("distill")(_run_command(
    "distill", "images per class (default: the policy's compression target, else 10)",
    "Condense SOURCE at one IPC; write the export, report.json and report.html to --output."))
app.command("sweep")(_run_command(
    "sweep", "an IPC to try (repeat: --ipc 1 --ipc 10 --ipc 50)",
    "Condense SOURCE at several IPCs on the same experts (trained once) and recommend the smallest IPC that\n"
    "passes the policy. Writes --output/ipc-<k>/ exports and one report with the accuracy/cost curve."))
app.command("plan")(_run_command(
    "plan", "images per class (repeat to plan a sweep; default: the policy's compression target, else 10)",
    "Estimate what distill/sweep with the same options would cost, without training: per stage and in total\n"
    "the time, peak memory, bytes read and written and money, from a few timed batches on this machine.\n"
    "Exits 1 when the estimate breaks the policy's budget (--max-wall-time, --max-compute-cost)."))


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
    from pad_sdk.exports import evaluate_export

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
    import connectors
    from pad_sdk.errors import translated_errors

    storage = storage_options_from(endpoint_url, storage_option)
    with translated_errors():
        if connectors.export_exists(url, storage_options=storage):
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
