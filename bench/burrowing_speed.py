"""Burrowing wall time on a one-hour 640x480 video of the tube, on 2 threads (goal: <= 60 s).

The video is synthetic (:mod:`behavior.synthetic.burrowing`): a one-hour test captured as a
time-lapse at 1 frame per real second (3,600 frames, H.264 CRF 23, played back at 25 fps), the rig's
frames rendered every 20 s of real time and each held for 20 captured frames with fresh sensor noise
(so every frame is coded and decoded like a real capture), the mouse in front of the tube for 5 min.
Prints the wall time of scoring it with the default config (a sample every 10 s: frames are read
through), with a sample every 60 s (frames are reached by seeking), and the accuracy against truth.
Usage::

    .venv/bin/python bench/burrowing_speed.py [--video PATH] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

HOLD = 20  # captured frames per rendered frame (1 frame/s capture, rig rendered every 20 s)


def make_video(path: Path) -> tuple[list[int], float, dict]:
    from behavior.synthetic.base import simulate_clip
    from pose_models.video import write_video

    clip = simulate_clip(
        "burrowing",
        seed=11,
        frame_width_px=640,
        frame_height_px=480,
        px_per_mm=1.0,
        duration_s=3600.0 - HOLD,
        frame_interval_s=float(HOLD),
        displaced_fraction_per_min=0.015,
        latency_to_start_s=420.0,
        occlusions_s=((1200.0, 1500.0),),
    )
    rng = np.random.default_rng(0)

    def frames():
        for f in clip.frames:
            for _ in range(HOLD):
                noise = rng.integers(-2, 3, f.shape[:2], dtype=np.int16)[:, :, None]
                yield np.clip(f.astype(np.int16) + noise, 0, 255).astype(np.uint8)

    write_video(path, frames(), 25.0, crf=23)
    return clip.truth["tube_roi"], 1.0, clip.truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None, help="existing video (then --roi and --fps too)")
    parser.add_argument("--roi", default=None)
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)
    from behavior.features.burrowing import BurrowingConfig, score_burrowing_video
    from pose_models.video import probe_video

    with tempfile.TemporaryDirectory() as tmp:
        truth = None
        if args.video is None:
            video = Path(tmp) / "burrowing_1h_640x480.mp4"
            t0 = time.perf_counter()
            roi, fps, truth = make_video(video)
            print(f"made {video.name} in {time.perf_counter() - t0:.1f} s")
        else:
            video, fps = args.video, args.fps
            roi = [int(v) for v in args.roi.split(",")]
        info = probe_video(video)
        print(
            f"video: {info.width}x{info.height}, {info.n_frames} frames, capture {fps:g} frame/s = "
            f"{(info.n_frames - 1) / fps / 60:.1f} min real time; tube roi {roi}; {args.threads} threads"
        )
        for interval in (10.0, 60.0):
            config = BurrowingConfig(sample_interval_s=interval)
            t0 = time.perf_counter()
            result = score_burrowing_video(video, roi, fps, config)
            wall = time.perf_counter() - t0
            m = {x.measure: x.value for x in result.measures}
            line = (
                f"burrowing, sample every {interval:g} s ({result.quality['frames_sampled']} frames sampled, "
                f"{result.quality['frames_occluded']} hidden): {wall:.1f} s wall for one hour"
            )
            if truth is not None:
                line += (
                    f"; displaced {m['displaced_percent']:.1f} % (truth {truth['displaced_percent_end']:.1f}), "
                    f"latency {m.get('latency_to_start_min', float('nan')):.2f} min "
                    f"(truth {truth['latency_s'] / 60:.2f})"
                )
            print(line)


if __name__ == "__main__":
    main()
