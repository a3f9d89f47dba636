"""The synthetic rig on disk: written clips decode to what was simulated; a study's manifest reads back."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from behavior.session import read_manifest, read_session_sidecar
from behavior.synthetic import StudyEffects, plan_study, simulate, simulate_clip, simulate_study, write_clip
from behavior.video import ROI, VideoReader, detect_light_switches, probe_video
from pose_models.io import load_poses
from tests.unit.test_synthetic import check_gait_prints


def test_write_clip_round_trip(tmp_path):
    clip = simulate_clip("von_frey", seed=1, name="vf01", session_fields={"animal_id": "R1", "group": "CCI"})
    paths = write_clip(clip, tmp_path / "out")
    assert sorted(p.name for p in paths.values()) == ["vf01.h5", "vf01.json", "vf01.mp4", "vf01.truth.json"]
    assert all(p.is_file() for p in paths.values())
    session = read_session_sidecar(paths["sidecar"])
    assert session.events == clip.session.events and len(session.events) == 10
    assert session.video == paths["video"].resolve() and session.pose == paths["pose"].resolve()
    raw = json.loads(paths["sidecar"].read_text())
    assert raw["video"] == "vf01.mp4" and raw["pose"] == "vf01.h5"  # relative to the sidecar
    assert (session.animal_id, session.group, session.assay) == ("R1", "CCI", "von_frey")
    poses = load_poses(paths["pose"], fps=clip.session.fps)
    np.testing.assert_allclose(poses["position"].values, clip.poses["position"].values, atol=1e-6)
    assert list(poses["keypoints"].values) == list(clip.poses["keypoints"].values)
    assert json.loads(paths["truth"].read_text()) == clip.truth
    info = probe_video(paths["video"])
    assert (info.n_frames, info.width, info.height) == (clip.n_frames, 160, 120)
    assert info.fps == pytest.approx(clip.session.fps)


def test_gait_prints_survive_encoding(tmp_path):
    clip = simulate_clip("gait", seed=8, print_area_mm2={"right_hind": 9.0}, print_intensity={"right_hind": 140.0})
    paths = write_clip(clip, tmp_path)
    with VideoReader(paths["video"]) as reader:
        decoded = np.concatenate([frames for _, frames in reader.batches(64)])
    assert decoded.shape == clip.frames.shape
    assert check_gait_prints(clip, decoded) >= 24
    poses = load_poses(paths["pose"], fps=clip.session.fps)
    np.testing.assert_allclose(poses["position"].values, clip.poses["position"].values, atol=1e-6)


def test_hargreaves_light_is_detected_in_the_written_video(tmp_path):
    clip = simulate_clip(
        "hargreaves", seed=2, latencies_s=[3.0, 7.0, None], cutoff_s=5.0, trial_sides=["right", "left", "right"]
    )
    paths = write_clip(clip, tmp_path)
    for side in ("left", "right"):
        trials = [t for t in clip.truth["trials"] if t["side"] == side]
        events = detect_light_switches(paths["video"], ROI(*clip.truth["roi_by_side"][side]))
        on = [e["frame"] for e in events if e["kind"] == "light_on"]
        off = [e["frame"] for e in events if e["kind"] == "light_off"]
        assert len(on) == len(trials) and len(off) == len(trials)
        for t, f_on, f_off in zip(trials, on, off, strict=True):
            assert abs(f_on - t["onset_frame"]) <= 1
            assert abs(f_off - t["light_off_frame"]) <= 1
            if t["censored"]:
                assert t["light_off_frame"] - t["onset_frame"] == round(5.0 * clip.session.fps)


def test_burrowing_is_written_as_a_time_lapse(tmp_path):
    clip = simulate_clip("burrowing", seed=1, duration_s=1200.0)
    paths = write_clip(clip, tmp_path)
    assert probe_video(paths["video"]).fps == pytest.approx(10.0)  # plays back at playback_fps
    session = read_session_sidecar(paths["sidecar"], registered_only=False)  # the rig simulates ahead of extractors
    assert session.fps == pytest.approx(1 / 20.0)  # frame / fps = real test time
    poses = load_poses(paths["pose"], fps=session.fps)
    assert float(poses["time"].values[-1]) == pytest.approx(1200.0)


def test_simulate_writes_n_clips_and_reports_progress(tmp_path):
    calls = []
    sidecars = simulate(
        "grimace", tmp_path, n_clips=2, seed=5, progress=lambda d, t: calls.append((d, t)), duration_s=0.4
    )
    assert calls == [(1, 2), (2, 2)]
    assert [p.name for p in sidecars] == ["grimace_s5_000.json", "grimace_s5_001.json"]
    frames = [next(iter(VideoReader(read_session_sidecar(p, registered_only=False).video))) for p in sidecars]
    assert not np.array_equal(frames[0], frames[1])
    with pytest.raises(ValueError, match="unknown parameter"):
        simulate("grimace", tmp_path / "bad", eye_open=0.3)
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_simulate_study_writes_a_readable_manifest_and_truth(tmp_path):
    timepoints = ("baseline", "d7")
    manifest = simulate_study(tmp_path, seed=3, animals_per_group=1, timepoints=timepoints)
    sessions = read_manifest(manifest, registered_only=False)  # gait, grimace... are simulated ahead of extractors
    assert len(sessions) == 3 * 2 * 6  # animal x timepoint x assay
    assert len({(s.animal_id, s.timepoint, s.assay) for s in sessions}) == len(sessions)
    df = pd.read_csv(manifest, keep_default_na=False)
    assert list(df.columns) == [
        "session_id",
        "animal_id",
        "group",
        "timepoint",
        "assay",
        "side",
        "video",
        "pose",
        "fps",
        "px_per_mm",
        "events",
        "model",
        "roi",
    ]
    assert (df[df.assay == "burrowing"].roi != "").all() and (df[df.assay != "burrowing"].roi == "").all()
    evoked = df[df.assay.isin(["hargreaves", "von_frey"])]
    assert (evoked.events != "").all() and (df[~df.index.isin(evoked.index)].events == "").all()
    by_id = {s.session_id: s for s in sessions}
    for row in evoked.itertuples():
        sidecar = read_session_sidecar(tmp_path / f"{row.session_id}.json", registered_only=False)
        assert by_id[row.session_id].events == sidecar.events
    truth = pd.read_csv(tmp_path / "study_truth.csv")
    plan = plan_study(seed=3, animals_per_group=1, timepoints=timepoints).truth
    pd.testing.assert_frame_equal(truth, plan, check_dtype=False)
    d7 = truth[(truth.assay == "hargreaves") & (truth.timepoint == "d7")].set_index("group")
    assert d7.loc["CCI", "hargreaves_ipsi_latency_s"] < d7.loc["Control", "hargreaves_ipsi_latency_s"]
    # The planted latencies are the ones the clips hold.
    for row in truth[truth.assay == "hargreaves"].itertuples():
        clip_truth = json.loads((tmp_path / f"{row.session_id}.truth.json").read_text())
        ipsi = clip_truth["trials"][0]
        assert ipsi["side"] == row.side
        assert ipsi["latency_set_s"] == pytest.approx(json.loads(row.hargreaves_trial_latencies_s)[0], abs=1e-4)
    design = json.loads((tmp_path / "study_design.json").read_text())
    assert design["effects"]["group_effect"] == {"Control": 0.0, "CCI": 1.0, "CCI+MSC": 0.5}


@pytest.mark.slow
def test_simulate_study_null_effects_and_workers_agree(tmp_path):
    kw = {
        "seed": 1,
        "animals_per_group": 1,
        "timepoints": ("d7",),
        "assays": ("grimace",),
        "effects": StudyEffects.null(),
    }
    one = simulate_study(tmp_path / "one", **kw)
    two = simulate_study(tmp_path / "two", n_jobs=2, **kw)
    assert one.read_text() == two.read_text()
    for name in ("A01_d7_grimace", "A03_d7_grimace"):
        # The rendered frames are identical; x264 itself is not bit-reproducible run to run (threading),
        # so the decoded videos may differ by a few grey levels in a few pixels.
        with VideoReader(one.parent / f"{name}.mp4") as a, VideoReader(two.parent / f"{name}.mp4") as b:
            fa, fb = np.stack(list(a)).astype(int), np.stack(list(b)).astype(int)
        assert np.abs(fa - fb).max() <= 12 and np.abs(fa - fb).mean() < 0.1
        for suffix in (".json", ".truth.json"):
            assert (one.parent / f"{name}{suffix}").read_text() == (two.parent / f"{name}{suffix}").read_text()
        a_poses, b_poses = (load_poses(d.parent / f"{name}.h5", fps=15.0) for d in (one, two))
        np.testing.assert_array_equal(a_poses["position"].values, b_poses["position"].values)
    truth = pd.read_csv(one.parent / "study_truth.csv")
    pop = [c for c in truth.columns if c.endswith("_pop")]
    assert (truth[pop].nunique() == 1).all()
