"""Burrowing (Deacon 2006; Jirkof 2010): substrate displaced from a tube over the test, from video.

The camera films the tube from the side (a time-lapse is fine: the session's ``fps`` is the real capture
rate, so ``frame / fps`` is real test time). The tube's interior (``tube_roi``, ``[x, y, w, h]``, drawn
once per rig) comes from the assay config, or else from the session's ``roi``.

Method
------
1. **Sampling.** One frame every ``sample_interval_s`` of real time is decoded (by seeking when the
   step between samples is long, by skipping otherwise), cropped to the tube, turned to grey and
   smoothed (``blur_px`` box filter) so that the pebble texture averages out.
2. **Pixel classes.** Against the substrate seen at the start (median grey of the closed-end fifth of
   the tube in the first sampled frames, ``S``) and the empty tube (``empty_gray``, or the 99th
   percentile of the tube's pixels over all sampled frames, ``E``): a pixel is *animal* when it is darker
   than ``animal_ratio * S`` (opened to drop dark pebbles, dilated by ``animal_margin_px`` for its
   blurred outline), else *substrate* when darker than ``(S + E) / 2``, else *empty tube*. When ``E`` is
   within ``min_contrast`` grey levels of ``S`` (no empty tube in sight: nothing was displaced), the
   threshold is ``S + min_contrast``.
3. **Fill fraction.** Per column of the tube, the substrate share of its visible (non-animal) pixels; a
   column less than half visible takes the value interpolated between its visible neighbours; the
   frame's fill fraction is the mean over columns. A frame where the animal covers more than
   ``max_occluded_fraction`` of the tube is left out (counted).
4. **Fit.** The fill of the kept frames is fitted by an isotonic (non-increasing) regression over time:
   substrate leaves the tube and does not come back. ``displaced(t) = 1 - fit(t) / fit(0)``.
5. **Measures.** % displaced at the end and at ``checkpoints_min`` (checkpoints after the end of the
   video are not reported, and listed); latency to start: the first time ``displaced`` exceeds
   ``start_threshold``, refined back to where a line through the rise (up to 5x the threshold) meets
   zero; time burrowing: the total of ``burrowing_window_s`` windows in which ``displaced`` rises by at
   least ``burrowing_min_rise``. With ``start_g`` the end figure is also in grams (with ``end_g``, the
   weighed ``start_g - end_g``; video and scale agree at the end).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from behavior.assays import AssaySpec, MeasureSpec, ReportContext, ReportItem, register_assay
from behavior.features.base import AssayResult, Measure
from behavior.session import Session

__all__ = [
    "BurrowingConfig",
    "FillSeries",
    "TubeRegionError",
    "burrowing_measures",
    "check_tube_roi",
    "extract_burrowing",
    "fill_fractions",
    "sample_tube",
    "score_burrowing_video",
]

#: Step (frames) between samples from which seeking beats decoding every frame in between: a seek decodes
#: from the keyframe before the target, and x264's default keyframe interval is 250 frames.
SEEK_MIN_STEP = 250


class TubeRegionError(ValueError):
    """No tube region, or one that does not lie inside the video's frame."""


class BurrowingConfig(BaseModel):
    """``configs/assays/burrowing.yaml``."""

    model_config = ConfigDict(extra="forbid")
    assay: Literal["burrowing"] = "burrowing"
    tube_roi: tuple[int, int, int, int] | None = Field(
        None, description="tube interior [x, y, w, h] in pixels (of the session's roi when it has one)"
    )
    closed_end: Literal["left", "right"] = "left"
    sample_interval_s: float = Field(10.0, gt=0, description="real seconds between sampled frames")
    checkpoints_min: list[float] = Field(default_factory=lambda: [30.0, 60.0, 120.0])
    start_g: float | None = Field(None, gt=0, description="substrate weighed into the tube (g)")
    end_g: float | None = Field(None, ge=0, description="substrate left in the tube at the end (g)")
    blur_px: int = Field(5, ge=1, le=31)
    animal_ratio: float = Field(0.6, gt=0, lt=1, description="animal: darker than this share of the substrate")
    animal_margin_px: int = Field(4, ge=0, le=20)
    empty_gray: float | None = Field(None, gt=0, le=255, description="grey level of the empty tube (auto)")
    min_contrast: float = Field(30.0, gt=0)
    max_occluded_fraction: float = Field(0.1, gt=0, le=1)
    start_threshold: float = Field(0.02, gt=0, lt=1, description="displaced share that marks the start")
    burrowing_window_s: float = Field(120.0, gt=0)
    burrowing_min_rise: float = Field(0.005, gt=0, lt=1)

    @field_validator("checkpoints_min")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(not (c > 0 and math.isfinite(c)) for c in v):
            raise ValueError(f"expected checkpoints > 0 minutes, got {v}")
        return sorted(set(v))

    @field_validator("end_g")
    @classmethod
    def _end_needs_start(cls, v: float | None, info: Any) -> float | None:
        start = info.data.get("start_g")
        if v is not None and (start is None or v > start):
            raise ValueError(f"expected end_g with a start_g and end_g <= start_g, got start {start}, end {v}")
        return v


