"""Conditioned place preference / aversion (CPP / CPA) and zone occupancy.

An animal in ongoing pain learns to prefer the chamber paired with relief (an analgesic): the
affective measure of the battery. A session is one test of one animal in a box of chambers; the
chambers are polygons in a zones file drawn once per rig (:mod:`.zones`).

Method
------
1. **Body centre.** From poses when the session has them (the mean of ``body_keypoints`` found with
   confidence >= ``min_confidence``), or, with no pose model at all, from the video by background
   subtraction (:mod:`.tracking`, as ezTrack does). ``source`` forces one of the two.
2. **Occupancy** (:mod:`.occupancy`): the zone of every tracked frame, short tracking gaps inside one
   zone bridged (``max_gap_s``), boundary flicker absorbed by a minimum dwell (``min_dwell_s``); time
   in each zone, entries, latency to first entry, distance moved.
3. **Paired chamber** of the session's animal: from ``paired_chambers_csv`` (rows ``group, animal_id,
   paired_chamber``), else ``paired_chamber_by_side`` (by the session's ``side``: designs that pair the
   chamber by lesion side), else ``paired_chamber``. The unpaired chamber is the other of the zones
   file's two chambers. ``time_in_paired_fraction`` is the paired time over the tracked time.
4. **Preference score** (:mod:`.pairing`): computed across sessions, once per study, by the assay's
   ``across_sessions`` step: the test's time in the paired chamber minus its pre-test's (the animal's
   session at ``pretest_timepoint``), in seconds and in % of the test.

A session whose tracking is lost for more than ``max_untracked_fraction`` of the test, or that is
shorter than ``expected_duration_s`` (cut short), gets NaN measures with the reason in ``quality``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from behavior.assays import AssaySpec, MeasureSpec, register_assay
from behavior.features.base import AssayResult, Measure
from behavior.features.place_preference.occupancy import Occupancy, body_centre, occupancy
from behavior.features.place_preference.pairing import PairingError, preference_rows
from behavior.features.place_preference.tracking import TrackingConfig, VideoTrack, track_video
from behavior.features.place_preference.zones import UNTRACKED, ZoneError, Zones, load_zones
from behavior.session import Session

__all__ = [
    "BodyTrack",
    "PairingError",
    "PlacePreferenceConfig",
    "ZoneError",
    "Zones",
    "body_track",
    "extract_place_preference",
    "load_zones",
    "paired_chamber_for",
    "place_preference_measures",
    "preference_rows",
    "score_body_track",
    "score_track",
    "session_zones",
]


class PlacePreferenceConfig(BaseModel):
    """``configs/assays/place_preference.yaml``."""

    model_config = ConfigDict(extra="forbid")
    assay: Literal["place_preference"] = "place_preference"
    zones: str | None = Field(None, description="zones file: a rig name (configs/rigs/<name>.yaml) or a path")
    paradigm: Literal["preference", "aversion"] = "preference"
    paired_chamber: str | None = Field(None, description="the paired chamber of every animal")
    paired_chamber_by_side: dict[Literal["left", "right"], str] | None = Field(
        None, description="session side (injured limb) -> paired chamber"
    )
    paired_chambers_csv: Path | None = Field(None, description="CSV group,animal_id,paired_chamber")
    pretest_timepoint: str = Field("baseline", min_length=1)
    source: Literal["auto", "poses", "video"] = "auto"
    body_keypoints: list[str] = Field(default_factory=lambda: ["centroid"], min_length=1)
    min_confidence: float = Field(0.5, ge=0, le=1)
    min_dwell_s: float = Field(0.5, ge=0)
    max_gap_s: float = Field(1.0, ge=0)
    max_untracked_fraction: float = Field(0.2, ge=0, le=1)
    expected_duration_s: float | None = Field(None, gt=0)
    duration_tolerance_s: float = Field(1.0, ge=0)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @field_validator("min_dwell_s", "max_gap_s", "duration_tolerance_s")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"expected a finite number, got {v}")
        return v


# --------------------------------------------------------------------------- paired chamber


def paired_chamber_for(session: Session, config: PlacePreferenceConfig, zones: Zones) -> tuple[str, str]:
    """The ``(paired, unpaired)`` chambers of the session's animal (see the module docstring, step 3).

    Raises
    ------
    ZoneError
        If no rule names a paired chamber for the animal, or it names a zone that is not one of the
        zones file's two chambers.
    """
    paired: str | None = None
    how = ""
    if config.paired_chambers_csv is not None:
        table = pd.read_csv(config.paired_chambers_csv, dtype=str, keep_default_na=False)
        need = {"group", "animal_id", "paired_chamber"}
        if not need <= set(table.columns):
            raise ZoneError(f"{config.paired_chambers_csv}: expected columns {sorted(need)}, got {list(table.columns)}")
        hit = table[(table["group"] == session.group) & (table["animal_id"] == session.animal_id)]
        if len(hit) > 1:
            raise ZoneError(
                f"{config.paired_chambers_csv}: expected one row for group {session.group}, animal "
                f"{session.animal_id}, got {len(hit)}"
            )
        if len(hit):
            paired, how = str(hit["paired_chamber"].iloc[0]).strip(), str(config.paired_chambers_csv)
    if paired is None and config.paired_chamber_by_side is not None and session.side is not None:
        paired = config.paired_chamber_by_side.get(session.side)
        how = f"paired_chamber_by_side[{session.side}]"
    if paired is None and config.paired_chamber is not None:
        paired, how = config.paired_chamber, "paired_chamber"
    if paired is None:
        raise ZoneError(
            f"session {session.session_id}: expected a paired chamber for animal {session.animal_id} "
            "(place_preference config paired_chamber, paired_chamber_by_side with the session's side, or "
            "paired_chambers_csv), got none"
        )
    if paired not in zones.chambers:
        raise ZoneError(f"{how}: expected one of the chambers {list(zones.chambers)}, got {paired!r}")
    unpaired = zones.chambers[1] if paired == zones.chambers[0] else zones.chambers[0]
    return paired, unpaired


# --------------------------------------------------------------------------- measures


def place_preference_measures(
    occ: Occupancy,
    zones: Zones,
    paired: str | None,
    unpaired: str | None,
    config: PlacePreferenceConfig,
    *,
    full_duration_s: float,
) -> tuple[list[Measure], dict[str, Any]]:
    """Session measures from an occupancy, with the rules for lost tracking and cut-short recordings.

    Without a paired chamber (``paired`` None: zone occupancy of an open field, say) only the per-zone
    measures are given.

    Returns the measures and quality figures (``duration_s``, untracked share, the reason when NaN).
    """
    n_tracked = int((occ.labels != UNTRACKED).sum())
    untracked_fraction = 1.0 - occ.tracked_s / occ.duration_s if occ.duration_s > 0 else 1.0
    reason = "ok"
    if untracked_fraction > config.max_untracked_fraction:
        reason = "tracking_lost"
    elif (
        config.expected_duration_s is not None
        and full_duration_s < config.expected_duration_s - config.duration_tolerance_s
    ):
        reason = "cut_short"
    elif (occ.labels == UNTRACKED).any():
        reason = "untracked_gaps"
    nan_all = reason == "tracking_lost"
    nan_seconds = nan_all or reason == "cut_short"

    def val(v: float, seconds: bool = True) -> float:
        return math.nan if nan_all or (seconds and nan_seconds) else float(v)

    m: list[Measure] = []

    def share(zone: str) -> float:
        return occ.time_s[zone] / occ.tracked_s if occ.tracked_s > 0 else math.nan

    def latency(zone: str, name: str) -> Measure:
        q = "censored" if occ.censored[zone] and reason in ("ok", "untracked_gaps") else reason
        return Measure(name, val(occ.latency_s[zone]), "s", n_tracked, q)

    if paired is not None and unpaired is not None:  # without a paired chamber: zone occupancy only
        m += [
            Measure("time_in_paired_s", val(occ.time_s[paired]), "s", n_tracked, reason),
            Measure("time_in_unpaired_s", val(occ.time_s[unpaired]), "s", n_tracked, reason),
            Measure("time_in_paired_fraction", val(share(paired), seconds=False), "fraction", n_tracked, reason),
            Measure("time_in_unpaired_fraction", val(share(unpaired), seconds=False), "fraction", n_tracked, reason),
            Measure("entries_paired", val(occ.entries[paired]), "count", n_tracked, reason),
            Measure("entries_unpaired", val(occ.entries[unpaired]), "count", n_tracked, reason),
            latency(paired, "latency_to_paired_s"),
        ]
    # per-zone measures for the zones that are neither paired nor unpaired (a neutral centre), or for
    # every zone when there is no paired chamber: the compared chambers already have theirs
    for z in (z for z in zones.names if z not in (paired, unpaired)):
        m.append(Measure(f"time_in_{z}_s", val(occ.time_s[z]), "s", n_tracked, reason))
        m.append(Measure(f"entries_{z}", val(occ.entries[z]), "count", n_tracked, reason))
        m.append(latency(z, f"latency_to_{z}_s"))
    if occ.time_s["outside"] > 0:
        m.append(Measure("time_outside_zones_s", val(occ.time_s["outside"]), "s", n_tracked, reason))
    m.append(Measure(f"distance_moved_{occ.distance_unit}", val(occ.distance), occ.distance_unit, n_tracked, reason))
    quality = {
        "duration_s": round(full_duration_s, 6),
        "tracked_s": round(occ.tracked_s, 6),
        "untracked_fraction": round(untracked_fraction, 4),
        "paired_chamber": paired,
        "unpaired_chamber": unpaired,
        "zones": zones.name or zones.source,
        "measure_quality": reason,
        **occ.figures,
    }
    return m, quality


def score_track(
    xy_px: np.ndarray,
    frames: np.ndarray,
    dt_s: float,
    zones: Zones,
    paired: str | None,
    unpaired: str | None,
    config: PlacePreferenceConfig,
    *,
    px_per_mm: float | None = None,
    full_duration_s: float | None = None,
) -> AssayResult:
    """Score a body-centre track (``xy_px`` per sample at ``frames``, ``dt_s`` apart) in ``zones``."""
    occ = occupancy(xy_px, dt_s, zones, min_dwell_s=config.min_dwell_s, max_gap_s=config.max_gap_s, px_per_mm=px_per_mm)
    duration = occ.duration_s if full_duration_s is None else float(full_duration_s)
    measures, quality = place_preference_measures(occ, zones, paired, unpaired, config, full_duration_s=duration)

    def names(labels: np.ndarray) -> list[str]:
        return [occ.zone_name(int(v), zones) for v in labels]

    xy = np.asarray(xy_px, dtype=float).reshape(-1, 2)
    table = pd.DataFrame(
        {
            "frame": np.asarray(frames, dtype=int),
            "time_s": np.round(np.arange(len(xy)) * dt_s, 6),
            "x_px": np.round(xy[:, 0], 3),
            "y_px": np.round(xy[:, 1], 3),
            "zone_raw": names(occ.labels_raw),
            "zone": names(occ.labels),
        }
    )
    if paired is not None:
        table["in_paired"] = occ.labels == zones.index(paired)
    return AssayResult(
        measures=measures,
        tables={"place_preference_frames": table, "place_preference_visits": occ.visits},
        quality=quality,
    )


def session_zones(session: Session, config: PlacePreferenceConfig, zones: Zones | None, video: Path | None) -> Zones:
    """The config's (or given) zones in full-frame pixels of the session, checked against its frame."""
    if zones is None:
        if config.zones is None:
            raise ZoneError(
                f"session {session.session_id}: expected a zones file (place_preference config 'zones': a rig "
                "name or a path), got none"
            )
        zones = load_zones(config.zones)

    def drawn_on(width: int, height: int, what: str) -> None:
        if zones.frame_size_px is not None and tuple(zones.frame_size_px) != (width, height):
            fw, fh = zones.frame_size_px
            raise ZoneError(
                f"{zones.source}: zones drawn on a {fw}x{fh} frame (frame_size_px), expected {what} to be "
                f"that size, got {width}x{height}"
            )
        zones.check_frame(width, height, what=f"{what} ({width}x{height})")

    if session.roi is not None:
        x, y, w, h = session.roi
        drawn_on(w, h, f"session {session.session_id}'s roi")
        return zones.shifted(x, y)
    if video is not None:
        from pose_models.video import probe_video

        info = probe_video(video)
        drawn_on(info.width, info.height, f"the frame of {video.name}")
    return zones


