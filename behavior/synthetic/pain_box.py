"""Bottom-up pain box: a LUPE-style keypoint track with planted behaviour bouts of known frames.

The camera films the animal through the floor; keypoints (configs/skeletons/pain_box.yaml): ``snout``,
the four paws ``paw_lf, paw_rf, paw_lh, paw_rh`` (the animal's left/right), ``centre`` and ``tail_base``.
The simulator writes poses (the video is a small dot rendering of the keypoints, only so the clip has
a video like every other; nothing scores it).

Ground truth
------------
The session is a sequence of bouts that cover every frame; each bout's frames are exactly the frames
labelled with its behaviour in ``truth["bouts"]`` (``behavior, start_frame, stop_frame`` inclusive, and
``paw`` = ``left``/``right`` for paw-directed behaviours). ``none`` bouts are slow exploration (walking at
0.3 body lengths/s with the head scanning). Planted signatures, in body lengths (BL) in the body frame:

- **still**: nothing moves but tracking jitter.
- **locomotion**: the body centre moves at 1.5-2.5 BL/s; diagonal paw pairs swing at 4 Hz.
- **grooming**: both fore paws at the snout, stroking at 5 Hz.
- **licking** (one hind paw): the animal curls, the snout at the licked hind paw (0.06 BL away), the
  paw drawn in, rhythmic 6 Hz snout motion; body length (snout to tail base) about 0.45 BL.
- **flinching** (one hind paw): brief (0.2-0.5 s) 10 Hz shaking of the paw, 0.12 BL across.
- **guarding** (one hind paw): the paw held off the floor: seen from below it is out of focus and
  off the glass, so the tracker's confidence of it drops to 0.3-0.6 and it sits drawn in under the body
  (0.1 BL from the centre line instead of 0.22).
- **rearing**: the animal stands up: from below only the hind body is near the floor, the snout appears
  at 0.22 BL ahead of the centre (body length ~0.7 BL), fore paws' confidence 0.05-0.3, snout's 0.5-0.8.

Postures change over 3 frames at each bout start (the first frames blend the previous posture), so a
scorer's bout edges are exact to within those frames. An injured animal (``injured=True``) gets
``injury_factor`` times more licking, flinching and guarding, aimed at the injured (``side``) paw with
probability ``ipsi_probability``; a sham animal's paw-directed bouts pick either paw equally.
``truth`` holds per-behaviour frame counts and ``licking_ipsi_s`` / ``licking_contra_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from behavior.synthetic.base import Clip, make_clip, register_simulator

__all__ = [
    "PAIN_BOX_BEHAVIOURS",
    "PAIN_BOX_KEYPOINTS",
    "PainBoxParams",
    "pain_box_bouts",
    "pain_box_labels",
    "simulate_pain_box",
    "train_synthetic_classifier",
]

PAIN_BOX_KEYPOINTS = ("snout", "paw_lf", "paw_rf", "paw_lh", "paw_rh", "centre", "tail_base")
PAIN_BOX_SKELETON = (
    ("snout", "paw_lf"),
    ("snout", "paw_rf"),
    ("paw_lf", "paw_lh"),
    ("paw_rf", "paw_rh"),
    ("paw_lh", "tail_base"),
    ("paw_rh", "tail_base"),
)
#: The default behaviour set of the pain box (``none``: exploration that is none of them).
PAIN_BOX_BEHAVIOURS = ("licking", "flinching", "guarding", "grooming", "rearing", "locomotion", "still")
PAW_DIRECTED = ("licking", "flinching", "guarding")
_SNOUT, _LF, _RF, _LH, _RH, _CENTRE, _TAIL = range(7)
#: Rest posture in the body frame (x forward, y to the animal's left), body lengths.
REST = np.array([[0.5, 0.0], [0.28, 0.17], [0.28, -0.17], [-0.22, 0.22], [-0.22, -0.22], [0.0, 0.0], [-0.5, 0.0]])
#: (min, max) bout duration in s and base rate weight of each behaviour (and none).
BOUT_S = {
    "none": (1.0, 3.0, 3.0),
    "still": (1.0, 3.0, 2.0),
    "locomotion": (1.0, 2.5, 2.0),
    "grooming": (1.5, 3.5, 1.5),
    "licking": (1.0, 3.0, 1.0),
    "flinching": (0.2, 0.5, 1.0),
    "guarding": (1.0, 3.0, 0.8),
    "rearing": (0.8, 2.0, 1.2),
}
BLEND_FRAMES = 3


@dataclass
class PainBoxParams:
    """Parameters of a pain-box session.

    Attributes
    ----------
    duration_s, fps
        Length and frame rate.
    injured
        Whether the animal is injured on ``side`` (more ipsilateral licking, flinching, guarding).
    side
        The injured hind paw, ``left`` or ``right``.
    injury_factor
        How much more often an injured animal licks, flinches and guards.
    ipsi_probability
        Chance that an injured animal's paw-directed bout aims at the injured paw.
    body_length_px
        Snout to tail-base length at rest.
    arena_px
        Side of the square arena (and of the rendered frame).
    jitter_bl
        SD of the tracking jitter, in body lengths.
    """

    duration_s: float = 60.0
    fps: float = 30.0
    injured: bool = False
    side: Literal["left", "right"] = "left"
    injury_factor: float = 3.0
    ipsi_probability: float = 0.85
    body_length_px: float = 30.0
    arena_px: int = 96
    jitter_bl: float = 0.01

    def __post_init__(self) -> None:
        for name in ("duration_s", "fps", "injury_factor", "body_length_px"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"expected {name} > 0, got {v}")
        if self.side not in ("left", "right"):
            raise ValueError(f"expected side 'left' or 'right', got {self.side!r}")
        if not 0 <= self.ipsi_probability <= 1:
            raise ValueError(f"expected ipsi_probability in [0, 1], got {self.ipsi_probability}")
        if self.arena_px < 3 * self.body_length_px or self.arena_px % 2:
            raise ValueError(f"expected an even arena_px >= 3 body lengths, got {self.arena_px}")
        if not 0 <= self.jitter_bl < 0.2:
            raise ValueError(f"expected jitter_bl in [0, 0.2), got {self.jitter_bl}")


def _plan(p: PainBoxParams, rng: np.random.Generator, n: int) -> list[tuple[str, int, str]]:
    """Bouts (behaviour, frames, paw) covering ``n`` frames; no behaviour follows itself."""
    names = list(BOUT_S)
    weights = np.array([BOUT_S[b][2] * (p.injury_factor if p.injured and b in PAW_DIRECTED else 1.0) for b in names])
    bouts: list[tuple[str, int, str]] = []
    used, prev = 0, ""
    while used < n:
        w = weights * np.array([b != prev for b in names])
        b = str(rng.choice(names, p=w / w.sum()))
        lo, hi, _ = BOUT_S[b]
        frames = max(BLEND_FRAMES + 3, round(rng.uniform(lo, hi) * p.fps))
        frames = min(frames, n - used)
        paw = ""
        if b in PAW_DIRECTED:
            contra = "right" if p.side == "left" else "left"
            paw = p.side if rng.random() < (p.ipsi_probability if p.injured else 0.5) else contra
        bouts.append((b, frames, paw))
        used += frames
        prev = b
    return bouts


def _posture(
    b: str, paw: str, n: int, fps: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Body-frame keypoints ``(n, 7, 2)``, confidences ``(n, 7)``, speed (BL/s) and turn rate (rad/s)."""
    t = np.arange(n) / fps
    ego = np.repeat(REST[None], n, axis=0).copy()
    conf = rng.uniform(0.9, 1.0, (n, 7))
    speed, turn = 0.0, 0.0
    sgn = 1.0 if paw == "left" else -1.0
    hind = _LH if paw == "left" else _RH
    phase = rng.uniform(0, 2 * np.pi)
    if b == "none":
        speed, turn = 0.3, rng.uniform(-0.6, 0.6)
        ego[:, _SNOUT, 1] += 0.08 * np.sin(2 * np.pi * 0.5 * t + phase)
    elif b == "locomotion":
        speed, turn = rng.uniform(1.5, 2.5), rng.uniform(-0.4, 0.4)
        swing = 0.08 * np.sin(2 * np.pi * 4.0 * t + phase)
        ego[:, [_LF, _RH], 0] += swing[:, None]
        ego[:, [_RF, _LH], 0] -= swing[:, None]
    elif b == "grooming":
        stroke = 0.04 * np.sin(2 * np.pi * 5.0 * t + phase)
        ego[:, _LF] = np.column_stack([0.42 + stroke, 0.05 + 0 * t])
        ego[:, _RF] = np.column_stack([0.42 + stroke, -0.05 + 0 * t])
        ego[:, _SNOUT, 0] = 0.46 + 0.5 * stroke
    elif b == "licking":
        ego[:, hind] = [-0.2, 0.18 * sgn]
        lick = 0.03 * np.sin(2 * np.pi * 6.0 * t + phase)
        ego[:, _SNOUT] = np.column_stack([-0.14 + lick, 0.18 * sgn + 0.5 * lick])
        ego[:, _LF] = [0.05, 0.12]
        ego[:, _RF] = [0.05, -0.12]
    elif b == "flinching":
        shake = np.sin(2 * np.pi * 10.0 * t + phase)
        ego[:, hind, 1] += 0.12 * shake * sgn
        ego[:, hind, 0] += 0.05 * shake
    elif b == "guarding":
        ego[:, hind] = [-0.18, 0.1 * sgn]
        conf[:, hind] = rng.uniform(0.3, 0.6, n)
    elif b == "rearing":
        ego[:, _SNOUT] = [0.22, 0.0]
        ego[:, _LF] = [0.18, 0.08]
        ego[:, _RF] = [0.18, -0.08]
        ego[:, [_LH, _RH], 1] *= 1.15
        conf[:, [_LF, _RF]] = rng.uniform(0.05, 0.3, (n, 2))
        conf[:, _SNOUT] = rng.uniform(0.5, 0.8, n)
    return ego, conf, speed, turn


