"""The ``pad-sdk`` command line: distill, sweep, evaluate, report, inspect, demo.

Every command prints human output on the terminal (tables on stdout, progress and logs on stderr) and
exits with a code a batch scheduler can act on (see ``EXIT_*``). Library code never prints; this module does.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
import structlog
import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

EXIT_OK, EXIT_POLICY, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

HELP = """pad-sdk: shrink a labelled image dataset into a small synthetic one with PAD, and report what it keeps.

\b
Typical session:
  pad-sdk inspect ./digits/                       # what is in the data (classes, counts, bytes)
  pad-sdk distill ./digits/ --ipc 10 -o ./out/    # condense; writes the export + report.json + report.html
  pad-sdk sweep s3://bucket/data/ --ipc 1 --ipc 10 --ipc 50 -o s3://bucket/out/ --policy policy.yaml
  pad-sdk evaluate ./out/ --source ./digits/      # re-check an export on the source's holdout
  pad-sdk report ./out/report.json -o review.html # re-render a saved report

\b
IPC = images per class in the condensed set. Presets: tiny (seconds, tests), cpu-small (minutes on a
laptop, the default), paper (the published settings, GPU).
Global options (--log-json, --debug, -v) go before the command: pad-sdk --log-json distill ...

\b
Exit codes:
  0  success (policy passed or warned, or no policy given)
  1  policy failure: a rule of the given policy failed (for sweep: no IPC passed); outputs are still written
  2  usage, configuration, data or storage error (one line on stderr says what to fix)
  3  unexpected internal error (rerun with --debug for the traceback, and report it)
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})
# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns; logs are read wider than that.
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(stderr=True, width=_WIDTH)  # progress, logs, errors
out = Console(width=_WIDTH)  # results a script may capture
log = structlog.get_logger("pad_sdk.cli")


@dataclass
class _Settings:
    log_json: bool = False
    debug: bool = False
    verbose: bool = False


SETTINGS = _Settings()


def configure_logging(*, verbose: bool = False, log_json: bool = False) -> None:
    """structlog to stderr: JSON lines with ``--log-json`` (for log shippers), else readable console lines."""
    level = logging.INFO if verbose or log_json else logging.WARNING
    renderer: Any = (structlog.processors.JSONRenderer() if log_json
                     else structlog.dev.ConsoleRenderer(colors=console.is_terminal))
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.processors.format_exc_info,
                    renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr), cache_logger_on_first_use=False,
    )


@app.callback()
def _global(
    log_json: Annotated[bool, typer.Option("--log-json", help="logs as JSON lines on stderr (no progress bars)")]
    = False,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks on errors")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log every stage (info level)")] = False,
) -> None:
    SETTINGS.log_json, SETTINGS.debug, SETTINGS.verbose = log_json, debug, verbose
    configure_logging(verbose=verbose, log_json=log_json)


F = TypeVar("F", bound=Callable[..., Any])


def handled(command: F) -> F:
    """Map outcomes to exit codes: a command returns its code; errors become one line on stderr."""
    import connectors
    import policies
    from pad_sdk.errors import PadError

    expected = (PadError, connectors.ConnectorError, policies.PolicyError, pydantic.ValidationError)

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own exits and usage errors (BadParameter: exit 2) pass through
        except expected as exc:
            _fail(exc, EXIT_USAGE)
        except Exception as exc:
            _fail(exc, EXIT_INTERNAL)
        raise typer.Exit(code or EXIT_OK)

    return wrapper  # type: ignore[return-value]


def _fail(exc: BaseException, code: int) -> None:
    if SETTINGS.debug:
        console.print_exception()
    kind = "error" if code == EXIT_USAGE else "internal error"
    log.error("cli.failed", error=type(exc).__name__, message=str(exc), exit_code=code)
    hint = "" if SETTINGS.debug or code == EXIT_USAGE else " (rerun with --debug for the traceback)"
    console.print(f"[bold red]{kind}[/]: {type(exc).__name__}: {exc}{hint}", markup=True, highlight=False,
                  soft_wrap=True)
    raise typer.Exit(code)


