"""Calibrating grimace scores to a lab's own raters: an ordinal model per action unit, grouped CV.

Input: a CSV of human-scored frames, one row per frame and rater::

    video,frame,animal,rater,orbital_tightening,nose_bulge,cheek_bulge,ear_position,whisker_change

(``image`` instead of ``video`` + ``frame`` for still images; an optional ``pose`` column names the pose file
of the video, else a face pose model predicts the keypoints). Scores are integers 0, 1 or 2; the AU columns
must be the species' (``behavior.features.grimace.AU_NAMES``).

Model: per AU a proportional-odds (cumulative logit) model on the standardised frame features
(``behavior.features.grimace.FEATURES``: eye aperture ratio, ear angle, nose-bridge height, cheek contrast,
whisker angle), ``P(score <= k) = logistic(theta_k - x . w)`` with a small L2 penalty, fitted to every
rater's score of every frame. A frame's calibrated AU score is the expected score ``P(1) + 2 P(2)`` (0-2).
Backbone features of the face crop are not used (the geometry already carries the AUs on the rig).

Agreement is reported under cross-validation grouped by animal (``GroupKFold``: no animal is ever in
its own training folds): per AU the quadratic-weighted kappa of the rounded prediction against the raters'
rounded mean, and the ICC(A,1) (two-way, absolute agreement, single measures) of the frame's mean score
against the raters' mean; beside them, where raters scored the same frames, the raters' own agreement
(mean pairwise weighted kappa per AU, ICC(A,1) of the frame mean across raters).

The scorer is saved as JSON (coefficients, thresholds, standardisation, species, feature names, the
agreement figures); never a pickle. Loading it for another species is refused.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from behavior.features.grimace import AU_NAMES, FEATURES, GrimaceConfig, GrimaceError, score_frames

__all__ = [
    "FORMAT",
    "CalibratedScorer",
    "cross_validate",
    "fit_ordinal",
    "fit_scorer",
    "icc_a1",
    "inter_rater_agreement",
    "read_scores_csv",
    "scored_frame_features",
    "weighted_kappa",
]

FORMAT = "painbattery.grimace_calibration"
ID_COLUMNS = ("video", "frame", "image", "pose", "animal", "rater")


# ------------------------------------------------------------------------------------------ input


def read_scores_csv(path: str | Path, species: str = "mouse") -> pd.DataFrame:
    """Read and check a human scores CSV (module docstring); one clear error for the first problem.

    Raises
    ------
    GrimaceError
        Missing columns, an unknown AU column, a score outside 0/1/2, no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected a scores CSV, got no file {path}")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    aus = AU_NAMES[species]
    missing = [c for c in ("animal", "rater") if c not in df.columns]
    if "image" not in df.columns and not {"video", "frame"} <= set(df.columns):
        missing.append("image (or video and frame)")
    if missing:
        raise GrimaceError(f"{path}: expected columns {missing}, got {list(df.columns)}")
    unknown = [c for c in df.columns if c not in ID_COLUMNS and c not in aus]
    if unknown:
        raise GrimaceError(f"{path}: unknown action unit column(s) {unknown}, expected {species} AUs {list(aus)}")
    present = [a for a in aus if a in df.columns]
    if not present:
        raise GrimaceError(f"{path}: expected at least one AU column of {list(aus)}, got none")
    if df.empty:
        raise GrimaceError(f"{path}: expected scored frames, got no rows")
    for au in present:
        bad = ~df[au].isin(["0", "1", "2", ""])
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise GrimaceError(f"{path} line {i + 2}: expected {au} score 0, 1 or 2, got {df[au].iloc[i]!r}")
        df[au] = pd.to_numeric(df[au].replace("", np.nan))
    base = path.parent
    for col in ("video", "image", "pose"):
        if col in df.columns:
            df[col] = [str((base / v).resolve()) if v and not Path(v).is_absolute() else v for v in df[col]]
    df["line"] = np.arange(len(df)) + 2  # the CSV line of each row, for errors naming it
    is_image = (df["image"] != "") if "image" in df.columns else pd.Series(False, index=df.index)
    if "video" not in df.columns:
        df["video"] = ""
    if "frame" not in df.columns:
        df["frame"] = ""
    for i in np.flatnonzero((~is_image).to_numpy()):
        video, frame = df["video"].iloc[i], df["frame"].iloc[i]
        if not video or not str(frame).strip().lstrip("-").isdigit():
            raise GrimaceError(
                f"{path} line {i + 2}: expected an image, or a video and an integer frame, "
                f"got image '', video {video!r}, frame {frame!r}"
            )
    df["frame"] = [int(f) if not img else -1 for f, img in zip(df["frame"], is_image, strict=True)]
    # one id per scored frame: the image's path, or video#frame
    df["frame_id"] = np.where(is_image, df["image"] if "image" in df.columns else "",
                              df["video"] + "#" + df["frame"].astype(str))  # fmt: skip
    return df


