"""Evoked assays: Hargreaves (radiant heat) and von Frey (filaments), bottom-up view of the hind paws.

Scene
-----
A mouse sits on a glass floor (Hargreaves) or a wire mesh (von Frey), filmed from below (mirror
image: head towards the top of the frame, the animal's left hind paw on the image's right). The
hind paws rest at fixed positions; their keypoints (``left_hind``, ``right_hind``, the centre of the
plantar pad) and ``tailbase`` do not move at all except during a withdrawal.

Withdrawal (both assays)
------------------------
At ``withdrawal_frame`` the stimulated paw lifts: its keypoint moves towards the head (-y) by
``withdrawal_mm`` with an exponential approach (time constant 1.2 frames, so it has already moved
almost half-way on ``withdrawal_frame`` itself), the rendered paw shrinks and darkens (out of contact),
stays lifted ``lift_hold_s``, then returns in a straight line over ``lift_return_s`` to exactly its
resting position. ``withdrawal_frame = onset_frame + max(1, round(latency_s * fps))``.

Hargreaves: a bright spot (the radiant heat source, visible light) switches on under the stimulated
paw at ``onset_frame`` and off at the withdrawal frame, or at the cut-off
(``onset_frame + round(cutoff_s * fps)``) when the latency reaches the cut-off (a censored trial, no
withdrawal). The spot lies inside ``roi`` (``[x, y, width, height]``, one per side).

von Frey: a filament touches the plantar surface from ``onset_frame`` (event ``stimulus_on`` with
``intensity`` = filament grams) until the withdrawal (response ``X``) or for ``application_s``
(response ``O``, no movement).

Trials follow each other: next onset = max(stimulus off, paw back at rest) + ``inter_trial_s`` (a
real protocol waits minutes between trials; the clip compresses that wait).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from behavior.session import Event
from behavior.synthetic.base import Clip, make_clip, register_simulator
from behavior.synthetic.render import (
    blotches,
    ellipse_coverage,
    finish,
    grain,
    paint_capsule,
    paint_ellipse,
)

__all__ = [
    "EVOKED_KEYPOINTS",
    "EVOKED_SKELETON",
    "HargreavesParams",
    "VonFreyParams",
    "simulate_hargreaves",
    "simulate_von_frey",
]

Side = Literal["left", "right"]
SIDES = ("left", "right")
EVOKED_KEYPOINTS = ("left_hind", "right_hind", "tailbase")
EVOKED_SKELETON = (("left_hind", "tailbase"), ("right_hind", "tailbase"))

LIFT_TAU_FRAMES = 1.2
FUR_RGB = (50.0, 46.0, 49.0)
PAW_RGB = (206.0, 152.0, 150.0)
SPOT_RGB = (255.0, 246.0, 228.0)  # the source's visible light saturates the camera
FILAMENT_RGB = (232.0, 222.0, 186.0)


@dataclass
class _SceneParams:
    """Shared scene parameters (see each assay's docstring)."""

    side: Side = "left"
    trial_sides: Sequence[Side] | None = None
    first_onset_s: float = 1.0
    inter_trial_s: float = 1.0
    fps: float = 15.0
    px_per_mm: float = 3.0
    withdrawal_mm: float = 7.0
    lift_hold_s: float = 0.8
    lift_return_s: float = 0.4
    end_pad_s: float = 1.0
    frame_width_px: int = 160
    frame_height_px: int = 120

    def _check_scene(self, n_trials: int) -> list[str]:
        if self.side not in SIDES:
            raise ValueError(f"expected side in {SIDES}, got {self.side!r}")
        sides = list(self.trial_sides) if self.trial_sides is not None else [self.side] * n_trials
        if len(sides) != n_trials or any(s not in SIDES for s in sides):
            raise ValueError(f"expected trial_sides with {n_trials} values from {SIDES}, got {self.trial_sides}")
        for name in ("fps", "px_per_mm", "withdrawal_mm", "lift_hold_s", "lift_return_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"expected {name} > 0, got {getattr(self, name)}")
        for name in ("first_onset_s", "inter_trial_s", "end_pad_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"expected {name} >= 0, got {getattr(self, name)}")
        if self.frame_width_px % 2 or self.frame_height_px % 2:
            raise ValueError(f"expected even frame sizes, got {self.frame_width_px}x{self.frame_height_px}")
        if n_trials < 1:
            raise ValueError("expected at least one trial, got none")
        return sides


@dataclass
class HargreavesParams(_SceneParams):
    """Parameters of a Hargreaves clip.

    Attributes
    ----------
    latencies_s
        Withdrawal latency of each trial (s after heat onset). A value >= ``cutoff_s``, ``inf`` or
        ``None`` is a censored trial: the paw never moves and the heat stops at the cut-off.
    cutoff_s
        Heat cut-off.
    side, trial_sides
        Stimulated paw of every trial (``side``), or one side per trial.
    first_onset_s, inter_trial_s
        Time of the first onset; pause between one trial's end and the next onset.
    fps, px_per_mm
        Camera frame rate and scale.
    withdrawal_mm, lift_hold_s, lift_return_s
        Withdrawal movement: distance, time held lifted, time to put the paw back.
    spot_radius_mm
        Radius of the heat-source light spot.
    """

    latencies_s: Sequence[float | None] = (8.0,)
    cutoff_s: float = 20.0
    spot_radius_mm: float = 3.0

    def __post_init__(self) -> None:
        lat = [math.inf if v is None else float(v) for v in self.latencies_s]
        if any(math.isnan(v) or v <= 0 for v in lat):
            raise ValueError(f"expected latencies_s > 0 (inf or None = never), got {list(self.latencies_s)}")
        self.latencies_s = lat
        if not self.cutoff_s > 0 or not self.spot_radius_mm > 0:
            raise ValueError(f"expected cutoff_s and spot_radius_mm > 0, got {self.cutoff_s}, {self.spot_radius_mm}")
        self._check_scene(len(lat))


@dataclass
class VonFreyParams(_SceneParams):
    """Parameters of a von Frey clip.

    Attributes
    ----------
    filaments_g
        Filament force of each trial, grams.
    responses
        ``"X"`` (withdrawal) or ``"O"`` (no response) for each trial.
    response_latency_s
        Latency of the withdrawal after filament contact (one value, or one per trial).
    application_s
        How long the filament stays on a paw that does not respond.
    """

    filaments_g: Sequence[float] = (2.0, 4.0, 2.0, 1.0, 2.0)
    responses: Sequence[str] = ("O", "X", "O", "O", "X")
    response_latency_s: float | Sequence[float] = 0.4
    application_s: float = 1.5

    def __post_init__(self) -> None:
        n = len(self.filaments_g)
        self.filaments_g = [float(f) for f in self.filaments_g]
        self.responses = [str(r).upper() for r in self.responses]
        if any(not f > 0 for f in self.filaments_g):
            raise ValueError(f"expected filaments_g > 0, got {self.filaments_g}")
        if len(self.responses) != n or any(r not in ("X", "O") for r in self.responses):
            raise ValueError(f"expected {n} responses, each 'X' or 'O', got {list(self.responses)}")
        lat = self.response_latency_s
        lat = [float(lat)] * n if isinstance(lat, (int, float)) else [float(v) for v in lat]
        if len(lat) != n or any(not 0 < v < self.application_s for v in lat):
            raise ValueError(
                f"expected {n} response_latency_s values in (0, application_s={self.application_s}), got "
                f"{self.response_latency_s}"
            )
        self.response_latency_s = lat
        self._check_scene(n)


# ------------------------------------------------------------------------------------------ scene


class _PawScene:
    """Static background, resting paw positions and the per-frame renderer of both evoked assays."""

    def __init__(self, p: _SceneParams, rng: np.random.Generator, *, mesh: bool) -> None:
        self.p = p
        w, h, ppm = p.frame_width_px, p.frame_height_px, p.px_per_mm
        self.cx = (w - 1) / 2
        paw_y = h * 0.68
        half_base = 9.0 * ppm
        # Mirror image: the animal's left hind paw is on the image's right.
        self.rest = {"left": np.array([self.cx + half_base, paw_y]), "right": np.array([self.cx - half_base, paw_y])}
        self.tailbase = np.array([self.cx, h * 0.84])
        self.paw_axes = (2.3 * ppm, 5.0 * ppm)
        bg = np.empty((h, w, 3), np.float32)
        bg[:] = (78.0, 84.0, 92.0) if not mesh else (64.0, 66.0, 70.0)
        bg += (blotches(rng, h, w, scale_px=30, amp=5.0) + grain(rng, h, w, 1.5))[:, :, None]
        if mesh:
            step = 5.0 * ppm
            off = rng.uniform(0, step, 2)
            for x in np.arange(off[0], w, step):
                paint_capsule(bg, (x, -2), (x, h + 2), 1.1, (112.0, 110.0, 104.0), 0.6)
            for y in np.arange(off[1], h, step):
                paint_capsule(bg, (-2, y), (w + 2, y), 1.1, (112.0, 110.0, 104.0), 0.6)
        # The animal from below: trunk, a lighter belly, the tail.
        tx, ty = self.tailbase
        tail_end = (tx + rng.uniform(-12, 12) * ppm / 3, h + 4)
        paint_capsule(bg, (tx, ty), tail_end, 1.6 * ppm, (92.0, 78.0, 82.0))
        paint_ellipse(bg, (self.cx, h * 0.30), (14.0 * ppm, 0.60 * h), 0.0, FUR_RGB)
        paint_ellipse(bg, (self.cx, h * 0.30), (9.0 * ppm, 0.48 * h), 0.0, (62.0, 57.0, 60.0), 0.6)
        for dx in (-1, 1):  # fore paws, tucked under the chest
            paint_ellipse(bg, (self.cx + dx * 4.5 * ppm, h * 0.12), (1.6 * ppm, 2.4 * ppm), 0.0, PAW_RGB, 0.8)
        fur = ellipse_coverage(h, w, (self.cx, h * 0.30), (14.0 * ppm, 0.60 * h))
        if fur is not None:  # fur texture on the body only
            rows, cols, cov = fur
            bg[rows, cols] += (cov * grain(rng, *cov.shape, 5.0))[:, :, None]
        self.bg = cv2.GaussianBlur(bg, (0, 0), 0.8)
        self.toe_offsets = [
            np.array([dx, dy]) * ppm for dx, dy in ((-2.4, -5.2), (-1.1, -6.6), (0.4, -7.0), (1.8, -6.4), (2.8, -4.8))
        ]

    def roi(self, side: str, radius_mm: float) -> list[int]:
        """Integer ``[x, y, width, height]`` around the heat spot under the resting ``side`` paw."""
        r = radius_mm * self.p.px_per_mm
        x, y = self.rest[side]
        x0, y0 = int(np.floor(x - r)), int(np.floor(y - r))
        x1, y1 = int(np.ceil(x + r)), int(np.ceil(y + r))
        return [x0, y0, x1 - x0 + 1, y1 - y0 + 1]

    def lift_profile(self, n_frames: int, withdrawal_frame: int) -> tuple[np.ndarray, int]:
        """Lift fraction (0 = on the floor, ~1 = fully lifted) per frame and the frame the paw is back."""
        fps = self.p.fps
        hold = max(round(self.p.lift_hold_s * fps), 1)
        ret = max(round(self.p.lift_return_s * fps), 1)
        lift = np.zeros(n_frames)
        j = np.arange(hold)
        up = 1.0 - np.exp(-(j + 1) / LIFT_TAU_FRAMES)
        back = up[-1] * (1.0 - np.arange(1, ret + 1) / ret)
        prof = np.r_[up, back]  # ends at exactly 0: the paw is back at rest
        end = withdrawal_frame + len(prof)
        lo, hi = withdrawal_frame, min(end, n_frames)
        if hi > lo:
            lift[lo:hi] = prof[: hi - lo]
        return lift, end

    def positions(self, lift: dict[str, np.ndarray]) -> np.ndarray:
        n = len(lift["left"])
        pos = np.zeros((n, len(EVOKED_KEYPOINTS), 2))
        d = self.p.withdrawal_mm * self.p.px_per_mm
        for side in SIDES:
            j = EVOKED_KEYPOINTS.index(f"{side}_hind")
            pos[:, j] = self.rest[side]
            pos[:, j, 1] -= d * lift[side]
        pos[:, EVOKED_KEYPOINTS.index("tailbase")] = self.tailbase
        return pos

    def render(
        self,
        rng: np.random.Generator,
        pos: np.ndarray,
        lift: dict[str, np.ndarray],
        spot: list[tuple[np.ndarray, float]] | None = None,
        filament: list[tuple[str, float] | None] | None = None,
    ) -> np.ndarray:
        """Render all frames; ``spot[i]`` = (centre, radius px) of a light, ``filament[i]`` = (side, grams)."""
        n = pos.shape[0]
        h, w = self.bg.shape[:2]
        frames = np.empty((n, h, w, 3), np.uint8)
        at_rest = self.bg.copy()  # most frames show both paws resting: draw them once
        for side in SIDES:
            self._paw(at_rest, self.rest[side], side, 0.0)
        for i in range(n):
            if lift["left"][i] == 0 and lift["right"][i] == 0:
                img = at_rest.copy()
            else:
                img = self.bg.copy()
                for side in SIDES:
                    self._paw(img, pos[i, EVOKED_KEYPOINTS.index(f"{side}_hind")], side, lift[side][i])
            if filament is not None and filament[i] is not None:
                side, grams = filament[i]
                self._filament(img, pos[i, EVOKED_KEYPOINTS.index(f"{side}_hind")], side, grams)
            if spot is not None and spot[i] is not None:
                centre, r = spot[i]
                paint_ellipse(img, centre, (r * 1.7, r * 1.7), 0.0, SPOT_RGB, 0.5)
                paint_ellipse(img, centre, (r * 1.2, r * 1.2), 0.0, SPOT_RGB, 0.97)
            frames[i] = finish(img, rng)
        return frames

    def _paw(self, img: np.ndarray, c: np.ndarray, side: str, lam: float) -> None:
        """Plantar pad and toes centred on ``c``; ``lam`` = lift fraction (smaller, darker when lifted)."""
        a0, b0 = self.paw_axes
        scale = 1.0 - 0.45 * lam
        color = tuple(np.asarray(PAW_RGB) + 0.55 * lam * (np.asarray(FUR_RGB) - np.asarray(PAW_RGB)))
        paint_ellipse(img, c, (b0 * scale, a0 * scale), 90.0, color)
        sign = 1.0 if side == "left" else -1.0  # toes spread outwards (mirror image)
        for off in self.toe_offsets:
            toe = c + np.array([sign * off[0], off[1]]) * scale
            paint_ellipse(img, toe, (0.9 * self.p.px_per_mm * scale,) * 2, 0.0, color)

    def _filament(self, img: np.ndarray, tip: np.ndarray, side: str, grams: float) -> None:
        h = img.shape[0]
        sign = 1.0 if side == "left" else -1.0
        base = np.array([tip[0] + sign * 14.0 * self.p.px_per_mm, h + 6.0])
        # A stiffer filament bends less; draw the bent nylon as a quadratic curve.
        bend = 4.0 * self.p.px_per_mm / (1.0 + math.log10(1.0 + grams))
        mid = (base + tip) / 2 + np.array([-sign * bend, 0.0])
        pts = [(1 - s) ** 2 * base + 2 * (1 - s) * s * mid + s**2 * tip for s in np.linspace(0, 1, 7)]
        for q0, q1 in itertools.pairwise(pts):
            paint_capsule(img, q0, q1, 1.3, FILAMENT_RGB)
        paint_capsule(img, base, base + np.array([sign * 6.0, 0.0]), 6.0, (40.0, 40.0, 44.0))


def _finish_clip(
    assay: str,
    p: _SceneParams,
    scene: _PawScene,
    rng: np.random.Generator,
    lift: dict[str, np.ndarray],
    truth: dict[str, Any],
    events: list[Event],
    spot: Any = None,
    filament: Any = None,
) -> Clip:
    pos = scene.positions(lift)
    frames = scene.render(rng, pos, lift, spot=spot, filament=filament)
    truth = {
        "view": "bottom-up mirror image, head towards -y, the animal's left hind paw on the image's right",
        "rest_positions_px": {f"{s}_hind": scene.rest[s].tolist() for s in SIDES},
        "withdrawal_mm": p.withdrawal_mm,
        "duration_s": len(frames) / p.fps,
        **truth,
    }
    return make_clip(
        assay=assay,
        frames=frames,
        positions_px=pos,
        keypoints=EVOKED_KEYPOINTS,
        skeleton=EVOKED_SKELETON,
        fps=p.fps,
        px_per_mm=p.px_per_mm,
        truth=truth,
        events=events,
        side=p.side,
    )


def _timeline(p: _SceneParams, scene: _PawScene, trials: list[dict[str, Any]]) -> tuple[int, dict[str, np.ndarray]]:
    """Place trials in time. Each trial dict has ``side``, ``off_after`` (frames the stimulus stays
    on if no withdrawal) and ``withdraw_after`` (frames to withdrawal or None); fills in frames."""
    fps = p.fps
    t = round(p.first_onset_s * fps)
    hold_ret = max(round(p.lift_hold_s * fps), 1) + max(round(p.lift_return_s * fps), 1)
    for tr in trials:
        tr["onset_frame"] = t
        if tr["withdraw_after"] is not None:
            tr["withdrawal_frame"] = t + tr["withdraw_after"]
            tr["off_frame"] = tr["withdrawal_frame"]
            end = tr["withdrawal_frame"] + hold_ret
        else:
            tr["withdrawal_frame"] = None
            tr["off_frame"] = t + tr["off_after"]
            end = tr["off_frame"]
        t = max(end, tr["off_frame"]) + round(p.inter_trial_s * fps)
    n = t - round(p.inter_trial_s * fps) + round(p.end_pad_s * fps) + 1
    lift = {s: np.zeros(n) for s in SIDES}
    for tr in trials:
        if tr["withdrawal_frame"] is not None:
            prof, _ = scene.lift_profile(n, tr["withdrawal_frame"])
            lift[tr["side"]] = np.maximum(lift[tr["side"]], prof)
    return n, lift


@register_simulator("hargreaves")
def simulate_hargreaves(params: HargreavesParams, rng: np.random.Generator) -> Clip:
    """Simulate Hargreaves trials (see the module docstring for the exact ground truth)."""
    p = params
    sides = p._check_scene(len(p.latencies_s))
    scene = _PawScene(p, rng, mesh=False)
    cutoff_frames = max(round(p.cutoff_s * p.fps), 1)
    trials = []
    for side, lat in zip(sides, p.latencies_s, strict=True):
        lat_frames = max(round(lat * p.fps), 1) if math.isfinite(lat) else None
        censored = lat_frames is None or lat >= p.cutoff_s or lat_frames >= cutoff_frames
        trials.append(
            {
                "side": side,
                "latency_set_s": lat,
                "censored": censored,
                "off_after": cutoff_frames,
                "withdraw_after": None if censored else lat_frames,
            }
        )
    n, lift = _timeline(p, scene, trials)
    r_px = p.spot_radius_mm * p.px_per_mm
    spot: list[Any] = [None] * n
    events, out = [], []
    for k, tr in enumerate(trials):
        for i in range(tr["onset_frame"], tr["off_frame"]):
            spot[i] = (scene.rest[tr["side"]], r_px)
        events.append(Event(time_s=tr["onset_frame"] / p.fps, kind="stimulus_on", side=tr["side"]))
        events.append(Event(time_s=tr["off_frame"] / p.fps, kind="stimulus_off", side=tr["side"]))
        w = tr["withdrawal_frame"]
        out.append(
            {
                "trial": k,
                "side": tr["side"],
                "onset_frame": tr["onset_frame"],
                "onset_s": tr["onset_frame"] / p.fps,
                "light_off_frame": tr["off_frame"],
                "withdrawal_frame": w,
                "latency_set_s": tr["latency_set_s"],
                "latency_s": (w - tr["onset_frame"]) / p.fps if w is not None else float(p.cutoff_s),
                "censored": tr["censored"],
                "roi": scene.roi(tr["side"], p.spot_radius_mm),
            }
        )
    truth = {
        "cutoff_s": p.cutoff_s,
        "roi": scene.roi(p.side, p.spot_radius_mm),
        "roi_by_side": {s: scene.roi(s, p.spot_radius_mm) for s in SIDES},
        "latency_rule": "latency_s = (withdrawal_frame - onset_frame) / fps; censored trials report cutoff_s",
        "trials": out,
    }
    return _finish_clip("hargreaves", p, scene, rng, lift, truth, events, spot=spot)


@register_simulator("von_frey")
def simulate_von_frey(params: VonFreyParams, rng: np.random.Generator) -> Clip:
    """Simulate von Frey filament trials (see the module docstring for the exact ground truth)."""
    p = params
    sides = p._check_scene(len(p.filaments_g))
    scene = _PawScene(p, rng, mesh=True)
    app_frames = max(round(p.application_s * p.fps), 1)
    trials = []
    for side, g, resp, lat in zip(sides, p.filaments_g, p.responses, p.response_latency_s, strict=True):
        trials.append(
            {
                "side": side,
                "filament_g": g,
                "response": resp,
                "off_after": app_frames,
                "withdraw_after": max(round(lat * p.fps), 1) if resp == "X" else None,
            }
        )
    n, lift = _timeline(p, scene, trials)
    filament: list[Any] = [None] * n
    events, out = [], []
    for k, tr in enumerate(trials):
        for i in range(tr["onset_frame"], tr["off_frame"]):
            filament[i] = (tr["side"], tr["filament_g"])
        events.append(
            Event(time_s=tr["onset_frame"] / p.fps, kind="stimulus_on", side=tr["side"], intensity=tr["filament_g"])
        )
        events.append(
            Event(time_s=tr["off_frame"] / p.fps, kind="stimulus_off", side=tr["side"], intensity=tr["filament_g"])
        )
        w = tr["withdrawal_frame"]
        out.append(
            {
                "trial": k,
                "side": tr["side"],
                "filament_g": tr["filament_g"],
                "response": tr["response"],
                "onset_frame": tr["onset_frame"],
                "onset_s": tr["onset_frame"] / p.fps,
                "off_frame": tr["off_frame"],
                "withdrawal_frame": w,
                "latency_s": (w - tr["onset_frame"]) / p.fps if w is not None else None,
            }
        )
    truth = {"application_s": p.application_s, "trials": out}
    return _finish_clip("von_frey", p, scene, rng, lift, truth, events, filament=filament)
