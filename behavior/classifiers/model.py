"""The behaviour classifier: gradient boosting on pose features, grouped cross-validation, bout smoothing.

- :class:`BehaviourEstimator` keeps the scikit-learn contract: a ``Pipeline`` around a
  ``HistGradientBoostingClassifier`` (NaN features allowed), samples weighted so every behaviour weighs
  as much as the others together ("balanced": rare behaviours are not drowned by ``none``).
- :func:`cross_validate` holds out whole animals (``GroupKFold``) or, with one animal, contiguous blocks
  of time (frames within the widest feature window of a test block are left out of training, so windows
  do not leak labels across the cut). Bout smoothing (probability window, minimum bout, gap merging) is
  chosen for each test fold on the *other* folds' labels only, then applied to the test fold.
- :func:`train_classifier` cross-validates, then fits on every frame with the smoothing chosen on all
  folds; :class:`TrainedClassifier` is what is saved (:mod:`behavior.classifiers.store`) and applied.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from behavior.classifiers.bouts import NONE, UNTRACKED, Smoothing, smooth_labels
from behavior.classifiers.features import FeatureParams, FeatureSet, window_frames

__all__ = [
    "DEFAULT_SMOOTHING_GRID",
    "BehaviourEstimator",
    "CrossValidation",
    "LabelledSession",
    "TrainedClassifier",
    "cross_validate",
    "train_classifier",
]

#: Smoothing options tried on the training folds: (probability window, min bout, max gap), in frames.
#: Up to 25 frames (0.5 s at 50 fps): a human's bouts of immobility last seconds, a flinch a few frames.
DEFAULT_SMOOTHING_GRID: tuple[tuple[int, int, int], ...] = tuple(
    itertools.product((1, 3, 5, 9, 15, 25), (1, 3, 5, 10, 25), (0, 3, 10))
)


def balanced_rows(y: np.ndarray, rng: np.random.Generator, *, max_repeat: int = 8) -> np.ndarray:
    """Training rows that weigh every class alike: each class drawn to ``len(y) / n_classes`` rows.

    Common classes are subsampled (without replacement), rare ones repeated (at most ``max_repeat``
    times each on average). Repeating rows is the balanced sample weight in integers: the boosting
    keeps its fast constant-hessian path, which real sample weights make ~30x slower.
    """
    classes, codes = np.unique(y, return_inverse=True)
    target = max(1, len(y) // len(classes))
    parts = []
    for c in range(len(classes)):
        idx = np.flatnonzero(codes == c)
        n = min(target, max_repeat * len(idx))
        if n <= len(idx):
            parts.append(rng.choice(idx, size=n, replace=False))
        else:
            parts.append(np.concatenate([idx, rng.choice(idx, size=n - len(idx), replace=True)]))
    return np.sort(np.concatenate(parts))


class BehaviourEstimator(ClassifierMixin, BaseEstimator):
    """Gradient boosting on per-frame features, with balanced sample weights.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes, l2_regularization, min_samples_leaf
        Of the ``HistGradientBoostingClassifier``.
    balanced
        Give each class the same weight in total (rare behaviours), by :func:`balanced_rows`.
    n_threads
        OpenMP threads while fitting and predicting (1 on a shared machine).
    random_state
        Seed.
    """

    def __init__(
        self,
        *,
        max_iter: int = 80,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        l2_regularization: float = 0.0,
        min_samples_leaf: int = 20,
        balanced: bool = True,
        n_threads: int | None = 1,
        random_state: int = 0,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.l2_regularization = l2_regularization
        self.min_samples_leaf = min_samples_leaf
        self.balanced = balanced
        self.n_threads = n_threads
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> BehaviourEstimator:
        """Fit on features ``X`` (NaN allowed) and labels ``y``; returns self."""
        y = np.asarray(y).astype(str)
        self.pipeline_ = Pipeline(
            [
                (
                    "hgb",
                    HistGradientBoostingClassifier(
                        max_iter=self.max_iter,
                        learning_rate=self.learning_rate,
                        max_leaf_nodes=self.max_leaf_nodes,
                        l2_regularization=self.l2_regularization,
                        min_samples_leaf=self.min_samples_leaf,
                        early_stopping=False,
                        random_state=self.random_state,
                    ),
                )
            ]
        )
        if self.balanced:
            rows = balanced_rows(y, np.random.default_rng(self.random_state))
            X, y = X[rows], y[rows]
        with threadpool_limits(limits=self.n_threads):
            self.pipeline_.fit(X, y)
        self.classes_ = self.pipeline_.classes_
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n_frames, n_classes)`` in the order of ``classes_``."""
        with threadpool_limits(limits=self.n_threads):
            return self.pipeline_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable class per frame."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


