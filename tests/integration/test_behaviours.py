"""``painbattery behaviours train/apply`` on synthetic pain-box files, and the classifiers on real tracks."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from behavior.synthetic.pain_box import PAIN_BOX_BEHAVIOURS, pain_box_bouts
from tests.fixtures.cli import cli, one_line_error

BIN = Path(sys.executable).parent / "painbattery"


@pytest.fixture(scope="module")
def box_files(tmp_path_factory) -> dict:
    """Three synthetic pain-box animals written as a rig writes them, with bout CSVs of their planted bouts."""
    from behavior.synthetic import simulate_clip
    from pose_models.io import save_poses

    root = tmp_path_factory.mktemp("painbox")
    out: dict = {"poses": [], "labels": [], "clips": []}
    for i in range(3):
        clip = simulate_clip("pain_box", seed=(7, i), duration_s=40, injured=i == 0, side="right")
        pose = save_poses(clip.poses, root / f"animal{i}.h5")
        labels = root / f"animal{i}_bouts.csv"
        pain_box_bouts(clip)[["behavior", "start_frame", "stop_frame"]].to_csv(labels, index=False)
        out["poses"].append(pose)
        out["labels"].append(labels)
        out["clips"].append(clip)
    out["root"] = root
    return out


def test_train_then_apply_writes_frames_bouts_measures(box_files, capsys, monkeypatch):
    root = box_files["root"]
    model = root / "model"
    labels = [a for p in box_files["labels"] for a in ("--labels", p)]
    code, out, err = cli(
        capsys, monkeypatch, "behaviours", "train", *box_files["poses"], *labels, "--fps", 30, "--out", model,
        "--folds", 3, "--max-iter", 20,
    )  # fmt: skip
    assert code == 0, err
    assert "GroupKFold by animal (3 folds" in out
    assert (model / "manifest.json").is_file() and (model / "model.joblib").is_file()
    clip = box_files["clips"][0]
    dest = root / "scored"
    code, out, err = cli(
        capsys, monkeypatch, "behaviours", "apply", model, box_files["poses"][0], "--out", dest, "--side", "right"
    )
    assert code == 0, err
    frames = pd.read_csv(dest / "frames.csv", keep_default_na=False)
    assert len(frames) == clip.n_frames
    assert list(frames.columns[:2]) == ["frame", "behavior"]
    assert {f"p_{b}" for b in PAIN_BOX_BEHAVIOURS} <= set(frames.columns)
    assert "none" in set(frames["behavior"])
    assert set(frames["behavior"]) <= {*PAIN_BOX_BEHAVIOURS, "none"}
    truth = pd.Series(np.full(clip.n_frames, "none", dtype=object))
    for b in pain_box_bouts(clip).itertuples():
        truth[b.start_frame : b.stop_frame + 1] = b.behavior
    assert (frames["behavior"] == truth).mean() > 0.95  # a training animal: nearly every frame
    bouts = pd.read_csv(dest / "bouts.csv")
    assert {"behavior", "start_frame", "stop_frame", "duration_s"} <= set(bouts.columns)
    measures = pd.read_csv(dest / "measures.csv").set_index("measure")["value"]
    assert measures["licking_ipsi_s"] == pytest.approx(clip.truth["licking_ipsi_s"], abs=1.0)
    assert measures["licking_ipsi_minus_contra_s"] > 0
    assert (dest / "provenance.json").is_file()


def test_bad_input_is_one_line(box_files, capsys, monkeypatch, tmp_path):
    poses = box_files["poses"][0]
    long = tmp_path / "long.csv"
    long.write_text("behavior,start_frame,stop_frame\nlicking,10,5000\n")
    args = ("--fps", 30, "--out", tmp_path / "m")
    code, _, err = cli(capsys, monkeypatch, "behaviours", "train", poses, "--labels", long, *args)
    one_line_error(code, err, "labels run past the poses", "5000")
    backwards = tmp_path / "backwards.csv"
    backwards.write_text("behavior,start_frame,stop_frame\nlicking,10,5\n")
    code, _, err = cli(capsys, monkeypatch, "behaviours", "train", poses, "--labels", backwards, *args)
    one_line_error(code, err, "start_frame <= stop_frame")
    model = box_files["root"] / "model"
    if not model.is_dir():
        pytest.skip("needs the model of test_train_then_apply_writes_frames_bouts_measures")
    code, _, err = cli(
        capsys,
        monkeypatch,
        "behaviours",
        "apply",
        model,
        poses,
        "--out",
        tmp_path / "o",
        "--behaviours",
        "licking,biting",
    )
    one_line_error(code, err, "unknown behaviour(s) ['biting']")
    code, _, err = cli(
        capsys, monkeypatch, "behaviours", "apply", model, poses, "--out", tmp_path / "o", "--roles", "paw_lh=tail_tip"
    )
    one_line_error(code, err, "paw_lh")
    code, _, err = cli(capsys, monkeypatch, "behaviours", "apply", model, poses, "--out", tmp_path / "o", "--fps", 25)
    one_line_error(code, err, "expected poses at the classifier's 30 fps, got 25 fps")


# ----------------------------------------------------------------------------------------- real data

BEHAVIORDEPOT_F1 = 0.903


def frame_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    tp = float(np.sum(truth & pred))
    return 2 * tp / float(truth.sum() + pred.sum())


@pytest.mark.realdata
def test_behaviordepot_freezing_blocked_folds_against_the_tool(shared_data):
    """One mouse, one human rater: per-frame F1 under blocked folds beside BehaviorDEPOT's own (0.903)."""
    from behavior.classifiers import BehaviourEstimator, cross_validate, labelled_session, read_annotations
    from behavior.classifiers.roles import parse_role_pairs

    folder = shared_data / "behaviordepot-demo1"
    tracking = folder / "demo1_tracking.csv"
    if not tracking.is_file():
        pytest.skip(f"{tracking} not found")
    session = labelled_session(
        tracking,
        folder / "demo1_human_freezing_bouts.csv",
        fps=50,
        roles=parse_role_pairs("behaviordepot"),
        group="demo1",
    )
    assert len(session.labels) == 6000 and int((session.labels == "freezing").sum()) == 1368
    # one animal, 20 bouts: a small, strongly regularised model (the default overfits: F1 0.82)
    estimator = BehaviourEstimator(max_iter=60, learning_rate=0.1, max_leaf_nodes=5, min_samples_leaf=300)
    cv = cross_validate([session], n_splits=5, estimator=estimator)
    assert cv.scheme.startswith("blocked in time (5 contiguous folds")
    ours = frame_f1(session.labels == "freezing", cv.predictions[0] == "freezing")
    tool = read_annotations(folder / "demo1_behaviordepot_freezing_bouts.csv", n_frames=6000, fps=50)
    theirs = frame_f1(session.labels == "freezing", tool == "freezing")
    print(f"behaviordepot-demo1 freezing, per-frame F1 vs the human: ours {ours:.3f} (blocked 5-fold), "
          f"BehaviorDEPOT {theirs:.3f} (reported {BEHAVIORDEPOT_F1})")  # fmt: skip
    assert theirs == pytest.approx(BEHAVIORDEPOT_F1, abs=0.002)
    assert ours >= 0.82  # below BehaviorDEPOT's 0.903 heuristic: the goal to beat is not reached yet


