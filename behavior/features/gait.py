"""Gait and weight bearing (CatWalk-like) from paw tracks, and print area / intensity from the video.

A bottom-up camera films the animal through a glass or acrylic floor, on a walkway (several crossings) or
while it explores a box (an open field); a side camera films a beam or treadmill (``mode: side``). The pain
readouts are ipsilateral / contralateral ratios of the hind paws' print area, print intensity, stance
duration and duty cycle (the session's ``side`` is the ipsilateral paw; without one, left / right).

Method
------
1. **Tracks.** Paw keypoints below ``min_confidence`` are missing; gaps up to ``max_gap_s`` are filled
   linearly, longer ones stay untracked.
2. **Contacts** (:func:`detect_stances`). The paw is in stance while it is still in the world: its speed
   (central difference of the positions smoothed over ``smooth_s``) enters stance under
   ``stance_speed_bl_s`` and leaves it over ``swing_speed_bl_s`` body lengths per second (hysteresis;
   body length = median snout - tail-base distance, or ``body_length_mm``). Stances shorter than
   ``min_stance_s`` are dropped and swings shorter than ``min_swing_s`` closed. Each stance's edges are
   then refined, by up to ``refine_s``, to the frames where the unsmoothed keypoint does not move (a step
   to the next or from the previous frame of at most ``jitter_factor`` x the paw's median step inside
   stances, and at least ``min_still_step_px``): the edge frames are exact for a paw that is truly still.
   A stance that touches an untracked frame or the recording's ends is *incomplete*: its timing is
   unknown and it counts in no figure. Side view (``mode: side``, one side of the animal): see
   :mod:`behavior.features.gait_side` (stance also needs the paw within ``max_stance_height_mm`` of the
   floor line; step cycles and joint angles per visible paw).
3. **Where steps come from** (:func:`locomotion_bouts`). Body velocity: mean of the ``body_keypoints``'
   velocities over ``velocity_window_s``. Frames of locomotion: body speed at least ``min_speed_bl_s`` and
   heading turning at most ``max_turn_deg_s``; runs of them (gaps under ``merge_gap_s`` closed) lasting
   ``min_duration_s`` are candidate bouts (walkway: runs; open field: bouts, as in Sheppard et al. 2022).
   A bout is dropped, with the reason, when its speed is not steady (coefficient of variation over
   ``max_speed_cv``) or it holds fewer than ``min_strides`` strides. A stance belongs to the bout that
   holds its middle frame.
4. **Steps and strides.** Per paw, consecutive complete stances of one bout make a stride: step cycle
   (onset to onset), stance and swing duration, duty cycle (stance / cycle), stride length (distance
   between the stances' anchors, the median keypoint position in stance), swing speed (stride length /
   swing duration). Cadence: strides per second (1 / mean step cycle, MouseWalker's frequency).
   Inter-limb phase of paw B to paw A: where B's touch-downs fall in A's step cycles (0-1, circular
   mean); LF-RH and RF-LH are the diagonals, LF-RF and LH-RH the girdles. Base of support: the distance
   between the left and right paw of a girdle, across the bout's heading, for stances nearest in time.
   Regularity index (Cheng 1997): 4 x the normal step-sequence patterns (Ca, Cb, Aa, Ab, Ra, Rb, counted
   without overlap in the order of touch-down, fore before hind at the same frame) / paw placements x 100.
5. **Prints** (:mod:`behavior.features.gait_prints`), when the video is given: area and intensity of the
   print under each stance; a video without prints (under ``min_print_fraction`` of the stances with a
   print) gives NaN print measures with the reason.
6. **Measures.** Means per paw over the kept bouts; a paw with fewer than ``min_strides_per_paw``
   strides gets NaN measures with the reason ``too_few_strides``; a session with no kept bout is an
   error naming why each candidate was dropped.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from behavior.assays import AssaySpec, MeasureSpec, ReportContext, ReportItem, register_assay
from behavior.features.base import AssayResult, Measure
from behavior.session import Session

__all__ = [
    "PAWS",
    "GaitAnalysis",
    "GaitConfig",
    "GaitError",
    "analyse_gait",
    "body_motion",
    "detect_stances",
    "extract_gait",
    "footfall_figure",
    "locomotion_bouts",
    "paw_tracks",
]

PAWS = ("left_fore", "right_fore", "left_hind", "right_hind")
PAW_CODES = {"left_fore": "LF", "right_fore": "RF", "left_hind": "LH", "right_hind": "RH"}
#: Inter-limb phase pairs (reference paw, other paw).
PHASE_PAIRS = (
    ("left_fore", "right_hind"),
    ("right_fore", "left_hind"),
    ("left_fore", "right_fore"),
    ("left_hind", "right_hind"),
)
#: Cheng et al. 1997's normal step sequence patterns.
NORMAL_PATTERNS = {
    ("RF", "LF", "RH", "LH"): "Ca",
    ("LF", "RF", "LH", "RH"): "Cb",
    ("RF", "LH", "LF", "RH"): "Aa",
    ("LF", "RH", "RF", "LH"): "Ab",
    ("RF", "LF", "LH", "RH"): "Ra",
    ("LF", "RF", "RH", "LH"): "Rb",
}
#: Keypoint names other tools give the paws, tried when the configured name is not in the poses.
PAW_ALIASES: dict[str, tuple[str, ...]] = {
    "left_fore": (
        "left_fore",
        "lf",
        "fl",
        "l_frontpaw",
        "left_forepaw",
        "forepaw_l",
        "paw2lf",
        "left_front_paw",
        "frontleft",
        "lfpaw",
        "frontpawl",
        "forehandleft",
    ),
    "right_fore": (
        "right_fore",
        "rf",
        "fr",
        "r_frontpaw",
        "right_forepaw",
        "forepaw_r",
        "paw3rf",
        "right_front_paw",
        "frontright",
        "rfpaw",
        "frontpawr",
        "forehandright",
    ),
    "left_hind": (
        "left_hind",
        "lh",
        "hl",
        "l_hindpaw",
        "left_hindpaw",
        "hindpaw_l",
        "paw1lh",
        "left_hind_paw",
        "hindleft",
        "lhpaw",
        "hindpawl",
        "hindhandleft",
    ),
    "right_hind": (
        "right_hind",
        "rh",
        "hr",
        "r_hindpaw",
        "right_hindpaw",
        "hindpaw_r",
        "paw4rh",
        "right_hind_paw",
        "hindright",
        "rhpaw",
        "hindpawr",
        "hindhandright",
    ),
}
BODY_ALIASES = {
    "snout": ("snout", "nose", "mouth", "head"),
    "tailbase": ("tailbase", "tail_base", "base_of_tail", "tail_root", "tailroot", "butt", "butt/proximal tail"),
}
RATIO_MEASURES = (
    ("print_area", "print_area_mm2", "print area"),
    ("stance", "stance_duration_s", "stance duration"),
    ("print_intensity", "print_intensity_mean", "mean print intensity"),
    ("duty_cycle", "duty_cycle", "duty cycle"),
    ("max_contact_area", "max_contact_area_mm2", "max contact area"),
)
PAW_MEASURES = (
    ("stance_duration_s", "s"),
    ("swing_duration_s", "s"),
    ("step_cycle_s", "s"),
    ("duty_cycle", "fraction"),
    ("stride_length_mm", "mm"),
    ("swing_speed_mm_s", "mm/s"),
    ("print_area_mm2", "mm2"),
    ("max_contact_area_mm2", "mm2"),
    ("print_intensity_mean", "grey"),
    ("print_intensity_max", "grey"),
)
#: The session measures of ``measures: core`` (each measure costs the study report a model fit and a plot).
CORE_MEASURES = (
    "print_area_ratio_ipsi_contra",
    "stance_ratio_ipsi_contra",
    "print_intensity_ratio_ipsi_contra",
    "duty_cycle_ratio_ipsi_contra",
    "stride_length_mm",
    "duty_cycle",
    "cadence_hz",
    "body_speed_mm_s",
    "base_of_support_hind_mm",
    "regularity_index_percent",
)
PRINT_MEASURES = {"print_area_mm2", "max_contact_area_mm2", "print_intensity_mean", "print_intensity_max"}


class GaitError(ValueError):
    """Gait input that cannot be scored (no frame rate, no scale, a paw missing, no steady bout)."""


# --------------------------------------------------------------------------------------------- config


class ContactParams(BaseModel):
    """How stance is told from swing (see the module docstring, step 2)."""

    model_config = ConfigDict(extra="forbid")
    min_confidence: float = Field(0.5, ge=0, le=1)
    max_gap_s: float = Field(0.03, ge=0, description="untracked gaps up to this long are filled linearly")
    smooth_s: float = Field(0.02, ge=0, description="moving-average window of the positions for the speed")
    stance_speed_bl_s: float = Field(0.5, gt=0, description="enter stance under this speed (body lengths/s)")
    swing_speed_bl_s: float = Field(1.0, gt=0, description="leave stance over this speed (body lengths/s)")
    min_stance_s: float = Field(0.02, ge=0)
    min_swing_s: float = Field(0.02, ge=0)
    refine_s: float = Field(0.03, ge=0, description="how far each stance edge may move to the still frames")
    jitter_factor: float = Field(2.0, gt=0)
    min_still_step_px: float = Field(1e-3, gt=0)
    max_stance_height_mm: float = Field(3.0, gt=0, description="side view: highest paw in stance")
    floor_percentile: float = Field(95.0, gt=50, le=100, description="side view: floor line from paw y")


class BoutParams(BaseModel):
    """Which stretches of locomotion steps are taken from (see the module docstring, step 3)."""

    model_config = ConfigDict(extra="forbid")
    body_keypoints: list[str] = Field(default_factory=lambda: ["tailbase", "snout"])
    velocity_window_s: float = Field(0.1, gt=0)
    min_speed_bl_s: float = Field(0.75, gt=0)
    max_turn_deg_s: float = Field(120.0, gt=0)
    merge_gap_s: float = Field(0.1, ge=0)
    min_duration_s: float = Field(0.3, gt=0)
    max_speed_cv: float = Field(0.35, gt=0)
    min_strides: int = Field(2, ge=1, description="strides (all paws) a bout needs to be kept")


class PrintParams(BaseModel):
    """Print area and intensity from the video (:mod:`behavior.features.gait_prints`)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    window_mm: float = Field(5.0, gt=0)
    min_contrast: float = Field(40.0, gt=0, description="least background-subtracted grey of a print")
    background_frames: int = Field(60, ge=1)
    min_print_fraction: float = Field(0.5, ge=0, le=1)