@dataclass
class LabelledSession:
    """One session's features and human labels for training.

    Attributes
    ----------
    features
        :class:`~behavior.classifiers.features.FeatureSet` of its poses.
    labels
        One label per frame (``none`` where no behaviour).
    group
        The animal: cross-validation never puts one animal in both training and test folds.
    name
        For reports.
    inputs
        Files it came from (hashed into the classifier's provenance).
    """

    features: FeatureSet
    labels: np.ndarray
    group: str
    name: str = ""
    inputs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.features.frames)
        if len(self.labels) != n:
            raise ValueError(f"session {self.name}: expected {n} labels (one per pose frame), got {len(self.labels)}")
        if np.any(np.asarray(self.labels).astype(str) == UNTRACKED):
            raise ValueError(
                f"session {self.name}: the label {UNTRACKED!r} is reserved for frames the scorer cannot see; "
                "expected behaviour names (rename it, or mark such frames 'none')"
            )


@dataclass
class CrossValidation:
    """Cross-validated figures of a classifier (per frame, after the fold's own smoothing)."""

    scheme: str
    n_folds: int
    classes: list[str]
    per_class: pd.DataFrame
    confusion: pd.DataFrame
    macro_f1: float
    macro_f1_unsmoothed: float
    smoothing: Smoothing
    fold_smoothing: list[Smoothing]
    predictions: list[np.ndarray]

    def summary(self) -> dict[str, Any]:
        """JSON-able figures (the saved classifier's provenance)."""
        return {
            "scheme": self.scheme,
            "n_folds": self.n_folds,
            "macro_f1": round(self.macro_f1, 4),
            "macro_f1_unsmoothed": round(self.macro_f1_unsmoothed, 4),
            "per_class": self.per_class.round(4).to_dict(orient="records"),
            "confusion": {"labels": list(self.confusion.columns), "counts": self.confusion.to_numpy().tolist()},
            "smoothing": self.smoothing.as_dict(),
            "fold_smoothing": [s.as_dict() for s in self.fold_smoothing],
        }


def _behaviour_classes(classes: Sequence[str]) -> list[str]:
    return [c for c in classes if c != NONE]


def _macro_f1(y: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> float:
    behaviours = _behaviour_classes(classes) or list(classes)
    present = [c for c in behaviours if (y == c).any() or (pred == c).any()]
    if not present:
        return 1.0
    # sklearn's f1_score(average="macro", zero_division=0) over ``present``, by counting: the smoothing
    # search calls this hundreds of times and f1_score's checks cost 10 ms each
    f1 = []
    for c in present:
        truth, guess = y == c, pred == c
        tp = int(np.count_nonzero(truth & guess))
        denominator = int(np.count_nonzero(truth)) + int(np.count_nonzero(guess))
        f1.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(f1))


def _folds(
    sessions: Sequence[LabelledSession], n_splits: int, purge: int
) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    sizes = [len(s.labels) for s in sessions]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    groups = np.concatenate([np.full(n, s.group, dtype=object) for s, n in zip(sessions, sizes, strict=True)])
    n_groups = len(set(groups))
    if n_groups >= 2:
        k = min(n_splits, n_groups)
        splitter = GroupKFold(n_splits=k)
        idx = np.arange(len(groups))
        return f"GroupKFold by animal ({k} folds, {n_groups} animals)", list(splitter.split(idx, groups=groups))
    folds = []
    for k in range(n_splits):
        test_parts, drop_parts = [], []
        for s, n in enumerate(sizes):
            lo, hi = offsets[s] + (n * k) // n_splits, offsets[s] + (n * (k + 1)) // n_splits
            test_parts.append(np.arange(lo, hi))
            drop_parts.append(np.arange(max(offsets[s], lo - purge), min(offsets[s + 1], hi + purge)))
        test = np.concatenate(test_parts)
        mask = np.ones(offsets[-1], dtype=bool)
        mask[np.concatenate(drop_parts)] = False
        folds.append((np.flatnonzero(mask), test))
    return f"blocked in time ({n_splits} contiguous folds, one animal, {purge}-frame purge)", folds


