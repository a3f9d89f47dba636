"""``painbattery burrowing VIDEO``: substrate displaced from a tube over time, from side video of the tube."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from behavior.cli.common import _print_frame, console, progress_bar, write_assay_result


def register(app: typer.Typer) -> None:
    """Add the ``burrowing`` command to the root app."""
    app.command("burrowing")(burrowing)


def burrowing(
    video: Annotated[Path, typer.Argument(help="Video of the tube (a time-lapse is fine: give its real --fps).")],
    roi: Annotated[str, typer.Option("--roi", help="Tube interior x,y,w,h in the video's pixels.")],
    fps: Annotated[float, typer.Option("--fps", help="Real capture rate (frames per real second).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder for burrowing_frames.csv and measures.csv.")],
    start_g: Annotated[float | None, typer.Option("--start-g", help="Substrate weighed into the tube (g).")] = None,
    end_g: Annotated[float | None, typer.Option("--end-g", help="Substrate left in the tube at the end (g).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Burrowing config override key=value.")] = None,
) -> None:
    """% substrate displaced (at the end and at checkpoints), latency to start, time burrowing."""

    from behavior.assays import get_assay
    from behavior.features.burrowing import check_tube_roi, score_burrowing_video
    from pose_models.video import ROI

    tube = ROI.parse(roi)
    overrides = list(set_ or [])
    overrides += [f"start_g={start_g}"] if start_g is not None else []
    overrides += [f"end_g={end_g}"] if end_g is not None else []
    config = get_assay("burrowing").load_config(overrides)
    check_tube_roi(video, (tube.x, tube.y, tube.width, tube.height))
    with progress_bar() as bar:
        task = bar.add_task("burrowing", total=100)
        result = score_burrowing_video(
            video,
            (tube.x, tube.y, tube.width, tube.height),
            fps,
            config,  # type: ignore[arg-type]
            progress=lambda f: bar.update(task, completed=round(100 * f)),
        )
    measures = write_assay_result(result, out, command="burrowing", config=config, inputs=[video])
    _print_frame(measures[["measure", "value", "unit", "n", "quality"]], f"burrowing: {video.name}")
    q = result.quality
    console.print(
        f"{q['frames_sampled']} frames sampled, {q['frames_occluded']} left out (animal hides the tube), "
        f"{q['frames_failed']} not decoded; wrote {out}"
    )
