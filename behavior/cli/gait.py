"""``painbattery gait POSES``: stance / swing, strides, inter-limb phase and prints from paw tracks (+ video).

With ``--mode side`` (beam, treadmill): step cycles per visible paw and joint angles over the normalised
step cycle (:mod:`behavior.features.gait_side`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from behavior.cli.common import _print_frame, console, write_assay_result


def register(app: typer.Typer) -> None:
    """Add the ``gait`` command to the root app."""
    app.command("gait")(gait)


def gait(
    poses: Annotated[Path, typer.Argument(help="Paw tracks: DLC .csv/.h5, SLEAP, NWB or netCDF poses.")],
    fps: Annotated[float, typer.Option("--fps", help="Frame rate of the tracks (frames per second).")],
    px_per_mm: Annotated[float, typer.Option("--px-per-mm", help="Scale of the video (pixels per mm).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder for the tables, measures and footfall.png.")],
    video: Annotated[Path | None, typer.Option("--video", help="Bottom-up video, for print area / intensity.")] = None,
    side: Annotated[str | None, typer.Option("--side", help="Injured (ipsilateral) paw side: left or right.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="walkway, open-field or side (default: config).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Gait config override key=value.")] = None,
) -> None:
    """Per-step, per-run/bout and per-session gait tables, the pain ratios and a footfall diagram.

    Side view (``--mode side``): stances, step cycles, per-frame joint angles, the angles normalised per
    cycle and their mean / SD per bin (gait_side_*.csv), measures, footfall.png (stance bars per paw) and
    angles.png (mean +- SD of each angle over the normalised step cycle).
    """

    from behavior.assays import get_assay
    from behavior.features.gait import GaitError, analyse_gait, footfall_figure, gait_result
    from pose_models.io import load_poses

    if side is not None and side not in ("left", "right"):
        raise GaitError(f"expected --side left or right, got {side!r}")
    overrides = list(set_ or [])
    if mode is not None:
        if mode not in ("walkway", "open-field", "side"):
            raise GaitError(f"expected --mode walkway, open-field or side, got {mode!r}")
        overrides.append(f"mode={mode}")
    overrides.append("measures=all")
    config = get_assay("gait").load_config(overrides)
    if not (fps > 0):
        raise GaitError(f"expected --fps > 0, got {fps}")
    if video is not None and not video.is_file():
        raise FileNotFoundError(f"video not found: {video}")
    tracks = load_poses(poses, fps=fps)
    if config.mode == "side":  # type: ignore[attr-defined]
        _side_view(tracks, poses, fps, px_per_mm, config, out)
        return
    analysis = analyse_gait(tracks, fps, px_per_mm, config, video=video)  # type: ignore[arg-type]
    result = gait_result(analysis, fps, side, "all")
    fig = footfall_figure(analysis.stances[analysis.stances["in_kept_bout"]], fps, side=side, title=poses.name)
    fig.tight_layout()
    measures = write_assay_result(
        result,
        out,
        command="gait",
        config=config,
        inputs=[poses, *([video] if video is not None else [])],
        figures={"footfall": fig},
    )
    keep = measures[measures["measure"].isin(_SHOWN) | measures["measure"].str.contains("_ratio_")]
    _print_frame(keep[["measure", "value", "unit", "n", "quality"]], f"gait: {poses.name}")
    q = result.quality
    unit = "run" if config.mode == "walkway" else "bout"  # type: ignore[attr-defined]
    console.print(
        f"{q[f'{unit}s_kept']} of {q[f'{unit}s_found']} {unit}s kept, {q['strides']} strides, "
        f"{q['stances_incomplete']} stances not timed; wrote {out}"
    )


_SHOWN = {
    "stride_length_mm",
    "duty_cycle",
    "cadence_hz",
    "body_speed_mm_s",
    "phase_lf_rh",
    "phase_rf_lh",
    "phase_lf_rf",
    "phase_lh_rh",
    "base_of_support_fore_mm",
    "base_of_support_hind_mm",
    "regularity_index_percent",
}


def _side_view(tracks: Any, poses: Path, fps: float, px_per_mm: float, config: Any, out: Path) -> None:
    """``--mode side``: step cycles and joint angles of the visible paws, tables and angles.png in ``out``."""

    from behavior.features.gait_side import analyse_side_view, angle_figure, side_view_result, step_figure

    analysis = analyse_side_view(tracks, fps, px_per_mm, config)
    result = side_view_result(analysis)
    figures = {"footfall": step_figure(analysis.stances, fps, title=poses.name)}
    if not analysis.angle_curves.empty:
        figures["angles"] = angle_figure(analysis.angle_curves, title=poses.name)
    measures = write_assay_result(result, out, command="gait", config=config, inputs=[poses], figures=figures)
    keep = measures[~measures["measure"].str.contains("_ratio_")]
    _print_frame(keep[["measure", "value", "unit", "n", "quality"]], f"gait (side view): {poses.name}")
    q = result.quality
    console.print(
        f"{q['strides']} step cycles ({q['paws']}), {q['stances_incomplete']} stances not timed, "
        f"floor {q['floor_line']}, {q['direction']}; angles: {q['angles'] or 'none'}; wrote {out}"
    )
