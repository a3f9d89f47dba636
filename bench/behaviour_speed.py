"""Behaviour classifier speed (goal: features + classification >= 50,000 frames/s on 2 cores) and accuracy.

Speed: a classifier is trained on four simulated pain-box animals (:mod:`behavior.synthetic.pain_box`, planted
labels, the demo's small estimator and the default one), then a long simulated session (``--minutes``, 30 fps)
is featurised and classified; prints frames per second of the features, of the classification (probabilities
+ bout smoothing), and of both, with the machine, frames and threads. Accuracy: the behaviordepot-demo1
freezing comparison (one mouse, human labels, blocked 5-fold cross-validation) beside BehaviorDEPOT's own
per-frame F1 (0.903), when the real data is there (``$PAINBATTERY_DATA`` or ../shared/data). Usage::

    .venv/bin/python bench/behaviour_speed.py [--minutes 10] [--threads 2] [--skip-realdata]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

REPEATS = 3


def speed(minutes: float, threads: int) -> None:
    from behavior.classifiers import (
        BehaviourEstimator,
        apply_classifier,
        compute_features,
        labelled_session,
        resolve_roles,
        smooth_labels,
        train_classifier,
    )
    from behavior.synthetic import simulate_clip
    from behavior.synthetic.pain_box import pain_box_labels

    clips = [simulate_clip("pain_box", seed=(1, i), duration_s=60, injured=i % 2 == 0) for i in range(4)]
    sessions = [labelled_session(c.poses, pain_box_labels(c), group=f"a{i}") for i, c in enumerate(clips)]
    long = simulate_clip("pain_box", seed=99, duration_s=minutes * 60, injured=True)
    n = long.n_frames
    roles = resolve_roles([str(k) for k in long.poses["keypoints"].values])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(
        f"session: {n} frames ({minutes:g} min at 30 fps), {len(roles)} keypoint roles; {threads} thread(s); "
        f"each time the best of {REPEATS} runs"
    )
    for name, kw in (("demo (20 iterations, 15 leaves)", {"max_iter": 20, "max_leaf_nodes": 15, "learning_rate": 0.2}),
                     ("default (80 iterations, 31 leaves)", {})):  # fmt: skip
        t0 = time.perf_counter()
        clf, cv = train_classifier(sessions, estimator=BehaviourEstimator(**kw, n_threads=threads), n_splits=4)
        train_s = time.perf_counter() - t0
        # each step timed as the best of REPEATS runs (the first run of a step also pays page faults)
        feat_s = clf_s = apply_s = float("inf")
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            fs = compute_features(long.poses, {r: roles[r] for r in clf.roles}, params=clf.feature_params)
            feat_s = min(feat_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            proba = clf.predict_proba(fs)
            smooth_labels(proba, clf.smoothing)
            clf_s = min(clf_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            apply_classifier(clf, long.poses)
            apply_s = min(apply_s, time.perf_counter() - t0)
        print(
            f"{name}: trained + cross-validated in {train_s:.1f} s (macro F1 {cv.macro_f1:.3f}); "
            f"{len(fs.frames.columns)} features: {n / feat_s:,.0f} frames/s; classification {n / clf_s:,.0f} frames/s; "
            f"features + classification {n / (feat_s + clf_s):,.0f} frames/s; apply_classifier (all outputs) "
            f"{n / apply_s:,.0f} frames/s"
        )


def depot(data: Path) -> None:
    from behavior.classifiers import BehaviourEstimator, cross_validate, labelled_session, read_annotations
    from behavior.classifiers.roles import parse_role_pairs

    folder = data / "behaviordepot-demo1"
    if not (folder / "demo1_tracking.csv").is_file():
        print(f"behaviordepot-demo1 not found under {data}: skipped")
        return
    s = labelled_session(
        folder / "demo1_tracking.csv",
        folder / "demo1_human_freezing_bouts.csv",
        fps=50,
        roles=parse_role_pairs("behaviordepot"),
    )
    human = s.labels == "freezing"
    tool = read_annotations(folder / "demo1_behaviordepot_freezing_bouts.csv", n_frames=len(human), fps=50)

    def f1(pred: np.ndarray) -> float:
        return 2 * float(np.sum(human & pred)) / float(human.sum() + pred.sum())

    for name, kw in (("regularised", {"max_iter": 60, "max_leaf_nodes": 5, "min_samples_leaf": 300}),
                     ("default", {})):  # fmt: skip
        cv = cross_validate([s], n_splits=5, estimator=BehaviourEstimator(**kw))
        print(
            f"behaviordepot-demo1 freezing, per-frame F1 vs the human ({cv.scheme}, {name} estimator): "
            f"ours {f1(cv.predictions[0] == 'freezing'):.3f}, BehaviorDEPOT {f1(tool == 'freezing'):.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-realdata", action="store_true")
    args = parser.parse_args()
    speed(args.minutes, args.threads)
    if not args.skip_realdata:
        env = os.environ.get("PAINBATTERY_DATA")
        depot(Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data")


if __name__ == "__main__":
    main()
