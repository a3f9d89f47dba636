"""Grimace: a side view of a mouse face with set Mouse Grimace Scale (MGS) features.

Geometry (head frame, millimetres, origin at the eye centre, ``+u`` backwards along the head axis,
``+v`` down; the image is this frame scaled by ``px_per_mm``, mirrored when the mouse faces left,
turned by the head rotation and shifted by the head motion):

- eye: an ellipse ``EYE_HALF_WIDTH_MM`` wide (half) and ``eye_aperture * EYE_HALF_HEIGHT_MM`` high
  (half); ``eye_front``/``eye_back`` are its ends on the head axis, ``eye_top``/``eye_bottom`` the
  ends of its vertical axis (they meet at the centre when the eye is closed).
- ear: from ``ear_base`` (``EAR_BASE_MM``) a leaf ``EAR_LENGTH_MM`` long pointing at ``ear_angle_deg``
  above the backward head axis (90 = upright, 0 = laid flat back); ``ear_tip`` is its far end.
- ``nose``: the tip of the snout. ``whisker_pad``: centre of the whisker pad. ``cheek``: centre of the
  cheek ellipse, whose radii grow with ``cheek_bulge``. The nose bridge bump grows with ``nose_bulge``.
- whiskers leave the pad at ``whisker_angle_deg`` from the forward head axis, turning downwards
  (0 = straight forward, 90 = straight down, 180 = swept back along the face), fanned +-15 degrees.
- keypoints added for the face pose model (configs/skeletons/face.yaml), after the original nine:
  ``ear_base_front`` / ``ear_base_back``: the ear leaf's front and back edges 1.5 mm out from its base
  (they turn with the ear); ``nose_bridge``: the top of the nose-bridge bump (rises with ``nose_bulge``);
  ``whisker_base_upper`` / ``whisker_base_lower``: ``WHISKER_BASE_MM`` along the top and bottom whisker of
  the fan from where it leaves the pad (the base segment whose direction is the whisker angle);
  ``mouth_corner``: the back end of the mouth line, fixed at ``MOUTH_CORNER_MM``.

Stretches that a human scorer would not score (each a list of ``[start_s, end_s)`` intervals, empty by
default, so clips without them are rendered exactly as before):

- ``blur_stretches_s``: motion blur, a ``blur_px`` long line kernel along ``blur_angle_deg``;
- ``yaw_stretches_s``: head turned ``yaw_deg`` away from profile (the head frame's ``u`` axis is
  foreshortened by ``cos(yaw_deg)`` about the eye centre; keypoints follow);
- ``grooming_stretches_s``: both forepaws rub the snout; ``nose``, ``whisker_pad``, the whisker bases and
  ``mouth_corner`` are covered (confidence 0 in the ground-truth poses, positions kept).

``truth["excluded_frames"]`` lists, per kind, the frame index ranges ``[first, last]`` of those stretches and
``truth["clear_frames"]`` counts the frames outside all of them.

Action-unit mapping (each continuous score is clipped to [0, 2]; ``au_scores_int`` rounds it half up):

- orbital_tightening = 2 * (0.9 - eye_aperture) / 0.6      (open >= 0.9 -> 0, 0.6 -> 1, <= 0.3 -> 2)
- nose_bulge         = 2 * nose_bulge
- cheek_bulge        = 2 * cheek_bulge
- ear_position       = 2 * (70 - ear_angle_deg) / 40        (>= 70 deg -> 0, 50 -> 1, <= 30 -> 2)
- whisker_change     = 2 * (whisker_angle_deg - 60) / 60    (<= 60 deg -> 0, 90 -> 1, >= 120 -> 2)

``mgs_score`` is the mean of the five continuous scores (``mgs_score_int``: of the rounded ones).
Only pulling back counts as whisker change here; whiskers pushed forward are not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from behavior.synthetic.base import Clip, make_clip, register_simulator
from behavior.synthetic.render import blotches, finish, grain, paint_capsule, paint_ellipse

__all__ = [
    "GRIMACE_KEYPOINTS",
    "GRIMACE_SKELETON",
    "GrimaceParams",
    "action_unit_scores",
    "simulate_grimace",
    "simulate_rated_faces",
]

GRIMACE_KEYPOINTS = (
    "nose",
    "eye_top",
    "eye_bottom",
    "eye_front",
    "eye_back",
    "ear_base",
    "ear_tip",
    "whisker_pad",
    "cheek",
    "ear_base_front",
    "ear_base_back",
    "nose_bridge",
    "whisker_base_upper",
    "whisker_base_lower",
    "mouth_corner",
)
#: Keypoints a grooming paw covers.
GROOMING_COVERED = ("nose", "whisker_pad", "whisker_base_upper", "whisker_base_lower", "mouth_corner")
GRIMACE_SKELETON = (
    ("nose", "whisker_pad"),
    ("nose", "eye_front"),
    ("eye_front", "eye_top"),
    ("eye_top", "eye_back"),
    ("eye_back", "eye_bottom"),
    ("eye_bottom", "eye_front"),
    ("eye_back", "ear_base"),
    ("ear_base", "ear_tip"),
    ("whisker_pad", "cheek"),
    ("cheek", "eye_bottom"),
    ("ear_base_front", "ear_tip"),
    ("ear_base_back", "ear_tip"),
    ("nose", "nose_bridge"),
    ("whisker_pad", "whisker_base_upper"),
    ("whisker_pad", "whisker_base_lower"),
    ("mouth_corner", "cheek"),
)

EYE_HALF_WIDTH_MM = 2.2
EYE_HALF_HEIGHT_MM = 1.6
EAR_BASE_MM = (6.5, -5.0)
EAR_LENGTH_MM = 9.0
EAR_HALF_WIDTH_MM = 3.4
NOSE_MM = (-14.5, 4.0)
WHISKER_PAD_MM = (-11.0, 4.3)
CHEEK_MM = (-4.0, 4.8)
MOUTH_CORNER_MM = (-8.6, 7.0)
MOUTH_FRONT_MM = (-12.6, 6.1)
WHISKER_BASE_MM = 4.0
NOSE_BUMP_MM = (-8.0, 12.0)  # u of the bump centre, its tilt (deg)
PAW_RGB = (224.0, 172.0, 162.0)
EYE_RGB = (16.0, 12.0, 14.0)
FUR_RGB = (124.0, 106.0, 92.0)
CAGE_RGB = (196.0, 198.0, 192.0)


def action_unit_scores(
    eye_aperture: float, ear_angle_deg: float, nose_bulge: float, cheek_bulge: float, whisker_angle_deg: float
) -> dict[str, float]:
    """Continuous MGS action-unit scores (0-2) implied by the face parameters (module docstring)."""

    def clip(v: float) -> float:
        return float(min(max(v, 0.0), 2.0))

    return {
        "orbital_tightening": clip(2 * (0.9 - eye_aperture) / 0.6),
        "nose_bulge": clip(2 * nose_bulge),
        "cheek_bulge": clip(2 * cheek_bulge),
        "ear_position": clip(2 * (70 - ear_angle_deg) / 40),
        "whisker_change": clip(2 * (whisker_angle_deg - 60) / 60),
    }


@dataclass
class GrimaceParams:
    """Parameters of a grimace clip (constant face, small head motion).

    Attributes
    ----------
    eye_aperture
        Fraction of the eye open, 0 (shut) - 1 (fully open).
    ear_angle_deg
        Ear direction above the backward head axis, 0-120 degrees.
    nose_bulge, cheek_bulge
        Bulging, 0 (none) - 1 (maximal).
    whisker_angle_deg
        Whisker direction from the forward head axis, 0-180 degrees.
    duration_s, fps, px_per_mm
        Clip length, frame rate, scale.
    head_motion_px, head_rotation_deg
        Amplitudes of the slow head translation and rotation.
    facing
        Direction of the nose in the image.
    frame_width_px, frame_height_px
        Frame size.
    blur_stretches_s, blur_px, blur_angle_deg
        Motion-blurred stretches (``[start_s, end_s)``), blur length and direction.
    yaw_stretches_s, yaw_deg
        Stretches with the head turned away from profile, and by how much (0-85 degrees).
    grooming_stretches_s
        Stretches of face grooming (forepaws over the snout).
    """

    eye_aperture: float = 1.0
    ear_angle_deg: float = 75.0
    nose_bulge: float = 0.0
    cheek_bulge: float = 0.0
    whisker_angle_deg: float = 55.0
    duration_s: float = 3.0
    fps: float = 15.0
    px_per_mm: float = 6.0
    head_motion_px: float = 2.0
    head_rotation_deg: float = 3.0
    facing: Literal["left", "right"] = "left"
    frame_width_px: int = 240
    frame_height_px: int = 180
    blur_stretches_s: list[tuple[float, float]] = field(default_factory=list)
    blur_px: float = 9.0
    blur_angle_deg: float = 20.0
    yaw_stretches_s: list[tuple[float, float]] = field(default_factory=list)
    yaw_deg: float = 60.0
    grooming_stretches_s: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, lo, hi in (
            ("eye_aperture", 0, 1),
            ("nose_bulge", 0, 1),
            ("cheek_bulge", 0, 1),
            ("ear_angle_deg", 0, 120),
            ("whisker_angle_deg", 0, 180),
        ):
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise ValueError(f"expected {name} in [{lo}, {hi}], got {v}")
        for name in ("duration_s", "fps", "px_per_mm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"expected {name} > 0, got {getattr(self, name)}")
        if self.head_motion_px < 0 or self.head_rotation_deg < 0:
            raise ValueError(
                "expected head_motion_px and head_rotation_deg >= 0, got "
                f"{self.head_motion_px}, {self.head_rotation_deg}"
            )
        if self.facing not in ("left", "right"):
            raise ValueError(f"expected facing 'left' or 'right', got {self.facing!r}")
        if self.frame_width_px % 2 or self.frame_height_px % 2:
            raise ValueError(f"expected even frame sizes, got {self.frame_width_px}x{self.frame_height_px}")
        for name in ("blur_stretches_s", "yaw_stretches_s", "grooming_stretches_s"):
            spans = [tuple(float(x) for x in span) for span in getattr(self, name)]
            if any(len(span) != 2 or not 0 <= span[0] < span[1] for span in spans):
                raise ValueError(f"expected {name} as [start_s, end_s) pairs with 0 <= start < end, got {spans}")
            setattr(self, name, spans)
        if not 0 <= self.yaw_deg <= 85:
            raise ValueError(f"expected yaw_deg in [0, 85], got {self.yaw_deg}")
        if self.blur_px < 1:
            raise ValueError(f"expected blur_px >= 1, got {self.blur_px}")


class _Pose:
    """Head frame (mm) -> image (px) transform of one frame."""

    def __init__(self, origin: np.ndarray, angle_deg: float, ppm: float, mirror: bool, squeeze: float = 1.0) -> None:
        self.origin, self.ppm, self.mirror, self.squeeze = origin, ppm, mirror, squeeze
        self.angle = angle_deg
        th = math.radians(angle_deg)
        self.rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])

    def pt(self, uv: tuple[float, float] | np.ndarray) -> np.ndarray:
        u, v = float(uv[0]) * self.squeeze, float(uv[1])
        if self.mirror:
            u = -u
        return self.origin + self.rot @ np.array([u, v]) * self.ppm

    def ang(self, deg: float) -> float:
        """Image angle of a direction given in the head frame (degrees, image axes)."""
        return (180.0 - deg if self.mirror else deg) + self.angle

    def ellipse(
        self,
        img: np.ndarray,
        uv: tuple[float, float],
        axes_mm: tuple[float, float],
        deg: float,
        color: tuple[float, float, float],
        alpha: float = 1.0,
    ) -> None:
        if self.squeeze == 1.0:
            axes, ang = (axes_mm[0] * self.ppm, axes_mm[1] * self.ppm), self.ang(deg)
        else:  # a foreshortened (turned) head: the ellipse's image axes from the linear map's SVD
            th = math.radians(deg)
            m = (
                np.diag([-self.squeeze if self.mirror else self.squeeze, 1.0])
                @ np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
                @ np.diag(axes_mm)
            )
            uu, ss, _ = np.linalg.svd(self.rot @ m * self.ppm)
            axes, ang = (float(ss[0]), float(ss[1])), math.degrees(math.atan2(uu[1, 0], uu[0, 0]))
        paint_ellipse(img, self.pt(uv), axes, ang, color, alpha)


@register_simulator("grimace")
def simulate_grimace(params: GrimaceParams, rng: np.random.Generator) -> Clip:
    """Simulate a side-view face clip (see the module docstring for geometry and scores)."""
    p = params
    w, h, ppm = p.frame_width_px, p.frame_height_px, p.px_per_mm
    n = max(round(p.duration_s * p.fps), 1)
    t = np.arange(n) / p.fps
    mirror = p.facing == "right"  # the head frame has the nose towards -u, i.e. facing left
    # Eye placed so that the nose sits ~20 px from the edge it faces.
    eye0 = np.array([w - 21.0 - 14.5 * ppm if mirror else 20.0 + 14.5 * ppm, h * 0.56])
    f = rng.uniform(0.2, 0.5, 3)
    ph = rng.uniform(0, 2 * np.pi, 3)
    shift = p.head_motion_px * np.c_[np.sin(2 * np.pi * f[0] * t + ph[0]), np.sin(2 * np.pi * f[1] * t + ph[1])]
    rot = p.head_rotation_deg * np.sin(2 * np.pi * f[2] * t + ph[2])

    a = p.eye_aperture
    ear_dir = np.array([math.cos(math.radians(p.ear_angle_deg)), -math.sin(math.radians(p.ear_angle_deg))])
    kp_mm = face_keypoints_mm(p)
    bg = np.empty((h, w, 3), np.float32)
    bg[:] = CAGE_RGB
    bg *= np.linspace(1.04, 0.9, h, dtype=np.float32)[:, None, None]  # light from above
    bg += (blotches(rng, h, w, scale_px=40, amp=6.0) + grain(rng, h, w, 1.5))[:, :, None]
    texture = grain(rng, h, w, 3.0)[:, :, None]
    whisk_spread = np.linspace(-15, 15, 7) + rng.normal(0, 2.0, 7)
    whisk_len = rng.uniform(11, 16, 7)
    kp_mm.update(_whisker_bases(p, whisk_spread))

    flags = {kind: _in_stretches(t, getattr(p, f"{kind}_stretches_s")) for kind in ("blur", "yaw", "grooming")}
    groom_phase = rng.uniform(0, 2 * np.pi) if flags["grooming"].any() else 0.0
    kernel = _motion_kernel(p.blur_px, p.blur_angle_deg) if flags["blur"].any() else None
    squeeze = math.cos(math.radians(p.yaw_deg))
    covered = [GRIMACE_KEYPOINTS.index(k) for k in GROOMING_COVERED]

    pos = np.zeros((n, len(GRIMACE_KEYPOINTS), 2))
    conf = np.ones((n, len(GRIMACE_KEYPOINTS)))
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        tf = _Pose(eye0 + shift[i], float(rot[i]), ppm, mirror, squeeze if flags["yaw"][i] else 1.0)
        img = bg.copy()
        _draw_face(img, tf, p, ear_dir, whisk_spread, whisk_len)
        if flags["grooming"][i]:
            _draw_paws(img, tf, t[i], groom_phase)
            conf[i, covered] = 0.0
        img += texture
        if kernel is not None and flags["blur"][i]:
            img = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)
        frames[i] = finish(img, rng)
        for j, k in enumerate(GRIMACE_KEYPOINTS):
            pos[i, j] = tf.pt(kp_mm[k])

    scores = action_unit_scores(p.eye_aperture, p.ear_angle_deg, p.nose_bulge, p.cheek_bulge, p.whisker_angle_deg)
    scores_int = {k: math.floor(v + 0.5) for k, v in scores.items()}
    truth = {
        "eye_aperture": p.eye_aperture,
        "ear_angle_deg": p.ear_angle_deg,
        "nose_bulge": p.nose_bulge,
        "cheek_bulge": p.cheek_bulge,
        "whisker_angle_deg": p.whisker_angle_deg,
        "facing": p.facing,
        "eye_width_px": 2 * EYE_HALF_WIDTH_MM * ppm,
        "eye_height_px": 2 * a * EYE_HALF_HEIGHT_MM * ppm,
        "au_scores": scores,
        "au_scores_int": scores_int,
        "mgs_score": float(np.mean(list(scores.values()))),
        "mgs_score_int": float(np.mean(list(scores_int.values()))),
        "score_mapping": {
            "orbital_tightening": "2 * (0.9 - eye_aperture) / 0.6",
            "nose_bulge": "2 * nose_bulge",
            "cheek_bulge": "2 * cheek_bulge",
            "ear_position": "2 * (70 - ear_angle_deg) / 40",
            "whisker_change": "2 * (whisker_angle_deg - 60) / 60",
            "clip": [0, 2],
        },
        "excluded_frames": {
            {"blur": "blurred", "yaw": "turned_away", "grooming": "grooming"}[k]: _runs(v) for k, v in flags.items()
        },
        "clear_frames": int(n - np.logical_or.reduce(list(flags.values())).sum()),
        "yaw_deg": p.yaw_deg,
    }
    return make_clip(
        assay="grimace",
        frames=frames,
        positions_px=pos,
        keypoints=GRIMACE_KEYPOINTS,
        skeleton=GRIMACE_SKELETON,
        fps=p.fps,
        px_per_mm=ppm,
        truth=truth,
        confidence=conf if (conf < 1).any() else None,
    )


def face_keypoints_mm(p: GrimaceParams) -> dict[str, tuple[float, float]]:
    """Head-frame positions (mm) of the keypoints that do not depend on the whisker draw."""
    a = p.eye_aperture
    ear_dir = np.array([math.cos(math.radians(p.ear_angle_deg)), -math.sin(math.radians(p.ear_angle_deg))])
    perp = np.array([-ear_dir[1], ear_dir[0]])  # across the ear, turned towards the nose (-u)
    if perp[0] > 0:
        perp = -perp
    half = EAR_LENGTH_MM / 2
    along = 1.5
    width = EAR_HALF_WIDTH_MM * math.sqrt(1 - ((half - along) / half) ** 2)
    base = np.asarray(EAR_BASE_MM)
    nb = p.nose_bulge
    cu, tilt = NOSE_BUMP_MM
    cv, aa, bb = -0.6 - 0.9 * nb, 2.6 + 1.8 * nb, 1.2 + 1.4 * nb
    th = math.radians(tilt)
    # top of the tilted bump ellipse: minimise v(t) = cv + aa cos t sin th + bb sin t cos th
    tt = math.atan2(-bb * math.cos(th), -aa * math.sin(th))
    bridge = (
        cu + aa * math.cos(tt) * math.cos(th) - bb * math.sin(tt) * math.sin(th),
        cv + aa * math.cos(tt) * math.sin(th) + bb * math.sin(tt) * math.cos(th),
    )
    return {
        "nose": NOSE_MM,
        "eye_top": (0.0, -a * EYE_HALF_HEIGHT_MM),
        "eye_bottom": (0.0, a * EYE_HALF_HEIGHT_MM),
        "eye_front": (-EYE_HALF_WIDTH_MM, 0.0),
        "eye_back": (EYE_HALF_WIDTH_MM, 0.0),
        "ear_base": EAR_BASE_MM,
        "ear_tip": tuple(base + EAR_LENGTH_MM * ear_dir),
        "whisker_pad": WHISKER_PAD_MM,
        "cheek": CHEEK_MM,
        "ear_base_front": tuple(base + along * ear_dir + width * perp),
        "ear_base_back": tuple(base + along * ear_dir - width * perp),
        "nose_bridge": bridge,
        "mouth_corner": MOUTH_CORNER_MM,
    }


def _whisker_dirs(p: GrimaceParams, spread: np.ndarray) -> list[np.ndarray]:
    return [
        np.array([-math.cos(math.radians(p.whisker_angle_deg + d)), math.sin(math.radians(p.whisker_angle_deg + d))])
        for d in spread
    ]


def _whisker_start(k: int, direction: np.ndarray) -> np.ndarray:
    return np.asarray(WHISKER_PAD_MM) + np.array([0.24 * (k - 3), 0.25 * (k - 3)]) + 1.6 * direction


def _whisker_bases(p: GrimaceParams, spread: np.ndarray) -> dict[str, tuple[float, float]]:
    dirs = _whisker_dirs(p, spread)
    last = len(dirs) - 1
    return {
        "whisker_base_upper": tuple(_whisker_start(0, dirs[0]) + WHISKER_BASE_MM * dirs[0]),
        "whisker_base_lower": tuple(_whisker_start(last, dirs[last]) + WHISKER_BASE_MM * dirs[last]),
    }


def _in_stretches(t: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray:
    out = np.zeros(len(t), bool)
    for start, end in spans:
        out |= (t >= start) & (t < end)
    return out


def _runs(mask: np.ndarray) -> list[list[int]]:
    idx = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    return [[int(a), int(b) - 1] for a, b in zip(idx[::2], idx[1::2], strict=True)]


def _motion_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    size = math.ceil(length_px) | 1
    k = np.zeros((size, size), np.float32)
    c = size // 2
    th = math.radians(angle_deg)
    for s_ in np.linspace(-length_px / 2, length_px / 2, 4 * size):
        x, y = c + s_ * math.cos(th), c + s_ * math.sin(th)
        k[min(max(round(y), 0), size - 1), min(max(round(x), 0), size - 1)] += 1
    return k / k.sum()


def _draw_paws(img: np.ndarray, tf: _Pose, t: float, phase: float) -> None:
    """Both forepaws rubbing the snout (grooming): forearms from below, paws over nose and whisker pad."""
    dv = 1.8 * math.sin(2 * math.pi * 3.0 * t + phase)
    du = 0.8 * math.sin(2 * math.pi * 1.5 * t + phase)
    arm = tuple(c * 0.8 for c in FUR_RGB)
    for off in (0.0, 2.6):
        paw = np.array([-12.5 + off + du, 5.0 + dv])
        paint_capsule(img, tf.pt(paw + np.array([3.0, 9.0])), tf.pt(paw), 3.2 * tf.ppm, arm)
        tf.ellipse(img, tuple(paw), (3.4, 2.6), 20.0, PAW_RGB)


def _draw_face(
    img: np.ndarray,
    tf: _Pose,
    p: GrimaceParams,
    ear_dir: np.ndarray,
    whisk_spread: np.ndarray,
    whisk_len: np.ndarray,
) -> None:
    ppm = p.px_per_mm
    fur_dark = tuple(c * 0.82 for c in FUR_RGB)
    fur_light = tuple(min(c * 1.12, 255) for c in FUR_RGB)
    ear_deg = math.degrees(math.atan2(ear_dir[1], ear_dir[0]))
    base = np.asarray(EAR_BASE_MM)
    # Far ear peeks behind the head; then body, head, snout.
    tf.ellipse(img, tuple(base + 4.2 * ear_dir + np.array([1.5, 0.3])), (4.4, 3.2), ear_deg, fur_dark)
    tf.ellipse(img, (26.0, 9.0), (21.0, 14.0), -8.0, fur_dark)
    tf.ellipse(img, (2.0, 1.5), (13.5, 8.8), -6.0, FUR_RGB)
    tf.ellipse(img, (-8.5, 2.8), (7.2, 4.6), 14.0, FUR_RGB)
    nb = p.nose_bulge  # bump on the nose bridge
    tf.ellipse(img, (-8.0, -0.6 - 0.9 * nb), (2.6 + 1.8 * nb, 1.2 + 1.4 * nb), 12.0, fur_light)
    cb = p.cheek_bulge
    tf.ellipse(img, CHEEK_MM, (3.4 + 2.0 * cb, 2.6 + 1.6 * cb), 0.0, fur_light)
    tf.ellipse(img, WHISKER_PAD_MM, (3.0, 2.2), 10.0, (150.0, 130.0, 118.0))
    tf.ellipse(img, NOSE_MM, (1.4, 1.1), 0.0, (214.0, 150.0, 150.0))
    # Near ear: fur rim and pink inside.
    tf.ellipse(
        img, tuple(base + EAR_LENGTH_MM / 2 * ear_dir), (EAR_LENGTH_MM / 2, EAR_HALF_WIDTH_MM), ear_deg, fur_dark
    )
    tf.ellipse(
        img,
        tuple(base + EAR_LENGTH_MM / 2 * ear_dir),
        (EAR_LENGTH_MM / 2 - 0.9, EAR_HALF_WIDTH_MM - 1.0),
        ear_deg,
        (206.0, 150.0, 146.0),
    )
    # Eye: darker rim, then the opening.
    a = p.eye_aperture
    tf.ellipse(img, (0.0, 0.0), (EYE_HALF_WIDTH_MM + 0.7, a * EYE_HALF_HEIGHT_MM + 0.6), 0.0, fur_dark)
    if a > 0:
        tf.ellipse(img, (0.0, 0.0), (EYE_HALF_WIDTH_MM, a * EYE_HALF_HEIGHT_MM), 0.0, EYE_RGB)
    else:
        paint_capsule(img, tf.pt((-EYE_HALF_WIDTH_MM, 0.0)), tf.pt((EYE_HALF_WIDTH_MM, 0.0)), 1.0, EYE_RGB)
    if a > 0.35:  # corneal reflection
        tf.ellipse(img, (0.6, -0.45 * a), (0.35, 0.35), 0.0, (235.0, 235.0, 235.0), 0.9)
    # Whiskers from the pad.
    paint_capsule(img, tf.pt(MOUTH_FRONT_MM), tf.pt(MOUTH_CORNER_MM), 0.5 * ppm, (70.0, 52.0, 50.0))
    for k, (direction, length) in enumerate(zip(_whisker_dirs(p, whisk_spread), whisk_len, strict=True)):
        start = _whisker_start(k, direction)  # from the pad's rim
        end = start + length * direction
        paint_capsule(img, tf.pt(start), tf.pt(end), 0.8 * ppm / 6.0, (225.0, 222.0, 214.0), 0.75)


def simulate_rated_faces(
    out_dir: str | Path,
    *,
    n_animals: int = 8,
    clips_per_animal: int = 4,
    frames_per_clip: int = 3,
    rater_sd: Sequence[float] = (0.25, 0.4, 0.6),
    duration_s: float = 0.6,
    seed: int = 0,
) -> Path:
    """A synthetic human-scored set: face clips of random grimace and raters of known noise.

    Every clip's face parameters are drawn uniformly over the range where the AU mapping moves (so every
    score occurs), plus a lasting per-animal offset. Rater ``r`` scores each chosen frame as
    ``clip(round(true_au + N(0, rater_sd[r])), 0, 2)`` for every AU, where ``true_au`` is the exact continuous
    AU score (:func:`action_unit_scores`). Writes the clips (video, pose file) and ``scores.csv``
    (``video, pose, frame, animal, rater`` and the five MGS AU columns; paths relative to it) plus
    ``truth.csv`` (the exact AU scores per scored frame).

    Returns
    -------
    Path
        ``scores.csv``.
    """
    import pandas as pd

    from behavior.synthetic.base import simulate_clip, write_clip

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for a in range(n_animals):
        animal = f"M{a + 1:02d}"
        offset = rng.normal(0, [0.04, 4.0, 0.05, 0.05, 4.0])
        for c in range(clips_per_animal):
            params = {
                "eye_aperture": float(np.clip(rng.uniform(0.25, 0.95) + offset[0], 0, 1)),
                "ear_angle_deg": float(np.clip(rng.uniform(25, 75) + offset[1], 0, 120)),
                "nose_bulge": float(np.clip(rng.uniform(0.0, 1.0) + offset[2], 0, 1)),
                "cheek_bulge": float(np.clip(rng.uniform(0.0, 1.0) + offset[3], 0, 1)),
                "whisker_angle_deg": float(np.clip(rng.uniform(55, 125) + offset[4], 0, 180)),
                "facing": str(rng.choice(["left", "right"])),
            }
            name = f"{animal}_clip{c}"
            clip = simulate_clip("grimace", seed=(seed, a, c), name=name, duration_s=duration_s, **params)
            paths = write_clip(clip, out_dir)
            true = clip.truth["au_scores"]
            for f in np.linspace(0, clip.n_frames - 1, frames_per_clip).astype(int):
                truth.append({"video": paths["video"].name, "frame": int(f), "animal": animal, **true})
                for r, sd in enumerate(rater_sd):
                    noisy = {k: int(np.clip(np.rint(v + rng.normal(0, sd)), 0, 2)) for k, v in true.items()}
                    rows.append({"video": paths["video"].name, "pose": paths["pose"].name, "frame": int(f),
                                 "animal": animal, "rater": f"R{r + 1}", **noisy})  # fmt: skip
    pd.DataFrame(truth).to_csv(out_dir / "truth.csv", index=False)
    path = out_dir / "scores.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
