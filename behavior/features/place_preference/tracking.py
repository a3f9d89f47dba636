"""Body centre from video without a pose model: background subtraction, as ezTrack does.

Method
------
1. **Decoding.** Frames are decoded with PyAV and only their luma (the Y plane of planar YUV video:
   grey, with no colour conversion) is kept, cropped to the session's ``roi`` and shrunk (area
   averaging) so the tracked image is at most ``max_width_px`` wide. Every ``step_frames``-th frame is
   tracked; the output states the step and the tracked frame rate.
2. **Background.** The per-pixel median of ``background_frames`` frames spread evenly over the video
   (decoded by seeking in a long video). An animal that moves about is in a different place in most of
   them, so the median is the empty box. (An animal that sits in one spot for most of the test becomes
   background there: that is ezTrack's caveat too.)
3. **Animal.** Pixels differing from the background by more than ``threshold_gray`` grey levels
   (darker, lighter, or either: ``polarity``), opened with a disc of ``open_px`` pixels (the tail and
   single noisy pixels go), then the largest connected blob of at least ``min_area_px`` pixels. Its
   centroid (back in full-frame pixels) is the body centre. A frame with no such blob (the animal hidden,
   an empty box) has no body centre (NaN) and is counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TrackingConfig", "VideoTrack", "track_video"]

#: Planar YUV formats whose first plane is the luma image.
_PLANAR_YUV = (
    "yuv420p",
    "yuvj420p",
    "yuv422p",
    "yuvj422p",
    "yuv444p",
    "yuvj444p",
    "nv12",
    "nv21",
    "yuv411p",
    "yuv410p",
)
#: Videos up to this many frames are read straight through for the background instead of seeking.
_SEQUENTIAL_BACKGROUND_FRAMES = 3000
#: A video whose tracked images fit in this many bytes is decoded once and kept (background and tracking
#: from the same pass) instead of being decoded twice.
_CACHE_BYTES = 64 * 2**20


class TrackingConfig(BaseModel):
    """Background-subtraction tracking (the ``tracking`` section of the place-preference config)."""

    model_config = ConfigDict(extra="forbid")
    step_frames: int = Field(1, ge=1, description="track every n-th frame")
    max_width_px: int = Field(320, ge=32, description="shrink the tracked image to at most this width")
    background_frames: int = Field(40, ge=3, le=500)
    threshold_gray: float = Field(30.0, gt=0, lt=255)
    polarity: Literal["dark", "light", "any"] = "any"
    open_px: int = Field(5, ge=0, le=51, description="opening disc (full-frame px): removes the tail and noise")
    min_area_px: float = Field(60.0, ge=1, description="smallest animal blob (full-frame px^2)")


@dataclass
class VideoTrack:
    """A body-centre track from video: one row per tracked frame."""

    frames: np.ndarray
    xy_px: np.ndarray
    area_px: np.ndarray
    step_frames: int
    fps: float
    n_frames: int
    frames_failed: int
    scale: float
    background: np.ndarray

    @property
    def dt_s(self) -> float:
        """Seconds between tracked frames."""
        return self.step_frames / self.fps


def _luma(frame: object) -> np.ndarray:
    """The frame's grey image: its Y plane when planar YUV (no conversion), else converted."""
    fmt = frame.format.name  # type: ignore[attr-defined]
    if fmt in _PLANAR_YUV:
        plane = frame.planes[0]  # type: ignore[attr-defined]
        h, w = frame.height, frame.width  # type: ignore[attr-defined]
        return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:h, :w]
    return frame.to_ndarray(format="gray")  # type: ignore[attr-defined]


class _Shrink:
    """Crop to the roi and shrink to the tracked size."""

    def __init__(self, roi: Sequence[int], max_width_px: int) -> None:
        self.x, self.y, self.w, self.h = (int(v) for v in roi)
        self.scale = min(1.0, max_width_px / self.w)
        self.size = (max(1, round(self.w * self.scale)), max(1, round(self.h * self.scale)))

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        g = gray[self.y : self.y + self.h, self.x : self.x + self.w]
        if self.scale < 1.0:
            return cv2.resize(g, self.size, interpolation=cv2.INTER_AREA)
        return g.copy()  # never a view of the decoder's frame buffer