def scored_frame_features(
    scores: pd.DataFrame, config: GrimaceConfig, *, model_dir: str | Path | None = None
) -> pd.DataFrame:
    """Features of every scored frame (one row per ``frame_id``, with ``animal``), from poses and the video.

    Video rows take their keypoints from the row's pose file, else from the face pose model ``model_dir``;
    still-image rows (``image``) always from the face pose model, then the same features as a video frame
    (:func:`behavior.features.grimace.still_image_features`).

    Raises
    ------
    GrimaceError
        Image rows without ``model_dir``; a missing or unreadable image, or one where the model finds no
        face (naming the first such row and counting them: none is dropped silently); a video frame out
        of range.
    """
    from pose_models.io import load_poses

    rows = []
    frames = scores.drop_duplicates("frame_id")
    is_image = (frames["image"] != "") if "image" in frames.columns else pd.Series(False, index=frames.index)
    estimator = None

    def get_estimator() -> Any:
        nonlocal estimator
        if estimator is None:
            from pose_models.inference import PoseEstimator

            estimator = PoseEstimator.from_dir(model_dir)
        return estimator

    if is_image.any():
        images = frames[is_image]
        if model_dir is None:
            raise GrimaceError(
                f"the scores CSV has {len(images)} still image(s) (first: line {images['line'].iloc[0]}, "
                f"{images['image'].iloc[0]}): expected a face pose model for their keypoints (--model DIR)"
            )
        rows.extend(_image_rows(images, config, get_estimator()))
    for video, group in frames[~is_image].groupby("video"):
        pose = group["pose"].iloc[0] if "pose" in group.columns else ""
        if pose:
            poses = load_poses(pose)
        else:
            if model_dir is None:
                raise GrimaceError(f"{video}: expected a pose column in the scores CSV or a face pose model (--model)")
            poses = get_estimator().predict_video(video)
        fps = float(poses.attrs.get("fps") or 30.0)
        table = score_frames(poses, video, config, fps=fps)
        n = len(table)
        for _, r in group.iterrows():
            if not 0 <= r["frame"] < n:
                raise GrimaceError(f"{video}: expected a frame in [0, {n}), got {r['frame']}")
            rows.append({"frame_id": r["frame_id"], "animal": r["animal"], **table.loc[r["frame"], list(FEATURES)]})
    return pd.DataFrame(rows)