@dataclass
class BodyTrack:
    """A session's body-centre track: one row per tracked frame, ``dt_s`` apart, and how it was made."""

    xy_px: np.ndarray
    frames: np.ndarray
    dt_s: float
    duration_s: float
    quality: dict[str, Any]
    area_px: np.ndarray | None = None


def body_track(
    poses: Any,
    session: Session,
    config: PlacePreferenceConfig,
    *,
    video: Path | None = None,
    progress: Callable[[float], None] | None = None,
) -> BodyTrack:
    """The body centre of a session: from ``poses``, or from the video by background subtraction.

    Raises
    ------
    ValueError
        If the source the config asks for is missing, or pose frames are unevenly spaced.
    """
    video = video if video is not None else session.video
    fps = float(session.fps)
    if config.source == "video" or (config.source == "auto" and poses is None):
        if video is None:
            raise ValueError(
                f"session {session.session_id}: expected a video to track (source={config.source}), got none"
            )
        track: VideoTrack = track_video(video, config.tracking, roi=session.roi, progress=progress)
        quality = {
            "tracking_source": "background_subtraction",
            "tracking_step_frames": track.step_frames,
            "tracking_fps": round(fps / track.step_frames, 6),
            "tracking_scale": round(track.scale, 4),
            "frames_failed": track.frames_failed,
        }
        return BodyTrack(
            track.xy_px, track.frames, track.step_frames / fps, track.n_frames / fps, quality, track.area_px
        )
    if poses is None:
        raise ValueError(f"session {session.session_id}: expected poses (source=poses), got none")
    xy, frames = body_centre(poses, config.body_keypoints, config.min_confidence)
    steps = np.diff(frames)
    step = int(steps[0]) if steps.size else 1
    if (steps.size and not (steps == step).all()) or step < 1:
        raise ValueError(
            f"session {session.session_id}: expected pose frames evenly spaced in the video, got steps "
            f"{sorted(set(steps.tolist()))[:5]}"
        )
    quality = {"tracking_source": "poses", "tracking_step_frames": step, "tracking_fps": round(fps / step, 6)}
    return BodyTrack(xy, frames, step / fps, len(xy) * step / fps, quality)