def _checkpoint_name(minutes: float) -> str:
    return f"displaced_percent_{minutes:g}min".replace(".", "p")


# --------------------------------------------------------------------------- sampling


def check_tube_roi(video: str | Path, roi: Sequence[int]) -> Any:
    """Probe ``video`` and check that ``roi`` (x, y, w, h) lies inside its frame; return the video's info.

    Raises
    ------
    TubeRegionError
        If it does not (one line: the frame size and where the region reaches).
    """
    from pose_models.video import probe_video

    info = probe_video(video)
    if len(roi) != 4:
        raise TubeRegionError(f"expected a tube region as x, y, w, h, got {list(roi)}")
    x, y, w, h = (int(v) for v in roi)
    if min(x, y) < 0 or min(w, h) <= 0 or x + w > info.width or y + h > info.height:
        raise TubeRegionError(
            f"{video}: expected a tube region inside the {info.width}x{info.height} frame, "
            f"got {x},{y},{w},{h} (reaching x={x + w}, y={y + h})"
        )
    return info


def sample_tube(
    video: str | Path,
    roi: Sequence[int],
    *,
    step: int,
    blur_px: int = 5,
    progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Decode every ``step``-th frame of ``video``, cropped to ``roi``, grey and box-smoothed.

    Returns ``(frame_indices, crops (n, h, w) float32, frames_failed)``. Seeks to each sample when
    ``step >= SEEK_MIN_STEP``, else reads through (decoding is cheaper than a seek per sample then).

    Raises
    ------
    TubeRegionError
        If ``roi`` does not lie inside the frame.
    """
    from pose_models.video import ROI, VideoReader

    info = check_tube_roi(video, roi)
    x, y, w, h = (int(v) for v in roi)
    wanted = np.arange(0, info.n_frames, max(1, int(step)))
    idx_out: list[int] = []
    crops: list[np.ndarray] = []
    k = max(1, int(blur_px))

    def keep(i: int, frame: np.ndarray) -> None:
        idx_out.append(int(i))
        crops.append(cv2.blur(frame.astype(np.float32), (k, k), borderType=cv2.BORDER_REFLECT))

    failed = 0
    last = [-1.0]

    def report(fraction: float) -> None:  # at most once per percent
        if progress is not None and (fraction >= 1.0 or fraction - last[0] >= 0.01):
            last[0] = fraction
            progress(min(1.0, fraction))

    with VideoReader(video, gray=True, roi=ROI(x, y, w, h), strict=False, decode_threads=1) as reader:
        if step >= SEEK_MIN_STEP:
            for j, i in enumerate(wanted):
                got = list(reader.batches(1, start=int(i), stop=int(i) + 1))
                if not got:
                    failed = int(wanted.size - j)
                    break
                keep(i, got[0][1][0])
                report(j / wanted.size)
        else:
            for indices, frames in reader.batches(max(int(step), 64 // int(step) * int(step))):
                for i, frame in zip(indices, frames, strict=True):
                    if i % step == 0:
                        keep(i, frame)
                report(float(indices[-1]) / max(info.n_frames, 1))
            failed = reader.frames_failed
    report(1.0)
    if not crops:
        raise TubeRegionError(f"{video}: no frame could be decoded")
    return np.asarray(idx_out), np.stack(crops), int(failed)


# --------------------------------------------------------------------------- classification


class FillSeries:
    """Per sampled frame: fill fraction, share of the tube the animal hides, whether it was left out."""

    def __init__(self, fill: np.ndarray, occluded_fraction: np.ndarray, kept: np.ndarray, levels: dict[str, float]):
        self.fill = fill
        self.occluded_fraction = occluded_fraction
        self.kept = kept
        self.levels = levels


def fill_fractions(crops: np.ndarray, config: BurrowingConfig) -> FillSeries:
    """Classify the tube's pixels (substrate / empty tube / animal) and measure each frame's fill.

    ``crops`` are smoothed grey tube crops ``(n, h, w)`` with the closed end on ``config.closed_end``.
    See the module docstring for the rule.
    """
    if config.closed_end == "right":
        crops = crops[:, :, ::-1]
    n, h, w = crops.shape
    end = crops[: min(n, 3), :, : max(1, w // 5)]
    substrate = float(np.median(end))
    dark = substrate * config.animal_ratio
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    grow = (
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * config.animal_margin_px + 1,) * 2)
        if config.animal_margin_px
        else None
    )
    animal = np.empty(crops.shape, bool)
    for i in range(n):
        m = cv2.morphologyEx((crops[i] < dark).astype(np.uint8), cv2.MORPH_OPEN, kernel)
        if grow is not None and m.any():
            m = cv2.dilate(m, grow)
        animal[i] = m.astype(bool)
    if config.empty_gray is not None:
        empty = float(config.empty_gray)
    else:
        visible = crops[~animal]
        empty = float(np.percentile(visible, 99)) if visible.size else substrate
    threshold = (substrate + empty) / 2 if empty - substrate >= config.min_contrast else substrate + config.min_contrast
    is_sub = crops < threshold
    vis = ~animal
    n_vis = vis.sum(axis=1)  # (n, w)
    col_fill = np.where(n_vis > 0, (is_sub & vis).sum(axis=1) / np.maximum(n_vis, 1), np.nan)
    col_ok = n_vis >= 0.5 * h
    fill = np.full(n, np.nan)
    cols = np.arange(w)
    for i in range(n):
        ok = col_ok[i]
        if ok.sum() >= 2:
            fill[i] = float(np.interp(cols, cols[ok], col_fill[i, ok]).mean())
    occ = animal.mean(axis=(1, 2))
    kept = (occ <= config.max_occluded_fraction) & np.isfinite(fill)
    return FillSeries(fill, occ, kept, {"substrate_gray": substrate, "empty_gray": empty, "threshold_gray": threshold})


# --------------------------------------------------------------------------- measures


def _monotone_fit(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(increasing=False).fit_transform(t, y)


def _latency_s(t: np.ndarray, displaced_raw: np.ndarray, displaced_fit: np.ndarray, threshold: float) -> float | None:
    """First time the fitted displaced share exceeds ``threshold``, extrapolated back along the rise.

    A line through the raw displaced shares of the rise (fit from ``threshold`` to 4 thresholds above the
    first value over it, so also the first stretch after a gap where the animal hid the tube) meets zero
    at the latency, kept between the last frame with nothing displaced and the first one over the threshold.
    """
    above = np.flatnonzero(displaced_fit > threshold)
    if above.size == 0:
        return None
    first = int(above[0])
    t_cross = float(t[first])
    zero = np.flatnonzero(displaced_fit[:first] <= 0)
    floor = float(t[zero[-1]]) if zero.size else 0.0
    rise = (displaced_fit >= threshold) & (displaced_fit <= displaced_fit[first] + 4 * threshold) & (t >= t_cross)
    rise |= (displaced_fit >= threshold) & (t < t_cross)
    if rise.sum() >= 3 and np.ptp(t[rise]) > 0:
        slope, icpt = np.polyfit(t[rise], displaced_raw[rise], 1)
        if slope > 0:
            return float(np.clip(-icpt / slope, min(floor, t_cross), t_cross))
    return t_cross


def burrowing_measures(
    t_s: np.ndarray, fill: np.ndarray, kept: np.ndarray, config: BurrowingConfig, duration_s: float
) -> tuple[list[Measure], np.ndarray, dict[str, Any]]:
    """Measures from the fill fraction of the sampled frames (real time ``t_s``; ``kept`` not hidden).

    Returns the measures, the fitted displaced fraction at every sampled frame, and quality figures.
    """
    tk, yk = t_s[kept], fill[kept]
    if tk.size < 2:
        raise ValueError(f"expected at least 2 frames where the tube is visible, got {tk.size}")
    fit = _monotone_fit(tk, yk)
    fill0 = float(fit[0])
    if not fill0 > 0:
        raise ValueError(f"expected substrate in the tube at the start, got a fill fraction of {fill0:.3f}")
    disp_fit = np.clip(1 - fit / fill0, 0, 1)
    disp_raw = 1 - yk / fill0
    n = int(tk.size)

    def displaced_at(ts: float) -> float:
        return float(np.interp(ts, tk, disp_fit))

    measures = [Measure("displaced_percent", 100 * float(disp_fit[-1]), "%", n)]
    after_end = []
    for c in config.checkpoints_min:
        if c * 60 > duration_s + 1e-6:
            after_end.append(c)
            continue
        measures.append(Measure(_checkpoint_name(c), 100 * displaced_at(c * 60), "%", n))
    lat = _latency_s(tk, disp_raw, disp_fit, config.start_threshold)
    if lat is not None:
        measures.append(Measure("latency_to_start_min", lat / 60, "min", n))
    edges = np.arange(0.0, duration_s + config.burrowing_window_s, config.burrowing_window_s)
    burrow_s = 0.0
    for a, b in itertools.pairwise(edges):
        b = min(b, duration_s)
        if b > a and displaced_at(b) - displaced_at(a) >= config.burrowing_min_rise:
            burrow_s += b - a
    measures.append(Measure("burrowing_time_min", float(burrow_s) / 60, "min", n))
    first_visible = float(tk[0] - t_s[0])
    if first_visible > 0:  # the start is hidden: the initial fill is the first one seen
        measures = [Measure(m.measure, m.value, m.unit, m.n, "start_hidden") for m in measures]
    quality: dict[str, Any] = {
        "initial_fill_fraction": round(fill0, 4),
        "first_visible_s": first_visible,
        "checkpoints_after_end_min": after_end,
        "started": lat is not None,
    }
    if config.start_g is not None:
        video_g = config.start_g * float(disp_fit[-1])
        if config.end_g is not None:
            weighed = config.start_g - config.end_g
            measures.append(Measure("displaced_g", weighed, "g", 1))
            quality["video_minus_weighed_g"] = round(video_g - weighed, 3)
        else:
            measures.append(Measure("displaced_g", video_g, "g", n))
    disp_all = np.clip(1 - np.interp(t_s, tk, fit) / fill0, 0, 1)
    return measures, disp_all, quality


def score_burrowing_video(
    video: str | Path,
    roi: Sequence[int],
    fps: float,
    config: BurrowingConfig,
    *,
    progress: Callable[[float], None] | None = None,
) -> AssayResult:
    """Score one burrowing video: ``roi`` is the tube interior in the video's pixels, ``fps`` the real capture rate."""
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"expected the real capture rate fps > 0, got {fps}")
    step = max(1, round(config.sample_interval_s * fps))
    idx, crops, failed = sample_tube(video, roi, step=step, blur_px=config.blur_px, progress=progress)
    series = fill_fractions(crops, config)
    t_s = idx / fps
    from pose_models.video import probe_video

    duration_s = (probe_video(video).n_frames - 1) / fps
    measures, displaced, quality = burrowing_measures(t_s, series.fill, series.kept, config, duration_s)
    table = pd.DataFrame(
        {
            "frame": idx,
            "time_s": t_s,
            "fill_fraction": np.round(series.fill, 5),
            "occluded_fraction": np.round(series.occluded_fraction, 4),
            "occluded": ~series.kept,
            "displaced_fraction_fit": np.round(displaced, 5),
        }
    )
    quality = {
        "frames_sampled": int(idx.size),
        "frames_occluded": int((~series.kept).sum()),
        "frames_failed": failed,
        "sample_step_frames": int(step),
        **quality,
        **{k: round(v, 2) for k, v in series.levels.items()},
    }
    return AssayResult(measures=measures, tables={"burrowing_frames": table}, quality=quality)