def _image_rows(images: pd.DataFrame, config: GrimaceConfig, estimator: Any, batch: int = 16) -> list[dict]:
    """Feature rows of the still images of a scores CSV (one per image), through the face pose model."""
    import cv2

    from behavior.features.grimace import still_image_features

    rows: list[dict] = []
    faceless: list[tuple[int, str]] = []
    records = list(images[["line", "image", "frame_id", "animal"]].itertuples(index=False))
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        rgb = []
        for rec in chunk:
            if not Path(rec.image).is_file():
                raise GrimaceError(f"scores CSV line {rec.line}: expected an image file, got no file {rec.image}")
            img = cv2.imread(rec.image, cv2.IMREAD_COLOR)
            if img is None:
                raise GrimaceError(f"scores CSV line {rec.line}: expected a readable image, got unreadable {rec.image}")
            rgb.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        pos, conf = estimator.predict_images(rgb)
        feats = still_image_features(rgb, pos, conf, list(estimator.keypoints), config)
        for rec, (_, f) in zip(chunk, feats.iterrows(), strict=True):
            if not f["face_ok"]:
                faceless.append((rec.line, rec.image))
                continue
            rows.append({"frame_id": rec.frame_id, "animal": rec.animal, **f[list(FEATURES)]})
    if faceless:
        line, image = faceless[0]
        s = config.selection
        raise GrimaceError(
            f"scores CSV line {line}: no face found in {image} ({len(faceless)} of {len(records)} image(s) without "
            f"{s.min_face_keypoints} face keypoints at confidence >= {s.min_confidence}); remove those rows "
            "or use a face model that finds them"
        )
    return rows


# ------------------------------------------------------------------------------------ the model


def _nll(params: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float) -> float:
    w, th1, d = params[:-2], params[-2], params[-1]
    th2 = th1 + math.exp(d)
    eta = x @ w
    p_le0 = 1 / (1 + np.exp(-(th1 - eta)))
    p_le1 = 1 / (1 + np.exp(-(th2 - eta)))
    p = np.where(y == 0, p_le0, np.where(y == 1, p_le1 - p_le0, 1 - p_le1))
    return float(-np.log(np.clip(p, 1e-12, None)).sum() + l2 * (w @ w))


