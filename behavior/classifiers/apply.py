"""Applying a behaviour classifier to a session: per-frame labels, bouts and session measures.

Session measures (units in the names), for each behaviour ``b`` the classifier scores:
``time_<b>_s``, ``time_<b>_fraction`` (of the session's frames), ``bouts_<b>`` and ``mean_bout_<b>_s``;
``flinch_count`` (flinching bouts); and for licking, the licked paw of each licking frame is the hind paw
nearer the snout: ``licking_left_s`` / ``licking_right_s`` (the animal's left and right), and, when the
session says which paw is injured (``side``), ``licking_ipsi_s``, ``licking_contra_s`` and
``licking_ipsi_minus_contra_s``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from behavior.classifiers.bouts import NONE, labels_to_bouts
from behavior.classifiers.features import FeatureSet, compute_features
from behavior.classifiers.model import TrainedClassifier
from behavior.classifiers.roles import resolve_roles
from behavior.features.base import Measure

__all__ = [
    "FLINCH_BEHAVIOURS",
    "LICKING_BEHAVIOURS",
    "BehaviourScores",
    "apply_classifier",
    "behaviour_measures",
    "licked_paw",
    "session_features",
]

LICKING_BEHAVIOURS = ("licking",)
FLINCH_BEHAVIOURS = ("flinching",)


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
) -> list[Measure]:
    """Session measures from per-frame labels (see the module docstring).

    Parameters
    ----------
    labels
        One label per frame (``none`` where no behaviour).
    fps
        Frame rate.
    behaviours
        The behaviours to report (each gets its measures, zero when never seen).
    paw
        The licked paw per frame (:func:`licked_paw`), for ipsi/contra licking.
    side
        The injured (ipsilateral) side, ``left`` or ``right``; None: no ipsi/contra measures.
    """
    labels = np.asarray(labels).astype(str)
    n = len(labels)
    bouts = labels_to_bouts(labels, fps=fps)
    out: list[Measure] = []
    for b in behaviours:
        frames = int((labels == b).sum())
        mine = bouts[bouts["behavior"] == b]
        out += [
            Measure(f"time_{b}_s", round(frames / fps, 6), "s", n),
            Measure(f"time_{b}_fraction", round(frames / n, 6) if n else math.nan, "fraction", n),
            Measure(f"bouts_{b}", float(len(mine)), "count", n),
            Measure(
                f"mean_bout_{b}_s",
                round(float(mine["duration_s"].mean()), 6) if len(mine) else math.nan,
                "s",
                len(mine),
                "ok" if len(mine) else "no_bouts",
            ),
        ]
    flinch = [b for b in flinching if b in behaviours]
    if flinch:
        out.append(Measure("flinch_count", float(bouts["behavior"].isin(flinch).sum()), "count", n))
    lick = [b for b in licking if b in behaviours]
    if lick and paw is not None:
        is_lick = np.isin(labels, lick)
        per = {s: float((is_lick & (paw == s)).sum()) / fps for s in ("left", "right")}
        out += [Measure(f"licking_{s}_s", round(v, 6), "s", n) for s, v in per.items()]
        if side in ("left", "right"):
            contra = "right" if side == "left" else "left"
            out += [
                Measure("licking_ipsi_s", round(per[side], 6), "s", n),
                Measure("licking_contra_s", round(per[contra], 6), "s", n),
                Measure("licking_ipsi_minus_contra_s", round(per[side] - per[contra], 6), "s", n),
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

    Raises
    ------
    ValueError
        For a behaviour the classifier does not score, poses at another fps, or a missing keypoint role.
    """
    chosen = list(behaviours) if behaviours is not None else clf.behaviours
    unknown = [b for b in chosen if b not in clf.behaviours]
    if unknown:
        raise ValueError(f"unknown behaviour(s) {unknown}: expected from the classifier's {clf.behaviours}")
    feats = session_features(poses, clf, roles=roles, skeleton=skeleton, fps=fps, source=source)
    labels, proba = clf.predict(feats, source=source)
    labels = np.where(np.isin(labels, chosen), labels, NONE)
    frames = pd.DataFrame({"frame": np.arange(len(labels)), "behavior": labels.astype(str)})
    for j, c in enumerate(clf.classes):
        if c in chosen:
            frames[f"p_{c}"] = np.round(proba[:, j], 4)
    paw = licked_paw(feats)
    if any(b in chosen for b in LICKING_BEHAVIOURS):
        frames["licked_paw"] = np.where(np.isin(labels, LICKING_BEHAVIOURS), paw, "")
    bouts = labels_to_bouts(labels, fps=feats.fps)
    measures = behaviour_measures(labels, feats.fps, chosen, paw=paw, side=side)
    quality = {
        "n_frames": len(labels),
        "body_length_px": round(feats.body_length_px, 3),
        "frames_without_body_axis": feats.quality["frames_without_body_axis"],
        "classifier_fps": clf.fps,
    }
    return BehaviourScores(frames=frames, bouts=bouts, measures=measures, quality=quality)
