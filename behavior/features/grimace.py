"""Grimace: Mouse / Rat Grimace Scale action units from side-view face keypoints and the video.

Mouse Grimace Scale (Langford 2010): orbital tightening, nose bulge, cheek bulge, ear position, whisker
change. Rat Grimace Scale (Sotocinal 2011): orbital tightening, nose/cheek flattening, ear changes,
whisker change. Each action unit (AU) is scored 0 (absent), 1 (moderate), 2 (obvious); the frame's
score is the mean of its AUs and the session's (``mgs_score`` / ``rgs_score``) the mean over the
selected frames. The species is a setting (``species`` in ``configs/assays/grimace.yaml``).

Head frame
----------
Each frame's keypoints that do not move with an AU (nose tip, eye corners, ear base, whisker pad, cheek,
mouth corner) are fitted by least squares with an affine map to a face template in millimetres
(``geometry.template_mm``: origin at the eye centre, ``+u`` backwards along the head axis, ``+v`` down,
nose to the left). The map's inverse puts every keypoint in that head frame (this removes position,
rotation, scale, facing and the foreshortening of a head turned away). The ratio of the map's singular
values is ``cos(yaw)`` (``yaw_deg``: 0 in profile); the sign of its determinant says which way the face looks.

Action-unit geometry (head frame, mm; each AU score is linear between its "none" (0) and "severe" (2)
values in ``geometry`` and clipped to [0, 2])
-----------------------------------------------------------------------------------------------------
- orbital tightening: eye aperture / eye width = ``|eye_bottom - eye_top| / |eye_back - eye_front|``.
- ear position (rat: ear changes): the angle of ``ear_base -> ear_tip`` above the backward head axis
  (90 = upright, 0 = laid back flat), i.e. the tip's height against the head axis over its distance.
- nose bulge: height of ``nose_bridge`` above the line ``nose -> eye_front``, per mm of eye width.
- cheek bulge: image contrast of the cheek: mean brightness of the face crop inside the cheek region
  (an ellipse about ``cheek``, without the eye and whisker pad) over that of plain head fur behind the eye,
  minus 1 (a bulging cheek is a larger, lighter convex patch).
- rat nose/cheek flattening: the mean of the nose and cheek scores read on the rat's own scale
  (``geometry`` for ``species: rat``; placeholders until calibrated to a lab's raters).
- whisker change: the angle of ``whisker_pad -> midpoint(whisker_base_upper, whisker_base_lower)`` from
  the forward head axis, turning down (0 = straight forward, 90 = down, towards 180 = swept back).

Without a calibration the scores follow these documented cut-points and the measures' quality says
``uncalibrated``; with one (:mod:`behavior.features.grimace_calibration`) an ordinal model fitted to a
lab's raters maps the same features to scores.

Frame selection (as human scorers choose frames)
-------------------------------------------------
A frame is eligible when: the face is in view (at least ``min_face_keypoints`` template keypoints and
every AU keypoint at ``min_confidence``), the head is in profile (``yaw_deg <= max_yaw_deg``), it is sharp
(variance of the Laplacian of the face crop at least ``min_sharpness_ratio`` of the session's 75th percentile and
above ``min_sharpness``), and the animal is not grooming (snout keypoints confident and no paw-coloured
blob over the snout). The best eligible frame (sharpest, most confident) of every ``interval_s`` (or of
``frames_per_session`` equal parts) is scored. Each rejected stretch is reported with its reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from behavior.assays import AssaySpec, MeasureSpec, ReportContext, ReportItem, register_assay
from behavior.features.base import AssayResult, Measure

__all__ = [
    "AU_NAMES",
    "REASONS",
    "GrimaceConfig",
    "GrimaceError",
    "extract_grimace",
    "face_features",
    "geometric_scores",
    "image_features",
    "score_frames",
    "select_frames",
    "still_image_features",
]

Species = Literal["mouse", "rat"]
AU_NAMES: dict[str, tuple[str, ...]] = {
    "mouse": ("orbital_tightening", "nose_bulge", "cheek_bulge", "ear_position", "whisker_change"),
    "rat": ("orbital_tightening", "nose_cheek_flattening", "ear_changes", "whisker_change"),
}
SCORE_MEASURE = {"mouse": "mgs_score", "rat": "rgs_score"}
#: Why a frame is not scored, in the order they are checked.
REASONS = ("no_face", "turned_away", "grooming", "low_confidence", "blurred")
#: Per-frame geometric features (the inputs of the scores and of a calibration).
FEATURES = ("eye_ratio", "ear_angle_deg", "nose_height", "cheek_contrast", "whisker_angle_deg")
AU_KEYPOINTS = (
    "eye_top",
    "eye_bottom",
    "eye_front",
    "eye_back",
    "ear_base",
    "ear_tip",
    "nose",
    "nose_bridge",
    "whisker_pad",
    "whisker_base_upper",
    "whisker_base_lower",
    "cheek",
)
SNOUT_KEYPOINTS = ("nose", "whisker_pad", "whisker_base_upper", "whisker_base_lower")

# The synthetic rig's face (behavior.synthetic.grimace), the default template.
_TEMPLATE = {
    "nose": (-14.5, 4.0),
    "eye_front": (-2.2, 0.0),
    "eye_back": (2.2, 0.0),
    "ear_base": (6.5, -5.0),
    "whisker_pad": (-11.0, 4.3),
    "cheek": (-4.0, 4.8),
    "mouth_corner": (-8.6, 7.0),
}


class GrimaceError(ValueError):
    """Grimace input that cannot be scored (no detectable face, wrong species, bad scores)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SelectionConfig(_Strict):
    """Which frames a scorer would score, and how many."""

    min_confidence: float = Field(0.5, ge=0, le=1)
    min_face_keypoints: int = Field(4, ge=3)
    max_yaw_deg: float = Field(25.0, ge=0, le=90)
    min_sharpness_ratio: float = Field(0.5, ge=0)
    min_sharpness: float = Field(1.0, ge=0)
    max_paw_fraction: float = Field(0.12, ge=0, le=1)
    interval_s: float = Field(60.0, gt=0)
    frames_per_session: int | None = Field(None, ge=1)
    pose_fps: float | None = Field(
        10.0,
        gt=0,
        description="frames examined per second (every k-th, k = fps // pose_fps, at least 1): a scorer "
        "needs one sharp frame per interval, and face poses from video are predicted only there; None: all",
    )


