"""Sub-second paw-withdrawal kinematics (PAWS-like, Jones et al. 2020, eLife 9:e57258).

From a high-speed track of the stimulated paw (x horizontal, y = height above the floor, mm):

1. **Activity window** - from the last moment the paw was still before it first moved more than
   ``window_threshold_mm`` from its start, to the first moment it is still after its last such move
   (stillness = a zero of the Savitzky-Golay-smoothed velocity).
2. **Height** - y minus the straight line joining the window's first and last heights, so the paw
   starts and ends at 0.
3. **First peak** ``t*`` - the first local maximum of height whose rise exceeds ``local_peak_fraction``
   of the highest height (the global peak if none).
4. **Pre-peak features** (start..t*): max height, max horizontal and vertical speed, distance.
   **Post-peak features** (t*..end): max height, speeds, distance, *shakes* (back-and-forth turns of
   the paw along its local direction of motion whose amplitude exceeds ``shake_fraction`` of the peak
   height, in runs of at least two), shaking time and *guarding* time (post-peak time not shaking).

The pain score is a scikit-learn pipeline: features z-scored within strain (strains differ in
baseline reflexes), then logistic regression of noxious vs innocuous stimulus; validated with
cross-validation grouped by mouse.

Parameters follow the published defaults (``configs/assays/paws.yaml``); durations are in seconds and
converted to odd frame counts for the filters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.signal import savgol_filter
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

__all__ = [
    "FEATURES",
    "POST_FEATURES",
    "PRE_FEATURES",
    "PawsParams",
    "StrainStandardizer",
    "cross_validate_pain_score",
    "noxious_labels",
    "pain_score_pipeline",
    "paw_features",
    "track_from_poses",
    "tracks_features",
]

PRE_FEATURES = ("pre_max_height_mm", "pre_max_x_speed_mm_s", "pre_max_y_speed_mm_s", "pre_distance_mm")
POST_FEATURES = (
    "post_max_height_mm",
    "post_max_x_speed_mm_s",
    "post_max_y_speed_mm_s",
    "post_distance_mm",
    "post_n_shakes",
    "post_shaking_s",
    "post_guarding_s",
)
FEATURES = PRE_FEATURES + POST_FEATURES


class PawsParams(BaseModel):
    """Feature-extraction parameters (Jones et al. defaults; durations in seconds)."""

    model_config = ConfigDict(extra="forbid")
    window_filter_s: float = Field(0.045, gt=0)
    window_threshold_mm: float = Field(0.5, gt=0)
    projection_window_s: float = Field(0.04, gt=0)
    peak_filter_s: float = Field(0.015, gt=0)
    local_peak_fraction: float = Field(0.2, gt=0, lt=1)
    shake_filter_s: float = Field(0.015, gt=0)
    shake_fraction: float = Field(0.35, gt=0)
    velocity_filter_s: float = Field(0.005, gt=0)
    filter_order: int = Field(3, ge=1)


def _odd_frames(seconds: float, fps: float, order: int) -> int:
    n = int(np.floor(seconds * fps))
    n = n if n % 2 else n + 1
    return max(n, order + 2 if (order + 2) % 2 else order + 3)


def _smooth_derivative(u: np.ndarray, frames: int, order: int) -> np.ndarray:
    frames = min(frames, len(u) if len(u) % 2 else len(u) - 1)
    if frames <= order:
        return np.gradient(u)
    return savgol_filter(u, frames, order, deriv=1)


def _still_points(v: np.ndarray) -> np.ndarray:
    """Frames where the smoothed velocity changes sign (the paw turns or stops)."""
    return np.flatnonzero(np.diff(np.sign(v)) != 0)


def _activity_window(u: np.ndarray, frames: int, order: int, threshold: float) -> tuple[int, int] | None:
    away_start = np.flatnonzero(np.abs(u - u[0]) > threshold)
    away_end = np.flatnonzero(np.abs(u - u[-1]) > threshold)
    if away_start.size == 0 or away_end.size == 0:
        return None
    rough_start, rough_end = int(away_start[0]), int(away_end[-1])
    turns = _still_points(_smooth_derivative(u, frames, order))
    before = turns[turns < rough_start]
    after = turns[turns > rough_end]
    return (int(before[-1]) if before.size else rough_start, int(after[0]) if after.size else rough_end)


def _local_direction_projection(x: np.ndarray, y: np.ndarray, half_window: int) -> np.ndarray:
    """Position along the local principal axis of motion (sign kept continuous over time).

    The axis at each frame is the first principal component of the positions within
    ``half_window`` frames; projecting onto it turns side-to-side shaking in any direction into
    oscillations of one signal.
    """
    pts = np.column_stack([x, y])
    n = len(pts)
    w = max(1, min(half_window, n // 2 - 1))
    projection = np.zeros(n)
    previous = None
    for t in range(n):
        lo, hi = max(0, t - w), min(n, t + w + 1)
        seg = pts[lo:hi]
        centre = seg.mean(axis=0)
        cov = np.cov((seg - centre).T) if len(seg) > 1 else np.eye(2)
        _, vecs = np.linalg.eigh(cov)
        axis = vecs[:, -1]
        if previous is not None and axis @ previous < 0:
            axis = -axis  # keep the axis pointing the same way as in the previous frame
        previous = axis
        projection[t] = (pts[t] - centre) @ axis
    return projection


def _shakes(
    u: np.ndarray, peak_t: int, peak_height: float, frames: int, order: int, fraction: float
) -> tuple[int, int]:
    """Number of shake turns after the first peak and the frames they span."""
    turns = np.unique(np.r_[_still_points(_smooth_derivative(u, frames, order)), peak_t])
    if peak_height <= 0 or turns.size < 2:
        return 0, 0
    scaled = u / peak_height
    big = np.r_[False, np.abs(np.diff(scaled[turns])) > fraction]
    after = turns > peak_t
    turns, big = turns[after], big[after]
    n_shakes, frames_shaking = 0, 0
    i = 0
    while i < len(big):
        if not big[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(big) and big[j + 1]:
            j += 1
        if j > i:  # a run of at least two large turns is shaking
            n_shakes += j - i + 1
            frames_shaking += int(turns[j] - turns[i])
        i = j + 1
    return n_shakes, frames_shaking


def paw_features(x_mm: np.ndarray, y_mm: np.ndarray, fps: float, params: PawsParams | None = None) -> dict[str, float]:
    """PAWS features of one withdrawal track.

    Parameters
    ----------
    x_mm, y_mm
        Horizontal position and height of the paw (height grows upwards), millimetres.
    fps
        Frames per second (high-speed video: 500-2000).
    params
        Extraction parameters.

    Returns
    -------
    dict
        :data:`FEATURES` plus ``window_start``, ``window_end`` and ``peak_frame`` (frames).

    Raises
    ------
    ValueError
        If the track has NaN, too few frames, or no movement above the window threshold.
    """
    params = params or PawsParams()
    x = np.asarray(x_mm, dtype=float)
    y = np.asarray(y_mm, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"expected two 1-D series of equal length, got {x.shape} and {y.shape}")
    if len(x) < 10:
        raise ValueError(f"expected a track of at least 10 frames, got {len(x)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("expected a complete track, got NaN positions (interpolate gaps first)")
    order = params.filter_order
    f_win = _odd_frames(params.window_filter_s, fps, order)
    windows = [_activity_window(u, f_win, order, params.window_threshold_mm) for u in (x, y)]
    windows = [w for w in windows if w is not None]
    if not windows:
        raise ValueError(f"no paw movement larger than {params.window_threshold_mm} mm in the track")
    start, end = min(w[0] for w in windows), max(w[1] for w in windows)
    xs, ys = x[start : end + 1] - x[start], y[start : end + 1]
    n = len(ys)
    ramp = ys[0] + (ys[-1] - ys[0]) * np.arange(n) / max(n - 1, 1)
    height = ys - ramp

    f_peak = _odd_frames(params.peak_filter_s, fps, order)
    turns = _still_points(_smooth_derivative(height, f_peak, order))
    if turns.size == 0:
        turns = np.array([int(np.argmax(height))])
    global_t = int(turns[np.argmax(height[turns])])
    global_h = float(height[global_t])
    crit = turns if turns[0] == 0 else np.r_[0, turns]
    rises = np.r_[0.0, np.diff(height[crit])]
    firsts = crit[rises / global_h > params.local_peak_fraction] if global_h > 0 else np.array([], int)
    peak_t = int(firsts[0]) if firsts.size else global_t

    f_vel = _odd_frames(params.velocity_filter_s, fps, order)
    vx = np.abs(_smooth_derivative(xs, f_vel, order)) * fps
    vy = np.abs(_smooth_derivative(height, f_vel, order)) * fps
    step = np.hypot(np.diff(xs), np.diff(height))

    half = max(1, _odd_frames(params.projection_window_s, fps, order) // 2)
    u = _local_direction_projection(xs, height, half)
    n_shakes, shake_frames = _shakes(
        u, peak_t, global_h, _odd_frames(params.shake_filter_s, fps, order), order, params.shake_fraction
    )
    post_frames = n - 1 - peak_t
    return {
        "pre_max_height_mm": float(height[peak_t]),
        "pre_max_x_speed_mm_s": float(vx[: peak_t + 1].max()),
        "pre_max_y_speed_mm_s": float(vy[: peak_t + 1].max()),
        "pre_distance_mm": float(step[:peak_t].sum()),
        "post_max_height_mm": float(height[peak_t + 1 :].max()) if peak_t + 1 < n else 0.0,
        "post_max_x_speed_mm_s": float(vx[peak_t:].max()),
        "post_max_y_speed_mm_s": float(vy[peak_t:].max()),
        "post_distance_mm": float(step[peak_t:].sum()),
        "post_n_shakes": float(n_shakes),
        "post_shaking_s": shake_frames / fps,
        "post_guarding_s": max(post_frames - shake_frames, 0) / fps,
        "window_start": float(start),
        "window_end": float(end),
        "peak_frame": float(start + peak_t),
    }


def tracks_features(
    tracks: pd.DataFrame, fps: float, params: PawsParams | None = None, *, id_column: str = "track"
) -> pd.DataFrame:
    """Features of every track in a long table (``track, frame, x, y`` plus any metadata columns).

    Metadata columns constant within a track (mouse_id, strain, stimulus...) are carried over. A track
    whose features cannot be computed is kept with NaN features and its reason in ``quality``.
    """
    missing = [c for c in (id_column, "x", "y") if c not in tracks]
    if missing:
        raise ValueError(f"expected columns {id_column}, x, y[, frame], missing {missing}")
    meta_cols = [c for c in tracks.columns if c not in (id_column, "frame", "x", "y")]
    rows = []
    for track_id, g in tracks.groupby(id_column, sort=False):
        g = g.sort_values("frame") if "frame" in g else g
        row = {id_column: track_id, **{c: g[c].iloc[0] for c in meta_cols}}
        try:
            row.update(paw_features(g["x"].to_numpy(), g["y"].to_numpy(), fps, params))
            row["quality"] = "ok"
        except ValueError as exc:
            row.update(dict.fromkeys(FEATURES, np.nan))
            row["quality"] = str(exc)
        rows.append(row)
    return pd.DataFrame(rows)


class StrainStandardizer(BaseEstimator, TransformerMixin):
    """Z-score features within each strain (``X`` is a DataFrame with a ``strain`` column).

    Strains unseen in training are standardised with the pooled statistics.

    Parameters
    ----------
    features
        The feature columns to use.
    strain_column
        Column naming each row's strain (or None to standardise all rows together).
    """

    def __init__(self, features: Sequence[str] = FEATURES, strain_column: str | None = "strain") -> None:
        self.features = features
        self.strain_column = strain_column

    def fit(self, X: pd.DataFrame, y: object = None) -> StrainStandardizer:
        data = X[list(self.features)].astype(float)
        self.pooled_ = (data.mean(), data.std(ddof=0).replace(0, 1.0))
        self.by_strain_ = {}
        if self.strain_column is not None:
            for strain, g in data.groupby(X[self.strain_column]):
                sd = g.std(ddof=0).replace(0, 1.0).fillna(1.0)
                self.by_strain_[strain] = (g.mean(), sd)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        data = X[list(self.features)].astype(float)
        out = np.empty(data.shape)
        strains = X[self.strain_column] if self.strain_column is not None else pd.Series(None, index=X.index)
        for i, (idx, row) in enumerate(data.iterrows()):
            mean, sd = self.by_strain_.get(strains.loc[idx], self.pooled_)
            out[i] = ((row - mean) / sd).to_numpy()
        return out


def pain_score_pipeline(features: Sequence[str] = FEATURES, *, strain_column: str | None = "strain") -> Pipeline:
    """Strain-standardised logistic regression; ``decision_function`` is the pain score (log-odds noxious)."""
    return Pipeline(
        [
            ("standardize", StrainStandardizer(features, strain_column)),
            ("classify", LogisticRegression(C=1.0, max_iter=1000)),
        ]
    )


@dataclass(frozen=True)
class CVResult:
    """Mouse-grouped cross-validation of the pain score."""

    accuracy: float
    balanced_accuracy: float
    roc_auc: float
    n_tracks: int
    n_mice: int
    scores: pd.Series


NOXIOUS = ("LP", "HP", "light_pinprick", "heavy_pinprick", "noxious")
INNOCUOUS = ("CS", "DB", "cotton_swab", "dynamic_brush", "innocuous")


def noxious_labels(stimuli: pd.Series) -> pd.Series:
    """1 for noxious stimuli (pinprick), 0 for innocuous ones (cotton swab, brush)."""
    unknown = sorted(set(stimuli) - set(NOXIOUS) - set(INNOCUOUS))
    if unknown:
        raise ValueError(f"expected stimuli from {NOXIOUS + INNOCUOUS}, got unknown {unknown}")
    return stimuli.isin(NOXIOUS).astype(int)


def cross_validate_pain_score(
    features: pd.DataFrame,
    labels: pd.Series,
    groups: pd.Series,
    *,
    feature_names: Sequence[str] = FEATURES,
    strain_column: str | None = "strain",
    n_splits: int = 5,
) -> CVResult:
    """Cross-validate the pain score with folds grouped by mouse (no mouse in both train and test).

    Returns
    -------
    CVResult
        Accuracy, balanced accuracy and ROC AUC of the held-out predictions, and the held-out score
        (log-odds noxious) of every track.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
    from sklearn.model_selection import GroupKFold

    ok = features[list(feature_names)].notna().all(axis=1)
    X, y, g = features[ok], labels[ok].to_numpy(), groups[ok].to_numpy()
    if len(np.unique(y)) != 2:
        raise ValueError("expected both noxious and innocuous tracks to cross-validate")
    scores = np.full(len(X), np.nan)
    for train, test in GroupKFold(n_splits=n_splits).split(X, y, g):
        model = pain_score_pipeline(feature_names, strain_column=strain_column).fit(X.iloc[train], y[train])
        scores[test] = model.decision_function(X.iloc[test])
    predicted = (scores > 0).astype(int)
    return CVResult(
        accuracy=float(accuracy_score(y, predicted)),
        balanced_accuracy=float(balanced_accuracy_score(y, predicted)),
        roc_auc=float(roc_auc_score(y, scores)),
        n_tracks=len(X),
        n_mice=len(np.unique(g)),
        scores=pd.Series(scores, index=X.index, name="pain_score"),
    )


