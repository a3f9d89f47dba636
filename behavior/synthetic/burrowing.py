"""Burrowing: a side view of a tube of substrate (gravel) that a mouse empties, as a time-lapse.

The clip is a **time-lapse**: frame ``i`` shows the test at real time ``i * frame_interval_s``. The
session (and Poses) ``fps`` is the real capture rate ``1 / frame_interval_s``, so ``frame / fps`` is real
test time in seconds; the MP4 plays back at ``playback_fps`` (``Clip.video_fps``).

Ground truth
------------
Substrate displaced (fraction of the initial amount) at real time ``t``::

    displaced(t) = min(1, displaced_fraction_per_min * max(0, t - latency_to_start_s) / 60)

and ``fill_fraction(t) = initial_fill_fraction * (1 - displaced(t))``. The fill fraction is the share
of the tube's interior (``tube_roi``, ``[x, y, width, height]`` in pixels, side projection) covered
by substrate: the substrate lies against the closed (left) end with a sloping face towards the open
mouth (right); the slope is symmetric about ``fill_fraction * width``, so the covered area is exactly
``fill_fraction * width * height``. Displaced substrate piles up outside the mouth, outside the ROI.
The mouse stays outside the tube: at the mouth while burrowing, wandering the cage floor otherwise,
except during ``occlusions_s`` (real-time intervals), when it sits in front of the tube, between the
camera and the tube, closer to the camera (drawn ``occluder_scale`` times larger) and hides part of it.
The substrate follows the same ground truth through an occlusion (it hides the tube, it does not pause
the displacement); ``truth["occluded"]`` flags those frames.
Keypoints: ``snout``, ``centroid`` (area centroid of the body silhouette), ``tailbase``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from behavior.synthetic.animal import ANIMAL_KEYPOINTS, ANIMAL_SKELETON, Animal
from behavior.synthetic.base import Clip, make_clip, register_simulator
from behavior.synthetic.render import blotches, finish, grain, paint_capsule, paint_ellipse, paint_polygon

__all__ = ["BurrowingParams", "simulate_burrowing"]

TUBE_INTERIOR_RGB = (186.0, 190.0, 186.0)
WALL_RGB = (200.0, 196.0, 186.0)
BEDDING_RGB = (176.0, 158.0, 122.0)


@dataclass
class BurrowingParams:
    """Parameters of a burrowing clip.

    Attributes
    ----------
    initial_fill_fraction
        Share of the tube interior filled at the start, (0, 1].
    displaced_fraction_per_min
        Burrowing rate: fraction of the initial substrate displaced per minute once burrowing starts.
    latency_to_start_s
        Real time before burrowing starts.
    duration_s
        Real duration of the test covered by the clip.
    frame_interval_s
        Real seconds between frames (time-lapse); session fps = 1 / frame_interval_s.
    playback_fps
        Frame rate of the written MP4.
    px_per_mm
        Scale (the tube is 200 mm long, 70 mm wide outside).
    occlusions_s
        Real-time intervals ``(start_s, end_s)`` during which the mouse sits in front of the tube.
    occluder_scale
        How much larger the mouse in front of the tube looks (it is closer to the camera).
    """

    initial_fill_fraction: float = 0.9
    displaced_fraction_per_min: float = 0.02
    latency_to_start_s: float = 300.0
    duration_s: float = 3600.0
    frame_interval_s: float = 20.0
    playback_fps: float = 10.0
    px_per_mm: float = 0.8
    frame_width_px: int = 320
    frame_height_px: int = 160
    occlusions_s: tuple[tuple[float, float], ...] = ()
    occluder_scale: float = 1.6

    def __post_init__(self) -> None:
        self.occlusions_s = tuple((float(a), float(b)) for a, b in self.occlusions_s)
        for a, b in self.occlusions_s:
            if not 0 <= a < b:
                raise ValueError(f"expected occlusions_s as (start_s, end_s) with 0 <= start < end, got {(a, b)}")
        if not 1.0 <= self.occluder_scale <= 2.5:
            raise ValueError(f"expected occluder_scale in [1, 2.5], got {self.occluder_scale}")
        if not 0 < self.initial_fill_fraction <= 1:
            raise ValueError(f"expected initial_fill_fraction in (0, 1], got {self.initial_fill_fraction}")
        if self.displaced_fraction_per_min < 0 or self.latency_to_start_s < 0:
            raise ValueError(
                "expected displaced_fraction_per_min >= 0 and latency_to_start_s >= 0, got "
                f"{self.displaced_fraction_per_min}, {self.latency_to_start_s}"
            )
        for name in ("duration_s", "frame_interval_s", "playback_fps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"expected {name} > 0, got {getattr(self, name)}")
        if not 0.5 <= self.px_per_mm <= 1.0:
            raise ValueError(f"expected px_per_mm in [0.5, 1.0] (the tube must fit the frame), got {self.px_per_mm}")
        w, h = self.frame_width_px, self.frame_height_px
        if w % 2 or h % 2 or w < 300 or h < 140:
            raise ValueError(f"expected an even frame of at least 300x140, got {w}x{h}")

    def displaced_fraction(self, t_s: np.ndarray) -> np.ndarray:
        """Fraction of the initial substrate displaced at real time ``t_s``."""
        return np.minimum(1.0, self.displaced_fraction_per_min * np.maximum(0.0, t_s - self.latency_to_start_s) / 60)


@register_simulator("burrowing")
def simulate_burrowing(params: BurrowingParams, rng: np.random.Generator) -> Clip:
    """Simulate a burrowing time-lapse (see the module docstring for the exact ground truth)."""
    p = params
    w, h, ppm = p.frame_width_px, p.frame_height_px, p.px_per_mm
    n = max(round(p.duration_s / p.frame_interval_s) + 1, 2)  # frames at t = 0 .. duration
    t = np.arange(n) * p.frame_interval_s
    displaced = p.displaced_fraction(t)
    fill = p.initial_fill_fraction * (1.0 - displaced)
    floor_y = h - 0.16 * h
    # Tube: 200 mm long, 70 mm outer diameter, 4 mm wall; closed end left, mouth right.
    wall = max(round(4 * ppm), 2)
    length, diam = round(200 * ppm), round(70 * ppm)
    tx0, ty0 = 16, round(floor_y - diam - 4)
    roi = [tx0 + wall, ty0 + wall, length - 2 * wall, diam - 2 * wall]
    _rx, _ry, rw, rh = roi
    mouth_x = tx0 + length

    bg = _background(rng, w, h, floor_y, tx0, ty0, length, diam)
    gravel = _gravel_texture(rng, rh, rw)
    interior = np.empty((rh, rw, 3), np.float32)
    interior[:] = TUBE_INTERIOR_RGB
    interior += np.linspace(14, -8, rh, dtype=np.float32)[:, None, None]  # light from above, curved wall
    interior += grain(rng, rh, rw, 1.5)[:, :, None]
    animal = Animal("side", ppm)
    occluder = Animal("side", ppm * p.occluder_scale)
    occluded = np.zeros(n, bool)
    for a, b in p.occlusions_s:
        occluded |= (t >= a) & (t < b)

    burrowing = (t >= p.latency_to_start_s) & (displaced < 1.0) & (p.displaced_fraction_per_min > 0)
    centroid_y = floor_y - 10.0 * ppm
    at_mouth_x = mouth_x + (31.5 + animal.offset[0]) * ppm + 3.0  # snout just outside the mouth
    pos = np.zeros((n, 3, 2))
    frames = np.empty((n, h, w, 3), np.uint8)
    cache: tuple[float, np.ndarray] | None = None  # the substrate only changes while burrowing
    for i in range(n):
        if cache is None or cache[0] != fill[i]:
            cache = (float(fill[i]), bg.copy())
            _paint_substrate(cache[1], interior, gravel, roi, fill[i], rng_slope=5.0 * ppm)
        img = cache[1].copy()
        if displaced[i] > 0:  # the pile outside the mouth
            pw, ph = (10 + 60 * displaced[i] * p.initial_fill_fraction) * ppm, (3 + 14 * displaced[i]) * ppm
            cx = mouth_x + pw * 0.8
            paint_ellipse(img, (cx, floor_y + 2), (pw, ph), 0.0, (112.0, 100.0, 86.0))
            paint_ellipse(img, (cx - pw * 0.2, floor_y), (pw * 0.6, ph * 0.8), 0.0, (96.0, 88.0, 76.0), 0.6)
        who = animal
        if occluded[i]:  # sitting in front of the tube, over its middle
            who = occluder
            centroid = np.array([roi[0] + rw * rng.uniform(0.4, 0.6), roi[1] + rh * rng.uniform(0.45, 0.6)])
            heading = float(rng.choice([0.0, np.pi]))
        elif burrowing[i]:
            centroid = np.array([at_mouth_x + rng.uniform(0, 6) * ppm, centroid_y])
            heading = np.pi
        else:
            centroid = np.array([rng.uniform(mouth_x + 45 * ppm + 2, w - 45 * ppm), centroid_y])
            heading = float(rng.choice([0.0, np.pi]))
        who.paint(img, centroid, heading, tail_bend=float(rng.uniform(-0.4, 0.4)))
        pos[i] = who.keypoints(centroid, heading)
        frames[i] = finish(img, rng)

    empty = np.flatnonzero(displaced >= 1.0)
    truth = {
        "time_lapse": True,
        "frame_interval_s": p.frame_interval_s,
        "playback_fps": p.playback_fps,
        "time_lapse_factor": p.frame_interval_s * p.playback_fps,
        "duration_s": float(t[-1]),
        "initial_fill_fraction": p.initial_fill_fraction,
        "displaced_fraction_per_min": p.displaced_fraction_per_min,
        "latency_s": p.latency_to_start_s,
        "tube_roi": roi,
        "mouth_x_px": mouth_x,
        "fill_fraction": fill,
        "displaced_fraction": displaced,
        "displaced_percent_end": 100.0 * float(displaced[-1]),
        "time_burrowing_s": float(burrowing.sum() * p.frame_interval_s),
        "emptied_at_s": float(t[empty[0]]) if empty.size else None,
        "occlusions_s": [list(o) for o in p.occlusions_s],
        "occluded": occluded,
        "fill_rule": "fill_fraction = initial_fill_fraction * (1 - displaced); covered share of tube_roi",
    }
    return make_clip(
        assay="burrowing",
        frames=frames,
        positions_px=pos,
        keypoints=ANIMAL_KEYPOINTS,
        skeleton=ANIMAL_SKELETON,
        fps=1.0 / p.frame_interval_s,
        px_per_mm=ppm,
        truth=truth,
        video_fps=p.playback_fps,
        roi=roi,  # the tube, drawn once per rig: the session names it
    )


def _background(
    rng: np.random.Generator, w: int, h: int, floor_y: float, tx0: int, ty0: int, length: int, diam: int
) -> np.ndarray:
    bg = np.empty((h, w, 3), np.float32)
    bg[:] = WALL_RGB
    bg *= np.linspace(1.03, 0.93, h, dtype=np.float32)[:, None, None]
    bg += blotches(rng, h, w, scale_px=50, amp=5.0)[:, :, None]
    fy = int(floor_y)
    bedding = np.empty((h - fy, w, 3), np.float32)
    bedding[:] = BEDDING_RGB
    bedding += (grain(rng, h - fy, w, 9.0) + blotches(rng, h - fy, w, scale_px=6, amp=8.0))[:, :, None]
    bg[fy:] = bedding
    bg += grain(rng, h, w, 1.5)[:, :, None]
    # Tube body (translucent grey plastic), closed end cap on the left, rim at the mouth.
    paint_polygon(
        bg,
        np.array([[tx0, ty0], [tx0 + length, ty0], [tx0 + length, ty0 + diam], [tx0, ty0 + diam]]) - 0.5,
        (150.0, 154.0, 156.0),
    )
    paint_capsule(bg, (tx0 + length - 1, ty0 - 1), (tx0 + length - 1, ty0 + diam), 3.0, (128.0, 132.0, 134.0))
    paint_capsule(bg, (tx0, ty0), (tx0, ty0 + diam - 1), 3.0, (120.0, 124.0, 126.0))
    paint_capsule(bg, (tx0 + 8, ty0 + diam + 1), (tx0 + 8, ty0 + diam + 6), 3.0, (90.0, 90.0, 92.0))  # stand
    return bg


def _gravel_texture(rng: np.random.Generator, rh: int, rw: int) -> np.ndarray:
    """Gravel: pebbles 2-5 px of varied grey-brown, every pixel darker than the empty tube."""
    tex = np.empty((rh, rw, 3), np.uint8)
    tex[:] = (96, 88, 76)
    for _ in range(rh * rw // 5):
        c = rng.uniform(60, 140)
        tint = rng.uniform(0.85, 1.0, 3) * np.array([1.0, 0.95, 0.85])
        cv2.ellipse(
            tex,
            (int(rng.integers(0, rw)), int(rng.integers(0, rh))),
            (int(rng.integers(1, 3)), int(rng.integers(1, 3))),
            float(rng.uniform(0, 180)),
            0,
            360,
            tuple(float(v) for v in c * tint),
            -1,
            cv2.LINE_AA,
        )
    return tex.astype(np.float32)


def _paint_substrate(
    img: np.ndarray, interior: np.ndarray, gravel: np.ndarray, roi: list[int], fill: float, rng_slope: float
) -> None:
    rx, ry, rw, rh = roi
    region = img[ry : ry + rh, rx : rx + rw]
    region[:] = interior
    if fill <= 0:
        return
    xf = fill * rw
    s = min(rng_slope, xf, rw - xf)
    # Polygon in ROI coordinates: pixel centres at integers, the ROI's edges at -0.5 and size - 0.5.
    left, top, bottom = -0.5, -0.5, rh - 0.5
    poly = np.array([[left, top], [left + xf - s, top], [left + xf + s, bottom], [left, bottom]])
    mask = np.zeros((rh, rw), np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    m = (mask.astype(np.float32) / 255.0)[:, :, None]
    region += m * (gravel - region)