def extract_place_preference(
    poses: Any,
    session: Session,
    config: PlacePreferenceConfig,
    *,
    video: Path | None = None,
    zones: Zones | None = None,
    progress: Callable[[float], None] | None = None,
) -> AssayResult:
    """The registered extractor: body centre from poses (or from the video), occupancy in the rig's zones."""
    video = video if video is not None else session.video
    zones = session_zones(session, config, zones, video)
    paired, unpaired = paired_chamber_for(session, config, zones)
    track = body_track(poses, session, config, video=video, progress=progress)
    return score_body_track(track, zones, paired, unpaired, config, px_per_mm=session.px_per_mm)


def score_body_track(
    track: BodyTrack,
    zones: Zones,
    paired: str | None,
    unpaired: str | None,
    config: PlacePreferenceConfig,
    *,
    px_per_mm: float | None = None,
) -> AssayResult:
    """Score a session's body track in ``zones``: :func:`score_track` plus how the track was made.

    The track's quality figures join the result's, and a video track's blob area joins the frames table.
    """
    result = score_track(
        track.xy_px,
        track.frames,
        track.dt_s,
        zones,
        paired,
        unpaired,
        config,
        px_per_mm=px_per_mm,
        full_duration_s=track.duration_s,
    )
    result.quality.update(track.quality)
    if track.area_px is not None:
        result.tables["place_preference_frames"]["blob_area_px"] = np.round(track.area_px, 1)
    return result