def _tube_roi(session: Session, config: BurrowingConfig) -> tuple[int, int, int, int]:
    sroi = getattr(session, "roi", None)
    if config.tube_roi is not None:
        x, y, w, h = config.tube_roi
        if sroi is not None:  # an assay's region is relative to the session's
            sx, sy, sw, sh = sroi
            if x + w > sw or y + h > sh:
                raise TubeRegionError(
                    f"session {session.session_id}: expected tube_roi {x},{y},{w},{h} inside the session's "
                    f"roi of {sw}x{sh}"
                )
            return (sx + x, sy + y, w, h)
        return (x, y, w, h)
    if sroi is not None:
        return tuple(int(v) for v in sroi)  # type: ignore[return-value]
    raise TubeRegionError(
        f"session {session.session_id}: expected a tube region (burrowing config tube_roi, "
        "or the session's roi), got none"
    )


def extract_burrowing(
    poses: Any,
    session: Session,
    config: BurrowingConfig,
    *,
    video: Path | None = None,
    progress: Callable[[float], None] | None = None,
) -> AssayResult:
    """The registered extractor: the session's video and tube region in, burrowing measures out."""
    video = video if video is not None else session.video
    if video is None:
        raise ValueError(f"session {session.session_id}: expected a video of the tube, got none")
    return score_burrowing_video(video, _tube_roi(session, config), session.fps, config, progress=progress)


