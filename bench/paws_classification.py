"""Noxious vs innocuous classification of the Jones et al. (2020) withdrawal tracks, mouse-grouped CV.

Computes the PAWS-like kinematic features of all 304 real tracks (2000 fps, 77 mice, 8 strains) and
prints cross-validated accuracy, balanced accuracy and ROC AUC of the pain score (strain-standardised
logistic regression; GroupKFold by mouse, so no mouse is in both training and test folds), for the
pre-peak, post-peak and all features, with and without strain standardisation.

    .venv/bin/python bench/paws_classification.py [--data ../shared/data] [--folds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import pandas as pd

from behavior.features.paws import (
    FEATURES,
    POST_FEATURES,
    PRE_FEATURES,
    cross_validate_pain_score,
    noxious_labels,
    tracks_features,
)

DEFAULT_DATA = Path(os.environ.get("PAINBATTERY_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    path = args.data / "paws-jones2020" / "jones2020_tracks_long.csv"
    if not path.is_file():
        raise SystemExit(f"data not found: {path}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; data: {path}")
    tracks = pd.read_csv(path)
    t0 = time.perf_counter()
    features = tracks_features(tracks, fps=2000.0)
    dt = time.perf_counter() - t0
    ok = features["quality"] == "ok"
    print(f"features: {ok.sum()}/{len(features)} tracks in {dt:.1f} s ({len(tracks) / dt:,.0f} frames/s)")
    labels = noxious_labels(features["stimulus"])
    print("\nmedian per stimulus (CS, DB innocuous; LP, HP noxious):")
    print(features.groupby("stimulus")[list(FEATURES)].median().T.round(3).to_string())
    print(f"\nmouse-grouped {args.folds}-fold CV, noxious (LP+HP) vs innocuous (CS+DB), chance = 0.5:")
    print(f"{'features':10s} {'standardise':12s} {'accuracy':>9s} {'bal.acc':>8s} {'ROC AUC':>8s} tracks mice")
    for name, names in (("pre-peak", PRE_FEATURES), ("post-peak", POST_FEATURES), ("all", FEATURES)):
        for strain in ("strain", None):
            r = cross_validate_pain_score(
                features,
                labels,
                features["mouse_id"],
                feature_names=names,
                strain_column=strain,
                n_splits=args.folds,
            )
            label = "by strain" if strain else "pooled"
            print(
                f"{name:10s} {label:12s} {r.accuracy:9.3f} {r.balanced_accuracy:8.3f} {r.roc_auc:8.3f} "
                f"{r.n_tracks:6d} {r.n_mice:4d}"
            )


if __name__ == "__main__":
    main()
