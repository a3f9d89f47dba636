"""``painbattery grimace ...``: score face recordings (Mouse / Rat Grimace Scale), calibrate to a lab's raters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from behavior.cli.common import _print_frame, _print_mapping, console

grimace_app = typer.Typer(
    help="Grimace scales: score face videos, calibrate the scorer to a lab's raters.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the ``grimace`` group to the root app."""
    app.add_typer(grimace_app, name="grimace")


def _config(set_: list[str] | None, calibration: Path | None, species: str | None):
    from behavior.assays import get_assay

    overrides = list(set_ or [])
    if species is not None:
        overrides.append(f"species={species}")
    config = get_assay("grimace").load_config(overrides)
    if calibration is not None:
        config = config.model_copy(update={"calibration": calibration})
    return config


@grimace_app.command("score")
def grimace_score(
    source: Annotated[Path, typer.Argument(help="A face video (with --model) or a face pose file (with --video).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    calibration: Annotated[
        Path | None, typer.Option(help="Calibrated scorer (painbattery grimace calibrate); default: geometry.")
    ] = None,
    video: Annotated[Path | None, typer.Option(help="The video of a pose file (for sharpness and crops).")] = None,
    model: Annotated[Path | None, typer.Option(help="Face pose model directory, to score a video.")] = None,
    fps: Annotated[float | None, typer.Option(help="Frame rate, if the pose file does not store it.")] = None,
    species: Annotated[str | None, typer.Option(help="mouse (MGS) or rat (RGS); default from the config.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override key.sub=value.")] = None,
) -> None:
    """Score a face recording: selected frames, AU scores, session means, contact sheet."""
    from behavior.features.grimace import (
        SCORE_MEASURE,
        _load_scorer,
        contact_sheet,
        frame_step,
        rejected_stretches,
        score_frames,
        session_measures,
    )
    from behavior.provenance import write_provenance
    from behavior.video import VIDEO_SUFFIXES
    from pose_models.io import load_poses

    config = _config(set_, calibration, species)
    scorer = _load_scorer(config)
    if not source.exists():
        raise FileNotFoundError(f"expected a face video or pose file, got no file {source}")
    if source.suffix.lower() in VIDEO_SUFFIXES:
        if model is None:
            raise ValueError(f"expected --model (a face pose model) to score the video {source}")
        from behavior.video import probe_video
        from pose_models.inference import PoseEstimator

        # face poses only on the frames the scoring examines (selection.pose_fps)
        step = frame_step(config, float(fps or probe_video(source).fps or 0))
        poses = PoseEstimator.from_dir(model).predict_video(source, step=step)
        video = source
    else:
        if video is None:
            raise ValueError(f"expected --video with the pose file {source} (sharpness and face crops need it)")
        poses = load_poses(source, fps=fps)
    rate = float(fps or poses.attrs.get("fps") or 0)
    if rate <= 0:
        from behavior.video import probe_video

        rate = float(probe_video(video).fps or 0)
    if rate <= 0:
        raise ValueError(f"expected the frame rate (--fps) for {source}, got none in the file or the video")
    table = score_frames(poses, video, config, fps=rate, scorer=scorer, step=frame_step(config, rate))
    measures = session_measures(table, config, scorer is not None)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "frames.csv", index=False)
    rejected = rejected_stretches(table, rate)
    rejected.to_csv(out / "rejected.csv", index=False)
    import pandas as pd

    session = pd.DataFrame([m.__dict__ for m in measures])
    session.to_csv(out / "session.csv", index=False)
    sheet = contact_sheet(video, table, out / "contact_sheet.png", config, title=source.name)
    write_provenance(
        out,
        command="grimace score",
        config=config.model_dump(mode="json"),
        inputs=[p for p in (source, video, calibration) if p is not None],
        outputs=[out / "frames.csv", out / "rejected.csv", out / "session.csv", sheet],
    )
    _print_frame(session, f"{SCORE_MEASURE[config.species]} ({measures[0].quality})")
    if len(rejected):
        _print_frame(rejected, "rejected stretches", max_rows=15)
    console.print(f"wrote {out}")


@grimace_app.command("calibrate")
def grimace_calibrate(
    scores: Annotated[Path, typer.Argument(help="CSV: video,frame (or image),animal,rater,<AU scores 0-2>[,pose].")],
    out: Annotated[Path, typer.Option("--out", help="Calibrated scorer to write (JSON).")],
    model: Annotated[
        Path | None,
        typer.Option(help="Face pose model directory: keypoints of still images and of videos without a pose file."),
    ] = None,
    species: Annotated[str | None, typer.Option(help="mouse (MGS) or rat (RGS); default from the config.")] = None,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds (grouped by animal).")] = 5,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override key.sub=value.")] = None,
) -> None:
    """Fit the AU scorer to a lab's human scores; report agreement under animal-grouped cross-validation."""
    from behavior.features.grimace_calibration import calibrate, read_scores_csv, scored_frame_features

    config = _config(set_, None, species)
    table = read_scores_csv(scores, config.species)
    features = scored_frame_features(table, config, model_dir=model)
    scorer = calibrate(table, features, config.species, n_splits=folds)
    scorer.save(out)
    cv, raters = scorer.agreement["model_vs_raters_cv"], scorer.agreement["inter_rater"]
    rows = {
        f"kappa {au}": f"model {cv['kappa'][au]:.2f}   raters {raters.get('kappa', {}).get(au, float('nan')):.2f}"
        for au in cv["kappa"]
    }
    rows["ICC mean score"] = (
        f"model {cv['icc_mean_score']:.2f}   raters {raters.get('icc_mean_score', float('nan')):.2f}"
    )
    rows["frames / animals / folds"] = f"{cv['frames']} / {cv['animals']} / {cv['folds']}"
    _print_mapping(f"agreement ({config.species}, CV grouped by animal; raters: with each other)", rows)
    console.print(f"wrote {out}")
