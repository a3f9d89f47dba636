"""Behaviour classifiers: annotation readers, roles, features, smoothing, training on the synthetic pain box."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from behavior.classifiers import (
    NONE,
    AnnotationError,
    BehaviourEstimator,
    ClassifierFileError,
    RoleError,
    Smoothing,
    apply_classifier,
    bouts_to_labels,
    compute_features,
    labelled_session,
    labels_to_bouts,
    load_classifier,
    parse_role_pairs,
    read_annotations,
    resolve_roles,
    save_classifier,
    smooth_labels,
    train_classifier,
)
from behavior.synthetic import simulate_clip
from behavior.synthetic.pain_box import PAIN_BOX_BEHAVIOURS, pain_box_bouts, pain_box_labels
from pose_models.poses import from_numpy

#: A small, quick estimator for the tests (the default is larger).
FAST = {"max_iter": 20, "max_leaf_nodes": 15, "learning_rate": 0.2}


# ----------------------------------------------------------------------------------------- annotations


def test_bout_csv_to_labels_inclusive(tmp_path):
    path = tmp_path / "bouts.csv"
    path.write_text("behavior,start_frame,stop_frame\nlicking,2,4\nflinching,7,7\n")
    labels = read_annotations(path, n_frames=10, fps=30)
    assert labels.tolist() == [NONE, NONE, "licking", "licking", "licking", NONE, NONE, "flinching", NONE, NONE]
    bouts = labels_to_bouts(labels, fps=30)
    assert bouts[["behavior", "start_frame", "stop_frame"]].values.tolist() == [["licking", 2, 4], ["flinching", 7, 7]]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("licking,2,12", "labels run past the poses"),
        ("licking,5,3", "start_frame <= stop_frame"),
        ("licking,1,4\ngrooming,3,6", "overlapping bouts"),
    ],
)
def test_bout_csv_errors_are_one_line(tmp_path, rows, message):
    path = tmp_path / "bouts.csv"
    path.write_text("behavior,start_frame,stop_frame\n" + rows + "\n")
    with pytest.raises(AnnotationError, match=message) as err:
        read_annotations(path, n_frames=10, fps=30)
    assert "\n" not in str(err.value)


def test_per_frame_labels_must_match_the_pose_length(tmp_path):
    path = tmp_path / "frames.csv"
    path.write_text("frame,behavior\n" + "".join(f"{i},{'licking' if i in (1, 2) else ''}\n" for i in range(6)))
    assert read_annotations(path, n_frames=6, fps=30).tolist() == [NONE, "licking", "licking", NONE, NONE, NONE]
    with pytest.raises(AnnotationError, match="labels run past the poses"):
        read_annotations(path, n_frames=5, fps=30)


def test_boris_aggregated_events(tmp_path):
    path = tmp_path / "boris_agg.tsv"
    header = "Observation id\tMedia file name\tFPS\tSubject\tBehavior\tBehavioral category\tBehavior type\t"
    header += "Start (s)\tStop (s)\tDuration (s)\n"
    rows = "obs1\tv.mp4\t30.0\tmouse\tlicking\t\tSTATE\t1.000\t2.000\t1.0\n"
    rows += "obs1\tv.mp4\t30.0\tmouse\tflinching\t\tPOINT\t3.000\t3.000\t0\n"
    path.write_text(header + rows)
    labels = read_annotations(path, n_frames=120, fps=30)
    bouts = labels_to_bouts(labels)
    assert bouts[["behavior", "start_frame", "stop_frame"]].values.tolist() == [
        ["licking", 30, 59],
        ["flinching", 90, 90],
    ]
    with pytest.raises(AnnotationError, match="BORIS coded the video at 30 fps, expected the poses' 25 fps"):
        read_annotations(path, n_frames=120, fps=25)


def test_boris_tabular_events_with_metadata_rows(tmp_path):
    path = tmp_path / "boris_events.csv"
    text = "Observation id,obs1\nMedia file(s)\n\n"  # BORIS < 8 writes metadata rows above the header
    text += "Time,Media file path,Total length,FPS,Subject,Behavior,Behavioral category,Comment,Status\n"
    text += "0.500,v.mp4,10,20,,guarding,,,START\n1.000,v.mp4,10,20,,guarding,,,STOP\n"
    text += "2.000,v.mp4,10,20,,flinching,,,POINT\n"
    path.write_text(text)
    bouts = labels_to_bouts(read_annotations(path, n_frames=200, fps=20))
    assert bouts[["behavior", "start_frame", "stop_frame"]].values.tolist() == [
        ["guarding", 10, 19],
        ["flinching", 40, 40],
    ]
    path.write_text(text.replace("1.000,v.mp4,10,20,,guarding,,,STOP\n", ""))
    with pytest.raises(AnnotationError, match="never STOPs"):
        read_annotations(path, n_frames=200, fps=20)


# ----------------------------------------------------------------------------------------- roles


def test_roles_map_a_labs_names_and_refuse_missing_ones():
    names = ["Nose", "Front Paw L", "Hind Paw R", "Butt/Proximal Tail"]
    assert resolve_roles(names) == {
        "snout": "Nose",
        "paw_lf": "Front Paw L",
        "paw_rh": "Hind Paw R",
        "tail_base": "Butt/Proximal Tail",
    }
    mine = ["head", "bum", "lh"]
    roles = resolve_roles(mine, mapping=parse_role_pairs("head=snout,bum=tail_base,lh=paw_lh"))
    assert roles == {"snout": "head", "paw_lh": "lh", "tail_base": "bum"}
    with pytest.raises(RoleError, match=r"expected keypoint role\(s\) \['tail_base'\]"):
        resolve_roles(["head"], mapping={"head": "snout"})
    with pytest.raises(RoleError, match="expected a role from"):
        parse_role_pairs("head=nose_tip")
    # a skeleton name stands for its roles: BehaviorDEPOT's "Left Leg" is the left hind paw
    depot = ["Nose", "Left Ear", "Right Ear", "Tailbase", "Left Leg", "Right Leg", "Mid-Back", "Tail"]
    roles = resolve_roles(depot, mapping=parse_role_pairs("behaviordepot"))
    assert roles["paw_lh"] == "Left Leg" and roles["paw_rh"] == "Right Leg" and roles["centre"] == "Mid-Back"
    assert "paw_lh" not in resolve_roles(depot)  # the default names do not know its legs
    with pytest.raises(RoleError, match="a roles YAML or a skeleton name, got 'no_such_rig'"):
        parse_role_pairs("no_such_rig")


# ----------------------------------------------------------------------------------------- features


def test_features_on_every_frame_with_low_confidence_points():
    clip = simulate_clip("pain_box", seed=3, duration_s=10)
    poses = clip.poses
    conf = poses["confidence"].values.copy()
    conf[50:53, 1, 0] = 0.0  # a short gap: interpolated
    conf[100:200, 3, 0] = 0.0  # a long gap: NaN features, still a row per frame
    poses = poses.assign(confidence=(poses["confidence"].dims, conf))
    roles = resolve_roles([str(k) for k in poses["keypoints"].values])
    fs = compute_features(poses, roles)
    assert len(fs.frames) == clip.n_frames
    assert np.isfinite(fs.frames["paw_lf_speed"].to_numpy()[45:58]).all()
    assert np.isnan(fs.frames["paw_lh_to_snout"].to_numpy()[110:190]).all()
    assert fs.frames["paw_lh_confidence"].to_numpy()[110:190].max() == 0
    assert abs(fs.body_length_px - clip.truth["body_length_px"]) < 0.05 * clip.truth["body_length_px"]
    # window statistics are centred: the 1 s mean of body length is the mean of the centred 31 frames
    bl = fs.frames["body_length"].to_numpy(dtype=float)
    assert fs.frames["body_length__mean_31f"].iloc[100] == pytest.approx(bl[85:116].mean(), rel=1e-4)


def test_features_need_snout_and_tail_base():
    pos = np.zeros((20, 2, 2, 1))
    poses = from_numpy(pos, keypoint_names=["snout", "paw_lh"], fps=30)
    with pytest.raises(RoleError, match="tail_base"):
        compute_features(poses, {"snout": "snout", "paw_lh": "paw_lh"})


# ----------------------------------------------------------------------------------------- smoothing


def test_smoothing_drops_short_runs_and_merges_gaps():
    codes = np.array([0] * 10 + [1] * 2 + [0] * 10 + [2] * 8 + [0] * 2 + [2] * 8)
    proba = np.eye(3)[codes]
    out = smooth_labels(proba, Smoothing(min_bout_frames=3, max_gap_frames=2))
    assert (out[:22] == 0).all() and (out[22:] == 2).all()


def test_untracked_frames_are_smoothed_apart_from_the_tracked_ones():
    """Frames 10-29 unseen (their guess 'b' is sure); the tracked frames around them lean to 'a' (0.6).

    Smoothed as one track, the window averaged the guess into the tracked frames 8-9 and 30-31 ('b');
    each tracked stretch is smoothed on its own, so they keep 'a' and the unseen frames get -1.
    """
    p_a = np.array([0.6, 0.4])
    proba = np.array([p_a] * 10 + [[0.0, 1.0]] * 20 + [p_a] * 10)
    tracked = np.r_[np.ones(10, bool), np.zeros(20, bool), np.ones(10, bool)]
    smoothing = Smoothing(window_frames=5)
    assert (smooth_labels(proba, smoothing)[8:10] == 1).all()  # the whole-track smoothing
    out = smooth_labels(proba, smoothing, tracked=tracked)
    assert (out[tracked] == 0).all() and (out[~tracked] == -1).all()
    # a short bout beside an unseen stretch is not absorbed by the guess either
    proba = np.array([[0.0, 1.0]] * 20 + [[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 2)
    tracked = np.r_[np.zeros(20, bool), np.ones(5, bool)]
    assert smooth_labels(proba, Smoothing(min_bout_frames=3), tracked=tracked)[20:23].tolist() == [0, 0, 0]


def test_a_tracking_gap_does_not_split_a_bout_and_the_limit_is_exact():
    from behavior.classifiers.apply import behaviour_measures
    from behavior.classifiers.bouts import seen_bouts

    # one 2 s licking bout with 1/3 s unseen in its middle: one bout of 2 s seen, not two of 1 s
    labels = np.array(["none"] * 20 + ["licking"] * 30 + ["untracked"] * 10 + ["licking"] * 30 + ["none"] * 10)
    m = {x.measure: x for x in behaviour_measures(labels, 30, ["licking", "flinching"], max_untracked_fraction=0.3)}
    assert m["bouts_licking"].value == 1 and m["mean_bout_licking_s"].value == 2.0
    assert m["time_licking_s"].value == 2.0
    bouts = seen_bouts(labels, fps=30)
    assert bouts[["behavior", "start_frame", "stop_frame", "n_frames"]].values.tolist() == [["licking", 20, 89, 60]]
    flinch = np.array(["flinching"] * 6 + ["untracked"] * 3 + ["flinching"] * 6 + ["none"] * 85)
    assert {x.measure: x.value for x in behaviour_measures(flinch, 30, ["flinching"])}["flinch_count"] == 1
    # exactly at max_untracked_fraction (3 frames of 10 at 0.3) is not over it: measures stand
    at = np.array(["none"] * 7 + ["untracked"] * 3)
    measures = behaviour_measures(at, 30, ["licking"], max_untracked_fraction=0.3)
    assert all(x.quality in ("ok", "no_bouts") for x in measures)
    over = np.array(["none"] * 6 + ["untracked"] * 4)
    assert np.isnan(behaviour_measures(over, 30, ["licking"], max_untracked_fraction=0.3)[0].value)


def test_bouts_to_labels_round_trip():
    bouts = pd.DataFrame({"behavior": ["a", "b"], "start_frame": [0, 5], "stop_frame": [2, 9]})
    labels = bouts_to_labels(bouts, 12)
    back = labels_to_bouts(labels)
    assert back[["behavior", "start_frame", "stop_frame"]].values.tolist() == [["a", 0, 2], ["b", 5, 9]]


# ----------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def trained():
    """Four synthetic animals (two injured on the left), 60 s each, cross-validated by animal."""
    clips = [simulate_clip("pain_box", seed=10 + i, duration_s=60, injured=i % 2 == 0, side="left") for i in range(4)]
    sessions = [labelled_session(c.poses, pain_box_labels(c), group=f"animal{i}") for i, c in enumerate(clips)]
    clf, cv = train_classifier(sessions, estimator=BehaviourEstimator(**FAST), n_splits=4)
    return clips, clf, cv


def test_per_class_f1_under_grouped_folds(trained):
    _, clf, cv = trained
    assert cv.scheme.startswith("GroupKFold by animal (4 folds")
    f1 = dict(zip(cv.per_class["behavior"], cv.per_class["f1"], strict=True))
    print("synthetic pain box, per-class F1 (4 animals, GroupKFold):", {k: round(v, 3) for k, v in f1.items()})
    assert set(PAIN_BOX_BEHAVIOURS) <= set(f1)
    assert min(f1[b] for b in PAIN_BOX_BEHAVIOURS) >= 0.85
    assert cv.macro_f1 >= 0.93
    assert clf.behaviours == sorted(PAIN_BOX_BEHAVIOURS)


def test_found_bouts_start_and_end_within_3_frames(trained):
    clips, _, cv = trained
    errors = []
    found = total = 0
    for clip, pred in zip(clips, cv.predictions, strict=True):
        truth = pain_box_bouts(clip)
        got = labels_to_bouts(pred)
        for row in truth.itertuples():
            total += 1
            same = got[(got["behavior"] == row.behavior) & (got["start_frame"] <= row.stop_frame)]
            same = same[same["stop_frame"] >= row.start_frame]
            if same.empty:
                continue
            # the predicted bout that overlaps the planted one most
            overlap = np.minimum(same["stop_frame"], row.stop_frame) - np.maximum(same["start_frame"], row.start_frame)
            best = same.iloc[int(np.argmax(overlap.to_numpy()))]
            if overlap.max() + 1 < 0.5 * (row.stop_frame - row.start_frame + 1):
                continue
            found += 1
            errors.append(max(abs(best.start_frame - row.start_frame), abs(best.stop_frame - row.stop_frame)))
    errors = np.array(errors)
    print(f"bouts found {found}/{total}; edge error: median {np.median(errors)}, 95% {np.percentile(errors, 95)}")
    assert found >= 0.9 * total
    assert np.mean(errors <= 3) >= 0.9


def test_injured_animals_extra_ipsilateral_licking_in_measures(trained):
    _, clf, _ = trained
    new = [simulate_clip("pain_box", seed=50 + i, duration_s=60, injured=i == 0, side="left") for i in range(2)]
    values = []
    for clip in new:
        scores = apply_classifier(clf, clip.poses, side=clip.session.side)
        m = {x.measure: x.value for x in scores.measures}
        values.append(m)
        truth_diff = clip.truth["licking_ipsi_s"] - clip.truth["licking_contra_s"]
        assert m["licking_ipsi_minus_contra_s"] == pytest.approx(truth_diff, abs=1.5)
        assert m["flinch_count"] == pytest.approx(clip.truth["flinch_count"], abs=2)
        assert len(scores.frames) == clip.n_frames
    assert values[0]["licking_ipsi_minus_contra_s"] > values[1]["licking_ipsi_minus_contra_s"] + 3


def test_saved_classifier_round_trip_and_refusals(trained, tmp_path):
    clips, clf, _ = trained
    save_classifier(clf, tmp_path / "model")
    again = load_classifier(tmp_path / "model")
    a = apply_classifier(clf, clips[0].poses).frames
    b = apply_classifier(again, clips[0].poses).frames
    pd.testing.assert_frame_equal(a, b)
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["fps"] == 30 and "paw_lh" in manifest["keypoint_roles"]
    assert manifest["provenance"]["cross_validation"]["scheme"].startswith("GroupKFold")
    # wrong fps, missing role, unknown behaviour: one-line errors
    slow = clips[0].poses.copy()
    slow.attrs["fps"] = 25.0
    with pytest.raises(ValueError, match="expected poses at the classifier's 30 fps, got 25 fps"):
        apply_classifier(clf, slow)
    with pytest.raises(RoleError, match="paw_lh"):
        apply_classifier(clf, clips[0].poses.drop_sel(keypoints=["paw_lh"]))
    with pytest.raises(ValueError, match=r"unknown behaviour\(s\) \['scratching'\]"):
        apply_classifier(clf, clips[0].poses, behaviours=["licking", "scratching"])
    # a model file that is not the one the manifest hashed is refused before unpickling
    (tmp_path / "model" / "model.joblib").write_bytes(b"not our model")
    with pytest.raises(ClassifierFileError, match="refusing to load"):
        load_classifier(tmp_path / "model")


# ----------------------------------------------------------------------- inputs that must not mislead


def _lose(poses, frames, keypoints=None):
    """A copy of ``poses`` with ``keypoints`` (default all) untracked on ``frames``."""
    lost = poses.copy(deep=True)
    names = [str(k) for k in lost["keypoints"].values]
    idx = [names.index(k) for k in keypoints] if keypoints else slice(None)
    lost["position"].values[frames, :, idx] = np.nan
    lost["confidence"].values[frames, idx] = 0.0
    return lost


def test_frames_without_a_body_are_untracked_not_a_behaviour(trained):
    """Tracking lost for the second half: those frames read 'rearing' (quality ok) before; now 'untracked'."""
    clips, clf, _ = trained
    poses = clips[0].poses
    n = poses.sizes["time"]
    whole = {m.measure: m for m in apply_classifier(clf, poses, side="left").measures}
    # a quarter of the frames lost: under the 30 % limit, fractions are of the tracked frames
    quarter = apply_classifier(clf, _lose(poses, slice(0, n // 4)), side="left", max_untracked_fraction=0.3)
    unseen = quarter.frames.iloc[: n // 4 - 10]
    assert set(unseen["behavior"]) == {"none"} and not unseen["tracked"].any()
    assert quarter.frames["p_licking"].iloc[: n // 4 - 10].isna().all()
    assert "untracked" not in set(quarter.bouts["behavior"])
    assert quarter.quality["untracked_fraction"] == pytest.approx(0.25, abs=0.01)
    m = {x.measure: x for x in quarter.measures}
    fractions = sum(m[f"time_{b}_fraction"].value for b in clf.behaviours)
    assert fractions <= 1 + 1e-6
    assert m["time_still_fraction"].n == int(quarter.frames["tracked"].sum())
    assert m["time_licking_s"].value <= whole["time_licking_s"].value + 0.5  # no behaviour invented in the gap
    # half lost: over the default 20 %, every measure is NaN and says why
    half = apply_classifier(clf, _lose(poses, slice(n // 2, None)), side="left")
    for x in half.measures:
        assert np.isnan(x.value) and x.quality.startswith("untracked 50% of frames > 20%"), x


def test_licked_paw_unknown_when_the_hind_paws_are_not_seen(trained):
    clips, clf, _ = trained
    clip = clips[0]  # injured on the left: it licks the left hind paw
    blind = apply_classifier(clf, _lose(clip.poses, slice(None), ["paw_lh", "paw_rh"]), side="left")
    m = {x.measure: x for x in blind.measures}
    for name in ("licking_ipsi_s", "licking_contra_s", "licking_ipsi_minus_contra_s", "licking_left_s"):
        assert np.isnan(m[name].value) and m[name].quality == "hind paw untracked in 100% of frames"
    assert blind.quality["hind_paw_untracked_fraction"] == 1.0
    assert not np.isnan(m["time_grooming_s"].value)  # the body is seen: the other measures stand


def test_a_recording_cut_short_or_too_long_against_the_planned_length(trained):
    clips, clf, _ = trained
    poses = clips[0].poses  # 60 s at 30 fps
    full = {m.measure: m for m in apply_classifier(clf, poses, side="left", expected_duration_s=60).measures}
    assert full["time_licking_s"].quality == "ok"
    cut = apply_classifier(clf, poses.isel(time=slice(0, 900)), side="left", expected_duration_s=60)
    m = {x.measure: x for x in cut.measures}
    assert np.isnan(m["time_licking_s"].value) and m["time_licking_s"].quality == "recording_short: 30 s of 60 s"
    assert np.isnan(m["flinch_count"].value) and np.isnan(m["licking_ipsi_s"].value)
    assert m["time_licking_fraction"].quality == "ok" and 0 <= m["time_licking_fraction"].value <= 1
    # a longer recording is scored over its planned first 40 s, not its whole length
    first = apply_classifier(clf, poses, side="left", expected_duration_s=40)
    assert len(first.frames) == 1200 and first.quality["duration_s"] == 40
    assert {x.measure: x.value for x in first.measures}["time_licking_s"] <= 40


def test_short_sessions_and_a_reserved_label_are_refused(trained):
    clips, clf, _ = trained
    with pytest.raises(ValueError, match=r"expected at least 31 frames \(the classifier's widest window, 1 s\), got 1"):
        apply_classifier(clf, clips[0].poses.isel(time=slice(0, 1)))
    labels = pain_box_labels(clips[1]).astype(object)
    labels[:30] = "untracked"
    with pytest.raises(ValueError, match="the label 'untracked' is reserved"):
        labelled_session(clips[1].poses, labels, group="a")


def test_poses_without_a_confidence_variable_are_scored_as_seen(trained):
    """A tracker that stores no scores (the Python API takes such a dataset): a KeyError traceback before."""
    clips, clf, _ = trained
    bare = clips[0].poses.drop_vars("confidence")
    a = apply_classifier(clf, bare, side="left")
    sure = clips[0].poses.copy(deep=True)
    sure["confidence"].values[:] = 1.0
    b = apply_classifier(clf, sure, side="left")
    pd.testing.assert_frame_equal(a.frames, b.frames)


def test_the_smoothing_search_f1_is_sklearns_macro_f1():
    from sklearn.metrics import f1_score

    from behavior.classifiers.model import _macro_f1

    rng = np.random.default_rng(0)
    classes = ["flinch", "lick", "none", "rear"]
    for i in range(60):
        y = rng.choice(classes, 400, p=[0.1, 0.1, 0.7, 0.1])
        pred = rng.choice(classes, 400, p=[0.1, 0.2, 0.6, 0.1])
        if i % 3 == 0:
            pred[pred == "rear"] = "none"  # a behaviour never predicted
        if i % 5 == 0:
            y[y == "flinch"] = "none"  # a behaviour predicted but never labelled
        present = [c for c in classes if c != "none" and ((y == c).any() or (pred == c).any())]
        expected = f1_score(y, pred, labels=present, average="macro", zero_division=0)
        assert _macro_f1(y, pred, classes) == pytest.approx(expected, abs=1e-12)
    assert _macro_f1(np.array(["none"] * 5), np.array(["none"] * 5), classes) == 1.0
