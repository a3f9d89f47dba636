"""Side-view stepping (beam, treadmill; ``mode: side``): step cycles per visible paw and joint angles.

A side camera sees one side of the animal: its near hind paw and fore paw (whichever of them the
skeleton has; ``side_view.required_paws`` must be there), and the joints of those limbs.

Method
------
1. **Floor line.** A line ``y = a + b x`` in the image: through the median positions of
   ``side_view.floor_keypoints`` when given (one keypoint: a level line), else fitted through the
   ``contacts.floor_percentile`` of the visible paws' image y in ``side_view.floor_bins`` bins of x of
   equal frame count (a tilted beam is followed; image y grows downwards, so the floor is the paws'
   lowest points). Fewer than 10 tracked paw frames: no floor line, an error.
2. **Floor coordinates.** Each paw's position becomes (forward distance along the floor line, in the
   direction of travel; height above it, mm). Direction: ``side_view.direction`` or, with ``auto``, the
   sign of the body's (else the paws') net displacement along the floor. On a treadmill
   (``treadmill_speed_mm_s``) the belt's motion is added back, so a paw on the belt is still.
3. **Stance and swing** (:func:`behavior.features.gait.detect_stances` on the forward coordinate): a paw
   is in stance while its forward speed is under ``contacts.stance_speed_bl_s`` (leaving over
   ``swing_speed_bl_s``: hysteresis) *and* its height above the floor line is at most
   ``contacts.max_stance_height_mm``; minimum durations and edge refinement as for the bottom view.
4. **Step cycles** (AutoGaitA's convention): from a lift-off (the frame after a stance) through the swing
   and the next stance to its last frame. Both stances must be complete (not cut by untracked frames or
   the recording's ends), the swing fully tracked and the cycle at most ``max_cycle_s`` long.
   Per cycle: swing, stance and cycle duration, duty cycle (stance / cycle), stride length (forward
   distance between the two stances' mean positions), highest swing (mm above the floor line).
5. **Joint angles** (AutoGaitA's definition): the angle (0-180 deg) at ``joint`` between the segments to
   ``lower`` and ``upper``, per frame (NaN where a keypoint is untracked). Over each step cycle of the
   angle's ``limb``, the angle is normalised to ``bins`` bins: the mean of the frames of each of
   ``bins`` near-equal consecutive chunks (``numpy.array_split``) when the cycle has at least ``bins``
   frames, else frame ``floor(i * frames / bins)`` for bin ``i`` (AutoGaitA's binning; checked on its tables).
   Mean and SD (ddof=1) per bin over cycles.
   An angle whose keypoints the skeleton lacks is left out and named in the quality figures.
6. **Measures.** Per paw (``hind_`` / ``fore_``): means over cycles; fewer than ``min_strides_per_paw``
   cycles give NaN with the reason. Ipsi/contra ratios cannot come from one side: NaN with the reason.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from behavior.features.base import AssayResult, Measure
from behavior.features.gait import (
    BODY_ALIASES,
    RATIO_MEASURES,
    GaitConfig,
    GaitError,
    _check_inputs,
    _find_keypoint,
    body_length_mm,
    detect_stances,
    fill_gaps,
)

SIDE_PAWS = ("hind", "fore")
SIDE_ALIASES: dict[str, tuple[str, ...]] = {
    "hind_paw": ("hind paw tao", "hind paw toe", "hind paw", "hindpaw", "hind toe", "hindtoe", "toe", "mtp"),
    "fore_paw": ("front paw tao", "front paw toe", "front paw", "forepaw", "fore paw", "front toe", "hand"),
    "iliac_crest": ("iliac crest", "iliac", "crest", "pelvis"),
    "lower_shoulder": ("lower shoulder", "shoulder"),
    "upper_shoulder": ("upper shoulder", "scapula"),
    "ankle": ("ankle", "heel"),
}
CYCLE_MEASURES = (
    ("stance_duration_s", "s"),
    ("swing_duration_s", "s"),
    ("step_cycle_s", "s"),
    ("duty_cycle", "fraction"),
    ("stride_length_mm", "mm"),
    ("swing_height_mm", "mm"),
)
MIN_FLOOR_FRAMES = 10


@dataclass
class SideViewAnalysis:
    """What :func:`analyse_side_view` found: stances, step cycles, angles and their normalised curves."""

    stances: pd.DataFrame
    cycles: pd.DataFrame
    angles: pd.DataFrame
    angles_by_cycle: pd.DataFrame
    angle_curves: pd.DataFrame
    paw_summary: dict[str, dict[str, tuple[float, int, str]]]
    session: dict[str, tuple[float, str, int, str]]
    quality: dict[str, Any] = field(default_factory=dict)


def _keypoint(names: list[str], wanted: str) -> str | None:
    return _find_keypoint(names, wanted, SIDE_ALIASES.get(wanted, ()))


def _track(pos: np.ndarray, low: np.ndarray, names: list[str], name: str) -> np.ndarray:
    j = names.index(name)
    xy = pos[:, :, j].copy()
    xy[low[:, j]] = np.nan
    return xy


def floor_line(
    paw_xy: list[np.ndarray], percentile: float, bins: int, floor_xy: list[np.ndarray] | None = None
) -> tuple[float, float, str]:
    """The floor line ``y = a + b x`` (image pixels): ``(a, b, source)``.

    Parameters
    ----------
    paw_xy
        Tracks ``(n, 2)`` of the visible paws (NaN where untracked).
    percentile
        Percentile of the paws' image y taken as the floor in each x bin (image y grows downwards).
    bins
        Bins of x, of equal frame count, the line is fitted through (1: a level line).
    floor_xy
        Tracks of keypoints on the floor line; when given, the line runs through their median positions.

    Raises
    ------
    GaitError
        If no floor line can be determined (too few tracked frames).
    """
    if floor_xy:
        pts = np.array([np.nanmedian(xy, axis=0) for xy in floor_xy if np.isfinite(xy).all(axis=1).sum() >= 1])
        if len(pts) == 1:
            return float(pts[0, 1]), 0.0, "floor_keypoint"
        if len(pts) >= 2 and np.ptp(pts[:, 0]) > 0:
            b, a = np.polyfit(pts[:, 0], pts[:, 1], 1)
            return float(a), float(b), "floor_keypoints"
        raise GaitError(f"expected floor keypoints tracked in at least one frame, got {len(pts)} usable")
    xy = np.vstack(paw_xy) if paw_xy else np.empty((0, 2))
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) < MIN_FLOOR_FRAMES:
        raise GaitError(
            f"no floor line: expected at least {MIN_FLOOR_FRAMES} tracked paw frames to find it, got {len(xy)} "
            "(or name side_view.floor_keypoints)"
        )
    k = max(1, min(bins, len(xy) // MIN_FLOOR_FRAMES))
    order = np.argsort(xy[:, 0], kind="stable")
    chunks = [c for c in np.array_split(order, k) if c.size]
    px = np.array([np.median(xy[c, 0]) for c in chunks])
    py = np.array([np.percentile(xy[c, 1], percentile) for c in chunks])
    if len(chunks) < 2 or np.ptp(px) <= 0:
        return float(np.percentile(xy[:, 1], percentile)), 0.0, "paws_level"
    b, a = np.polyfit(px, py, 1)
    return float(a), float(b), "paws_fitted"


def joint_angle_deg(joint: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Angle (deg, 0-180) at ``joint`` between the segments to ``lower`` and ``upper``; NaN where untracked."""
    u, v = lower - joint, upper - joint
    cross = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
    dot = (u * v).sum(axis=1)
    ang = np.degrees(np.arctan2(np.abs(cross), dot))
    degenerate = (np.hypot(*u.T) == 0) | (np.hypot(*v.T) == 0)
    return np.where(degenerate, np.nan, ang)


