"""Gait: contacts, strides, phase, prints and bouts recovered from synthetic walks with planted truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from behavior.features.gait import (
    PAWS,
    ContactParams,
    GaitConfig,
    GaitError,
    analyse_gait,
    detect_stances,
    gait_measures,
    gait_result,
    regularity_index,
)
from behavior.synthetic import GaitParams, simulate_clip
from behavior.synthetic.gait import simulate_gait_session
from pose_models.poses import from_numpy

FPS, PPM = 60.0, 2.5
#: A guarded left hind paw: shorter stance (and, in the video, a smaller, fainter print).
GUARDED = dict(stance_duration_s={"left_hind": 0.16}, stride_length_mm=52.0)


def _values(measures) -> dict[str, tuple[float, str]]:
    return {m.measure: (m.value, m.quality) for m in measures}


def _circ_diff(a: float, b: float) -> float:
    d = (a - b) % 1.0
    return min(d, 1.0 - d)


@pytest.fixture(scope="module")
def open_field():
    """Three walking bouts separated by stops, rearing and turns (pose only, noise free)."""
    return simulate_gait_session(GaitParams(**GUARDED), seed=3)


@pytest.fixture(scope="module")
def long_walk():
    """One straight 6 s walk (pose only): many strides, so durations average over the frame grid."""
    return simulate_gait_session(GaitParams(**GUARDED), seed=11, n_bouts=1, bout_duration_s=6.0)


# ------------------------------------------------------------------------------------------- contacts


def test_stance_frames_of_a_still_paw_are_exact(long_walk):
    pos = long_walk.poses["position"].values[:, :, :, 0]
    names = list(long_walk.poses["keypoints"].values)
    for paw in PAWS:
        xy = pos[:, :, names.index(paw)]
        st, state = detect_stances(xy, FPS, PPM, 80.0, ContactParams())
        truth = {tuple(iv) for iv in long_walk.truth["paws"][paw]["stance_intervals"]}
        found = {(a, b) for a, b, c in zip(st["start_frame"], st["end_frame"], st["complete"], strict=True) if c}
        # every planted whole stance is found, its first and last frame within one frame
        hits = 0
        for a, b in truth:
            near = [(fa, fb) for fa, fb in found if abs(fa - a) <= 1 and abs(fb - b) <= 1]
            hits += bool(near)
        assert hits == len(truth), paw
        exact = len(found & truth)
        assert exact >= 0.8 * len(truth), (paw, exact, len(truth))
        assert set(np.unique(state)) <= {0, 1}


def test_walk_durations_stride_phase_recovered(long_walk):
    a = analyse_gait(long_walk.poses, FPS, PPM, GaitConfig(mode="open-field"))
    v = _values(gait_measures(a, "left"))
    walk = long_walk.truth["paws"]
    for paw, label in (("left_hind", "ipsi_hind"), ("right_hind", "contra_hind"), ("left_fore", "ipsi_fore")):
        t = walk[paw]
        assert v[f"{label}_stride_length_mm"][0] == pytest.approx(t["stride_length_mm"], rel=0.05)
        assert v[f"{label}_stance_duration_s"][0] == pytest.approx(t["stance_duration_s"], rel=0.05)
        assert v[f"{label}_swing_duration_s"][0] == pytest.approx(t["swing_duration_s"], rel=0.05)
        assert v[f"{label}_step_cycle_s"][0] == pytest.approx(t["cycle_duration_s"], rel=0.05)
        assert v[f"{label}_duty_cycle"][0] == pytest.approx(t["duty_cycle"], rel=0.05)
        assert v[f"{label}_swing_speed_mm_s"][0] == pytest.approx(
            t["stride_length_mm"] / t["swing_duration_s"], rel=0.05
        )
    # trot: diagonals in phase, girdles half a cycle apart
    for name, want in (("phase_lf_rh", 0.0), ("phase_rf_lh", 0.0), ("phase_lf_rf", 0.5), ("phase_lh_rh", 0.5)):
        assert _circ_diff(v[name][0], want) <= 0.05, (name, v[name])
    assert v["cadence_hz"][0] == pytest.approx(150.0 / 52.0, rel=0.05)
    assert v["body_speed_mm_s"][0] == pytest.approx(150.0, rel=0.05)
    assert v["base_of_support_fore_mm"][0] == pytest.approx(13.0, abs=0.1)
    assert v["base_of_support_hind_mm"][0] == pytest.approx(20.0, abs=0.1)
    assert v["regularity_index_percent"][0] >= 90.0
    # the guarded paw's shorter stance
    assert v["stance_ratio_ipsi_contra"][0] == pytest.approx(0.16 / 0.2, rel=0.05)
    assert v["duty_cycle_ratio_ipsi_contra"][0] == pytest.approx(0.16 / 0.2, rel=0.05)


def test_freely_moving_session_gives_the_walks_figures_from_its_bouts(open_field, long_walk):
    a = analyse_gait(open_field.poses, FPS, PPM, GaitConfig(mode="open-field"))
    kept = a.bouts[a.bouts["kept"]]
    planted = open_field.truth["bouts"]
    assert len(kept) == len(planted)
    for (s0, s1), r in zip(planted, kept.itertuples(), strict=True):
        assert abs(r.start_frame - s0) <= 0.15 * FPS and abs(r.end_frame - s1) <= 0.15 * FPS
    # no stride outside a planted bout
    for r in a.strides.itertuples():
        assert any(s0 <= r.start_frame and r.next_start_frame <= s1 for s0, s1 in planted)
    v = _values(gait_measures(a, "left"))
    w = _values(gait_measures(analyse_gait(long_walk.poses, FPS, PPM, GaitConfig(mode="open-field")), "left"))
    for name in (
        "stride_length_mm",
        "duty_cycle",
        "cadence_hz",
        "stance_ratio_ipsi_contra",
        "ipsi_hind_stance_duration_s",
        "contra_hind_swing_duration_s",
        "base_of_support_hind_mm",
    ):
        assert v[name][0] == pytest.approx(w[name][0], rel=0.05), name
    for name in ("phase_lf_rh", "phase_lh_rh"):
        assert _circ_diff(v[name][0], w[name][0]) <= 0.05


def test_jittered_tracks_keep_stride_cadence_and_phase():
    # 0.5 px of tracking noise at 60 fps: the paw's last slow millimetres of swing drown in the jitter,
    # so stance lengthens (by ~1 frame per edge); stride, cycle and phase do not move.
    s = simulate_gait_session(GaitParams(**GUARDED), seed=3, jitter_px=0.5)
    v = _values(gait_measures(analyse_gait(s.poses, FPS, PPM, GaitConfig(mode="open-field")), "left"))
    assert v["stride_length_mm"][0] == pytest.approx(52.0, rel=0.02)
    assert v["cadence_hz"][0] == pytest.approx(150.0 / 52.0, rel=0.03)
    assert _circ_diff(v["phase_lf_rf"][0], 0.5) <= 0.05
    assert v["ipsi_hind_stance_duration_s"][0] == pytest.approx(0.16, rel=0.35)
    assert v["stance_ratio_ipsi_contra"][0] < 0.95  # the guarded paw still stands out


def test_regularity_index_counts_normal_patterns():
    import pandas as pd

    seq = ["left_fore", "right_hind", "right_fore", "left_hind"] * 3
    df = pd.DataFrame({"paw": seq, "start_frame": np.arange(len(seq)) * 5})
    assert regularity_index(df)[0] == 100.0
    df2 = pd.DataFrame(
        {"paw": ["left_fore", "left_fore", "right_hind", "right_fore", "left_hind"], "start_frame": range(5)}
    )
    assert regularity_index(df2)[0] == pytest.approx(100 * 4 / 5)
    assert math.isnan(regularity_index(df.iloc[:3])[0])


# ------------------------------------------------------------------------------------------ prints


@pytest.fixture(scope="module")
def walkway_clip(tmp_path_factory):
    from behavior.synthetic.base import write_clip

    clip = simulate_clip(
        "gait", seed=5, print_area_mm2={"left_hind": 8.0}, print_intensity={"left_hind": 130.0}, **GUARDED
    )
    paths = write_clip(clip, tmp_path_factory.mktemp("gait"))
    return clip, paths


def test_walkway_prints_and_ratios_from_the_video(walkway_clip):
    from pose_models.io import load_poses

    clip, paths = walkway_clip
    poses = load_poses(paths["pose"], fps=FPS)
    a = analyse_gait(poses, FPS, PPM, GaitConfig(), video=paths["video"])
    truth = clip.truth["paws"]
    st = a.stances[a.stances["complete"] & np.isfinite(a.stances["print_area_mm2"])]
    assert len(st) >= 6
    for r in st.itertuples():
        assert r.print_area_mm2 == pytest.approx(truth[r.paw]["print_area_mm2"], rel=0.10), r
        assert r.max_contact_area_mm2 == pytest.approx(truth[r.paw]["print_area_mm2"], rel=0.10), r
    v = _values(gait_measures(a, "left"))
    assert v["print_area_ratio_ipsi_contra"][0] == pytest.approx(8.0 / 14.0, rel=0.10)
    floor = 16.0  # the synthetic floor's grey: intensities are background subtracted
    want = (130.0 - floor) / (200.0 - floor)
    assert v["print_intensity_ratio_ipsi_contra"][0] == pytest.approx(want, rel=0.10)
    assert v["stance_ratio_ipsi_contra"][0] == pytest.approx(0.8, rel=0.05)
    assert v["stride_length_mm"][0] == pytest.approx(52.0, rel=0.05)
    # without the video the print measures are NaN with the reason, the rest is unchanged
    b = _values(gait_measures(analyse_gait(poses, FPS, PPM, GaitConfig()), "left"))
    assert math.isnan(b["print_area_ratio_ipsi_contra"][0]) and b["print_area_ratio_ipsi_contra"][1] == "no_video"
    assert b["stance_ratio_ipsi_contra"] == v["stance_ratio_ipsi_contra"]


def test_result_tables_and_core_measures(walkway_clip):
    from pose_models.io import load_poses

    _clip, paths = walkway_clip
    a = analyse_gait(load_poses(paths["pose"], fps=FPS), FPS, PPM, GaitConfig(), video=paths["video"])
    r = gait_result(a, FPS, "left", "core")
    names = {m.measure for m in r.measures}
    assert {"print_area_ratio_ipsi_contra", "stance_ratio_ipsi_contra"} <= names and len(names) == 10
    assert set(r.tables) == {"gait_stances", "gait_strides", "gait_bouts", "gait_summary"}
    assert "ipsi_hind_print_area_mm2" in set(r.tables["gait_summary"]["measure"])
    no_side = {m.measure for m in gait_result(a, FPS, None, "core").measures}
    assert "print_area_ratio_left_right" in no_side


# -------------------------------------------------------------------------------------------- attacks


def _poses(pos: np.ndarray, conf: np.ndarray | None = None, names=("snout", *PAWS, "tailbase")):
    return from_numpy(
        pos.transpose(0, 2, 1)[..., None],
        None if conf is None else conf[..., None],
        keypoint_names=list(names),
        fps=FPS,
    )


def test_bad_input_gives_one_line_errors(long_walk):
    with pytest.raises(GaitError, match="frame rate fps > 0, got 0"):
        analyse_gait(long_walk.poses, 0.0, PPM, GaitConfig())
    with pytest.raises(GaitError, match="frame rate fps > 0"):
        analyse_gait(long_walk.poses, -5.0, PPM, GaitConfig())
    with pytest.raises(GaitError, match="px_per_mm > 0"):
        analyse_gait(long_walk.poses, FPS, None, GaitConfig())
    no_lh = long_walk.poses.sel(keypoints=[k for k in long_walk.poses["keypoints"].values if k != "left_hind"])
    with pytest.raises(GaitError, match=r"needs the paw keypoints left_hind \(left_hind\)"):
        analyse_gait(no_lh, FPS, PPM, GaitConfig())


def test_no_steady_bout_is_an_error_naming_why(long_walk):
    pos = long_walk.poses["position"].values[:, :, :, 0].transpose(0, 2, 1)
    still = np.repeat(pos[:1], 200, axis=0)
    with pytest.raises(GaitError, match="no run of steady locomotion.*none in 200 frames"):
        analyse_gait(_poses(still), FPS, PPM, GaitConfig())
    with pytest.raises(GaitError, match="no run of steady locomotion"):
        analyse_gait(_poses(pos[:1]), FPS, PPM, GaitConfig())  # a single frame
    # a recording cut short: the walk's first 0.4 s have too few strides
    with pytest.raises(GaitError, match=r"too few strides"):
        analyse_gait(_poses(pos[:24]), FPS, PPM, GaitConfig(bouts={"min_duration_s": 0.2}))


def test_lost_tracking_is_not_timed(long_walk):
    pos = long_walk.poses["position"].values[:, :, :, 0].transpose(0, 2, 1).copy()
    names = list(long_walk.poses["keypoints"].values)
    lh = names.index("left_hind")
    conf = np.ones(pos.shape[:2])
    conf[100:160, lh] = 0.0  # one second of the left hind paw lost
    a = analyse_gait(_poses(pos, conf, names), FPS, PPM, GaitConfig(mode="open-field"))
    lh_st = a.stances[a.stances["paw"] == "left_hind"]
    cut = lh_st[(lh_st["end_frame"] >= 99) & (lh_st["start_frame"] <= 160)]
    assert not cut["complete"].any()  # stances touching the gap are incomplete
    for r in a.strides[a.strides["paw"] == "left_hind"].itertuples():
        assert r.next_start_frame <= 100 or r.start_frame >= 160  # no stride spans the gap
    v = _values(gait_measures(a, "left"))
    assert v["ipsi_hind_stance_duration_s"][0] == pytest.approx(0.16, rel=0.05)
    # a short dropout (2 frames) is filled and changes nothing
    conf2 = np.ones(pos.shape[:2])
    conf2[130:132, lh] = 0.0
    v2 = _values(
        gait_measures(analyse_gait(_poses(pos, conf2, names), FPS, PPM, GaitConfig(mode="open-field")), "left")
    )
    assert v2["ipsi_hind_stride_length_mm"][0] == pytest.approx(52.0, rel=0.01)


def test_too_few_strides_of_one_paw_give_nan_with_the_reason(long_walk):
    pos = long_walk.poses["position"].values[:, :, :, 0].transpose(0, 2, 1).copy()
    names = list(long_walk.poses["keypoints"].values)
    conf = np.ones(pos.shape[:2])
    conf[:, names.index("right_hind")] = 0.0  # right hind never tracked
    a = analyse_gait(_poses(pos, conf, names), FPS, PPM, GaitConfig(mode="open-field"))
    v = _values(gait_measures(a, "left"))
    value, quality = v["contra_hind_duty_cycle"]
    assert math.isnan(value) and quality.startswith("too_few_strides")
    assert math.isnan(v["stance_ratio_ipsi_contra"][0]) and v["stance_ratio_ipsi_contra"][1] != "ok"
    assert v["ipsi_hind_duty_cycle"][0] == pytest.approx(0.16 / (52 / 150), rel=0.05)


def test_config_is_strict():
    from behavior.assays import AssayConfigError, get_assay

    spec = get_assay("gait")
    assert spec.domain == "spontaneous"
    with pytest.raises(AssayConfigError, match="contacts.stance_speed"):
        spec.load_config(["contacts.stance_speed=1"])
    assert spec.load_config(["mode=open-field"]).mode == "open-field"


def test_an_animal_held_on_a_belt_gives_the_walks_figures(long_walk):
    """The same walk with the body held in place and the floor moving back under it (a treadmill or wheel,
    a head-fixed mouse): with the belt speed given or found from the paws, stance, swing, duty, cadence,
    stride and phase are the walkway's; without it the error says what to set."""
    cfg = GaitConfig()
    walk = analyse_gait(long_walk.poses, FPS, PPM, cfg)
    speed = float(long_walk.truth["speed_mm_s"])
    held = long_walk.poses.copy(deep=True)
    t = np.arange(held.sizes["time"]) / FPS
    xy = held["position"].sel(keypoints="tailbase").values[:, :2, 0]
    xy = xy[np.isfinite(xy).all(axis=1)]
    u = (xy[-1] - xy[0]) / np.linalg.norm(xy[-1] - xy[0])  # the way it walks (a diagonal)
    held["position"].values[:, :2] -= (speed * PPM * t)[:, None, None, None] * u[None, :, None, None]
    with pytest.raises(GaitError, match="on a belt or wheel set treadmill.speed_mm_s"):
        analyse_gait(held, FPS, PPM, cfg)
    keys = ("duty_cycle", "cadence_hz", "stride_length_mm", "phase_lf_rh", "phase_lh_rh")
    for speed_setting in (speed, "auto"):
        belt = analyse_gait(held, FPS, PPM, GaitConfig(treadmill={"speed_mm_s": speed_setting}))
        assert belt.quality["treadmill_speed_mm_s"] == pytest.approx(speed, rel=0.03)
        assert belt.quality["prints"] == "no_video"
        for k in keys:
            assert belt.session[k][0] == pytest.approx(walk.session[k][0], rel=0.05, abs=0.02), k
        for paw in PAWS:
            for k in ("stance_duration_s", "swing_duration_s"):
                got, want = belt.paw_summary[paw][k][0], walk.paw_summary[paw][k][0]
                assert got == pytest.approx(want, rel=0.05), (paw, k)
    # a belt with paws that hardly move back: say so rather than guess a speed
    still = held.copy(deep=True)
    still["position"].values[:] = still["position"].values[:1]
    with pytest.raises(GaitError, match="expected paws moving back with the belt"):
        analyse_gait(still, FPS, PPM, GaitConfig(treadmill={"speed_mm_s": "auto"}))
