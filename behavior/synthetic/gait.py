"""Gait: a bottom-up (CatWalk / fTIR-like) view of a mouse walking left to right across a walkway.

Physics of the ground truth
---------------------------
The body moves at a constant ``speed_mm_s``. Each paw ``p`` repeats a cycle of duration
``T_p = stride_length_mm[p] / speed_mm_s``: a stance of ``stance_duration_s[p]`` (the paw is
stationary on the glass; its keypoint does not move by a single bit) then a swing of ``T_p - stance``
during which it moves forward by exactly one stride along a smooth (zero end-velocity) profile. Stance
``k`` of paw ``p`` starts at ``t = (k + phase_offset[p] + g) * T_p``, ``g`` being a start phase drawn
from the seed; the paw lands where its girdle will be at mid-stance (``fore_ahead_mm`` ahead of /
``hind_behind_mm`` behind the body centre), so consecutive stance positions are exactly
``stride_length_mm`` apart and each paw keeps pace with the body. The default phase offsets make a
trot-like walk: the diagonal pairs (left_fore + right_hind, right_fore + left_hind) are in phase and
the two pairs alternate (offset 0.5).

Rendering: a dark glass floor, the body faintly lit, and for every paw in stance a bright ellipse of
area ``print_area_mm2`` and grey level ``print_intensity`` (before blur and noise), long axis along the
walk (``print_aspect`` = long / short axis), centred exactly on the paw keypoint. Paws in swing are
drawn faint (below any print threshold). Frame ``i`` is in stance when its time ``i / fps`` falls in
``[start, start + stance)``; ``truth`` lists those frame intervals.

View: bottom-up (mirror image): walking towards +x, the animal's left paws appear at larger y.
Keypoints outside the frame keep their exact positions but get confidence 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from behavior.synthetic.base import Clip, make_clip, register_simulator
from behavior.synthetic.render import blotches, finish, grain, paint_capsule, paint_ellipse

__all__ = [
    "GAIT_KEYPOINTS",
    "GAIT_SKELETON",
    "PAWS",
    "SIDE_KEYPOINTS",
    "GaitParams",
    "GaitSession",
    "SideStepParams",
    "planted_ankle_angle_deg",
    "simulate_gait",
    "simulate_gait_session",
    "simulate_side_view",
    "walk_positions",
]

PAWS = ("left_fore", "right_fore", "left_hind", "right_hind")
GAIT_KEYPOINTS = ("snout", "left_fore", "right_fore", "left_hind", "right_hind", "tailbase")
GAIT_SKELETON = (
    ("snout", "left_fore"),
    ("snout", "right_fore"),
    ("left_fore", "left_hind"),
    ("right_fore", "right_hind"),
    ("left_hind", "tailbase"),
    ("right_hind", "tailbase"),
)

PawValues = float | Mapping[str, float]

DEFAULT_STRIDE_LENGTH_MM = {p: 50.0 for p in PAWS}
DEFAULT_STANCE_DURATION_S = {p: 0.2 for p in PAWS}
DEFAULT_PRINT_AREA_MM2 = {"left_fore": 10.0, "right_fore": 10.0, "left_hind": 14.0, "right_hind": 14.0}
DEFAULT_PRINT_INTENSITY = {"left_fore": 170.0, "right_fore": 170.0, "left_hind": 200.0, "right_hind": 200.0}
DEFAULT_PRINT_ASPECT = {"left_fore": 1.2, "right_fore": 1.2, "left_hind": 1.6, "right_hind": 1.6}
#: Trot-like walk: diagonal pairs in phase, the two pairs half a cycle apart.
DEFAULT_PHASE_OFFSET = {"left_fore": 0.0, "right_hind": 0.0, "right_fore": 0.5, "left_hind": 0.5}

FLOOR_RGB = (14.0, 16.0, 19.0)
BODY_RGB = (46.0, 27.0, 29.0)  # grey ~34: faint, below any print threshold
BELLY_RGB = (54.0, 33.0, 35.0)
SWING_PAW_RGB = (58.0, 40.0, 42.0)  # grey ~46
#: Lowest print intensity accepted, so prints always stand out from the faint body.
MIN_PRINT_INTENSITY = 80.0


def _per_paw(name: str, value: PawValues, default: Mapping[str, float]) -> dict[str, float]:
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(PAWS))
        if unknown:
            raise ValueError(f"{name}: expected paw names from {list(PAWS)}, got {unknown}")
        out = {p: float(value.get(p, default[p])) for p in PAWS}
    else:
        out = {p: float(value) for p in PAWS}
    bad = {p: v for p, v in out.items() if not math.isfinite(v)}
    if bad:
        raise ValueError(f"{name}: expected finite numbers, got {bad}")
    return out


@dataclass
class GaitParams:
    """Parameters of a gait clip. Per-paw values take a number (all paws) or a ``{paw: value}`` dict
    (paws left out keep their default).

    Attributes
    ----------
    stride_length_mm
        Distance between consecutive stance positions of a paw.
    stance_duration_s
        Time a paw stays on the glass per cycle (< cycle = stride / speed); duty cycle follows.
    print_area_mm2
        Area of the rendered print (an ellipse).
    print_intensity
        Grey level of the print, 80-255.
    print_aspect
        Long / short axis of the print ellipse (long axis along the walk).
    phase_offset
        Start of the paw's stance within the cycle, as a fraction of the cycle in [0, 1).
    speed_mm_s
        Body speed.
    px_per_mm, fps
        Camera scale and frame rate.
    duration_s
        Clip length; ``None`` = one traverse: the snout enters at the left edge and the tail base
        leaves at the right edge.
    fore_ahead_mm, hind_behind_mm
        Paw placement at mid-stance relative to the body centre (along the walk).
    fore_base_mm, hind_base_mm
        Base of support: lateral distance between the left and right paw of a girdle.
    snout_ahead_mm, tailbase_behind_mm
        Snout and tail base relative to the body centre.
    frame_width_px, frame_height_px
        Frame size (even numbers).
    """

    stride_length_mm: PawValues = field(default_factory=lambda: dict(DEFAULT_STRIDE_LENGTH_MM))
    stance_duration_s: PawValues = field(default_factory=lambda: dict(DEFAULT_STANCE_DURATION_S))
    print_area_mm2: PawValues = field(default_factory=lambda: dict(DEFAULT_PRINT_AREA_MM2))
    print_intensity: PawValues = field(default_factory=lambda: dict(DEFAULT_PRINT_INTENSITY))
    print_aspect: PawValues = field(default_factory=lambda: dict(DEFAULT_PRINT_ASPECT))
    phase_offset: PawValues = field(default_factory=lambda: dict(DEFAULT_PHASE_OFFSET))
    speed_mm_s: float = 150.0
    px_per_mm: float = 2.5
    fps: float = 60.0
    duration_s: float | None = None
    fore_ahead_mm: float = 22.0
    hind_behind_mm: float = 18.0
    fore_base_mm: float = 13.0
    hind_base_mm: float = 20.0
    snout_ahead_mm: float = 45.0
    tailbase_behind_mm: float = 35.0
    frame_width_px: int = 320
    frame_height_px: int = 112

    def __post_init__(self) -> None:
        self.stride_length_mm = _per_paw("stride_length_mm", self.stride_length_mm, DEFAULT_STRIDE_LENGTH_MM)
        self.stance_duration_s = _per_paw("stance_duration_s", self.stance_duration_s, DEFAULT_STANCE_DURATION_S)
        self.print_area_mm2 = _per_paw("print_area_mm2", self.print_area_mm2, DEFAULT_PRINT_AREA_MM2)
        self.print_intensity = _per_paw("print_intensity", self.print_intensity, DEFAULT_PRINT_INTENSITY)
        self.print_aspect = _per_paw("print_aspect", self.print_aspect, DEFAULT_PRINT_ASPECT)
        self.phase_offset = _per_paw("phase_offset", self.phase_offset, DEFAULT_PHASE_OFFSET)
        for name in ("speed_mm_s", "px_per_mm", "fps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"expected {name} > 0, got {getattr(self, name)}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError(f"expected duration_s > 0 or None, got {self.duration_s}")
        for p in PAWS:
            stride, stance = self.stride_length_mm[p], self.stance_duration_s[p]
            if stride <= 0 or stance <= 0:
                raise ValueError(f"expected stride_length_mm and stance_duration_s > 0 for {p}, got {stride}, {stance}")
            cycle = stride / self.speed_mm_s
            if stance >= cycle:
                raise ValueError(
                    f"expected stance_duration_s[{p}] < cycle duration {cycle:.3f} s "
                    f"(stride_length_mm / speed_mm_s), got {stance}"
                )
            if self.print_area_mm2[p] <= 0 or self.print_aspect[p] < 1:
                raise ValueError(
                    f"expected print_area_mm2 > 0 and print_aspect >= 1 for {p}, got "
                    f"{self.print_area_mm2[p]}, {self.print_aspect[p]}"
                )
            if not MIN_PRINT_INTENSITY <= self.print_intensity[p] <= 255:
                raise ValueError(
                    f"expected print_intensity in [{MIN_PRINT_INTENSITY:g}, 255] for {p}, got {self.print_intensity[p]}"
                )
            if not 0 <= self.phase_offset[p] < 1:
                raise ValueError(f"expected phase_offset in [0, 1) for {p}, got {self.phase_offset[p]}")
        if self.frame_width_px % 2 or self.frame_height_px % 2 or min(self.frame_width_px, self.frame_height_px) < 16:
            raise ValueError(f"expected even frame sizes >= 16 px, got {self.frame_width_px}x{self.frame_height_px}")
        half_width_mm = (self.frame_height_px - 1) / 2 / self.px_per_mm
        if max(self.fore_base_mm, self.hind_base_mm) / 2 + 3 > half_width_mm:
            raise ValueError(
                f"expected the base of support to fit the {2 * half_width_mm:.0f} mm wide "
                f"walkway, got fore {self.fore_base_mm} mm, hind {self.hind_base_mm} mm"
            )

    def print_axes_px(self, paw: str) -> tuple[float, float]:
        """Semi-axes (long, short) of the paw's print ellipse in pixels."""
        area_px = self.print_area_mm2[paw] * self.px_per_mm**2
        aspect = self.print_aspect[paw]
        return math.sqrt(area_px * aspect / math.pi), math.sqrt(area_px / (aspect * math.pi))


