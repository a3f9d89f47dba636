"""What every ``painbattery`` command shares: the consoles, the progress bar, printing tables and mappings,
and the error policy (bad input: exit 2 and one line on stderr; anything else: exit 1 and one line).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
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


def write_assay_result(
    result: Any,
    out: Path,
    *,
    command: str,
    config: Any,
    inputs: list[Path],
    figures: dict[str, Any] | None = None,
) -> Any:
    """Write a single-session command's result to ``out`` and return its measures frame.

    Each of the result's tables goes to ``<name>.csv``, its measures to ``measures.csv``, its quality
    figures to ``quality.csv``, each figure to ``<name>.png``; ``provenance.json`` lists them all.

    Parameters
    ----------
    result
        An :class:`behavior.features.base.AssayResult`.
    out
        Output folder (created).
    command, config, inputs
        What :func:`behavior.provenance.write_provenance` records (``config``: the assay's config model).
    figures
        Matplotlib figures by file stem.
    """
    import pandas as pd

    from behavior.provenance import write_provenance

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, table in result.tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
        written.append(out / f"{name}.csv")
    measures = result.measures_frame()
    measures.to_csv(out / "measures.csv", index=False)
    pd.DataFrame([result.quality]).to_csv(out / "quality.csv", index=False)
    written += [out / "measures.csv", out / "quality.csv"]
    for name, fig in (figures or {}).items():
        fig.savefig(out / f"{name}.png", dpi=110)
        written.append(out / f"{name}.png")
    write_provenance(out, command=command, config=config.model_dump(mode="json"), inputs=inputs, outputs=written)
    return measures