@pytest.mark.realdata
@pytest.mark.parametrize(
    "relpath",
    [
        "bsoid/yttri-bottomup_dlc-model/examples/raw_clip1DLC_resnet50_OpenFieldHighResApr8shuffle1_1030000.h5",
        "prj-mouse-pain-cfa/Videos/shortened_2023-10-25_CFA_010_267M_trackingDLC_resnet50_pawtracking_comparisionMay7shuffle1_500000.h5",
        "vame-sample/tests/tests_project_sample_data/cropped_video.csv",
    ],
    ids=["bsoid", "prj-mouse-pain-cfa", "vame-sample"],
)
def test_features_on_every_frame_of_real_bottom_up_tracks(shared_data, relpath):
    from behavior.classifiers import compute_features, resolve_roles
    from pose_models.io import load_poses

    path = shared_data / relpath
    if not path.is_file():
        pytest.skip(f"{path} not found")
    poses = load_poses(path, fps=30)
    roles = resolve_roles([str(k) for k in poses["keypoints"].values])
    assert {"snout", "tail_base", "paw_lf", "paw_rf", "paw_lh", "paw_rh"} <= set(roles)
    start = time.perf_counter()
    fs = compute_features(poses, roles)
    rate = len(fs.frames) / (time.perf_counter() - start)
    values = fs.frames.to_numpy()
    low = fs.quality["low_confidence_fraction"]
    print(f"{path.name}: {len(fs.frames)} frames, {values.shape[1]} features, {rate:,.0f} frames/s, "
          f"NaN share {np.isnan(values).mean():.3f}, low-confidence {low}")  # fmt: skip
    assert len(fs.frames) == poses.sizes["time"]
    assert not np.isinf(values).any()
    assert np.isfinite(values).mean() > 0.8