# --------------------------------------------------------------------------- report


def _report(ctx: ReportContext) -> list[ReportItem]:
    """Substrate displaced over time, mean per group (and timepoint), from the per-session tables."""
    m = ctx.measures
    if m.empty or "assay" not in m:
        return []
    sessions = m[m["assay"] == "burrowing"][["session_id", "group", "timepoint"]].drop_duplicates()
    curves: dict[tuple[str, str], list[pd.Series]] = {}
    for row in sessions.itertuples(index=False):
        table = ctx.session_table(str(row.session_id), "burrowing_frames")
        if table is None or table.empty:
            continue
        s = pd.Series(100 * table["displaced_fraction_fit"].to_numpy(), index=table["time_s"].to_numpy() / 60)
        curves.setdefault((str(row.group), str(row.timepoint)), []).append(s)
    if not curves:
        return []
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timepoints = sorted({tp for _, tp in curves})
    fig, axes = plt.subplots(1, len(timepoints), figsize=(3.2 * len(timepoints) + 1, 3.0), sharey=True, squeeze=False)
    for ax, tp in zip(axes[0], timepoints, strict=True):
        for (group, t), series in sorted(curves.items()):
            if t != tp:
                continue
            grid = np.linspace(0, max(s.index.max() for s in series), 100)
            ys = np.array([np.interp(grid, s.index, s.to_numpy()) for s in series])
            label = ctx.group_names.get(group, group)
            ax.plot(grid, ys.mean(axis=0), label=f"{label} (n={len(series)})")
            if len(series) > 1:
                sem = ys.std(axis=0, ddof=1) / np.sqrt(len(series))
                ax.fill_between(grid, ys.mean(axis=0) - sem, ys.mean(axis=0) + sem, alpha=0.2)
        ax.set_title(tp)
        ax.set_xlabel("time (min)")
    axes[0][0].set_ylabel("substrate displaced (%)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return [
        ReportItem(
            title="Burrowing: substrate displaced over time",
            png_base64=base64.b64encode(buf.getvalue()).decode(),
            caption="Mean (± s.e.m.) of each session's monotone fit of the substrate displaced from the tube.",
        )
    ]


