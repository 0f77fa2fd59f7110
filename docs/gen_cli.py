"""Generate docs/cli.md from the CLI itself: ``.venv/bin/python docs/gen_cli.py``.

Every command of the ``pad-sdk`` Typer app is listed with its ``--help`` text exactly as a terminal 80
columns wide shows it. ``tests/docs/test_build.py`` fails when the committed page differs from this output,
so the reference cannot fall behind the CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from pad_sdk.cli import app

PAGE = Path(__file__).with_name("cli.md")
WIDTH = 80

HEADER = """# CLI reference

This page is generated from the command line itself (`docs/gen_cli.py` runs `pad-sdk <command> --help` for
every command); a test fails when it is out of date. For a guided tour see the [Quickstart](quickstart.md),
for exit codes in batch jobs see [Running on Ray](ray.md#exit-codes-and-logs).

Every option that takes a URL accepts a local path or any fsspec URL (`s3://bucket/prefix/`, ...).
`--set KEY=VALUE` overrides one setting of the preset (the keys are the fields of `PadConfig`, see the
[API reference](api.md#pad_sdk.PadConfig)); `--source-option KEY=VALUE` says how to read the source.
"""


def command_names() -> list[str]:
    group = typer.main.get_command(app)
    return list(group.commands)  # type: ignore[attr-defined]


def help_text(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], terminal_width=WIDTH, env={"COLUMNS": str(WIDTH)},
                                prog_name="pad-sdk")
    if result.exit_code != 0:
        raise RuntimeError(f"pad-sdk {' '.join(args)} --help exited {result.exit_code}: {result.output}")
    return "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())


def render() -> str:
    parts = [HEADER, "## pad-sdk\n", "```text\n" + help_text() + "\n```\n"]
    for name in command_names():
        parts.append(f"## pad-sdk {name}\n")
        parts.append("```text\n" + help_text(name) + "\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE}", file=sys.stderr)