def normalise_cycle(values: np.ndarray, bins: int) -> np.ndarray:
    """One step cycle's values resampled to ``bins`` bins, as AutoGaitA does.

    A cycle of at least ``bins`` frames: the mean of each of ``bins`` near-equal consecutive chunks
    (``numpy.array_split``); a shorter one: bin ``i`` takes frame ``floor(i * frames / bins)`` (frames repeat).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return np.full(bins, np.nan)
    if values.size >= bins:
        with np.errstate(invalid="ignore"):
            return np.array([np.nanmean(c) if np.isfinite(c).any() else np.nan for c in np.array_split(values, bins)])
    return values[(np.arange(bins) * values.size) // bins]


def _cycles(
    stances: pd.DataFrame,
    state: np.ndarray,
    u_px: np.ndarray,
    h_mm: np.ndarray,
    fps: float,
    px_per_mm: float,
    max_cycle_s: float,
) -> pd.DataFrame:
    cols = [
        "cycle",
        "start_frame",
        "touchdown_frame",
        "end_frame",
        "swing_duration_s",
        "stance_duration_s",
        "step_cycle_s",
        "duty_cycle",
        "stride_length_mm",
        "swing_height_mm",
    ]
    rows = []
    s = stances.reset_index(drop=True)
    for k in range(len(s) - 1):
        a, b = s.iloc[k], s.iloc[k + 1]
        if not (bool(a["complete"]) and bool(b["complete"])):
            continue
        lift, td, end = int(a["end_frame"]) + 1, int(b["start_frame"]), int(b["end_frame"])
        if td - lift < 1 or (state[lift:td] < 0).any():
            continue
        cycle = (end - lift + 1) / fps
        if cycle > max_cycle_s:
            continue
        ua = float(np.nanmean(u_px[int(a["start_frame"]) : int(a["end_frame"]) + 1]))
        ub = float(np.nanmean(u_px[td : end + 1]))
        swing_h = h_mm[lift:td]
        rows.append(
            {
                "start_frame": lift,
                "touchdown_frame": td,
                "end_frame": end,
                "swing_duration_s": (td - lift) / fps,
                "stance_duration_s": (end - td + 1) / fps,
                "step_cycle_s": cycle,
                "duty_cycle": (end - td + 1) / (end - lift + 1),
                "stride_length_mm": abs(ub - ua) / px_per_mm,
                "swing_height_mm": float(np.nanmax(swing_h)) if np.isfinite(swing_h).any() else float("nan"),
            }
        )
    out = pd.DataFrame(rows, columns=[c for c in cols if c != "cycle"])
    out.insert(0, "cycle", np.arange(len(out)))
    return out


def analyse_side_view(poses: Any, fps: float, px_per_mm: float | None, config: GaitConfig) -> SideViewAnalysis:
    """Stances, step cycles and joint angles of one side-view recording (see the module docstring).

    Raises
    ------
    GaitError
        For fps <= 0, no px_per_mm, a required paw keypoint missing, or no floor line.
    """
    _check_inputs(fps, px_per_mm)
    assert px_per_mm is not None
    sv, p = config.side_view, config.contacts
    names = [str(k) for k in poses["keypoints"].values]
    pos = np.asarray(poses["position"].values, dtype=np.float64)
    if pos.ndim != 4 or pos.shape[1] < 2:
        raise GaitError(f"expected poses (time, space, keypoints, individuals), got shape {pos.shape}")
    pos = pos[:, :2, :, 0]
    conf = poses["confidence"].values[:, :, 0] if "confidence" in poses else np.ones(pos.shape[::2])
    low = ~(np.nan_to_num(conf, nan=1.0) >= p.min_confidence)
    n = pos.shape[0]
    used: dict[str, str] = {}
    tracks: dict[str, np.ndarray] = {}
    missing = []
    for paw in SIDE_PAWS:
        wanted = sv.paw_keypoints.get(paw, f"{paw}_paw")  # type: ignore[call-overload]
        name = _keypoint(names, wanted)
        if name is None:
            if paw in sv.required_paws:
                missing.append(f"{paw} ({wanted})")
            continue
        tracks[paw] = _track(pos, low, names, name)
        used[paw] = name
    if missing or not tracks:
        wanted = ", ".join(missing) or " or ".join(f"{k} ({v})" for k, v in sv.paw_keypoints.items())
        raise GaitError(
            f"gait (side) needs the paw keypoints {wanted}, expected among the poses' {names} "
            "(set side_view.paw_keypoints.<hind|fore>=<name>)"
        )
    body: dict[str, np.ndarray] = {}
    for role in config.bouts.body_keypoints:
        name = _find_keypoint(names, role, BODY_ALIASES.get(role, ()))
        if name is not None:
            body[role] = _track(pos, low, names, name)
            used[role] = name
    bl, bl_source = body_length_mm(body, px_per_mm, config)
    floor_tracks = []
    for fk in sv.floor_keypoints:
        name = _keypoint(names, fk)
        if name is None:
            raise GaitError(f"side_view.floor_keypoints: expected {fk!r} among the poses' {names}")
        floor_tracks.append(_track(pos, low, names, name))
    a, b, floor_source = floor_line(list(tracks.values()), p.floor_percentile, sv.floor_bins, floor_tracks)
    norm = float(np.hypot(1.0, b))
    # direction of travel along the floor line
    if sv.direction != "auto":
        sign = 1.0 if sv.direction == "left_to_right" else -1.0
        direction_source = "config"
    else:
        ref = list(body.values()) or list(tracks.values())
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            x = np.nanmean(np.stack([r[:, 0] + b * r[:, 1] for r in ref]), axis=0) if ref else np.array([])
        x = x[np.isfinite(x)]
        disp = float(x[-1] - x[0]) if x.size >= 2 else 0.0
        if disp == 0.0:
            raise GaitError(
                "expected the animal to travel along the floor line to tell its direction, got no net "
                "displacement: set side_view.direction (a treadmill: left_to_right or right_to_left)"
            )
        sign = float(np.sign(disp))
        direction_source = "body" if body else "paws"
    belt_px = sv.treadmill_speed_mm_s * px_per_mm / fps * np.arange(n)
    frames, cycles_all, states = [], [], {}
    u_of: dict[str, np.ndarray] = {}
    h_of: dict[str, np.ndarray] = {}
    gap = round(p.max_gap_s * fps)
    for paw, xy in tracks.items():
        xy_f = fill_gaps(xy, gap)
        u = sign * (xy_f[:, 0] + b * xy_f[:, 1]) / norm + belt_px
        h = (a + b * xy_f[:, 0] - xy_f[:, 1]) / norm / px_per_mm
        u_of[paw], h_of[paw] = u, h
        contact_ok = np.nan_to_num(h, nan=np.inf) <= p.max_stance_height_mm
        fwd = np.c_[u, np.where(np.isfinite(u), 0.0, np.nan)]
        st, state = detect_stances(fwd, fps, px_per_mm, bl, p, contact_ok=contact_ok)
        states[paw] = state
        st = st.drop(columns=["x_px", "y_px"]).assign(paw=paw)
        st["stance_duration_s"] = (st["end_frame"] - st["start_frame"] + 1) / fps
        frames.append(st)
        cyc = _cycles(st, state, u, h, fps, px_per_mm, sv.max_cycle_s)
        cyc.insert(0, "paw", paw)
        cycles_all.append(cyc)
    stances = pd.concat(frames, ignore_index=True)
    cycles = pd.concat(cycles_all, ignore_index=True)
    # joint angles
    angle_series: dict[str, np.ndarray] = {}
    skipped = []
    limb_of: dict[str, str] = {}
    for spec in sv.joint_angles:
        kp = [_keypoint(names, k) for k in (spec.joint, spec.lower, spec.upper)]
        if any(k is None for k in kp):
            absent = [w for w, k in zip((spec.joint, spec.lower, spec.upper), kp, strict=True) if k is None]
            skipped.append(f"{spec.name} (no {', '.join(absent)})")
            continue
        j, lo_, up = (fill_gaps(_track(pos, low, names, str(k)), gap) for k in kp)
        angle_series[spec.name] = joint_angle_deg(j, lo_, up)
        limb_of[spec.name] = spec.limb
    angles = pd.DataFrame({"frame": np.arange(n), "time_s": np.arange(n) / fps})
    for k, v in angle_series.items():
        angles[f"{k}_angle_deg"] = v
    by_cycle_rows, curve_rows = [], []
    pct = (np.arange(sv.bins) + 1) * 100.0 / sv.bins
    for name, series in angle_series.items():
        cyc = cycles[cycles["paw"] == limb_of[name]]
        mat = np.array(
            [normalise_cycle(series[int(r.start_frame) : int(r.end_frame) + 1], sv.bins) for r in cyc.itertuples()]
        ).reshape(-1, sv.bins)
        for r, row in zip(cyc.itertuples(), mat, strict=True):
            by_cycle_rows += [
                {
                    "limb": limb_of[name],
                    "angle": name,
                    "cycle": int(r.cycle),
                    "bin": i + 1,
                    "sc_percent": pct[i],
                    "angle_deg": row[i],
                }
                for i in range(sv.bins)
            ]
        cnt = np.isfinite(mat).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(cnt > 0, np.nansum(mat, axis=0) / np.maximum(cnt, 1), np.nan)
            sq = np.nansum((mat - mean) ** 2, axis=0)
            sd = np.where(cnt > 1, np.sqrt(sq / np.maximum(cnt - 1, 1)), np.nan)
        curve_rows += [
            {
                "limb": limb_of[name],
                "angle": name,
                "bin": i + 1,
                "sc_percent": pct[i],
                "mean_deg": mean[i],
                "sd_deg": sd[i],
                "cycles_n": int(cnt[i]),
            }
            for i in range(sv.bins)
        ]
    angles_by_cycle = pd.DataFrame(by_cycle_rows, columns=["limb", "angle", "cycle", "bin", "sc_percent", "angle_deg"])
    curves = pd.DataFrame(curve_rows, columns=["limb", "angle", "bin", "sc_percent", "mean_deg", "sd_deg", "cycles_n"])
    # summaries
    summary: dict[str, dict[str, tuple[float, int, str]]] = {}
    for paw in tracks:
        c = cycles[cycles["paw"] == paw]
        enough = len(c) >= config.min_strides_per_paw
        reason = "" if enough else f"too_few_cycles ({len(c)} < {config.min_strides_per_paw})"
        summary[paw] = {}
        for m, _unit in CYCLE_MEASURES:
            v = c[m].to_numpy(float)
            v = v[np.isfinite(v)]
            if reason or v.size == 0:
                summary[paw][m] = (float("nan"), int(v.size), reason or "no_data")
            else:
                summary[paw][m] = (float(v.mean()), int(v.size), "ok")
    sess: dict[str, tuple[float, str, int, str]] = {}
    ref = "hind" if "hind" in tracks else next(iter(tracks))
    cyc = cycles.loc[cycles["paw"] == ref, "step_cycle_s"].to_numpy(float)
    sess["cadence_hz"] = (
        float(1.0 / cyc.mean()) if cyc.size else float("nan"),
        "Hz",
        int(cyc.size),
        "ok" if cyc.size else "too_few_cycles",
    )
    sess["step_cycles_n"] = (float(len(cycles)), "count", len(cycles), "ok")
    for name in angle_series:
        cur = curves[curves["angle"] == name]
        mean = cur["mean_deg"].to_numpy(float)
        ok = bool(np.isfinite(mean).any())
        ncyc = int(cur["cycles_n"].max()) if len(cur) else 0
        sess[f"{name}_angle_mean_deg"] = (
            float(np.nanmean(mean)) if ok else float("nan"),
            "deg",
            ncyc,
            "ok" if ok else "no_cycle",
        )
        sess[f"{name}_angle_range_deg"] = (
            float(np.nanmax(mean) - np.nanmin(mean)) if ok else float("nan"),
            "deg",
            ncyc,
            "ok" if ok else "no_cycle",
        )
    quality = {
        "mode": "side",
        "frames": int(n),
        "body_length_mm": round(float(bl), 2),
        "body_length_source": bl_source,
        "floor_line": f"y = {a:.2f} + {b:.4f} x px ({floor_source})",
        "direction": ("left_to_right" if sign > 0 else "right_to_left") + f" ({direction_source})",
        "paws": ",".join(tracks),
        "stances": len(stances),
        "stances_incomplete": int((~stances["complete"].astype(bool)).sum()),
        "strides": len(cycles),
        "untracked_paw_fraction": round(float(np.mean([np.mean(s < 0) for s in states.values()])), 4),
        "angles": ",".join(angle_series),
        "angles_skipped": "; ".join(skipped),
        "prints": "side_view",
        "keypoints": used,
    }
    return SideViewAnalysis(stances, cycles, angles, angles_by_cycle, curves, summary, sess, quality)


def side_view_measures(analysis: SideViewAnalysis) -> list[Measure]:
    """Per paw (``hind_``/``fore_``) cycle means, cadence, angle figures; the ipsi/contra ratios as NaN with why."""
    out: list[Measure] = []
    units = dict(CYCLE_MEASURES)
    for paw, vals in analysis.paw_summary.items():
        for m, (value, n, q) in vals.items():
            out.append(Measure(f"{paw}_{m}", value, units[m], n, q))
    for m, (value, unit, n, q) in analysis.session.items():
        out.append(Measure(m, value, unit, n, q))
    for short, _, _ in RATIO_MEASURES:
        out.append(Measure(f"{short}_ratio_ipsi_contra", float("nan"), "ratio", 0, "side_view_sees_one_side"))
    return out


def side_view_result(analysis: SideViewAnalysis) -> AssayResult:
    """Measures, tables (stances, cycles, per-frame angles, normalised angles per cycle and mean/SD) and quality."""
    return AssayResult(
        measures=side_view_measures(analysis),
        tables={
            "gait_side_stances": analysis.stances.round(5),
            "gait_side_cycles": analysis.cycles.round(5),
            "gait_side_angles": analysis.angles.round(4),
            "gait_side_angles_by_cycle": analysis.angles_by_cycle.round(4),
            "gait_side_angle_curves": analysis.angle_curves.round(4),
        },
        quality={k: v for k, v in analysis.quality.items() if k != "keypoints"}
        | {"keypoints": ",".join(f"{k}={v}" for k, v in analysis.quality["keypoints"].items())},
    )


def step_figure(stances: pd.DataFrame, fps: float, title: str = "") -> Any:
    """Stance bars per visible paw over time (the side view's footfall diagram); untimed stances hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paws = [p for p in SIDE_PAWS if p in set(stances["paw"])]
    fig, ax = plt.subplots(figsize=(8, 0.5 * max(len(paws), 1) + 1.0))
    for i, paw in enumerate(paws):
        st = stances[stances["paw"] == paw]
        for r in st.itertuples():
            ax.broken_barh(
                [(r.start_frame / fps, (r.end_frame - r.start_frame + 1) / fps)],
                (i - 0.35, 0.7),
                facecolors="tab:blue" if r.complete else "none",
                edgecolors="tab:blue",
                hatch="" if r.complete else "//",
            )
    ax.set_yticks(range(len(paws)))
    ax.set_yticklabels(paws, fontsize=8)
    ax.set_xlabel("time (s)")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def angle_figure(curves: pd.DataFrame, title: str = "") -> Any:
    """Mean +- SD of each joint angle over the normalised step cycle (one panel per limb)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    limbs = list(dict.fromkeys(curves["limb"])) or ["hind"]
    fig, axes = plt.subplots(1, len(limbs), figsize=(4.2 * len(limbs), 3.2), squeeze=False)
    for ax, limb in zip(axes[0], limbs, strict=True):
        for name, c in curves[curves["limb"] == limb].groupby("angle", sort=False):
            x, m, s = c["sc_percent"].to_numpy(), c["mean_deg"].to_numpy(), c["sd_deg"].to_numpy()
            ax.plot(x, m, label=str(name))
            ax.fill_between(x, m - np.nan_to_num(s), m + np.nan_to_num(s), alpha=0.2)
        ax.set_xlabel("step cycle (%)")
        ax.set_ylabel("angle (deg)")
        ax.set_title(f"{limb} limb", fontsize=8)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def compare_step_cycles(
    found: pd.DataFrame, reference: pd.DataFrame, *, tolerance_frames: int = 10
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Match found step cycles to reference ones (e.g. a human's / AutoGaitA's) by their start frames.

    Each reference cycle is matched, one to one in order of closeness, to the found cycle whose start is
    nearest, if within ``tolerance_frames``. Both tables need ``start_frame`` and ``end_frame``.

    Returns
    -------
    pairs
        One row per reference cycle: its frames, the matched found cycle's (NaN if none) and the differences.
    figures
        ``reference_n``, ``found_n`` (found cycles within the reference's span, +- the tolerance), ``matched_n``,
        ``matched_fraction``, ``median_abs_start_diff_frames``, ``median_abs_end_diff_frames``,
        ``max_abs_start_diff_frames``.
    """
    rs, re_ = reference["start_frame"].to_numpy(float), reference["end_frame"].to_numpy(float)
    fs, fe = found["start_frame"].to_numpy(float), found["end_frame"].to_numpy(float)
    cand = sorted(
        (abs(fs[j] - rs[i]), i, j)
        for i in range(len(rs))
        for j in range(len(fs))
        if abs(fs[j] - rs[i]) <= tolerance_frames
    )
    match: dict[int, int] = {}
    taken: set[int] = set()
    for _, i, j in cand:
        if i not in match and j not in taken:
            match[i] = j
            taken.add(j)
    pairs = pd.DataFrame(
        {
            "ref_start_frame": rs,
            "ref_end_frame": re_,
            "found_start_frame": [fs[match[i]] if i in match else np.nan for i in range(len(rs))],
            "found_end_frame": [fe[match[i]] if i in match else np.nan for i in range(len(rs))],
        }
    )
    pairs["start_diff_frames"] = pairs["found_start_frame"] - pairs["ref_start_frame"]
    pairs["end_diff_frames"] = pairs["found_end_frame"] - pairs["ref_end_frame"]
    span = (
        (fs >= rs.min() - tolerance_frames) & (fe <= re_.max() + tolerance_frames)
        if len(rs)
        else np.zeros(len(fs), bool)
    )
    sd, ed = pairs["start_diff_frames"].abs().dropna(), pairs["end_diff_frames"].abs().dropna()
    figures = {
        "reference_n": float(len(rs)),
        "found_n": float(span.sum()),
        "matched_n": float(len(match)),
        "matched_fraction": float(len(match) / len(rs)) if len(rs) else float("nan"),
        "median_abs_start_diff_frames": float(sd.median()) if len(sd) else float("nan"),
        "median_abs_end_diff_frames": float(ed.median()) if len(ed) else float("nan"),
        "max_abs_start_diff_frames": float(sd.max()) if len(sd) else float("nan"),
    }
    return pairs, figures