@register_simulator("gait")
def simulate_gait(params: GaitParams, rng: np.random.Generator) -> Clip:
    """Simulate a walkway run (see the module docstring for the exact ground truth)."""
    p = params
    ppm = p.px_per_mm
    w, h = p.frame_width_px, p.frame_height_px
    body_len_mm = p.snout_ahead_mm + p.tailbase_behind_mm
    duration = p.duration_s
    if duration is None:
        duration = (w / ppm + body_len_mm + 10.0) / p.speed_mm_s
    n = max(round(duration * p.fps), 2)
    t = np.arange(n) / p.fps
    body0_mm = -5.0 - p.snout_ahead_mm  # the snout starts just outside the left edge
    start_phase = float(rng.uniform(0.0, 1.0))

    def body_x_mm(time: np.ndarray | float) -> np.ndarray | float:
        return body0_mm + p.speed_mm_s * time

    pos, stance = walk_positions(p, t, start_phase, body0_mm)
    paw_truth: dict[str, Any] = {}
    for paw in PAWS:
        stride, S = p.stride_length_mm[paw], p.stance_duration_s[paw]
        T = stride / p.speed_mm_s
        j = GAIT_KEYPOINTS.index(paw)
        in_stance = stance[paw]
        y_px = float(pos[0, j, 1])
        a, b = p.print_axes_px(paw)
        intervals, positions, in_view = [], [], []
        edges = np.diff(in_stance.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
        for s0, s1 in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            x_px = float(pos[s0, j, 0])
            intervals.append([int(s0), int(s1 - 1)])
            positions.append([x_px, float(y_px)])
            in_view.append(bool(x_px - a >= 0 and x_px + a <= w - 1))
        paw_truth[paw] = {
            "stride_length_mm": stride,
            "stance_duration_s": S,
            "swing_duration_s": T - S,
            "cycle_duration_s": T,
            "duty_cycle": S / T,
            "print_area_mm2": p.print_area_mm2[paw],
            "print_area_px": p.print_area_mm2[paw] * ppm**2,
            "print_axes_px": [a, b],
            "print_intensity": p.print_intensity[paw],
            "phase_offset": p.phase_offset[paw],
            "stance_intervals": intervals,
            "stance_positions_px": positions,
            "stance_in_view": in_view,
        }
    body_x_px = body_x_mm(t) * ppm
    _check_prints_apart(p, pos, stance)

    frames = _render(p, rng, pos, stance, body_x_px)
    visible = (pos[..., 0] >= -0.5) & (pos[..., 0] <= w - 0.5) & (pos[..., 1] >= -0.5) & (pos[..., 1] <= h - 0.5)
    truth = {
        "speed_mm_s": p.speed_mm_s,
        "duration_s": n / p.fps,
        "gait_pattern": "trot-like walk: diagonal pairs in phase (see phase_offsets)",
        "phase_offsets": dict(p.phase_offset),
        "start_phase": start_phase,
        "view": "bottom-up mirror image, walking towards +x, the animal's left paws at larger y",
        "base_of_support_mm": {"fore": p.fore_base_mm, "hind": p.hind_base_mm},
        "paws": paw_truth,
        "stance_rule": "frame i is in stance when i/fps lies in [start, start + stance_duration_s); "
        "intervals are inclusive [start_frame, end_frame]",
    }
    return make_clip(
        assay="gait",
        frames=frames,
        positions_px=pos,
        keypoints=GAIT_KEYPOINTS,
        skeleton=GAIT_SKELETON,
        fps=p.fps,
        px_per_mm=ppm,
        truth=truth,
        confidence=visible.astype(float),
    )


def walk_positions(
    p: GaitParams, t: np.ndarray, start_phase: float, body0_mm: float
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Keypoint positions (pixels, ``(n, keypoints, 2)``) and per-paw stance masks of a straight walk.

    The body centre is at ``body0_mm + speed_mm_s * t`` along +x and at the frame's middle row; the
    snout and tail base ride with it. See the module docstring for the paws' cycle.
    """
    ppm = p.px_per_mm
    cy = (p.frame_height_px - 1) / 2
    n = len(t)
    pos = np.zeros((n, len(GAIT_KEYPOINTS), 2))
    stance = {}
    for paw in PAWS:
        stride, S = p.stride_length_mm[paw], p.stance_duration_s[paw]
        T = stride / p.speed_mm_s
        shift = p.phase_offset[paw] + start_phase
        k = np.floor(t / T - shift)
        t_start = (k + shift) * T
        tau = t - t_start
        in_stance = tau < S
        ahead = p.fore_ahead_mm if paw.endswith("fore") else -p.hind_behind_mm
        x_stance = body0_mm + p.speed_mm_s * (t_start + S / 2) + ahead  # landing point of stance k
        s = np.clip((tau - S) / (T - S), 0.0, 1.0)
        x_mm = np.where(in_stance, x_stance, x_stance + stride * (s - np.sin(2 * np.pi * s) / (2 * np.pi)))
        base = p.fore_base_mm if paw.endswith("fore") else p.hind_base_mm
        y_px = cy + (base / 2 * ppm if paw.startswith("left") else -base / 2 * ppm)
        j = GAIT_KEYPOINTS.index(paw)
        pos[:, j, 0] = x_mm * ppm
        pos[:, j, 1] = y_px
        stance[paw] = in_stance
    body_x_px = (body0_mm + p.speed_mm_s * t) * ppm
    pos[:, GAIT_KEYPOINTS.index("snout")] = np.c_[body_x_px + p.snout_ahead_mm * ppm, np.full(n, cy)]
    pos[:, GAIT_KEYPOINTS.index("tailbase")] = np.c_[body_x_px - p.tailbase_behind_mm * ppm, np.full(n, cy)]
    return pos, stance


def _check_prints_apart(p: GaitParams, pos: np.ndarray, stance: dict[str, np.ndarray]) -> None:
    """Raise if two prints on the glass at the same time would touch (their centroids would mix)."""
    for i, pa in enumerate(PAWS):
        for pb in PAWS[i + 1 :]:
            both = stance[pa] & stance[pb]
            if not both.any():
                continue
            ja, jb = GAIT_KEYPOINTS.index(pa), GAIT_KEYPOINTS.index(pb)
            dist = np.hypot(*(pos[both, ja] - pos[both, jb]).T)
            need = p.print_axes_px(pa)[0] + p.print_axes_px(pb)[0] + 2.0
            if dist.min() < need:
                raise ValueError(
                    f"expected the prints of {pa} and {pb} to stay apart, got centres {dist.min():.1f} px "
                    f"apart (need {need:.1f}); change stride_length_mm, fore_ahead_mm or hind_behind_mm"
                )


def _render(
    p: GaitParams, rng: np.random.Generator, pos: np.ndarray, stance: dict[str, np.ndarray], body_x_px: np.ndarray
) -> np.ndarray:
    w, h, ppm = p.frame_width_px, p.frame_height_px, p.px_per_mm
    cy = (h - 1) / 2
    bg = np.empty((h, w, 3), np.float32)
    bg[:] = FLOOR_RGB
    bg += (blotches(rng, h, w, scale_px=24, amp=2.5) + grain(rng, h, w, 1.2))[:, :, None]
    for y in (1, h - 2):  # the glowing edges of the glass plate
        bg[y, :] = (40.0, 44.0, 48.0)
    for _ in range(int(rng.integers(4, 10))):  # dust on the glass
        paint_ellipse(bg, rng.uniform((0, 3), (w, h - 3)), rng.uniform(0.6, 1.6, 2), 0.0, (52, 54, 56), 0.8)
    axes = {paw: p.print_axes_px(paw) for paw in PAWS}
    paw_idx = {paw: GAIT_KEYPOINTS.index(paw) for paw in PAWS}
    tail = GAIT_KEYPOINTS.index("tailbase")
    frames = np.empty((len(body_x_px), h, w, 3), np.uint8)
    for i, bx in enumerate(body_x_px):
        img = bg.copy()
        tx = pos[i, tail, 0]
        paint_capsule(img, (tx, cy), (tx - 55 * ppm, cy + 2 * ppm), 2.2 * ppm, BODY_RGB, 0.6)
        paint_ellipse(img, (bx + 36 * ppm, cy), (10 * ppm, 5.5 * ppm), 0.0, BODY_RGB)  # snout
        paint_ellipse(img, (bx + 24 * ppm, cy), (12 * ppm, 9 * ppm), 0.0, BODY_RGB)  # head
        paint_ellipse(img, (bx - 6 * ppm, cy), (31 * ppm, 12.5 * ppm), 0.0, BODY_RGB)  # trunk
        paint_ellipse(img, (bx - 4 * ppm, cy), (24 * ppm, 8 * ppm), 0.0, BELLY_RGB, 0.5)
        for paw in PAWS:
            x, y = pos[i, paw_idx[paw]]
            if stance[paw][i]:
                level = p.print_intensity[paw]
                paint_ellipse(img, (x, y), axes[paw], 0.0, (level, level, level))
            else:
                paint_ellipse(img, (x, y), (2.2 * ppm, 1.8 * ppm), 0.0, SWING_PAW_RGB, 0.9)
        frames[i] = finish(img, rng)
    return frames


# ------------------------------------------------------------------------------ freely moving session


@dataclass
class GaitSession:
    """A pose-only freely moving session: tracks, the planted bouts and stances, and the walk's parameters.

    Attributes
    ----------
    poses
        Poses dataset (``GAIT_KEYPOINTS``), confidence 0 where a paw is hidden (rearing).
    truth
        ``bouts``: inclusive frame intervals of the planted walking bouts; ``paws``: per paw its
        ``stance_intervals`` inside bouts; ``walk``: stride, stance, swing, cycle, duty and phase offsets.
    """

    poses: Any
    truth: dict[str, Any]


def simulate_gait_session(
    params: GaitParams | None = None,
    *,
    seed: int = 0,
    n_bouts: int = 3,
    bout_duration_s: float = 2.0,
    pause_s: float = 1.0,
    turn_s: float = 0.6,
    settle_s: float = 0.25,
    rear_s: float = 0.8,
    jitter_px: float = 0.0,
) -> GaitSession:
    """A freely moving (open-field) session: walking bouts separated by stops, rearing and turns.

    Each bout is the straight walk of ``params`` (:func:`walk_positions`) along a heading of its own. After
    a bout the animal stops (every keypoint still) for ``pause_s``; after the first bout it also rears
    (fore paws hidden: confidence 0, hind paws still) for ``rear_s``; then it turns on the spot by 60-150
    degrees over ``turn_s`` (every keypoint rotates about the body centre) and its keypoints move
    linearly to the next bout's first positions over ``settle_s``. ``jitter_px`` adds Gaussian noise to
    every tracked point. Nothing is rendered.
    """
    from pose_models.poses import from_numpy

    p = params if params is not None else GaitParams()
    rng = np.random.default_rng(seed)
    fps, ppm = p.fps, p.px_per_mm
    cy = (p.frame_height_px - 1) / 2
    n_bout = round(bout_duration_s * fps)
    segments: list[np.ndarray] = []
    conf: list[np.ndarray] = []
    bouts, stances = [], {paw: [] for paw in PAWS}
    heading = float(rng.uniform(0, 2 * np.pi))
    centre = np.array([0.0, 0.0])
    frame = 0
    k = len(GAIT_KEYPOINTS)
    for b in range(n_bouts):
        t = np.arange(n_bout) / fps
        local, st = walk_positions(p, t, float(rng.uniform(0, 1)), 0.0)
        local = local - np.array([0.0, cy])  # body centre at the origin at t = 0
        rot = np.array([[np.cos(heading), -np.sin(heading)], [np.sin(heading), np.cos(heading)]])
        walk = centre + local @ rot.T
        if segments:  # settle from the last pose into this bout's first one
            last = segments[-1][-1]
            m = max(1, round(settle_s * fps))
            f = (np.arange(1, m + 1) / (m + 1))[:, None, None]
            segments.append(last + f * (walk[0] - last))
            conf.append(np.ones((m, k)))
            frame += m
        segments.append(walk)
        conf.append(np.ones((n_bout, k)))
        bouts.append([frame, frame + n_bout - 1])
        for paw in PAWS:
            d = np.diff(np.r_[0, st[paw].astype(np.int8), 0])
            for s0, s1 in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1, strict=True):
                if s0 > 0 and s1 < n_bout - 1:
                    stances[paw].append([frame + int(s0), frame + int(s1)])
        frame += n_bout
        if b == n_bouts - 1:
            break
        end = walk[-1]
        centre = (end[GAIT_KEYPOINTS.index("snout")] + end[GAIT_KEYPOINTS.index("tailbase")]) / 2
        m = round(pause_s * fps)
        segments.append(np.repeat(end[None], m, axis=0))
        conf.append(np.ones((m, k)))
        frame += m
        if b == 0 and rear_s > 0:
            m = round(rear_s * fps)
            segments.append(np.repeat(end[None], m, axis=0))
            c = np.ones((m, k))
            c[:, [GAIT_KEYPOINTS.index("left_fore"), GAIT_KEYPOINTS.index("right_fore")]] = 0.0
            conf.append(c)
            frame += m
        turn = float(rng.uniform(60, 150)) * (1 if rng.random() < 0.5 else -1)
        m = max(2, round(turn_s * fps))
        ang = np.radians(turn) * (0.5 - 0.5 * np.cos(np.pi * np.arange(1, m + 1) / m))
        c, s_ = np.cos(ang)[:, None], np.sin(ang)[:, None]
        rel = end - centre
        x = centre[0] + c * rel[None, :, 0] - s_ * rel[None, :, 1]
        y = centre[1] + s_ * rel[None, :, 0] + c * rel[None, :, 1]
        segments.append(np.stack([x, y], axis=-1))
        conf.append(np.ones((m, k)))
        frame += m
        heading += np.radians(turn)
    pos = np.concatenate(segments)
    cf = np.concatenate(conf)
    if jitter_px > 0:
        pos = pos + rng.normal(0.0, jitter_px, pos.shape)
    pos = pos + np.array([2000.0, 2000.0])  # keep coordinates positive (an arena far from the origin)
    poses = from_numpy(
        pos.transpose(0, 2, 1)[..., None],
        cf[:, :, None],
        keypoint_names=list(GAIT_KEYPOINTS),
        fps=fps,
        source_software="painbattery-synthetic",
        skeleton=[list(e) for e in GAIT_SKELETON],
    )
    walk_truth = {
        paw: {
            "stride_length_mm": p.stride_length_mm[paw],
            "stance_duration_s": p.stance_duration_s[paw],
            "swing_duration_s": p.stride_length_mm[paw] / p.speed_mm_s - p.stance_duration_s[paw],
            "cycle_duration_s": p.stride_length_mm[paw] / p.speed_mm_s,
            "duty_cycle": p.stance_duration_s[paw] / (p.stride_length_mm[paw] / p.speed_mm_s),
            "phase_offset": p.phase_offset[paw],
        }
        for paw in PAWS
    }
    truth = {
        "fps": fps,
        "px_per_mm": ppm,
        "n_frames": len(pos),
        "speed_mm_s": p.speed_mm_s,
        "base_of_support_mm": {"fore": p.fore_base_mm, "hind": p.hind_base_mm},
        "bouts": bouts,
        "paws": {paw: {**walk_truth[paw], "stance_intervals": stances[paw]} for paw in PAWS},
    }
    return GaitSession(poses=poses, truth=truth)


# ------------------------------------------------------------------------------------------ side view

SIDE_KEYPOINTS = (
    "snout",
    "fore_paw",
    "wrist",
    "elbow",
    "lower_shoulder",
    "upper_shoulder",
    "iliac_crest",
    "hip",
    "knee",
    "ankle",
    "hind_paw",
    "tailbase",
)


@dataclass
class SideStepParams:
    """A side view of a mouse stepping along a beam: its near hind and fore paw and their joints.

    Each paw repeats a step cycle of ``stride_length_mm / speed_mm_s``: a stance of ``stance_duration_s``
    (the paw stands exactly still on the floor line) then a swing that moves it forward by one stride on a
    smooth (zero end-velocity) profile, lifted ``swing_height_mm`` at mid-swing. Stance ``k`` of the hind
    paw starts at ``(k + start_phase) * cycle``, the fore paw's ``fore_phase`` cycles later. The floor
    line is ``y = floor_y_px + floor_slope * x`` (image y grows downwards; the scene is rotated onto it).
    The ankle angle is planted: :func:`planted_ankle_angle_deg` of the phase from lift-off (the knee sits
    at that angle from the ankle-paw segment); other joints follow rigidly. ``direction`` ``right_to_left`` mirrors x.
    """

    fps: float = 100.0
    px_per_mm: float = 4.0
    duration_s: float = 3.0
    speed_mm_s: float = 150.0
    stride_length_mm: float = 45.0
    stance_duration_s: float = 0.18
    swing_height_mm: float = 5.0
    start_phase: float = 0.2
    fore_phase: float = 0.5
    floor_y_px: float = 600.0
    floor_slope: float = 0.01
    direction: str = "left_to_right"
    noise_px: float = 0.0

    def __post_init__(self) -> None:
        if not (self.fps > 0 and self.px_per_mm > 0 and self.speed_mm_s > 0 and self.stride_length_mm > 0):
            raise ValueError("expected fps, px_per_mm, speed_mm_s and stride_length_mm > 0")
        if not (0 < self.stance_duration_s < self.stride_length_mm / self.speed_mm_s):
            raise ValueError(
                f"expected 0 < stance_duration_s < the step cycle ({self.stride_length_mm / self.speed_mm_s:g} s), "
                f"got {self.stance_duration_s}"
            )
        if self.direction not in ("left_to_right", "right_to_left"):
            raise ValueError(f"expected direction left_to_right or right_to_left, got {self.direction!r}")


def planted_ankle_angle_deg(phase: np.ndarray) -> np.ndarray:
    """The ankle angle planted at ``phase`` (0-1, from lift-off) of the step cycle: 90 + 30 sin(2 pi phase)."""
    return 90.0 + 30.0 * np.sin(2 * np.pi * np.asarray(phase, dtype=np.float64))


def _side_paw(p: SideStepParams, t: np.ndarray, offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward position (mm, world), height (mm) and phase from lift-off of one paw at times ``t``."""
    cycle = p.stride_length_mm / p.speed_mm_s
    swing = cycle - p.stance_duration_s
    eps = 1e-9  # frame times that fall on an event belong to the event's side
    k = np.floor(t / cycle - offset + eps)  # stance k starts at (k + offset) * cycle
    since = np.maximum(t - (k + offset) * cycle, 0.0)  # time since this cycle's touch-down
    in_stance = since < p.stance_duration_s - eps
    dt = 1.0 / p.fps
    # the swing profile runs from the last stance frame to the next touch-down, so the first swing frame
    # has moved and the paw lands on the touch-down frame: stance frames are exactly the still ones
    s = np.clip((since - p.stance_duration_s + dt) / (swing + dt), 0.0, 1.0)
    fwd = (k + np.where(in_stance, 0.0, (1 - np.cos(np.pi * s)) / 2)) * p.stride_length_mm
    fwd = fwd + offset * p.stride_length_mm
    height = np.where(in_stance, 0.0, p.swing_height_mm * np.sin(np.pi * s))
    phase = np.where(in_stance, (swing + since) / cycle, (since - p.stance_duration_s) / cycle)
    return fwd, height, phase


def simulate_side_view(p: SideStepParams, rng: np.random.Generator | None = None) -> tuple[Any, Any]:
    """Side-view poses (keypoints :data:`SIDE_KEYPOINTS`) and the planted step cycles.

    Returns
    -------
    poses
        Poses dataset (pixels, confidence 1).
    truth
        One row per planted step cycle of each paw (``paw`` hind / fore) whose two stances lie wholly in the
        clip (the first one starting after frame 0): ``start_frame`` (lift-off),
        ``touchdown_frame``, ``end_frame`` (last stance frame), ``swing_duration_s``, ``stance_duration_s``.
        Frame ``i`` is in stance when ``i / fps`` falls in a stance interval.
    """
    import pandas as pd

    from pose_models.poses import from_numpy

    n = round(p.duration_s * p.fps)
    t = np.arange(n) / p.fps
    cycle = p.stride_length_mm / p.speed_mm_s
    body_mm = 60.0 + p.speed_mm_s * t  # body centre, world mm (it starts 60 mm in)
    s_mm = p.px_per_mm

    ca, sa = np.cos(np.arctan(p.floor_slope)), np.sin(np.arctan(p.floor_slope))

    def image(fwd_mm: np.ndarray, up_mm: np.ndarray) -> np.ndarray:
        # along the floor line (a rotation: angles are kept) and up from it; image y grows downwards
        x = 20.0 + (fwd_mm * ca + up_mm * sa) * s_mm
        y = p.floor_y_px + 20.0 * p.floor_slope + (fwd_mm * sa - up_mm * ca) * s_mm
        if p.direction == "right_to_left":
            x = 2000.0 - x
        return np.stack([x, y], axis=1)

    pts: dict[str, np.ndarray] = {}
    truth_rows = []
    for paw, offset, base_mm in (("hind", p.start_phase, 30.0), ("fore", p.start_phase + p.fore_phase, 85.0)):
        fwd, h, phase = _side_paw(p, t, offset)
        fwd = fwd + base_mm
        paw_xy = image(fwd, h)
        ang = np.radians(planted_ankle_angle_deg(phase))
        # ankle 6 mm behind and 5 mm above the paw; knee 12 mm from the ankle at the planted angle from ankle->paw
        ankle_fwd, ankle_up = fwd - 6.0, h + 5.0
        u = np.array([6.0, -5.0]) / np.hypot(6.0, 5.0)  # ankle -> paw, (forward, up)
        knee_dir = np.stack([u[0] * np.cos(ang) - u[1] * np.sin(ang), u[0] * np.sin(ang) + u[1] * np.cos(ang)], axis=1)
        knee_fwd, knee_up = ankle_fwd + 12.0 * knee_dir[:, 0], ankle_up + 12.0 * knee_dir[:, 1]
        upper_fwd, upper_up = knee_fwd - 4.0, knee_up + 10.0
        top_fwd, top_up = upper_fwd - 6.0, upper_up + 6.0
        names = ("hind_paw", "ankle", "knee", "hip", "iliac_crest") if paw == "hind" else (
            "fore_paw", "wrist", "elbow", "lower_shoulder", "upper_shoulder"
        )
        for name, (f_, u_) in zip(
            names,
            ((fwd, h), (ankle_fwd, ankle_up), (knee_fwd, knee_up), (upper_fwd, upper_up), (top_fwd, top_up)),
            strict=True,
        ):
            pts[name] = paw_xy if name.endswith("_paw") else image(f_, u_)
        k0 = int(np.ceil(-offset)) - 1
        k = k0
        while True:
            td = (k + offset) * cycle  # touch-down of stance k
            lift_prev = td - (cycle - p.stance_duration_s)
            end_t = td + p.stance_duration_s
            # a cycle whose stances are both whole in the clip (the previous one starting after frame 0)
            if (td - cycle) * p.fps >= 1 and end_t <= t[-1]:
                first = int(np.ceil(lift_prev * p.fps - 1e-9))
                tdf = int(np.ceil(td * p.fps - 1e-9))
                endf = int(np.ceil(end_t * p.fps - 1e-9)) - 1
                truth_rows.append(
                    {
                        "paw": paw,
                        "start_frame": first,
                        "touchdown_frame": tdf,
                        "end_frame": endf,
                        "swing_duration_s": cycle - p.stance_duration_s,
                        "stance_duration_s": p.stance_duration_s,
                    }
                )
            if end_t > t[-1]:
                break
            k += 1
    pts["snout"] = image(body_mm + 45.0, np.full(n, 15.0))
    pts["tailbase"] = image(body_mm - 35.0, np.full(n, 15.0))
    pos = np.stack([pts[k] for k in SIDE_KEYPOINTS], axis=2)  # (time, space, keypoints)
    if p.noise_px > 0:
        rng = rng or np.random.default_rng(0)
        pos = pos + rng.normal(0.0, p.noise_px, pos.shape)
    poses = from_numpy(pos[..., None], keypoint_names=list(SIDE_KEYPOINTS), fps=p.fps, source_software="synthetic")
    return poses, pd.DataFrame(truth_rows)