@register_simulator("pain_box")
def simulate_pain_box(params: PainBoxParams, rng: np.random.Generator) -> Clip:
    """Simulate a pain-box session (see the module docstring for the exact ground truth)."""
    p = params
    n = max(1, round(p.duration_s * p.fps))
    plan = _plan(p, rng, n)
    egos, confs, speeds, turns = [], [], [], []
    for b, frames, paw in plan:
        ego, conf, speed, turn = _posture(b, paw, frames, p.fps, rng)
        egos.append(ego)
        confs.append(conf)
        speeds.append(np.full(frames, speed))
        turns.append(np.full(frames, turn))
    ego = np.concatenate(egos)
    conf = np.concatenate(confs)
    # postures change over BLEND_FRAMES at each bout start
    start = 0
    for i, (_, frames, _) in enumerate(plan):
        if i > 0:
            last = ego[start - 1].copy()
            for k in range(min(BLEND_FRAMES - 1, frames)):
                w = (k + 1) / BLEND_FRAMES
                ego[start + k] = (1 - w) * last + w * ego[start + k]
        start += frames
    speed = np.concatenate(speeds) / p.fps * p.body_length_px
    turn = np.concatenate(turns) / p.fps
    # body centre and heading: walk, turning back from the walls (a loop over frames of two scalars)
    half = p.arena_px / 2
    margin = 0.9 * p.body_length_px
    cx, cy = np.empty(n), np.empty(n)
    heading = np.empty(n)
    x, y, th = half, half, rng.uniform(-np.pi, np.pi)
    for i in range(n):
        if speed[i] > 0:
            ahead_x, ahead_y = x + margin * math.cos(th), y + margin * math.sin(th)
            if not (margin <= ahead_x <= p.arena_px - margin and margin <= ahead_y <= p.arena_px - margin):
                th += 0.25  # turn away from the wall
            else:
                th += turn[i]
            step = speed[i]
            nx, ny = x + step * math.cos(th), y + step * math.sin(th)
            if margin * 0.6 <= nx <= p.arena_px - margin * 0.6 and margin * 0.6 <= ny <= p.arena_px - margin * 0.6:
                x, y = nx, ny
        cx[i], cy[i], heading[i] = x, y, th
    ux, uy = np.cos(heading), np.sin(heading)
    ex, ey = ego[..., 0], ego[..., 1]
    bl = p.body_length_px
    pos = np.empty((n, 7, 2))
    pos[..., 0] = cx[:, None] + bl * (ex * ux[:, None] - ey * uy[:, None])
    pos[..., 1] = cy[:, None] + bl * (ex * uy[:, None] + ey * ux[:, None])
    pos += rng.normal(0.0, p.jitter_bl * bl, pos.shape)
    frames = _render(pos, conf, p.arena_px)
    bouts = []
    start = 0
    for b, length, paw in plan:
        bouts.append({"behavior": b, "start_frame": start, "stop_frame": start + length - 1, "paw": paw})
        start += length
    labels = np.concatenate([[b] * length for b, length, _ in plan])
    contra = "right" if p.side == "left" else "left"
    lick_s = {
        s: sum(length for b, length, paw in plan if b == "licking" and paw == s) / p.fps for s in ("left", "right")
    }
    truth = {
        "injured": p.injured,
        "side": p.side,
        "behaviours": list(PAIN_BOX_BEHAVIOURS),
        "bouts": [bt for bt in bouts if bt["behavior"] != "none"],
        "frames_per_behaviour": {b: int((labels == b).sum()) for b in ("none", *PAIN_BOX_BEHAVIOURS)},
        "licking_ipsi_s": lick_s[p.side],
        "licking_contra_s": lick_s[contra],
        "flinch_count": sum(1 for b, _, _ in plan if b == "flinching"),
        "blend_frames": BLEND_FRAMES,
        "body_length_px": bl,
    }
    return make_clip(
        assay="pain_box",
        frames=frames,
        positions_px=pos,
        keypoints=PAIN_BOX_KEYPOINTS,
        skeleton=PAIN_BOX_SKELETON,
        fps=p.fps,
        px_per_mm=bl / 90.0,
        truth=truth,
        side=p.side,
        confidence=conf,
    )