class JointAngleSpec(BaseModel):
    """One joint angle: the angle at ``joint`` between the segments to ``lower`` and ``upper`` (AutoGaitA's)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    joint: str
    lower: str
    upper: str
    limb: Literal["hind", "fore"] = Field("hind", description="whose step cycles the angle is normalised over")


def _default_angles() -> list[JointAngleSpec]:
    return [
        JointAngleSpec(name="ankle", joint="ankle", lower="hind_paw", upper="knee"),
        JointAngleSpec(name="knee", joint="knee", lower="ankle", upper="hip"),
        JointAngleSpec(name="hip", joint="hip", lower="knee", upper="iliac_crest"),
        JointAngleSpec(limb="fore", name="wrist", joint="wrist", lower="fore_paw", upper="elbow"),
        JointAngleSpec(limb="fore", name="elbow", joint="elbow", lower="wrist", upper="lower_shoulder"),
        JointAngleSpec(limb="fore", name="shoulder", joint="lower_shoulder", lower="elbow", upper="upper_shoulder"),
    ]


class SideViewParams(BaseModel):
    """Side view (beam, treadmill; ``mode: side``): see :mod:`behavior.features.gait_side`."""

    model_config = ConfigDict(extra="forbid")
    paw_keypoints: dict[Literal["hind", "fore"], str] = Field(
        default_factory=lambda: {"hind": "hind_paw", "fore": "fore_paw"},
        description="the paws the side camera sees (the near side); aliases such as 'Hind paw tao' are found",
    )
    required_paws: list[Literal["hind", "fore"]] = Field(default_factory=lambda: ["hind"])
    floor_keypoints: list[str] = Field(
        default_factory=list, description="keypoints on the floor line (beam edge); empty = from the paws' lowest y"
    )
    floor_bins: int = Field(8, ge=1, description="x bins whose floor_percentile of paw y the floor line is fitted to")
    direction: Literal["auto", "left_to_right", "right_to_left"] = "auto"
    treadmill_speed_mm_s: float = Field(0.0, ge=0, description="belt speed: a paw on the belt moves back at it")
    max_cycle_s: float = Field(1.0, gt=0, description="a longer step cycle (a pause) is not a cycle")
    bins: int = Field(25, ge=2, description="bins of the normalised step cycle (AutoGaitA: 25)")
    joint_angles: list[JointAngleSpec] = Field(default_factory=_default_angles)


class TreadmillParams(BaseModel):
    """A bottom view of an animal on a belt or wheel (head-fixed or held in place): the belt's motion is
    added back to every keypoint, so a paw on the belt is still and the body walks at the belt's speed,
    and the walkway analysis applies unchanged."""

    model_config = ConfigDict(extra="forbid")
    speed_mm_s: float | Literal["auto"] | None = Field(
        None,
        description="belt speed; 'auto': the commonest backward paw speed (paws in stance move with the belt); "
        "None: not on a treadmill",
    )
    heading: Literal["auto", "+x", "-x", "+y", "-y"] = Field(
        "auto", description="where the animal faces in the image; auto: the tail base -> snout axis"
    )


class GaitConfig(BaseModel):
    """``configs/assays/gait.yaml``."""

    model_config = ConfigDict(extra="forbid")
    assay: Literal["gait"] = "gait"
    mode: Literal["walkway", "open-field", "side"] = "walkway"
    paw_keypoints: dict[Literal["left_fore", "right_fore", "left_hind", "right_hind"], str] = Field(
        default_factory=lambda: {p: p for p in PAWS}
    )
    treadmill: TreadmillParams = TreadmillParams()
    body_length_mm: float | None = Field(None, gt=0, description="None = median snout - tail-base distance")
    default_body_length_mm: float = Field(80.0, gt=0, description="when neither is known (a mouse)")
    min_strides_per_paw: int = Field(1, ge=1)
    measures: Literal["core", "all"] = Field(
        "core", description="core: the pain ratios and session figures; all: also per paw, phases, base of support"
    )
    contacts: ContactParams = ContactParams()
    bouts: BoutParams = BoutParams()
    prints: PrintParams = PrintParams()
    side_view: SideViewParams = SideViewParams()


# ---------------------------------------------------------------------------------------------- tracks


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _find_keypoint(names: Sequence[str], wanted: str, aliases: Sequence[str]) -> str | None:
    if wanted in names:
        return wanted
    by_norm = {_norm(n): n for n in names}
    for alias in (wanted, *aliases):
        if _norm(alias) in by_norm:
            return by_norm[_norm(alias)]
    return None


def paw_tracks(
    poses: Any, config: GaitConfig, *, paws: Sequence[str] = PAWS
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, str]]:
    """Paw and body keypoint tracks ``(n, 2)`` in pixels (NaN where missing or under ``min_confidence``).

    Paws are found by the names in ``paw_keypoints``; a paw left at its default name is also found by
    common aliases (``L_frontpaw``, ``FL``...). Returns ``(paw tracks, body tracks, {role: keypoint name})``.

    Raises
    ------
    GaitError
        If a paw of ``paws`` is not among the poses' keypoints (one line naming it and the keypoints).
    """
    names = [str(k) for k in poses["keypoints"].values]
    pos = np.asarray(poses["position"].values, dtype=np.float64)
    if pos.ndim != 4 or pos.shape[1] < 2:
        raise GaitError(f"expected poses (time, space, keypoints, individuals), got shape {pos.shape}")
    pos = pos[:, :2, :, 0]
    conf = poses["confidence"].values[:, :, 0] if "confidence" in poses else np.ones(pos.shape[::2])
    low = ~(np.nan_to_num(conf, nan=1.0) >= config.contacts.min_confidence)
    used: dict[str, str] = {}
    missing = []
    tracks: dict[str, np.ndarray] = {}
    for paw in paws:
        wanted = config.paw_keypoints.get(paw, paw)  # type: ignore[call-overload]
        # aliases only stand in for the default name: a name the user set must be there
        name = _find_keypoint(names, wanted, PAW_ALIASES[paw] if wanted == paw else ())
        if name is None:
            missing.append(f"{paw} ({config.paw_keypoints.get(paw, paw)})")  # type: ignore[call-overload]
            continue
        j = names.index(name)
        xy = pos[:, :, j].copy()
        xy[low[:, j]] = np.nan
        tracks[paw] = xy
        used[paw] = name
    if missing:
        raise GaitError(
            f"gait ({config.mode}) needs the paw keypoints {', '.join(missing)}, expected among the poses' "
            f"{names} (set paw_keypoints.<paw>=<name>)"
        )
    body: dict[str, np.ndarray] = {}
    for role in config.bouts.body_keypoints:
        name = _find_keypoint(names, role, BODY_ALIASES.get(role, ()))
        if name is None:
            continue
        j = names.index(name)
        xy = pos[:, :, j].copy()
        xy[low[:, j]] = np.nan
        body[role] = xy
        used[role] = name
    return tracks, body, used


def fill_gaps(xy: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill runs of up to ``max_gap`` missing rows of ``xy`` (n, d) linearly (not at the ends)."""
    xy = np.array(xy, dtype=np.float64)
    ok = np.isfinite(xy).all(axis=1)
    xy[~ok] = np.nan
    if max_gap <= 0 or ok.all() or ok.sum() < 2:
        return xy
    idx = np.arange(len(xy))
    good = np.flatnonzero(ok)
    prev = np.maximum.accumulate(np.where(ok, idx, -1))
    nxt = np.minimum.accumulate(np.where(ok, idx, len(xy))[::-1])[::-1]
    fill = ~ok & (prev >= 0) & (nxt < len(xy)) & (nxt - prev - 1 <= max_gap)
    for d in range(xy.shape[1]):
        xy[fill, d] = np.interp(idx[fill], good, xy[good, d])
    return xy


