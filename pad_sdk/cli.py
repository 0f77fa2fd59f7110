"""The ``pad-sdk`` command line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="pad-sdk: condense labelled image datasets with PAD and report what it keeps.",
                  no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


def _configure_logging(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.WARNING
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level),
                        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))


class _Bars:
    """Rich progress bars fed by the pipeline's ``on_event`` callback, one bar per stage."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int, **facts: Any) -> None:
        if stage not in self.tasks or done == 0 and self.progress.tasks[self.tasks[stage]].finished:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        loss = facts.get("loss")
        label = f"{stage} (loss {loss:.3f})" if isinstance(loss, float) else stage
        self.progress.update(self.tasks[stage], completed=done, total=total, description=label)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


@app.command()
def demo(
    output: Annotated[Path, typer.Option(help="directory for the condensed sets and the report")] = Path("demo-output"),
    preset: Annotated[str, typer.Option(help="settings preset: cpu-small, tiny or paper")] = "cpu-small",
    ipc: Annotated[list[int] | None, typer.Option(help="images per class (repeat for several)")] = None,
    seed: int = 0,
    verbose: bool = False,
) -> None:
    """Run PAD on scikit-learn's bundled digits and print full-data vs random vs PAD accuracy."""
    from pad_sdk.demo import run_demo

    _configure_logging(verbose)
    with _progress() as progress:
        result = run_demo(output, preset=preset, ipcs=tuple(ipc or (1, 10)), seed=seed, on_event=_Bars(progress))
    table = Table(title=f"PAD on digits (holdout accuracy, preset {preset})")
    for column in ("IPC", "images", "full data", "random subset", "PAD", "seconds"):
        table.add_column(column, justify="right")
    for row in result.rows():
        full = "-" if row["full"] is None else f"{100 * row['full']:.1f}"
        rand = "-" if row["random_mean"] is None else f"{100 * row['random_mean']:.1f} ± {100 * row['random_std']:.1f}"
        table.add_row(str(row["ipc"]), str(row["images"]), full, rand,
                      f"{100 * row['pad_mean']:.1f} ± {100 * row['pad_std']:.1f}", f"{row['seconds']:.0f}")
    Console().print(table)
    console.print(f"report: {result.report_path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
