"""The ``painbattery`` command line.

Exit codes: 0 success, 2 bad input (one line on stderr, never a traceback), 1 internal error
(one line; set ``PAINBATTERY_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from behavior import __version__

app = typer.Typer(
    name="painbattery",
    help="Score rodent pain behaviour from video: pose, assay features, the standardised battery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
pose_app = typer.Typer(help="Pose files and models.", no_args_is_help=True)
app.add_typer(pose_app, name="pose")

console = Console()
err_console = Console(stderr=True)

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1


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


# ------------------------------------------------------------------------------------------- info


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


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="A video or a pose file (DeepLabCut, SLEAP, NWB, netCDF).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show what a video or pose file holds."""
    from behavior.video import VIDEO_SUFFIXES, probe_video

    if file.suffix.lower() in VIDEO_SUFFIXES:
        values = probe_video(file).as_dict()
        title = f"video {file.name}"
    else:
        from pose_models.io import load_poses
        from pose_models.poses import poses_summary

        values = {"path": str(file), **poses_summary(load_poses(file))}
        title = f"poses {file.name}"
    if as_json:
        console.print_json(json.dumps(values))
    else:
        _print_mapping(title, values)


# ------------------------------------------------------------------------------------------- pose


@pose_app.command("convert")
def pose_convert(
    src: Annotated[Path, typer.Argument(help="Input pose file.")],
    dst: Annotated[Path, typer.Argument(help="Output pose file; its suffix picks the format.")],
    fps: Annotated[float | None, typer.Option(help="Frame rate, for inputs that do not store it.")] = None,
) -> None:
    """Convert a pose file to another format (.h5/.csv DeepLabCut, .slp, .analysis.h5, .nwb, .nc)."""
    from pose_models.io import detect_format, load_poses, save_poses

    if src.resolve() == dst.resolve():
        raise ValueError(f"expected an output path different from the input, got {dst}")
    detect_format(dst, for_writing=True)  # refuse an unknown output suffix before reading anything
    ds = load_poses(src, fps=fps)
    save_poses(ds, dst)
    console.print(
        f"wrote {dst} ({ds.sizes['time']} frames, {ds.sizes['keypoints']} keypoints, "
        f"{ds.sizes['individuals']} individual(s))"
    )


# --------------------------------------------------------------------------------- simulate / demo


@app.command()
def simulate(
    assay: Annotated[str, typer.Argument(help="Assay to simulate, or 'study' for a whole small study.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (created if missing).")],
    n_clips: Annotated[int, typer.Option(min=1, help="Number of clips (single assay).")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 0,
    animals_per_group: Annotated[int, typer.Option(min=1, help="Animals per group ('study').")] = 2,
) -> None:
    """Write synthetic-rig clips: video, ground-truth poses (.h5) and session sidecar (.json) per clip."""
    from behavior import synthetic
    from behavior.provenance import write_provenance

    if assay != "study" and assay not in synthetic.SIMULATORS:
        known = ", ".join(["study", *sorted(synthetic.SIMULATORS)])
        raise ValueError(f"unknown assay {assay!r}, expected one of {known}")
    out.mkdir(parents=True, exist_ok=True)
    with progress_bar() as progress:
        task = progress.add_task(f"simulating {assay}", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        if assay == "study":
            manifest = synthetic.simulate_study(out, seed=seed, animals_per_group=animals_per_group, progress=report)
            console.print(f"wrote study manifest {manifest}")
        else:
            sidecars = synthetic.simulate(assay, out, n_clips=n_clips, seed=seed, progress=report)
            console.print(f"wrote {len(sidecars)} {assay} clip(s) to {out}")
    config = {"assay": assay, "n_clips": n_clips, "seed": seed, "animals_per_group": animals_per_group}
    outputs = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "provenance.json")
    write_provenance(out, command=f"simulate {assay}", config=config, outputs=outputs)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo-output"),
    seed: Annotated[int, typer.Option(help="Random seed of the simulated study.")] = 0,
) -> None:
    """Simulate a small CCI + MSC study on the synthetic rig and show what it holds."""
    from behavior import synthetic
    from behavior.provenance import write_provenance
    from behavior.session import read_manifest
    from behavior.video import probe_video

    out.mkdir(parents=True, exist_ok=True)
    study_dir = out / "study"
    with progress_bar() as progress:
        task = progress.add_task("simulating study", total=None)
        manifest = synthetic.simulate_study(
            study_dir,
            seed=seed,
            n_jobs=min(2, os.cpu_count() or 1),
            progress=lambda d, t: progress.update(task, completed=d, total=t),
        )
    sessions = read_manifest(manifest)
    outputs = sorted(p for p in study_dir.rglob("*") if p.is_file() and p.name != "provenance.json")
    write_provenance(study_dir, command="demo", config={"seed": seed}, outputs=outputs)
    groups = sorted({s.group for s in sessions})
    timepoints = list(dict.fromkeys(s.timepoint for s in sessions))
    console.print(
        f"simulated study [bold]{manifest}[/bold]: {len(sessions)} sessions, "
        f"{len({s.animal_id for s in sessions})} animals, groups {', '.join(groups)}, "
        f"timepoints {', '.join(timepoints)}"
    )
    table = Table(title_justify="left")
    for col in ("assay", "domain", "sessions", "frames", "size", "fps"):
        table.add_column(col)
    for assay in sorted({s.assay for s in sessions}):
        these = [s for s in sessions if s.assay == assay]
        vinfo = probe_video(these[0].video) if these[0].video else None
        table.add_row(
            assay,
            these[0].domain,
            str(len(these)),
            str(vinfo.n_frames) if vinfo else "-",
            f"{vinfo.width}x{vinfo.height}" if vinfo else "-",
            f"{these[0].fps:g}",
        )
    console.print(table)
    console.print("Scoring this study end to end arrives with the battery (painbattery score).")


# ------------------------------------------------------------------------------------------ entry


def _one_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def main() -> None:
    """Entry point: run the app, turning bad input into exit 2 and one line on stderr."""
    try:
        app()
    except (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, KeyError) as exc:
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


if __name__ == "__main__":
    main()
