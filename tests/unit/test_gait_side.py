"""Side-view gait (beam, treadmill): planted step cycles and ankle angles of the side-view simulator recovered."""

from __future__ import annotations

import math

import numpy as np
import pytest

from behavior.features.gait import GaitConfig, GaitError, analyse_gait
from behavior.features.gait_side import (
    analyse_side_view,
    compare_step_cycles,
    joint_angle_deg,
    normalise_cycle,
    side_view_result,
)
from behavior.synthetic.gait import SideStepParams, planted_ankle_angle_deg, simulate_side_view

SIDE = GaitConfig(mode="side")


def _drop(poses, *names):
    return poses.sel(keypoints=[k for k in poses["keypoints"].values if k not in names])


@pytest.mark.parametrize("direction", ["left_to_right", "right_to_left"])
def test_planted_step_cycles_recovered(direction):
    # a 0.28 s cycle (28 frames) starting 7 frames in: every planted event falls on a frame
    p = SideStepParams(
        direction=direction, floor_slope=0.02, stance_duration_s=0.17, stride_length_mm=42.0, start_phase=0.25
    )
    poses, truth = simulate_side_view(p)
    a = analyse_side_view(poses, p.fps, p.px_per_mm, SIDE)
    assert a.quality["direction"].startswith(direction)
    cycle = 42.0 / p.speed_mm_s
    for paw in ("hind", "fore"):
        found, planted = a.cycles[a.cycles["paw"] == paw], truth[truth["paw"] == paw]
        _, fig = compare_step_cycles(found, planted, tolerance_frames=2)
        assert fig["matched_n"] == fig["reference_n"] == fig["found_n"] >= 7, (paw, fig)
        assert fig["max_abs_start_diff_frames"] <= 1 and fig["median_abs_end_diff_frames"] <= 1
        s = a.paw_summary[paw]
        assert s["stance_duration_s"][0] == pytest.approx(0.17, rel=0.05)
        assert s["swing_duration_s"][0] == pytest.approx(cycle - 0.17, rel=0.05)
        assert s["step_cycle_s"][0] == pytest.approx(cycle, rel=0.05)
        assert s["duty_cycle"][0] == pytest.approx(0.17 / cycle, rel=0.05)
        assert s["stride_length_mm"][0] == pytest.approx(42.0, rel=0.05)
        assert s["swing_height_mm"][0] == pytest.approx(p.swing_height_mm, rel=0.1)


def test_noisy_tracks_give_durations_within_a_frame():
    p = SideStepParams(noise_px=0.3)
    poses, _ = simulate_side_view(p, np.random.default_rng(3))
    s = analyse_side_view(poses, p.fps, p.px_per_mm, SIDE).paw_summary["hind"]
    assert s["stance_duration_s"][0] == pytest.approx(0.18, abs=0.01)
    assert s["swing_duration_s"][0] == pytest.approx(0.12, abs=0.01)
    assert s["step_cycle_s"][0] == pytest.approx(0.30, rel=0.02)


def test_treadmill_belt_motion_is_added_back():
    p = SideStepParams(floor_slope=0.0)
    poses, truth = simulate_side_view(p)
    belt = poses.copy(deep=True)
    t = np.arange(belt.sizes["time"]) / p.fps
    belt["position"].values[:, 0] -= (p.speed_mm_s * p.px_per_mm * t)[:, None, None]  # the body stays put
    config = GaitConfig.model_validate(
        {"mode": "side", "side_view": {"treadmill_speed_mm_s": p.speed_mm_s, "direction": "left_to_right"}}
    )
    a = analyse_side_view(belt, p.fps, p.px_per_mm, config)
    _, fig = compare_step_cycles(a.cycles[a.cycles["paw"] == "hind"], truth[truth["paw"] == "hind"])
    assert fig["matched_fraction"] == 1.0 and fig["max_abs_start_diff_frames"] <= 1


def test_joint_angles_per_frame_and_over_the_normalised_cycle():
    p = SideStepParams()
    poses, truth = simulate_side_view(p)
    a = analyse_side_view(poses, p.fps, p.px_per_mm, SIDE)
    ankle = a.angles["ankle_angle_deg"].to_numpy()
    hind = truth[truth["paw"] == "hind"]
    cycle_frames = round(p.stride_length_mm / p.speed_mm_s * p.fps)
    planted = []
    for r in hind.itertuples():
        f = np.arange(r.start_frame, r.end_frame + 1)
        want = planted_ankle_angle_deg((f - r.start_frame) / cycle_frames)
        np.testing.assert_allclose(ankle[f], want, atol=1e-6)
        planted.append(normalise_cycle(want, 25))
    curve = a.angle_curves[(a.angle_curves["angle"] == "ankle")]
    assert len(curve) == 25 and (curve["cycles_n"] == len(hind)).all()
    np.testing.assert_allclose(curve["mean_deg"], np.mean(planted, axis=0), atol=1e-6)
    assert np.nanmax(curve["sd_deg"]) < 1e-6  # every cycle the same
    assert curve["sc_percent"].iloc[-1] == 100.0
    assert set(a.angle_curves["angle"]) == {"ankle", "knee", "hip", "wrist", "elbow", "shoulder"}
    assert len(a.angles_by_cycle) == 25 * (len(hind) * 3 + len(truth[truth["paw"] == "fore"]) * 3)


