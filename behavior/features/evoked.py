"""Evoked-assay extractors (Hargreaves, von Frey, PAWS kinematics): session in, measures out.

Each reads its strict config from ``configs/assays/<assay>.yaml`` (:func:`assay_config`) and
registers under its assay name. Paw measures are named by side, or ipsilateral / contralateral when
the session names the injured side (``latency_ipsi_s``, ``threshold_contra_g``...).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field

from behavior.assays import AssaySpec, MeasureSpec, register_assay
from behavior.features.base import AssayResult, Measure
from behavior.features.paws import FEATURES, PawsParams, paw_features, track_from_poses
from behavior.features.von_frey import FilamentSeries, SequenceError, sudo_threshold, updown_threshold
from behavior.features.withdrawal import UNKNOWN_OUTCOMES, WithdrawalParams, count_trials, withdrawal_trials
from behavior.session import Session

__all__ = [
    "HargreavesConfig",
    "PawsConfig",
    "VonFreyConfig",
    "assay_config",
    "extract_hargreaves",
    "extract_paws",
    "extract_von_frey",
    "stimulus_events",
]

SIDES = ("left", "right")


class HargreavesConfig(BaseModel):
    """``configs/assays/hargreaves.yaml``."""

    model_config = ConfigDict(extra="forbid")
    assay: Literal["hargreaves"] = "hargreaves"
    paw_keypoints: dict[Literal["left", "right"], str]
    cutoff_s: float = Field(20.0, gt=0)
    light_roi: dict[Literal["left", "right"], list[int]] | None = None
    withdrawal: WithdrawalParams = WithdrawalParams()


class VonFreyConfig(BaseModel):
    """``configs/assays/von_frey.yaml``."""

    model_config = ConfigDict(extra="forbid")
    assay: Literal["von_frey"] = "von_frey"
    paw_keypoints: dict[Literal["left", "right"], str]
    series: str = "chaplan8"
    method: Literal["updown", "sudo"] = "updown"
    response_window_s: float = Field(6.0, gt=0)
    off_grace_s: float = Field(0.5, ge=0, description="A withdrawal counts up to this long after removal.")
    withdrawal: WithdrawalParams = WithdrawalParams()


class PawsConfig(BaseModel):
    """``configs/assays/paws.yaml``."""

    model_config = ConfigDict(extra="forbid")
    assay: Literal["paws"] = "paws"
    paw: str
    reference: tuple[str, str] | None = None
    reference_mm: float | None = Field(None, gt=0)
    features: PawsParams = PawsParams()


def assay_config(assay: str, overrides: Sequence[str] = (), path: str | Path | None = None) -> BaseModel:
    """An assay's config with dotted ``key=value`` overrides (:meth:`behavior.assays.AssaySpec.load_config`).

    Raises
    ------
    ValueError
        On an unknown assay, an unknown key (typo) or an invalid value, naming it.
    """
    from behavior.assays import get_assay

    return get_assay(assay).load_config(overrides, path)


def stimulus_events(session: Session, config: HargreavesConfig | VonFreyConfig, video: Path | None) -> pd.DataFrame:
    """The session's stimulus onsets: its events, or (Hargreaves) the heat-source light in the video.

    The config's ``light_roi`` is relative to the session's ``roi`` when it names one (one rig config
    serves every chamber filmed by one camera), and must lie inside it.
    """
    events = session.events_frame()
    if (events["kind"] == "stimulus_on").any():
        return events
    roi_by_side = getattr(config, "light_roi", None)
    if video is not None and roi_by_side:
        from behavior.video import ROI, detect_light_switches

        rows = []
        for side, roi in roi_by_side.items():
            light = ROI(*roi)
            if session.roi is not None:
                try:
                    light = light.within(ROI(*session.roi))
                except ValueError as exc:
                    raise ValueError(f"session {session.session_id}: light_roi {side}: {exc}") from exc
            for e in detect_light_switches(video, light):
                if e["kind"] == "light_on":
                    rows.append({"time_s": e["time_s"], "kind": "stimulus_on", "side": side, "intensity": np.nan})
        if rows:
            return pd.DataFrame(rows).sort_values("time_s").reset_index(drop=True)
    raise ValueError(
        f"session {session.session_id}: expected stimulus_on events (or a video and light_roi to find them), got none"
    )


def _named(stem: str, side: str, injured: str | None) -> str:
    if injured is None:
        return f"{stem}_{side}"
    return f"{stem}_{'ipsi' if side == injured else 'contra'}"


def _per_side(
    stem: str,
    unit: str,
    values: dict[str, tuple[float, int, str]],
    injured: str | None,
    *,
    difference: bool,
) -> list[Measure]:
    """Measures per paw (and ipsi minus contra), named by side or by injury."""
    out = [Measure(f"{_named(stem, s, injured)}_{unit}", v, unit, n, q) for s, (v, n, q) in values.items()]
    if difference and injured in values and len(values) == 2:
        contra = next(s for s in values if s != injured)
        (vi, ni, _), (vc, nc, _) = values[injured], values[contra]
        missing = [side for side, v in (("ipsi", vi), ("contra", vc)) if math.isnan(v)]
        quality = f"not scored: no {' or '.join(missing)} value" if missing else "ok"
        out.append(Measure(f"{stem}_ipsi_minus_contra_{unit}", vi - vc, unit, min(ni, nc), quality))
    return out


def _not_scored(t: pd.DataFrame) -> str:
    """``"not scored 2/5 (recording_ended 1, untracked 1)"`` for the trials of unknown outcome, or ``""``."""
    counts = {q: int((t["quality"] == q).sum()) for q in UNKNOWN_OUTCOMES}
    total = sum(counts.values())
    if not total:
        return ""
    reasons = ", ".join(f"{q} {c}" for q, c in counts.items() if c)
    return f"not scored {total}/{len(t)} ({reasons})"


def _trial_quality(trials: pd.DataFrame, poses: xr.Dataset, min_confidence: float) -> dict[str, object]:
    """The evoked quality figures: trials by outcome (per measure too) and the low-confidence share."""
    counts = count_trials(trials)
    quality: dict[str, object] = {
        "low_confidence_fraction": _low_confidence_fraction(poses, min_confidence),
        "trials": len(trials),
        "censored_trials": sum(int(c["censored"]) for c in counts),
    }
    for reason in UNKNOWN_OUTCOMES:  # outcome unknown: not scored, left out of the means
        quality[f"{reason}_trials"] = sum(int(c[reason]) for c in counts)
    quality["trial_counts"] = counts
    return quality


def _low_confidence_fraction(poses: xr.Dataset, min_confidence: float) -> float:
    """Share of keypoint readings below the confidence the withdrawal detector needs."""
    conf = poses["confidence"].values
    return float(np.mean(np.nan_to_num(conf, nan=0.0) < min_confidence))


def _label_trials(trials: pd.DataFrame, stem: str, unit: str, injured: str | None) -> pd.DataFrame:
    """The trials table with the measure each trial feeds (``measure``), for per-measure counts."""
    out = trials.copy()
    out["measure"] = [
        f"{_named(stem, s, injured)}_{unit}" if isinstance(s, str) and s in SIDES else None for s in out["side"]
    ]
    return out


def extract_hargreaves(
    poses: xr.Dataset, session: Session, config: HargreavesConfig, *, video: Path | None = None
) -> AssayResult:
    """Withdrawal latency per paw: the mean over trials of known outcome.

    Trials without a withdrawal before the cut-off count at the cut-off (censored, and counted in the
    measure's quality). Trials whose outcome is unknown (paw untracked before the onset or during the
    window, video ending before the cut-off) are left out of the mean and counted in its quality; a
    paw with no trial of known outcome gets NaN.
    """
    events = stimulus_events(session, config, video)
    trials = withdrawal_trials(
        poses,
        events,
        window_s=config.cutoff_s,
        paw_by_side=config.paw_keypoints,
        params=config.withdrawal,
        px_per_mm=session.px_per_mm,
        fps=session.fps,
    )
    values = {}
    for side in SIDES:
        t = trials[trials["side"] == side]
        if t.empty:
            continue
        scored = t[t["quality"] == "ok"]
        n_censored = int(scored["censored"].sum())
        parts = [f"censored {n_censored}/{len(scored)}" if n_censored else "", _not_scored(t)]
        quality = "; ".join(p for p in parts if p) or "ok"
        value = float(scored["latency_s"].mean()) if len(scored) else math.nan
        values[side] = (value, len(scored), quality)
    labelled = _label_trials(trials, "latency", "s", session.side)
    return AssayResult(
        measures=_per_side("latency", "s", values, session.side, difference=True),
        tables={"trials": labelled},
        quality=_trial_quality(labelled, poses, config.withdrawal.min_confidence),
    )


def extract_von_frey(
    poses: xr.Dataset, session: Session, config: VonFreyConfig, *, video: Path | None = None
) -> AssayResult:
    """50 % threshold per paw from filament events and withdrawals seen in the video.

    An application whose outcome is unknown (paw untracked, video ending during it) is neither a
    withdrawal nor its absence, and the up-down rule cannot go on without it: the paw's series stops
    there with a NaN threshold whose quality names the application and the reason.
    """
    events = stimulus_events(session, config, video)
    trials = withdrawal_trials(
        poses,
        events,
        window_s=config.response_window_s,
        paw_by_side=config.paw_keypoints,
        params=config.withdrawal,
        px_per_mm=session.px_per_mm,
        fps=session.fps,
        off_grace_s=config.off_grace_s,
    )
    series = FilamentSeries.load(config.series)
    score: Callable = updown_threshold if config.method == "updown" else sudo_threshold
    values = {}
    for side in SIDES:
        t = trials[trials["side"] == side]
        if t.empty:
            continue
        if t["intensity"].isna().any():
            values[side] = (math.nan, len(t), "filament force (event intensity) missing")
            continue
        unknown = t[t["quality"] != "ok"]
        if not unknown.empty:
            first = unknown.iloc[0]
            at = int(np.flatnonzero((t["trial"] == first["trial"]).to_numpy())[0]) + 1
            values[side] = (
                math.nan,
                len(t),
                f"series stopped at application {at} ({first['intensity']:g} g at {first['stimulus_time_s']:g} s): "
                f"outcome unknown ({first['quality']}); {_not_scored(t)}",
            )
            continue
        try:
            r = score(t["intensity"].tolist(), ["X" if x else "O" for x in t["responded"]], series)
            values[side] = (r.threshold_g, len(t), f"{r.pattern} {r.flag}".strip())
        except SequenceError as exc:
            values[side] = (math.nan, len(t), str(exc))
    labelled = _label_trials(trials, "threshold", "g", session.side)
    return AssayResult(
        measures=_per_side("threshold", "g", values, session.side, difference=False),
        tables={"trials": labelled},
        quality=_trial_quality(labelled, poses, config.withdrawal.min_confidence),
    )


def _paws_unit(name: str) -> str:
    return "count" if name.endswith("shakes") else ("mm/s" if name.endswith("mm_s") else name.rsplit("_", 1)[-1])


def extract_paws(poses: xr.Dataset, session: Session, config: PawsConfig, *, video: Path | None = None) -> AssayResult:
    """Kinematic features of one high-speed withdrawal clip."""
    x, h, _ = track_from_poses(
        poses, config.paw, reference=config.reference, reference_mm=config.reference_mm, px_per_mm=session.px_per_mm
    )
    features = paw_features(x, h, session.fps, config.features)
    measures = [Measure(name, features[name], _paws_unit(name)) for name in FEATURES]
    return AssayResult(
        measures=measures,
        tables={"features": pd.DataFrame([features])},
        quality={"low_confidence_fraction": _low_confidence_fraction(poses, 0.5)},
    )


# ------------------------------------------------------------------------------------ registration


def _detection_text(w: WithdrawalParams) -> str:
    return (
        f"the first frame from which the stimulated paw's keypoint stays beyond the larger of a fixed distance "
        f"and {w.noise_factor:g} robust SDs of its resting jitter for {w.min_frames} frames (a run reaching the "
        "window's end is confirmed on the frames after it, never counted short)"
    )


def _unknown_text(w: WithdrawalParams) -> str:
    return (
        "Trials whose outcome is unknown are neither responses nor non-responses: paw untracked before the "
        "onset (no_baseline), more than "
        f"{100 * w.max_untracked_fraction:g} % of the frames searched untracked after filling gaps of up to "
        f"{w.max_gap_frames} frames, or the paw lost right before it is seen withdrawn, right after it is seen "
        "displaced or until the window's end (untracked), the video ending before the window with no withdrawal "
        "seen (recording_ended), or the next stimulus of the same paw starting before the cut-off with no "
        "withdrawal seen (interrupted; a von Frey application ends at the next one)"
    )


def _hargreaves_methods(config: HargreavesConfig) -> str:
    w = config.withdrawal
    return (
        f"Hargreaves: withdrawal latency after each heat onset, {_detection_text(w)}; a trial without withdrawal "
        f"by the {config.cutoff_s:g} s cut-off is censored and enters the paw's mean at the cut-off. "
        f"{_unknown_text(w)}; they are left out of the mean and counted per measure in the data-quality table."
        + _onset_shift_text(w)
    )


def _onset_shift_text(w: WithdrawalParams) -> str:
    if not w.onset_shift_s:
        return ""
    return (
        f" A displacement starting within {w.onset_shift_s:g} s of the onset that then held still for "
        f"{w.baseline_s:g} s was read as the stimulus shifting the keypoint (the lamp's glow), not as a "
        "withdrawal: the search went on from the shifted position (trials counted as scored after a keypoint "
        "shift at onset); a shifted point that went back to its old rest without moving away left the trial "
        "unscored (onset_shift)."
    )


def _von_frey_methods(config: VonFreyConfig) -> str:
    w = config.withdrawal
    return (
        f"von Frey: 50 % thresholds by the up-down method (Chaplan 1994, Dixon's k table) from withdrawals "
        f"while each filament is applied (up to {config.response_window_s:g} s, and {config.off_grace_s:g} s "
        f"after its removal), {_detection_text(w)}. {_unknown_text(w)}; an application of unknown outcome stops "
        "the paw's series, whose threshold is then missing (NaN) with the reason in its quality, and is counted in "
        "the data-quality table."
    )


def _paw_keypoints(config: HargreavesConfig | VonFreyConfig) -> list[str]:
    return list(config.paw_keypoints.values())


_OUTCOME_LABELS = {
    "responded": "responses",
    "censored": "censored (at the cut-off)",
    "no_baseline": "not scored: untracked before onset",
    "recording_ended": "not scored: video ended",
    "untracked": "not scored: untracked in window",
    "interrupted": "not scored: next stimulus before cut-off",
    "onset_shifted": "scored after a keypoint shift at onset",
    "onset_shift": "not scored: shift at onset went back",
}
_TRIAL_QUALITY = ("low_confidence_fraction", "trials", "censored_trials", *(f"{q}_trials" for q in UNKNOWN_OUTCOMES))

register_assay(
    AssaySpec(
        name="hargreaves",
        domain="evoked",
        config_model=HargreavesConfig,
        extract=extract_hargreaves,
        measures=(
            MeasureSpec("latency_{side}_s", "s", "mean withdrawal latency of the paw (left/right, or ipsi/contra)"),
            MeasureSpec("latency_ipsi_minus_contra_s", "s", "ipsilateral minus contralateral latency"),
        ),
        keypoints=_paw_keypoints,
        quality_figures=_TRIAL_QUALITY,
        methods=_hargreaves_methods,
        labels=_OUTCOME_LABELS,
        description="Hargreaves / hot plate: latency from heat onset to paw withdrawal, censored at the cut-off",
    )
)
register_assay(
    AssaySpec(
        name="von_frey",
        domain="evoked",
        config_model=VonFreyConfig,
        extract=extract_von_frey,
        measures=(MeasureSpec("threshold_{side}_g", "g", "50 % paw-withdrawal threshold (up-down or SUDO)"),),
        keypoints=_paw_keypoints,
        quality_figures=_TRIAL_QUALITY,
        methods=_von_frey_methods,
        labels=_OUTCOME_LABELS,
        description="von Frey filaments: 50 % withdrawal threshold by the up-down method or SUDO",
    )
)
register_assay(
    AssaySpec(
        name="paws",
        domain="evoked",
        config_model=PawsConfig,
        extract=extract_paws,
        measures=tuple(MeasureSpec(name, _paws_unit(name)) for name in FEATURES),
        keypoints=lambda config: [config.paw, *(config.reference or ())],
        quality_figures=("low_confidence_fraction",),
        description="PAWS-like sub-second withdrawal kinematics from high-speed video",
    )
)
