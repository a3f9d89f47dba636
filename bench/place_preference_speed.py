"""Place-preference tracking by background subtraction on a 30-minute 640x480 video (goal: <= 60 s on 2 cores).

The video is synthetic (:mod:`behavior.synthetic.place_preference`): a 20 s clip of the two-chamber box at
30 fps, 640x480, 1.5 px/mm, played forwards and backwards 45 times (54,000 frames, H.264 CRF 23), so the
animal's path is continuous and the truth (the chamber of every frame) is known. Prints, for each
sampling (every frame, every 2nd, every 3rd), the wall time of :func:`track_video` (decoding, background,
tracking) and of the occupancy, frames per second, and the time in the right chamber against the truth;
and the decoding speed alone. Usage::

    .venv/bin/python bench/place_preference_speed.py [--video PATH] [--minutes 30] [--steps 1 2 3]

``--video PATH`` keeps the generated video there (made once, reused on later runs).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

CLIP_S = 20.0
FPS = 30.0


def make_video(path: Path, minutes: float) -> dict:
    """Write the looped clip to ``path`` (and its truth beside it); return the truth."""
    from behavior.synthetic.base import simulate_clip
    from pose_models.video import write_video

    clip = simulate_clip(
        "place_preference",
        seed=5,
        duration_s=CLIP_S,
        fps=FPS,
        time_in_paired_s=11.0,
        n_entries=2,
        px_per_mm=1.5,
        frame_width_px=640,
        frame_height_px=480,
    )
    n = int(minutes * 60 * FPS)
    cycle = np.r_[np.arange(clip.n_frames), np.arange(clip.n_frames)[::-1]]
    order = np.resize(cycle, n)
    div = clip.truth["divider_x_px"]
    x = clip.poses["position"].sel(keypoints="centroid", space="x").isel(individuals=0).values
    truth = {"n_frames": n, "fps": FPS, "time_right_s": float((x[order] > div).sum() / FPS), "divider_x_px": div}
    write_video(path, (clip.frames[i] for i in order), FPS, crf=23)
    path.with_suffix(".truth.json").write_text(json.dumps(truth))
    return truth


def zones_for(div: float):
    from behavior.features.place_preference import Zones

    return Zones.from_mapping(
        {
            "zones": {
                "left": [[0, 0], [div, 0], [div, 479], [0, 479]],
                "right": [[div, 0], [639, 0], [639, 479], [div, 479]],
            }
        },
        source="bench",
    )


def goal(seconds: float, n_frames: int, fps: float) -> str:
    """The 30-minute goal (<= 60 s), projected from a shorter video when the video is shorter."""
    projected = seconds * (30 * 60 * fps) / n_frames
    where = "" if abs(n_frames - 30 * 60 * fps) < fps else f"projected to 30 min: {projected:.0f} s, "
    return f"{where}goal <= 60 s per 30 min: {'met' if projected <= 60 else 'NOT met'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=None)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()

    from behavior.assays import get_assay
    from behavior.features.place_preference import score_track
    from behavior.features.place_preference.tracking import _decode, track_video
    from pose_models.video import probe_video

    tmp = None
    video = args.video
    if video is None:
        tmp = tempfile.TemporaryDirectory()
        video = Path(tmp.name) / "cpp_30min.mp4"
    if not video.is_file():
        t0 = time.perf_counter()
        make_video(video, args.minutes)
        print(f"made {video} in {time.perf_counter() - t0:.0f} s")
    truth = json.loads(video.with_suffix(".truth.json").read_text())
    info = probe_video(video)
    print(
        f"video: {info.n_frames} frames, {info.width}x{info.height}, {info.fps:g} fps, "
        f"{info.n_frames / info.fps / 60:.1f} min"
    )

    t0 = time.perf_counter()
    n = sum(1 for _ in _decode(video, threads=False))
    dt = time.perf_counter() - t0
    print(f"decode only (luma plane, one thread): {n} frames in {dt:.1f} s = {n / dt:,.0f} frames/s")

    config = get_assay("place_preference").load_config()
    zones = zones_for(truth["divider_x_px"])
    for step in args.steps:
        cfg = config.tracking.model_copy(update={"step_frames": step})
        t0 = time.perf_counter()
        track = track_video(video, cfg)
        t_track = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = score_track(track.xy_px, track.frames, track.dt_s, zones, "right", "left", config)
        t_occ = time.perf_counter() - t1
        m = {x.measure: x.value for x in result.measures}
        total = t_track + t_occ
        print(
            f"every {step} frame(s) ({info.fps / step:g} per s, {len(track.frames)} tracked at "
            f"{track.scale:g}x): {total:.1f} s ({t_track:.1f} s tracking, {t_occ:.2f} s occupancy) = "
            f"{info.n_frames / total:,.0f} video frames/s; untracked {int(np.isnan(track.xy_px[:, 0]).sum())}; "
            f"time in right {m['time_in_paired_s']:.1f} s vs truth {truth['time_right_s']:.1f} s; "
            f"{goal(total, info.n_frames, info.fps)}"
        )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
