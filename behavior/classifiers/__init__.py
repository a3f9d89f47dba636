"""Behaviour classifiers trained on a lab's own annotations (licking, flinching, guarding, ...).

- :mod:`.annotations`: bout CSVs, per-frame label columns and BORIS exports, as one label per pose frame.
- :mod:`.roles`: keypoints by role (``snout``, ``tail_base``, ``paw_lh`` ...), a lab's names mapped onto them.
- :mod:`.features`: per-frame features over sliding windows, scaled to body size.
- :mod:`.model`: gradient boosting, grouped (or time-blocked) cross-validation, bout smoothing.
- :mod:`.store`: the saved classifier (model directory with a manifest and the model file's hash).
- :mod:`.apply`: per-frame labels and probabilities, bouts, session measures (ipsi/contra licking, flinches).
"""

from __future__ import annotations

from behavior.classifiers.annotations import AnnotationError, read_annotations, read_bout_table
from behavior.classifiers.apply import BehaviourScores, apply_classifier, behaviour_measures, licked_paw
from behavior.classifiers.bouts import NONE, Smoothing, bouts_to_labels, labels_to_bouts, smooth_labels
from behavior.classifiers.features import FeatureParams, FeatureSet, compute_features
from behavior.classifiers.model import (
    BehaviourEstimator,
    CrossValidation,
    LabelledSession,
    TrainedClassifier,
    cross_validate,
    train_classifier,
)
from behavior.classifiers.roles import RoleError, parse_role_pairs, resolve_roles
from behavior.classifiers.sessions import labelled_session
from behavior.classifiers.store import ClassifierFileError, load_classifier, save_classifier

__all__ = [
    "NONE",
    "AnnotationError",
    "BehaviourEstimator",
    "BehaviourScores",
    "ClassifierFileError",
    "CrossValidation",
    "FeatureParams",
    "FeatureSet",
    "LabelledSession",
    "RoleError",
    "Smoothing",
    "TrainedClassifier",
    "apply_classifier",
    "behaviour_measures",
    "bouts_to_labels",
    "compute_features",
    "cross_validate",
    "labelled_session",
    "labels_to_bouts",
    "licked_paw",
    "load_classifier",
    "parse_role_pairs",
    "read_annotations",
    "read_bout_table",
    "resolve_roles",
    "save_classifier",
    "smooth_labels",
    "train_classifier",
]
