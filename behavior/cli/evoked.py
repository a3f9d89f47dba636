"""``painbattery evoked ...``: von Frey up-down thresholds, withdrawal latencies, PAWS kinematics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from behavior.cli.common import _print_frame, console

evoked_app = typer.Typer(
    help="Evoked pain: von Frey thresholds, withdrawal latencies, PAWS kinematics.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the ``evoked`` group to the root app."""
    app.add_typer(evoked_app, name="evoked")


@evoked_app.command("updown")
def evoked_updown(
    responses: Annotated[Path, typer.Argument(help="CSV: animal_id,paw,filament_g,response (X/1 or O/0), in order.")],
    series: Annotated[
        str, typer.Option(help="Filament series (configs/filaments/NAME.yaml) or a YAML path.")
    ] = "chaplan8",
    method: Annotated[str, typer.Option(help="updown (Chaplan 1994) or sudo (Bonin 2014).")] = "updown",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write thresholds.csv and percent_response.csv here.")
    ] = None,
) -> None:
    """50 % withdrawal thresholds per animal and paw from typed von Frey responses."""
    from behavior.features.von_frey import FilamentSeries, percent_response, read_updown_csv, thresholds_table
    from behavior.provenance import write_provenance

    if method not in ("updown", "sudo"):
        raise ValueError(f"expected --method updown or sudo, got {method!r}")
    filament_series = FilamentSeries.load(series)
    applications = read_updown_csv(responses)
    thresholds = thresholds_table(applications, filament_series, method=method)  # type: ignore[arg-type]
    _print_frame(thresholds, f"{method} thresholds ({filament_series.name}, delta {filament_series.delta:.3f})")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        thresholds.to_csv(out / "thresholds.csv", index=False)
        percent_response(applications).to_csv(out / "percent_response.csv", index=False)
        write_provenance(
            out,
            command="evoked updown",
            config={"series": filament_series.model_dump(), "method": method},
            inputs=[responses],
            outputs=[out / "thresholds.csv", out / "percent_response.csv"],
        )
        console.print(f"wrote {out / 'thresholds.csv'}")


@evoked_app.command("latency")
def evoked_latency(
    poses: Annotated[Path, typer.Argument(help="Pose file with the paw keypoints.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder for trials.csv.")],
    events: Annotated[Path | None, typer.Option(help="Events CSV/JSON (time_s,kind,side,intensity).")] = None,
    ttl: Annotated[Path | None, typer.Option(help="Rig TTL CSV (time_s,value): rising edges are onsets.")] = None,
    video: Annotated[Path | None, typer.Option(help="Video, to find onsets from the stimulus light.")] = None,
    light_roi: Annotated[
        str | None, typer.Option(help="Light region x,y,w,h in the video (in the --roi region, if given).")
    ] = None,
    roi: Annotated[
        str | None, typer.Option(help="The animal's chamber x,y,w,h in the video: --light-roi is relative to it.")
    ] = None,
    side: Annotated[str | None, typer.Option(help="Stimulated side for TTL/light onsets (left/right).")] = None,
    paw: Annotated[str | None, typer.Option(help="Paw keypoint (default: by event side, from the config).")] = None,
    fps: Annotated[float | None, typer.Option(help="Frame rate, if the pose file does not store it.")] = None,
    cutoff_s: Annotated[float, typer.Option(help="Cut-off: trials without withdrawal are censored here.")] = 20.0,
    px_per_mm: Annotated[float | None, typer.Option(help="Scale, for the withdrawal distance in mm.")] = None,
    assay: Annotated[str, typer.Option(help="Config to read paws and detection parameters from.")] = "hargreaves",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override key.sub=value.")] = None,
) -> None:
    """Withdrawal latency after each stimulus onset (Hargreaves, or von Frey filament contacts)."""
    from behavior.features.evoked import assay_config
    from behavior.features.withdrawal import withdrawal_trials
    from behavior.provenance import write_provenance
    from behavior.session import events_from_ttl, read_events
    from behavior.video import ROI, detect_light_switches
    from pose_models.io import load_poses

    if side not in (None, "left", "right"):
        raise ValueError(f"expected --side left or right, got {side!r}")
    sources = [s for s in (events, ttl, video) if s is not None]
    if len(sources) != 1:
        raise ValueError("expected exactly one source of stimulus onsets: --events, --ttl or --video with --light-roi")
    config = assay_config(assay, set_ or [])
    ds = load_poses(poses, fps=fps)
    if events is not None:
        onsets = read_events(events)
    elif ttl is not None:
        onsets = events_from_ttl(ttl, side=side)  # type: ignore[arg-type]
    else:
        if light_roi is None:
            raise ValueError("expected --light-roi x,y,w,h with --video")
        light = ROI.parse(light_roi)
        if roi is not None:
            light = light.within(ROI.parse(roi))
        onsets = [
            {"time_s": e["time_s"], "kind": "stimulus_on", "side": side}
            for e in detect_light_switches(video, light)
            if e["kind"] == "light_on"
        ]
    trials = withdrawal_trials(
        ds,
        onsets,
        window_s=cutoff_s,
        paw=paw,
        paw_by_side=config.paw_keypoints,
        params=config.withdrawal,
        px_per_mm=px_per_mm,
        fps=fps,
    )
    out.mkdir(parents=True, exist_ok=True)
    trials.to_csv(out / "trials.csv", index=False)
    write_provenance(
        out,
        command="evoked latency",
        config={**config.model_dump(), "cutoff_s": cutoff_s, "roi": roi},
        inputs=[p for p in (poses, events, ttl, video) if p is not None],
        outputs=[out / "trials.csv"],
    )
    _print_frame(trials, f"withdrawal latency, cut-off {cutoff_s:g} s")
    summary = trials.groupby("paw").agg(
        n=("trial", "size"), mean_latency_s=("latency_s", "mean"), censored=("censored", "sum")
    )
    _print_frame(summary.reset_index(), "per paw")


