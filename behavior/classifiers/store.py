"""Saving and loading a trained behaviour classifier: a model directory we wrote ourselves.

Layout of ``MODEL_DIR``::

    manifest.json   format, behaviours, feature names, keypoint roles, fps, feature parameters, smoothing,
                    the model file's sha256, training provenance (input hashes, cross-validation figures)
    model.joblib    the fitted scikit-learn estimator (our own file, never a user's)

The model file is unpickled only when the manifest names it and its sha256 matches the manifest's;
anything else (a file swapped in, a directory without our manifest) is refused before loading.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from behavior.classifiers.bouts import Smoothing
from behavior.classifiers.features import FeatureParams
from behavior.classifiers.model import TrainedClassifier

__all__ = ["MANIFEST", "MODEL_FILE", "ClassifierFileError", "load_classifier", "save_classifier"]

MANIFEST = "manifest.json"
MODEL_FILE = "model.joblib"
FORMAT = "painbattery.behaviour-classifier"
FORMAT_VERSION = 1


class ClassifierFileError(ValueError):
    """A model directory is not a classifier painbattery saved, or its model file was changed."""


def _sha256(path: Path) -> str:
    from behavior.provenance import file_sha256

    return file_sha256(path)


def save_classifier(clf: TrainedClassifier, model_dir: str | Path) -> Path:
    """Write ``clf`` to ``model_dir`` (created): the model file, then the manifest with its hash.

    Returns
    -------
    Path
        The manifest.
    """
    import joblib

    from behavior import __version__

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    model_path = model_dir / MODEL_FILE
    joblib.dump(clf.estimator, model_path)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "painbattery_version": __version__,
        "model_file": MODEL_FILE,
        "model_sha256": _sha256(model_path),
        "classes": clf.classes,
        "behaviours": clf.behaviours,
        "keypoint_roles": clf.roles,
        "fps": clf.fps,
        "feature_params": clf.feature_params.as_dict(),
        "features": clf.feature_names,
        "smoothing": clf.smoothing.as_dict(),
        "provenance": clf.provenance,
    }
    path = model_dir / MANIFEST
    path.write_text(json.dumps(manifest, indent=1, default=_jsonable) + "\n")
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def load_classifier(model_dir: str | Path) -> TrainedClassifier:
    """Load a classifier saved by :func:`save_classifier`.

    Raises
    ------
    FileNotFoundError
        If the directory or its files are missing.
    ClassifierFileError
        If the manifest is not ours, or the model file's sha256 differs from the manifest's.
    """
    model_dir = Path(model_dir)
    manifest_path = model_dir / MANIFEST
    if not model_dir.is_dir():
        raise FileNotFoundError(f"classifier directory not found: {model_dir}")
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{model_dir}: expected a classifier directory with {MANIFEST}, got none")
    try:
        m = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ClassifierFileError(f"{manifest_path}: expected JSON, got: {exc}") from exc
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ClassifierFileError(
            f"{manifest_path}: expected a painbattery behaviour classifier manifest, got another file"
        )
    if m.get("format_version") != FORMAT_VERSION:
        raise ClassifierFileError(
            f"{manifest_path}: expected format version {FORMAT_VERSION}, got {m.get('format_version')}"
        )
    if m.get("model_file") != MODEL_FILE:
        raise ClassifierFileError(f"{manifest_path}: expected model file {MODEL_FILE}, got {m.get('model_file')!r}")
    model_path = model_dir / MODEL_FILE
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_dir}: expected {MODEL_FILE}, got none")
    digest = _sha256(model_path)
    if digest != m.get("model_sha256"):
        raise ClassifierFileError(
            f"{model_path}: expected sha256 {m.get('model_sha256')} (the manifest's), got {digest}: refusing to load "
            "a changed model file"
        )
    import joblib

    estimator = joblib.load(model_path)
    fp = m["feature_params"]
    return TrainedClassifier(
        estimator=estimator,
        classes=list(m["classes"]),
        feature_names=list(m["features"]),
        roles=list(m["keypoint_roles"]),
        fps=float(m["fps"]),
        feature_params=FeatureParams(
            min_confidence=float(fp["min_confidence"]),
            max_gap_s=float(fp["max_gap_s"]),
            windows_s=tuple(float(w) for w in fp["windows_s"]),
        ),
        smoothing=Smoothing(**{k: int(v) for k, v in m["smoothing"].items()}),
        provenance=dict(m.get("provenance") or {}),
    )
