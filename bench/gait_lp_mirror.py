"""Gait from the bottom view of lightning-pose's mirror mouse: a pose model over its video, then the steps.

The mouse is head-fixed on a wheel (one camera, a mirror: the bottom half of each frame is the ventral
view). A pose model is trained here on the 90 human-labelled frames (full frame, both views, default
config at input_scale 1.0; or loaded with ``--model``), run over ``videos/test_vid.mp4`` (994 frames,
250 fps), and the bottom-view paws go through the gait analysis on a belt
(``treadmill.speed_mm_s=auto``: the wheel's surface speed is the commonest backward paw speed). Printed:
duty cycle, cadence and inter-limb phases beside the ranges of MouseWalker's control animals
(``../shared/data/mousewalker``, 21 controls: duty 0.50-0.64, Phase F 0.48-0.53, Phase H 0.43-0.56,
frequency 5.5-8.9 Hz), and a footfall diagram is written. The data give no scale: px/mm is set from an
85 mm nose to tail base (only the mm figures depend on it; duty, cadence and phase do not).

    .venv/bin/python bench/gait_lp_mirror.py [--epochs 80] [--threads 2] [--model DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

DATA = Path(os.environ.get("PAINBATTERY_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SOURCE = DATA / "lp-mirror-mouse/data/mirror-mouse-example"
FPS = 250.0
BOTTOM = {
    "paw1LH_bot": "left_hind",
    "paw2LF_bot": "left_fore",
    "paw3RF_bot": "right_fore",
    "paw4RH_bot": "right_hind",
    "nose_bot": "snout",
    "tailBase_bot": "tailbase",
}
MOUSEWALKER = {"duty_cycle": (0.50, 0.64), "phase_lf_rf": (0.48, 0.53), "phase_lh_rh": (0.43, 0.56),
               "cadence_hz": (5.5, 8.9)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, help="a pose model trained on this project (default: train here)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/painbattery-gait-lp-mirror"))
    args = parser.parse_args()
    if not SOURCE.is_dir():
        print(f"{SOURCE} not found: skipped")
        return
    import numpy as np
    import torch

    from behavior.features.gait import GaitConfig, analyse_gait, footfall_figure, gait_measures
    from pose_models.config import apply_overrides, load_config
    from pose_models.inference import PoseEstimator
    from pose_models.nets.model import ModelConfig
    from pose_models.poses import from_numpy
    from pose_models.train import train_model

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} threads")
    model = args.model
    if model is None:
        model = args.out / "model"
        config = ModelConfig(**apply_overrides(load_config("models", "efficientnet_lite0_s16"), ["input_scale=1.0"]))
        t0 = time.perf_counter()
        result = train_model(SOURCE, model, config, epochs=args.epochs, seed=0)
        print(
            f"pose model: 90 labelled frames 396x406, {args.epochs} epochs, {time.perf_counter() - t0:.0f} s, "
            f"final training loss {result.final_loss:.2f} (test error per keypoint: bench/pose_accuracy.py)"
        )
    estimator = PoseEstimator.from_dir(model, threads=args.threads)
    t0 = time.perf_counter()
    poses = estimator.predict_video(SOURCE / "videos" / "test_vid.mp4")
    print(f"poses: {poses.sizes['time']} frames in {time.perf_counter() - t0:.1f} s ({estimator.backend})")
    names = [str(k) for k in poses["keypoints"].values]
    idx = [names.index(k) for k in BOTTOM]
    bottom = from_numpy(
        poses["position"].values[:, :, idx],
        poses["confidence"].values[:, idx],
        keypoint_names=list(BOTTOM.values()),
        fps=FPS,
    )
    pos = bottom["position"].values[:, :2, :, 0]
    body_px = float(np.nanmedian(np.hypot(*(pos[:, :, 4] - pos[:, :, 5]).T)))
    px_per_mm = body_px / 85.0
    analysis = analyse_gait(bottom, FPS, px_per_mm, GaitConfig(treadmill={"speed_mm_s": "auto"}))
    v = {m.measure: m.value for m in gait_measures(analysis, None)}
    q = analysis.quality
    print(
        f"belt (wheel surface) {q['treadmill_speed_mm_s']:.0f} mm/s ({q['treadmill_speed_source']}); "
        f"{q['runs_kept']} run(s) kept of {q['runs_found']}, {q['strides']} strides, "
        f"{q['stances_incomplete']} stances not timed; px/mm {px_per_mm:.2f} (85 mm nose - tail base)"
    )
    for k, (lo, hi) in MOUSEWALKER.items():
        flag = "inside" if lo <= v[k] <= hi else f"outside by {min(abs(v[k] - lo), abs(v[k] - hi)):.2f}"
        print(f"  {k:22s} {v[k]:6.3f}   MouseWalker controls {lo:.2f}-{hi:.2f}: {flag}")
    for k in ("phase_lf_rh", "phase_rf_lh", "regularity_index_percent", "stride_length_mm"):
        print(f"  {k:22s} {v[k]:6.3f}")
    st = analysis.stances[analysis.stances["in_kept_bout"] & analysis.stances["complete"].astype(bool)]
    per_paw = {paw: int((st["paw"] == paw).sum()) for paw in ("left_fore", "right_fore", "left_hind", "right_hind")}
    print(f"  timed stances per paw in the kept run: {per_paw}")
    fig = footfall_figure(analysis.stances, FPS, title="lp-mirror-mouse, bottom view (wheel)")
    fig.savefig(args.out / "footfall.png", dpi=120, bbox_inches="tight")
    print(f"footfall diagram: {args.out / 'footfall.png'}")


if __name__ == "__main__":
    main()