# ----------------------------------------------------------------------------------------- the assay


@pytest.fixture(scope="module")
def box_study(tmp_path_factory) -> dict:
    """A synthetic classifier and a small simulated study of pain-box sessions (Control / CCI, baseline / d7)."""
    from behavior.synthetic import StudyEffects, simulate_study
    from behavior.synthetic.pain_box import train_synthetic_classifier

    root = tmp_path_factory.mktemp("boxstudy")
    model = train_synthetic_classifier(root / "model", n_animals=4, duration_s=40)
    effects = StudyEffects(group_effect={"Control": 0.0, "CCI": 1.0}, timepoint_effect={"baseline": 0.0, "d7": 1.0})
    study = simulate_study(
        root / "study", seed=3, animals_per_group=1, groups=("Control", "CCI"), timepoints=("baseline", "d7"),
        assays=("pain_box",), effects=effects,
    )  # fmt: skip
    manifest = study / "manifest.csv" if study.is_dir() else study
    return {"model": model, "manifest": manifest, "rows": pd.read_csv(manifest, dtype=str, keep_default_na=False)}


def _ipsi_excess(values: dict[tuple[str, str], float]) -> None:
    """The injured animal licks its injured paw more at d7 than the control animal."""
    assert values[("CCI", "d7")] > values[("Control", "d7")] + 2, values


def test_pain_box_study_scores_end_to_end(box_study, tmp_path, capsys, monkeypatch):
    """A small simulated study of pain-box sessions, scored by 'painbattery score' with a synthetic classifier."""
    manifest, model = box_study["manifest"], box_study["model"]
    out = tmp_path / "scored"
    code, _, err = cli(capsys, monkeypatch, "score", manifest, "--out", out, "--set", f"pain_box.classifier={model}")
    assert code == 0, err
    measures = pd.read_csv(out / "measures.csv")
    pb = measures[measures["assay"] == "pain_box"]
    assert set(pb["session_id"]) == set(box_study["rows"]["session_id"])
    assert (pb["domain"] == "spontaneous").all()
    diff = pb[pb["measure"] == "licking_ipsi_minus_contra_s"].set_index(["group", "timepoint"])["value"]
    _ipsi_excess(diff.to_dict())
    report = next(out.glob("*.html"), None)
    assert report is not None and "Pain box: ethogram per session" in report.read_text()


