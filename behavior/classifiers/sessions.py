"""Labelled sessions from files: a pose file and its annotation file, matched frame for frame."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from behavior.classifiers.annotations import AnnotationError, read_annotations
from behavior.classifiers.features import FeatureParams, compute_features
from behavior.classifiers.model import LabelledSession
from behavior.classifiers.roles import resolve_roles

__all__ = ["labelled_session", "poses_fps"]


def poses_fps(poses: xr.Dataset, fps: float | None, *, source: str) -> float:
    """The frame rate of ``poses``: ``fps`` when given (it must agree with the file's), else the file's.

    Raises
    ------
    ValueError
        If neither gives a rate, or they differ.
    """
    stored = poses.attrs.get("fps")
    if fps is not None and stored and not np.isclose(float(stored), float(fps), rtol=1e-3):
        raise AnnotationError(f"{source}: expected poses at --fps {fps:g}, got a pose file at {float(stored):g} fps")
    rate = float(fps if fps is not None else stored or 0)
    if not rate > 0:
        raise ValueError(f"{source}: expected a frame rate (--fps) for a pose file that stores none, got none")
    return rate


def labelled_session(
    poses: xr.Dataset | str | Path,
    labels: str | Path | np.ndarray,
    *,
    fps: float | None = None,
    roles: Mapping[str, str] | None = None,
    skeleton: str | None = "pain_box",
    group: str | None = None,
    params: FeatureParams | None = None,
    subject: str | None = None,
) -> LabelledSession:
    """Features of a pose file (or dataset) with its labels, checked against each other.

    Parameters
    ----------
    poses
        A pose file (any format :func:`pose_models.io.load_poses` reads) or a Poses dataset.
    labels
        An annotation file (:func:`behavior.classifiers.annotations.read_annotations`) or labels per frame.
    fps
        Frame rate (required when the pose file stores none; must agree with it otherwise).
    roles, skeleton
        Keypoint names -> roles.
    group
        The animal (cross-validation groups); default the pose file's stem.
    params
        Feature parameters.
    subject
        BORIS subject, when the export holds several.

    Raises
    ------
    AnnotationError
        If labels and poses disagree in length or frame rate, or the annotation file is malformed.
    RoleError
        If a needed keypoint role is missing.
    """
    inputs: list[str] = []
    if isinstance(poses, (str, Path)):
        from pose_models.io import load_poses

        path = Path(poses)
        if not path.exists():
            raise FileNotFoundError(f"pose file not found: {path}")
        inputs.append(str(path))
        name = path.stem
        poses = load_poses(path, fps=fps)
    else:
        name = str(poses.attrs.get("source_file") or "poses")
    rate = poses_fps(poses, fps, source=name)
    n = int(poses.sizes["time"])
    if isinstance(labels, (str, Path)):
        inputs.append(str(labels))
        per_frame = read_annotations(labels, n_frames=n, fps=rate, subject=subject)
    else:
        per_frame = np.asarray(labels, dtype=object)
        if len(per_frame) != n:
            raise AnnotationError(f"{name}: expected {n} labels (one per pose frame), got {len(per_frame)}")
    keypoints = [str(k) for k in poses["keypoints"].values]
    found = resolve_roles(keypoints, mapping=roles, skeleton=skeleton, source=name)
    feats = compute_features(poses, found, fps=rate, params=params)
    return LabelledSession(features=feats, labels=per_frame, group=group or name, name=name, inputs=inputs)