def _methods(config: BurrowingConfig) -> str:
    return (
        "Burrowing (Deacon 2006; Jirkof 2010) was scored from video of the tube: one frame every "
        f"{config.sample_interval_s:g} s, tube pixels classified as substrate, empty tube or animal by grey level "
        "against the substrate at the start and the empty tube; frames where the animal hid more than "
        f"{100 * config.max_occluded_fraction:g} % of the tube were left out; the fill was fitted by isotonic "
        f"(non-increasing) regression. Latency to start: displaced > {100 * config.start_threshold:g} %, "
        "extrapolated back along the rise."
    )


register_assay(
    AssaySpec(
        name="burrowing",
        domain="spontaneous",
        config_model=BurrowingConfig,
        extract=extract_burrowing,
        measures=(
            MeasureSpec("displaced_percent", "%", "substrate displaced from the tube by the end of the session"),
            MeasureSpec("displaced_percent_{N}min", "%", "substrate displaced by each checkpoint (checkpoints_min)"),
            MeasureSpec("latency_to_start_min", "min", "time until burrowing starts"),
            MeasureSpec("burrowing_time_min", "min", "time during which substrate leaves the tube"),
            MeasureSpec("displaced_g", "g", "substrate displaced in grams (when start_g is given)"),
        ),
        needs_poses=False,
        needs_video=True,
        quality_figures=("frames_sampled", "frames_occluded", "frames_failed", "initial_fill_fraction"),
        methods=_methods,
        report=_report,
        labels={
            "frames_sampled": "frames sampled",
            "frames_occluded": "frames left out: animal hides the tube",
            "frames_failed": "frames that could not be decoded",
        },
        description="Burrowing: substrate displaced from a tube over time, latency, time burrowing (video)",
    )
)
