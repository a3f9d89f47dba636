"""Paw prints under the paws in stance, from a bottom-up video (CatWalk / fTIR-like glass floor).

Method
------
1. **Background.** The per-pixel median grey of up to ``background_frames`` frames spread over the video:
   the animal moves, so the median is the empty floor.
2. **Print.** For each stance, a square window of ``window_mm`` half-width around the stance's anchor
   (the paw keypoint's median position in stance) in every stance frame, background subtracted. The print
   of a frame is the connected blob of pixels brighter than half its peak (half maximum: the area of a
   blurred print at half maximum is its true area), the blob touching the keypoint's pixel or the brightest
   pixel within 2 px of it; a frame whose peak is under ``min_contrast`` grey levels has no print.
3. **Figures per stance.** ``print_area_mm2``: the area of the union of the frames' prints (what the paw
   touched during the stance); ``max_contact_area_mm2``: the largest single-frame print;
   ``print_intensity_mean`` / ``print_intensity_max``: mean and max background-subtracted grey of the
   print pixels over the stance's frames (with an fTIR-lit floor the intensity follows pressure). A stance
   whose print touches the frame's edge (cut by the view), or with no print in any frame, has NaN figures.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

__all__ = ["PRINT_COLUMNS", "measure_prints", "video_background"]

PRINT_COLUMNS = ("print_area_mm2", "max_contact_area_mm2", "print_intensity_mean", "print_intensity_max")


def video_background(video: str | Path, n_frames: int = 60) -> np.ndarray:
    """Median grey of up to ``n_frames`` frames spread evenly over ``video`` (float32, ``(h, w)``)."""
    from pose_models.video import VideoReader, probe_video

    info = probe_video(video)
    wanted = set(np.unique(np.linspace(0, max(info.n_frames - 1, 0), min(n_frames, info.n_frames)).round().astype(int)))
    picked = []
    with VideoReader(video, gray=True, strict=False, decode_threads=1) as reader:
        for idx, frames in reader.batches(64):
            for i, f in zip(idx, frames, strict=True):
                if int(i) in wanted:
                    picked.append(f)
    if not picked:
        raise ValueError(f"{video}: expected decodable frames for the floor background, got none")
    return np.median(np.stack(picked), axis=0).astype(np.float32)


def measure_prints(
    video: str | Path,
    stances: pd.DataFrame,
    px_per_mm: float,
    *,
    window_mm: float = 5.0,
    min_contrast: float = 40.0,
    background_frames: int = 60,
    progress: Callable[[float], None] | None = None,
) -> pd.DataFrame:
    """Print area and intensity of every stance (rows of ``stances``) from the video.

    Parameters
    ----------
    stances
        One row per stance with ``start_frame``, ``end_frame`` (inclusive), ``x_px``, ``y_px`` (anchor).
    px_per_mm
        Video scale.

    Returns
    -------
    DataFrame
        :data:`PRINT_COLUMNS` plus ``print_frames`` (frames of the stance with a print), index aligned
        with ``stances``.
    """
    from pose_models.video import VideoReader

    bg = video_background(video, background_frames)
    h, w = bg.shape
    r = max(2, round(window_mm * px_per_mm))
    n = len(stances)
    out = {c: np.full(n, np.nan) for c in PRINT_COLUMNS}
    out["print_frames"] = np.zeros(n, int)
    if n == 0:
        return pd.DataFrame(out, index=stances.index)
    start = stances["start_frame"].to_numpy(int)
    end = stances["end_frame"].to_numpy(int)
    cx = np.round(stances["x_px"].to_numpy(float))
    cy = np.round(stances["y_px"].to_numpy(float))
    inside = np.isfinite(cx) & np.isfinite(cy) & (cx >= 0) & (cy >= 0) & (cx < w) & (cy < h)
    todo = np.flatnonzero(inside)
    # per stance: union mask, max single-frame area, intensity sum / count / max
    union = {int(k): np.zeros((2 * r + 1, 2 * r + 1), bool) for k in todo}
    max_area = np.zeros(n)
    isum = np.zeros(n)
    icount = np.zeros(n)
    imax = np.full(n, np.nan)
    frames_with = np.zeros(n, int)
    cut = np.zeros(n, bool)
    by_frame: dict[int, list[int]] = {}
    for k in todo:
        for f in range(start[k], end[k] + 1):
            by_frame.setdefault(f, []).append(int(k))
    if not by_frame:
        return pd.DataFrame(out, index=stances.index)
    first, last = min(by_frame), max(by_frame)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    near = (yy**2 + xx**2) <= 4  # the keypoint's pixel and its 2-px neighbourhood
    with VideoReader(video, gray=True, strict=False, decode_threads=1) as reader:
        for idx, frames in reader.batches(64, start=first, stop=last + 1):
            for i, frame in zip(idx, frames, strict=True):
                for k in by_frame.get(int(i), ()):
                    x0, y0 = int(cx[k]) - r, int(cy[k]) - r
                    win = np.full((2 * r + 1, 2 * r + 1), -np.inf, np.float32)  # outside the frame: never print
                    ya, yb, xa, xb = max(y0, 0), min(y0 + 2 * r + 1, h), max(x0, 0), min(x0 + 2 * r + 1, w)
                    win[ya - y0 : yb - y0, xa - x0 : xb - x0] = (
                        frame[ya:yb, xa:xb].astype(np.float32) - bg[ya:yb, xa:xb]
                    )
                    edge = np.zeros(win.shape, bool)  # pixels on the frame's border: a print there is cut
                    if y0 <= 0:
                        edge[-y0, :] = True
                    if x0 <= 0:
                        edge[:, -x0] = True
                    if y0 + 2 * r + 1 >= h:
                        edge[h - 1 - y0, :] = True
                    if x0 + 2 * r + 1 >= w:
                        edge[:, w - 1 - x0] = True
                    seed_vals = np.where(near, win, -np.inf)
                    sy, sx = np.unravel_index(int(np.argmax(seed_vals)), win.shape)
                    peak_near = float(win[sy, sx])
                    if peak_near < min_contrast:
                        continue
                    _, labels = cv2.connectedComponents((win > peak_near / 2).astype(np.uint8), connectivity=8)
                    lab = labels[sy, sx]
                    if lab == 0:
                        continue
                    mask = labels == lab
                    if (mask & edge).any():
                        cut[k] = True
                        continue
                    area = float(mask.sum())
                    union[k] |= mask
                    max_area[k] = max(max_area[k], area)
                    vals = win[mask]
                    isum[k] += float(vals.sum())
                    icount[k] += vals.size
                    m = float(vals.max())
                    imax[k] = m if not np.isfinite(imax[k]) else max(imax[k], m)
                    frames_with[k] += 1
            if progress is not None:
                progress((int(idx[-1]) - first + 1) / (last - first + 1))
    ppm2 = px_per_mm**2
    for k in todo:
        if frames_with[k] == 0 or cut[k]:
            continue
        out["print_area_mm2"][k] = union[k].sum() / ppm2
        out["max_contact_area_mm2"][k] = max_area[k] / ppm2
        out["print_intensity_mean"][k] = isum[k] / icount[k]
        out["print_intensity_max"][k] = imax[k]
    out["print_frames"] = frames_with
    return pd.DataFrame(out, index=stances.index)
