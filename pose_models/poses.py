"""The Poses data model: one validated constructor and the helpers that act on it.

A Poses dataset is an :class:`xarray.Dataset` with the schema of the ``movement`` package, so
movement's functions work on it without us depending on movement:

- ``position``: float, dims ``(time, space, keypoints, individuals)``, pixels
- ``confidence``: float >= 0, normally in [0, 1] (SLEAP peak scores may exceed 1), NaN where
  unknown, dims ``(time, keypoints, individuals)``
- coords ``time`` (seconds when ``fps`` is known, else frame numbers), ``space`` (``x``, ``y``[, ``z``]),
  ``keypoints``, ``individuals``, and the non-dimension coord ``frame`` (video frame index of each row,
  so sparse frame sets such as labelled frames survive round trips); labelled-frame sets also carry
  ``image`` (the image path of each row).
- attrs ``ds_type="poses"``, ``fps``, ``time_unit``, ``source_software``, ``source_file``, ``skeleton``
  (list of keypoint-name pairs), ``kind`` (``"predictions"`` or ``"labels"``) and ``log`` (provenance, a JSON
  list of the transforms applied).

Every producer (our network, a DeepLabCut import, a SLEAP import, the synthetic rig) builds the dataset
through :func:`from_numpy`, which checks shapes, names and fps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "PosesValidationError",
    "append_log",
    "drop_low_confidence",
    "from_numpy",
    "interpolate_gaps",
    "poses_summary",
    "px_to_mm",
    "select",
    "validate_poses",
]

POSITION_DIMS = ("time", "space", "keypoints", "individuals")
CONFIDENCE_DIMS = ("time", "keypoints", "individuals")
KINDS = ("predictions", "labels")


class PosesValidationError(ValueError):
    """A Poses dataset (or the arrays meant to build one) does not have the expected structure."""


def _unique_names(names: Sequence[str], what: str) -> list[str]:
    names = [str(n) for n in names]
    seen: set[str] = set()
    duplicates = sorted({n for n in names if n in seen or seen.add(n)})
    if duplicates:
        raise PosesValidationError(f"expected unique {what} names, got duplicates {duplicates}")
    if any(n == "" for n in names):
        raise PosesValidationError(f"expected non-empty {what} names, got an empty name in {names}")
    return names


def from_numpy(
    position: np.ndarray,
    confidence: np.ndarray | None = None,
    *,
    keypoint_names: Sequence[str],
    individual_names: Sequence[str] | None = None,
    fps: float | None = None,
    frames: Sequence[int] | np.ndarray | None = None,
    images: Sequence[str] | None = None,
    source_software: str = "",
    source_file: str | None = None,
    skeleton: Sequence[Sequence[str]] | None = None,
    kind: str = "predictions",
) -> xr.Dataset:
    """Build a Poses dataset from arrays, validating everything.

    Parameters
    ----------
    position
        Array of shape ``(n_frames, n_space, n_keypoints, n_individuals)`` in pixels; NaN marks a
        missing point. ``n_space`` is 2 (x, y) or 3 (x, y, z).
    confidence
        Array of shape ``(n_frames, n_keypoints, n_individuals)``, values >= 0 (normally <= 1) or NaN.
        Defaults to 1 where the position is known and NaN where it is missing.
    keypoint_names, individual_names
        Unique names, in order. Individuals default to ``["individual_0", ...]``.
    fps
        Frames per second (> 0). When given, the ``time`` coordinate is in seconds.
    frames
        Video frame index of each row (strictly increasing, >= 0). Defaults to ``0..n_frames-1``.
    images
        Image path of each row, for labelled-frame sets.
    source_software, source_file
        Where the data came from.
    skeleton
        Pairs of keypoint names joined by an edge.
    kind
        ``"predictions"`` (a model's output, confidence meaningful) or ``"labels"`` (human labels).

    Returns
    -------
    xarray.Dataset
        The validated Poses dataset.

    Raises
    ------
    PosesValidationError
        If shapes, names, fps, frames, confidence range or skeleton are inconsistent.
    """
    position = np.asarray(position, dtype=np.float64)
    if position.ndim != 4:
        raise PosesValidationError(f"expected position with 4 dims {POSITION_DIMS}, got shape {position.shape}")
    n_frames, n_space, n_keypoints, n_individuals = position.shape
    if n_space not in (2, 3):
        raise PosesValidationError(f"expected 2 or 3 spatial coordinates, got {n_space}")
    if np.isinf(position).any():
        raise PosesValidationError("expected finite positions or NaN, got infinite values")
    keypoint_names = _unique_names(keypoint_names, "keypoint")
    if len(keypoint_names) != n_keypoints:
        raise PosesValidationError(
            f"expected {n_keypoints} keypoint names for position shape {position.shape}, got {len(keypoint_names)}"
        )
    if individual_names is None:
        individual_names = [f"individual_{i}" for i in range(n_individuals)]
    individual_names = _unique_names(individual_names, "individual")
    if len(individual_names) != n_individuals:
        raise PosesValidationError(
            f"expected {n_individuals} individual names for position shape {position.shape}, "
            f"got {len(individual_names)}"
        )
    missing = np.isnan(position).any(axis=1)
    if confidence is None:
        confidence = np.where(missing, np.nan, 1.0)
    confidence = np.asarray(confidence, dtype=np.float64)
    expected_conf = (n_frames, n_keypoints, n_individuals)
    if confidence.shape != expected_conf:
        raise PosesValidationError(f"expected confidence of shape {expected_conf}, got {confidence.shape}")
    finite_conf = confidence[np.isfinite(confidence)]
    # DeepLabCut likelihoods lie in [0, 1]; SLEAP's peak scores can exceed 1 a little, and are kept
    # as they are so that round trips stay exact. Negative scores are never valid.
    if finite_conf.size and finite_conf.min() < 0:
        raise PosesValidationError(f"expected confidence >= 0, got minimum {finite_conf.min():.3g}")
    if fps is not None:
        fps = float(fps)
        if not np.isfinite(fps) or fps <= 0:
            raise PosesValidationError(f"expected fps > 0, got {fps}")
    if frames is None:
        frames = np.arange(n_frames, dtype=np.int64)
    frames = np.asarray(frames, dtype=np.int64)
    if frames.shape != (n_frames,):
        raise PosesValidationError(f"expected {n_frames} frame indices, got shape {frames.shape}")
    if n_frames and (frames.min() < 0 or np.any(np.diff(frames) <= 0)):
        raise PosesValidationError("expected strictly increasing, non-negative frame indices")
    if kind not in KINDS:
        raise PosesValidationError(f"expected kind in {KINDS}, got {kind!r}")
    skeleton_pairs: list[list[str]] = []
    for edge in skeleton or []:
        edge = [str(e) for e in edge]
        if len(edge) != 2 or any(e not in keypoint_names for e in edge):
            raise PosesValidationError(
                f"expected skeleton edges as pairs of keypoint names from {keypoint_names}, got {edge}"
            )
        skeleton_pairs.append(edge)

    time = frames / fps if fps is not None else frames
    coords: dict[str, Any] = {
        "time": time,
        "space": ["x", "y", "z"][:n_space],
        "keypoints": keypoint_names,
        "individuals": individual_names,
        "frame": ("time", frames),
    }
    if images is not None:
        images = [str(i) for i in images]
        if len(images) != n_frames:
            raise PosesValidationError(f"expected {n_frames} image paths, got {len(images)}")
        coords["image"] = ("time", np.asarray(images, dtype=object))
    ds = xr.Dataset(
        data_vars={
            "position": (POSITION_DIMS, position),
            "confidence": (CONFIDENCE_DIMS, confidence),
        },
        coords=coords,
        attrs={
            "ds_type": "poses",
            "fps": fps,
            "time_unit": "seconds" if fps is not None else "frames",
            "source_software": source_software,
            "source_file": str(source_file) if source_file is not None else None,
            "skeleton": skeleton_pairs,
            "kind": kind,
            "log": "[]",
        },
    )
    return ds


def validate_poses(ds: xr.Dataset) -> xr.Dataset:
    """Check that ``ds`` is a Poses dataset; return it unchanged.

    Raises
    ------
    PosesValidationError
        If a variable, dimension or attribute of the schema is missing or wrong.
    """
    if not isinstance(ds, xr.Dataset):
        raise PosesValidationError(f"expected an xarray.Dataset, got {type(ds).__name__}")
    for var, dims in (("position", POSITION_DIMS), ("confidence", CONFIDENCE_DIMS)):
        if var not in ds:
            raise PosesValidationError(f"expected data variable {var!r}, got {list(ds.data_vars)}")
        if ds[var].dims != dims:
            raise PosesValidationError(f"expected {var} dims {dims}, got {ds[var].dims}")
    if "frame" not in ds.coords:
        raise PosesValidationError("expected a 'frame' coordinate along time")
    fps = ds.attrs.get("fps")
    if fps is not None and not fps > 0:
        raise PosesValidationError(f"expected fps > 0 or None, got {fps}")
    return ds


def append_log(ds: xr.Dataset, operation: str, **params: Any) -> xr.Dataset:
    """Return ``ds`` with one provenance entry (operation, parameters, UTC time) added to its log."""
    log = json.loads(ds.attrs.get("log") or "[]")
    log.append(
        {
            "operation": operation,
            "parameters": {k: _jsonable(v) for k, v in params.items()},
            "time_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    out = ds.copy()
    out.attrs = dict(ds.attrs, log=json.dumps(log))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def select(
    ds: xr.Dataset,
    *,
    keypoints: Sequence[str] | None = None,
    individuals: Sequence[str] | None = None,
) -> xr.Dataset:
    """Keep only the named keypoints and/or individuals, in the order given.

    Raises
    ------
    KeyError
        If a name is not in the dataset (the message lists what is).
    """
    validate_poses(ds)
    out = ds
    for dim, names in (("keypoints", keypoints), ("individuals", individuals)):
        if names is None:
            continue
        have = list(ds[dim].values)
        unknown = [n for n in names if n not in have]
        if unknown:
            raise KeyError(f"expected {dim} from {have}, got unknown {unknown}")
        out = out.sel({dim: list(names)})
    if keypoints is not None:
        kept = set(keypoints)
        out.attrs = dict(out.attrs, skeleton=[e for e in out.attrs.get("skeleton", []) if set(e) <= kept])
    return append_log(out, "select", keypoints=keypoints, individuals=individuals)


def drop_low_confidence(ds: xr.Dataset, threshold: float = 0.6) -> xr.Dataset:
    """Set positions whose confidence is below ``threshold`` (or NaN) to NaN.

    Parameters
    ----------
    threshold
        Minimum confidence kept, in [0, 1].
    """
    validate_poses(ds)
    if not 0 <= threshold <= 1:
        raise ValueError(f"expected threshold in [0, 1], got {threshold}")
    keep = ds["confidence"] >= threshold
    out = ds.copy()
    out["position"] = ds["position"].where(keep)
    return append_log(out, "drop_low_confidence", threshold=threshold)


def interpolate_gaps(ds: xr.Dataset, max_gap_frames: int = 5) -> xr.Dataset:
    """Linearly interpolate runs of missing positions no longer than ``max_gap_frames``.

    Longer gaps, and gaps at the start or end of the recording, stay NaN. Interpolated points get
    confidence NaN (they were not observed).
    """
    validate_poses(ds)
    if max_gap_frames < 1:
        raise ValueError(f"expected max_gap_frames >= 1, got {max_gap_frames}")
    pos = ds["position"].values.copy()  # (time, space, kp, ind)
    frames = ds["frame"].values.astype(float)
    missing_before = np.isnan(pos).any(axis=1)
    n_time = pos.shape[0]
    for k in range(pos.shape[2]):
        for i in range(pos.shape[3]):
            miss = missing_before[:, k, i]
            if not miss.any() or miss.all():
                continue
            # Label each run of missing frames and fill the interior runs that are short enough.
            idx = np.flatnonzero(miss)
            run_starts = idx[np.r_[True, np.diff(idx) > 1]]
            run_ends = idx[np.r_[np.diff(idx) > 1, True]]
            for start, end in zip(run_starts, run_ends, strict=True):
                if start == 0 or end == n_time - 1 or end - start + 1 > max_gap_frames:
                    continue
                for s in range(pos.shape[1]):
                    pos[start : end + 1, s, k, i] = np.interp(
                        frames[start : end + 1],
                        [frames[start - 1], frames[end + 1]],
                        [pos[start - 1, s, k, i], pos[end + 1, s, k, i]],
                    )
    out = ds.copy()
    out["position"] = (POSITION_DIMS, pos)
    filled = missing_before & ~np.isnan(pos).any(axis=1)
    out["confidence"] = ds["confidence"].where(~filled)
    return append_log(out, "interpolate_gaps", max_gap_frames=max_gap_frames)


def px_to_mm(ds: xr.Dataset, px_per_mm: float) -> xr.Dataset:
    """Return a copy with positions in millimetres (``attrs['space_unit'] = 'mm'``).

    Parameters
    ----------
    px_per_mm
        Pixels per millimetre of the camera view (> 0).
    """
    validate_poses(ds)
    if not np.isfinite(px_per_mm) or px_per_mm <= 0:
        raise ValueError(f"expected px_per_mm > 0, got {px_per_mm}")
    if ds.attrs.get("space_unit", "px") == "mm":
        raise ValueError("expected positions in pixels, got a dataset already in mm")
    out = ds.copy()
    out["position"] = ds["position"] / float(px_per_mm)
    out.attrs = dict(out.attrs, space_unit="mm")
    return append_log(out, "px_to_mm", px_per_mm=px_per_mm)


def poses_summary(ds: xr.Dataset) -> dict[str, Any]:
    """Describe a Poses dataset in plain values (for ``painbattery info``)."""
    validate_poses(ds)
    pos = ds["position"].values
    n_points = pos.shape[0] * pos.shape[2] * pos.shape[3]
    missing = np.isnan(pos).any(axis=1)
    return {
        "kind": ds.attrs.get("kind", "predictions"),
        "source_software": ds.attrs.get("source_software") or "unknown",
        "frames": int(ds.sizes["time"]),
        "fps": ds.attrs.get("fps"),
        "keypoints": [str(k) for k in ds["keypoints"].values],
        "individuals": [str(i) for i in ds["individuals"].values],
        "space": [str(s) for s in ds["space"].values],
        "missing_fraction": float(missing.sum() / n_points) if n_points else 0.0,
        "mean_confidence": float(np.nanmean(ds["confidence"].values))
        if np.isfinite(ds["confidence"].values).any()
        else None,
    }