def test_pain_box_sessions_through_the_service_with_the_operators_classifier(box_study, tmp_path):
    """Uploaded pain-box sessions are scored by the worker with the classifier the operator configured
    (PAINBATTERY_ASSAY_OVERRIDES); without it they fail saying what is missing; a typo stops the worker."""
    import json

    import httpx

    from tests.fixtures.service import Server
    from tests.integration.test_service import upload, wait_job

    rows, study_dir = box_study["rows"], box_study["manifest"].parent
    overrides = json.dumps([f"pain_box.classifier={box_study['model']}"])
    with Server(tmp_path / "svc", "sqlite", PAINBATTERY_ASSAY_OVERRIDES=overrides) as server:
        _, headers = server.lab("lab-box")
        sid = httpx.post(f"{server.url}/api/v1/studies", json={"name": "box"}, headers=headers).json()["id"]
        jobs = []
        for row in rows.to_dict("records"):
            meta = {k: row[k] for k in ("session_id", "animal_id", "group", "timepoint", "assay", "side")}
            meta["fps"] = float(row["fps"])
            r = upload(server, headers, sid, study_dir / row["pose"], meta)
            assert r.status_code == 201, r.text
            jobs.append(r.json()["job_id"])
        assert server.worker("--idle-exit").wait(timeout=300) == 0
        assert [wait_job(server, headers, j)["status"] for j in jobs] == ["done"] * len(jobs)
        battery = httpx.get(f"{server.url}/api/v1/studies/{sid}/battery", headers=headers).json()
        by = {(b["group"], b["timepoint"]): b["spontaneous.licking_ipsi_minus_contra_s"] for b in battery}
        _ipsi_excess(by)
        # an override that names no setting of any assay: the worker refuses to start, in one line
        server.env["PAINBATTERY_ASSAY_OVERRIDES"] = json.dumps(["pain_box.clasifier=/x"])
        bad = server.worker("--idle-exit", stderr=subprocess.PIPE, text=True)
        _, err = bad.communicate(timeout=120)
        assert bad.returncode == 2 and "PAINBATTERY_ASSAY_OVERRIDES" in err and "clasifier" in err, err
        assert len(err.strip().splitlines()) == 1, err
        # no classifier configured: the job fails and says what the operator must set
        del server.env["PAINBATTERY_ASSAY_OVERRIDES"]
        other = httpx.post(f"{server.url}/api/v1/studies", json={"name": "box2"}, headers=headers).json()["id"]
        row = rows.iloc[0]
        meta = {k: row[k] for k in ("session_id", "animal_id", "group", "timepoint", "assay", "side")}
        r = upload(server, headers, other, study_dir / row["pose"], {**meta, "fps": float(row["fps"])})
        assert server.worker("--idle-exit").wait(timeout=300) == 0
        job = wait_job(server, headers, r.json()["job_id"])
        assert job["status"] == "failed" and "expected a behaviour classifier" in job["error"], job


def test_pain_box_recordings_dropped_in_a_watch_folder_are_scored_with_set(box_study, tmp_path):
    import json
    import shutil

    row = box_study["rows"].iloc[-1]  # the CCI animal at d7
    folder = tmp_path / "drop"
    folder.mkdir()
    # a rig drops its recording and a sidecar; this lab tracks poses itself and names the file
    shutil.copy(box_study["manifest"].parent / row["pose"], folder / "rec.h5")
    shutil.copy(box_study["manifest"].parent / row["video"], folder / "rec.mp4")
    sidecar = {k: row[k] for k in ("session_id", "animal_id", "group", "timepoint", "assay", "side")}
    (folder / "rec.json").write_text(json.dumps({**sidecar, "fps": float(row["fps"]), "pose": "rec.h5"}))
    out = tmp_path / "out"
    args = ["watch", str(folder), "--out", str(out), "--once", "--settle-seconds", "0.2"]
    result = subprocess.run(
        [str(BIN), *args, "--set", f"pain_box.classifier={box_study['model']}"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "processed 1 recording(s)" in result.stdout, result.stdout + result.stderr
    cached = json.loads((out / "cache" / f"{row['session_id']}.json").read_text())
    measures = {m["measure"]: m["value"] for m in cached["measures"]}
    assert measures["licking_ipsi_minus_contra_s"] > 2
    typo = subprocess.run([str(BIN), *args, "--set", "pain_box.clasifier=/x"], capture_output=True, text=True)
    assert typo.returncode == 2 and "clasifier" in typo.stderr and len(typo.stderr.strip().splitlines()) == 1
