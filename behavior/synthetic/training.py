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
    Half of a paw clip's frames are taken while a stimulus is on (:func:`stimulus_weighted_frames`);
    face clips give evenly spaced frames.
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
            if assay == "grimace":
                picks = np.linspace(0, clip.n_frames - 1, frames_per_clip).astype(int)
            else:
                picks = stimulus_weighted_frames(clip.n_frames, clip.session.fps, clip.session.events, frames_per_clip)
            for f in picks:
                names.append(f"{clip.name}#{f}")
                images.append(decoded[f])
                pts = clip.poses["position"].values[f, :, :, 0].T.copy()
                if "confidence" in clip.poses:
                    pts[clip.poses["confidence"].values[f, :, 0] <= 0] = np.nan
                points.append(pts)
    return LabelledFrames(names, images, np.asarray(points, dtype=float), keypoints or [], [], "synthetic rig")


def stimulus_weighted_frames(n_frames: int, fps: float, events, n: int) -> np.ndarray:
    """``n`` frames of a paw clip, half of them while a stimulus is on, the rest spread over the clip.

    Evenly spaced frames of a paw clip mostly show the paw at rest; the frames where the heat lamp
    glows under the paw or a filament presses on it are few, and a model trained without enough of
    them loses the stimulated paw exactly when it matters. A labeller makes sure to label them.

    Parameters
    ----------
    n_frames, fps
        The clip's length and frame rate.
    events
        The session's events (``stimulus_on`` / ``stimulus_off`` pairs).
    n
        Frames to pick.

    Returns
    -------
    numpy.ndarray
        Sorted, distinct frame indices (fewer than ``n`` only when the clip is shorter).
    """
    on: list[int] = []
    start = None
    for event in events:
        if event.kind == "stimulus_on":
            start = round(event.time_s * fps)
        elif event.kind == "stimulus_off" and start is not None:
            on.extend(range(start, min(round(event.time_s * fps), n_frames)))
            start = None
    on_frames = np.asarray(sorted(set(on)), dtype=int)
    n_on = min(n // 2, len(on_frames))
    picked = set(on_frames[np.linspace(0, len(on_frames) - 1, n_on).astype(int)].tolist()) if n_on else set()
    rest = np.setdiff1d(np.arange(n_frames), on_frames)
    n_rest = min(n - len(picked), len(rest))
    picked |= set(rest[np.linspace(0, len(rest) - 1, n_rest).astype(int)].tolist()) if n_rest else set()
    return np.asarray(sorted(picked), dtype=int)


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