# --------------------------------------------------------------------------- study step, methods, spec


def _across_sessions(
    measures: pd.DataFrame, quality: pd.DataFrame | None, config: PlacePreferenceConfig
) -> pd.DataFrame:
    return preference_rows(
        measures, quality, pretest_timepoint=config.pretest_timepoint, duration_tolerance_s=config.duration_tolerance_s
    )


def _methods(config: PlacePreferenceConfig) -> str:
    kind = "preference (CPP)" if config.paradigm == "preference" else "aversion (CPA)"
    return (
        f"Conditioned place {kind}: the body centre (poses: mean of {', '.join(config.body_keypoints)}; or, "
        "without poses, background subtraction of the video against its median frame) was assigned to the "
        f"rig's chamber polygons; tracking gaps up to {config.max_gap_s:g} s within one chamber were bridged "
        f"and stays shorter than {config.min_dwell_s:g} s (boundary flicker) were not counted as visits. "
        "Preference score = time in the paired chamber at test minus at the pre-test "
        f"({config.pretest_timepoint}) of the same animal, in seconds and in % of the test"
        + ("; in aversion the score is negative." if config.paradigm == "aversion" else ".")
    )


def _keypoints(config: PlacePreferenceConfig) -> list[str]:
    return list(config.body_keypoints) if config.source != "video" else []