class AUCut(_Strict):
    """Feature values at AU score 0 (``none``), 1 (``moderate``, default halfway) and 2 (``severe``).

    The score is piecewise linear through those points and clipped to [0, 2].
    """

    none: float
    severe: float
    moderate: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> AUCut:
        mid = self.moderate if self.moderate is not None else (self.none + self.severe) / 2
        if not (self.none < mid < self.severe or self.none > mid > self.severe):
            raise ValueError(
                f"expected none, moderate, severe in monotonic order, got {self.none}, {mid}, {self.severe}"
            )
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        """The 0-2 score of feature values ``x`` (NaN stays NaN)."""
        mid = self.moderate if self.moderate is not None else (self.none + self.severe) / 2
        xs, ys = np.array([self.none, mid, self.severe]), np.array([0.0, 1.0, 2.0])
        if xs[0] > xs[-1]:
            xs, ys = xs[::-1], ys[::-1]
        x = np.asarray(x, float)
        return np.where(np.isfinite(x), np.interp(x, xs, ys), np.nan)


class GeometryConfig(_Strict):
    """Documented cut-points of the uncalibrated scores (defaults: the synthetic rig's mouse mapping)."""

    template_mm: dict[str, tuple[float, float]] = Field(default_factory=lambda: dict(_TEMPLATE))
    eye_ratio: AUCut = AUCut(none=0.6545, severe=0.2182)
    ear_angle_deg: AUCut = AUCut(none=70.0, severe=30.0)
    nose_height: AUCut = AUCut(none=0.8755, severe=1.3826)
    cheek_contrast: AUCut = AUCut(none=0.0664, moderate=0.1061, severe=0.1271)
    whisker_angle_deg: AUCut = AUCut(none=60.0, severe=120.0)
    cheek_region_mm: tuple[float, float] = (5.0, 3.8)
    fur_reference_mm: tuple[float, float, float] = (7.5, 2.5, 2.0)

    @model_validator(mode="after")
    def _template(self) -> GeometryConfig:
        if len(self.template_mm) < 3:
            raise ValueError(f"expected at least 3 template keypoints, got {sorted(self.template_mm)}")
        return self


class ContactSheetConfig(_Strict):
    """The contact sheet of selected frames."""

    max_frames: int = Field(24, ge=1)
    columns: int = Field(6, ge=1)


class GrimaceConfig(_Strict):
    """Config of the grimace assay (``configs/assays/grimace.yaml``)."""

    assay: Literal["grimace"] = "grimace"
    species: Species = "mouse"
    selection: SelectionConfig = SelectionConfig()
    geometry: GeometryConfig = GeometryConfig()
    calibration: Path | None = None
    contact_sheet: ContactSheetConfig = ContactSheetConfig()


# ------------------------------------------------------------------------------------ head frame


