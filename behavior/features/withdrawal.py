"""Paw-withdrawal detection after a stimulus (Hargreaves heat, von Frey filament) from paw keypoints.

For each stimulus onset the stimulated paw's keypoint is compared with its resting position (the
median over a short window before the onset). The withdrawal is the first frame after the onset from
which the paw stays displaced beyond a threshold for ``min_frames`` frames; the threshold is the
larger of a fixed distance and a multiple of the resting jitter (robust SD), so tracking noise never
reads as a withdrawal. Low-confidence points are dropped and short gaps interpolated first. A trial
with no withdrawal before the cut-off is *censored* at the cut-off.

A trial whose outcome is unknown is never scored as a response or a non-response: its ``latency_s``
is NaN, ``responded`` and ``censored`` are both False and ``quality`` names why (see
:data:`TRIAL_QUALITIES`): the paw was not tracked before the onset (``no_baseline``), the video ends
before the window does and no withdrawal was seen (``recording_ended``), or more than
``max_untracked_fraction`` of the frames searched are untracked, or the paw is lost right before it
is seen withdrawn, right after it is seen displaced, or until the cut-off (``untracked``: a withdrawal
could hide in them), or the next onset on the same paw comes before the window ends with no withdrawal
seen (``interrupted``, Hargreaves). Callers leave such trials out of their means and count them.

A stimulus can move the paw's *keypoint* without moving the paw: the heat lamp's glow under the
paw shifts where a pose model places the point by a few pixels for as long as the lamp is on. With
``onset_shift_s`` set, the resting position is taken again after the onset: if the point holds still
for ``baseline_s`` from the onset, or from a displacement that starts within ``onset_shift_s`` of it
(every frame within the threshold of their median), that still position is the rest the search
starts from, and the trial carries its distance from the rest before the onset (``onset_shift_px``).
A point that moves on at once is searched from the old rest as before (a withdrawal). If a shift
larger than the threshold later goes back to the old rest with no movement away, the shift and a
withdrawal cannot be told apart (a quick lift held still, then put down) and the outcome is unknown
(``onset_shift``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field

from behavior.session import Event, events_to_frame
from pose_models.poses import drop_low_confidence, interpolate_gaps, validate_poses

__all__ = [
    "TRIAL_COLUMNS",
    "TRIAL_QUALITIES",
    "UNKNOWN_OUTCOMES",
    "WithdrawalParams",
    "WithdrawalTrial",
    "count_trials",
    "detect_withdrawal",
    "withdrawal_trials",
]

TRIAL_COLUMNS = (
    "trial",
    "stimulus_time_s",
    "latency_s",
    "responded",
    "censored",
    "side",
    "paw",
    "intensity",
    "quality",
    "untracked_fraction",
    "threshold_px",
    "onset_shift_px",
)

#: Trial qualities: ``ok`` (a response, or a non-response censored at the window's end) and the
#: reasons a trial's outcome is unknown (:data:`UNKNOWN_OUTCOMES`).
TRIAL_QUALITIES = ("ok", "no_baseline", "recording_ended", "untracked", "interrupted", "onset_shift")
UNKNOWN_OUTCOMES = TRIAL_QUALITIES[1:]


class WithdrawalParams(BaseModel):
    """How a withdrawal is told from tracking jitter (``configs/assays/<assay>.yaml: withdrawal``)."""

    model_config = ConfigDict(extra="forbid")
    min_confidence: float = Field(0.5, ge=0, le=1, description="Points below this confidence are dropped.")
    max_gap_frames: int = Field(3, ge=1, description="Tracking gaps up to this long are interpolated.")
    baseline_s: float = Field(0.5, gt=0, description="Resting window before the onset.")
    min_displacement_mm: float = Field(1.0, gt=0, description="Smallest withdrawal, when px_per_mm is known.")
    min_displacement_px: float = Field(3.0, gt=0, description="Smallest withdrawal without a scale.")
    noise_factor: float = Field(6.0, gt=0, description="Threshold >= this many resting-jitter SDs.")
    min_frames: int = Field(2, ge=1, description="Frames the paw must stay beyond the threshold.")
    max_untracked_fraction: float = Field(
        0.2,
        ge=0,
        le=1,
        description="A trial with more of its searched frames untracked (after gap filling) is not scored.",
    )
    onset_shift_s: float = Field(
        0.0,
        ge=0,
        description=(
            "Rest taken again after the onset: a point still from the onset, or from a displacement "
            "starting this soon after it, is the stimulus moving the keypoint (lamp glow); 0: off."
        ),
    )


@dataclass(frozen=True)
class WithdrawalTrial:
    """The outcome of one stimulus."""

    stimulus_frame: int
    withdrawal_frame: int | None
    latency_s: float
    responded: bool
    censored: bool
    threshold_px: float
    quality: str
    untracked_fraction: float = 0.0
    onset_shift_px: float = 0.0


def _robust_sd(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    if values.size < 2:
        return 0.0
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _hidden_withdrawal(beyond: np.ndarray, untracked: np.ndarray, before: int) -> bool:
    """Whether a withdrawal may have started unseen, in untracked frames, before frame ``before``.

    Parameters
    ----------
    beyond, untracked
        Per frame after the onset: paw beyond the threshold; paw not tracked.
    before
        The first confirmed withdrawal frame, or the number of frames in the window without one.

    Returns
    -------
    bool
        True when a stretch of untracked frames touches a displaced frame (the paw was lost just
        before it was seen withdrawn, or just after it was seen displaced) or runs to the end of the
        frames searched (the paw is not seen again before the cut-off). Gaps with the paw tracked at
        rest on both sides are left to ``max_untracked_fraction``.
    """
    possible = beyond | untracked
    if not untracked[:before].any():
        return False
    edges = np.diff(np.r_[0, possible.astype(int), 0])
    for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        if start >= before:
            break
        if untracked[start:stop].any() and (beyond[start:stop].any() or stop == len(possible)):
            return True
    return False


def detect_withdrawal(
    track_px: np.ndarray,
    fps: float,
    stimulus_frame: int,
    *,
    window_s: float,
    params: WithdrawalParams | None = None,
    px_per_mm: float | None = None,
) -> WithdrawalTrial:
    """Find the withdrawal after one stimulus in a paw track.

    Parameters
    ----------
    track_px
        ``(n_frames, 2)`` paw positions in pixels, NaN where not tracked (already cleaned).
    fps
        Frames per second of the track.
    stimulus_frame
        Row of the stimulus onset.
    window_s
        How long after the onset a withdrawal counts (the cut-off, or the filament's application).
    params
        Detection parameters.
    px_per_mm
        Scale, so the fixed part of the threshold is ``min_displacement_mm``.

    Returns
    -------
    WithdrawalTrial
        ``latency_s`` is the time to withdrawal, or ``window_s`` (the censoring value) without one.
        A withdrawal is the first frame within the window that starts ``min_frames`` consecutive
        frames beyond the threshold; a run that reaches the window's end is confirmed on the frames
        after it (when the track has them), never counted short. ``quality`` is ``ok``, or why the
        outcome is unknown (latency NaN, neither responded nor censored): ``no_baseline`` (paw not
        tracked before the onset), ``recording_ended`` (the video ends before the window does and no
        withdrawal was seen), ``untracked`` (more than ``max_untracked_fraction`` of the frames
        searched, up to the withdrawal or the window's end, are not tracked; or an untracked stretch
        before the withdrawal touches a displaced frame or runs to the window's end, so a withdrawal
        may have started unseen in it), ``onset_shift`` (with ``onset_shift_s``: the keypoint shifted at
        the onset, held, and went back to its old rest without moving away). ``untracked_fraction`` is
        that fraction; ``onset_shift_px`` the shift at the onset the search started from (0: none).
    """
    params = params or WithdrawalParams()
    track = np.asarray(track_px, dtype=float)
    n = len(track)
    if not 0 <= stimulus_frame < n:
        raise ValueError(f"expected a stimulus frame within the {n}-frame track, got {stimulus_frame}")
    window_frames = max(math.floor(window_s * fps + 1e-9), 1)
    end = stimulus_frame + window_frames  # the window is rows stimulus_frame+1 .. end-1
    recording_ended = end > n
    base_start = max(0, stimulus_frame - max(round(params.baseline_s * fps), 1))
    base = track[base_start : stimulus_frame + 1]
    base = base[np.isfinite(base).all(axis=1)]
    nan = float("nan")
    if len(base) == 0:
        return WithdrawalTrial(stimulus_frame, None, nan, False, False, nan, "no_baseline", nan)
    rest = np.median(base, axis=0)
    noise = _robust_sd(np.linalg.norm(base - rest, axis=1))
    floor_px = params.min_displacement_mm * px_per_mm if px_per_mm else params.min_displacement_px
    threshold = max(floor_px, params.noise_factor * noise)
    k = params.min_frames
    n_window = min(end, n) - (stimulus_frame + 1)
    # the window plus up to k-1 frames after it, so a run starting near the end is confirmed in full
    after = track[stimulus_frame + 1 : min(end + k - 1, n)]
    distance = np.linalg.norm(after - rest, axis=1)
    untracked = ~np.isfinite(distance)
    beyond = np.where(untracked, False, distance > threshold)
    hit = _first_run(beyond, k, n_window)
    shift_px = 0.0
    shift_frames = round(params.onset_shift_s * fps)
    if shift_frames > 0:
        # The stimulus may move the keypoint without moving the paw (the lamp's glow): if the point holds
        # still from the onset (or from a displacement starting within onset_shift_s) for baseline_s,
        # that still position is the paw's rest while the stimulus is on, and the search starts from it.
        first = hit if hit is not None and hit < shift_frames else 0
        held = after[first : min(first + max(shift_frames, round(params.baseline_s * fps), k), n_window)]
        held = held[np.isfinite(held).all(axis=1)]
        shifted = np.median(held, axis=0) if len(held) >= k else rest
        if len(held) >= k and np.all(np.linalg.norm(held - shifted, axis=1) <= threshold):
            shift_px = float(np.linalg.norm(shifted - rest))
            beyond = np.where(untracked, False, np.linalg.norm(after - shifted, axis=1) > threshold)
            beyond[:first] = False  # before a shift the paw sat at its old rest
            hit = _first_run(beyond, k, n_window)
            if shift_px > threshold and hit is not None and np.all(distance[hit : hit + k] <= threshold):
                # back where it rested before the onset, without moving away: a shift that went away, or a
                # quick lift held still and put down? The outcome is unknown.
                return WithdrawalTrial(stimulus_frame, None, nan, False, False, threshold, "onset_shift", 0.0, shift_px)
    searched = untracked[: hit + 1] if hit is not None else untracked[:n_window]
    fraction = float(searched.mean()) if searched.size else 0.0
    if fraction > params.max_untracked_fraction:
        return WithdrawalTrial(stimulus_frame, None, nan, False, False, threshold, "untracked", fraction, shift_px)
    if _hidden_withdrawal(beyond, untracked, hit if hit is not None else n_window):
        return WithdrawalTrial(stimulus_frame, None, nan, False, False, threshold, "untracked", fraction, shift_px)
    if hit is None:
        if recording_ended:
            return WithdrawalTrial(
                stimulus_frame, None, nan, False, False, threshold, "recording_ended", fraction, shift_px
            )
        return WithdrawalTrial(stimulus_frame, None, window_s, False, True, threshold, "ok", fraction, shift_px)
    frame = stimulus_frame + 1 + hit
    return WithdrawalTrial(
        stimulus_frame, frame, (frame - stimulus_frame) / fps, True, False, threshold, "ok", fraction, shift_px
    )


def _first_run(beyond: np.ndarray, k: int, n_window: int) -> int | None:
    """Index of the first frame within the window that starts ``k`` consecutive frames beyond, or None."""
    if len(beyond) < k:
        return None
    runs = np.convolve(beyond.astype(int), np.ones(k, dtype=int), mode="valid")  # runs[i]: beyond[i:i+k]
    hits = np.flatnonzero(runs[:n_window] >= k)
    return int(hits[0]) if hits.size else None


def _next_onset_of_same_paw(times: np.ndarray, keypoints: Sequence[str]) -> np.ndarray:
    """For each onset (sorted by time), the time of the next onset on the same paw keypoint, or inf."""
    out = np.full(len(times), np.inf)
    last: dict[str, int] = {}
    for i in range(len(times) - 1, -1, -1):
        if keypoints[i] in last:
            out[i] = times[last[keypoints[i]]]
        last[keypoints[i]] = i
    return out


def _paw_track(ds: xr.Dataset, keypoint: str, individual: str | None) -> np.ndarray:
    if keypoint not in ds["keypoints"].values:
        raise KeyError(f"expected a paw keypoint from {list(ds['keypoints'].values)}, got {keypoint!r}")
    ind = individual if individual is not None else ds["individuals"].values[0]
    return ds["position"].sel(keypoints=keypoint, individuals=ind).transpose("time", "space").values[:, :2]


def withdrawal_trials(
    poses: xr.Dataset,
    events: Sequence[Event | dict] | pd.DataFrame,
    *,
    window_s: float,
    paw: str | None = None,
    paw_by_side: Mapping[str, str] | None = None,
    params: WithdrawalParams | None = None,
    px_per_mm: float | None = None,
    fps: float | None = None,
    individual: str | None = None,
    onset_kind: str = "stimulus_on",
    off_grace_s: float | None = None,
) -> pd.DataFrame:
    """Detect the withdrawal after every stimulus onset in ``events``.

    Parameters
    ----------
    poses
        Poses holding the paw keypoints.
    events
        Events (``time_s, kind, side, intensity``); rows of kind ``onset_kind`` are stimuli.
    window_s
        Response window after each onset (Hargreaves: the cut-off, default 20 s).
    paw, paw_by_side
        The stimulated paw's keypoint for every trial, or a keypoint per event ``side``.
    fps
        Frame rate, when the poses do not carry one.
    off_grace_s
        If given, a trial's window also ends this long after the stimulus is removed (the next
        ``stimulus_off`` of the same side, or without a side): a von Frey filament only counts while
        it is applied, and the next application's withdrawal must not be credited to this one. None
        for Hargreaves, where the heat source switches off *because* the paw withdrew.
        In both, a trial's window ends at the next onset on the same paw; a Hargreaves trial without
        a withdrawal by then never reached its cut-off and is ``interrupted`` (outcome unknown).

    Returns
    -------
    pandas.DataFrame
        One row per stimulus with :data:`TRIAL_COLUMNS`; trials whose outcome is unknown have
        ``latency_s`` NaN and a ``quality`` from :data:`UNKNOWN_OUTCOMES`.

    Raises
    ------
    ValueError
        If there is no frame rate, no stimulus, a stimulus outside the recording, no paw for a side,
        or two onsets at the same time on one paw.
    """
    validate_poses(poses)
    fps = fps or poses.attrs.get("fps")
    if not fps:
        raise ValueError("expected the frame rate (fps) of the poses, got none: pass fps")
    params = params or WithdrawalParams()
    df = events if isinstance(events, pd.DataFrame) else events_to_frame(events)
    if df.empty:
        raise ValueError(f"expected stimulus events of kind {onset_kind!r}, got no events")
    stimuli = df[df["kind"] == onset_kind].sort_values("time_s").reset_index(drop=True)
    offs = df[df["kind"] == "stimulus_off"].sort_values("time_s")
    if stimuli.empty:
        raise ValueError(f"expected stimulus events of kind {onset_kind!r}, got kinds {sorted(df['kind'].unique())}")
    clean = interpolate_gaps(drop_low_confidence(poses, params.min_confidence), params.max_gap_frames)
    frames = clean["frame"].values
    if np.any(np.diff(frames) != 1):
        raise ValueError("expected poses of every frame of the video, got a sparse frame set")
    tracks: dict[str, np.ndarray] = {}
    keypoints = []
    for i, stim in stimuli.iterrows():
        side = stim.get("side") if isinstance(stim.get("side"), str) else None
        keypoint = paw or (paw_by_side or {}).get(side or "")
        if keypoint is None:
            raise ValueError(
                f"stimulus {i + 1} at {stim['time_s']:g} s: expected a paw keypoint (--paw) or a side with a "
                f"known paw ({dict(paw_by_side or {})}), got side {side!r}"
            )
        keypoints.append(keypoint)
    next_onset = _next_onset_of_same_paw(stimuli["time_s"].to_numpy(dtype=float), keypoints)
    same_time = np.flatnonzero(next_onset == stimuli["time_s"].to_numpy(dtype=float))
    if same_time.size:
        i = int(same_time[0])
        raise ValueError(
            f"stimulus {i + 1} at {stimuli['time_s'][i]:g} s: expected one onset at a time on paw {keypoints[i]}, "
            "got two (a duplicated event?)"
        )
    rows = []
    for i, stim in stimuli.iterrows():
        side = stim.get("side") if isinstance(stim.get("side"), str) else None
        keypoint = keypoints[i]
        if keypoint not in tracks:
            tracks[keypoint] = _paw_track(clean, keypoint, individual)
        frame = round(stim["time_s"] * fps)
        row = int(np.searchsorted(frames, frame))
        if row >= len(frames) or frames[row] != frame:
            raise ValueError(
                f"stimulus {i + 1} at {stim['time_s']:g} s (frame {frame}) lies outside the tracked frames "
                f"{frames[0]}-{frames[-1]}"
            )
        window = window_s
        if off_grace_s is not None:
            # an off event without a side ends whichever application is on
            same_side = (offs["side"] == side) | offs["side"].isna() if side else True
            later = offs[(offs["time_s"] >= stim["time_s"]) & same_side]
            if not later.empty:
                window = min(window_s, float(later["time_s"].iloc[0]) - float(stim["time_s"]) + off_grace_s)
        # the next stimulus of the same paw ends this one: its withdrawal is not this trial's
        following = next_onset[i] - float(stim["time_s"])
        interrupted = following < window
        window = min(window, following)
        trial = detect_withdrawal(tracks[keypoint], fps, row, window_s=window, params=params, px_per_mm=px_per_mm)
        if interrupted and trial.censored and off_grace_s is None:
            # no withdrawal before the next onset: the cut-off was never reached, the outcome is unknown
            trial = replace(trial, latency_s=float("nan"), censored=False, quality="interrupted")
        intensity = stim.get("intensity")
        rows.append(
            {
                "trial": i + 1,
                "stimulus_time_s": float(stim["time_s"]),
                "latency_s": trial.latency_s,
                "responded": trial.responded,
                "censored": trial.censored,
                "side": side,
                "paw": keypoint,
                "intensity": float(intensity) if intensity is not None and pd.notna(intensity) else np.nan,
                "quality": trial.quality,
                "untracked_fraction": trial.untracked_fraction,
                "threshold_px": trial.threshold_px,
                "onset_shift_px": trial.onset_shift_px,
            }
        )
    return pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))


#: Columns of :func:`count_trials`.
TRIAL_COUNT_COLUMNS = ("measure", "trials", "responded", "censored", "onset_shifted", *UNKNOWN_OUTCOMES)


def count_trials(trials: pd.DataFrame) -> list[dict[str, int | str]]:
    """How many trials of each outcome fed each measure (for the data-quality table).

    Parameters
    ----------
    trials
        A trials table (:data:`TRIAL_COLUMNS`), with a ``measure`` column naming the measure each
        trial feeds (the extractors add it); without one, all trials count under ``"all"``.

    Returns
    -------
    list of dict
        One record per measure with :data:`TRIAL_COUNT_COLUMNS`: trials, responses, censored
        non-responses, the scored trials whose keypoint shifted at the onset by more than half the
        threshold (``onset_shifted``: scored from the shifted rest) and the trials of unknown outcome by
        reason.
    """
    measure = trials["measure"].fillna("unassigned") if "measure" in trials else pd.Series("all", trials.index)
    out = []
    for name, t in trials.groupby(measure, sort=False):
        ok = t["quality"] == "ok"
        row: dict[str, int | str] = {
            "measure": str(name),
            "trials": len(t),
            "responded": int((ok & t["responded"].astype(bool)).sum()),
            "censored": int((ok & t["censored"].astype(bool)).sum()),
            "onset_shifted": int((ok & (t["onset_shift_px"] > t["threshold_px"] / 2)).sum())
            if "onset_shift_px" in t
            else 0,
        }
        row.update({q: int((t["quality"] == q).sum()) for q in UNKNOWN_OUTCOMES})
        out.append(row)
    return out
