"""Grimace frames/s end to end from a pose file and its video: decode, head frames, face crops, selection, scores.

A 10-minute 640x480 face video at 30 fps (a few hundred rendered rig frames, looped with their true
keypoints) scored with 2 threads. Pose inference is not included (the face pose model's own speed is
what ``pose predict`` reports); the goal here is >= 150 frames/s.

    .venv/bin/python bench/grimace_speed.py [--minutes 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import cv2
    import numpy as np

    cv2.setNumThreads(args.threads)
    from behavior.assays import get_assay
    from behavior.features.grimace import score_frames
    from behavior.synthetic import simulate_clip
    from behavior.video import write_video
    from pose_models.poses import from_numpy

    fps = 30.0
    clip = simulate_clip("grimace", seed=0, duration_s=10.0, fps=fps, px_per_mm=16.0, frame_width_px=640,
                         frame_height_px=480, eye_aperture=0.7, blur_stretches_s=[(2.0, 3.0)],
                         grooming_stretches_s=[(6.0, 7.0)])  # fmt: skip
    n = int(args.minutes * 60 * fps)
    reps = -(-n // clip.n_frames)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "face.mp4"
        write_video(video, (clip.frames[i % clip.n_frames] for i in range(n)), fps, crf=23)
        pos = np.tile(clip.poses["position"].values, (reps, 1, 1, 1))[:n]
        conf = np.tile(clip.poses["confidence"].values, (reps, 1, 1))[:n]
        poses = from_numpy(pos, conf, keypoint_names=list(clip.poses["keypoints"].values), fps=fps)
        config = get_assay("grimace").load_config()
        t0 = time.perf_counter()
        table = score_frames(poses, video, config, fps=fps, decode_threads=args.threads)
        dt = time.perf_counter() - t0
    print(
        f"grimace end to end (pose file + 640x480 H.264 video, {args.threads} threads): {n} frames in {dt:.1f} s = "
        f"{n / dt:.0f} frames/s; {int(table['selected'].sum())} frames selected, "
        f"{int((table['reason'] != '').sum())} rejected"
    )


if __name__ == "__main__":
    main()