def _render(pos: np.ndarray, conf: np.ndarray, size: int) -> np.ndarray:
    """Dots at the keypoints on a dark floor (brightness = confidence): a stand-in video, tiny."""
    n = pos.shape[0]
    frames = np.full((n, size, size, 3), 24, dtype=np.uint8)
    xi = np.clip(np.round(pos[..., 0]).astype(int), 0, size - 1)
    yi = np.clip(np.round(pos[..., 1]).astype(int), 0, size - 1)
    ti = np.repeat(np.arange(n)[:, None], pos.shape[1], axis=1)
    frames[ti, yi, xi] = (60 + 195 * np.clip(conf, 0, 1)).astype(np.uint8)[..., None]
    return frames


def pain_box_bouts(clip: Clip) -> pd.DataFrame:
    """The planted bouts of a pain-box clip (``behavior, start_frame, stop_frame, paw``; ``none`` left out)."""
    return pd.DataFrame(clip.truth["bouts"], columns=["behavior", "start_frame", "stop_frame", "paw"])


def pain_box_labels(clip: Clip) -> np.ndarray:
    """One planted label per frame of a pain-box clip (``none`` where no behaviour)."""
    from behavior.classifiers.bouts import bouts_to_labels

    return bouts_to_labels(pain_box_bouts(clip), clip.n_frames, source=clip.name)


