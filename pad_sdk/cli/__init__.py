"""The ``pad-sdk`` command line: distill, sweep, evaluate, report, inspect, demo.

Every command prints human output on the terminal (tables on stdout, progress and logs on stderr) and
exits with a code a batch scheduler can act on (see ``EXIT_*``). Library code never prints; this package does.
"""

from pad_sdk.cli import _commands  # noqa: F401  (importing registers the commands on ``app``)
from pad_sdk.cli._base import EXIT_INTERNAL, EXIT_OK, EXIT_POLICY, EXIT_USAGE, app

__all__ = ["EXIT_INTERNAL", "EXIT_OK", "EXIT_POLICY", "EXIT_USAGE", "app", "main"]


def main() -> None:
    """Console entry point (``pad-sdk``)."""
    app()
