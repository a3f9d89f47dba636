"""Gait extraction speed (frames/s) on a 10-minute 100 fps freely moving track set (pose only, no video).

    .venv/bin/python bench/gait_speed.py [--minutes 10] [--fps 100] [--repeats 3]

Prints frames/s of :func:`behavior.features.gait.analyse_gait` (contacts, bouts, strides, phase, base of
support, regularity index; no prints: they need the video). The goal of issue 14 is >= 100,000 frames/s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=100.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from behavior.features.gait import GaitConfig, analyse_gait
    from behavior.synthetic import GaitParams
    from behavior.synthetic.gait import simulate_gait_session

    # bouts of 4 s walking + ~2.6 s of stop / turn / settle: ~90 bouts in 10 minutes
    cycle_s = 4.0 + 1.0 + 0.6 + 0.25
    n_bouts = max(1, int(args.minutes * 60 / cycle_s))
    session = simulate_gait_session(
        GaitParams(fps=args.fps), seed=1, n_bouts=n_bouts, bout_duration_s=4.0, rear_s=0.0, jitter_px=0.3
    )
    n = session.poses.sizes["time"]
    config = GaitConfig(mode="open-field")
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        a = analyse_gait(session.poses, args.fps, 2.5, config)
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"tracks: {n} frames ({n / args.fps / 60:.1f} min at {args.fps:g} fps), {n_bouts} planted bouts")
    print(f"found: {int(a.bouts['kept'].sum())} bouts kept, {len(a.stances)} stances, {len(a.strides)} strides")
    print(f"analyse_gait: best {best:.3f} s of {args.repeats} -> {n / best:,.0f} frames/s (goal >= 100,000)")
    print(f"median {np.median(times):.3f} s -> {n / np.median(times):,.0f} frames/s")


if __name__ == "__main__":
    main()
