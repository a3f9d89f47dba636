"""Labelled frames from the synthetic rig, for training pose models on rig-like video with exact labels."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from behavior.synthetic.base import simulate_clip, write_clip

__all__ = ["labelled_frames"]


def labelled_frames(
    assays: Sequence[str] = ("hargreaves", "von_frey"),
    *,
    n_clips: int = 8,
    frames_per_clip: int = 6,
    seed: int = 1000,
):
    """Frames of simulated clips labelled with their ground-truth keypoints.

    The frames are taken from the written H.264 videos (decoded), as a lab extracts frames from its
    recordings, so the model learns on the same compression it will see. Clips alternate between
    ``assays`` and stimulated sides; seeds start at ``seed`` (keep them apart from a study's seeds).
    ``("grimace",)`` gives face frames (configs/skeletons/face.yaml) of random grimace, facing either way;
    keypoints a grooming paw covers are unlabelled (NaN) in its frames, as a labeller leaves them.

    Returns
    -------
    pose_models.data.LabelledFrames
    """
    from pose_models.data import LabelledFrames
    from pose_models.video import VideoReader

    names, images, points = [], [], []
    keypoints: list[str] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n_clips):
            assay = assays[i % len(assays)]
            side = "left" if i % 2 else "right"
            if assay == "grimace":
                params = _face_params(np.random.default_rng(seed + i), side)
            elif assay == "hargreaves":
                params = {"latencies_s": [1.0], "trial_sides": [side]}
            else:
                params = {"filaments_g": [2.0, 4.0], "responses": ["O", "X"], "trial_sides": [side, side]}
            clip = simulate_clip(assay, seed=seed + i, **params)
            kp = [str(k) for k in clip.poses["keypoints"].values]
            if keypoints is None:
                keypoints = kp
            elif kp != keypoints:
                raise ValueError(f"expected assays with the same keypoints, got {keypoints} and {kp}")
            with VideoReader(write_clip(clip, Path(tmp))["video"]) as reader:
                decoded = np.concatenate([b for _, b in reader.batches(256)])
            for f in np.linspace(0, clip.n_frames - 1, frames_per_clip).astype(int):
                names.append(f"{clip.name}#{f}")
                images.append(decoded[f])
                pts = clip.poses["position"].values[f, :, :, 0].T.copy()
                if "confidence" in clip.poses:
                    pts[clip.poses["confidence"].values[f, :, 0] <= 0] = np.nan
                points.append(pts)
    return LabelledFrames(names, images, np.asarray(points, dtype=float), keypoints or [], [], "synthetic rig")


def _face_params(rng: np.random.Generator, side: str) -> dict:
    """Random grimace faces for labelled frames: every AU over its range, some grooming and small yaw."""
    params = {
        "eye_aperture": float(rng.uniform(0.2, 1.0)),
        "ear_angle_deg": float(rng.uniform(20, 90)),
        "nose_bulge": float(rng.uniform(0, 1)),
        "cheek_bulge": float(rng.uniform(0, 1)),
        "whisker_angle_deg": float(rng.uniform(45, 135)),
        "facing": "left" if side == "left" else "right",
        "duration_s": 2.0,
        "head_motion_px": 6.0,
        "head_rotation_deg": 8.0,
    }
    if rng.random() < 0.3:
        params["grooming_stretches_s"] = [(0.0, 0.7)]
    return params