# -- progress ----------------------------------------------------------------------------------------
class _Bars:
    """Rich progress bars fed by the pipeline's ``on_event`` callback, one bar per stage."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int, **facts: Any) -> None:
        if stage not in self.tasks or (done == 0 and self.progress.tasks[self.tasks[stage]].finished):
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        loss = facts.get("loss")
        label = f"{stage} (loss {loss:.3f})" if isinstance(loss, float) else stage
        self.progress.update(self.tasks[stage], completed=done, total=total, description=label)


def _log_events(stage: str, done: int, total: int, **facts: Any) -> None:
    """With --log-json, stage starts and ends become log records instead of bars."""
    if done == 0 or done == total:
        log.info("stage.progress", stage=stage, done=done, total=total,
                 **{k: v for k, v in facts.items() if isinstance(v, str | int | float)})


def _progress() -> Progress:
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


@contextmanager
def progress_sink() -> Iterator[Callable[..., None]]:
    """An ``on_event`` callback: bars for people, log records with --log-json."""
    if SETTINGS.log_json:
        yield _log_events
        return
    with _progress() as progress:
        yield _Bars(progress)


# -- option parsing ----------------------------------------------------------------------------------
def parse_assignments(items: list[str] | None, option: str) -> dict[str, Any]:
    """``["distill.iterations=50", "zca=true"]`` -> nested dict; values are YAML scalars (50, true, 0.5)."""
    nested: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        target = nested
        *parents, leaf = key.strip().split(".")
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise typer.BadParameter(f"{key!r} sets a value below a value", param_hint=option)
        target[leaf] = value
    return nested


def storage_options_from(endpoint_url: str | None, options: list[str] | None) -> dict[str, Any] | None:
    """fsspec storage options from ``--storage-option k=v`` (dotted keys nest) and ``--endpoint-url``."""
    parsed = parse_assignments(options, "--storage-option")
    if endpoint_url:
        parsed.setdefault("client_kwargs", {})["endpoint_url"] = endpoint_url
    return parsed or None


# -- shared options ----------------------------------------------------------------------------------
Source = Annotated[str, typer.Argument(
    help="dataset URL: local directory/file or s3://bucket/prefix/ (Parquet, image folder, IDX or npz)")]
Output = Annotated[str, typer.Option("--output", "-o", help="URL to write the condensed set, report.json and "
                                     "report.html to (local directory or s3://...)")]
Preset = Annotated[str, typer.Option(help="settings preset: tiny (seconds), cpu-small (minutes), paper (GPU)")]
PolicyFile = Annotated[Path | None, typer.Option("--policy", help="policy file (YAML/JSON) with the limits to judge "
                                                 "by; see docs/examples/policies/", dir_okay=False)]
MinRetention = Annotated[float | None, typer.Option(help="policy: least condensed/full accuracy kept (0.7 = 70%)")]
MaxRecallDrop = Annotated[float | None, typer.Option(help="policy: largest per-class recall drop vs full data")]
MaxSeedStd = Annotated[float | None, typer.Option(help="policy: largest accuracy std across evaluation seeds")]
MaxWallTime = Annotated[float | None, typer.Option(help="policy: longest run time in seconds")]
Sets = Annotated[list[str] | None, typer.Option("--set", help="override a setting, e.g. --set distill.iterations=50 "
                                                "(repeatable)")]
Seed = Annotated[int, typer.Option(help="seed of every random choice (same seed, same result on CPU)")]
Holdout = Annotated[float, typer.Option(help="holdout share when the source has no test split")]
RuntimeName = Annotated[str, typer.Option("--runtime", help="where to run: local (this process) or ray")]
Workers = Annotated[int, typer.Option(help="Ray: distillation workers")]
Address = Annotated[str | None, typer.Option(help="Ray: cluster address (default RAY_ADDRESS, else a local one)")]
Endpoint = Annotated[str | None, typer.Option(help="S3-compatible endpoint, e.g. http://127.0.0.1:9000")]
StorageOpts = Annotated[list[str] | None, typer.Option("--storage-option", help="fsspec storage option KEY=VALUE, "
                                                       "e.g. key=..., secret=..., anon=true (repeatable)")]
SourceOpts = Annotated[list[str] | None, typer.Option("--source-option", help="how to read the source, KEY=VALUE: "
                                                      "image_column, label_column, group_column, split_column, "
                                                      "format (repeatable)")]
Trajectories = Annotated[str | None, typer.Option(help="URL to keep expert trajectories (resumable)")]
Overwrite = Annotated[bool, typer.Option(help="replace an existing export at --output")]
Currency = Annotated[str, typer.Option(help="currency of the prices below (ISO 4217)")]
StoragePrice = Annotated[float, typer.Option(help="storage price per GB-month (default: S3 Standard)")]
TransferPrice = Annotated[float, typer.Option(help="transfer-out price per GB (default: S3 internet egress)")]
Reads = Annotated[float, typer.Option(help="full read-outs of the dataset per month, for the transfer cost")]
CpuHour = Annotated[float, typer.Option(help="price of a CPU machine-hour (default: m7i.large)")]
GpuHour = Annotated[float, typer.Option(help="price of a GPU machine-hour (default: g5.xlarge)")]


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


def _runtime(opts: RunOptions) -> Any:
    from pad_sdk.errors import ConfigError

    if opts.runtime == "local":
        return "local"
    if opts.runtime != "ray":
        raise ConfigError(f"unknown runtime {opts.runtime!r}; choose local or ray", field="runtime")
    try:
        from pad_sdk.runtime.ray import RayRuntime  # Ray is heavy: imported only when asked for
    except ImportError as exc:
        raise ConfigError(f"the Ray runtime is not available here: {exc}", field="runtime") from exc
    return RayRuntime.model_validate({"num_workers": opts.workers, "address": opts.address,
                                      "storage_options": opts.storage_options})


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
    log.info("cli.start", command=kind, source=opts.source, ipcs=ipcs, preset=opts.preset, runtime=opts.runtime)
    try:
        with progress_sink() as sink:
            results = sweep(opts.source, ipcs=ipcs, preset=opts.preset, overrides=opts.overrides, policy=policy,
                            seed=opts.seed, holdout_fraction=opts.holdout_fraction,
                            trajectory_store=opts.trajectory_store, storage_options=opts.storage_options,
                            on_event=sink, runtime=runtime, **opts.source_options)
    finally:
        shutdown = getattr(runtime, "shutdown", None)
        if callable(shutdown):
            shutdown()
    uris = [base] if kind == "distill" else [f"{base}/ipc-{r.config.ipc}" for r in results]
    manifests = [r.save(uri, storage_options=opts.storage_options, overwrite=opts.overwrite)
                 for r, uri in zip(results, uris, strict=True)]
    report = build_report(results, manifests=manifests, export_uris=uris, prices=prices, runtime=opts.runtime)
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


def _options(source: str, output: str, preset: str, policy: Path | None, limits: dict[str, dict[str, float]],
             sets: list[str] | None, seed: int, holdout_fraction: float, runtime: str, workers: int,
             address: str | None, endpoint_url: str | None, storage_option: list[str] | None,
             trajectory_store: str | None, overwrite: bool, prices: dict[str, Any],
             source_option: list[str] | None) -> RunOptions:
    return RunOptions(
        source=source, output=output, preset=preset, policy_file=policy, policy_limits=limits,
        overrides=parse_assignments(sets, "--set"), seed=seed, holdout_fraction=holdout_fraction, runtime=runtime,
        workers=workers, address=address, storage_options=storage_options_from(endpoint_url, storage_option),
        trajectory_store=trajectory_store, overwrite=overwrite, prices=prices,
        source_options=parse_assignments(source_option, "--source-option"),
    )


@app.command()
@handled
def distill(
    source: Source, output: Output, ipc: Annotated[int | None, typer.Option(
        help="images per class (default: the policy's compression target, else 10)")] = None,
    preset: Preset = "cpu-small", policy: PolicyFile = None, min_retention: MinRetention = None,
    max_recall_drop: MaxRecallDrop = None, max_seed_std: MaxSeedStd = None, max_wall_time: MaxWallTime = None,
    sets: Sets = None, seed: Seed = 0, holdout_fraction: Holdout = 0.2, runtime: RuntimeName = "local",
    workers: Workers = 2, address: Address = None, endpoint_url: Endpoint = None, storage_option: StorageOpts = None,
    trajectory_store: Trajectories = None, overwrite: Overwrite = False, currency: Currency = "USD",
    storage_price: StoragePrice = 0.023, transfer_price: TransferPrice = 0.09, reads_per_month: Reads = 1.0,
    cpu_hour_price: CpuHour = 0.10, gpu_hour_price: GpuHour = 1.01, source_option: SourceOpts = None,
) -> int:
    """Condense SOURCE at one IPC; write the export, report.json and report.html to --output."""
    prices = dict(currency=currency, storage_per_gb_month=storage_price, transfer_per_gb=transfer_price,
                  reads_per_month=reads_per_month, cpu_hour=cpu_hour_price, gpu_hour=gpu_hour_price)
    opts = _options(source, output, preset, policy,
                    _policy_limits(min_retention, max_recall_drop, max_seed_std, max_wall_time), sets, seed,
                    holdout_fraction, runtime, workers, address, endpoint_url, storage_option, trajectory_store,
                    overwrite, prices, source_option)
    return _execute(opts, None if ipc is None else [ipc], "distill")


@app.command("sweep")
@handled
def sweep_command(
    source: Source, output: Output,
    ipc: Annotated[list[int], typer.Option(help="an IPC to try (repeat: --ipc 1 --ipc 10 --ipc 50)")],
    preset: Preset = "cpu-small", policy: PolicyFile = None, min_retention: MinRetention = None,
    max_recall_drop: MaxRecallDrop = None, max_seed_std: MaxSeedStd = None, max_wall_time: MaxWallTime = None,
    sets: Sets = None, seed: Seed = 0, holdout_fraction: Holdout = 0.2, runtime: RuntimeName = "local",
    workers: Workers = 2, address: Address = None, endpoint_url: Endpoint = None, storage_option: StorageOpts = None,
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
                    holdout_fraction, runtime, workers, address, endpoint_url, storage_option, trajectory_store,
                    overwrite, prices, source_option)
    return _execute(opts, sorted(set(ipc)), "sweep")

def evaluate_export(export: str, source: str, *, seeds: int | None, storage_options: dict[str, Any] | None,
                    on_event: Callable[..., None] | None = None) -> dict[str, Any]:
    """Train fresh networks on an export and test them on SOURCE's holdout (the export's own split is reused:
    same seed and fraction, so the holdout is the one the run measured on)."""
    import torch

    from pad_sdk.api import load_source
    from pad_sdk.config import validate_config
    from pad_sdk.core.evaluate import evaluate_set
    from pad_sdk.core.training import LabelledImages
    from pad_sdk.errors import ConfigError, DataError
    from pad_sdk.pipeline import PreparedData, Stages
    from pad_sdk.presets import preset_config
    from pad_sdk.result import load_condensed

    condensed = load_condensed(export, storage_options=storage_options)
    run = condensed.metadata.get("run") or {}
    config = validate_config(run["config"]) if run.get("config") else preset_config("cpu-small", condensed.ipc)
    if condensed.metadata.get("zca"):
        raise ConfigError("this export was made with ZCA whitening, which it does not store; evaluate it in the "
                          "pipeline that made it", field="zca")
    if seeds is not None:
        config = config.model_copy(update={"evaluation": config.evaluation.model_copy(update={"seeds": seeds})})
    split = (condensed.metadata.get("source") or {}).get("split") or {}
    raw = load_source(source, holdout_fraction=float(split.get("fraction", 0.2)), seed=int(split.get("seed", 0)),
                      storage_options=storage_options)
    if raw.class_names != condensed.class_names or raw.test_images.shape[1:] != condensed.images.shape[1:]:
        raise DataError(f"the source has classes {list(raw.class_names)} and images {tuple(raw.test_images.shape[1:])}"
                        f"; the export {list(condensed.class_names)} and {tuple(condensed.images.shape[1:])}",
                        field="source")
    k = len(condensed.class_names)
    test = LabelledImages(condensed.normalisation.apply(raw.test_images), raw.test_labels, k)
    data = PreparedData(LabelledImages(condensed.images, condensed.labels, k), test, condensed.class_names,
                        condensed.normalisation)
    stages = Stages(config, data, on_event=on_event)
    targets = condensed.label_logits if condensed.label_logits is not None else condensed.labels
    lr = condensed.learned_lr or config.evaluation.random_lr
    stages.on_event("evaluate", 0, config.evaluation.seeds)
    result = evaluate_set(condensed.images, targets, test, stages.network_factory(), config.evaluation.recipe(lr),
                          seeds=config.evaluation.seeds, seed=config.seed + 41, augment=stages.augment,
                          device=stages.device)
    stages.on_event("evaluate", config.evaluation.seeds, config.evaluation.seeds)
    recorded = (run.get("accuracy") or {})
    same_holdout = split.get("holdout_sha256") in (None, (raw.source.get("split") or {}).get("holdout_sha256"))
    return {
        "export": export, "source": raw.source.get("uri"), "ipc": condensed.ipc, "images": len(condensed.labels),
        "holdout_rows": int(raw.test_labels.numel()), "same_holdout_as_run": same_holdout,
        "condensed": result.to_dict(), "class_names": list(condensed.class_names),
        "recorded_condensed_mean": (recorded.get("condensed") or {}).get("mean"),
        "recorded_full_mean": (recorded.get("full") or {}).get("mean"),
        "recorded_full_recall": (recorded.get("full") or {}).get("per_class_recall"),
        "device": str(torch.device(stages.device)),
    }


def _judge_evaluation(measured: dict[str, Any], policy_file: Path) -> Any:
    import policies

    names = measured["class_names"]
    recall = measured["condensed"]["per_class_recall"]
    results: dict[str, Any] = {
        "ipc": measured["ipc"], "class_names": names, "condensed_accuracies": measured["condensed"]["accuracies"],
        "per_class_recall_condensed": {n: v for n, v in zip(names, recall, strict=True) if v == v},
    }
    if measured["recorded_full_mean"] is not None:  # the full-data reference the export's run measured
        results["full_accuracy"] = measured["recorded_full_mean"]
    if measured["recorded_full_recall"]:
        results["per_class_recall_full"] = {
            n: v for n, v in zip(names, measured["recorded_full_recall"], strict=True) if v is not None and v == v}
    return policies.load_policy(policy_file).judge(results)


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


def main() -> None:
    """Console entry point (``pad-sdk``)."""
    app()


if __name__ == "__main__":
    main()
