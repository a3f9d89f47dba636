"""Video files: probe, read in batches, crop regions, write H.264.

Reading uses OpenCV (fast, everywhere); writing uses PyAV so the files are real H.264 MP4s that any
player and DeepLabCut/SLEAP open. Every failure is a :class:`VideoError` naming the file and the fault.

This lives in ``pose_models`` because pose inference streams video and imports run one way
(``service -> behavior -> pose_models``); :mod:`behavior.video` re-exports it with the analyses
(light detection) on top.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = [
    "ROI",
    "VIDEO_SUFFIXES",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "check_roi",
    "crop",
    "probe_video",
    "streams_opened",
    "write_video",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".wmv", ".mpg", ".mpeg", ".webm")


class VideoError(ValueError):
    """A file cannot be used as a video: missing, empty, not a video, corrupt or truncated."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds."""

    path: Path
    fps: float
    n_frames: int
    width: int
    height: int
    codec: str

    @property
    def duration_s(self) -> float:
        """Length in seconds (frames / fps)."""
        return self.n_frames / self.fps

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for printing and JSON."""
        d = asdict(self)
        d["path"] = str(self.path)
        d["duration_s"] = round(self.duration_s, 3)
        return d


@dataclass(frozen=True)
class ROI:
    """A rectangular region of interest in pixels: top-left corner ``(x, y)``, width and height."""

    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if min(self.x, self.y) < 0 or min(self.width, self.height) <= 0:
            raise ValueError(f"expected x, y >= 0 and width, height > 0, got {self}")

    def check_inside(self, width: int, height: int) -> None:
        """Raise ValueError unless the region lies inside a ``width`` x ``height`` frame."""
        if self.x + self.width > width or self.y + self.height > height:
            raise ValueError(f"expected a region inside the {width}x{height} frame, got {self}")

    def within(self, region: ROI) -> ROI:
        """This region given relative to ``region`` (a chamber), in the frame's pixels.

        Raises
        ------
        ValueError
            Unless it lies inside ``region``.
        """
        if self.x + self.width > region.width or self.y + self.height > region.height:
            raise ValueError(
                f"expected a region inside the {region.width}x{region.height} region {region.text()} "
                f"(it is relative to it), got {self.text()}"
            )
        return ROI(region.x + self.x, region.y + self.y, self.width, self.height)

    def text(self) -> str:
        """``"x,y,w,h"``, as manifests and the CLI write it."""
        return f"{self.x},{self.y},{self.width},{self.height}"

    @classmethod
    def parse(cls, text: str) -> ROI:
        """Parse ``"x,y,w,h"``."""
        try:
            x, y, w, h = (int(v) for v in text.split(","))
        except ValueError as exc:
            raise ValueError(f"expected a region as x,y,width,height, got {text!r}") from exc
        return cls(x, y, w, h)


def _fourcc_text(code: float) -> str:
    code = int(code)
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isprintable() and text.strip() else "unknown"


# Leading bytes of the containers labs record in; used to tell "not a video" from "a broken video".
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "MP4/MOV"),
    (0, b"RIFF", "AVI"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"\x30\x26\xb2\x75", "ASF/WMV"),
    (0, b"\x00\x00\x01\xba", "MPEG"),
)


def _container_kind(path: Path) -> str | None:
    """The container a file's first bytes announce (e.g. ``"MP4/MOV"``), or None if none is known."""
    with path.open("rb") as fh:
        head = fh.read(16)
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


#: Decoding streams :class:`VideoReader` opened in this process, by resolved video path (see :func:`streams_opened`).
_STREAMS_OPENED: dict[str, int] = {}


def streams_opened(path: str | Path | None = None) -> int:
    """How many decoding streams :class:`VideoReader` opened in this process (on ``path``, or on any video).

    Each stream decodes the video (or the part of it that was read) once; probing a file does not
    count. Batch scoring uses it to show that sessions sharing a video decode it once.
    """
    if path is None:
        return sum(_STREAMS_OPENED.values())
    return _STREAMS_OPENED.get(str(Path(path).resolve()), 0)


def _open_capture(path: Path, decode_threads: int | None = None) -> cv2.VideoCapture:
    if not path.exists():
        raise VideoError(f"{path}: file not found")
    if not path.is_file():
        raise VideoError(f"{path}: expected a video file, got a directory")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: file is empty (0 bytes)")
    params = [cv2.CAP_PROP_N_THREADS, int(decode_threads)] if decode_threads else []
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        kind = _container_kind(path)
        if kind is None:
            raise VideoError(f"{path}: not a video (expected an MP4, AVI, MKV or other container, got other content)")
        raise VideoError(f"{path}: corrupt or truncated {kind} file (the container cannot be opened)")
    return cap


