"""Grimace assay: AU geometry follows the planted face, frame selection, calibration with grouped CV."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from behavior.assays import get_assay
from behavior.features import grimace_calibration as gc
from behavior.features.grimace import GrimaceError, extract_grimace, score_frames
from behavior.synthetic import simulate_clip, write_clip
from behavior.synthetic.grimace import action_unit_scores, simulate_rated_faces

NEUTRAL = {
    "eye_aperture": 0.95,
    "ear_angle_deg": 75.0,
    "nose_bulge": 0.0,
    "cheek_bulge": 0.0,
    "whisker_angle_deg": 55.0,
}
SWEEPS = {  # AU: (parameter, planted values from none to severe)
    "orbital_tightening": ("eye_aperture", [0.95, 0.8, 0.7, 0.6, 0.5, 0.4, 0.25]),
    "nose_bulge": ("nose_bulge", [0.0, 0.15, 0.3, 0.5, 0.65, 0.8, 1.0]),
    "cheek_bulge": ("cheek_bulge", [0.0, 0.15, 0.3, 0.5, 0.65, 0.8, 1.0]),
    "ear_position": ("ear_angle_deg", [75, 65, 58, 50, 43, 36, 28]),
    "whisker_change": ("whisker_angle_deg", [55, 70, 80, 90, 100, 110, 125]),
}


@pytest.fixture(scope="module")
def config():
    return get_assay("grimace").load_config(["selection.frames_per_session=3"])


def _session(tmp_path, config, seed=0, **params):
    clip = simulate_clip("grimace", seed=seed, duration_s=0.4, **params)
    paths = write_clip(clip, tmp_path)
    result = extract_grimace(clip.poses, clip.session, config, video=paths["video"])
    return clip, result


@pytest.mark.parametrize("au", list(SWEEPS))
def test_each_au_follows_its_planted_value(tmp_path, config, au):
    name, values = SWEEPS[au]
    truth, got = [], []
    for i, v in enumerate(values):
        params = {**NEUTRAL, name: v, "facing": "left" if i % 2 else "right"}
        _, result = _session(tmp_path, config, seed=i, **params)
        measures = {m.measure: m for m in result.measures}
        truth.append(action_unit_scores(**{k: params[k] for k in NEUTRAL})[au])
        got.append(measures[f"mgs_{au}"].value)
        assert measures["mgs_score"].quality == "uncalibrated"
        assert measures["mgs_score"].n == 3
    rho = spearmanr(truth, got).statistic
    print(f"{au}: Spearman {rho:.3f}, truth {np.round(truth, 2)}, scored {np.round(got, 2)}")
    assert rho >= 0.9
    for t, g in zip(truth, got, strict=True):  # clear cases: 0, 1, 2 recovered
        if min(abs(t - c) for c in (0, 1, 2)) < 0.05:
            assert round(g) == round(t), (t, g)
    assert np.all(np.diff(got) >= -0.1)  # monotonic in between (up to noise)


def test_blurred_turned_away_and_grooming_frames_are_not_selected(tmp_path):
    config = get_assay("grimace").load_config(["selection.interval_s=0.5"])
    clip = simulate_clip(
        "grimace",
        seed=4,
        duration_s=4.0,
        blur_stretches_s=[(0.0, 1.0)],
        yaw_stretches_s=[(1.0, 2.0)],
        grooming_stretches_s=[(2.0, 3.0)],
    )
    paths = write_clip(clip, tmp_path)
    result = extract_grimace(clip.poses, clip.session, config, video=paths["video"])
    frames = result.tables["grimace_frames"]
    excluded = clip.truth["excluded_frames"]
    expect = {"blurred": "blurred", "turned_away": "turned_away", "grooming": "grooming"}
    for kind, runs in excluded.items():
        for first, last in runs:
            reasons = frames.loc[first:last, "reason"]
            assert (reasons == expect[kind]).all(), (kind, reasons.value_counts())
            assert not frames.loc[first:last, "selected"].any()
    clear = frames["reason"] == ""
    assert clear.sum() == clip.truth["clear_frames"]
    assert frames["selected"].sum() == 2  # the two clear half-second intervals (3.0-4.0 s)
    stretches = result.tables["grimace_rejected"]
    assert list(stretches["reason"]) == ["blurred", "turned_away", "grooming"]
    assert result.quality["blurred_frames"] == 15


def test_no_detectable_face_is_one_error(tmp_path, config):
    clip = simulate_clip("grimace", seed=1, duration_s=0.4)
    poses = clip.poses.copy(deep=True)
    poses["confidence"][:] = 0.1
    with pytest.raises(GrimaceError, match="no detectable face"):
        score_frames(poses, None, config, fps=15.0)


def test_rat_species_scores_four_aus(tmp_path):
    config = get_assay("grimace").load_config(["species=rat"])
    clip = simulate_clip("grimace", seed=1, duration_s=0.4)
    paths = write_clip(clip, tmp_path)
    result = extract_grimace(clip.poses, clip.session, config, video=paths["video"])
    names = [m.measure for m in result.measures]
    assert names == ["rgs_score", "rgs_orbital_tightening", "rgs_nose_cheek_flattening", "rgs_ear_changes",
                     "rgs_whisker_change"]  # fmt: skip


@pytest.fixture(scope="module")
def rated(tmp_path_factory):
    out = tmp_path_factory.mktemp("rated")
    path = simulate_rated_faces(out, n_animals=8, clips_per_animal=4, rater_sd=(0.25, 0.4, 0.6), seed=3)
    config = get_assay("grimace").load_config()
    scores = gc.read_scores_csv(path)
    return path, scores, gc.scored_frame_features(scores, config)


def test_calibration_recovers_the_mapping_and_reports_agreement(rated, tmp_path):
    path, scores, features = rated
    scorer = gc.calibrate(scores, features, "mouse")
    cv, raters = scorer.agreement["model_vs_raters_cv"], scorer.agreement["inter_rater"]
    print("model (grouped CV):", cv["kappa"], cv["icc_mean_score"])
    print("raters:", raters["kappa"], raters["icc_mean_score"])
    assert cv["grouping"] == "animal" and cv["animals"] == 8
    assert raters["raters"] == 3 and set(raters["kappa"]) == set(cv["kappa"])
    assert cv["icc_mean_score"] > 0.8 and min(cv["kappa"].values()) > 0.5
    # the fitted mapping recovers the planted one: predictions against the exact AU scores
    truth = pd.read_csv(path.parent / "truth.csv")
    base = path.parent
    truth["frame_id"] = [f"{(base / v).resolve()}#{f}" for v, f in zip(truth.video, truth.frame, strict=True)]
    feats = features.set_index("frame_id").loc[truth["frame_id"]]
    pred = scorer.predict(feats)
    for au in pred.columns:
        assert spearmanr(pred[au], truth[au]).statistic > 0.85, au
    # saved as JSON, loaded back, refused for another species
    saved = scorer.save(tmp_path / "cal.json")
    doc = json.loads(saved.read_text())
    assert doc["species"] == "mouse" and doc["feature_names"] == list(gc.FEATURES)
    again = gc.CalibratedScorer.load(saved)
    np.testing.assert_allclose(again.predict(feats).to_numpy(), pred.to_numpy())
    with pytest.raises(GrimaceError, match="species 'mouse'"):
        again.check_species("rat")


def test_grouped_cv_keeps_animals_out_and_a_leak_would_show():
    # Scores depend only on the animal; the features identify the animal but say nothing general.
    rng = np.random.default_rng(0)
    animals = [f"A{i}" for i in range(6)]
    level = dict(zip(animals, [0, 2, 1, 2, 0, 1], strict=True))
    code = {a: rng.normal(0, 1, len(gc.FEATURES)) for a in animals}
    feats, scores = [], []
    for a in animals:
        for j in range(20):
            fid = f"{a}#{j}"
            values = dict(zip(gc.FEATURES, code[a] + rng.normal(0, 0.05, 5), strict=True))
            feats.append({"frame_id": fid, "animal": a, **values})
            scores.append({"frame_id": fid, "animal": a, "rater": "R1", "orbital_tightening": level[a]})
    feats, scores = pd.DataFrame(feats), pd.DataFrame(scores)
    grouped = gc.cross_validate(feats, scores, "mouse", n_splits=3)
    leaky = gc.cross_validate(feats, scores, "mouse", n_splits=3, grouping="frame")
    assert leaky["kappa"]["orbital_tightening"] > 0.9  # a leak inflates agreement ...
    assert grouped["kappa"]["orbital_tightening"] < 0.5  # ... which grouping by animal removes


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda df: df.rename(columns={"nose_bulge": "nose_wrinkle"}), "unknown action unit"),
        (
            lambda df: df.assign(cheek_bulge=[3, *df["cheek_bulge"].iloc[1:]]),
            "expected cheek_bulge score 0, 1 or 2, got '3'",
        ),
    ],
)
def test_bad_scores_csv_is_one_error(rated, tmp_path, edit, match):
    path, _, _ = rated
    df = edit(pd.read_csv(path))
    bad = path.parent / "bad.csv"
    df.to_csv(bad, index=False)
    with pytest.raises(GrimaceError, match=match):
        gc.read_scores_csv(bad)


def test_a_session_with_no_selectable_frame_says_why_instead_of_a_bare_nan():
    import pandas as pd

    from behavior.features.grimace import GrimaceConfig, session_measures

    table = pd.DataFrame({"selected": [False] * 5, "reason": ["turned_away"] * 3 + ["blurred"] * 2, "score": [0.0] * 5})
    for au in ("orbital_tightening", "nose_bulge", "cheek_bulge", "ear_position", "whisker_change"):
        table[au] = 0.0
    (mgs, *_) = session_measures(table, GrimaceConfig(), calibrated=False)
    assert mgs.n == 0 and mgs.value != mgs.value  # NaN
    assert mgs.quality == "not scored: no frame selectable of 5 (turned_away 3, blurred 2); uncalibrated"


def test_scores_csv_takes_image_rows_beside_video_rows_and_asks_for_a_model(tmp_path):
    (tmp_path / "mixed.csv").write_text(
        "image,video,frame,animal,rater,orbital_tightening\nstills/a.png,,,M1,R1,1\n,v.mp4,3,M2,R1,2\n"
    )
    scores = gc.read_scores_csv(tmp_path / "mixed.csv")
    assert scores["frame_id"].tolist() == [str((tmp_path / "stills/a.png").resolve()), f"{tmp_path.resolve()}/v.mp4#3"]
    assert scores["line"].tolist() == [2, 3]
    config = get_assay("grimace").load_config()
    with pytest.raises(GrimaceError, match=r"1 still image\(s\) \(first: line 2, .*a.png\): .*--model DIR"):
        gc.scored_frame_features(scores, config)
    (tmp_path / "bad.csv").write_text("image,video,frame,animal,rater,orbital_tightening\n,v.mp4,,M2,R1,2\n")
    with pytest.raises(GrimaceError, match="line 2: expected an image, or a video and an integer frame"):
        gc.read_scores_csv(tmp_path / "bad.csv")


def test_a_30_fps_session_examines_every_third_frame_and_keeps_recording_times(tmp_path, config):
    """selection.pose_fps 10 at 30 fps: frames 0, 3, 6, ... are examined (face poses from video only there);
    frame numbers, times and rejected stretches stay those of the recording, scores those of every frame."""
    from behavior.features.grimace import frame_step, rejected_stretches

    clip = simulate_clip("grimace", seed=4, duration_s=2.0, fps=30.0, eye_aperture=0.6,
                         grooming_stretches_s=[(0.5, 1.0)])  # fmt: skip
    paths = write_clip(clip, tmp_path)
    assert frame_step(config, 30.0) == 3 and frame_step(config, 15.0) == 1 and frame_step(config, None) == 1
    every = get_assay("grimace").load_config(["selection.frames_per_session=3", "selection.pose_fps=null"])
    sampled = extract_grimace(clip.poses, clip.session, config, video=paths["video"])
    full = extract_grimace(clip.poses, clip.session, every, video=paths["video"])
    table = sampled.tables["grimace_frames"]
    assert table["frame"].tolist() == list(range(0, clip.n_frames, 3))
    np.testing.assert_allclose(table["time_s"], table["frame"] / 30.0)
    assert sampled.quality["frame_step"] == 3 and sampled.quality["frames"] == len(table) == 20
    assert set(table.loc[table["selected"], "frame"] % 3) == {0}
    # the grooming stretch is found at its recorded time
    groom = rejected_stretches(table, 30.0)
    groom = groom[groom["reason"] == "grooming"]
    assert len(groom) == 1 and abs(groom["start_s"].iloc[0] - 0.5) <= 0.1 and abs(groom["end_s"].iloc[0] - 1.0) <= 0.1
    a = {m.measure: m.value for m in sampled.measures}
    b = {m.measure: m.value for m in full.measures}
    assert (
        abs(a["mgs_orbital_tightening"] - b["mgs_orbital_tightening"]) < 0.15
        and abs(a["mgs_score"] - b["mgs_score"]) < 0.15
    )


def test_poses_predicted_on_every_kth_frame_are_examined_only_there(tmp_path):
    """A pose file from a run that predicted every 3rd frame (NaN between; saved as DLC h5, as the pipeline
    saves them, which keeps neither its frame_step nor its log) scored with pose_fps null or 15: before, the
    unpredicted frames were examined and counted as frames without a face (2 of 3)."""
    from behavior.features.grimace import frame_step, poses_frame_step
    from pose_models.io import load_poses, save_poses
    from pose_models.poses import append_log

    clip = simulate_clip("grimace", seed=4, duration_s=2.0, fps=30.0, eye_aperture=0.6,
                         grooming_stretches_s=[(0.5, 1.0)])  # fmt: skip
    paths = write_clip(clip, tmp_path)
    sparse = clip.poses.copy(deep=True)
    keep = np.arange(clip.n_frames) % 3 == 0
    sparse["position"].values[~keep] = np.nan
    sparse["confidence"].values[~keep] = np.nan
    sparse = load_poses(save_poses(sparse, tmp_path / "sparse.h5"), fps=30.0)
    every = get_assay("grimace").load_config(["selection.pose_fps=null"])
    dense = extract_grimace(clip.poses, clip.session, get_assay("grimace").load_config(), video=paths["video"])
    for config in (every, get_assay("grimace").load_config(["selection.pose_fps=15"])):
        got = extract_grimace(sparse, clip.session, config, video=paths["video"])
        table = got.tables["grimace_frames"]
        assert table["frame"].tolist() == list(range(0, clip.n_frames, 3)) and got.quality["frame_step"] == 3
        assert got.quality["no_face_frames"] == dense.quality["no_face_frames"]
    assert poses_frame_step(sparse) == 3 and poses_frame_step(clip.poses) == 1
    assert poses_frame_step(append_log(clip.poses, "predict_video", frame_step=5)) == 5
    # a rate whose quotient is whole up to rounding: 30 fps / 0.2 per second is every 150th frame, not 149th
    assert frame_step(get_assay("grimace").load_config(["selection.pose_fps=0.2"]), 30.0) == 150
    assert frame_step(get_assay("grimace").load_config(["selection.pose_fps=0.1"]), 30.0) == 300


def test_a_one_row_stretch_of_a_sampled_session_spans_its_step():
    from behavior.features.grimace import rejected_stretches

    table = pd.DataFrame({"frame": [9], "reason": ["grooming"]})
    table.attrs["frame_step"] = 3  # as score_frames records it
    (row,) = rejected_stretches(table, 30.0).to_dict("records")
    assert row["start_s"] == pytest.approx(0.3) and row["end_s"] == pytest.approx(0.4)
