"""The ``painbattery`` command line: the root app, ``--version`` and the entry point.

Exit codes: 0 success, 2 bad input (one line on stderr, never a traceback), 1 internal error
(one line; set ``PAINBATTERY_DEBUG=1`` for the traceback).

Each command group lives in a module of its own with a ``register(app)`` function; a new assay family
adds its module and one line to ``_GROUPS`` below. Heavy imports (torch, pandas, fastapi, ...) stay inside
the command functions, so ``painbattery --help`` is fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from behavior import __version__
from behavior.cli import assays, behaviours, burrowing, evoked, gait, grimace, place_preference, pose, service, study
from behavior.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    _one_line,
    _print_frame,
    _print_mapping,
    console,
    err_console,
    progress_bar,
    run_with_exit_codes,
)

app = typer.Typer(
    name="painbattery",
    help="Score rodent pain behaviour from video: pose, assay features, the standardised battery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"painbattery {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """painbattery: the rodent pain behaviour battery."""


# Registration order is the order ``painbattery --help`` lists commands (and, after them, groups) in.
_GROUPS = (pose, evoked, study, assays, service, burrowing, grimace, gait, place_preference, behaviours)
for _group in _GROUPS:
    _group.register(app)


def main() -> None:
    """Entry point: run the app, turning bad input into exit 2 and one line on stderr."""
    run_with_exit_codes(app)


__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERNAL",
    "_one_line",
    "_print_frame",
    "_print_mapping",
    "app",
    "console",
    "err_console",
    "main",
    "progress_bar",
]


if __name__ == "__main__":
    main()
