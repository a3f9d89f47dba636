"""Per-frame pose features for the behaviour classifiers, over sliding windows, scaled to body size.

Method
------
1. Keypoints are taken by role (:mod:`behavior.classifiers.roles`) from the first individual. Points
   below ``min_confidence`` become NaN and gaps up to ``max_gap_s`` are filled by linear interpolation
   (longer gaps stay NaN: the gradient-boosting classifier takes NaN as "unknown").
2. **Body size** ``L`` is the median snout to tail-base distance of the session: every distance is in
   body lengths and every speed in body lengths per second, so rigs and animals of other sizes differ less.
3. **Base features** per frame: body length (``L`` units), body-centre speed, heading change (rad/s), and
   per role: the position in the body frame (``ego_x`` along the tail-base -> snout axis, ``ego_y``
   across it, from the body centre), its speed, its speed in the body frame (paw motion with the body
   still: flinching, licking) and the tracker's confidence; paw-to-snout and paw-to-paw distances.
4. **Window statistics** of every base feature: mean and standard deviation over centred windows of each
   width in ``windows_s``, minimum and maximum over the widest; computed with cumulative sums and
   running min/max filters (no loop over frames). And per keypoint and the body centre, the net
   displacement across each window (BL/s): immobility (freezing) shows in it where tracking jitter
   inflates the mean speed.

Every frame gets a row, whatever is missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from behavior.classifiers.roles import PAW_ROLES, REQUIRED_ROLES, RoleError

__all__ = ["FeatureParams", "FeatureSet", "compute_features", "window_frames"]


@dataclass(frozen=True)
class FeatureParams:
    """How features are computed (saved with a classifier, so its features are rebuilt the same way).

    Attributes
    ----------
    min_confidence
        Points below this tracker confidence become NaN before interpolation.
    max_gap_s
        Longest run of missing points filled by interpolation.
    windows_s
        Widths of the centred windows of the window statistics.
    """

    min_confidence: float = 0.5
    max_gap_s: float = 0.25
    windows_s: tuple[float, ...] = (0.1, 0.33, 1.0)

    def __post_init__(self) -> None:
        if not 0 <= self.min_confidence <= 1:
            raise ValueError(f"expected min_confidence in [0, 1], got {self.min_confidence}")
        if not (self.max_gap_s >= 0 and math.isfinite(self.max_gap_s)):
            raise ValueError(f"expected max_gap_s >= 0, got {self.max_gap_s}")
        if not self.windows_s or any(not (w > 0 and math.isfinite(w)) for w in self.windows_s):
            raise ValueError(f"expected window widths > 0 s, got {list(self.windows_s)}")

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (the saved classifier's manifest)."""
        d = asdict(self)
        d["windows_s"] = list(self.windows_s)
        return d


@dataclass
class FeatureSet:
    """Features of one session: ``frame x feature`` (float32) and how they were made."""

    frames: pd.DataFrame
    body_length_px: float
    fps: float
    roles: dict[str, str]
    quality: dict[str, Any] = field(default_factory=dict)
    params: FeatureParams = field(default_factory=lambda: FeatureParams())
    #: per frame, whether the body axis (snout and tail base, after gap filling) is known; None: every frame
    tracked: np.ndarray | None = None


def window_frames(width_s: float, fps: float) -> int:
    """An odd window length in frames, at least 1, nearest ``width_s * fps``."""
    n = max(1, round(width_s * fps))
    return n if n % 2 else n + 1