def _decode(path: Path, threads: bool = True) -> Iterator[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if threads:
            stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield _luma(frame)


def _decode_ahead(path: Path, shrink: _Shrink, step: int, depth: int = 64) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame_index, tracked_image)`` of every ``step``-th frame, decoded and shrunk in a second thread.

    FFmpeg decoding and OpenCV resizing release the GIL, so decoding the next frames overlaps the
    tracking of this one (two cores: about twice the speed). The last item is ``(-1, frames_decoded)``.
    """
    import queue
    import threading

    q: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        import av

        n = 0
        try:
            for i, gray in enumerate(_decode(path, threads=False)):
                n = i + 1
                if stop.is_set():
                    return
                if i % step == 0:
                    q.put((i, shrink(gray)))
            q.put((-1, n))
        except av.error.FFmpegError:  # a corrupt or truncated stream ends here: the frames after it are counted
            q.put((-1, n))
        except BaseException as exc:  # handed to the reading thread, which raises it
            q.put((-2, exc))

    thread = threading.Thread(target=work, name="place-preference-decoder", daemon=True)
    thread.start()
    try:
        while True:
            i, item = q.get()
            if i == -2:
                raise item
            yield i, item
            if i == -1:
                return
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def _background(path: Path, n_frames: int, shrink: _Shrink, k: int) -> np.ndarray:
    """Median of ``k`` frames spread evenly over the video."""
    import av

    k = min(k, n_frames)
    wanted = set(np.linspace(0, n_frames - 1, k).round().astype(int).tolist())
    samples: list[np.ndarray] = []
    if n_frames <= _SEQUENTIAL_BACKGROUND_FRAMES:
        for i, gray in enumerate(_decode(path)):
            if i in wanted:
                samples.append(shrink(gray))
    else:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 0) or None
            duration_s = n_frames / rate if rate else None
            for i in sorted(wanted):
                if duration_s is None:
                    break
                target = int(i / n_frames * duration_s / float(stream.time_base)) + int(stream.start_time or 0)
                container.seek(target, stream=stream, backward=True, any_frame=False)
                for frame in container.decode(stream):
                    if frame.pts is None or frame.pts >= target:
                        samples.append(shrink(_luma(frame)))
                        break
    if len(samples) < 3:
        raise ValueError(f"{path}: expected at least 3 decodable frames for the background, got {len(samples)}")
    return np.median(np.stack(samples), axis=0).astype(np.uint8)


def track_video(
    video: str | Path,
    config: TrackingConfig,
    *,
    roi: Sequence[int] | None = None,
    progress: Callable[[float], None] | None = None,
) -> VideoTrack:
    """Track the body centre in ``video`` (inside ``roi``: x, y, w, h) by background subtraction.

    Returns the centre in full-frame pixels per tracked frame (NaN where no animal blob was found).

    Raises
    ------
    VideoError
        If the video cannot be read or ``roi`` lies outside its frame.
    ValueError
        If too few frames decode to build a background.
    """
    from pose_models.video import ROI, check_roi, probe_video

    path = Path(video)
    info = probe_video(path)
    region = (0, 0, info.width, info.height) if roi is None else tuple(int(v) for v in roi)
    check_roi(ROI(*region), info, path)
    shrink = _Shrink(region, config.max_width_px)
    step = int(config.step_frames)
    source: Iterator[tuple[int, Any]]
    if info.n_frames * shrink.size[0] * shrink.size[1] <= _CACHE_BYTES:  # short video: one decoding pass
        kept: list[np.ndarray] = []
        for i, g in _decode_ahead(path, shrink, 1):
            if i == -1:
                break
            kept.append(g)
        if len(kept) < 3:
            raise ValueError(f"{path}: expected at least 3 decodable frames for the background, got {len(kept)}")
        pick = np.linspace(0, len(kept) - 1, min(config.background_frames, len(kept))).round().astype(int)
        bg = np.median(np.stack([kept[j] for j in pick]), axis=0).astype(np.uint8)
        source = iter([*((i, kept[i]) for i in range(0, len(kept), step)), (-1, len(kept))])
    else:
        bg = _background(path, info.n_frames, shrink, config.background_frames)
        source = _decode_ahead(path, shrink, step)
    s = shrink.scale
    radius = config.open_px * s
    ksize = max(1, round(radius) | 1) if config.open_px else 0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ksize, ksize)) if ksize > 1 else None
    min_area = config.min_area_px * s * s
    thr = float(config.threshold_gray)
    n_max = math.ceil(info.n_frames / step)
    frames = np.zeros(n_max, np.int64)
    xy = np.full((n_max, 2), np.nan)
    area = np.zeros(n_max)
    k = 0
    decoded = 0
    last = -1.0
    for i, g in source:
        if i == -1:
            decoded = int(g)
            break
        if k >= n_max:  # more frames than the header said: keep the grid the header gives
            decoded = info.n_frames
            break
        if config.polarity == "dark":
            diff = cv2.subtract(bg, g)
        elif config.polarity == "light":
            diff = cv2.subtract(g, bg)
        else:
            diff = cv2.absdiff(g, bg)
        _, mask = cv2.threshold(diff, thr, 255, cv2.THRESH_BINARY)
        if kernel is not None:
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        n_lab, _, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
        frames[k] = i
        if n_lab > 1:
            j = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            a = float(stats[j, cv2.CC_STAT_AREA])
            if a >= min_area:
                xy[k] = ((cents[j, 0] + 0.5) / s - 0.5 + region[0], (cents[j, 1] + 0.5) / s - 0.5 + region[1])
                area[k] = a / (s * s)
        k += 1
        if progress is not None and (i / info.n_frames - last >= 0.01):
            last = i / info.n_frames
            progress(min(1.0, last))
    if progress is not None:
        progress(1.0)
    return VideoTrack(
        frames=frames[:k],
        xy_px=xy[:k],
        area_px=area[:k],
        step_frames=step,
        fps=float(info.fps),
        n_frames=int(info.n_frames),
        frames_failed=max(0, int(info.n_frames) - decoded),
        scale=float(s),
        background=bg,
    )
