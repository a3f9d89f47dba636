"""Batch-scoring speed on the simulated CCI + MSC study: sessions per minute and frames per second.

Simulates the demo study (evoked assays; 3 groups x N animals x 3 timepoints), then scores it three
ways from a cold cache: from pose files with 1 and 2 worker processes, and with the Hargreaves sessions
from video through a pose model (trained first on synthetic labelled frames, not timed). Prints
sessions/minute, pose frames/s and the wall time of the statistics + report step.

    .venv/bin/python bench/score_speed.py [--animals-per-group 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--animals-per-group", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from behavior.batch import score_study
    from behavior.battery import BatteryConfig
    from behavior.report import write_outputs
    from behavior.synthetic import simulate_study
    from behavior.synthetic.training import labelled_frames
    from pose_models.nets.model import ModelConfig, TrainConfig
    from pose_models.train import train_model

    tmp = Path(tempfile.mkdtemp(prefix="score-speed-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    t0 = time.perf_counter()
    manifest = simulate_study(
        tmp / "study",
        seed=args.seed,
        animals_per_group=args.animals_per_group,
        assays=("hargreaves", "von_frey"),
        n_jobs=2,
    )
    rows = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    print(f"simulated {len(rows)} sessions in {time.perf_counter() - t0:.1f} s")
    torch.set_num_threads(os.cpu_count() or 1)
    config = ModelConfig(input_scale=1.0, neck_channels=32, train=TrainConfig(epochs=30, lr=2e-3, patience_epochs=30))
    train_model(labelled_frames(seed=10_000 + args.seed), tmp / "model", config, seed=args.seed)
    video_rows = rows.copy()
    by_video = video_rows["assay"] == "hargreaves"
    video_rows.loc[by_video, "pose"] = ""
    video_rows.loc[by_video, "model"] = str(tmp / "model")
    video_manifest = manifest.parent / "manifest_video.csv"
    video_rows.to_csv(video_manifest, index=False)

    print(f"\n{'run':34s} {'sessions':>8s} {'seconds':>8s} {'sessions/min':>13s} {'pose frames/s':>14s}")
    for label, path, workers in (
        ("pose files, 1 process", manifest, 1),
        ("pose files, 2 processes", manifest, 2),
        ("Hargreaves from video, 2 processes", video_manifest, 2),
    ):
        out = tmp / f"out_{workers}_{path.stem}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        result = score_study(path, out, workers=workers)
        seconds = time.perf_counter() - t0
        frames = int(result.quality["frames"].sum())
        print(
            f"{label:34s} {len(result.statuses):8d} {seconds:8.1f} {60 * len(result.statuses) / seconds:13.0f} "
            f"{frames / seconds:14.0f}"
        )
    t0 = time.perf_counter()
    write_outputs(out, result.measures, result.quality, result.failures, config=BatteryConfig.load("default"))
    print(
        f"\nbattery + statistics + report: {time.perf_counter() - t0:.1f} s "
        f"({result.measures['measure'].nunique()} measures, {len(result.measures)} rows)"
    )


if __name__ == "__main__":
    main()