def probe_video(path: str | Path) -> VideoInfo:
    """Open a video, check that its first and last frames decode, and report what it holds.

    The proof that the last frame decodes costs a seek (decoding from the last keyframe); a session's
    scoring asks several times about the same file, so the answer is kept for as long as the file's
    size and modification time stay the same.

    Raises
    ------
    VideoError
        If the file is missing, empty, not a video, has no frames, or is truncated/corrupt (its last
        frame cannot be decoded).
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return _probe_video(path)  # raises the clear error for a missing file
    info = _probe_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    return replace(info, path=path)


@lru_cache(maxsize=256)
def _probe_cached(path: str, size: int, mtime_ns: int) -> VideoInfo:
    """:func:`_probe_video` of a file in one state (``size``, ``mtime_ns`` are part of the key)."""
    return _probe_video(Path(path))


def _probe_video(path: Path) -> VideoInfo:
    cap = _open_capture(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        n_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        codec = _fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))
        if width <= 0 or height <= 0:
            raise VideoError(f"{path}: not a readable video (no video stream found)")
        if not np.isfinite(fps) or fps <= 0:
            raise VideoError(f"{path}: expected a frame rate > 0 in the container, got {fps}")
        ok, _ = cap.read()
        if not ok:
            raise VideoError(f"{path}: corrupt video, the first frame cannot be decoded")
        if n_frames <= 0:
            n_frames = _count_by_reading(cap) + 1
        else:
            # A truncated file still reports the frame count of its header: prove the end is there.
            # (FFmpeg may "succeed" by handing back the last frame it could decode, so check where
            # the read landed, not only that it returned a frame.)
            cap.set(cv2.CAP_PROP_POS_FRAMES, n_frames - 1)
            ok, _ = cap.read()
            if not ok or int(cap.get(cv2.CAP_PROP_POS_FRAMES)) != n_frames:
                # The seek is only a fast proof; where it fails (a one-frame file cannot seek back to its
                # only frame), count from the start and refuse only a file that really falls short.
                decoded = _count_from_start(path)
                if decoded < n_frames:
                    raise VideoError(
                        f"{path}: truncated or corrupt video, header says {n_frames} frames but only {decoded} decode"
                    )
    finally:
        cap.release()
    return VideoInfo(path=path, fps=fps, n_frames=n_frames, width=width, height=height, codec=codec)


def _count_by_reading(cap: cv2.VideoCapture) -> int:
    n = 0
    while cap.grab():
        n += 1
    return n


def _count_from_start(path: Path) -> int:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        return _count_by_reading(cap)
    finally:
        cap.release()


class VideoReader:
    """Read a video's frames in batches with bounded memory.

    Use as a context manager. ``frames_decoded`` counts what was read; a frame that fails to decode
    before the expected end raises :class:`VideoError` (``strict=True``) or ends the iteration with
    ``frames_failed`` set (``strict=False``), so the caller can report it.

    Parameters
    ----------
    path
        The video file.
    gray
        Return single-channel frames ``(n, h, w)`` instead of RGB ``(n, h, w, 3)``.
    roi
        Crop every frame to this region.
    strict
        Raise on a decoding failure instead of stopping.
    decode_threads
        FFmpeg decoding threads (default: FFmpeg's choice). One thread suits a reader that runs
        beside a multi-threaded network on few cores.
    bgr
        Return OpenCV's BGR frames as decoded (no colour conversion), for callers that shrink frames
        first and convert the small image.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        gray: bool = False,
        roi: ROI | None = None,
        strict: bool = True,
        decode_threads: int | None = None,
        bgr: bool = False,
    ) -> None:
        self.path = Path(path)
        self.info = probe_video(self.path)
        if roi is not None:
            check_roi(roi, self.info, self.path)
        self.gray = gray
        self.roi = roi
        self.strict = strict
        self.decode_threads = decode_threads
        self.bgr = bgr
        self.frames_decoded = 0
        self.frames_failed = 0
        self._cap: cv2.VideoCapture | None = None

    def __enter__(self) -> VideoReader:
        self._cap = _open_capture(self.path, self.decode_threads)
        key = str(self.path.resolve())
        _STREAMS_OPENED[key] = _STREAMS_OPENED.get(key, 0) + 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the decoder."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _convert(self, frame: np.ndarray) -> np.ndarray:
        if self.roi is not None:
            frame = crop(frame, self.roi)
        if self.gray:
            return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if self.bgr:
            return frame
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def batches(
        self, batch_size: int = 32, start: int = 0, stop: int | None = None, step: int = 1
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(frame_indices, frames)`` batches from ``start`` up to (not including) ``stop``.

        Frames are uint8, RGB ``(n, h, w, 3)`` or gray ``(n, h, w)``. With ``step`` > 1 only every
        ``step``-th frame from ``start`` is returned; the others are still decoded (a compressed stream
        must be) but not converted or copied.
        """
        if batch_size < 1 or step < 1:
            raise ValueError(f"expected batch_size >= 1 and step >= 1, got {batch_size}, {step}")
        stop = self.info.n_frames if stop is None else min(stop, self.info.n_frames)
        if not 0 <= start <= stop:
            raise ValueError(f"expected 0 <= start <= stop <= {self.info.n_frames}, got {start}, {stop}")
        own = self._cap is None
        if own:
            self.__enter__()
        assert self._cap is not None
        try:
            if start:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, start)
            idx = start  # the next frame the decoder gives
            while idx < stop:
                frames, indices = [], []
                while len(frames) < batch_size and idx < stop:
                    wanted = (idx - start) % step == 0
                    if wanted:
                        ok, frame = self._cap.read()
                    else:
                        ok, frame = self._cap.grab(), None
                    if not ok:
                        self.frames_failed = stop - idx
                        if self.strict:
                            raise VideoError(
                                f"{self.path}: frame {idx} cannot be decoded "
                                f"(expected {self.info.n_frames} frames; truncated or corrupt)"
                            )
                        if frames:
                            self.frames_decoded += len(frames)
                            yield np.asarray(indices), np.stack(frames)
                        return
                    if wanted:
                        frames.append(self._convert(frame))
                        indices.append(idx)
                    idx += 1
                if frames:
                    self.frames_decoded += len(frames)
                    yield np.asarray(indices), np.stack(frames)
        finally:
            if own:
                self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, frames in self.batches():
            yield from frames


def check_roi(roi: ROI, info: VideoInfo, path: str | Path | None = None) -> None:
    """Raise :class:`VideoError` (one line, naming the video) unless ``roi`` lies inside the video's frame."""
    if roi.x + roi.width > info.width or roi.y + roi.height > info.height:
        raise VideoError(
            f"{path or info.path}: expected a region inside the {info.width}x{info.height} frame, "
            f"got roi {roi.text()} (reaching x={roi.x + roi.width}, y={roi.y + roi.height})"
        )


def crop(frames: np.ndarray, roi: ROI) -> np.ndarray:
    """Crop a frame ``(h, w[, c])`` or a batch ``(n, h, w[, c])`` to ``roi`` (a view, no copy)."""
    frames = np.asarray(frames)
    batched = frames.ndim == 4 or (frames.ndim == 3 and frames.shape[-1] not in (1, 3, 4))
    h, w = (frames.shape[1], frames.shape[2]) if batched else (frames.shape[0], frames.shape[1])
    roi.check_inside(w, h)
    sl = (slice(roi.y, roi.y + roi.height), slice(roi.x, roi.x + roi.width))
    return frames[(slice(None), *sl)] if batched else frames[sl]


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    crf: int = 18,
    preset: str = "veryfast",
    faststart: bool = True,
) -> Path:
    """Write frames to an H.264 MP4 with PyAV.

    Parameters
    ----------
    path
        Output file (``.mp4``). Written to a temporary name and renamed when complete, so a crash
        never leaves a half-written video under the final name.
    frames
        uint8 frames, RGB ``(h, w, 3)`` or gray ``(h, w)``, all the same even-sized shape.
    fps
        Frame rate (> 0); fractional rates are kept as a rational.
    crf
        x264 quality (0 lossless, 18 visually lossless).
    preset
        x264 speed preset.
    faststart
        Put the MP4 index at the front, so browsers and the service can stream the file.
    """
    from fractions import Fraction

    import av  # imported here: only writers need PyAV

    if not fps > 0:
        raise ValueError(f"expected fps > 0, got {fps}")
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    rate = Fraction(fps).limit_denominator(1001)
    n = 0
    try:
        options = {"movflags": "+faststart"} if faststart else {}
        with av.open(str(tmp), mode="w", format="mp4", options=options) as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.pix_fmt = "yuv420p"
            # mbtree off: x264's macroblock-tree rate control gave different bytes for the same frames from
            # run to run (even with one thread), so "the same seed gives the same files" did not hold
            stream.options = {"crf": str(crf), "preset": preset, "x264-params": "mbtree=0"}
            for frame in frames:
                frame = np.asarray(frame)
                if frame.dtype != np.uint8:
                    raise ValueError(f"expected uint8 frames, got {frame.dtype}")
                if frame.ndim == 2:
                    frame = np.repeat(frame[:, :, None], 3, axis=2)
                if n == 0:
                    h, w = frame.shape[:2]
                    if h % 2 or w % 2:
                        raise ValueError(f"expected even frame width and height for H.264, got {w}x{h}")
                    stream.width, stream.height = w, h
                elif frame.shape[:2] != (stream.height, stream.width):
                    raise ValueError(
                        f"expected every frame {stream.width}x{stream.height}, got frame {n} "
                        f"{frame.shape[1]}x{frame.shape[0]}"
                    )
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), "rgb24")):
                    container.mux(packet)
                n += 1
            if n == 0:
                raise ValueError("expected at least one frame to write, got none")
            for packet in stream.encode():
                container.mux(packet)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
