"""Pose-file and video I/O speed: how long reading and writing each format takes, and video decode rate.

Prints one line per measurement with its conditions. Usage::

    .venv/bin/python bench/io_speed.py [--frames 36000] [--keypoints 6] [--video PATH]

Defaults: a synthetic 20-minute 30 fps single-animal recording (36,000 frames, 6 keypoints), and the
shared openfield video (640x480) for decoding when it is present.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from behavior.video import VideoReader, probe_video
from pose_models.io import load_poses, save_poses
from pose_models.poses import from_numpy

SUFFIXES = (".h5", ".csv", ".slp", ".analysis.h5", ".nwb", ".nc")
DEFAULT_VIDEO = (
    Path(os.environ.get("PAINBATTERY_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    / "dlc-examples/examples/openfield-Pranav-2018-10-30/videos/m3v1mp4.mp4"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=36_000)
    parser.add_argument("--keypoints", type=int, default=6)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores, python {platform.python_version()}")
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 640, (args.frames, 2, args.keypoints, 1))
    conf = rng.uniform(0, 1, (args.frames, args.keypoints, 1))
    ds = from_numpy(pos, conf, keypoint_names=[f"kp{k}" for k in range(args.keypoints)], fps=30.0)
    print(f"poses: {args.frames} frames x {args.keypoints} keypoints x 1 individual")
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in SUFFIXES:
            path = Path(tmp) / f"bench{suffix}"
            t0 = time.perf_counter()
            save_poses(ds, path)
            t1 = time.perf_counter()
            back = load_poses(path, fps=30.0)
            t2 = time.perf_counter()
            exact = np.allclose(back["position"].values, pos, atol=1e-6)
            size_mb = path.stat().st_size / 1e6
            print(
                f"  {suffix:13s} write {t1 - t0:6.2f} s  read {t2 - t1:6.2f} s  size {size_mb:7.1f} MB  exact={exact}"
            )
    if args.video.is_file():
        info = probe_video(args.video)
        t0 = time.perf_counter()
        n = 0
        with VideoReader(args.video) as reader:
            for _, frames in reader.batches(args.batch):
                n += len(frames)
        dt = time.perf_counter() - t0
        print(
            f"video decode (OpenCV, RGB, batch {args.batch}): {args.video.name} {info.width}x{info.height}, "
            f"{n} frames in {dt:.2f} s = {n / dt:.0f} frames/s"
        )
    else:
        print(f"video decode: skipped, {args.video} not found")


if __name__ == "__main__":
    main()
