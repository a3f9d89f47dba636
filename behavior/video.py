"""Video access for analyses: everything in :mod:`pose_models.video` plus light detection in a region.

Reading (OpenCV), writing (PyAV, H.264), probing and cropping are defined in :mod:`pose_models.video`
(pose inference needs them, and imports run ``behavior -> pose_models``); they are re-exported here
so analysis code imports one module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pose_models.video import (
    ROI,
    VIDEO_SUFFIXES,
    VideoError,
    VideoInfo,
    VideoReader,
    crop,
    probe_video,
    write_video,
)

__all__ = [
    "ROI",
    "VIDEO_SUFFIXES",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "crop",
    "detect_light_switches",
    "light_switches",
    "probe_video",
    "roi_brightness",
    "write_video",
]


def roi_brightness(path: str | Path, roi: ROI, *, batch_size: int = 64) -> np.ndarray:
    """Mean grey level (0-255) of ``roi`` in every frame of the video, as a float array."""
    values = []
    with VideoReader(path, gray=True, roi=roi) as reader:
        for _, frames in reader.batches(batch_size):
            values.append(frames.reshape(len(frames), -1).mean(axis=1))
    return np.concatenate(values) if values else np.zeros(0)


def light_switches(
    brightness: np.ndarray, *, min_contrast: float = 20.0, min_on_frames: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Find the frames where a light switches on and off from a brightness trace.

    The on/off level is the midpoint between the dark and bright clusters of the trace (two-means),
    so it adapts to the rig's exposure. A trace whose two levels differ by less than ``min_contrast``
    grey levels has no light switching and gives no events.

    Parameters
    ----------
    brightness
        Mean grey level of the region per frame.
    min_contrast
        Smallest difference between the on and off levels that counts as a light.
    min_on_frames
        Bright runs shorter than this are ignored (flicker, reflections).

    Returns
    -------
    on_frames, off_frames
        Frame indices where the light turns on (first bright frame) and off (first dark frame again).
    """
    b = np.asarray(brightness, dtype=float)
    if b.ndim != 1:
        raise ValueError(f"expected a 1-D brightness trace, got shape {b.shape}")
    if b.size < 2 or not np.isfinite(b).all():
        return np.zeros(0, int), np.zeros(0, int)
    lo, hi = float(b.min()), float(b.max())
    for _ in range(20):  # two-means: split at the midpoint, move each level to its cluster mean
        cut = (lo + hi) / 2
        dark, bright = b[b <= cut], b[b > cut]
        if dark.size == 0 or bright.size == 0:
            break
        new_lo, new_hi = float(dark.mean()), float(bright.mean())
        if np.isclose(new_lo, lo) and np.isclose(new_hi, hi):
            break
        lo, hi = new_lo, new_hi
    if hi - lo < min_contrast:
        return np.zeros(0, int), np.zeros(0, int)
    on = b > (lo + hi) / 2
    edges = np.diff(on.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = (ends - starts) >= min_on_frames
    starts, ends = starts[keep], ends[keep]
    # A light already on at frame 0 has no onset in the recording; a light on at the end has no offset.
    onsets = starts[starts > 0]
    offsets = ends[ends < b.size]
    return onsets.astype(int), offsets.astype(int)


def detect_light_switches(
    path: str | Path, roi: ROI, *, min_contrast: float = 20.0, min_on_frames: int = 1
) -> list[dict[str, Any]]:
    """Detect a light (IR heat source, rig LED) switching on and off in ``roi`` of a video.

    Returns
    -------
    list of dict
        Events ``{"time_s", "kind": "light_on"|"light_off", "frame"}`` in time order.
    """
    info = probe_video(path)
    on, off = light_switches(roi_brightness(path, roi), min_contrast=min_contrast, min_on_frames=min_on_frames)
    events = [{"time_s": f / info.fps, "kind": "light_on", "frame": int(f)} for f in on]
    events += [{"time_s": f / info.fps, "kind": "light_off", "frame": int(f)} for f in off]
    return sorted(events, key=lambda e: (e["frame"], e["kind"]))