def train_synthetic_classifier(
    model_dir: str | Path,
    *,
    n_animals: int = 4,
    duration_s: float = 60.0,
    seed: int = 0,
    max_iter: int = 20,
) -> Path:
    """Train and save a pain-box classifier on simulated sessions with their planted labels (for the demo).

    Half the animals are injured (on alternating sides), so paw-directed behaviours are common enough.
    With the defaults it takes ~15-20 s on one core.

    Returns
    -------
    Path
        ``model_dir`` (a classifier directory for the pain_box config's ``classifier``).
    """
    from behavior.classifiers import BehaviourEstimator, labelled_session, save_classifier, train_classifier
    from behavior.synthetic.base import simulate_clip

    if n_animals < 2:
        raise ValueError(f"expected n_animals >= 2 (cross-validation by animal), got {n_animals}")
    sessions = []
    for i in range(n_animals):
        clip = simulate_clip(
            "pain_box",
            seed=(seed, 9001, i),
            duration_s=duration_s,
            injured=i % 2 == 0,
            side="left" if i % 4 < 2 else "right",
        )
        sessions.append(labelled_session(clip.poses, pain_box_labels(clip), group=f"synthetic{i}"))
    estimator = BehaviourEstimator(max_iter=max_iter, max_leaf_nodes=15, learning_rate=0.2)
    clf, _ = train_classifier(sessions, estimator=estimator, n_splits=min(4, n_animals))
    clf.provenance["trained_on"] = f"behavior.synthetic.pain_box: {n_animals} simulated animals, seed {seed}"
    save_classifier(clf, model_dir)
    return Path(model_dir)