def _report(ctx: Any) -> list[Any]:
    from behavior.features.place_preference.report import occupancy_report

    return occupancy_report(ctx)


register_assay(
    AssaySpec(
        name="place_preference",
        domain="affective",
        config_model=PlacePreferenceConfig,
        extract=extract_place_preference,
        measures=(
            MeasureSpec("preference_score_s", "s", "time in the paired chamber, test minus pre-test"),
            MeasureSpec("preference_score_percent", "%", "share of time in the paired chamber, test minus pre-test"),
            MeasureSpec("time_in_paired_fraction", "fraction", "share of the tracked time in the paired chamber"),
            MeasureSpec("time_in_paired_s", "s", "time in the paired chamber"),
            MeasureSpec("time_in_unpaired_s", "s", "time in the unpaired chamber"),
            MeasureSpec("time_in_unpaired_fraction", "fraction", "share of the tracked time in the unpaired chamber"),
            MeasureSpec("entries_paired", "count", "entries into the paired chamber"),
            MeasureSpec("entries_unpaired", "count", "entries into the unpaired chamber"),
            MeasureSpec("latency_to_paired_s", "s", "time of the first frame in the paired chamber"),
            MeasureSpec("time_in_{zone}_s", "s", "time in each other zone of the zones file (a neutral centre)"),
            MeasureSpec("entries_{zone}", "count", "entries into each other zone"),
            MeasureSpec("latency_to_{zone}_s", "s", "time of the first frame in each other zone"),
            MeasureSpec("distance_moved_mm", "mm", "distance moved by the body centre (px without a scale)"),
        ),
        needs_poses=False,
        poses_optional=True,
        keypoints=_keypoints,
        quality_figures=("duration_s", "untracked_fraction", "flicker_runs_absorbed", "tracking_source"),
        methods=_methods,
        report=_report,
        across_sessions=_across_sessions,
        labels={
            "untracked_fraction": "share of the test without a body centre",
            "flicker_runs_absorbed": "boundary flicker episodes not counted as visits",
        },
        description="Place preference / aversion: time per chamber, entries, latency, preference score",
    )
)