def _poses_arrays(poses: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(T, K, 2) positions, (T, K) confidences and keypoint names of the first individual."""
    pos = np.asarray(poses["position"].values[..., 0], float).transpose(0, 2, 1)
    if "confidence" in poses:
        conf = np.asarray(poses["confidence"].values[..., 0], float)
    else:
        conf = np.where(np.isfinite(pos).all(axis=2), 1.0, 0.0)
    conf = np.where(np.isfinite(pos).all(axis=2), np.nan_to_num(conf), 0.0)
    return pos, conf, [str(k) for k in poses["keypoints"].values]


def head_frames(
    pos: np.ndarray, conf: np.ndarray, names: list[str], geometry: GeometryConfig, selection: SelectionConfig
) -> dict[str, np.ndarray]:
    """Per-frame affine maps from the template (mm) to the image (px) and what they say.

    Returns ``A`` (T, 2, 2), ``t`` (T, 2), ``n_face`` (template keypoints used), ``yaw_deg``,
    ``scale_px_per_mm``, ``facing`` (+1 nose left, -1 nose right) and ``ok`` (a fit was possible).
    """
    idx = [(names.index(k), np.asarray(v, float)) for k, v in geometry.template_mm.items() if k in names]
    n = pos.shape[0]
    a_out = np.full((n, 2, 2), np.nan)
    t_out = np.full((n, 2), np.nan)
    if not idx:
        raise GrimaceError(
            f"expected face keypoints from the template {sorted(geometry.template_mm)}, got keypoints {names}"
        )
    cols = np.array([i for i, _ in idx])
    tmpl = np.stack([p for _, p in idx])
    good = conf[:, cols] >= selection.min_confidence
    n_face = good.sum(axis=1)
    for mask in {tuple(g) for g in good[n_face >= selection.min_face_keypoints]}:
        m = np.array(mask)
        frames = np.flatnonzero((good == m).all(axis=1))
        design = np.c_[tmpl[m], np.ones(m.sum())]  # (k, 3)
        pinv = np.linalg.pinv(design)  # (3, k)
        sol = np.einsum("ck,tkd->tcd", pinv, pos[frames][:, cols[m]])  # (t, 3, 2)
        a_out[frames] = sol[:, :2, :].transpose(0, 2, 1)
        t_out[frames] = sol[:, 2, :]
    ok = np.isfinite(a_out).all(axis=(1, 2))
    sv = np.full((n, 2), np.nan)
    det = np.full(n, np.nan)
    if ok.any():
        sv[ok] = np.linalg.svd(a_out[ok], compute_uv=False)
        det[ok] = np.linalg.det(a_out[ok])
    with np.errstate(invalid="ignore", divide="ignore"):
        yaw = np.degrees(np.arccos(np.clip(sv[:, 1] / sv[:, 0], 0.0, 1.0)))
    return {
        "A": a_out,
        "t": t_out,
        "n_face": n_face,
        "yaw_deg": yaw,
        "scale_px_per_mm": sv[:, 0],
        "facing": np.sign(det),
        "ok": ok,
    }


def to_head(pos: np.ndarray, frames: dict[str, np.ndarray]) -> np.ndarray:
    """Keypoints (T, K, 2) in the head frame (mm) through the inverse of each frame's affine map."""
    out = np.full(pos.shape, np.nan)
    ok = frames["ok"]
    inv = np.linalg.inv(frames["A"][ok])
    out[ok] = np.einsum("tij,tkj->tki", inv, pos[ok] - frames["t"][ok][:, None, :])
    return out


def face_features(pos: np.ndarray, names: list[str], frames: dict[str, np.ndarray]) -> pd.DataFrame:
    """The keypoint geometry of every frame (module docstring): eye ratio, ear and whisker angles, nose height."""
    uv = to_head(pos, frames)

    def kp(name: str) -> np.ndarray:
        if name not in names:
            return np.full((pos.shape[0], 2), np.nan)
        return uv[:, names.index(name)]

    with np.errstate(invalid="ignore", divide="ignore"):
        width = np.linalg.norm(kp("eye_back") - kp("eye_front"), axis=1)
        eye_ratio = np.linalg.norm(kp("eye_bottom") - kp("eye_top"), axis=1) / width
        ear = kp("ear_tip") - kp("ear_base")
        ear_angle = np.degrees(np.arctan2(-ear[:, 1], ear[:, 0]))
        nose, front, bridge = kp("nose"), kp("eye_front"), kp("nose_bridge")
        line = front - nose
        cross = line[:, 0] * (bridge - nose)[:, 1] - line[:, 1] * (bridge - nose)[:, 0]
        nose_height = -cross / np.linalg.norm(line, axis=1) / width  # above the line (v up is negative)
        mid = (kp("whisker_base_upper") + kp("whisker_base_lower")) / 2 - kp("whisker_pad")
        whisker = np.degrees(np.arctan2(mid[:, 1], -mid[:, 0]))
    return pd.DataFrame(
        {
            "eye_ratio": eye_ratio,
            "ear_angle_deg": ear_angle,
            "nose_height": nose_height,
            "whisker_angle_deg": whisker,
        }
    )


# ------------------------------------------------------------------------------------- image cues


def _ellipse_grid(cx: float, cy: float, a: float, b: float, step: float = 0.4) -> np.ndarray:
    u, v = np.meshgrid(np.arange(-a, a + step, step), np.arange(-b, b + step, step))
    inside = (u / a) ** 2 + (v / b) ** 2 <= 1
    return np.c_[u[inside] + cx, v[inside] + cy]


def _sampling_points(geometry: GeometryConfig) -> dict[str, np.ndarray]:
    t = geometry.template_mm
    cheek = np.asarray(t.get("cheek", (-4.0, 4.8)))
    ca, cb = geometry.cheek_region_mm
    region = _ellipse_grid(cheek[0], cheek[1], ca, cb)
    eye = (np.asarray(t.get("eye_front", (-2.2, 0))) + np.asarray(t.get("eye_back", (2.2, 0)))) / 2
    half_w = np.linalg.norm(np.asarray(t.get("eye_back", (2.2, 0))) - eye) + 0.8
    pad = np.asarray(t.get("whisker_pad", (-11.0, 4.3)))
    keep = (((region - eye) / [half_w, half_w * 0.9]) ** 2).sum(axis=1) > 1
    keep &= (((region - pad) / [3.3, 2.5]) ** 2).sum(axis=1) > 1
    ru, rv, rr = geometry.fur_reference_mm
    nose = np.asarray(t.get("nose", (-14.5, 4.0)))
    snout = np.stack(np.meshgrid(np.arange(-3.5, 8.0, 0.5), np.arange(-2.0, 6.0, 0.5)), -1).reshape(-1, 2) + nose
    snout = snout[np.linalg.norm(snout - nose, axis=1) > 2.0]
    return {"cheek": region[keep], "fur": _ellipse_grid(ru, rv, rr, rr), "snout": snout}


def image_features(
    frame: np.ndarray, a: np.ndarray, t: np.ndarray, points: dict[str, np.ndarray], box: tuple[int, int, int, int]
) -> tuple[float, float, float]:
    """Cheek contrast, sharpness and paw fraction of one RGB frame given its head-frame map.

    ``box`` (x0, y0, x1, y1) bounds the face crop used for sharpness.
    """
    import cv2

    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    x0, y0, x1, y1 = box
    crop = gray[y0:y1, x0:x1].astype(np.float32)
    if crop.size < 16:
        sharp = float("nan")
    else:
        sharp = float(cv2.Laplacian(cv2.GaussianBlur(crop, (0, 0), 1.0), cv2.CV_32F).var())

    def sample(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
        xy = pts @ a.T + t
        xi = np.clip(np.rint(xy[:, 0]).astype(int), 0, img.shape[1] - 1)
        yi = np.clip(np.rint(xy[:, 1]).astype(int), 0, img.shape[0] - 1)
        return img[yi, xi]

    fur = float(sample(gray, points["fur"]).mean())
    cheek = float(sample(gray, points["cheek"]).mean()) / max(fur, 1.0) - 1.0
    rgb = sample(frame, points["snout"]).astype(np.int16)
    paw = float(((rgb[:, 0] > 185) & (rgb[:, 0] - rgb[:, 1] > 30)).mean())
    return cheek, sharp, paw


def _face_boxes(pos: np.ndarray, conf: np.ndarray, min_conf: float, shape: tuple[int, int]) -> np.ndarray:
    p = np.where((conf >= min_conf)[..., None], pos, np.nan)
    with np.errstate(invalid="ignore"), _Quiet():
        lo = np.nanmin(p, axis=1)
        hi = np.nanmax(p, axis=1)
    h, w = shape
    box = np.c_[lo - 4, hi + 4]
    box = np.nan_to_num(box, nan=0.0)
    box[:, [0, 2]] = np.clip(box[:, [0, 2]], 0, w)
    box[:, [1, 3]] = np.clip(box[:, [1, 3]], 0, h)
    return box.astype(int)


class _Quiet:
    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._w.__exit__(*exc)


def video_cues(
    video: str | Path,
    frames: dict[str, np.ndarray],
    pos: np.ndarray,
    conf: np.ndarray,
    geometry: GeometryConfig,
    selection: SelectionConfig,
    *,
    roi: Any = None,
    decode_threads: int | None = None,
    step: int = 1,
    n_frames: int | None = None,
) -> pd.DataFrame:
    """Cheek contrast, sharpness and paw fraction of every frame whose face was found, from the video.

    With ``step`` > 1 the rows of ``frames`` / ``pos`` are the recording's frames ``0, step, 2 step, ...``
    of ``n_frames`` (the others are decoded but not looked at).
    """
    from pose_models.video import VideoReader

    n = pos.shape[0]
    cheek = np.full(n, np.nan)
    sharp = np.full(n, np.nan)
    paw = np.full(n, np.nan)
    points = _sampling_points(geometry)
    ok = frames["ok"]
    decoded = 0
    with VideoReader(video, roi=roi, decode_threads=decode_threads) as reader:
        boxes = None
        stop = min(reader.info.n_frames, n_frames if n_frames is not None else n * step)
        for idx, batch in reader.batches(64, stop=stop, step=step):
            if boxes is None:
                boxes = _face_boxes(pos, conf, selection.min_confidence, batch.shape[1:3])
            for f, img in zip(idx, batch, strict=True):
                i = int(f) // step
                decoded += 1
                if i >= n or not ok[i]:
                    continue
                cheek[i], sharp[i], paw[i] = image_features(img, frames["A"][i], frames["t"][i], points, boxes[i])
    if decoded < n:
        raise GrimaceError(f"{video}: expected {n_frames or n} frames (as many as the poses), decoded fewer")
    return pd.DataFrame({"cheek_contrast": cheek, "sharpness": sharp, "paw_fraction": paw})


def still_image_features(
    images: list[np.ndarray], pos: np.ndarray, conf: np.ndarray, names: list[str], config: GrimaceConfig
) -> pd.DataFrame:
    """The features of still RGB images (any sizes) from their face keypoints, as for video frames.

    ``pos`` (N, K, 2) and ``conf`` (N, K) are a face pose model's keypoints of each image. The geometry
    comes from the keypoints in the head frame (:func:`face_features`) and the image cues from each
    image's own face crop (:func:`image_features`), exactly as :func:`score_frames` computes them for a
    frame of a video. Returns one row per image: ``face_ok``, ``yaw_deg``, :data:`FEATURES`,
    ``sharpness`` and ``paw_fraction`` (NaN where no face was fitted).
    """
    pos = np.asarray(pos, float)
    conf = np.where(np.isfinite(pos).all(axis=2), np.nan_to_num(np.asarray(conf, float)), 0.0)
    frames = head_frames(pos, conf, names, config.geometry, config.selection)
    feats = face_features(pos, names, frames)
    points = _sampling_points(config.geometry)
    n = len(images)
    cheek, sharp, paw = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    for i, img in enumerate(images):
        if frames["ok"][i]:
            box = _face_boxes(pos[i : i + 1], conf[i : i + 1], config.selection.min_confidence, img.shape[:2])[0]
            cheek[i], sharp[i], paw[i] = image_features(img, frames["A"][i], frames["t"][i], points, box)
    table = pd.DataFrame({"face_ok": frames["ok"], "yaw_deg": frames["yaw_deg"]})
    table = pd.concat([table, feats], axis=1)
    table["cheek_contrast"] = cheek
    table["sharpness"] = sharp
    table["paw_fraction"] = paw
    return table[["face_ok", "yaw_deg", *FEATURES, "sharpness", "paw_fraction"]]


# ---------------------------------------------------------------------------------------- scoring


def geometric_scores(features: pd.DataFrame, config: GrimaceConfig) -> pd.DataFrame:
    """Uncalibrated 0-2 AU scores from the documented cut-points (module docstring)."""
    g = config.geometry
    ot = g.eye_ratio.score(features["eye_ratio"])
    ear = g.ear_angle_deg.score(features["ear_angle_deg"])
    nose = g.nose_height.score(features["nose_height"])
    cheek = g.cheek_contrast.score(features["cheek_contrast"])
    whisk = g.whisker_angle_deg.score(features["whisker_angle_deg"])
    if config.species == "mouse":
        cols = {
            "orbital_tightening": ot,
            "nose_bulge": nose,
            "cheek_bulge": cheek,
            "ear_position": ear,
            "whisker_change": whisk,
        }
    else:
        cols = {
            "orbital_tightening": ot,
            "nose_cheek_flattening": (nose + cheek) / 2,
            "ear_changes": ear,
            "whisker_change": whisk,
        }
    return pd.DataFrame(cols, index=features.index)


def select_frames(
    table: pd.DataFrame, conf: np.ndarray, names: list[str], fps: float, selection: SelectionConfig
) -> pd.DataFrame:
    """Add ``reason`` (why a frame is not eligible, or ""), ``interval`` and ``selected`` to a frame table.

    ``table`` holds per frame ``face_ok``, ``yaw_deg``, ``sharpness`` and ``paw_fraction``.
    """
    n = len(table)
    reason = np.array([""] * n, dtype=object)
    min_c = selection.min_confidence

    def conf_of(keys: Iterable[str]) -> np.ndarray:
        cols = [names.index(k) for k in keys if k in names]
        return conf[:, cols].min(axis=1) if cols else np.ones(n)

    snout_ok = conf_of(SNOUT_KEYPOINTS) >= min_c
    au_ok = conf_of(AU_KEYPOINTS) >= min_c
    sharp = table["sharpness"].to_numpy(float)
    face = table["face_ok"].to_numpy(bool)
    ref = np.nanpercentile(sharp[face], 75) if np.isfinite(sharp[face]).any() else np.nan
    with np.errstate(invalid="ignore"):
        blurred = ~(sharp >= max(selection.min_sharpness, selection.min_sharpness_ratio * ref))
        turned = ~(table["yaw_deg"].to_numpy(float) <= selection.max_yaw_deg)
        grooming = ~snout_ok | (table["paw_fraction"].to_numpy(float) > selection.max_paw_fraction)
    for name, bad in zip(REASONS, (~face, turned, grooming, ~au_ok, blurred), strict=True):
        reason[(reason == "") & bad] = name
    eligible = reason == ""
    time_s = table["time_s"].to_numpy(float) if "time_s" in table else np.arange(n) / fps
    if selection.frames_per_session is not None:
        interval = np.minimum((np.arange(n) * selection.frames_per_session) // max(n, 1), n - 1)
    else:
        interval = np.floor(time_s / selection.interval_s).astype(int)
    quality = np.where(eligible, np.nan_to_num(sharp / ref if ref > 0 else 1.0) * conf_of(AU_KEYPOINTS), -np.inf)
    selected = np.zeros(n, bool)
    for k in np.unique(interval):
        rows = np.flatnonzero((interval == k) & eligible)
        if rows.size:
            selected[rows[np.argmax(quality[rows])]] = True
    out = table.copy()
    out["reason"] = reason
    out["interval"] = interval
    out["selected"] = selected
    return out


def rejected_stretches(frames: pd.DataFrame, fps: float) -> pd.DataFrame:
    """Runs of consecutive frames rejected for the same reason: first/last frame, times, count, reason."""
    reason = frames["reason"].to_numpy(object)
    index = frames["frame"].to_numpy(int) if "frame" in frames else np.arange(len(reason))
    # frames between two examined ones: score_frames records it (a one-row table has no difference to read)
    step = int(frames.attrs.get("frame_step") or (np.diff(index).min() if len(index) > 1 else 1))
    rows = []
    start = 0
    for i in range(1, len(reason) + 1):
        if i == len(reason) or reason[i] != reason[start]:
            if reason[start]:
                rows.append(
                    {
                        "first_frame": int(index[start]),
                        "last_frame": int(index[i - 1]),
                        "start_s": index[start] / fps,
                        "end_s": (index[i - 1] + step) / fps,
                        "n_frames": i - start,  # frames examined
                        "reason": reason[start],
                    }
                )
            start = i
    return pd.DataFrame(rows, columns=["first_frame", "last_frame", "start_s", "end_s", "n_frames", "reason"])


def poses_frame_step(poses: Any) -> int:
    """Every how many frames ``poses`` hold a prediction (``predict_video(step=k)``), 1 when every frame.

    Their ``frame_step`` attribute or ``predict_video`` log entry says it while they are in memory or a
    NetCDF file; a pose file of another format (DLC h5, as the pipeline saves them) keeps neither, so the
    prediction's mark is read from the data: positions on exactly the frames ``0, k, 2k, ...`` (a network
    places every keypoint on every frame it sees) and on no other frame.
    """
    attrs = getattr(poses, "attrs", {}) or {}
    step = attrs.get("frame_step")
    if step is None:
        try:
            log = json.loads(attrs.get("log") or "[]")
        except (TypeError, ValueError):
            log = []
        entries = [e for e in log if isinstance(e, dict) and e.get("operation") == "predict_video"]
        step = (entries[-1].get("parameters") or {}).get("frame_step") if entries else None
    try:
        if step is not None:
            return max(1, int(step))
    except (TypeError, ValueError):
        pass
    try:
        pos = np.asarray(poses["position"].values, float)
    except (KeyError, TypeError, AttributeError):
        return 1
    seen = np.flatnonzero(np.isfinite(pos.reshape(pos.shape[0], -1)).any(axis=1))
    if len(seen) < 3 or seen[0] != 0:
        return 1
    k = int(seen[1] - seen[0])
    last = (pos.shape[0] - 1) // k * k
    if k > 1 and np.array_equal(seen, np.arange(0, last + 1, k)):
        return k
    return 1


def frame_step(config: GrimaceConfig, fps: float | None, poses: Any = None) -> int:
    """Frames from one examined frame to the next: ``fps // selection.pose_fps`` (at least 1; 1 without a rate).

    With ``poses`` predicted on every k-th frame only (:func:`poses_frame_step`), the step is a multiple of k
    (the next one up): a frame without a prediction is not examined, nor counted as one without a face.
    """
    rate = config.selection.pose_fps
    step = 1
    if rate is not None and fps is not None and np.isfinite(fps) and fps > 0:
        q = fps / rate
        # 30 // 0.2 is 149 in floats: a quotient within rounding of a whole number is that number
        step = max(1, round(q) if abs(q - round(q)) < 1e-6 else math.floor(q))
    k = poses_frame_step(poses) if poses is not None else 1
    return k * -(-step // k)


def score_frames(
    poses: Any,
    video: str | Path | None,
    config: GrimaceConfig,
    *,
    fps: float,
    roi: Any = None,
    scorer: Any = None,
    decode_threads: int | None = None,
    step: int = 1,
) -> pd.DataFrame:
    """The per-frame table of a face recording: features, selection, AU scores of the eligible frames.

    ``scorer`` is a :class:`behavior.features.grimace_calibration.CalibratedScorer` (or None: the
    documented geometry). ``step`` > 1: examine every ``step``-th frame only (:func:`frame_step`); the
    table has a row per examined frame, ``frame`` and ``time_s`` those of the recording.

    Raises
    ------
    GrimaceError
        If no frame shows a detectable face.
    """
    pos, conf, names = _poses_arrays(poses)
    n_recorded = pos.shape[0]
    k = poses_frame_step(poses)  # poses predicted on every k-th frame: examine only frames that have one
    step = k * -(-max(1, int(step)) // k)
    index = np.arange(0, n_recorded, step)
    pos, conf = pos[index], conf[index]
    frames = head_frames(pos, conf, names, config.geometry, config.selection)
    if not frames["ok"].any():
        raise GrimaceError(
            f"no detectable face: none of {pos.shape[0]} frames examined has "
            f"{config.selection.min_face_keypoints} face keypoints at confidence >= {config.selection.min_confidence}"
        )
    feats = face_features(pos, names, frames)
    if video is not None:
        cues = video_cues(
            video,
            frames,
            pos,
            conf,
            config.geometry,
            config.selection,
            roi=roi,
            decode_threads=decode_threads,
            step=step,
            n_frames=n_recorded,
        )
    else:
        cues = pd.DataFrame({"cheek_contrast": np.nan, "sharpness": np.inf, "paw_fraction": 0.0}, index=feats.index)
    table = pd.DataFrame({"frame": index, "time_s": index / fps})
    table["face_ok"] = frames["ok"]
    table["yaw_deg"] = frames["yaw_deg"]
    table["facing"] = np.where(frames["facing"] > 0, "left", np.where(frames["facing"] < 0, "right", ""))
    table = pd.concat([table, feats, cues], axis=1)
    table = select_frames(table, conf, names, fps, config.selection)
    if scorer is not None:
        scorer.check_species(config.species)
        scores = scorer.predict(table)
    else:
        scores = geometric_scores(table, config)
    eligible = (table["reason"] == "").to_numpy()
    scores = scores.where(pd.Series(eligible, index=scores.index), np.nan, axis=0)
    table = pd.concat([table, scores], axis=1)
    table["score"] = scores.mean(axis=1, skipna=False)
    table.attrs["frame_step"] = int(step)
    return table


def session_measures(table: pd.DataFrame, config: GrimaceConfig, calibrated: bool) -> list[Measure]:
    """``mgs_score`` (``rgs_score``) and one measure per AU: means over the selected frames."""
    sel = table[table["selected"]]
    quality = "calibrated" if calibrated else "uncalibrated"
    prefix = SCORE_MEASURE[config.species].split("_")[0]
    n = len(sel)
    if n == 0:  # no score, and say why: which reasons rejected how many frames
        reasons = table["reason"][table["reason"] != ""].value_counts()
        why = ", ".join(f"{r} {c}" for r, c in reasons.items()) or "no frames"
        quality = f"not scored: no frame selectable of {len(table)} ({why}); {quality}"
    measures = [
        Measure(SCORE_MEASURE[config.species], float(sel["score"].mean()) if n else math.nan, "score", n, quality)
    ]
    for au in AU_NAMES[config.species]:
        measures.append(Measure(f"{prefix}_{au}", float(sel[au].mean()) if n else math.nan, "score", n, quality))
    return measures


def _load_scorer(config: GrimaceConfig) -> Any:
    if config.calibration is None:
        return None
    from behavior.features.grimace_calibration import CalibratedScorer

    scorer = CalibratedScorer.load(config.calibration)
    scorer.check_species(config.species)
    return scorer


def extract_grimace(poses: Any, session: Any, config: GrimaceConfig, *, video: Path | None = None) -> AssayResult:
    """Score one face session: selected frames, AU scores, session measures, rejected stretches."""
    scorer = _load_scorer(config)
    step = frame_step(config, session.fps, poses)
    table = score_frames(
        poses, video, config, fps=session.fps, roi=getattr(session, "roi", None), scorer=scorer, step=step
    )
    stretches = rejected_stretches(table, session.fps)
    counts = {f"{r}_frames": int((table["reason"] == r).sum()) for r in REASONS}
    quality: dict[str, Any] = {
        "frames": len(table),  # examined: every frame_step-th of the recording
        "frame_step": step,
        "eligible_frames": int((table["reason"] == "").sum()),
        "selected_frames": int(table["selected"].sum()),
        **counts,
        "calibration": "calibrated" if scorer is not None else "uncalibrated",
    }
    return AssayResult(
        measures=session_measures(table, config, scorer is not None),
        tables={"grimace_frames": table, "grimace_rejected": stretches},
        quality=quality,
    )


# -------------------------------------------------------------------------------- contact sheet


def contact_sheet(
    video: str | Path, table: pd.DataFrame, out: str | Path, config: GrimaceConfig, *, title: str = ""
) -> Path:
    """A PNG of the selected frames' face crops, each captioned with its AU scores and mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pose_models.video import VideoReader

    sel = table[table["selected"]].head(config.contact_sheet.max_frames)
    aus = AU_NAMES[config.species]
    wanted = set(sel["frame"].astype(int))
    images: dict[int, np.ndarray] = {}
    if wanted:
        with VideoReader(video) as reader:
            for idx, batch in reader.batches(64, stop=max(wanted) + 1):
                for i, img in zip(idx, batch, strict=True):
                    if int(i) in wanted:
                        images[int(i)] = img
    ncol = min(config.contact_sheet.columns, max(len(sel), 1))
    nrow = max(math.ceil(len(sel) / ncol), 1)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.6 * nrow + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    short = {
        "orbital_tightening": "OT",
        "nose_bulge": "NB",
        "cheek_bulge": "CB",
        "ear_position": "EP",
        "whisker_change": "WC",
        "nose_cheek_flattening": "NCF",
        "ear_changes": "EC",
    }
    for ax, (_, row) in zip(axes.ravel(), sel.iterrows(), strict=False):
        img = images.get(int(row["frame"]))
        if img is not None:
            ax.imshow(img)
        text = " ".join(f"{short[a]}{row[a]:.1f}" for a in aus)
        ax.set_title(f"t={row['time_s']:.1f}s  mean {row['score']:.2f}\n{text}", fontsize=7)
    if not len(sel):
        axes[0, 0].text(0.5, 0.5, "no frame selected", ha="center")
    fig.suptitle(title or "selected frames", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _report(context: ReportContext) -> list[ReportItem]:
    """Report hook: a table of selected frames per session with the AU means (from the frame tables)."""
    if context.measures.empty:
        return []
    m = context.measures
    sessions = sorted(m.loc[m["assay"] == "grimace", "session_id"].unique()) if "assay" in m else []
    rows = []
    for sid in sessions:
        t = context.session_table(sid, "grimace_frames")
        if t is None:
            continue
        sel = t[t["selected"].astype(bool)]
        rejected = t["reason"].fillna("").astype(str)
        why = ", ".join(f"{r} {int((rejected == r).sum())}" for r in REASONS if (rejected == r).any())
        rows.append((sid, len(t), len(sel), round(float(sel["score"].mean()), 3) if len(sel) else None, why))
    if not rows:
        return []
    items = []
    sheet = _study_contact_sheet(context, sessions)
    if sheet is not None:
        items.append(
            ReportItem(
                title="Grimace: contact sheet",
                png_base64=sheet,
                caption="one selected frame per session (group, timepoint), with its AU scores and mean",
            )
        )
    return [
        *items,
        ReportItem(
            title="Grimace: frames scored per session",
            columns=("session", "frames", "selected", "mean score", "frames rejected (reason)"),
            rows=tuple(rows),
            caption="Frames chosen as human scorers choose them: face in view, in profile, sharp, not grooming.",
        ),
    ]


def _study_contact_sheet(context: ReportContext, sessions: list[str], max_sessions: int = 18) -> str | None:
    """A PNG (base64) of one selected face per session, captioned with its scores, for the study report."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pose_models.video import VideoReader

    videos = {}
    if not context.quality.empty and "video" in context.quality:
        videos = dict(zip(context.quality["session_id"], context.quality["video"], strict=True))
    ident = context.measures.drop_duplicates("session_id").set_index("session_id")
    picks = []
    for sid in sorted(sessions, key=lambda s: (str(ident.at[s, "group"]), str(ident.at[s, "timepoint"]), s)):
        t = context.session_table(sid, "grimace_frames")
        video = videos.get(sid)
        if t is None or not isinstance(video, str) or not Path(video).is_file():
            continue
        sel = t[t["selected"].astype(bool)]
        if len(sel):
            picks.append((sid, video, sel.iloc[0]))
        if len(picks) == max_sessions:
            break
    if not picks:
        return None
    ncol = min(6, len(picks))
    nrow = math.ceil(len(picks) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.4 * ncol, 2.3 * nrow), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    aus = [a for a in dict.fromkeys(AU_NAMES["mouse"] + AU_NAMES["rat"]) if a in picks[0][2].index]
    for ax, (sid, video, row) in zip(axes.ravel(), picks, strict=False):
        frame = int(row["frame"])
        with VideoReader(video) as reader:
            img = next((b[list(i).index(frame)] for i, b in reader.batches(64, stop=frame + 1) if frame in i), None)
        if img is not None:
            ax.imshow(img)
        group = context.group_names.get(str(ident.at[sid, "group"]), str(ident.at[sid, "group"]))
        scores = " ".join(f"{a.split('_')[0][:2].upper()}{row[a]:.1f}" for a in aus)
        ax.set_title(f"{group} {ident.at[sid, 'timepoint']}: {row['score']:.2f}\n{scores}", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _methods(config: GrimaceConfig) -> str:
    s = config.selection
    scale = "Mouse Grimace Scale (Langford 2010)" if config.species == "mouse" else "Rat Grimace Scale (Sotocinal 2011)"
    every = (
        f"{s.frames_per_session} frames per session" if s.frames_per_session else f"one frame per {s.interval_s:g} s"
    )
    how = (
        "an ordinal model calibrated to the lab's raters"
        if config.calibration
        else "documented face geometry (uncalibrated)"
    )
    return (
        f"Grimace: {scale} action units scored 0-2 from side-view face keypoints and face crops by {how}; "
        f"{every}, the best frame with the face in view (keypoint confidence >= {s.min_confidence:g}), within "
        f"{s.max_yaw_deg:g} degrees of profile, sharp and not grooming"
        + (f", among frames examined at {s.pose_fps:g} per second" if s.pose_fps else "")
        + "; the session score is the mean over those frames."
    )


def _keypoints(config: GrimaceConfig) -> list[str]:
    return [k for k in AU_KEYPOINTS if k in config.geometry.template_mm] or list(config.geometry.template_mm)


register_assay(
    AssaySpec(
        name="grimace",
        domain="spontaneous",
        config_model=GrimaceConfig,
        extract=extract_grimace,
        measures=(
            MeasureSpec("mgs_score", "score", "Mouse Grimace Scale: mean AU score over the selected frames (0-2)"),
            *(MeasureSpec(f"mgs_{au}", "score", f"MGS {au.replace('_', ' ')} (0-2)") for au in AU_NAMES["mouse"]),
            MeasureSpec("rgs_score", "score", "Rat Grimace Scale mean (species: rat)"),
        ),
        keypoints=_keypoints,
        needs_video=True,
        quality_figures=(
            "frames",
            "frame_step",
            "eligible_frames",
            "selected_frames",
            *(f"{r}_frames" for r in REASONS),
        ),
        methods=_methods,
        report=_report,
        labels={f"{r}_frames": f"frames rejected: {r.replace('_', ' ')}" for r in REASONS},
        description="Mouse / Rat Grimace Scale from side-view face keypoints and crops, frames chosen as scorers do",
        pose_frame_step=frame_step,
    )
)