@evoked_app.command("paws")
def evoked_paws(
    tracks: Annotated[
        Path, typer.Argument(help="Long CSV (track,frame,x,y[,mouse_id,strain,stimulus]) or a pose file.")
    ],
    fps: Annotated[float, typer.Option(help="Frames per second of the high-speed video.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder for features.csv.")],
    paw: Annotated[str | None, typer.Option(help="Paw keypoint (pose files).")] = None,
    reference: Annotated[str | None, typer.Option(help="Two reference keypoints A,B (pose files).")] = None,
    reference_mm: Annotated[float | None, typer.Option(help="Distance between the reference points, mm.")] = None,
    px_per_mm: Annotated[float | None, typer.Option(help="Scale instead of reference points (pose files).")] = None,
    train_labels: Annotated[
        Path | None, typer.Option(help="CSV track,stimulus[,mouse_id,strain]: cross-validate the pain score.")
    ] = None,
) -> None:
    """PAWS-like withdrawal kinematics per track, and a mouse-grouped cross-validated pain score."""
    import pandas as pd

    from behavior.features.evoked import assay_config
    from behavior.features.paws import (
        cross_validate_pain_score,
        noxious_labels,
        paw_features,
        track_from_poses,
        tracks_features,
    )
    from behavior.provenance import write_provenance
    from pose_models.io import load_poses

    config = assay_config("paws")
    if tracks.suffix.lower() == ".csv" and {"track", "x", "y"} <= set(pd.read_csv(tracks, nrows=0).columns):
        features = tracks_features(pd.read_csv(tracks), fps, config.features)
    else:
        ds = load_poses(tracks, fps=fps)
        ref = tuple(reference.split(",")) if reference else config.reference
        x, h, _ = track_from_poses(
            ds, paw or config.paw, reference=ref, reference_mm=reference_mm or config.reference_mm, px_per_mm=px_per_mm
        )
        features = pd.DataFrame([{"track": tracks.stem, **paw_features(x, h, fps, config.features), "quality": "ok"}])
    out.mkdir(parents=True, exist_ok=True)
    outputs = [out / "features.csv"]
    features.to_csv(outputs[0], index=False)
    if train_labels is not None:
        labels = pd.read_csv(train_labels)
        if not {"track", "stimulus"} <= set(labels.columns):
            raise ValueError(f"{train_labels}: expected columns track,stimulus[,mouse_id,strain]")
        merged = features.drop(columns=[c for c in ("stimulus", "mouse_id", "strain") if c in labels and c in features])
        merged = merged.merge(labels, on="track", how="inner")
        groups = merged["mouse_id"] if "mouse_id" in merged else merged["track"]
        strain = "strain" if "strain" in merged else None
        result = cross_validate_pain_score(merged, noxious_labels(merged["stimulus"]), groups, strain_column=strain)
        merged.loc[result.scores.index, "pain_score"] = result.scores
        merged[["track", "stimulus", "pain_score"]].to_csv(out / "pain_scores.csv", index=False)
        outputs.append(out / "pain_scores.csv")
        console.print(
            f"pain score, cross-validated by mouse ({result.n_tracks} tracks, {result.n_mice} mice): "
            f"accuracy {result.accuracy:.3f}, balanced {result.balanced_accuracy:.3f}, ROC AUC {result.roc_auc:.3f}"
        )
    write_provenance(
        out,
        command="evoked paws",
        config={**config.model_dump(), "fps": fps},
        inputs=[p for p in (tracks, train_labels) if p is not None],
        outputs=outputs,
    )
    console.print(
        f"wrote {out / 'features.csv'} ({len(features)} tracks, {(features['quality'] == 'ok').sum()} scored)"
    )
