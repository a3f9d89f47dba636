"""End-to-end pose inference speed and peak memory of ``PoseEstimator.predict_video`` on the CPU.

End to end = decode (OpenCV) + preprocess + network + keypoint decoding, for every frame of the
shared openfield video (2330 frames, 640x480, 30 fps). Each configuration runs in a fresh process so
its peak resident memory (ru_maxrss) is its own. Batch 1 and 8; ONNX Runtime int8 (the CPU default)
and fp32, and torch; 2 threads.
With ``--long``, memory is also compared on 1-minute and 10-minute looped copies of the video.

    .venv/bin/python bench/pose_speed.py [--model MODEL_DIR] [--threads 2] [--long]

Without ``--model`` it uses the openfield model trained by bench/pose_accuracy.py if present, else a
freshly initialised model of the same architecture (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("PAINBATTERY_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
VIDEO = DATA / "dlc-examples/examples/openfield-Pranav-2018-10-30/videos/m3v1mp4.mp4"
TRAINED = Path("/tmp/painbattery-pose-bench/openfield_test20")


def child(args: argparse.Namespace) -> None:
    from pose_models.inference import PoseEstimator

    precision = args.precision if args.backend == "onnx" else "fp32"
    est = PoseEstimator.from_dir(
        args.model, backend=args.backend, device="cpu", threads=args.threads, precision=precision
    )
    est.predict_video(args.video, batch_size=args.batch, stop=64)  # warm-up (and ONNX export if needed)
    t0 = time.perf_counter()
    poses = est.predict_video(args.video, batch_size=args.batch)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"frames": int(poses.sizes["time"]), "seconds": seconds, "peak_mb": peak_mb, "backend": est.backend})
    )


def untrained_model(folder: Path, video: Path) -> Path:
    import torch
    import yaml

    from pose_models.geometry import preprocess
    from pose_models.inference import weights_digest, write_calibration_frames
    from pose_models.nets.model import ModelConfig, PoseNet
    from pose_models.video import VideoReader

    config = ModelConfig()
    model = PoseNet(4, config, pretrained=False)
    torch.save(model.state_dict(), folder / "weights.pt")
    meta = {
        "config": config.model_dump(mode="json"),
        "keypoints": ["snout", "leftear", "rightear", "tailbase"],
        "skeleton": [],
        "symmetry": [],
        "input_hw": [240, 320],
        "weights_sha256": weights_digest(folder / "weights.pt"),
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(meta))
    with VideoReader(video) as reader:  # calibration frames for the int8 export: the video's first frames
        _, frames = next(iter(reader.batches(32)))
    write_calibration_frames(folder, np.stack([preprocess(f, config.input_scale, None, 16) for f in frames]))
    return folder


def looped(video: Path, minutes: float, out: Path) -> Path:
    from pose_models.video import VideoReader, probe_video, write_video

    info = probe_video(video)
    n = int(minutes * 60 * info.fps)

    def frames():
        done = 0
        while done < n:
            with VideoReader(video) as reader:
                for _, batch in reader.batches(64):
                    for f in batch:
                        if done >= n:
                            return
                        done += 1
                        yield f

    return write_video(out, frames(), info.fps, preset="ultrafast")


def run(model: Path, video: Path, backend: str, batch: int, threads: int, precision: str = "auto") -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--model",
        str(model),
        "--video",
        str(video),
        "--backend",
        backend,
        "--batch",
        str(batch),
        "--threads",
        str(threads),
        "--precision",
        precision,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--long", action="store_true", help="also 1 min vs 10 min looped video")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="onnx", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if not args.video.is_file():
        raise SystemExit(f"video not found: {args.video}")
    tmp = Path(tempfile.mkdtemp(prefix="pose-speed-"))
    model = args.model or (TRAINED if (TRAINED / "weights.pt").is_file() else untrained_model(tmp, args.video))
    from pose_models.video import probe_video

    info = probe_video(args.video)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads; "
        f"model {model}; video {args.video.name} {info.width}x{info.height}, {info.n_frames} frames"
    )
    print(f"{'backend':14s} {'batch':>5s} {'frames':>7s} {'seconds':>8s} {'frames/s':>9s} {'peak MB':>8s}")
    from pose_models.inference import export_onnx, resolve_precision

    onnx_rows = [("onnx", p) for p in dict.fromkeys([resolve_precision(model), "fp32"])]
    for _, precision in onnx_rows:  # the one-time export happens here, so peak memory is the steady state's
        export_onnx(model, precision=precision)
    for backend, precision in [*onnx_rows, ("torch", "fp32")]:
        for batch in (1, 8):
            r = run(model, args.video, backend, batch, args.threads, precision)
            print(
                f"{r['backend']:14s} {batch:5d} {r['frames']:7d} {r['seconds']:8.2f} "
                f"{r['frames'] / r['seconds']:9.1f} {r['peak_mb']:8.0f}"
            )
    if args.long:
        print("\npeak memory against video length (onnx, default precision, batch 8):")
        for minutes in (1, 10):
            path = looped(args.video, minutes, tmp / f"loop_{minutes}min.mp4")
            r = run(model, path, "onnx", 8, args.threads)
            print(
                f"  {minutes:2d} min ({r['frames']} frames): {r['frames'] / r['seconds']:.1f} frames/s, "
                f"peak {r['peak_mb']:.0f} MB"
            )


if __name__ == "__main__":
    main()
