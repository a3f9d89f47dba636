"""The synthetic rig: every clip's frames agree with its ground truth, analytically and measurably."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest

from behavior import synthetic
from behavior.synthetic import (
    CHAPLAN_SERIES_G,
    SIMULATORS,
    GaitParams,
    StudyEffects,
    plan_study,
    simulate_clip,
    up_down_sequence,
)
from behavior.synthetic.grimace import action_unit_scores

# ------------------------------------------------------------------------------------------ helpers

FLOOR_GREY = 16.0  # gait floor level (behavior.synthetic.gait.FLOOR_RGB in grey)


def gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def kp(clip: synthetic.Clip, name: str) -> np.ndarray:
    """(n_frames, 2) ground-truth positions of one keypoint."""
    return clip.poses["position"].sel(keypoints=name, individuals=clip.poses["individuals"].values[0]).values


def measure_prints(frame: np.ndarray, threshold: float) -> list[tuple[np.ndarray, float]]:
    """Centroid (x, y) and area (px) of every bright blob."""
    n, _, stats, centroids = cv2.connectedComponentsWithStats((gray(frame) > threshold).astype(np.uint8), 8)
    return [(centroids[i], float(stats[i, cv2.CC_STAT_AREA])) for i in range(1, n)]


def check_gait_prints(clip: synthetic.Clip, frames: np.ndarray) -> int:
    """Assert every in-view stance print is found within 1 px of its keypoint with area within 15 %."""
    truth = clip.truth
    ppm = truth["px_per_mm"]
    checked = 0
    for paw, t in truth["paws"].items():
        thr = (FLOOR_GREY + t["print_intensity"]) / 2
        for (s0, s1), in_view in zip(t["stance_intervals"], t["stance_in_view"], strict=True):
            if not in_view:
                continue
            for i in sorted({s0, (s0 + s1) // 2, s1}):
                blobs = measure_prints(frames[i], thr)
                assert blobs, f"{paw}: no print found in frame {i}"
                key = kp(clip, paw)[i]
                centroid, area = min(blobs, key=lambda b: np.hypot(*(b[0] - key)))
                assert np.hypot(*(centroid - key)) < 1.0, (paw, i, centroid, key)
                assert area / ppm**2 == pytest.approx(t["print_area_mm2"], rel=0.15), (paw, i, area)
                checked += 1
    return checked


# ------------------------------------------------------------------------------------------ registry


def test_every_assay_family_has_a_simulator():
    assert set(SIMULATORS) == {"gait", "hargreaves", "von_frey", "grimace", "burrowing", "place_preference", "pain_box"}
    for assay in SIMULATORS:
        assert synthetic.default_params(assay)  # the defaults are valid


def test_unknown_assay_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown assay 'catwalk'") as err:
        simulate_clip("catwalk")
    for name in SIMULATORS:
        assert name in str(err.value)


def test_unknown_parameter_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['stride_mm'\]") as err:
        simulate_clip("gait", stride_mm=40)
    assert "stride_length_mm" in str(err.value) and "print_area_mm2" in str(err.value)
    with pytest.raises(ValueError, match="unknown session field"):
        simulate_clip("grimace", session_fields={"fps": 30})
    with pytest.raises(ValueError, match="paw names"):
        simulate_clip("gait", print_area_mm2={"left_paw": 3.0})


def test_impossible_parameters_raise_with_the_expected_range():
    with pytest.raises(ValueError, match="stance_duration_s"):
        GaitParams(stance_duration_s=0.5)  # cycle = 50 mm / 150 mm/s = 0.333 s
    with pytest.raises(ValueError, match="X' or 'O'"):
        simulate_clip("von_frey", filaments_g=[1.0], responses=["Y"])
    with pytest.raises(ValueError, match="min_visit_s"):
        simulate_clip("place_preference", time_in_paired_s=3.0, n_entries=5, duration_s=20.0)


def test_session_fields_and_name_are_applied():
    clip = simulate_clip(
        "grimace",
        seed=2,
        name="face01",
        duration_s=0.4,
        session_fields={"animal_id": "R7", "group": "CCI", "timepoint": "d7", "side": "left"},
    )
    s = clip.session
    assert (clip.name, s.session_id, s.animal_id, s.group, s.timepoint, s.side) == (
        "face01",
        "face01",
        "R7",
        "CCI",
        "d7",
        "left",
    )
    assert s.assay == "grimace" and s.fps == clip.poses.attrs["fps"] == 15.0
    assert clip.poses.attrs["source_software"] == "painbattery.synthetic"


# ------------------------------------------------------------------------------------------ gait


@pytest.fixture(scope="module")
def gait_clip() -> synthetic.Clip:
    # A guarded left hind paw: smaller, fainter print and a shorter stance than the others.
    return simulate_clip(
        "gait",
        seed=5,
        print_area_mm2={"left_hind": 8.0},
        print_intensity={"left_hind": 130.0},
        stance_duration_s={"left_hind": 0.16},
        stride_length_mm=52.0,
    )


def test_gait_prints_are_centred_on_the_keypoints_with_the_set_area(gait_clip):
    assert check_gait_prints(gait_clip, gait_clip.frames) >= 24


def test_gait_stride_and_stance_from_ground_truth(gait_clip):
    truth, ppm, fps = gait_clip.truth, gait_clip.truth["px_per_mm"], gait_clip.truth["fps"]
    for paw, t in truth["paws"].items():
        xy = kp(gait_clip, paw)
        starts = []
        for s0, s1 in t["stance_intervals"]:
            # Stationary during stance, to the last bit.
            assert np.ptp(xy[s0 : s1 + 1], axis=0).max() == 0.0, paw
            starts.append(xy[s0, 0])
            if s0 > 0 and s1 < len(xy) - 1:  # a whole stance: its length is the set stance time +- 1 frame
                assert abs((s1 - s0 + 1) / fps - t["stance_duration_s"]) <= 1 / fps + 1e-9
            else:
                continue
            assert not np.array_equal(xy[s0 - 1], xy[s0]) or not np.array_equal(xy[s1 + 1], xy[s1])
        strides_mm = np.diff(starts) / ppm
        assert len(strides_mm) >= 3
        np.testing.assert_allclose(strides_mm, t["stride_length_mm"], atol=0.5)
        assert t["duty_cycle"] == pytest.approx(t["stance_duration_s"] / (t["stride_length_mm"] / 150.0))
    assert truth["paws"]["left_hind"]["stance_duration_s"] == 0.16
    assert truth["paws"]["left_hind"]["print_area_mm2"] == 8.0


def test_gait_diagonal_pairs_are_in_phase_and_pairs_alternate(gait_clip):
    paws = gait_clip.truth["paws"]
    # touch-down frames (a stance already under way at frame 0 has no touch-down)
    lf, rh, rf = (
        [s for s, _ in paws[p]["stance_intervals"] if s > 0] for p in ("left_fore", "right_hind", "right_fore")
    )
    assert lf == rh  # same stride and phase offset 0: simultaneous touch-down
    cycle_frames = 52.0 / 150.0 * 60.0
    for start in rf:
        offset = (start - lf[0]) % cycle_frames
        assert abs(offset - cycle_frames / 2) <= 1.0
    assert gait_clip.truth["phase_offsets"] == {
        "left_fore": 0.0,
        "right_hind": 0.0,
        "right_fore": 0.5,
        "left_hind": 0.5,
    }


def test_gait_swing_moves_forward_and_out_of_view_points_have_zero_confidence(gait_clip):
    xy = kp(gait_clip, "right_fore")
    assert np.all(np.diff(xy[:, 0]) >= 0)  # paws only move forward
    conf = gait_clip.poses["confidence"].values[:, :, 0]
    pos = gait_clip.poses["position"].values[:, :, :, 0]
    w = gait_clip.frames.shape[2]
    outside = (pos[:, 0] < -0.5) | (pos[:, 0] > w - 0.5)
    assert outside.any() and (~outside).any()
    assert np.all(conf[outside] == 0) and np.all(conf[~outside] == 1)


# ------------------------------------------------------------------------------------------ hargreaves


@pytest.fixture(scope="module")
def hargreaves_clip() -> synthetic.Clip:
    # Trial 1 reaches the 6 s cut-off: censored.
    return simulate_clip(
        "hargreaves", seed=3, latencies_s=[4.0, 9.0, 2.5], cutoff_s=6.0, trial_sides=["left", "right", "left"]
    )


def first_move(xy: np.ndarray, start: int) -> int | None:
    moved = np.flatnonzero(np.any(xy[start:] != xy[start], axis=1))
    return int(start + moved[0]) if moved.size else None


def test_hargreaves_paw_starts_moving_at_onset_plus_latency(hargreaves_clip):
    fps = hargreaves_clip.session.fps
    trials = hargreaves_clip.truth["trials"]
    assert [t["censored"] for t in trials] == [False, True, False]
    for t in trials:
        xy = kp(hargreaves_clip, f"{t['side']}_hind")
        onset = t["onset_frame"]
        if t["censored"]:
            cutoff = onset + round(6.0 * fps)
            assert np.ptp(xy[onset - 1 : cutoff + 1], axis=0).max() == 0.0  # no movement before cut-off
            assert t["light_off_frame"] == cutoff and t["withdrawal_frame"] is None
            assert t["latency_s"] == 6.0
            continue
        moved = first_move(xy, onset)
        assert abs(moved - (onset + t["latency_set_s"] * fps)) <= 1
        assert moved == t["withdrawal_frame"] == t["light_off_frame"]
        assert xy[moved, 1] < xy[onset, 1] - 5  # moves up off the spot (towards the head)
        assert t["latency_s"] == pytest.approx((moved - onset) / fps)


def test_hargreaves_light_spot_in_roi_and_events(hargreaves_clip):
    fps = hargreaves_clip.session.fps
    for t in hargreaves_clip.truth["trials"]:
        x, y, w, h = t["roi"]
        roi = np.array([gray(f)[y : y + h, x : x + w].mean() for f in hargreaves_clip.frames])
        on, off = t["onset_frame"], t["light_off_frame"]
        assert roi[on:off].min() > roi[on - 1] + 40  # bright exactly while the heat is on
        assert roi[off] < roi[off - 1] - 40
    events = hargreaves_clip.session.events
    ons = [e for e in events if e.kind == "stimulus_on"]
    assert [e.time_s for e in ons] == pytest.approx([t["onset_frame"] / fps for t in hargreaves_clip.truth["trials"]])
    assert [e.side for e in ons] == ["left", "right", "left"]
    assert len([e for e in events if e.kind == "stimulus_off"]) == 3


def test_hargreaves_never_moves():
    clip = simulate_clip("hargreaves", seed=1, latencies_s=[math.inf, None], cutoff_s=3.0)
    pos = clip.poses["position"].values
    assert np.ptp(pos, axis=0).max() == 0.0  # nothing ever moves
    assert all(t["censored"] and t["withdrawal_frame"] is None for t in clip.truth["trials"])


# ------------------------------------------------------------------------------------------ von Frey


def test_von_frey_withdraws_on_x_only():
    clip = simulate_clip(
        "von_frey",
        seed=2,
        filaments_g=[1.0, 2.0, 4.0, 2.0],
        responses=["O", "X", "X", "O"],
        response_latency_s=[0.5, 0.3, 0.6, 0.5],
        side="right",
    )
    fps = clip.session.fps
    xy = kp(clip, "right_hind")
    assert np.ptp(kp(clip, "left_hind"), axis=0).max() == 0.0
    trials = clip.truth["trials"]
    for t, lat in zip(trials, [0.5, 0.3, 0.6, 0.5], strict=True):
        onset = t["onset_frame"]
        moved = first_move(xy, onset)
        if t["response"] == "X":
            assert moved == t["withdrawal_frame"] == onset + round(lat * fps)
        else:
            assert t["withdrawal_frame"] is None
            assert moved is None or moved > t["off_frame"]
    ons = [e for e in clip.session.events if e.kind == "stimulus_on"]
    assert [e.intensity for e in ons] == [1.0, 2.0, 4.0, 2.0]
    # The filament is visible in the frame while it touches the paw.
    t = trials[0]
    diff = np.abs(clip.frames[t["onset_frame"]].astype(int) - clip.frames[t["onset_frame"] - 1]).sum(axis=2)
    assert (diff > 60).sum() > 20


# ------------------------------------------------------------------------------------------ grimace


def eye_size(frame: np.ndarray, centre: np.ndarray, half: int = 26) -> tuple[int, int]:
    """(height, width) in px of the dark eye region around ``centre``."""
    x, y = np.round(centre).astype(int)
    win = gray(frame)[y - half : y + half, x - half : x + half] < 50
    rows, cols = np.flatnonzero(win.any(axis=1)), np.flatnonzero(win.any(axis=0))
    if rows.size == 0:
        return 0, 0
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def test_grimace_eye_aperture_is_measurable_and_monotone():
    heights = []
    for aperture in (0.1, 0.3, 0.5, 0.7, 0.9, 1.0):
        clip = simulate_clip("grimace", seed=4, eye_aperture=aperture, duration_s=0.2, head_rotation_deg=0.0)
        centre = (kp(clip, "eye_front")[0] + kp(clip, "eye_back")[0]) / 2
        h, w = eye_size(clip.frames[0], centre)
        assert abs(h - clip.truth["eye_height_px"]) <= 2.5, (aperture, h, clip.truth["eye_height_px"])
        if aperture >= 0.5:  # a slit's tapering ends fade below the threshold
            assert abs(w - clip.truth["eye_width_px"]) <= 2.5
        heights.append(h)
    assert all(b > a for a, b in itertools.pairwise(heights)), heights


@pytest.mark.parametrize("facing", ["left", "right"])
def test_grimace_keypoints_lie_on_the_rendered_features(facing):
    clip = simulate_clip("grimace", seed=6, facing=facing, eye_aperture=0.8, duration_s=1.0)
    for i in (0, len(clip.frames) - 1):
        img = clip.frames[i].astype(int)
        g = gray(clip.frames[i])

        def near(name: str, r: int, i: int = i, img: np.ndarray = img) -> np.ndarray:
            x, y = np.round(kp(clip, name)[i]).astype(int)
            return img[y - r : y + r + 1, x - r : x + r + 1].reshape(-1, 3)

        for name in ("eye_top", "eye_bottom", "eye_front", "eye_back"):
            x, y = np.round(kp(clip, name)[i]).astype(int)
            assert g[y - 2 : y + 3, x - 2 : x + 3].min() < 50, name  # on the dark eye's edge
        pink = near("nose", 1)
        assert np.all(pink[:, 0] - pink[:, 1] > 35)  # the pink nose tip
        mid = np.round((kp(clip, "ear_base")[i] + kp(clip, "ear_tip")[i]) / 2).astype(int)
        r, gch = img[mid[1], mid[0], 0], img[mid[1], mid[0], 1]
        assert r - gch > 35  # inside of the ear
        pad = near("whisker_pad", 1).mean(axis=0)
        assert np.abs(pad - (150, 130, 118)).max() < 20
        for name in ("ear_base", "cheek", "whisker_pad"):
            assert near(name, 1).mean() < 175  # on the head, not the cage wall
    nose, eye = kp(clip, "nose")[0], kp(clip, "eye_front")[0]
    assert (nose[0] < eye[0]) == (facing == "left")


def test_grimace_action_unit_mapping():
    assert action_unit_scores(1.0, 75.0, 0.0, 0.0, 55.0) == dict.fromkeys(
        ("orbital_tightening", "nose_bulge", "cheek_bulge", "ear_position", "whisker_change"), 0.0
    )
    s = action_unit_scores(0.6, 50.0, 0.5, 1.0, 90.0)
    assert s == pytest.approx(
        {"orbital_tightening": 1.0, "nose_bulge": 1.0, "cheek_bulge": 2.0, "ear_position": 1.0, "whisker_change": 1.0}
    )
    clip = simulate_clip(
        "grimace",
        seed=1,
        eye_aperture=0.0,
        ear_angle_deg=20.0,
        nose_bulge=1.0,
        cheek_bulge=1.0,
        whisker_angle_deg=150.0,
        duration_s=0.2,
    )
    assert clip.truth["mgs_score"] == 2.0 and clip.truth["au_scores_int"]["orbital_tightening"] == 2


# ------------------------------------------------------------------------------------------ burrowing


def test_burrowing_fill_fraction_tracks_truth():
    clip = simulate_clip(
        "burrowing", seed=1, displaced_fraction_per_min=0.03, latency_to_start_s=400.0, frame_interval_s=30.0
    )
    t = clip.truth
    x, y, w, h = t["tube_roi"]
    measured = np.array([(gray(f)[y : y + h, x : x + w] < 160).mean() for f in clip.frames])
    fill = np.array(t["fill_fraction"])
    assert np.abs(measured - fill).max() < 0.05
    assert fill[0] == 0.9 and fill[-1] == 0.0 and np.all(np.diff(fill) <= 0)
    start = round(400.0 / 30.0)
    assert np.all(fill[: start + 1] == 0.9) and fill[start + 1] < 0.9
    assert t["displaced_percent_end"] == 100.0 and t["emptied_at_s"] == pytest.approx(400 + 60 / 0.03, abs=30)
    # Time-lapse: session time is real time, the video plays faster.
    assert clip.session.fps == pytest.approx(1 / 30.0) and clip.video_fps == 10.0
    # The mouse stays outside the tube.
    assert kp(clip, "snout")[:, 0].min() > x + w


def test_burrowing_partial_displacement():
    clip = simulate_clip(
        "burrowing",
        seed=2,
        displaced_fraction_per_min=0.01,
        latency_to_start_s=600.0,
        duration_s=1800.0,
        initial_fill_fraction=0.8,
    )
    assert clip.truth["displaced_percent_end"] == pytest.approx(100 * 0.01 * 20)
    assert clip.truth["fill_fraction"][-1] == pytest.approx(0.8 * 0.8)


# ------------------------------------------------------------------------------------------ place preference


@pytest.mark.parametrize(("paired", "start"), [("right", "unpaired"), ("left", "paired")])
def test_place_preference_time_entries_and_centroid(paired, start):
    clip = simulate_clip(
        "place_preference",
        seed=7,
        time_in_paired_s=41.3,
        n_entries=4,
        duration_s=70.0,
        paired_chamber=paired,
        start_chamber=start,
    )
    t, fps = clip.truth, clip.session.fps
    x = kp(clip, "centroid")[:, 0]
    in_paired = x > t["divider_x_px"] if paired == "right" else x <= t["divider_x_px"]
    assert abs(in_paired.sum() / fps - 41.3) <= 1 / fps
    assert t["time_in_paired_s"] == in_paired.sum() / fps
    entries = int(np.sum(in_paired[1:] & ~in_paired[:-1]))
    assert entries == t["n_entries"] == 4
    assert in_paired[0] == (start == "paired")
    assert t["latency_to_first_entry_s"] == np.flatnonzero(in_paired)[0] / fps
    for i in range(0, len(clip.frames), 9):  # the rendered body's centroid is the keypoint
        ys, xs = np.nonzero(gray(clip.frames[i]) < 60)
        assert np.hypot(xs.mean() - x[i], ys.mean() - kp(clip, "centroid")[i, 1]) < 2.0


def test_place_preference_crossings_only_through_the_doorway():
    clip = simulate_clip("place_preference", seed=8, paired_fraction=0.3, n_entries=3)
    t = clip.truth
    c = kp(clip, "centroid")
    side = c[:, 0] > t["divider_x_px"]
    cross = np.flatnonzero(side[1:] != side[:-1])
    lo, hi = t["doorway_y_px"]
    for i in cross:
        assert lo < c[i, 1] < hi and lo < c[i + 1, 1] < hi


# ------------------------------------------------------------------------------------------ determinism

SMALL = {
    "gait": {"duration_s": 0.5},
    "hargreaves": {"latencies_s": [1.0], "cutoff_s": 2.0},
    "von_frey": {"filaments_g": [2.0, 4.0], "responses": ["O", "X"]},
    "grimace": {"duration_s": 0.5},
    "burrowing": {"duration_s": 900.0, "frame_interval_s": 60.0, "latency_to_start_s": 100.0},
    "place_preference": {"duration_s": 20.0, "n_entries": 2},
}


@pytest.mark.parametrize("assay", sorted(SMALL))
def test_same_seed_same_clip_different_seed_different_clip(assay):
    a = simulate_clip(assay, seed=11, **SMALL[assay])
    b = simulate_clip(assay, seed=11, **SMALL[assay])
    c = simulate_clip(assay, seed=12, **SMALL[assay])
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.poses["position"].values, b.poses["position"].values)
    assert a.truth == b.truth and a.session == b.session.model_copy(
        update={"session_id": a.session.session_id, "video": a.session.video, "pose": a.session.pose}
    )
    assert a.frames.shape == c.frames.shape or assay == "place_preference"
    assert a.frames.shape != c.frames.shape or not np.array_equal(a.frames, c.frames)


# ------------------------------------------------------------------------------------------ study design


def test_up_down_walk_follows_dixon_rules():
    rng = np.random.default_rng(0)
    assert up_down_sequence(1000.0, rng) == [(2.0, "O"), (4.0, "O"), (6.0, "O"), (8.0, "O"), (15.0, "O")]
    assert up_down_sequence(0.01, rng) == [(2.0, "X"), (1.0, "X"), (0.6, "X"), (0.4, "X")]
    for threshold in (0.7, 3.0, 7.0):
        seq = up_down_sequence(threshold, rng)
        resp = [r for _, r in seq]
        change = next(i for i in range(1, len(resp)) if resp[i] != resp[i - 1])
        assert len(seq) - 1 - change == 4  # four more trials after the first change
        for (f0, r0), (f1, _) in itertools.pairwise(seq):
            i0, i1 = CHAPLAN_SERIES_G.index(f0), CHAPLAN_SERIES_G.index(f1)
            assert i1 == (max(i0 - 1, 0) if r0 == "X" else min(i0 + 1, 7))
    # The response probability is 1/2 at the threshold: about half of many 2 g trials respond.
    hits = sum(up_down_sequence(2.0, np.random.default_rng(s))[0][1] == "X" for s in range(400))
    assert 160 < hits < 240


def test_study_plan_effects_and_null():
    plan = plan_study(seed=0)
    truth = plan.truth
    assert len(plan.sessions) == len(truth) == 9 * 3 * 6
    assert truth.groupby(["animal_id", "timepoint", "assay"]).size().eq(1).all()
    harg = truth[truth.assay == "hargreaves"].set_index(["group", "timepoint"])
    d7 = harg.xs("d7", level="timepoint")
    assert d7.loc["CCI", "hargreaves_ipsi_latency_s"].mean() < d7.loc["Control", "hargreaves_ipsi_latency_s"].mean()
    assert (
        d7.loc["CCI", "hargreaves_ipsi_latency_s_pop"].iloc[0]
        < d7.loc["CCI+MSC", "hargreaves_ipsi_latency_s_pop"].iloc[0]
        < d7.loc["Control", "hargreaves_ipsi_latency_s_pop"].iloc[0]
    )
    base = harg.xs("baseline", level="timepoint")["hargreaves_ipsi_latency_s_pop"]
    assert base.nunique() == 1  # at baseline all groups alike
    vf = truth[(truth.assay == "von_frey") & (truth.timepoint == "d7")].groupby("group")
    assert vf["von_frey_ipsi_threshold_g"].mean()["CCI"] < vf["von_frey_ipsi_threshold_g"].mean()["Control"]

    null = plan_study(seed=0, effects=StudyEffects.null()).truth
    pop_cols = [c for c in null.columns if c.endswith("_pop")]
    assert len(pop_cols) > 15
    for (_, _), rows in null.groupby(["assay", "timepoint"]):
        means = rows.groupby("group")[pop_cols].mean().dropna(axis=1, how="all")
        assert (means.nunique() == 1).all()  # planted means identical in every group
    assert (null["effect_multiplier"] == 0).all()
    # The same animals are drawn with and without effects: baseline sessions are identical.
    same = ["hargreaves_ipsi_latency_s", "gait_ipsi_hind_print_area_mm2", "grimace_eye_aperture"]
    np.testing.assert_array_equal(
        truth[truth.timepoint == "baseline"][same].values, null[null.timepoint == "baseline"][same].values
    )


def test_study_rejects_a_group_without_an_effect():
    with pytest.raises(ValueError, match="expected a group from"):
        plan_study(groups=("Control", "SNI"))
    with pytest.raises(ValueError, match="unknown assay"):
        plan_study(assays=("hargreaves", "catwalk"))


def test_a_study_written_without_some_videos_has_the_same_poses_and_scores(tmp_path):
    import json

    import pandas as pd

    from behavior.batch import score_study
    from behavior.synthetic import simulate_study
    from pose_models.io import load_poses

    design = {"seed": 2, "animals_per_group": 1, "timepoints": ("baseline",), "assays": ("von_frey", "gait")}
    full = simulate_study(tmp_path / "full", **design)
    lean = simulate_study(tmp_path / "lean", **design, without_video=["von_frey"])
    rows = pd.read_csv(lean, dtype=str, keep_default_na=False)
    von_frey = rows[rows["assay"] == "von_frey"]
    assert (von_frey["video"] == "").all() and (rows[rows["assay"] == "gait"]["video"] != "").all()
    assert not list((tmp_path / "lean").glob("*von_frey*.mp4")) and list((tmp_path / "lean").glob("*gait*.mp4"))
    for sid in von_frey["session_id"]:
        assert json.loads((tmp_path / "lean" / f"{sid}.json").read_text()).get("video") is None
        a, b = (load_poses(tmp_path / d / f"{sid}.h5") for d in ("full", "lean"))
        np.testing.assert_array_equal(a["position"].values, b["position"].values)
    scored = [score_study(m, tmp_path / f"out{i}").measures for i, m in enumerate((full, lean))]
    a, b = (m.sort_values(["session_id", "measure"]).reset_index(drop=True) for m in scored)
    assert len(a) > 0 and a["value"].notna().any()
    pd.testing.assert_frame_equal(a[["session_id", "measure", "value"]], b[["session_id", "measure", "value"]])
    with pytest.raises(ValueError, match="does not simulate: \\['grimace'\\]"):
        simulate_study(tmp_path / "bad", **design, without_video=["grimace"])
