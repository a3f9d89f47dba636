"""Place preference: a top view of a two-chamber box and a mouse moving between the chambers.

Ground truth
------------
The chambers are separated by a wall at ``divider_x_px`` with a doorway. A frame counts for the
right chamber when the ``centroid`` keypoint's x is greater than ``divider_x_px``, for the left one
otherwise; the trajectory is built so that this rule gives exactly ``round(time_in_paired_s * fps)``
frames in the paired chamber (times are frame counts / fps; without boundary flicker). An *entry* is
a frame in a chamber whose previous frame was in the other one (the first frame does not count). The mouse starts in
``start_chamber``; ``latency_to_first_entry_s`` is the time of the first frame in the paired chamber
(0 when it starts there). Visits are at least ``min_visit_s`` long; within a visit the mouse walks
between random waypoints inside the chamber (straight segments with smooth starts and stops, so it
never crosses the divider) and it crosses only through the doorway.

Boundary flicker: with ``boundary_flicker_frames = f > 0`` the animal hesitates in the doorway at every
crossing: the first ``f`` frames of each visit after the first alternate new chamber, old chamber, new,
... just either side of the divider (what a body centre jittering on the line looks like). Those frames
count by the rule above (``time_in_paired_s``, ``n_entries_raw``: every step into the paired chamber),
while ``n_entries`` counts the visits to it (flicker excluded): the entries a scorer should report.

The left chamber has a bar (grid-rod) floor, the right one a perforated floor, the usual tactile
cues. Keypoints: ``snout``, ``centroid`` (area centroid of the body silhouette, tail excluded),
``tailbase``; heading follows the direction of motion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from behavior.synthetic.animal import ANIMAL_KEYPOINTS, ANIMAL_SKELETON, Animal
from behavior.synthetic.base import Clip, make_clip, register_simulator
from behavior.synthetic.render import blotches, finish, grain, paint_capsule, paint_ellipse

__all__ = ["PlacePreferenceParams", "simulate_place_preference"]

BOX_MM = (400.0, 190.0)
DOOR_MM = 50.0
WALL_RGB = (92.0, 92.0, 96.0)


@dataclass
class PlacePreferenceParams:
    """Parameters of a place-preference clip.

    Attributes
    ----------
    time_in_paired_s
        Time the centroid spends in the paired chamber; ``None`` = ``paired_fraction * duration_s``.
    paired_fraction
        Share of the test in the paired chamber, used when ``time_in_paired_s`` is None.
    n_entries
        Number of entries into the paired chamber.
    duration_s, fps
        Test length and frame rate.
    paired_chamber
        ``"left"`` or ``"right"``.
    start_chamber
        ``"unpaired"`` or ``"paired"``.
    min_visit_s
        Shortest stay in a chamber.
    speed_mm_s
        Typical walking speed between waypoints.
    boundary_flicker_frames
        Frames of hesitation across the divider at the start of each visit after the first (0: none).
    """

    time_in_paired_s: float | None = None
    paired_fraction: float = 0.5
    n_entries: int = 5
    duration_s: float = 90.0
    fps: float = 5.0
    paired_chamber: Literal["left", "right"] = "right"
    start_chamber: Literal["unpaired", "paired"] = "unpaired"
    min_visit_s: float = 2.0
    speed_mm_s: float = 120.0
    px_per_mm: float = 0.75
    frame_width_px: int = 320
    frame_height_px: int = 160
    boundary_flicker_frames: int = 0

    def __post_init__(self) -> None:
        for name in ("duration_s", "fps", "min_visit_s", "speed_mm_s", "px_per_mm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"expected {name} > 0, got {getattr(self, name)}")
        if self.paired_chamber not in ("left", "right"):
            raise ValueError(f"expected paired_chamber 'left' or 'right', got {self.paired_chamber!r}")
        if self.start_chamber not in ("unpaired", "paired"):
            raise ValueError(f"expected start_chamber 'unpaired' or 'paired', got {self.start_chamber!r}")
        if self.time_in_paired_s is None:
            if not 0 <= self.paired_fraction <= 1:
                raise ValueError(f"expected paired_fraction in [0, 1], got {self.paired_fraction}")
            self.time_in_paired_s = self.paired_fraction * self.duration_s
        if not 0 <= self.time_in_paired_s <= self.duration_s:
            raise ValueError(
                f"expected time_in_paired_s in [0, duration_s={self.duration_s}], got {self.time_in_paired_s}"
            )
        if int(self.n_entries) != self.n_entries or self.n_entries < 0:
            raise ValueError(f"expected a whole number n_entries >= 0, got {self.n_entries}")
        self.n_entries = int(self.n_entries)
        f = self.boundary_flicker_frames
        if int(f) != f or f < 0 or f >= math.ceil(self.min_visit_s * self.fps):
            raise ValueError(
                f"expected a whole number 0 <= boundary_flicker_frames < min_visit_s * fps "
                f"({math.ceil(self.min_visit_s * self.fps)}), got {f}"
            )
        self.boundary_flicker_frames = int(f)
        box_w, box_h = BOX_MM[0] * self.px_per_mm, BOX_MM[1] * self.px_per_mm
        if box_w + 8 > self.frame_width_px or box_h + 8 > self.frame_height_px:
            raise ValueError(
                f"expected the {BOX_MM[0]:g}x{BOX_MM[1]:g} mm box to fit the frame at "
                f"px_per_mm={self.px_per_mm}, got a {self.frame_width_px}x{self.frame_height_px} frame"
            )
        if self.frame_width_px % 2 or self.frame_height_px % 2:
            raise ValueError(f"expected even frame sizes, got {self.frame_width_px}x{self.frame_height_px}")


def _split(rng: np.random.Generator, total: int, parts: int, minimum: int) -> list[int]:
    """Split ``total`` frames into ``parts`` random whole parts, each >= ``minimum``."""
    if parts == 0:
        return []
    spare = total - parts * minimum
    extra = rng.multinomial(spare, rng.dirichlet(np.full(parts, 2.0)))
    return [minimum + int(e) for e in extra]


def _visits(p: PlacePreferenceParams, rng: np.random.Generator, n: int) -> list[tuple[str, int]]:
    """Sequence of (chamber 'P'/'U', frames) covering the clip."""
    n_p = round(p.time_in_paired_s * p.fps)
    n_u = n - n_p
    m = max(math.ceil(p.min_visit_s * p.fps), 1)
    k = p.n_entries
    starts_p = p.start_chamber == "paired"
    # Entries into P = number of P visits, minus one if the first visit is in P.
    p_visits = k + (1 if starts_p else 0)
    options = []
    for u_visits in (p_visits - 1, p_visits, p_visits + 1):
        # alternate: starting in P needs u_visits in {p_visits - 1, p_visits}; in U, {p_visits, p_visits + 1}
        if starts_p and u_visits not in (p_visits - 1, p_visits):
            continue
        if not starts_p and u_visits not in (p_visits, p_visits + 1):
            continue
        if u_visits < 0 or (u_visits == 0) != (n_u == 0) or (p_visits == 0) != (n_p == 0):
            continue
        if n_p >= p_visits * m and n_u >= u_visits * m:
            options.append(u_visits)
    if not options:
        raise ValueError(
            f"expected time_in_paired_s={p.time_in_paired_s:g} s and duration_s={p.duration_s:g} s to fit "
            f"n_entries={k} visits of at least min_visit_s={p.min_visit_s:g} s (starting in the "
            f"{p.start_chamber} chamber), got an impossible combination"
        )
    u_visits = options[int(rng.integers(len(options)))]
    lp, lu = _split(rng, n_p, p_visits, m), _split(rng, n_u, u_visits, m)
    seq: list[tuple[str, int]] = []
    first, second = ("P", "U") if starts_p else ("U", "P")
    lists = {"P": lp, "U": lu}
    idx = {"P": 0, "U": 0}
    cur = first
    while idx["P"] < len(lp) or idx["U"] < len(lu):
        seq.append((cur, lists[cur][idx[cur]]))
        idx[cur] += 1
        cur = second if cur == first else first
    return seq


def _ease(s: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * s)


@register_simulator("place_preference")
def simulate_place_preference(params: PlacePreferenceParams, rng: np.random.Generator) -> Clip:
    """Simulate a place-preference test (see the module docstring for the exact ground truth)."""
    p = params
    w, h, ppm = p.frame_width_px, p.frame_height_px, p.px_per_mm
    n = max(round(p.duration_s * p.fps), 2)
    box_w, box_h = BOX_MM[0] * ppm, BOX_MM[1] * ppm
    bx0, by0 = (w - box_w) / 2, (h - box_h) / 2
    div_x = bx0 + box_w / 2
    door = (by0 + box_h / 2 - DOOR_MM / 2 * ppm, by0 + box_h / 2 + DOOR_MM / 2 * ppm)
    paired_sign = 1.0 if p.paired_chamber == "right" else -1.0
    step_px = p.speed_mm_s * ppm / p.fps
    delta = min(max(step_px / 2, 1.0), 6.0)  # half a step on either side of the divider when crossing
    margin = 14.0 * ppm  # keep the body off the walls

    visits = _visits(p, rng, n)
    cx = np.zeros(n)
    cy = np.zeros(n)
    f0 = 0
    y_cross = rng.uniform(door[0] + 10 * ppm, door[1] - 10 * ppm)
    for vi, (chamber, length) in enumerate(visits):
        sign = paired_sign if chamber == "P" else -paired_sign
        xlo, xhi = (div_x + delta, bx0 + box_w - margin) if sign > 0 else (bx0 + margin, div_x - delta)
        ylo, yhi = by0 + margin, by0 + box_h - margin
        entry = (
            np.array([div_x + sign * delta, y_cross])
            if vi > 0
            else np.array([rng.uniform(xlo, xhi), rng.uniform(ylo, yhi)])
        )
        last = vi == len(visits) - 1
        y_next = rng.uniform(door[0] + 10 * ppm, door[1] - 10 * ppm)
        exit_pt = None if last else np.array([div_x + sign * delta, y_next])
        flick = p.boundary_flicker_frames if vi > 0 else 0
        path = _wander(rng, entry, exit_pt, length - flick, (xlo, xhi, ylo, yhi), step_px)
        if flick:  # hesitation in the doorway: new, old, new, ... chamber, either side of the divider
            k = np.arange(flick)
            hes = np.column_stack([div_x + sign * delta * np.where(k % 2 == 0, 1.0, -1.0), np.full(flick, y_cross)])
            path = np.vstack([hes, path])
        cx[f0 : f0 + length], cy[f0 : f0 + length] = path[:, 0], path[:, 1]
        f0 += length
        y_cross = y_next

    heading = _headings(cx, cy, float(rng.uniform(-np.pi, np.pi)))
    animal = Animal("top", ppm)
    bg = _background(rng, w, h, bx0, by0, box_w, box_h, div_x, door)
    bends = np.cumsum(rng.normal(0, 0.15, n)).clip(-0.8, 0.8)
    pos = np.zeros((n, 3, 2))
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        img = bg.copy()
        c = np.array([cx[i], cy[i]])
        animal.paint(img, c, heading[i], tail_bend=float(bends[i]))
        pos[i] = animal.keypoints(c, heading[i])
        frames[i] = finish(img, rng)

    right = cx > div_x
    in_paired = right if p.paired_chamber == "right" else ~right
    entries = np.flatnonzero(in_paired[1:] & ~in_paired[:-1]) + 1
    exits = np.flatnonzero(~in_paired[1:] & in_paired[:-1]) + 1
    first = np.flatnonzero(in_paired)
    truth = {
        "divider_x_px": div_x,
        "doorway_y_px": list(door),
        "box_px": [bx0, by0, box_w, box_h],
        "paired_chamber": p.paired_chamber,
        "start_chamber": p.start_chamber,
        "chamber_rule": "right chamber when centroid x > divider_x_px, else left",
        "time_in_paired_set_s": p.time_in_paired_s,
        "time_in_paired_s": float(in_paired.sum() / p.fps),
        "time_in_unpaired_s": float((~in_paired).sum() / p.fps),
        "time_left_s": float((~right).sum() / p.fps),
        "time_right_s": float(right.sum() / p.fps),
        "paired_fraction": float(in_paired.mean()),
        "n_entries": sum(1 for vi, (c, _) in enumerate(visits) if c == "P" and vi > 0),
        "n_entries_raw": len(entries),
        "boundary_flicker_frames": p.boundary_flicker_frames,
        "n_entries_unpaired": len(exits),
        "entry_frames": entries,
        "latency_to_first_entry_s": float(first[0] / p.fps) if first.size else None,
        "visits": [[c, L] for c, L in visits],
        "duration_s": n / p.fps,
    }
    return make_clip(
        assay="place_preference",
        frames=frames,
        positions_px=pos,
        keypoints=ANIMAL_KEYPOINTS,
        skeleton=ANIMAL_SKELETON,
        fps=p.fps,
        px_per_mm=ppm,
        truth=truth,
    )


def _wander(
    rng: np.random.Generator,
    start: np.ndarray,
    end: np.ndarray | None,
    length: int,
    bounds: tuple[float, float, float, float],
    step_px: float,
) -> np.ndarray:
    """Positions for ``length`` frames from ``start`` (frame 0) to ``end`` (last frame) inside ``bounds``.

    Straight segments between waypoints with eased timing (pauses at the waypoints); every point is a
    convex combination of two points inside the (convex) bounds, so the path never leaves them.
    """
    xlo, xhi, ylo, yhi = bounds
    if length == 1:
        return start[None].copy()
    n_way = max(int(length * step_px / 60.0), 0)  # about one waypoint per 60 px of walking
    times = (
        np.sort(rng.choice(np.arange(1, length - 1), size=min(n_way, max(length - 2, 0)), replace=False))
        if length > 2
        else np.zeros(0, int)
    )
    pts = [start]
    for _ in times:
        pts.append(np.array([rng.uniform(xlo, xhi), rng.uniform(ylo, yhi)]))
    pts.append(end if end is not None else np.array([rng.uniform(xlo, xhi), rng.uniform(ylo, yhi)]))
    knots = np.r_[0, times, length - 1].astype(float)
    out = np.zeros((length, 2))
    f = np.arange(length, dtype=float)
    seg = np.clip(np.searchsorted(knots, f, side="right") - 1, 0, len(knots) - 2)
    s = (f - knots[seg]) / np.maximum(knots[seg + 1] - knots[seg], 1e-9)
    e = _ease(np.clip(s, 0, 1))[:, None]
    a, b = np.array(pts)[seg], np.array(pts)[seg + 1]
    out[:] = a + e * (b - a)
    return out


def _headings(cx: np.ndarray, cy: np.ndarray, initial: float) -> np.ndarray:
    """Direction of motion per frame (radians); kept while the animal pauses."""
    vx = np.gradient(cx) if len(cx) > 1 else np.zeros_like(cx)
    vy = np.gradient(cy) if len(cy) > 1 else np.zeros_like(cy)
    out = np.empty(len(cx))
    cur = initial
    for i in range(len(cx)):
        if math.hypot(vx[i], vy[i]) > 0.3:
            cur = math.atan2(vy[i], vx[i])
        out[i] = cur
    return out


def _background(
    rng: np.random.Generator,
    w: int,
    h: int,
    bx0: float,
    by0: float,
    box_w: float,
    box_h: float,
    div_x: float,
    door: tuple[float, float],
) -> np.ndarray:
    bg = np.empty((h, w, 3), np.float32)
    bg[:] = (84.0, 84.0, 88.0)  # bench around the box
    x = np.arange(w)[None, :]
    left = (x >= bx0) & (x < div_x)
    right = (x >= div_x) & (x < bx0 + box_w)
    rows = slice(int(np.floor(by0)), int(np.ceil(by0 + box_h)))
    floor = np.zeros((h, w), bool)
    floor[rows] = True
    bg[floor & left] = (190.0, 190.0, 192.0)
    bg[floor & right] = (206.0, 196.0, 176.0)
    bg += blotches(rng, h, w, scale_px=30, amp=4.0)[:, :, None]
    step = 9.0
    for gx in np.arange(bx0 + 4, div_x - 2, step):  # grid rods, left chamber
        paint_capsule(bg, (gx, by0), (gx, by0 + box_h), 1.8, (150.0, 150.0, 156.0))
    for gx in np.arange(div_x + 6, bx0 + box_w - 3, 8.0):  # perforations, right chamber
        for gy in np.arange(by0 + 5 + (gx % 16) / 4, by0 + box_h - 3, 8.0):
            paint_ellipse(bg, (gx, gy), (1.3, 1.3), 0.0, (160.0, 150.0, 134.0))
    bg += grain(rng, h, w, 2.0)[:, :, None]
    # Outer walls and the divider with its doorway.
    x0, y0, x1, y1 = bx0, by0, bx0 + box_w, by0 + box_h
    for a, b in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
        paint_capsule(bg, a, b, 3.0, WALL_RGB)
    paint_capsule(bg, (div_x, y0), (div_x, door[0]), 3.0, WALL_RGB)
    paint_capsule(bg, (div_x, door[1]), (div_x, y1), 3.0, WALL_RGB)
    return bg
