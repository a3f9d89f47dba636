"""Evaluating a trained model the way DeepLabCut reports it, and checking the labels themselves.

Figures (pixels of the original frames, every labelled keypoint of every frame counted):

- ``train_rmse_px`` / ``test_rmse_px`` - mean Euclidean error, which DeepLabCut calls RMSE, so the
  numbers compare directly; per keypoint too; ``*_rms_px`` is the root of the mean squared error;
- ``pck_5px`` / ``pck_10px`` - share of test keypoints within 5 / 10 px;
- ``*_pcutoff`` - the same errors over predictions with confidence >= ``pcutoff`` only, with the
  share kept.

Label quality: a frame is listed when exchanging a left/right pair of its labels would fit the
model's prediction far better (a likely swap), or when a label lies far from a confident prediction.
Test frames are held-out predictions; train frames are flagged too, marked as seen in training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pose_models.config import parse_yaml
from pose_models.data import load_labelled_frames
from pose_models.inference import PoseEstimator

__all__ = ["evaluate_model", "label_issues"]


def _stats(err: np.ndarray, conf: np.ndarray, mask: np.ndarray, pcutoff: float, prefix: str) -> dict[str, Any]:
    e = err[mask]
    c = conf[mask]
    labelled = np.isfinite(e)
    kept = labelled & (c >= pcutoff)
    return {
        f"{prefix}_rmse_px": float(np.nanmean(e)) if labelled.any() else None,
        f"{prefix}_rms_px": float(np.sqrt(np.nanmean(e**2))) if labelled.any() else None,
        f"{prefix}_rmse_px_pcutoff": float(e[kept].mean()) if kept.any() else None,
        f"{prefix}_fraction_above_pcutoff": float(kept.sum() / labelled.sum()) if labelled.any() else None,
    }


def label_issues(
    names: list[str],
    split: list[str],
    truth: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    keypoints: list[str],
    symmetry: list[list[str]],
    *,
    min_px: float = 10.0,
) -> list[dict[str, Any]]:
    """Frames whose labels look wrong: left/right swapped, or far from a confident prediction."""
    err = np.linalg.norm(predicted - truth, axis=-1)
    typical = float(np.nanmedian(err)) if np.isfinite(err).any() else 0.0
    far_px = max(min_px * 1.5, 6 * typical)
    issues = []
    for i, name in enumerate(names):
        flagged_pair = set()
        for a, b in symmetry:
            ia, ib = keypoints.index(a), keypoints.index(b)
            as_labelled = err[i, ia] + err[i, ib]
            swapped = np.linalg.norm(predicted[i, ia] - truth[i, ib]) + np.linalg.norm(predicted[i, ib] - truth[i, ia])
            if np.isfinite(as_labelled) and as_labelled > max(min_px, 4 * typical) and swapped < 0.5 * as_labelled:
                issues.append(
                    {
                        "frame": name,
                        "split": split[i],
                        "issue": "left/right swapped?",
                        "keypoints": [a, b],
                        "error_px": round(float(as_labelled / 2), 2),
                        "error_if_swapped_px": round(float(swapped / 2), 2),
                    }
                )
                flagged_pair |= {ia, ib}
        for k, kp in enumerate(keypoints):
            if k in flagged_pair or not np.isfinite(err[i, k]):
                continue
            if err[i, k] > far_px and confidence[i, k] >= 0.5:
                issues.append(
                    {
                        "frame": name,
                        "split": split[i],
                        "issue": "far from the model's prediction",
                        "keypoints": [kp],
                        "error_px": round(float(err[i, k]), 2),
                    }
                )
    return issues


def evaluate_model(
    model_dir: str | Path,
    labels: str | Path | None = None,
    *,
    pcutoff: float = 0.6,
    backend: str = "auto",
    threads: int | None = None,
    precision: str = "auto",
) -> dict[str, Any]:
    """Evaluate a model on its labelled frames (or another labelled set) and write ``evaluation.json``.

    Frames named in the model's ``split.json`` keep their train/test side; frames the model has never
    seen (a new labelled set) count as test frames.

    Returns
    -------
    dict
        The figures written to ``MODEL_DIR/evaluation.json`` (and per-keypoint errors to ``errors.csv``).
    """
    model_dir = Path(model_dir)
    meta = parse_yaml((model_dir / "model.yaml").read_text()) if (model_dir / "model.yaml").is_file() else None
    if meta is None:
        raise FileNotFoundError(f"{model_dir}: expected a trained model directory with model.yaml")
    split = json.loads((model_dir / "split.json").read_text())
    train_names = set(split["train"])
    frames = load_labelled_frames(labels or meta["source"])
    if frames.keypoint_names != meta["keypoints"]:
        raise ValueError(f"expected labels of keypoints {meta['keypoints']}, got {frames.keypoint_names}")
    estimator = PoseEstimator.from_dir(
        model_dir,
        backend=backend,
        threads=threads,
        precision=precision,  # type: ignore[arg-type]
    )
    predicted, confidence = estimator.predict_images(frames.images)
    truth = frames.keypoints
    err = np.linalg.norm(predicted - truth, axis=-1)  # (N, K), NaN where unlabelled
    sides = ["train" if n in train_names else "test" for n in frames.names]
    is_train = np.array([s == "train" for s in sides])
    mask_train = np.repeat(is_train[:, None], len(frames.keypoint_names), axis=1)
    result: dict[str, Any] = {
        "model_dir": str(model_dir),
        "labels": str(labels or meta["source"]),
        "backend": estimator.backend,
        "pcutoff": pcutoff,
        "n_train": int(is_train.sum()),
        "n_test": int((~is_train).sum()),
        # how the model was trained: a run the time cap cut short says so here too
        "training": {
            key: meta.get(key)
            for key in ("epochs_run", "epochs_planned", "stopped_by", "resumed_from_epoch", "seed", "training_seconds")
        },
    }
    result.update(_stats(err, confidence, mask_train, pcutoff, "train"))
    result.update(_stats(err, confidence, ~mask_train, pcutoff, "test"))
    test_err = err[~is_train]
    result["test_rmse_px_per_keypoint"] = {
        kp: (float(np.nanmean(test_err[:, k])) if np.isfinite(test_err[:, k]).any() else None)
        for k, kp in enumerate(frames.keypoint_names)
    }
    result["train_rmse_px_per_keypoint"] = {
        kp: (float(np.nanmean(err[is_train, k])) if np.isfinite(err[is_train, k]).any() else None)
        for k, kp in enumerate(frames.keypoint_names)
    }
    labelled_test = test_err[np.isfinite(test_err)]
    result["pck_5px"] = float((labelled_test < 5).mean()) if labelled_test.size else None
    result["pck_10px"] = float((labelled_test < 10).mean()) if labelled_test.size else None
    result["label_issues"] = label_issues(
        frames.names, sides, truth, predicted, confidence, frames.keypoint_names, meta.get("symmetry") or []
    )
    rows = [
        {"frame": n, "split": s, "keypoint": kp, "error_px": err[i, k], "confidence": confidence[i, k]}
        for i, (n, s) in enumerate(zip(frames.names, sides, strict=True))
        for k, kp in enumerate(frames.keypoint_names)
    ]
    pd.DataFrame(rows).to_csv(model_dir / "errors.csv", index=False)
    (model_dir / "evaluation.json").write_text(json.dumps(result, indent=1))
    return result