def _smooth(xy: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` frames (NaN where the window holds a NaN)."""
    if width <= 1:
        return xy
    k = width // 2
    bad = ~np.isfinite(xy)
    c = np.cumsum(np.vstack([np.zeros((1, xy.shape[1])), np.where(bad, 0.0, xy)]), axis=0)
    nb = np.cumsum(np.vstack([np.zeros((1, xy.shape[1])), bad]), axis=0)
    out = np.full_like(xy, np.nan)
    n = len(xy)
    if n > 2 * k:
        total = c[2 * k + 1 :] - c[: n - 2 * k]
        missing = nb[2 * k + 1 :] - nb[: n - 2 * k]
        out[k : n - k] = np.where(missing > 0, np.nan, total / (2 * k + 1))
    return out


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and inclusive end indices of the True runs of ``mask``."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1


def _heading(body: Mapping[str, np.ndarray], params: TreadmillParams) -> np.ndarray:
    """Unit vector (image axes) the animal faces: the config's, or the median tail base -> snout direction."""
    fixed = {"+x": (1.0, 0.0), "-x": (-1.0, 0.0), "+y": (0.0, 1.0), "-y": (0.0, -1.0)}
    if params.heading != "auto":
        return np.array(fixed[params.heading])
    if "snout" in body and "tailbase" in body:
        axis = body["snout"] - body["tailbase"]
        axis = axis[np.isfinite(axis).all(axis=1)]
        if len(axis) >= 10:
            u = np.median(axis / np.linalg.norm(axis, axis=1, keepdims=True).clip(1e-9), axis=0)
            if np.linalg.norm(u) > 0.5:  # a steady axis (head-fixed or held in a lane)
                return u / np.linalg.norm(u)
    raise GaitError(
        "treadmill: expected snout and tail base to find where the animal faces, got none steady "
        "(set treadmill.heading to +x, -x, +y or -y)"
    )


def belt_speed_mm_s(tracks: Mapping[str, np.ndarray], heading: np.ndarray, fps: float, px_per_mm: float) -> float:
    """The belt's speed from the paws: the commonest speed backwards along ``heading`` (paws in stance
    move with the belt, most of the time; swings are forward and spread out).

    Raises
    ------
    GaitError
        When the paws hardly move backwards (no belt, or no tracking).
    """
    back = []
    for xy in tracks.values():
        if len(xy) < 3:
            continue
        v = -(np.gradient(xy, axis=0) @ heading) * fps / px_per_mm  # mm/s, positive = backwards
        back.append(v[np.isfinite(v)])
    v = np.concatenate(back) if back else np.zeros(0)
    v = v[v > 0]
    if v.size < 20:
        raise GaitError(
            f"treadmill: expected paws moving back with the belt, got {v.size} backward paw frames "
            "(give treadmill.speed_mm_s)"
        )
    hi = float(np.percentile(v, 99))
    counts, edges = np.histogram(v, bins=40, range=(0.0, hi))
    k = int(np.argmax(counts))
    near = v[(v >= edges[max(k - 1, 0)]) & (v <= edges[min(k + 2, len(edges) - 1)])]
    return float(np.median(near))


def on_the_belt(
    tracks: Mapping[str, np.ndarray],
    body: Mapping[str, np.ndarray],
    fps: float,
    px_per_mm: float,
    params: TreadmillParams,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Add the belt's motion back to every track: ``x + v t`` along the heading, so stance is still.

    Returns the shifted paw and body tracks and ``{"speed_mm_s", "speed_source", "heading"}``.
    """
    heading = _heading(body, params)
    if params.speed_mm_s == "auto":
        speed, source = belt_speed_mm_s(tracks, heading, fps, px_per_mm), "auto"
    else:
        speed, source = float(params.speed_mm_s), "config"
    n = len(next(iter(tracks.values())))
    shift = (np.arange(n) / fps * speed * px_per_mm)[:, None] * heading[None, :]
    moved = {k: v + shift for k, v in tracks.items()}
    body_moved = {k: v + shift for k, v in body.items()}
    return moved, body_moved, {"speed_mm_s": round(speed, 3), "speed_source": source, "heading": heading.tolist()}


def _held_in_place_hint(
    tracks: Mapping[str, np.ndarray], n_strides: int, fps: float, px_per_mm: float, bl: float, belt: Any
) -> str:
    """A hint for the no-bout error when the paws never stand still although they move all the time: the
    floor moves under them (a belt or wheel)."""
    if belt is not None or n_strides > 0 or min(len(xy) for xy in tracks.values()) < 3:
        return ""  # a recording of a frame or two says nothing about a belt
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an untracked paw: all-NaN median
        paw_speed = [np.nanmedian(np.hypot(*np.gradient(xy, axis=0).T)) * fps / px_per_mm for xy in tracks.values()]
    if not np.isfinite(paw_speed).any() or np.nanmedian(paw_speed) < 0.5 * bl:
        return ""
    return "; the body stays in place while the paws step: on a belt or wheel set treadmill.speed_mm_s (or auto)"


def body_length_mm(body: Mapping[str, np.ndarray], px_per_mm: float, config: GaitConfig) -> tuple[float, str]:
    """Body length (mm) and where it came from: the config, the snout - tail-base distance, or the default."""
    if config.body_length_mm is not None:
        return float(config.body_length_mm), "config"
    if "snout" in body and "tailbase" in body:
        d = np.hypot(*(body["snout"] - body["tailbase"]).T)
        d = d[np.isfinite(d)]
        if d.size >= 10:
            return float(np.median(d)) / px_per_mm, "snout_tailbase"
    return float(config.default_body_length_mm), "default"


# -------------------------------------------------------------------------------------------- contacts


def detect_stances(
    xy: np.ndarray,
    fps: float,
    px_per_mm: float,
    body_length_mm: float,
    params: ContactParams,
    *,
    contact_ok: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Stances of one paw from its track ``xy`` (n, 2) in pixels.

    Parameters
    ----------
    contact_ok
        Frames where a contact is possible at all (side view: the paw is near the floor); default all.

    Returns
    -------
    stances
        One row per stance: ``start_frame``, ``end_frame`` (inclusive), ``x_px``, ``y_px`` (anchor: mean
        position), ``complete`` (neither end touches an untracked frame or the recording's ends).
    state
        Per frame: 1 stance, 0 swing, -1 untracked.
    """
    n = len(xy)
    xy = fill_gaps(xy, round(params.max_gap_s * fps))
    tracked = np.isfinite(xy).all(axis=1)
    state = np.where(tracked, 0, -1).astype(np.int8)
    empty = pd.DataFrame(
        {
            "start_frame": np.array([], int),
            "end_frame": np.array([], int),
            "x_px": np.array([], float),
            "y_px": np.array([], float),
            "complete": np.array([], bool),
        }
    )
    if n < 3 or tracked.sum() < 3:
        return empty, state
    sm = _smooth(xy, max(1, round(params.smooth_s * fps) | 1))
    vel = np.full_like(sm, np.nan)
    vel[1:-1] = (sm[2:] - sm[:-2]) * (fps / 2)
    speed = np.hypot(vel[:, 0], vel[:, 1]) / px_per_mm
    lo, hi = params.stance_speed_bl_s * body_length_mm, params.swing_speed_bl_s * body_length_mm
    dec = np.full(n, -1, np.int8)
    dec[speed < lo] = 1
    dec[speed > hi] = 0
    if contact_ok is not None:
        dec[~contact_ok] = 0
    dec[~tracked] = 0  # an untracked frame ends any stance
    known = np.isfinite(speed) | ~tracked
    # edge frames whose speed is undefined but are tracked: undecided, they carry the state
    idx = np.where((dec >= 0) & known, np.arange(n), -1)
    idx = np.maximum.accumulate(idx)
    stance = np.where(idx >= 0, dec[np.maximum(idx, 0)], 0) == 1
    stance &= tracked
    starts, ends = _runs(stance)
    # close short swings between stances (only over tracked frames), then drop short stances
    min_sw = round(params.min_swing_s * fps)
    if starts.size > 1 and min_sw > 0:
        gap = starts[1:] - ends[:-1] - 1
        cum_untracked = np.concatenate([[0], np.cumsum(~tracked)])
        gap_untracked = cum_untracked[starts[1:]] - cum_untracked[ends[:-1] + 1]
        close = (gap < min_sw) & (gap_untracked == 0)
        if close.any():
            keep_start = np.concatenate([[True], ~close])
            keep_end = np.concatenate([~close, [True]])
            starts, ends = starts[keep_start], ends[keep_end]
    min_st = max(1, round(params.min_stance_s * fps))
    long_enough = ends - starts + 1 >= min_st
    starts, ends = starts[long_enough], ends[long_enough]
    if starts.size == 0:
        return empty, state
    # refine edges to the frames where the raw keypoint is still
    step = np.hypot(*np.diff(xy, axis=0).T)  # step[i]: frame i -> i + 1
    inner = np.zeros(n, bool)
    for a, b in zip(starts, ends, strict=True):
        inner[a + 1 : b] = True
    core_steps = step[inner[:-1] & inner[1:]] if n > 1 else np.array([])
    core_steps = core_steps[np.isfinite(core_steps)]
    tol = max(params.min_still_step_px, params.jitter_factor * float(np.median(core_steps)) if core_steps.size else 0.0)
    fwd = np.concatenate([step, [np.inf]])
    bwd = np.concatenate([[np.inf], step])
    still = (np.nan_to_num(fwd, nan=np.inf) <= tol) | (np.nan_to_num(bwd, nan=np.inf) <= tol)
    if contact_ok is not None:
        still &= contact_ok
    still &= tracked
    reach = round(params.refine_s * fps)
    starts, ends = starts.copy(), ends.copy()
    for k in range(starts.size):
        a, b = int(starts[k]), int(ends[k])
        lo_a = max(a - reach, int(ends[k - 1]) + 2 if k else 0)
        hi_b = min(b + reach, int(starts[k + 1]) - 2 if k + 1 < starts.size else n - 1)
        while a - 1 >= lo_a and still[a - 1]:
            a -= 1
        moved = 0
        while a < b and not still[a] and moved < reach:
            a += 1
            moved += 1
        while b + 1 <= hi_b and still[b + 1]:
            b += 1
        moved = 0
        while b > a and not still[b] and moved < reach:
            b -= 1
            moved += 1
        starts[k], ends[k] = a, b
    cum = np.concatenate([[0], np.cumsum(tracked)])
    csum = np.vstack([np.zeros((1, 2)), np.cumsum(np.nan_to_num(xy), axis=0)])
    anchors = (csum[ends + 1] - csum[starts]) / (ends - starts + 1)[:, None]  # mean position in stance
    complete = (starts > 0) & (ends < n - 1)
    complete &= tracked[np.maximum(starts - 1, 0)] & tracked[np.minimum(ends + 1, n - 1)]
    complete &= (cum[ends + 1] - cum[starts]) == (ends - starts + 1)
    for a, b in zip(starts, ends, strict=True):
        state[a : b + 1] = 1
    state[~tracked] = -1
    stances = pd.DataFrame(
        {"start_frame": starts, "end_frame": ends, "x_px": anchors[:, 0], "y_px": anchors[:, 1], "complete": complete}
    )
    return stances, state


# ----------------------------------------------------------------------------------------------- bouts


def body_motion(
    body: Mapping[str, np.ndarray], fps: float, px_per_mm: float, window_s: float, max_gap_s: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body velocity from the body keypoints: ``(velocity (n, 2) mm/s, speed mm/s, turn rate deg/s)``.

    The velocity is the mean of the keypoints' central differences over ``window_s`` (each tracked
    keypoint counts; a frame with none is NaN).
    """
    if not body:
        raise GaitError("expected body keypoints (tail base or snout) for the body speed, got none in the poses")
    n = len(next(iter(body.values())))
    k = max(1, round(window_s * fps / 2))
    total = np.zeros((n, 2))
    count = np.zeros(n)
    for xy in body.values():
        xy = fill_gaps(xy, round(max_gap_s * fps))
        v = np.full_like(xy, np.nan)
        if n > 2 * k:
            v[k : n - k] = (xy[2 * k :] - xy[: n - 2 * k]) * (fps / (2 * k)) / px_per_mm
        ok = np.isfinite(v).all(axis=1)
        total[ok] += v[ok]
        count += ok
    vel = np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], np.nan)
    speed = np.hypot(vel[:, 0], vel[:, 1])
    heading = np.arctan2(vel[:, 1], vel[:, 0])
    turn = np.full(n, np.nan)
    ok = np.isfinite(heading)
    if ok.sum() > 2 * k + 1:
        h = heading.copy()
        h[ok] = np.unwrap(heading[ok])
        turn[k : n - k] = np.abs(h[2 * k :] - h[: n - 2 * k]) * (fps / (2 * k))
        turn = np.degrees(turn)
    return vel, speed, turn


def locomotion_bouts(
    speed: np.ndarray, turn: np.ndarray, fps: float, body_length_mm: float, params: BoutParams
) -> pd.DataFrame:
    """Candidate bouts of steady, straight locomotion (before the stride count is known).

    Returns one row per candidate: ``start_frame``, ``end_frame``, ``body_speed_mm_s``, ``speed_cv``,
    ``kept``, ``reason`` (why it was dropped; empty when kept).
    """
    moving = (np.nan_to_num(speed) >= params.min_speed_bl_s * body_length_mm) & (
        np.nan_to_num(turn, nan=np.inf) <= params.max_turn_deg_s
    )
    starts, ends = _runs(moving)
    gap = round(params.merge_gap_s * fps)
    if starts.size > 1 and gap > 0:
        close = starts[1:] - ends[:-1] - 1 <= gap
        starts = starts[np.concatenate([[True], ~close])]
        ends = ends[np.concatenate([~close, [True]])]
    rows = []
    min_len = round(params.min_duration_s * fps)
    for a, b in zip(starts, ends, strict=True):
        if b - a + 1 < min_len:
            continue
        s = speed[a : b + 1]
        s = s[np.isfinite(s)]
        mean = float(s.mean()) if s.size else float("nan")
        cv = float(s.std() / mean) if s.size and mean > 0 else float("nan")
        reason = "" if cv <= params.max_speed_cv else f"speed not steady (cv {cv:.2f} > {params.max_speed_cv:g})"
        rows.append(
            {
                "start_frame": int(a),
                "end_frame": int(b),
                "body_speed_mm_s": mean,
                "speed_cv": cv,
                "kept": not reason,
                "reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=["start_frame", "end_frame", "body_speed_mm_s", "speed_cv", "kept", "reason"])


# ------------------------------------------------------------------------------------- steps and strides


def _circ_mean(phases: np.ndarray) -> float:
    if phases.size == 0:
        return float("nan")
    ang = 2 * np.pi * phases
    return float((np.arctan2(np.sin(ang).mean(), np.cos(ang).mean()) / (2 * np.pi)) % 1.0)


def _strides(stances: pd.DataFrame, fps: float, px_per_mm: float) -> pd.DataFrame:
    """Strides of one paw: consecutive complete stances of the same bout, the swing between fully tracked."""
    cols = [
        "bout",
        "start_frame",
        "next_start_frame",
        "stance_duration_s",
        "swing_duration_s",
        "step_cycle_s",
        "duty_cycle",
        "stride_length_mm",
        "swing_speed_mm_s",
    ]
    if len(stances) < 2:
        return pd.DataFrame(columns=cols)
    s = stances.reset_index(drop=True)
    a, b = s.iloc[:-1].reset_index(drop=True), s.iloc[1:].reset_index(drop=True)
    ok = (
        a["complete"].to_numpy(bool)
        & b["complete"].to_numpy(bool)
        & (a["bout"].to_numpy() >= 0)
        & (a["bout"].to_numpy() == b["bout"].to_numpy())
        & (b["start_frame"].to_numpy() - a["end_frame"].to_numpy() >= 2)
        & a["swing_tracked"].to_numpy(bool)
    )
    a, b = a[ok], b[ok]
    stance = (a["end_frame"] - a["start_frame"] + 1).to_numpy(float) / fps
    cycle = (b["start_frame"] - a["start_frame"]).to_numpy(float) / fps
    swing = (b["start_frame"].to_numpy() - a["end_frame"].to_numpy() - 1) / fps
    stride = np.hypot(b["x_px"].to_numpy() - a["x_px"].to_numpy(), b["y_px"].to_numpy() - a["y_px"].to_numpy())
    stride = stride / px_per_mm
    return pd.DataFrame(
        {
            "bout": a["bout"].to_numpy(int),
            "start_frame": a["start_frame"].to_numpy(int),
            "next_start_frame": b["start_frame"].to_numpy(int),
            "stance_duration_s": stance,
            "swing_duration_s": swing,
            "step_cycle_s": cycle,
            "duty_cycle": stance / cycle,
            "stride_length_mm": stride,
            "swing_speed_mm_s": stride / swing,
        },
        columns=cols,
    )


def _phase(ref: pd.DataFrame, other: pd.DataFrame) -> np.ndarray:
    """Phases of ``other``'s touch-downs in ``ref``'s step cycles (same bout), each in [0, 1).

    A touch-down counts in the stride whose cycle, shifted back by half a cycle, holds it, so that one
    falling on the reference's next touch-down (phase 1 = 0) is not lost.
    """
    if ref.empty or other.empty:
        return np.array([])
    s0 = ref["start_frame"].to_numpy(float)
    c = ref["next_start_frame"].to_numpy(float) - s0
    bout = ref["bout"].to_numpy(float)
    lo = s0 - c / 2
    span = float(max(s0.max(), other["start_frame"].max()) + c.max() + 10)
    key = bout * span + lo
    order = np.argsort(key, kind="stable")
    key, s0, c, lo, bout = key[order], s0[order], c[order], lo[order], bout[order]
    t = other["start_frame"].to_numpy(float)
    ob = other["bout"].to_numpy(float)
    i = np.searchsorted(key, ob * span + t, side="right") - 1
    ok = i >= 0
    i = np.maximum(i, 0)
    ok &= (bout[i] == ob) & (t >= lo[i]) & (t < lo[i] + c[i])
    return ((t[ok] - s0[i[ok]]) / c[i[ok]]) % 1.0


def regularity_index(placements: pd.DataFrame) -> tuple[float, int, int]:
    """Cheng 1997's regularity index (%) of one bout's placements (``paw``, ``start_frame``).

    Returns ``(index, normal patterns, placements)``; NaN with fewer than 4 placements.
    """
    if len(placements) < 4:
        return float("nan"), 0, len(placements)
    order = placements.assign(hind=placements["paw"].str.endswith("hind")).sort_values(
        ["start_frame", "hind"], kind="stable"
    )
    seq = [PAW_CODES[p] for p in order["paw"]]
    i, normal = 0, 0
    while i + 4 <= len(seq):
        if tuple(seq[i : i + 4]) in NORMAL_PATTERNS:
            normal += 1
            i += 4
        else:
            i += 1
    return 100.0 * 4 * normal / len(seq), normal, len(seq)


def _regularity_counts(placements: pd.DataFrame) -> tuple[int, int]:
    """Normal step patterns and placements over every bout of ``placements`` (bouts under 4 placements left out)."""
    if placements.empty:
        return 0, 0
    order = np.lexsort(
        (
            placements["paw"].str.endswith("hind").to_numpy(bool),
            placements["start_frame"].to_numpy(int),
            placements["bout"].to_numpy(int),
        )
    )
    codes = [PAW_CODES[p] for p in placements["paw"].to_numpy()[order]]
    bouts = placements["bout"].to_numpy(int)[order]
    edges = np.flatnonzero(np.diff(bouts)) + 1
    normal = total = 0
    for a, b in zip(np.r_[0, edges], np.r_[edges, len(codes)], strict=True):
        if b - a < 4:
            continue
        total += int(b - a)
        i = int(a)
        while i + 4 <= b:
            if tuple(codes[i : i + 4]) in NORMAL_PATTERNS:
                normal += 1
                i += 4
            else:
                i += 1
    return normal, total


def _base_of_support(
    left: pd.DataFrame, right: pd.DataFrame, headings: Mapping[int, np.ndarray], px_per_mm: float
) -> np.ndarray:
    """Across-heading distance (mm) between each left stance and the right stance nearest in time (same bout)."""
    if left.empty or right.empty:
        return np.array([])
    lb, rb = left["bout"].to_numpy(int), right["bout"].to_numpy(int)
    lm = ((left["start_frame"] + left["end_frame"]) / 2).to_numpy(float)
    rm = ((right["start_frame"] + right["end_frame"]) / 2).to_numpy(float)
    span = float(max(lm.max(), rm.max()) * 4 + 10)
    rkey = rb * span + rm
    order = np.argsort(rkey, kind="stable")
    rkey, rb, rxy = rkey[order], rb[order], right[["x_px", "y_px"]].to_numpy(float)[order]
    lkey = lb * span + lm
    j = np.clip(np.searchsorted(rkey, lkey), 1, len(rkey) - 1) if len(rkey) > 1 else np.zeros(len(lkey), int)
    if len(rkey) > 1:
        j = np.where(np.abs(rkey[j - 1] - lkey) <= np.abs(rkey[j] - lkey), j - 1, j)
    ok = rb[j] == lb
    heading = np.array([headings.get(int(b), (np.nan, np.nan)) for b in lb])
    d = rxy[j] - left[["x_px", "y_px"]].to_numpy(float)
    dist = np.abs(d[:, 0] * heading[:, 1] - d[:, 1] * heading[:, 0]) / px_per_mm
    ok &= np.isfinite(dist)
    return dist[ok]


# --------------------------------------------------------------------------------------------- analysis


@dataclass
class GaitAnalysis:
    """Everything :func:`analyse_gait` found: tables, per-paw summaries, session figures."""

    stances: pd.DataFrame
    strides: pd.DataFrame
    bouts: pd.DataFrame
    state: dict[str, np.ndarray]
    paw_summary: dict[str, dict[str, tuple[float, int, str]]]
    session: dict[str, tuple[float, str, int, str]]
    quality: dict[str, Any] = field(default_factory=dict)


def _check_inputs(fps: float, px_per_mm: float | None) -> None:
    if fps is None or not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise GaitError(f"expected the frame rate fps > 0, got {fps}")
    if px_per_mm is None or not (math.isfinite(px_per_mm) and px_per_mm > 0):
        raise GaitError(
            f"expected the video scale px_per_mm > 0 (gait figures are in mm), got {px_per_mm}: "
            "give the session's px_per_mm (--px-per-mm)"
        )


def analyse_gait(
    poses: Any,
    fps: float,
    px_per_mm: float | None,
    config: GaitConfig,
    *,
    video: str | Path | None = None,
    progress: Callable[[float], None] | None = None,
) -> GaitAnalysis:
    """Stances, strides, bouts and summaries of one recording (see the module docstring).

    Raises
    ------
    GaitError
        For fps <= 0, no px_per_mm, a paw keypoint missing, or no bout of steady locomotion.
    """
    _check_inputs(fps, px_per_mm)
    assert px_per_mm is not None
    if config.mode == "side":
        raise GaitError(
            "expected a bottom-up mode (walkway, open-field) for analyse_gait, got side: a side view sees one side "
            "of the animal; use behavior.features.gait_side.analyse_side_view"
        )
    tracks, body, used = paw_tracks(poses, config)
    n = len(next(iter(tracks.values())))
    belt = None
    if config.treadmill.speed_mm_s is not None:
        tracks, body, belt = on_the_belt(tracks, body, fps, px_per_mm, config.treadmill)
    bl, bl_source = body_length_mm(body, px_per_mm, config)
    p = config.contacts
    unit = "run" if config.mode == "walkway" else "bout"
    if not body:
        # no tail base / snout: the body moves with the mean of the tracked paws
        paws_xy = np.stack(list(tracks.values()))
        ok = np.isfinite(paws_xy).all(axis=2)
        body = {"paws_centroid": np.where(ok.all(axis=0)[:, None], np.nanmean(paws_xy, axis=0), np.nan)}
    vel, speed, turn = body_motion(body, fps, px_per_mm, config.bouts.velocity_window_s, max(p.max_gap_s, 0.1))
    bouts = locomotion_bouts(speed, turn, fps, bl, config.bouts)
    contact_ok: dict[str, np.ndarray | None] = {paw: None for paw in PAWS}
    # stances of every paw, assigned to the candidate bout holding their middle frame
    frames = []
    state: dict[str, np.ndarray] = {}
    bout_of_frame = np.full(n, -1)
    for i, r in bouts.iterrows():
        bout_of_frame[int(r["start_frame"]) : int(r["end_frame"]) + 1] = int(i)
    for paw in PAWS:
        st, state[paw] = detect_stances(tracks[paw], fps, px_per_mm, bl, p, contact_ok=contact_ok[paw])
        st = st.assign(paw=paw)
        mid = ((st["start_frame"] + st["end_frame"]) // 2).to_numpy(int)
        st["bout"] = bout_of_frame[mid] if len(st) else np.array([], int)
        tracked = state[paw] >= 0
        cum = np.concatenate([[0], np.cumsum(~tracked)])
        nxt = np.r_[st["start_frame"].to_numpy(int)[1:], [n]] if len(st) else np.array([], int)
        st["swing_tracked"] = (cum[np.minimum(nxt, n)] - cum[st["end_frame"].to_numpy(int) + 1] == 0) if len(st) else []
        frames.append(st)
    if progress is not None:
        progress(0.3)
    stances = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    strides_by_paw = {paw: _strides(stances[stances["paw"] == paw], fps, px_per_mm).assign(paw=paw) for paw in PAWS}
    strides = pd.concat(strides_by_paw.values(), ignore_index=True)
    # drop candidate bouts with too few strides
    counts = strides.groupby("bout").size() if len(strides) else pd.Series(dtype=int)
    for i in bouts.index:
        c = int(counts.get(i, 0))
        bouts.loc[i, "strides"] = c
        if bouts.loc[i, "kept"] and c < config.bouts.min_strides:
            bouts.loc[i, "kept"] = False
            bouts.loc[i, "reason"] = f"too few strides ({c} < {config.bouts.min_strides})"
    if "strides" not in bouts:
        bouts["strides"] = pd.Series(dtype=int)
    bouts["strides"] = bouts["strides"].astype(int)
    kept = set(bouts.index[bouts["kept"].astype(bool)].tolist())
    if not kept:
        why = "; ".join(
            f"{unit} at {r.start_frame / fps:.2f}-{r.end_frame / fps:.2f} s: {r.reason}" for r in bouts.itertuples()
        )
        raise GaitError(
            f"no {unit} of steady locomotion to take steps from: expected a stretch of at least "
            f"{config.bouts.min_duration_s:g} s at >= {config.bouts.min_speed_bl_s:g} body lengths/s "
            f"({config.bouts.min_speed_bl_s * bl:.0f} mm/s) turning <= {config.bouts.max_turn_deg_s:g} deg/s "
            f"with >= {config.bouts.min_strides} strides, got "
            + (why if why else f"none in {n} frames ({n / fps:.2f} s)")
            + _held_in_place_hint(tracks, len(strides), fps, px_per_mm, bl, belt)
        )
    stances["in_kept_bout"] = stances["bout"].isin(kept)
    strides = strides[strides["bout"].isin(kept)].reset_index(drop=True)
    # prints
    print_reason = ""
    print_cols = ("print_area_mm2", "max_contact_area_mm2", "print_intensity_mean", "print_intensity_max")
    for c in print_cols:
        stances[c] = np.nan
    use = stances["complete"].astype(bool) & stances["in_kept_bout"]
    if video is None:
        print_reason = "no_video"
    elif belt is not None:  # a print moves with the belt under a paw in stance: no fixed place to read it
        print_reason = "treadmill"
    elif not config.prints.enabled:
        print_reason = "prints_disabled"
    else:
        from behavior.features.gait_prints import measure_prints

        pr = config.prints
        got = measure_prints(
            video,
            stances[use],
            px_per_mm,
            window_mm=pr.window_mm,
            min_contrast=pr.min_contrast,
            background_frames=pr.background_frames,
            progress=(lambda f: progress(0.3 + 0.6 * f)) if progress is not None else None,
        )
        stances.loc[use, list(print_cols)] = got[list(print_cols)].to_numpy()
        found = float(np.isfinite(got["print_area_mm2"]).mean()) if len(got) else 0.0
        if found < pr.min_print_fraction:
            print_reason = f"no_prints_in_video ({100 * found:.0f} % of stances)"
    # per-paw summaries
    summary: dict[str, dict[str, tuple[float, int, str]]] = {}
    for paw in PAWS:
        sp = stances[(stances["paw"] == paw) & use]
        sr = strides[strides["paw"] == paw]
        enough = len(sr) >= config.min_strides_per_paw
        out: dict[str, tuple[float, int, str]] = {}
        for name, _unit in PAW_MEASURES:
            if name in PRINT_MEASURES:
                vals = sp[name].to_numpy(float)
                vals = vals[np.isfinite(vals)]
                reason = print_reason or ("" if vals.size else "no_print")
            elif name == "stance_duration_s":
                vals = ((sp["end_frame"] - sp["start_frame"] + 1) / fps).to_numpy(float)
                reason = "" if vals.size else "no_complete_stance"
            else:
                vals = sr[name].to_numpy(float)
                reason = "" if enough else f"too_few_strides ({len(sr)} < {config.min_strides_per_paw})"
            if reason or vals.size == 0:
                out[name] = (float("nan"), int(vals.size), reason or "no_data")
            else:
                out[name] = (float(vals.mean()), int(vals.size), "ok")
        summary[paw] = out
    # session figures
    sess: dict[str, tuple[float, str, int, str]] = {}
    kept_rows = bouts.loc[sorted(kept)]
    frames_in = np.zeros(n, bool)
    for r in kept_rows.itertuples():
        frames_in[int(r.start_frame) : int(r.end_frame) + 1] = True
    sp_in = speed[frames_in & np.isfinite(speed)]
    sess["body_speed_mm_s"] = (float(sp_in.mean()) if sp_in.size else float("nan"), "mm/s", int(sp_in.size), "ok")
    for name, unit_ in (("stride_length_mm", "mm"), ("duty_cycle", "fraction"), ("swing_speed_mm_s", "mm/s")):
        v = strides[name].to_numpy(float)
        sess[name] = (
            float(v.mean()) if v.size else float("nan"),
            unit_,
            int(v.size),
            "ok" if v.size else "too_few_strides",
        )
    cyc = strides["step_cycle_s"].to_numpy(float)
    sess["cadence_hz"] = (
        float(1.0 / cyc.mean()) if cyc.size else float("nan"),
        "Hz",
        int(cyc.size),
        "ok" if cyc.size else "too_few_strides",
    )
    for ref, other in PHASE_PAIRS:
        ph = _phase(
            strides_by_paw[ref][strides_by_paw[ref]["bout"].isin(kept)],
            stances[(stances["paw"] == other) & stances["in_kept_bout"]],
        )
        name = f"phase_{PAW_CODES[ref].lower()}_{PAW_CODES[other].lower()}"
        sess[name] = (_circ_mean(ph), "cycle", int(ph.size), "ok" if ph.size else "too_few_strides")
    headings = {}
    for r in kept_rows.itertuples():
        v = vel[int(r.start_frame) : int(r.end_frame) + 1]
        v = v[np.isfinite(v).all(axis=1)].mean(axis=0)
        headings[int(r.Index)] = v / (np.hypot(*v) or 1.0)
    complete_in = stances[use]
    for girdle in ("fore", "hind"):
        d = _base_of_support(
            complete_in[complete_in["paw"] == f"left_{girdle}"],
            complete_in[complete_in["paw"] == f"right_{girdle}"],
            headings,
            px_per_mm,
        )
        sess[f"base_of_support_{girdle}_mm"] = (
            float(d.mean()) if d.size else float("nan"),
            "mm",
            int(d.size),
            "ok" if d.size else "too_few_stances",
        )
    # placements while all four paws are tracked (a walkway's view cuts some paws at its edges)
    all_tracked = np.all([state[paw] >= 0 for paw in PAWS], axis=0)
    sb = stances[stances["in_kept_bout"].to_numpy(bool) & all_tracked[stances["start_frame"].to_numpy(int)]]
    ri_normal, ri_total = _regularity_counts(sb)
    sess["regularity_index_percent"] = (
        100.0 * 4 * ri_normal / ri_total if ri_total else float("nan"),
        "%",
        ri_total,
        "ok" if ri_total else "too_few_steps",
    )
    sess["strides_n"] = (float(len(strides)), "count", len(strides), "ok")
    sess[f"{unit}s_kept_n"] = (float(len(kept)), "count", len(bouts), "ok")
    bouts.insert(0, unit, np.arange(len(bouts)))
    bouts["start_s"] = bouts["start_frame"] / fps
    bouts["duration_s"] = (bouts["end_frame"] - bouts["start_frame"] + 1) / fps
    quality = {
        "mode": config.mode,
        "frames": int(n),
        "body_length_mm": round(float(bl), 2),
        "body_length_source": bl_source,
        f"{unit}s_found": len(bouts),
        f"{unit}s_kept": len(kept),
        f"{unit}s_dropped": "; ".join(f"{r.start_s:.2f} s: {r.reason}" for r in bouts.itertuples() if not r.kept),
        "stances": len(stances),
        "stances_incomplete": int((~stances["complete"].astype(bool)).sum()),
        "strides": len(strides),
        "untracked_paw_fraction": round(float(np.mean([np.mean(s < 0) for s in state.values()])), 4),
        "prints": print_reason or "ok",
        "keypoints": used,
    }
    if belt is not None:
        quality["treadmill_speed_mm_s"] = belt["speed_mm_s"]
        quality["treadmill_speed_source"] = belt["speed_source"]
    if progress is not None:
        progress(1.0)
    return GaitAnalysis(stances, strides, bouts, state, summary, sess, quality)


def _paw_label(paw: str, side: str | None) -> str:
    lr, girdle = paw.split("_")
    if side is None:
        return paw
    return f"{'ipsi' if lr == side else 'contra'}_{girdle}"


def gait_measures(analysis: GaitAnalysis, side: str | None, which: str = "all") -> list[Measure]:
    """The session's measures: per paw (named ipsi/contra with a side, else left/right), ratios, session figures.

    ``which="core"`` keeps :data:`CORE_MEASURES` (ratios named ``_left_right`` without a side).
    """
    out = _all_measures(analysis, side)
    if which == "core":
        core = set(CORE_MEASURES) | {m.replace("ipsi_contra", "left_right") for m in CORE_MEASURES}
        out = [m for m in out if m.measure in core]
    return out


def _all_measures(analysis: GaitAnalysis, side: str | None) -> list[Measure]:
    out: list[Measure] = []
    units = dict(PAW_MEASURES)
    for paw in PAWS:
        label = _paw_label(paw, side)
        for name, (value, n, quality) in analysis.paw_summary[paw].items():
            out.append(Measure(f"{label}_{name}", value, units[name], n, quality))
    ipsi, contra = (
        (f"{side}_hind", f"{'right' if side == 'left' else 'left'}_hind") if side else ("left_hind", "right_hind")
    )
    suffix = "ipsi_contra" if side else "left_right"
    for short, name, _ in RATIO_MEASURES:
        a, na, qa = analysis.paw_summary[ipsi][name]
        b, nb, qb = analysis.paw_summary[contra][name]
        if qa == "ok" and qb == "ok" and b > 0:
            out.append(Measure(f"{short}_ratio_{suffix}", a / b, "ratio", min(na, nb)))
        else:
            out.append(Measure(f"{short}_ratio_{suffix}", float("nan"), "ratio", min(na, nb), qa if qa != "ok" else qb))
    for name, (value, unit, n, quality) in analysis.session.items():
        out.append(Measure(name, value, unit, n, quality))
    return out


def gait_result(analysis: GaitAnalysis, fps: float, side: str | None, which: str = "all") -> AssayResult:
    """Measures (``which``: core or all), tables (stances, strides, bouts, every measure) and quality."""
    st = analysis.stances.copy()
    st.insert(1, "label", [_paw_label(p, side) for p in st["paw"]])
    st["start_s"] = st["start_frame"] / fps
    st["stance_duration_s"] = (st["end_frame"] - st["start_frame"] + 1) / fps
    sr = analysis.strides.copy()
    sr.insert(0, "label", [_paw_label(p, side) for p in sr["paw"]])
    return AssayResult(
        measures=gait_measures(analysis, side, which),
        tables={
            "gait_stances": st.round(5),
            "gait_strides": sr.round(5),
            "gait_bouts": analysis.bouts.round(4),
            "gait_summary": pd.DataFrame([vars(m) for m in gait_measures(analysis, side, "all")]),
        },
        quality={k: v for k, v in analysis.quality.items() if k != "keypoints"}
        | {"keypoints": ",".join(f"{k}={v}" for k, v in analysis.quality["keypoints"].items())},
    )


def extract_gait(
    poses: Any,
    session: Session,
    config: GaitConfig,
    *,
    video: Path | None = None,
    progress: Callable[[float], None] | None = None,
) -> AssayResult:
    """The registered extractor: the session's paw tracks (and video, for prints) in, gait measures out."""
    if session.px_per_mm is None:
        raise GaitError(f"session {session.session_id}: expected px_per_mm (gait figures are in mm), got none")
    if config.mode == "side":
        from behavior.features.gait_side import analyse_side_view, side_view_result

        return side_view_result(analyse_side_view(poses, session.fps, session.px_per_mm, config))
    analysis = analyse_gait(poses, session.fps, session.px_per_mm, config, video=video, progress=progress)
    return gait_result(analysis, session.fps, session.side, config.measures)


# --------------------------------------------------------------------------------------------- figures


def footfall_figure(
    stances: pd.DataFrame, fps: float, *, ax: Any = None, side: str | None = None, title: str = ""
) -> Any:
    """CatWalk's timing view: a bar per stance, a row per paw (hind paws at the bottom), time in seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    own = ax is None
    if own:
        _fig, ax = plt.subplots(figsize=(7, 2.2))
    order = ["left_fore", "right_fore", "left_hind", "right_hind"]
    colours = {"left_fore": "#1f77b4", "right_fore": "#ff7f0e", "left_hind": "#2ca02c", "right_hind": "#d62728"}
    for row, paw in enumerate(order):
        s = stances[stances["paw"] == paw]
        bars = [(a / fps, (b - a + 1) / fps) for a, b in zip(s["start_frame"], s["end_frame"], strict=True)]
        if bars:
            ax.broken_barh(bars, (len(order) - row - 0.8, 0.6), color=colours[paw])
    ax.set_yticks([len(order) - r - 0.5 for r in range(len(order))])
    ax.set_yticklabels([_paw_label(p, side).replace("_", " ") for p in order], fontsize=7)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=8)
    return ax.figure if own else ax


def _png(fig: Any) -> str:
    import base64
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _report(ctx: ReportContext) -> list[ReportItem]:
    """A footfall diagram per group (one session each, per timepoint) and the ipsi/contra ratios over time."""
    m = ctx.measures
    if m.empty or "assay" not in m:
        return []
    g = m[m["assay"] == "gait"]
    if g.empty:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = []
    sessions = g[["session_id", "group", "timepoint"]].drop_duplicates()
    groups = list(dict.fromkeys(sessions["group"].astype(str)))
    timepoints = list(dict.fromkeys(sessions["timepoint"].astype(str)))
    fps_of: dict[str, float] = {}
    if not ctx.quality.empty and "session_id" in ctx.quality:
        for r in ctx.quality.itertuples():
            fps_of[str(r.session_id)] = float(getattr(r, "fps", float("nan")) or float("nan"))
    tables = {}
    for r in sessions.itertuples(index=False):
        key = (str(r.group), str(r.timepoint))
        if key in tables:
            continue
        t = ctx.session_table(str(r.session_id), "gait_stances")
        if t is not None and not t.empty:
            tables[key] = (str(r.session_id), t)
    if tables:
        fig, axes = plt.subplots(
            len(groups), len(timepoints), figsize=(3.0 * len(timepoints) + 0.8, 1.6 * len(groups) + 0.6), squeeze=False
        )
        for i, grp in enumerate(groups):
            for j, tp in enumerate(timepoints):
                ax = axes[i][j]
                if (grp, tp) not in tables:
                    ax.axis("off")
                    continue
                sid, t = tables[(grp, tp)]
                t = t[t["in_kept_bout"].astype(bool)] if "in_kept_bout" in t else t
                fps = (
                    float((t["start_frame"] / t["start_s"]).replace([np.inf], np.nan).dropna().median())
                    if len(t)
                    else 1.0
                )
                t = t.assign(paw=[_paw_from_label(lbl) for lbl in t["label"]]) if "label" in t else t
                footfall_figure(t, fps, ax=ax, side=None, title=f"{ctx.group_names.get(grp, grp)} - {tp} ({sid})")
                ax.set_yticklabels(_row_labels(t), fontsize=6)
        fig.tight_layout()
        items.append(
            ReportItem(
                title="Gait: footfall diagram per group",
                png_base64=_png(fig),
                caption="Stance bars per paw over time (CatWalk's timing view) in the kept runs/bouts of the "
                "first session of each group and timepoint; rows: fore paws above hind paws.",
            )
        )
    ratio_names = [f"{short}_ratio_ipsi_contra" for short, _, _ in RATIO_MEASURES[:4]]
    have = [r for r in ratio_names if r in set(g["measure"])]
    if have:
        fig, axes = plt.subplots(1, len(have), figsize=(3.0 * len(have) + 0.6, 2.8), squeeze=False)
        for ax, name in zip(axes[0], have, strict=True):
            d = g[g["measure"] == name].dropna(subset=["value"])
            for grp in groups:
                dg = d[d["group"].astype(str) == grp]
                means = [dg[dg["timepoint"].astype(str) == tp]["value"].mean() for tp in timepoints]
                sems = [
                    dg[dg["timepoint"].astype(str) == tp]["value"].std(ddof=1)
                    / max(1.0, math.sqrt(max((dg["timepoint"].astype(str) == tp).sum(), 1)))
                    for tp in timepoints
                ]
                ax.errorbar(
                    range(len(timepoints)),
                    means,
                    yerr=np.nan_to_num(sems),
                    marker="o",
                    capsize=2,
                    label=ctx.group_names.get(grp, grp),
                )
            ax.axhline(1.0, color="grey", lw=0.6, ls=":")
            ax.set_xticks(range(len(timepoints)))
            ax.set_xticklabels(timepoints, fontsize=7)
            ax.set_title(name.replace("_ratio_ipsi_contra", "").replace("_", " ") + " ipsi / contra", fontsize=8)
        axes[0][-1].legend(fontsize=6)
        fig.tight_layout()
        items.append(
            ReportItem(
                title="Gait: ipsilateral / contralateral hind paw ratios over time",
                png_base64=_png(fig),
                caption="Mean (± s.e.m.) per group; 1 = both hind paws alike, below 1 = the injured paw is spared.",
            )
        )
    return items


def _paw_from_label(label: str) -> str:
    """Rows of a stances table by its label (ipsi_hind...), mapped onto the footfall rows in a fixed order."""
    mapping = {
        "ipsi_fore": "left_fore",
        "contra_fore": "right_fore",
        "ipsi_hind": "left_hind",
        "contra_hind": "right_hind",
    }
    return mapping.get(label, label)


def _row_labels(t: pd.DataFrame) -> list[str]:
    if "label" in t and t["label"].astype(str).str.startswith(("ipsi", "contra")).any():
        return ["ipsi fore", "contra fore", "ipsi hind", "contra hind"]
    return ["left fore", "right fore", "left hind", "right hind"]


def _methods(config: GaitConfig) -> str:
    c, b = config.contacts, config.bouts
    if config.mode == "side":
        sv = config.side_view
        return (
            "Side-view gait (beam / treadmill, one side of the animal): a paw was in stance while its speed along the "
            f"floor line was under {c.stance_speed_bl_s:g} body lengths/s (over {c.swing_speed_bl_s:g} to leave) and "
            f"it was within {c.max_stance_height_mm:g} mm of the floor line; a step cycle ran from lift-off to the end "
            "of the next stance (AutoGaitA's convention). Joint angles (AutoGaitA's definition) were normalised to "
            f"{sv.bins} bins per step cycle and averaged over cycles."
        )
    where = {
        "walkway": "walkway runs",
        "open-field": "bouts of steady, straight locomotion in the open field (Sheppard et al. 2022)",
        "side": "side-view stepping bouts",
    }[config.mode]
    return (
        "Gait (CatWalk-like): a paw was in stance while still in the world (speed under "
        f"{c.stance_speed_bl_s:g} body lengths/s to enter, over {c.swing_speed_bl_s:g} to leave, edges refined to the "
        "frames where the keypoint does not move); stances touching untracked frames were not timed. Strides were "
        f"taken only from {where} of at least {b.min_duration_s:g} s at >= {b.min_speed_bl_s:g} body lengths/s, "
        f"turning <= {b.max_turn_deg_s:g} deg/s, speed CV <= {b.max_speed_cv:g}. Print area and intensity: "
        "half-maximum blob of the background-subtracted video under the paw. Pain readouts: ipsilateral / "
        "contralateral hind paw ratios of print area, print intensity, stance duration and duty cycle."
    )


def _measure_specs() -> tuple[MeasureSpec, ...]:
    specs = [
        MeasureSpec(f"{{paw}}_{name}", unit, "mean per paw ({paw} = ipsi/contra or left/right _fore/_hind)")
        for name, unit in PAW_MEASURES
    ]
    for short, _, words in RATIO_MEASURES:
        specs.append(
            MeasureSpec(f"{short}_ratio_ipsi_contra", "ratio", f"hind paws, ipsilateral / contralateral {words}")
        )
    specs += [
        MeasureSpec("stride_length_mm", "mm", "mean stride length, all paws"),
        MeasureSpec("duty_cycle", "fraction", "mean duty cycle (stance / step cycle), all paws"),
        MeasureSpec("swing_speed_mm_s", "mm/s", "mean swing speed, all paws"),
        MeasureSpec("body_speed_mm_s", "mm/s", "mean body speed in the kept runs/bouts"),
        MeasureSpec("cadence_hz", "Hz", "strides per second (1 / mean step cycle)"),
        *(
            MeasureSpec(f"phase_{PAW_CODES[a].lower()}_{PAW_CODES[b].lower()}", "cycle", "inter-limb phase")
            for a, b in PHASE_PAIRS
        ),
        MeasureSpec("base_of_support_fore_mm", "mm", "distance between the fore paws across the heading"),
        MeasureSpec("base_of_support_hind_mm", "mm", "distance between the hind paws across the heading"),
        MeasureSpec("regularity_index_percent", "%", "normal step sequence patterns (Cheng 1997)"),
        MeasureSpec("strides_n", "count", "strides measured"),
    ]
    return tuple(specs)


register_assay(
    AssaySpec(
        name="gait",
        domain="spontaneous",
        config_model=GaitConfig,
        extract=extract_gait,
        measures=_measure_specs(),
        quality_figures=("strides", "stances_incomplete", "untracked_paw_fraction", "prints"),
        methods=_methods,
        report=_report,
        labels={
            "strides": "strides measured",
            "stances_incomplete": "stances not timed (untracked or cut by the recording)",
            "untracked_paw_fraction": "paw frames untracked",
        },
        description="Gait / weight bearing (CatWalk-like): stance, swing, strides, phase, prints; ipsi/contra ratios",
    )
)
