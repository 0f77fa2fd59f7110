"""Shared plumbing of the ``pad-sdk`` command line: the app, consoles, logging, progress, option parsing."""

from __future__ import annotations

import functools
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
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

EXIT_OK, EXIT_POLICY, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

HELP = """pad-sdk: shrink a labelled image dataset into a small synthetic one with PAD, and report what it keeps.

\b
Typical session:
  pad-sdk inspect ./digits/                       # what is in the data (classes, counts, bytes)
  pad-sdk plan ./digits/ --ipc 10                 # what a distill will cost (time, memory, bytes, money)
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
    if SETTINGS.log_json:  # one line either way: the JSON record for machines, else the sentence for people
        log.error("cli.failed", error=type(exc).__name__, message=str(exc), exit_code=code)
    else:
        hint = "" if SETTINGS.debug or code == EXIT_USAGE else " (rerun with --debug for the traceback)"
        console.print(f"[bold red]{kind}[/]: {type(exc).__name__}: {exc}{hint}", markup=True, highlight=False,
                      soft_wrap=True)
    raise typer.Exit(code)


# -- progress ----------------------------------------------------------------------------------------
class _Bars:
    """Rich progress bars fed by the pipeline's ``on_event`` callback, one bar per stage, moving by epoch and
    iteration, with the stage's remaining time and, on the first bar, the whole run's (from the estimate)."""

    def __init__(self, progress: Progress) -> None:
        from pad_sdk.progress import Eta

        self.progress = progress
        self.tasks: dict[str, Any] = {}
        self.eta = Eta()
        self.run_task = progress.add_task("run (estimating)", total=None)

    def __call__(self, stage: str, done: int, total: int, **facts: Any) -> None:
        from pad_sdk.plans import format_seconds
        from pad_sdk.progress import fraction_done

        if stage == "plan":
            self.eta.plan = facts.get("plan")
            return
        self.eta.update(stage, done, total, facts)
        if stage not in self.tasks or (done == 0 and self.progress.tasks[self.tasks[stage]].finished):
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        loss = facts.get("loss")
        label = f"{stage} (loss {loss:.3f})" if isinstance(loss, float) else stage
        self.progress.update(self.tasks[stage], completed=fraction_done(done, total, facts) * total, total=total,
                             description=label)
        left = self.eta.run_remaining()
        self.progress.update(self.run_task, description="run" if left is None else
                             f"run: about {format_seconds(left)} left")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False)


@contextmanager
def progress_sink() -> Iterator[Callable[..., None]]:
    """An ``on_event`` callback: bars with remaining time on a terminal; otherwise (a batch job's log file, or
    --log-json) ``stage.progress`` info records per stage start and end and at least every 30 s."""
    from pad_sdk.progress import ProgressLog, heartbeat

    if SETTINGS.log_json or not console.is_terminal:
        if not (SETTINGS.log_json or SETTINGS.verbose):
            configure_logging(verbose=True, log_json=False)  # a log file is the batch job's only progress display
        try:
            with heartbeat(ProgressLog(logger=log), interval=5.0) as sink:
                yield sink
        finally:
            configure_logging(verbose=SETTINGS.verbose, log_json=SETTINGS.log_json)
        return
    with _progress() as progress:
        yield _Bars(progress)


# -- option parsing ----------------------------------------------------------------------------------
def parse_assignments(items: list[str] | None, option: str, *, secret: bool = False) -> dict[str, Any]:
    """``["distill.iterations=50", "zca=true"]`` -> nested dict; values are YAML scalars (50, true, 0.5).

    With ``secret`` (storage options carry credentials) a malformed item is not repeated in the error."""
    nested: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            shown = "an item without one (not shown: it may hold a secret)" if secret else repr(item)
            raise typer.BadParameter(f"expected KEY=VALUE, got {shown}", param_hint=option)
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
    parsed = parse_assignments(options, "--storage-option", secret=True)
    if endpoint_url:
        parsed.setdefault("client_kwargs", {})["endpoint_url"] = endpoint_url
    return parsed or None


# -- shared options ----------------------------------------------------------------------------------
Source = Annotated[str, typer.Argument(
    help="dataset URL: local directory/file or s3://bucket/prefix/ (Parquet, image folder, IDX or npz)")]
Output = Annotated[str | None, typer.Option("--output", "-o", help="URL to write the condensed set, report.json and "
                                     "report.html to (local directory or s3://...)")]
Preset = Annotated[str, typer.Option(help="settings preset: tiny (seconds), cpu-small (minutes), paper (GPU)")]
PolicyFile = Annotated[Path | None, typer.Option("--policy", help="policy file (YAML/JSON) with the limits to judge "
                                                 "by; see docs/examples/policies/", dir_okay=False)]
MinRetention = Annotated[float | None, typer.Option(help="policy: least condensed/full accuracy kept (0.7 = 70%)")]
MaxRecallDrop = Annotated[float | None, typer.Option(help="policy: largest per-class recall drop vs full data")]
MaxSeedStd = Annotated[float | None, typer.Option(help="policy: largest accuracy std across evaluation seeds")]
MaxWallTime = Annotated[float | None, typer.Option(help="policy: longest run time in seconds (a run estimated "
                                                  "longer is refused before training; one that gets there stops)")]
MaxComputeCost = Annotated[float | None, typer.Option(help="policy: most compute spend, in --currency, at "
                                                      "--cpu-hour-price/--gpu-hour-price (enforced like "
                                                      "--max-wall-time)")]
Force = Annotated[bool, typer.Option("--force", help="run even when the estimate breaks the budget (the run still "
                                     "stops when it reaches the budget)")]
PlanJson = Annotated[bool, typer.Option("--json", help="plan: print the estimate as JSON on stdout")]
Sets = Annotated[list[str] | None, typer.Option("--set", help="override a setting, e.g. --set distill.iterations=50 "
                                                "(repeatable)")]
Seed = Annotated[int, typer.Option(help="seed of every random choice (same seed, same result on CPU)")]
Holdout = Annotated[float, typer.Option(help="holdout share when the source has no test split")]
RuntimeName = Annotated[str, typer.Option("--runtime", help="where to run: local (this process) or ray")]
Workers = Annotated[int, typer.Option(help="Ray: distillation workers")]
DataMemory = Annotated[float | None, typer.Option("--data-memory-gib", help="a source whose images take more GiB "
                                                  "than this (in their stored dtype) is streamed once into a file "
                                                  "under --data-dir and memory-mapped (Ray: on each node that runs "
                                                  "a task, never through the object store; default: a quarter of "
                                                  "the available memory, on Ray at most half the smallest object "
                                                  "store; 0: always)")]
DataDir = Annotated[str | None, typer.Option("--data-dir", help="folder for that file (Ray: on each node; default: "
                                             "the system's temporary directory)")]
Fallback = Annotated[str, typer.Option("--fallback", help="subset: deliver the best real subset of the same size "
                                       "(herding, k-center, random) when it beats the condensed set on the "
                                       "validation split; none: only report the comparison")]
UseGpu = Annotated[bool, typer.Option("--use-gpu", help="Ray: one GPU per distillation worker (and per task, unless "
                                      "--gpus-per-task says otherwise)")]
GpusPerTask = Annotated[float | None, typer.Option("--gpus-per-task", help="Ray: GPUs per scoring, expert and "
                                                   "evaluation task; fractional shares a GPU (0.25: four per GPU)")]
Address = Annotated[str | None, typer.Option(help="Ray: cluster address (default RAY_ADDRESS, else a local one)")]
RunId = Annotated[str | None, typer.Option("--run-id", help="Ray: run id; rerunning with the same --run-id and "
                                          "--ray-storage resumes an interrupted run (default: a new id, printed "
                                          "at the start)")]
RayStorage = Annotated[str | None, typer.Option("--ray-storage", help="Ray: fsspec URL shared by all workers for "
                                                "checkpoints and trajectories, e.g. s3://bucket/pad-runs/ "
                                                "(default: a directory under the system temp directory)")]
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
