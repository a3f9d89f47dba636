"""Applying a behaviour classifier to a session: per-frame labels, bouts and session measures.

Session measures (units in the names), for each behaviour ``b`` the classifier scores:
``time_<b>_s``, ``time_<b>_fraction`` (of the session's frames), ``bouts_<b>`` and ``mean_bout_<b>_s``;
``flinch_count`` (flinching bouts); and for licking, the licked paw of each licking frame is the hind paw
nearer the snout: ``licking_left_s`` / ``licking_right_s`` (the animal's left and right), and, when the
session says which paw is injured (``side``), ``licking_ipsi_s``, ``licking_contra_s`` and
``licking_ipsi_minus_contra_s``.

Frames without a body axis (snout or tail base lost for longer than the features bridge) are untracked
(``tracked`` false and ``behavior`` ``none`` in the frame table, no probabilities): no behaviour is read
from them or smoothed into the frames around them, fractions are of the tracked frames, and times are the
time seen in each behaviour; a bout broken only by untracked frames is one bout (the animal was not seen
to stop), its duration the time seen. A session untracked for more than ``max_untracked_fraction`` of its frames
gets NaN measures with the reason; so do ipsi/contra licking measures when the licked paw is unknown
(neither hind paw seen) in more than that share of the licking frames. With an ``expected_duration_s``,
a longer session is scored over its first ``expected_duration_s`` and a shorter one (under 95 %) gets NaN
times and counts (its fractions stay), so that a recording cut short does not read as less pain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from behavior.classifiers.bouts import NONE, UNTRACKED, seen_bouts
from behavior.classifiers.features import FeatureSet, compute_features, window_frames
from behavior.classifiers.model import TrainedClassifier
from behavior.classifiers.roles import resolve_roles
from behavior.features.base import Measure

__all__ = [
    "FLINCH_BEHAVIOURS",
    "LICKING_BEHAVIOURS",
    "UNTRACKED",
    "BehaviourScores",
    "apply_classifier",
    "behaviour_measures",
    "licked_paw",
    "session_features",
]

LICKING_BEHAVIOURS = ("licking",)
FLINCH_BEHAVIOURS = ("flinching",)
#: a session shorter than this share of its expected duration is a recording cut short
SHORT_RECORDING_SHARE = 0.95


@dataclass
class BehaviourScores:
    """A session scored by a classifier: ``frames`` (frame, behavior, p_<behaviour>...), ``bouts``, measures."""

    frames: pd.DataFrame
    bouts: pd.DataFrame
    measures: list[Measure]
    quality: dict[str, Any] = field(default_factory=dict)

    def measures_frame(self) -> pd.DataFrame:
        """The measures as ``measure, value, unit, n, quality``."""
        return pd.DataFrame([m.__dict__ for m in self.measures], columns=["measure", "value", "unit", "n", "quality"])


def session_features(
    poses: xr.Dataset,
    clf: TrainedClassifier,
    *,
    roles: Mapping[str, str] | None = None,
    skeleton: str | None = "pain_box",
    fps: float | None = None,
    source: str = "poses",
) -> FeatureSet:
    """The features ``clf`` needs from ``poses`` (roles mapped as at training).

    Raises
    ------
    RoleError
        If the poses lack a keypoint role the classifier uses.
    ValueError
        If the poses are at another frame rate than the classifier's.
    """
    names = [str(k) for k in poses["keypoints"].values]
    found = resolve_roles(names, mapping=roles, skeleton=skeleton, required=clf.roles, source=source)
    used = {r: found[r] for r in clf.roles}
    rate = float(fps if fps is not None else poses.attrs.get("fps") or 0)
    if not np.isclose(rate, clf.fps, rtol=1e-3):
        raise ValueError(
            f"{source}: expected poses at the classifier's {clf.fps:g} fps, got {rate:g} fps "
            "(resample the poses or train a classifier at this rate)"
        )
    widest = max(window_frames(w, rate) for w in clf.feature_params.windows_s)
    if poses.sizes["time"] < widest:
        raise ValueError(
            f"{source}: expected at least {widest} frames (the classifier's widest window, "
            f"{max(clf.feature_params.windows_s):g} s), got {poses.sizes['time']}"
        )
    return compute_features(poses, used, fps=rate, params=clf.feature_params)


def licked_paw(features: FeatureSet) -> np.ndarray:
    """Per frame, the hind paw nearer the snout: ``"left"``, ``"right"`` or ``""`` when neither is seen."""
    f = features.frames
    n = len(f)
    left = f["paw_lh_to_snout"].to_numpy() if "paw_lh_to_snout" in f else np.full(n, np.nan)
    right = f["paw_rh_to_snout"].to_numpy() if "paw_rh_to_snout" in f else np.full(n, np.nan)
    out = np.full(n, "", dtype=object)
    both = np.isfinite(left) & np.isfinite(right)
    out[both & (left <= right)] = "left"
    out[both & (left > right)] = "right"
    out[np.isfinite(left) & ~np.isfinite(right)] = "left"
    out[~np.isfinite(left) & np.isfinite(right)] = "right"
    return out


def behaviour_measures(
    labels: np.ndarray,
    fps: float,
    behaviours: Sequence[str],
    *,
    paw: np.ndarray | None = None,
    side: str | None = None,
    licking: Sequence[str] = LICKING_BEHAVIOURS,
    flinching: Sequence[str] = FLINCH_BEHAVIOURS,
    max_untracked_fraction: float = 0.2,
    expected_frames: int | None = None,
    hind_paw_untracked_fraction: float = 0.0,
) -> list[Measure]:
    """Session measures from per-frame labels (see the module docstring).

    Parameters
    ----------
    labels
        One label per frame (``none`` where no behaviour, :data:`UNTRACKED` where the body is not seen).
    fps
        Frame rate.
    behaviours
        The behaviours to report (each gets its measures, zero when never seen).
    paw
        The licked paw per frame (:func:`licked_paw`), for ipsi/contra licking.
    side
        The injured (ipsilateral) side, ``left`` or ``right``; None: no ipsi/contra measures.
    max_untracked_fraction
        Above this share of untracked frames every measure is NaN, with the reason in its quality.
    expected_frames
        The session's planned length: with fewer than 95 % of them, times and counts are NaN.
    hind_paw_untracked_fraction
        Share of frames in which a hind paw is not seen (the larger of the two): above
        ``max_untracked_fraction`` the licked paw cannot be told and the per-paw licking measures are NaN.
    """
    labels = np.asarray(labels).astype(str)
    n = len(labels)
    tracked = labels != UNTRACKED
    n_tracked = int(tracked.sum())
    untracked_fraction = (n - n_tracked) / n if n else 1.0  # exact at the limit (1 - 7/10 > 0.3 in floats)
    bouts = seen_bouts(labels, fps=fps)  # a tracking gap does not split a bout
    # why a session's measures cannot be read: (times and counts, fractions)
    void_all = void_counts = None
    if untracked_fraction > max_untracked_fraction:
        void_all = f"untracked {100 * untracked_fraction:.0f}% of frames > {100 * max_untracked_fraction:g}%"
    elif expected_frames is not None and n < SHORT_RECORDING_SHARE * expected_frames:
        void_counts = f"recording_short: {n / fps:g} s of {expected_frames / fps:g} s"

    def measure(name: str, value: float, unit: str, count: int, quality: str = "ok", *, per_time: bool = True):
        reason = void_all or (void_counts if per_time else None)
        if reason is not None:
            return Measure(name, math.nan, unit, count, reason)
        return Measure(name, value, unit, count, quality)

    out: list[Measure] = []
    for b in behaviours:
        frames = int((labels == b).sum())
        mine = bouts[bouts["behavior"] == b]
        out += [
            measure(f"time_{b}_s", round(frames / fps, 6), "s", n_tracked),
            measure(
                f"time_{b}_fraction",
                round(frames / n_tracked, 6) if n_tracked else math.nan,
                "fraction",
                n_tracked,
                per_time=False,
            ),
            measure(f"bouts_{b}", float(len(mine)), "count", n_tracked),
            measure(
                f"mean_bout_{b}_s",
                round(float(mine["duration_s"].mean()), 6) if len(mine) else math.nan,
                "s",
                len(mine),
                "ok" if len(mine) else "no_bouts",
                per_time=False,
            ),
        ]
    flinch = [b for b in flinching if b in behaviours]
    if flinch:
        out.append(measure("flinch_count", float(bouts["behavior"].isin(flinch).sum()), "count", n_tracked))
    lick = [b for b in licking if b in behaviours]
    if lick and paw is not None:
        is_lick = np.isin(labels, lick)
        per = {s: float((is_lick & (paw == s)).sum()) / fps for s in ("left", "right")}
        unknown = int((is_lick & (paw == "")).sum())
        paw_quality = "ok"
        if hind_paw_untracked_fraction > max_untracked_fraction:
            paw_quality = f"hind paw untracked in {100 * hind_paw_untracked_fraction:.0f}% of frames"
        elif is_lick.any() and unknown / is_lick.sum() > max_untracked_fraction:
            paw_quality = f"licked paw unknown in {100 * unknown / is_lick.sum():.0f}% of licking frames"
        lick_n = int(is_lick.sum())

        def paw_measure(name: str, value: float) -> Measure:
            if paw_quality != "ok":
                return measure(name, math.nan, "s", lick_n, paw_quality)
            return measure(name, round(value, 6), "s", lick_n)

        out += [paw_measure(f"licking_{s}_s", v) for s, v in per.items()]
        if side in ("left", "right"):
            contra = "right" if side == "left" else "left"
            out += [
                paw_measure("licking_ipsi_s", per[side]),
                paw_measure("licking_contra_s", per[contra]),
                paw_measure("licking_ipsi_minus_contra_s", per[side] - per[contra]),
            ]
    return out


def apply_classifier(
    clf: TrainedClassifier,
    poses: xr.Dataset,
    *,
    roles: Mapping[str, str] | None = None,
    skeleton: str | None = "pain_box",
    behaviours: Sequence[str] | None = None,
    side: str | None = None,
    fps: float | None = None,
    source: str = "poses",
    max_untracked_fraction: float = 0.2,
    expected_duration_s: float | None = None,
) -> BehaviourScores:
    """Score one session's poses with ``clf``.

    Parameters
    ----------
    clf
        A trained classifier (:func:`behavior.classifiers.store.load_classifier`).
    poses
        The session's poses.
    roles, skeleton
        How the poses' keypoint names map onto roles (:func:`behavior.classifiers.roles.resolve_roles`).
    behaviours
        Behaviours to report (default: all the classifier scores); the others count as ``none``.
    side
        The session's injured side (ipsi/contra licking).
    fps
        Frame rate when the poses store none.
    max_untracked_fraction
        Above this share of frames without a body axis the measures are NaN (with the reason).
    expected_duration_s
        The planned session length: a longer session is scored over its first ``expected_duration_s``, a
        shorter one (under 95 %) gets NaN times and counts.

    Raises
    ------
    ValueError
        For a behaviour the classifier does not score, poses at another fps, or a missing keypoint role.
    """
    chosen = list(behaviours) if behaviours is not None else clf.behaviours
    unknown = [b for b in chosen if b not in clf.behaviours]
    if unknown:
        raise ValueError(f"unknown behaviour(s) {unknown}: expected from the classifier's {clf.behaviours}")
    rate = float(fps if fps is not None else poses.attrs.get("fps") or 0)
    expected_frames = None
    if expected_duration_s is not None and rate > 0:
        expected_frames = round(expected_duration_s * rate)
        poses = poses.isel(time=slice(0, expected_frames))  # score the planned length, no more
    feats = session_features(poses, clf, roles=roles, skeleton=skeleton, fps=fps, source=source)
    labels, proba = clf.predict(feats, source=source)
    tracked = feats.tracked if feats.tracked is not None else np.ones(len(labels), dtype=bool)
    labels = np.where(np.isin(labels, chosen), labels, NONE).astype(object)
    labels[~tracked] = UNTRACKED
    # the frame table keeps its contract (a behaviour or 'none'); 'tracked' tells the unseen frames apart
    frames = pd.DataFrame(
        {"frame": np.arange(len(labels)), "behavior": np.where(tracked, labels, NONE).astype(str), "tracked": tracked}
    )
    for j, c in enumerate(clf.classes):
        if c in chosen:
            frames[f"p_{c}"] = np.where(tracked, np.round(proba[:, j], 4), np.nan)
    paw = licked_paw(feats)
    if any(b in chosen for b in LICKING_BEHAVIOURS):
        frames["licked_paw"] = np.where(np.isin(labels, LICKING_BEHAVIOURS), paw, "")
    bouts = seen_bouts(labels, fps=feats.fps)
    missing = feats.quality.get("missing_after_interpolation_fraction", {})
    # a classifier without a hind-paw role cannot tell the licked paw at all
    hind_missing = max(float(missing.get("paw_lh", 1.0)), float(missing.get("paw_rh", 1.0)))
    measures = behaviour_measures(
        labels,
        feats.fps,
        chosen,
        paw=paw,
        side=side,
        max_untracked_fraction=max_untracked_fraction,
        expected_frames=expected_frames,
        hind_paw_untracked_fraction=hind_missing,
    )
    quality = {
        "n_frames": len(labels),
        "duration_s": round(len(labels) / feats.fps, 3),
        "untracked_fraction": round(float((~tracked).mean()), 4),
        "hind_paw_untracked_fraction": round(hind_missing, 4),
        "body_length_px": round(feats.body_length_px, 3),
        "frames_without_body_axis": feats.quality["frames_without_body_axis"],
        "classifier_fps": clf.fps,
    }
    return BehaviourScores(frames=frames, bouts=bouts, measures=measures, quality=quality)