def test_angle_and_binning_definitions():
    j = np.zeros((3, 2))
    lo = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    up = np.array([[0.0, 1.0], [-1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(joint_angle_deg(j, lo, up), [90.0, 180.0, np.nan])
    np.testing.assert_allclose(normalise_cycle(np.arange(30.0), 25)[:6], [0.5, 2.5, 4.5, 6.5, 8.5, 10.0])
    np.testing.assert_allclose(normalise_cycle(np.arange(24.0), 25)[:3], [0.0, 0.0, 1.0])


def test_one_paw_skeleton_and_result_tables():
    p = SideStepParams()
    poses, _ = simulate_side_view(p)
    poses = _drop(poses, "fore_paw", "wrist", "elbow", "lower_shoulder", "upper_shoulder")
    a = analyse_side_view(poses, p.fps, p.px_per_mm, SIDE)
    assert a.quality["paws"] == "hind" and "wrist (no wrist, fore_paw, elbow)" in a.quality["angles_skipped"]
    r = side_view_result(a)
    assert set(r.tables) == {
        "gait_side_stances",
        "gait_side_cycles",
        "gait_side_angles",
        "gait_side_angles_by_cycle",
        "gait_side_angle_curves",
    }
    v = {m.measure: m for m in r.measures}
    assert v["hind_duty_cycle"].value == pytest.approx(0.6, rel=0.05)
    assert math.isnan(v["stance_ratio_ipsi_contra"].value)
    assert v["stance_ratio_ipsi_contra"].quality == "side_view_sees_one_side"
    assert v["ankle_angle_mean_deg"].quality == "ok" and "wrist_angle_mean_deg" not in v


def test_too_few_cycles_give_nan_with_the_reason():
    p = SideStepParams(duration_s=0.5)
    poses, _ = simulate_side_view(p)
    config = GaitConfig(mode="side", min_strides_per_paw=3)
    a = analyse_side_view(poses, p.fps, p.px_per_mm, config)
    value, _n, why = a.paw_summary["hind"]["stance_duration_s"]
    assert math.isnan(value) and why.startswith("too_few_cycles")


def test_bad_input_one_line_errors():
    p = SideStepParams(duration_s=1.0)
    poses, _ = simulate_side_view(p)
    with pytest.raises(GaitError, match=r"needs the paw keypoints hind \(hind_paw\)"):
        analyse_side_view(_drop(poses, "hind_paw"), p.fps, p.px_per_mm, SIDE)
    none_required = GaitConfig.model_validate({"mode": "side", "side_view": {"required_paws": []}})
    with pytest.raises(GaitError, match="needs the paw keypoints hind"):
        analyse_side_view(_drop(poses, "hind_paw", "fore_paw"), p.fps, p.px_per_mm, none_required)
    with pytest.raises(GaitError, match="fps > 0"):
        analyse_side_view(poses, 0.0, p.px_per_mm, SIDE)
    with pytest.raises(GaitError, match="px_per_mm"):
        analyse_side_view(poses, p.fps, None, SIDE)
    blank = poses.copy(deep=True)
    blank["confidence"].values[:] = 0.0
    with pytest.raises(GaitError, match="no floor line"):
        analyse_side_view(blank, p.fps, p.px_per_mm, SIDE)
    with pytest.raises(GaitError, match="floor_keypoints"):
        cfg = GaitConfig.model_validate({"mode": "side", "side_view": {"floor_keypoints": ["beam_left"]}})
        analyse_side_view(poses, p.fps, p.px_per_mm, cfg)
    with pytest.raises(GaitError, match="analyse_side_view"):
        analyse_gait(poses, p.fps, p.px_per_mm, SIDE)


def test_cli_side_mode_writes_the_angle_tables(tmp_path):
    from typer.testing import CliRunner

    from behavior.cli import app
    from pose_models.io import save_poses

    p = SideStepParams(duration_s=1.5)
    poses, _ = simulate_side_view(p)
    path = save_poses(poses, tmp_path / "side.nc")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["gait", str(path), "--fps", "100", "--px-per-mm", "4", "--mode", "side", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    for name in ("gait_side_cycles", "gait_side_angle_curves", "gait_side_angles_by_cycle", "measures"):
        assert (out / f"{name}.csv").is_file(), name
    assert (out / "angles.png").is_file() and (out / "footfall.png").is_file() and (out / "provenance.json").is_file()
    bad = CliRunner().invoke(
        app, ["gait", str(path), "--fps", "0", "--px-per-mm", "4", "--mode", "side", "--out", str(out)]
    )
    assert isinstance(bad.exception, GaitError) and str(bad.exception) == "expected --fps > 0, got 0.0"


def test_registered_extractor_scores_a_side_view_session():
    from behavior.assays import get_assay
    from behavior.session import Session

    p = SideStepParams(duration_s=1.5)
    poses, _ = simulate_side_view(p)
    spec = get_assay("gait")
    config = spec.load_config(["mode=side"])
    session = Session(
        session_id="s1", animal_id="a1", group="g", timepoint="d0", assay="gait", fps=100.0, px_per_mm=4.0, pose="x.nc"
    )
    result = spec.extract(poses, session, config)
    v = {m.measure: m for m in result.measures}
    assert v["hind_stance_duration_s"].value == pytest.approx(0.18, rel=0.05)
    assert "gait_side_angle_curves" in result.tables and result.quality["mode"] == "side"