def fit_ordinal(x: np.ndarray, y: np.ndarray, l2: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Proportional-odds model of integer scores 0-2: weights ``w`` and thresholds ``theta`` (2,)."""
    x = np.asarray(x, float)
    y = np.asarray(y, int)
    start = np.r_[np.zeros(x.shape[1]), -1.0, 0.7]
    res = minimize(_nll, start, args=(x, y, l2), method="L-BFGS-B")
    w, th1 = res.x[:-2], res.x[-2]
    return w, np.array([th1, th1 + math.exp(res.x[-1])])


def _expected(x: np.ndarray, w: np.ndarray, theta: np.ndarray) -> np.ndarray:
    eta = x @ w
    p_le0 = 1 / (1 + np.exp(-(theta[0] - eta)))
    p_le1 = 1 / (1 + np.exp(-(theta[1] - eta)))
    return (p_le1 - p_le0) + 2 * (1 - p_le1)


@dataclass
class CalibratedScorer:
    """Per-AU ordinal models on standardised features, for one species (saved as JSON, never pickled)."""

    species: str
    feature_names: list[str]
    mean: list[float]
    scale: list[float]
    coefficients: dict[str, dict[str, list[float]]]
    agreement: dict[str, Any] = field(default_factory=dict)

    def check_species(self, species: str) -> None:
        """Refuse to score ``species`` with a scorer calibrated for another."""
        if species != self.species:
            raise GrimaceError(
                f"calibration is for species {self.species!r}, expected one for {species!r} (the assay's species)"
            )

    def _x(self, table: pd.DataFrame) -> np.ndarray:
        missing = [f for f in self.feature_names if f not in table.columns]
        if missing:
            raise GrimaceError(f"expected feature columns {missing} to score with the calibration")
        x = table[self.feature_names].to_numpy(float)
        x = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.where(np.isfinite(x), x, 0.0)  # a missing feature sits at the training mean

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        """Expected 0-2 score of every AU for each row of a frame table."""
        x = self._x(table)
        out = {au: _expected(x, np.asarray(c["w"]), np.asarray(c["theta"])) for au, c in self.coefficients.items()}
        return pd.DataFrame(out, index=table.index)[list(self.coefficients)]

    def to_json(self) -> dict[str, Any]:
        """The JSON document :meth:`save` writes."""
        return {
            "format": FORMAT,
            "version": 1,
            "species": self.species,
            "feature_names": self.feature_names,
            "mean": self.mean,
            "scale": self.scale,
            "coefficients": self.coefficients,
            "agreement": self.agreement,
        }

    def save(self, path: str | Path) -> Path:
        """Write the scorer as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_clean(self.to_json()), indent=1, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> CalibratedScorer:
        """Read a scorer written by :meth:`save`.

        Raises
        ------
        GrimaceError
            A file that is not a grimace calibration, or one with inconsistent fields.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"expected a grimace calibration file, got no file {path}")
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GrimaceError(f"{path}: expected a grimace calibration (JSON), got unreadable text") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise GrimaceError(
                f"{path}: expected a {FORMAT} file, got format {doc.get('format') if isinstance(doc, dict) else None!r}"
            )
        species = doc.get("species")
        if species not in AU_NAMES:
            raise GrimaceError(f"{path}: expected species in {sorted(AU_NAMES)}, got {species!r}")
        names = list(doc.get("feature_names", []))
        if not names or len(doc.get("mean", [])) != len(names) or len(doc.get("scale", [])) != len(names):
            raise GrimaceError(f"{path}: expected mean and scale for each of the feature names {names}")
        coefs = doc.get("coefficients", {})
        bad = [a for a in coefs if a not in AU_NAMES[species]]
        if bad or any(len(c.get("w", [])) != len(names) or len(c.get("theta", [])) != 2 for c in coefs.values()):
            raise GrimaceError(
                f"{path}: expected coefficients of {species} AUs over {len(names)} features, got {list(coefs)}"
            )
        return cls(species, names, list(doc["mean"]), list(doc["scale"]), coefs, doc.get("agreement", {}))


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy numbers to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    return value


def fit_scorer(features: pd.DataFrame, scores: pd.DataFrame, species: str, l2: float = 0.5) -> CalibratedScorer:
    """Fit one ordinal model per AU on every rater's scores of the frames in ``features``."""
    data = scores.merge(features.drop(columns=["animal"], errors="ignore"), on="frame_id", how="inner")
    if data.empty:
        raise GrimaceError("expected scored frames with features, got none (no frame of the CSV could be read)")
    x = data[list(FEATURES)].to_numpy(float)
    mean = np.nanmean(x, axis=0)
    scale = np.nanstd(x, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    xs = np.where(np.isfinite(x), (x - mean) / scale, 0.0)
    coefs = {}
    for au in AU_NAMES[species]:
        if au not in data.columns:
            continue
        y = data[au].to_numpy(float)
        keep = np.isfinite(y)
        w, theta = fit_ordinal(xs[keep], y[keep].astype(int), l2)
        coefs[au] = {"w": w.tolist(), "theta": theta.tolist()}
    return CalibratedScorer(species, list(FEATURES), mean.tolist(), scale.tolist(), coefs)


# ------------------------------------------------------------------------------------ agreement


def weighted_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Quadratic-weighted Cohen's kappa of two integer 0-2 ratings (NaN when undefined)."""
    from sklearn.metrics import cohen_kappa_score

    a, b = np.asarray(a, int), np.asarray(b, int)
    if len(a) < 2 or (len(set(a)) == 1 and len(set(b)) == 1):
        return float("nan")
    return float(cohen_kappa_score(a, b, labels=[0, 1, 2], weights="quadratic"))


def icc_a1(ratings: np.ndarray) -> float:
    """ICC(A,1) (McGraw & Wong 1996: two-way, absolute agreement, single measures) of ``(n_targets, k)``."""
    y = np.asarray(ratings, float)
    y = y[np.isfinite(y).all(axis=1)]
    n, k = y.shape
    if n < 2 or k < 2:
        return float("nan")
    grand = y.mean()
    ms_r = k * ((y.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    ms_c = n * ((y.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    sse = ((y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + grand) ** 2).sum()
    ms_e = sse / ((n - 1) * (k - 1))
    den = ms_r + (k - 1) * ms_e + k * (ms_c - ms_e) / n
    return float((ms_r - ms_e) / den) if den > 0 else float("nan")


def _consensus(scores: pd.DataFrame, aus: list[str]) -> pd.DataFrame:
    return scores.groupby("frame_id")[aus].mean()


def inter_rater_agreement(scores: pd.DataFrame, species: str) -> dict[str, Any]:
    """Raters' agreement with each other: mean pairwise weighted kappa per AU, ICC(A,1) of the frame mean."""
    aus = [a for a in AU_NAMES[species] if a in scores.columns]
    raters = sorted(scores["rater"].unique())
    if len(raters) < 2:
        return {"raters": len(raters)}
    wide = {r: scores[scores["rater"] == r].set_index("frame_id") for r in raters}
    kappas = {}
    for au in aus:
        vals = []
        for r1, r2 in itertools.combinations(raters, 2):
            both = (
                wide[r1][[au]].merge(wide[r2][[au]], left_index=True, right_index=True, suffixes=("_1", "_2")).dropna()
            )
            if len(both) >= 2:
                vals.append(weighted_kappa(both[f"{au}_1"], both[f"{au}_2"]))
        kappas[au] = float(np.nanmean(vals)) if vals and np.isfinite(vals).any() else float("nan")
    means = pd.DataFrame({r: wide[r][aus].mean(axis=1) for r in raters})
    return {"raters": len(raters), "kappa": kappas, "icc_mean_score": icc_a1(means.to_numpy()),
            "frames_all_raters": int(means.dropna().shape[0])}  # fmt: skip


def cross_validate(
    features: pd.DataFrame,
    scores: pd.DataFrame,
    species: str,
    *,
    n_splits: int = 5,
    grouping: Literal["animal", "frame"] = "animal",
    l2: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """Agreement of the calibrated model with the raters' mean under cross-validation.

    ``grouping="animal"`` (the default, and the only honest one) keeps every animal out of its own training
    folds; ``"frame"`` splits frames at random and lets an animal's other frames leak into training (only to
    show what a leak does to the figures).
    """
    from sklearn.model_selection import GroupKFold, KFold

    aus = [a for a in AU_NAMES[species] if a in scores.columns]
    feats = features.set_index("frame_id")
    ids = feats.index.to_numpy()
    animals = feats["animal"].to_numpy()
    if grouping == "animal":
        n = min(n_splits, len(set(animals)))
        if n < 2:
            raise GrimaceError(
                f"expected scored frames from at least 2 animals for grouped CV, got {len(set(animals))}"
            )
        splits = GroupKFold(n_splits=n).split(ids, groups=animals)
    else:
        splits = KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(ids)
    pred = pd.DataFrame(index=feats.index, columns=aus, dtype=float)
    for train, test in splits:
        if grouping == "animal":
            assert not set(animals[train]) & set(animals[test])
        tr = scores[scores["frame_id"].isin(ids[train])]
        model = fit_scorer(features[features["frame_id"].isin(ids[train])], tr, species, l2)
        pred.loc[ids[test], list(model.coefficients)] = model.predict(feats.loc[ids[test]]).to_numpy()
    cons = _consensus(scores, aus).loc[pred.index]
    kappa = {au: weighted_kappa(np.rint(pred[au]), np.rint(cons[au])) for au in aus}
    icc = icc_a1(np.c_[pred[aus].mean(axis=1), cons[aus].mean(axis=1)])
    return {"grouping": grouping, "folds": n_splits if grouping == "frame" else n, "frames": len(pred),
            "animals": len(set(animals)), "kappa": kappa, "icc_mean_score": icc}  # fmt: skip


def calibrate(
    scores: pd.DataFrame, features: pd.DataFrame, species: str, *, n_splits: int = 5, l2: float = 0.5
) -> CalibratedScorer:
    """Fit the scorer on all frames and attach grouped-CV and inter-rater agreement to it."""
    scorer = fit_scorer(features, scores, species, l2)
    scorer.agreement = {
        "model_vs_raters_cv": cross_validate(features, scores, species, n_splits=n_splits, l2=l2),
        "inter_rater": inter_rater_agreement(scores, species),
        "n_frames": int(features["frame_id"].nunique()),
        "n_scores": len(scores),
    }
    return scorer