def _full_proba(est: BehaviourEstimator, X: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    p = est.predict_proba(X)
    out = np.zeros((X.shape[0], len(classes)))
    col = {c: i for i, c in enumerate(classes)}
    for j, c in enumerate(est.classes_):
        out[:, col[str(c)]] = p[:, j]
    return out


def cross_validate(
    sessions: Sequence[LabelledSession],
    *,
    estimator: BehaviourEstimator | None = None,
    n_splits: int = 5,
    smoothing_grid: Sequence[tuple[int, int, int]] = DEFAULT_SMOOTHING_GRID,
) -> CrossValidation:
    """Grouped (or blocked) cross-validation with bout smoothing chosen on the training folds.

    Parameters
    ----------
    sessions
        Labelled sessions; their ``group`` (animal) decides the folds.
    estimator
        Unfitted estimator (cloned per fold); default :class:`BehaviourEstimator`.
    n_splits
        Folds (at most the number of animals when there are several).
    smoothing_grid
        ``(window_frames, min_bout_frames, max_gap_frames)`` options.

    Raises
    ------
    ValueError
        With no sessions, fewer than two classes, or too few frames for the folds.
    """
    from sklearn.base import clone

    if not sessions:
        raise ValueError("expected at least one labelled session, got none")
    estimator = estimator or BehaviourEstimator()
    X = np.vstack([s.features.frames.to_numpy(dtype=np.float32) for s in sessions])
    y = np.concatenate([np.asarray(s.labels).astype(str) for s in sessions])
    classes = sorted(set(y))
    if len(classes) < 2:
        raise ValueError(f"expected labels of at least two classes (behaviours and/or none), got {classes}")
    fps = sessions[0].features.fps
    if n_splits < 2 or len(y) < 10 * n_splits:
        raise ValueError(f"expected n_splits >= 2 and at least {10 * n_splits} frames, got {n_splits} and {len(y)}")
    purge = window_frames(max(sessions[0].features.params.windows_s), fps)
    scheme, folds = _folds(sessions, n_splits, purge)
    proba = np.zeros((len(y), len(classes)))
    fold_of = np.full(len(y), -1)
    for k, (train, test) in enumerate(folds):
        est = clone(estimator).fit(X[train], y[train])
        proba[test] = _full_proba(est, X[test], classes)
        fold_of[test] = k
    sizes = [len(s.labels) for s in sessions]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    classes_arr = np.array(classes, dtype=object)
    options = [Smoothing(*g) for g in smoothing_grid] or [Smoothing()]
    smoothed = []
    for opt in options:
        codes = np.concatenate([smooth_labels(proba[a:b], opt) for a, b in itertools.pairwise(bounds)])
        smoothed.append(classes_arr[codes])
    raw = classes_arr[np.argmax(proba, axis=1)]

    def best(mask: np.ndarray) -> int:
        scores = [_macro_f1(y[mask], pred[mask], classes) for pred in smoothed]
        return int(np.argmax(scores))

    final = raw.copy()
    fold_smoothing = []
    for k in range(len(folds)):
        test = fold_of == k
        choice = best(~test & (fold_of >= 0))
        fold_smoothing.append(options[choice])
        final[test] = smoothed[choice][test]
    scored = fold_of >= 0
    overall = options[best(scored)]
    p, r, f, support = precision_recall_fscore_support(y[scored], final[scored], labels=classes, zero_division=0)
    per_class = pd.DataFrame({"behavior": classes, "precision": p, "recall": r, "f1": f, "support": support})
    cm = pd.DataFrame(
        confusion_matrix(y[scored], final[scored], labels=classes),
        index=pd.Index(classes, name="true"),
        columns=pd.Index(classes, name="predicted"),
    )
    predictions = [final[a:b] for a, b in itertools.pairwise(bounds)]
    return CrossValidation(
        scheme=scheme,
        n_folds=len(folds),
        classes=classes,
        per_class=per_class,
        confusion=cm,
        macro_f1=_macro_f1(y[scored], final[scored], classes),
        macro_f1_unsmoothed=_macro_f1(y[scored], raw[scored], classes),
        smoothing=overall,
        fold_smoothing=fold_smoothing,
        predictions=predictions,
    )


@dataclass
class TrainedClassifier:
    """A fitted behaviour classifier with everything needed to apply it to new poses.

    Attributes
    ----------
    estimator
        The fitted :class:`BehaviourEstimator`.
    classes
        Its classes (behaviours and ``none``), the order of its probabilities.
    feature_names
        The feature columns it was fitted on, in order.
    roles
        The keypoint roles its features use.
    fps
        The frame rate of its training poses (features are in frames of it).
    feature_params
        How features were computed.
    smoothing
        Bout smoothing chosen on the cross-validation folds.
    provenance
        Training inputs (with hashes), cross-validation figures, parameters.
    """

    estimator: BehaviourEstimator
    classes: list[str]
    feature_names: list[str]
    roles: list[str]
    fps: float
    feature_params: FeatureParams
    smoothing: Smoothing
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def behaviours(self) -> list[str]:
        """The behaviours it scores (its classes without ``none``)."""
        return _behaviour_classes(self.classes)

    def check_features(self, features: FeatureSet, *, source: str = "poses") -> np.ndarray:
        """The feature matrix in the classifier's column order.

        Raises
        ------
        ValueError
            If the poses are at another frame rate, or lack a keypoint role (a feature) it needs.
        """
        if not np.isclose(features.fps, self.fps, rtol=1e-3):
            raise ValueError(
                f"{source}: expected poses at the classifier's {self.fps:g} fps, got {features.fps:g} fps "
                "(resample the poses or train at this rate)"
            )
        lacking = [r for r in self.roles if r not in features.roles]
        if lacking:
            raise ValueError(
                f"{source}: expected keypoint role(s) {lacking} the classifier uses, got {sorted(features.roles)}"
            )
        missing = [c for c in self.feature_names if c not in features.frames.columns]
        if missing:
            raise ValueError(f"{source}: expected the classifier's features, got none for {missing[:3]}")
        return features.frames[self.feature_names].to_numpy(dtype=np.float32)

    def predict_proba(self, features: FeatureSet, *, source: str = "poses") -> np.ndarray:
        """Probabilities ``(n_frames, n_classes)`` in the order of :attr:`classes`."""
        return _full_proba(self.estimator, self.check_features(features, source=source), self.classes)

    def predict(self, features: FeatureSet, *, source: str = "poses") -> tuple[np.ndarray, np.ndarray]:
        """``(labels, probabilities)`` per frame, labels after the classifier's bout smoothing.

        Frames without a body axis (``features.tracked`` false) are labelled :data:`UNTRACKED` and left
        out of the smoothing: each tracked stretch is smoothed on its own.
        """
        proba = self.predict_proba(features, source=source)
        codes = smooth_labels(proba, self.smoothing, tracked=features.tracked)
        names = np.asarray([*self.classes, UNTRACKED], dtype=object)
        return names[codes], proba


def train_classifier(
    sessions: Sequence[LabelledSession],
    *,
    estimator: BehaviourEstimator | None = None,
    n_splits: int = 5,
    smoothing_grid: Sequence[tuple[int, int, int]] = DEFAULT_SMOOTHING_GRID,
) -> tuple[TrainedClassifier, CrossValidation]:
    """Cross-validate, then fit on every labelled frame.

    Raises
    ------
    ValueError
        If sessions differ in frame rate or keypoint roles, or :func:`cross_validate` refuses them.
    """
    from sklearn.base import clone

    if not sessions:
        raise ValueError("expected at least one labelled session, got none")
    fps = sessions[0].features.fps
    roles = sorted(sessions[0].features.roles)
    for s in sessions[1:]:
        if not np.isclose(s.features.fps, fps, rtol=1e-3):
            raise ValueError(
                f"session {s.name}: expected every training session at {fps:g} fps, got {s.features.fps:g}"
            )
        if s.features.params != sessions[0].features.params:
            raise ValueError(f"session {s.name}: expected the feature parameters of the first session")
        if sorted(s.features.roles) != roles:
            raise ValueError(
                f"session {s.name}: expected the keypoint roles {roles} of the first session, "
                f"got {sorted(s.features.roles)}"
            )
    estimator = estimator or BehaviourEstimator()
    cv = cross_validate(sessions, estimator=estimator, n_splits=n_splits, smoothing_grid=smoothing_grid)
    names = list(sessions[0].features.frames.columns)
    X = np.vstack([s.features.frames[names].to_numpy(dtype=np.float32) for s in sessions])
    y = np.concatenate([np.asarray(s.labels).astype(str) for s in sessions])
    final = clone(estimator).fit(X, y)
    provenance = {
        "n_sessions": len(sessions),
        "n_frames": len(y),
        "n_animals": len({s.group for s in sessions}),
        "label_frames": {c: int((y == c).sum()) for c in cv.classes},
        "estimator": final.get_params(),
        "cross_validation": cv.summary(),
        "sessions": [
            {"name": s.name, "animal": s.group, "n_frames": len(s.labels), "inputs": s.inputs} for s in sessions
        ],
    }
    trained = TrainedClassifier(
        estimator=final,
        classes=[str(c) for c in cv.classes],
        feature_names=names,
        roles=roles,
        fps=float(fps),
        feature_params=sessions[0].features.params,
        smoothing=cv.smoothing,
        provenance=provenance,
    )
    return trained, cv