def _role_arrays(
    poses: xr.Dataset, roles: Mapping[str, str], params: FeatureParams, fps: float
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    pos = poses["position"]
    if "individuals" in pos.dims:
        pos = pos.isel(individuals=0)
    if "confidence" in poses:
        conf_da = poses["confidence"]
    else:  # a tracker that stores no scores: a point is as sure as it is there
        conf_da = xr.full_like(poses["position"].isel(space=0, drop=True), np.nan)
    if "individuals" in conf_da.dims:
        conf_da = conf_da.isel(individuals=0)
    names = [str(k) for k in poses["keypoints"].values]
    missing = [r for r, k in roles.items() if k not in names]
    if missing:
        raise RoleError(f"poses: expected keypoint(s) {[roles[r] for r in missing]} for role(s) {missing}, got {names}")
    keys = [roles[r] for r in roles]
    xy = pos.sel(keypoints=keys).transpose("time", "keypoints", "space").values[..., :2].astype(np.float64)
    conf = conf_da.sel(keypoints=keys).transpose("time", "keypoints").values.astype(np.float64)
    conf_filled = np.where(np.isfinite(conf), conf, np.where(np.isfinite(xy[..., 0]), 1.0, 0.0))
    low = (conf_filled < params.min_confidence) | ~np.isfinite(xy).all(axis=2)
    xy[low] = np.nan
    n = xy.shape[0]
    limit = round(params.max_gap_s * fps)
    flat = pd.DataFrame(xy.reshape(n, -1))
    if limit > 0 and n > 1:
        flat = flat.interpolate(method="linear", limit=limit, limit_area="inside", axis=0)
    xy = flat.to_numpy().reshape(n, len(keys), 2)
    quality = {
        "low_confidence_fraction": {r: round(float(low[:, i].mean()), 4) for i, r in enumerate(roles)},
        "missing_after_interpolation_fraction": {
            r: round(float(np.isnan(xy[:, i, 0]).mean()), 4) for i, r in enumerate(roles)
        },
    }
    return (
        {r: xy[:, i] for i, r in enumerate(roles)},
        {r: conf_filled[:, i] for i, r in enumerate(roles)},
        quality,
    )


def _speed(xy: np.ndarray, fps: float) -> np.ndarray:
    """Speed per frame (units per s) by central differences (one-sided at the ends)."""
    if xy.shape[0] < 2:
        return np.full(xy.shape[0], np.nan)
    v = np.gradient(xy, axis=0) * fps
    return np.hypot(v[:, 0], v[:, 1])


def _window_stats(base: np.ndarray, widths: Sequence[int]) -> tuple[list[np.ndarray], list[str]]:
    """Mean and SD over each centred width; min and max over the widest (NaN-aware, vectorised).

    ``base`` is ``(features, frames)``: every pass runs along contiguous memory, and the results come
    out in the same layout (see :func:`compute_features`).
    """
    f, n = base.shape
    ok = np.isfinite(base)
    v = np.where(ok, base, 0.0)
    zero = np.zeros((f, 1))
    cs = np.concatenate([zero, np.cumsum(v, axis=1)], axis=1)
    cs2 = np.concatenate([zero, np.cumsum(v * v, axis=1)], axis=1)
    cc = np.concatenate([zero, np.cumsum(ok, axis=1, dtype=np.float64)], axis=1)
    idx = np.arange(n)
    out: list[np.ndarray] = []
    kinds: list[str] = []
    for w in widths:
        h = w // 2
        lo, hi = np.clip(idx - h, 0, n), np.clip(idx + h + 1, 0, n)
        cnt = cc[:, hi] - cc[:, lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (cs[:, hi] - cs[:, lo]) / cnt
            var = np.maximum((cs2[:, hi] - cs2[:, lo]) / cnt - mean * mean, 0.0)
        mean[cnt == 0] = np.nan
        var[cnt == 0] = np.nan
        out += [mean, np.sqrt(var)]
        kinds += [f"mean_{w}f", f"std_{w}f"]
    w = max(widths)
    lo_v = minimum_filter1d(np.where(ok, base, np.inf), size=w, axis=1, mode="nearest")
    hi_v = maximum_filter1d(np.where(ok, base, -np.inf), size=w, axis=1, mode="nearest")
    lo_v[~np.isfinite(lo_v)] = np.nan
    hi_v[~np.isfinite(hi_v)] = np.nan
    out += [lo_v, hi_v]
    kinds += [f"min_{w}f", f"max_{w}f"]
    return out, kinds


def compute_features(
    poses: xr.Dataset,
    roles: Mapping[str, str],
    *,
    fps: float | None = None,
    params: FeatureParams | None = None,
) -> FeatureSet:
    """Per-frame features of one session (see the module docstring).

    Parameters
    ----------
    poses
        A Poses dataset (``time, space, keypoints, individuals``); the first individual is used.
    roles
        ``role -> keypoint name`` (:func:`behavior.classifiers.roles.resolve_roles`); must hold
        ``snout`` and ``tail_base``.
    fps
        Frame rate; defaults to the poses' ``fps`` attribute.
    params
        Feature parameters.

    Returns
    -------
    FeatureSet
        One row per pose frame, columns named ``<base>`` and ``<base>__<stat>_<width>f``.

    Raises
    ------
    RoleError
        If a required role is missing or names a keypoint the poses lack.
    ValueError
        If there is no frame rate, or no frame shows both snout and tail base (no body scale).
    """
    params = params or FeatureParams()
    fps = float(fps if fps is not None else poses.attrs.get("fps") or 0)
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"expected poses with a frame rate (fps > 0), got {poses.attrs.get('fps')!r}")
    lacking = [r for r in REQUIRED_ROLES if r not in roles]
    if lacking:
        raise RoleError(f"expected keypoint role(s) {lacking}, got roles {sorted(roles)}")
    xy, conf, quality = _role_arrays(poses, roles, params, fps)
    n = next(iter(xy.values())).shape[0]
    axis_vec = xy["snout"] - xy["tail_base"]
    axis_len = np.hypot(axis_vec[:, 0], axis_vec[:, 1])
    if not np.isfinite(axis_len).any():
        raise ValueError(
            f"poses: expected frames with both snout ({roles['snout']}) and tail base ({roles['tail_base']}) "
            f"above confidence {params.min_confidence}, got none"
        )
    scale = float(np.nanmedian(axis_len))
    if not scale > 0:
        raise ValueError(f"poses: expected a body length > 0 px (snout to tail base), got {scale}")
    centre = xy["centre"] if "centre" in xy else 0.5 * (xy["snout"] + xy["tail_base"])
    theta = np.arctan2(axis_vec[:, 1], axis_vec[:, 0])
    ux, uy = np.cos(theta), np.sin(theta)
    cols: dict[str, np.ndarray] = {
        "body_length": axis_len / scale,
        "centre_speed": _speed(centre, fps) / scale,
    }
    if n >= 3:
        dtheta = np.full(n, np.nan)
        d = theta[2:] - theta[:-2]
        dtheta[1:-1] = np.abs(np.angle(np.exp(1j * d))) * fps / 2
        cols["turn_rate"] = dtheta
    else:
        cols["turn_rate"] = np.full(n, np.nan)
    ego: dict[str, np.ndarray] = {}
    for role, p in xy.items():
        rel = (p - centre) / scale
        ex = rel[:, 0] * ux + rel[:, 1] * uy
        ey = -rel[:, 0] * uy + rel[:, 1] * ux
        ego[role] = np.stack([ex, ey], axis=1)
        if role != "centre" or "centre" not in roles:
            cols[f"{role}_ego_x"] = ex
            cols[f"{role}_ego_y"] = ey
        cols[f"{role}_speed"] = _speed(p, fps) / scale
        cols[f"{role}_ego_speed"] = _speed(ego[role], fps)
        cols[f"{role}_confidence"] = conf[role]
    paws = [r for r in PAW_ROLES if r in xy]
    for paw in paws:
        d = xy[paw] - xy["snout"]
        cols[f"{paw}_to_snout"] = np.hypot(d[:, 0], d[:, 1]) / scale
        cols[f"{paw}_to_centre"] = np.hypot(*ego[paw].T)
    for a, b in combinations(paws, 2):
        d = xy[a] - xy[b]
        cols[f"{a}_to_{b}"] = np.hypot(d[:, 0], d[:, 1]) / scale
    names = list(cols)
    # features are built as rows of a (features, frames) array: the window passes run along contiguous
    # memory, and pandas takes its transpose as one block with no copy (a (frames, features) array cost
    # it a transposing copy, 40 % of the features' time on a long session)
    base = np.stack([np.asarray(cols[k], dtype=np.float64) for k in names])
    widths = sorted({window_frames(w, fps) for w in params.windows_s})
    stats, kinds = _window_stats(base, widths)
    rows = [base, *stats]
    columns = names + [f"{b}__{k}" for k in kinds for b in names]
    # net displacement across each window (BL/s): unlike the mean speed, tracking jitter does not add up
    tracks = {"centre": centre, **{r: p for r, p in xy.items() if r != "centre"}}
    for w in widths:
        h = w // 2
        if h == 0:
            continue
        for role, p in tracks.items():
            disp = np.full(n, np.nan)  # a session shorter than the window keeps the column, all NaN
            if n > 2 * h:
                d = p[2 * h :] - p[: -2 * h]
                disp[h : n - h] = np.hypot(d[:, 0], d[:, 1]) / scale * fps / (2 * h)
            rows.append(disp[None, :])
            columns.append(f"{role}_displacement__{w}f")
    by_feature = np.concatenate(rows, axis=0, dtype=np.float32)
    frame = pd.DataFrame(by_feature.T, columns=columns, copy=False)
    quality.update(
        {
            "n_frames": int(n),
            "body_length_px": round(scale, 3),
            "frames_without_body_axis": int((~np.isfinite(axis_len)).sum()),
            "n_features": len(columns),
        }
    )
    return FeatureSet(
        frames=frame,
        body_length_px=scale,
        fps=fps,
        roles=dict(roles),
        quality=quality,
        params=params,
        tracked=np.isfinite(axis_len),
    )
