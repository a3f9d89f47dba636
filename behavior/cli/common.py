"""What every ``painbattery`` command shares: the consoles, the progress bar, printing tables and mappings,
and the error policy (bad input: exit 2 and one line on stderr; anything else: exit 1 and one line).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()
err_console = Console(stderr=True)

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1

#: Exceptions that mean the user's input is wrong (exit 2), not that painbattery is broken (exit 1).
BAD_INPUT_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, KeyError)


def progress_bar() -> Progress:
    """The progress bar every long CLI job uses (stderr, so stdout stays clean for results)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def _print_mapping(title: str, values: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in values.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        table.add_row(key, str(value))
    console.print(table)


def _print_frame(df, title: str, max_rows: int = 40) -> None:
    table = Table(title=title, title_justify="left")
    for col in df.columns:
        table.add_column(str(col))
    for row in df.head(max_rows).itertuples(index=False):
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)
    if len(df) > max_rows:
        console.print(f"... {len(df) - max_rows} more rows")


def _one_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def run_with_exit_codes(app: typer.Typer) -> None:
    """Run ``app``, turning bad input into exit 2 and one line on stderr, other errors into exit 1."""
    try:
        app()
    except BAD_INPUT_ERRORS as exc:
        if os.environ.get("PAINBATTERY_DEBUG"):
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as exc:
        if os.environ.get("PAINBATTERY_DEBUG"):
            raise
        print(
            f"internal error: {type(exc).__name__}: {_one_line(exc)} (set PAINBATTERY_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        sys.exit(EXIT_INTERNAL)
