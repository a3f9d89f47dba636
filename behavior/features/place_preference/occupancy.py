"""Zone occupancy from a body-centre track: time per zone, entries, latency, distance (pure functions).

Rule
----
1. Each sample of the track (one per tracked frame, ``dt_s`` apart) gets the zone its body centre lies
   in (:func:`~behavior.features.place_preference.zones.zone_labels`), ``outside`` when in none, or
   ``untracked`` when there is no body centre (tracking lost: NaN).
2. **Gaps.** A run of untracked samples no longer than ``max_gap_s`` between two samples in the same
   zone is given to that zone (the animal did not leave unseen). Longer gaps, or gaps across a change
   of zone, stay untracked: their time is in no zone and is counted.
3. **Minimum dwell.** Flicker at a boundary (the centre jittering across a line for a few frames) is
   not a visit: a run of samples in one zone shorter than ``min_dwell_s`` (counted over tracked
   samples) is given to the zone the animal was in before it (the first runs of the track, to the first
   run that lasts). So a visit and an entry last at least ``min_dwell_s``.
4. **Measures.** Time in a zone = its samples x ``dt_s``. An *entry* into a zone is a sample in it whose
   previous tracked sample was elsewhere (the first sample is not an entry). The latency to a zone is
   the time of its first sample (0 when the track starts there); when the animal never goes there it
   is the track's duration, flagged ``censored``. Distance: the sum of the steps between consecutive
   tracked samples (in mm when the scale is known).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from behavior.features.place_preference.zones import OUTSIDE, UNTRACKED, Zones

__all__ = ["Occupancy", "body_centre", "debounce", "fill_gaps", "occupancy", "runs"]


def body_centre(poses: Any, keypoints: list[str], min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The body centre per pose frame: the mean of ``keypoints`` found with confidence >= ``min_confidence``.

    Returns ``(xy_px (n, 2), frame_indices (n,))``; NaN where none of the keypoints was found.

    Raises
    ------
    ValueError
        If the poses hold several individuals (a place-preference test has one animal), lack a
        keypoint, or have no frame.
    """
    n_ind = int(poses.sizes.get("individuals", 1))
    if n_ind != 1:
        raise ValueError(f"expected poses of one animal, got {n_ind} individuals")
    have = [str(k) for k in poses["keypoints"].values] if "keypoints" in poses.coords else []
    missing = [k for k in keypoints if k not in have]
    if missing:
        raise ValueError(f"expected body keypoints {missing} among the poses' {have}")
    pos = poses["position"].sel(keypoints=keypoints).isel(individuals=0).transpose("time", "keypoints", "space").values
    pos = np.asarray(pos[..., :2], dtype=float)
    conf = poses["confidence"].sel(keypoints=keypoints).isel(individuals=0).transpose("time", "keypoints").values
    ok = np.isfinite(pos).all(axis=2) & (np.nan_to_num(np.asarray(conf, float), nan=0.0) >= min_confidence)
    n_ok = ok.sum(axis=1)
    total = np.where(ok[..., None], pos, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xy = np.where(n_ok[:, None] > 0, total / np.maximum(n_ok, 1)[:, None], np.nan)
    frames = poses["frame"].values if "frame" in poses.coords else np.arange(len(xy))
    return xy, np.asarray(frames, dtype=int)


def runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal labels as ``(label, start, length)``."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, labels.size]
    return [(int(labels[s]), int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)]


def fill_gaps(labels: np.ndarray, max_gap: int) -> tuple[np.ndarray, int]:
    """Give untracked runs of at most ``max_gap`` samples between two samples of one zone to that zone.

    Returns the new labels and the number of samples filled.
    """
    out = np.array(labels, copy=True)
    filled = 0
    r = runs(out)
    for i, (lab, start, length) in enumerate(r):
        if lab != UNTRACKED or i == 0 or i == len(r) - 1 or length > max_gap:
            continue
        if r[i - 1][0] == r[i + 1][0]:
            out[start : start + length] = r[i - 1][0]
            filled += length
    return out, filled


def debounce(labels: np.ndarray, min_dwell: int) -> tuple[np.ndarray, int]:
    """Give zone runs shorter than ``min_dwell`` tracked samples to the zone the animal was in before.

    Untracked samples are left as they are and do not break a run. Returns the new labels and the number
    of runs absorbed (flicker episodes).
    """
    out = np.array(labels, copy=True)
    tracked = np.flatnonzero(out != UNTRACKED)
    if tracked.size == 0 or min_dwell <= 1:
        return out, 0
    seq = out[tracked]
    r = runs(seq)
    lasting = [k for k, (_, _, length) in enumerate(r) if length >= min_dwell]
    if not lasting:
        return out, 0
    absorbed = 0
    current = r[lasting[0]][0]  # the track's first runs go to the first run that lasts
    for lab, start, length in r:
        if length >= min_dwell:
            current = lab
        elif lab != current:
            seq[start : start + length] = current
            absorbed += 1
    out[tracked] = seq
    return out, absorbed


@dataclass
class Occupancy:
    """Occupancy of one track: per-zone figures, per-sample labels, visits."""

    time_s: dict[str, float]
    entries: dict[str, int]
    latency_s: dict[str, float]
    censored: dict[str, bool]
    distance: float
    distance_unit: str
    duration_s: float
    tracked_s: float
    labels_raw: np.ndarray
    labels: np.ndarray
    visits: pd.DataFrame
    figures: dict[str, Any] = field(default_factory=dict)

    def zone_name(self, label: int, zones: Zones) -> str:
        """``label`` in words."""
        return zones.names[label] if label >= 0 else ("outside" if label == OUTSIDE else "untracked")


def occupancy(
    xy_px: np.ndarray,
    dt_s: float,
    zones: Zones,
    *,
    min_dwell_s: float,
    max_gap_s: float,
    px_per_mm: float | None = None,
) -> Occupancy:
    """Occupancy of a body-centre track sampled every ``dt_s`` seconds (see the module docstring).

    Raises
    ------
    ValueError
        If the track has fewer than 2 samples or ``dt_s`` is not a positive number.
    """
    from behavior.features.place_preference.zones import zone_labels

    xy_px = np.asarray(xy_px, dtype=float).reshape(-1, 2)
    if not (dt_s > 0 and math.isfinite(dt_s)):
        raise ValueError(f"expected a sample interval dt_s > 0, got {dt_s}")
    n = len(xy_px)
    if n < 2:
        raise ValueError(f"expected a track of at least 2 frames, got {n}")
    raw = zone_labels(xy_px, zones)
    labels, filled = fill_gaps(raw, max(0, math.floor(max_gap_s / dt_s + 1e-9)))
    labels, flicker = debounce(labels, max(1, math.ceil(min_dwell_s / dt_s - 1e-9)))
    names = list(zones.names)
    time_s = {z: _seconds((labels == k).sum(), dt_s) for k, z in enumerate(names)}
    time_s["outside"] = _seconds((labels == OUTSIDE).sum(), dt_s)
    tracked_idx = np.flatnonzero(labels != UNTRACKED)
    seq = labels[tracked_idx]
    entries = {z: 0 for z in names}
    latency: dict[str, float] = {}
    censored: dict[str, bool] = {}
    if seq.size:
        change = np.flatnonzero(seq[1:] != seq[:-1]) + 1
        for c in change:
            if seq[c] >= 0:
                entries[names[seq[c]]] += 1
    for k, z in enumerate(names):
        first = np.flatnonzero(labels == k)
        censored[z] = first.size == 0
        latency[z] = _seconds(first[0], dt_s) if first.size else _seconds(n, dt_s)
    known = np.isfinite(xy_px).all(axis=1)
    steps = np.hypot(*np.diff(xy_px, axis=0).T)
    both = known[1:] & known[:-1]
    dist_px = float(steps[both].sum())
    if px_per_mm:
        distance, unit = dist_px / px_per_mm, "mm"
    else:
        distance, unit = dist_px, "px"
    visits = []
    for lab, start, length in _tracked_runs(labels):
        visits.append(
            {
                "zone": names[lab] if lab >= 0 else "outside",
                "start_s": round(start * dt_s, 6),
                "end_s": round((start + length) * dt_s, 6),
                "duration_s": round(length * dt_s, 6),
            }
        )
    figures = {
        "samples": n,
        "samples_untracked_raw": int((raw == UNTRACKED).sum()),
        "samples_gap_filled": filled,
        "samples_untracked": int((labels == UNTRACKED).sum()),
        "flicker_runs_absorbed": flicker,
        "samples_reassigned_by_dwell": int(((labels != raw) & (raw != UNTRACKED)).sum()),
    }
    return Occupancy(
        time_s=time_s,
        entries=entries,
        latency_s=latency,
        censored=censored,
        distance=distance,
        distance_unit=unit,
        duration_s=_seconds(n, dt_s),
        tracked_s=_seconds(tracked_idx.size, dt_s),
        labels_raw=raw,
        labels=labels,
        visits=pd.DataFrame(visits, columns=["zone", "start_s", "end_s", "duration_s"]),
        figures=figures,
    )


def _seconds(count: int | np.integer, dt_s: float) -> float:
    """``count`` samples in seconds, rounded to the nanosecond (so 151 frames at 5 fps are 30.2 s exactly)."""
    return round(float(count) * dt_s, 9)


def _tracked_runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """Visits: runs of one zone (or outside), untracked samples inside a run not breaking it."""
    out: list[tuple[int, int, int]] = []
    for lab, start, length in runs(labels):
        if lab == UNTRACKED:
            continue
        if out and out[-1][0] == lab:
            prev = out[-1]
            out[-1] = (lab, prev[1], start + length - prev[1])
        else:
            out.append((lab, start, length))
    return out
