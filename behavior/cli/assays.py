"""``painbattery assays``: every registered assay with its domain, inputs, measures and config file."""

from __future__ import annotations

from typing import Annotated

import typer

from behavior.cli.common import console


def register(app: typer.Typer) -> None:
    """Add ``assays`` to the root app."""
    app.command(name="assays")(list_assays)


def _shown(path) -> str:
    """A config path relative to the package's configs folder when it lies there."""
    from behavior.config import config_dir

    try:
        return str(path.relative_to(config_dir().parent))
    except ValueError:
        return str(path)


def list_assays(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every registered assay (built-in and plug-in): domain, inputs, measures with units, config."""
    import json

    from rich.table import Table

    from behavior.assays import registered_assays

    specs = registered_assays()
    rows = [
        {
            "assay": spec.name,
            "domain": spec.domain,
            "inputs": spec.inputs(),
            "measures": [{"measure": m.name, "unit": m.unit, "description": m.description} for m in spec.measures],
            "config": _shown(spec.config_path),
            "description": spec.description,
        }
        for spec in specs.values()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="registered assays")
    for column in ("assay", "domain", "inputs", "measures (unit)", "config"):
        table.add_column(column)
    for r in rows:
        measures = ", ".join(f"{m['measure']} ({m['unit']})" if m["unit"] else m["measure"] for m in r["measures"])
        table.add_row(r["assay"], r["domain"], ", ".join(r["inputs"]) or "-", measures, r["config"])
    console.print(table)
