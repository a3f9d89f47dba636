"""Hargreaves latencies read from video through a paw model, trial by trial against the simulator's truth.

Predicts the paw keypoints of a simulated study's Hargreaves videos with a trained pose model (e.g. the
demo's ``demo-output/pose_model``), then runs the withdrawal detector with the Hargreaves config (and any
``--set`` overrides) and compares every trial with its planted outcome. Prints, per setting: trials
scored, trials wrong by more than ``--tolerance-s`` with no flag (the figure that must be 0), trials
left unscored by reason, trials scored after a keypoint shift at the onset, and the mean |error|.
Predicted poses are cached beside the model (``--cache``), so settings can be compared quickly.

    .venv/bin/python bench/hargreaves_from_video.py demo-output/study demo-output/pose_model \
        [--set withdrawal.min_confidence=0.3] [--set withdrawal.onset_shift_s=0] [--threads 2]

Each ``--set`` group is one setting; ``--compare KEY=V1,V2`` scores the same poses once per value.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="A simulated study folder (manifest.csv, *.truth.json).")
    parser.add_argument("model", type=Path, help="Pose model folder.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="Hargreaves config override.")
    parser.add_argument("--compare", default=None, help="KEY=V1,V2,...: one run per value.")
    parser.add_argument("--tolerance-s", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=None, help="Predicted poses' folder (default: in the model's).")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from behavior.features.evoked import assay_config, stimulus_events
    from behavior.features.withdrawal import UNKNOWN_OUTCOMES, withdrawal_trials
    from behavior.session import read_manifest
    from pose_models.inference import PoseEstimator
    from pose_models.io import load_poses, save_poses

    sessions = {s.session_id: s for s in read_manifest(args.study / "manifest.csv") if s.assay == "hargreaves"}
    manifest = pd.read_csv(args.study / "manifest.csv", dtype=str, keep_default_na=False)
    rows = manifest[manifest["assay"] == "hargreaves"]
    cache = args.cache or args.model / "bench-poses"
    cache.mkdir(parents=True, exist_ok=True)
    estimator = None
    poses_by_session = {}
    t0 = time.perf_counter()
    for row in rows.itertuples():
        path = cache / f"{row.session_id}.nc"
        if not path.exists():
            estimator = estimator or PoseEstimator.from_dir(args.model, threads=args.threads)
            save_poses(estimator.predict_video(sessions[row.session_id].video), path)
        poses_by_session[row.session_id] = load_poses(path)
    print(
        f"{platform.processor() or platform.machine()}, {args.threads} threads: {len(rows)} Hargreaves sessions "
        f"predicted / loaded in {time.perf_counter() - t0:.0f} s (model {args.model})"
    )
    settings = [list(args.overrides)]
    if args.compare:
        key, values = args.compare.split("=", 1)
        settings = [[*args.overrides, f"{key}={v}"] for v in values.split(",")]
    for overrides in settings:
        config = assay_config("hargreaves", overrides)
        errors, wrong, shifted, unscored, scored, total = [], [], 0, dict.fromkeys(UNKNOWN_OUTCOMES, 0), 0, 0
        for row in rows.itertuples():
            session = sessions[row.session_id]
            truth = json.loads((args.study / f"{row.session_id}.truth.json").read_text())["trials"]
            events = stimulus_events(session, config, None)
            trials = withdrawal_trials(
                poses_by_session[row.session_id],
                events,
                window_s=config.cutoff_s,
                paw_by_side=config.paw_keypoints,
                params=config.withdrawal,
                px_per_mm=session.px_per_mm,
                fps=session.fps,
            )
            for t, true in zip(trials.itertuples(), truth, strict=True):
                total += 1
                if t.quality != "ok":
                    unscored[t.quality] += 1
                    continue
                scored += 1
                shifted += int(t.onset_shift_px > t.threshold_px / 2)
                true_latency = config.cutoff_s if true["censored"] else true["latency_s"]
                err = abs(t.latency_s - true_latency)
                errors.append(err)
                if err > args.tolerance_s:
                    wrong.append(f"{row.session_id} {t.side}: {t.latency_s:.2f} s read, {true_latency:.2f} s true")
        reasons = ", ".join(f"{k} {v}" for k, v in unscored.items() if v) or "none"
        print(
            f"{' '.join(overrides) or 'config as shipped'}: {scored}/{total} trials scored, "
            f"{len(wrong)} wrong by > {args.tolerance_s:g} s, {shifted} scored after an onset shift "
            "(> half the threshold), "
            f"unscored: {reasons}; mean |error| {np.mean(errors) if errors else float('nan'):.3f} s"
        )
        for w in wrong[:10]:
            print(f"    wrong: {w}")


if __name__ == "__main__":
    main()