def track_from_poses(
    poses,
    paw: str,
    *,
    reference: tuple[str, str] | None = None,
    reference_mm: float | None = None,
    px_per_mm: float | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The paw's horizontal position and height in mm from a side-view Poses dataset.

    The scale comes from ``px_per_mm`` or from two reference points a known distance apart
    (``reference`` keypoints, ``reference_mm``; their median distance over the clip). Image y grows
    downwards, so height is ``-(y - y[0])``.

    Returns
    -------
    x_mm, height_mm, px_per_mm
    """
    from pose_models.poses import interpolate_gaps

    ind = poses["individuals"].values[0]
    if paw not in poses["keypoints"].values:
        raise KeyError(f"expected a paw keypoint from {list(poses['keypoints'].values)}, got {paw!r}")
    if px_per_mm is None:
        if reference is None or reference_mm is None:
            raise ValueError("expected px_per_mm, or two reference keypoints and their distance in mm")
        a, b = (
            poses["position"].sel(keypoints=k, individuals=ind).transpose("time", "space").values for k in reference
        )
        distance_px = float(np.nanmedian(np.linalg.norm(a - b, axis=1)))
        if not distance_px > 0:
            raise ValueError(f"reference points {reference} give no distance in the image")
        px_per_mm = distance_px / reference_mm
    filled = interpolate_gaps(poses, max_gap_frames=10)
    xy = filled["position"].sel(keypoints=paw, individuals=ind).transpose("time", "space").values
    if np.isnan(xy).any():
        raise ValueError(f"paw {paw!r} has tracking gaps longer than 10 frames")
    return (xy[:, 0] - xy[0, 0]) / px_per_mm, -(xy[:, 1] - xy[0, 1]) / px_per_mm, px_per_mm
