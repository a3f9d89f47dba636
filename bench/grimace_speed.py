"""Grimace frames/s on a 10-minute 640x480 face video, 2 threads: scoring alone, and end to end with the face model.

A 10-minute 640x480 face video at 30 fps (a few hundred rendered rig frames, looped with their true
keypoints; the face at 16 px/mm). Without ``--with-pose-model`` the scoring alone is timed from the
true keypoints (decode, head frames, face crops, selection, scores). With it, a face pose model is
trained here on rig frames of the same size (or loaded with ``--model DIR``) and the video goes through
what ``painbattery grimace score VIDEO --model DIR`` does: ``PoseEstimator.predict_video`` (ONNX Runtime,
int8 by default on the CPU), then the scoring on the predicted keypoints. Printed: frames/s of
inference, of scoring and end to end, with the conditions (machine, threads, network input size,
precision). The goal is >= 150 frames/s end to end.

    .venv/bin/python bench/grimace_speed.py [--minutes 10] [--threads 2]
    .venv/bin/python bench/grimace_speed.py --with-pose-model [--input-scale 0.375] [--precision int8]
        [--model DIR [--run-scale 0.375]] [--save-model DIR] [--clips 24] [--epochs 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

WIDTH, HEIGHT, PX_PER_MM, FPS = 640, 480, 16.0, 30.0


def _face_frames(n_clips: int, seed: int) -> Any:
    """Labelled 640x480 face frames from the rig (as ``labelled_frames(("grimace",))``, at the bench's size)."""
    import numpy as np

    from behavior.synthetic import simulate_clip
    from behavior.synthetic.training import _face_params
    from pose_models.data import LabelledFrames

    names, images, points = [], [], []
    keypoints: list[str] = []
    for i in range(n_clips):
        params = _face_params(np.random.default_rng(seed + i), "left" if i % 2 else "right")
        params["head_motion_px"] = params["head_motion_px"] * PX_PER_MM / 6.0
        clip = simulate_clip("grimace", seed=seed + i, frame_width_px=WIDTH, frame_height_px=HEIGHT,
                             px_per_mm=PX_PER_MM, **params)  # fmt: skip
        keypoints = [str(k) for k in clip.poses["keypoints"].values]
        for f in np.linspace(0, clip.n_frames - 1, 6).astype(int):
            names.append(f"{clip.name}#{f}")
            images.append(clip.frames[f])
            pts = clip.poses["position"].values[f, :, :, 0].T.copy()
            pts[clip.poses["confidence"].values[f, :, 0] <= 0] = np.nan
            points.append(pts)
    return LabelledFrames(names, images, np.asarray(points, float), keypoints, [], "synthetic rig 640x480")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--with-pose-model", action="store_true", help="include the face model's inference")
    parser.add_argument("--model", type=Path, help="face pose model directory (default: train one here)")
    parser.add_argument("--save-model", type=Path, help="keep the model trained here in this directory")
    parser.add_argument("--input-scale", type=float, default=0.375, help="network input / frame size (trained)")
    parser.add_argument(
        "--run-scale",
        type=float,
        help="run a loaded model at this input_scale (a model trained on 240x180 faces at 6 px/mm runs on this "
        "video at 0.375: the same face size in the network)",
    )
    parser.add_argument("--precision", choices=("auto", "int8", "fp32"), default="int8")
    parser.add_argument("--clips", type=int, default=24, help="training clips (6 labelled frames each)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--set", action="append", help="grimace config override (selection.pose_fps=null: every frame)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import cv2
    import numpy as np

    cv2.setNumThreads(args.threads)
    from behavior.assays import get_assay
    from behavior.features.grimace import frame_step, score_frames
    from behavior.synthetic import simulate_clip
    from behavior.video import write_video
    from pose_models.poses import from_numpy

    clip = simulate_clip("grimace", seed=0, duration_s=10.0, fps=FPS, px_per_mm=PX_PER_MM, frame_width_px=WIDTH,
                         frame_height_px=HEIGHT, eye_aperture=0.7, blur_stretches_s=[(2.0, 3.0)],
                         grooming_stretches_s=[(6.0, 7.0)])  # fmt: skip
    n = int(args.minutes * 60 * FPS)
    reps = -(-n // clip.n_frames)
    config = get_assay("grimace").load_config(args.set or [])
    step = frame_step(config, FPS)  # frames examined (and face poses predicted): every step-th
    machine = f"{platform.machine()} {platform.processor() or ''}".strip() + f", {os.cpu_count()} cores"
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "face.mp4"
        write_video(video, (clip.frames[i % clip.n_frames] for i in range(n)), FPS, crf=23)
        if not args.with_pose_model:
            pos = np.tile(clip.poses["position"].values, (reps, 1, 1, 1))[:n]
            conf = np.tile(clip.poses["confidence"].values, (reps, 1, 1))[:n]
            poses = from_numpy(pos, conf, keypoint_names=list(clip.poses["keypoints"].values), fps=FPS)
            t0 = time.perf_counter()
            table = score_frames(poses, video, config, fps=FPS, decode_threads=args.threads, step=step)
            dt = time.perf_counter() - t0
            print(
                f"grimace scoring (true keypoints + 640x480 H.264 video, every {step}. frame examined "
                f"(selection.pose_fps {config.selection.pose_fps}), {args.threads} threads, {machine}): "
                f"{n} frames in {dt:.1f} s = {n / dt:.0f} frames/s; {int(table['selected'].sum())} frames "
                f"selected, {int((table['reason'] != '').sum())} rejected"
            )
            return
        model_dir = args.model
        train_note = f"loaded {model_dir}"
        if model_dir is None:
            import torch

            from pose_models.nets.model import ModelConfig, TrainConfig
            from pose_models.train import train_model

            torch.set_num_threads(args.threads)
            model_dir = args.save_model or Path(tmp) / "face_model"
            frames = _face_frames(args.clips, seed=20_000)
            mc = ModelConfig(input_scale=args.input_scale, neck_channels=32,
                             train=TrainConfig(epochs=args.epochs, batch_size=8, lr=2e-3,
                                               patience_epochs=args.epochs))  # fmt: skip
            t0 = time.perf_counter()
            train_model(frames, model_dir, mc, seed=0)
            took = time.perf_counter() - t0
            train_note = f"trained here: {len(frames.names)} frames, {args.epochs} epochs, {took:.0f} s"
        from pose_models.inference import PoseEstimator

        estimator = PoseEstimator.from_dir(model_dir, threads=args.threads, precision=args.precision)
        if args.run_scale:
            estimator.scale = args.run_scale
        h, w = estimator.preprocess(clip.frames[0]).shape[:2]
        t0 = time.perf_counter()
        poses = estimator.predict_video(video, step=step)
        t_pose = time.perf_counter() - t0
        t0 = time.perf_counter()
        table = score_frames(poses, video, config, fps=FPS, decode_threads=args.threads, step=step)
        t_score = time.perf_counter() - t0
        # keypoint error on the looped rig frames, against the planted keypoints
        truth = np.tile(clip.poses["position"].values, (reps, 1, 1, 1))[:n, :, :, 0]
        tconf = np.tile(clip.poses["confidence"].values, (reps, 1, 1))[:n, :, 0]
        got = poses["position"].values[:, :, :, 0]
        err = np.linalg.norm(got - truth, axis=1)[(tconf > 0) & np.isfinite(got).all(axis=1)]
    total = t_pose + t_score
    print(
        f"machine: {machine}; {args.threads} threads; video {WIDTH}x{HEIGHT} H.264, {n} frames, {args.minutes:g} min; "
        f"every {step}. frame examined and predicted (selection.pose_fps {config.selection.pose_fps})"
    )
    print(f"face model: {train_note}; network input {w}x{h} (input_scale {estimator.scale:g}), {estimator.backend}")
    print(f"  inference (decode + preprocess + network): {t_pose:6.1f} s = {n / t_pose:5.0f} frames/s")
    print(f"  grimace scoring (decode + crops + select): {t_score:6.1f} s = {n / t_score:5.0f} frames/s")
    print(f"  end to end:                                {total:6.1f} s = {n / total:5.0f} frames/s (goal >= 150)")
    print(
        f"  keypoint error vs planted (px): median {np.nanmedian(err):.2f}, 90th pct {np.nanpercentile(err, 90):.2f}; "
        f"{int(table['selected'].sum())} frames selected, {int((table['reason'] != '').sum())} rejected "
        f"({', '.join(f'{r} {c}' for r, c in table['reason'][table['reason'] != ''].value_counts().items())})"
    )


if __name__ == "__main__":
    main()
