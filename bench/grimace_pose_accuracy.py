"""Grimace through a face pose model (not the true keypoints): keypoint error and session score error.

Trains the face model on synthetic labelled face frames (random grimace, both facings, some grooming),
measures its keypoint error on held-out synthetic frames, then scores a simulated grimace study
(Control / CCI / CCI+MSC, baseline and d7) from video through that model and compares each session's
``mgs_score`` with the planted truth. The issue's bar: within 0.2 of truth.

    .venv/bin/python bench/grimace_pose_accuracy.py [--clips 24] [--epochs 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=24, help="training clips (6 labelled frames each)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--animals", type=int, default=2, help="animals per group in the scored study")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    import torch

    from behavior.batch import score_study
    from behavior.session import read_manifest
    from behavior.synthetic.study import simulate_study
    from behavior.synthetic.training import labelled_frames
    from pose_models.inference import PoseEstimator
    from pose_models.nets.model import ModelConfig, TrainConfig
    from pose_models.train import train_model

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        frames = labelled_frames(assays=("grimace",), n_clips=args.clips, frames_per_clip=6, seed=20_000)
        config = ModelConfig(
            input_scale=1.0,
            neck_channels=32,
            train=TrainConfig(epochs=args.epochs, batch_size=8, lr=2e-3, patience_epochs=args.epochs),
        )
        t0 = time.perf_counter()
        train_model(frames, root / "face_model", config, seed=0)
        train_s = time.perf_counter() - t0

        held_out = labelled_frames(assays=("grimace",), n_clips=6, frames_per_clip=6, seed=55_000)
        estimator = PoseEstimator.from_dir(root / "face_model", threads=args.threads)
        predicted, confidence = estimator.predict_images(list(held_out.images))
        error = np.linalg.norm(predicted - np.asarray(held_out.keypoints), axis=2)

        manifest = simulate_study(
            root / "study",
            seed=1,
            animals_per_group=args.animals,
            timepoints=("baseline", "d7"),
            assays=("grimace",),
            n_jobs=1,
        )
        sessions = [
            s.model_copy(update={"pose": None, "model": (root / "face_model").resolve()})
            for s in read_manifest(manifest)
        ]
        t0 = time.perf_counter()
        result = score_study(sessions, root / "scored")
        score_s = time.perf_counter() - t0
        truth = pd.read_csv(root / "study" / "study_truth.csv").set_index("session_id")["grimace_mgs_score"]

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} threads; face frames 240x180; "
        f"training: {len(frames.names)} frames, {args.epochs} epochs, {train_s:.0f} s"
    )
    print("keypoint error on 36 held-out frames (px): median / 90th percentile / median confidence")
    for k, name in enumerate(held_out.keypoint_names):
        print(
            f"  {name:20s} {np.nanmedian(error[:, k]):5.2f} / {np.nanpercentile(error[:, k], 90):5.2f}"
            f" / {np.nanmedian(confidence[:, k]):.2f}"
        )
    mgs = result.measures[result.measures["measure"] == "mgs_score"].set_index("session_id")
    table = pd.DataFrame({"mgs_score": mgs["value"], "frames": mgs["n"], "truth": truth.loc[mgs.index]})
    table["error"] = table["mgs_score"] - table["truth"]
    print(table.round(3).to_string())
    print(
        f"sessions: {len(table)} scored from video in {score_s:.1f} s; |error| max {table['error'].abs().max():.3f}, "
        f"mean {table['error'].abs().mean():.3f} (bar: 0.2); failures: {len(result.failures)}"
    )


if __name__ == "__main__":
    main()
