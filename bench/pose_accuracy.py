"""Pose accuracy: train on real labelled data and print test error (DeepLabCut's RMSE) per keypoint.

Datasets (from ../shared/data or $PAINBATTERY_DATA):
- ``openfield``: DeepLabCut's openfield project, 116 frames 640x480, snout/ears/tailbase, default model
  (half-resolution input);
- ``lp-mirror``: lightning-pose's mirror mouse, 90 frames 396x406, 4 paws (+ nose, tail, obstacle) in
  a side and a bottom view, full-resolution input (paws are small).

For each dataset and each test fraction (seeded split; 0.2 = our default, 0.05 = DeepLabCut's 95/5
convention) it trains a model (the config's epochs; a time cap only with --minutes), evaluates it with
ONNX Runtime and prints train/test error, per-keypoint test error, PCK@5/10 px and the labels the
evaluation flags. Figures are given for the int8 export (what ``pose predict`` runs on a CPU) and for the
fp32 export.

    .venv/bin/python bench/pose_accuracy.py [--datasets openfield lp-mirror] [--test-fractions 0.2 0.05]
        [--minutes M (default: no cap)] [--threads 2] [--out /tmp/painbattery-pose-bench] [--evaluate-only]
        [--set train.frozen_layers=5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

DATA = Path(os.environ.get("PAINBATTERY_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DATASETS = {
    "openfield": (DATA / "dlc-examples/examples/openfield-Pranav-2018-10-30", []),
    "lp-mirror": (DATA / "lp-mirror-mouse/data/mirror-mouse-example", ["input_scale=1.0"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--test-fractions", nargs="+", type=float, default=[0.2, 0.05])
    parser.add_argument("--minutes", type=float, default=None, help="training time cap per model (default none)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/painbattery-pose-bench"))
    parser.add_argument("--evaluate-only", action="store_true", help="evaluate models already trained in --out")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="model config override, e.g. train.frozen_layers=5"
    )
    args = parser.parse_args()

    import torch

    from pose_models.config import apply_overrides, load_config
    from pose_models.evaluate import evaluate_model
    from pose_models.nets.model import ModelConfig
    from pose_models.train import train_model

    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}, "
        f"time cap {args.minutes} min per model, seed {args.seed}, overrides {args.overrides or 'none'}"
    )
    for name in args.datasets:
        source, overrides = DATASETS[name]
        if not source.exists():
            print(f"{name}: data not found at {source}, skipped")
            continue
        for fraction in args.test_fractions:
            config = ModelConfig.model_validate(
                apply_overrides(
                    load_config("models", "efficientnet_lite0_s16"),
                    [*overrides, *args.overrides, *([f"train.max_minutes={args.minutes}"] if args.minutes else [])],
                )
            )
            out = args.out / f"{name}_test{round(fraction * 100)}"
            if not args.evaluate_only:
                t0 = time.perf_counter()
                result = train_model(source, out, config, test_fraction=fraction, seed=args.seed, epochs=args.epochs)
                minutes = (time.perf_counter() - t0) / 60
            fp32 = evaluate_model(out, backend="onnx", threads=args.threads, precision="fp32")
            figures = evaluate_model(out, backend="onnx", threads=args.threads, precision="int8")
            print(
                f"\n{name}, test fraction {fraction} ({figures['n_train']} train / {figures['n_test']} test frames), "
                f"input scale {config.input_scale}:"
            )
            if not args.evaluate_only:
                print(f"  trained in {minutes:.1f} min: {result.summary()}")
            per_kp = ", ".join(f"{k} {v:.2f}" for k, v in fp32["test_rmse_px_per_keypoint"].items() if v is not None)
            print(
                f"  fp32: train error {fp32['train_rmse_px']:.2f} px, test error {fp32['test_rmse_px']:.2f} px "
                f"({per_kp}), PCK@5 {fp32['pck_5px']:.3f}"
            )
            print("  int8 (the CPU default):")
            print(
                f"  train error {figures['train_rmse_px']:.2f} px, test error {figures['test_rmse_px']:.2f} px "
                f"(root-mean-square {figures['test_rms_px']:.2f}), PCK@5 {figures['pck_5px']:.3f}, "
                f"PCK@10 {figures['pck_10px']:.3f}"
            )
            print(
                f"  test error with p-cutoff 0.6: {figures['test_rmse_px_pcutoff']:.2f} px "
                f"({100 * figures['test_fraction_above_pcutoff']:.0f} % of points kept)"
            )
            for kp, err in figures["test_rmse_px_per_keypoint"].items():
                print(f"    {kp:16s} {err:7.2f} px" if err is not None else f"    {kp:16s}  unlabelled")
            for issue in figures["label_issues"]:
                print(
                    f"  label check: {issue['frame']} ({issue['split']}): {issue['issue']} {issue['keypoints']} "
                    f"{issue['error_px']} px"
                )


if __name__ == "__main__":
    main()
