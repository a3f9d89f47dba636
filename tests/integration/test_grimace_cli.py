"""Grimace through the CLI and through ``painbattery score`` on a simulated study."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from behavior.synthetic import simulate_clip, simulate_study, write_clip
from behavior.synthetic.grimace import simulate_rated_faces

BIN = Path(sys.executable).parent / "painbattery"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120)


def test_score_on_a_study_manifest_scores_every_grimace_session(tmp_path):
    manifest = simulate_study(tmp_path / "study", seed=2, animals_per_group=2, timepoints=("baseline", "d7"),
                              assays=("grimace",))  # fmt: skip
    result = run("score", str(manifest), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    measures = pd.read_csv(tmp_path / "out" / "measures.csv")
    mgs = measures[measures["measure"] == "mgs_score"]
    truth = pd.read_csv(manifest.parent / "study_truth.csv")
    assert len(mgs) == len(truth) == 12
    merged = mgs.merge(truth, on="session_id")
    err = (merged["value"] - merged["grimace_mgs_score"]).abs()
    print("session mgs_score error, true keypoints: max", err.max())
    assert err.max() < 0.15
    assert set(mgs["quality"]) == {"uncalibrated"}
    assert (tmp_path / "out" / "sessions" / mgs["session_id"].iloc[0] / "grimace_frames.csv").is_file()
    section = (tmp_path / "out" / "report.html").read_text().split("<h2>Spontaneous assays</h2>", 1)[1]
    section = section.split("<h2>", 1)[0]
    assert 'alt="Grimace: contact sheet" src="data:image/png;base64,' in section
    assert "Grimace: frames scored per session" in section


def test_grimace_score_and_calibrate_cli(tmp_path):
    clip = simulate_clip("grimace", seed=1, duration_s=1.0, eye_aperture=0.6, grooming_stretches_s=[(0.0, 0.3)])
    paths = write_clip(clip, tmp_path)
    out = tmp_path / "scored"
    result = run("grimace", "score", str(paths["pose"]), "--video", str(paths["video"]), "--out", str(out),
                 "--set", "selection.frames_per_session=2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in ("frames.csv", "rejected.csv", "session.csv", "contact_sheet.png", "provenance.json"):
        assert (out / name).is_file(), name
    session = pd.read_csv(out / "session.csv").set_index("measure")
    assert abs(session.loc["mgs_orbital_tightening", "value"] - 1.0) < 0.1
    assert pd.read_csv(out / "rejected.csv")["reason"].tolist() == ["grooming"]

    scores = simulate_rated_faces(tmp_path / "rated", n_animals=4, clips_per_animal=2, seed=1)
    cal = tmp_path / "cal.json"
    result = run("grimace", "calibrate", str(scores), "--out", str(cal), "--folds", "2")
    assert result.returncode == 0, result.stderr
    assert "raters" in result.stdout and json.loads(cal.read_text())["species"] == "mouse"
    result = run("grimace", "score", str(paths["pose"]), "--video", str(paths["video"]), "--out", str(out),
                 "--calibration", str(cal))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert set(pd.read_csv(out / "session.csv")["quality"]) == {"calibrated"}

    # bad input: one line, exit 2
    rat = run("grimace", "score", str(paths["pose"]), "--video", str(paths["video"]), "--out", str(out),
              "--calibration", str(cal), "--species", "rat")  # fmt: skip
    df = pd.read_csv(scores)
    df.loc[0, "ear_position"] = 3
    df.to_csv(tmp_path / "rated" / "three.csv", index=False)
    three = run("grimace", "calibrate", str(tmp_path / "rated" / "three.csv"), "--out", str(cal))
    df = pd.read_csv(scores).rename(columns={"ear_position": "ear_wiggle"})
    df.to_csv(tmp_path / "rated" / "unknown.csv", index=False)
    unknown = run("grimace", "calibrate", str(tmp_path / "rated" / "unknown.csv"), "--out", str(cal))
    blank = simulate_clip("grimace", seed=2, duration_s=0.4)
    poses = blank.poses.copy(deep=True)
    poses["confidence"][:] = 0.05
    from pose_models.io import save_poses

    save_poses(poses, tmp_path / "noface.h5")
    noface = run("grimace", "score", str(tmp_path / "noface.h5"), "--video", str(paths["video"]), "--fps", "15",
                 "--out", str(tmp_path / "nf"))  # fmt: skip
    for res, text in ((rat, "calibration is for species 'mouse'"), (three, "got '3'"),
                      (unknown, "unknown action unit"), (noface, "no detectable face")):  # fmt: skip
        assert res.returncode == 2, res.stderr
        assert text in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_calibration_from_still_images_through_a_face_model(tmp_path):
    """A lab's raters scored still images (PNG) cut from its videos: 'grimace calibrate --model' finds their
    keypoints with the face model and gives each image the features of its video frame, so the calibrated
    scorer is the one fitted on the same frames read from the videos."""
    import cv2
    import numpy as np
    import torch

    from behavior.assays import get_assay
    from behavior.features import grimace_calibration as gc
    from behavior.synthetic.training import labelled_frames
    from pose_models.nets.model import ModelConfig, TrainConfig
    from pose_models.train import train_model
    from pose_models.video import VideoReader

    torch.set_num_threads(2)
    # a small face model (8 clips, 15 epochs, ~25 s): the test is of the image path, not of the model's accuracy
    config = ModelConfig(
        input_scale=1.0, neck_channels=32, train=TrainConfig(epochs=15, lr=2e-3, patience_epochs=15, frozen_layers=5)
    )
    model = tmp_path / "face_model"
    train_model(labelled_frames(assays=("grimace",), n_clips=8, seed=5), model, config, seed=0)

    scores = simulate_rated_faces(tmp_path / "rated", n_animals=4, clips_per_animal=2, seed=1)
    videos = pd.read_csv(scores).drop(columns=["pose"])  # keypoints from the model for video frames too
    stills = tmp_path / "stills"
    stills.mkdir()
    images = []
    for (video, frame), _ in videos.groupby(["video", "frame"]):
        with VideoReader(scores.parent / video, bgr=True) as reader:
            image = next(f for i, f in enumerate(reader) if i == frame)
        name = stills / f"{Path(video).stem}_f{frame}.png"
        cv2.imwrite(str(name), image)  # PNG: lossless, the decoded frame exactly
        images.append((video, frame, name))
    by_frame = {(v, f): str(n) for v, f, n in images}
    stills_csv = videos.assign(image=[by_frame[(v, f)] for v, f in zip(videos["video"], videos["frame"], strict=True)])
    stills_csv = stills_csv.drop(columns=["video", "frame"])
    stills_csv.to_csv(tmp_path / "stills.csv", index=False)
    videos.assign(video=[str(scores.parent / v) for v in videos["video"]]).to_csv(tmp_path / "videos.csv", index=False)

    # a weak model's points: accept faces at a lower confidence, the same for both paths
    overrides = ["selection.min_confidence=0.08"]  # its faces peak at 0.1-0.4, a blank image at 0.03
    grimace = get_assay("grimace").load_config(overrides)
    from_images = gc.scored_frame_features(gc.read_scores_csv(tmp_path / "stills.csv"), grimace, model_dir=model)
    from_videos = gc.scored_frame_features(gc.read_scores_csv(tmp_path / "videos.csv"), grimace, model_dir=model)
    assert len(from_images) == len(images) == len(from_videos)
    key = {str(n): f"{(scores.parent / v).resolve()}#{f}" for v, f, n in images}
    from_images["frame_id"] = [key[str(Path(i))] for i in from_images["frame_id"]]
    a = from_images.set_index("frame_id").sort_index()
    b = from_videos.set_index("frame_id").loc[a.index]
    assert (a["animal"] == b["animal"]).all()
    np.testing.assert_allclose(a[list(gc.FEATURES)].to_numpy(float), b[list(gc.FEATURES)].to_numpy(float), atol=1e-6)

    cal = tmp_path / "cal.json"
    args = ["grimace", "calibrate", str(tmp_path / "stills.csv"), "--model", str(model), "--out", str(cal),
            "--folds", "2", *(x for o in overrides for x in ("--set", o))]  # fmt: skip
    result = run(*args)
    assert result.returncode == 0, result.stderr
    doc = json.loads(cal.read_text())
    agreement = doc["agreement"]["model_vs_raters_cv"]
    assert agreement["frames"] == len(images) and agreement["animals"] == 4 and agreement["grouping"] == "animal"
    same = gc.calibrate(gc.read_scores_csv(tmp_path / "videos.csv"), from_videos, "mouse", n_splits=2)
    fitted = same.to_json()  # the scorer fitted on the frames read from the videos
    np.testing.assert_allclose(doc["mean"], fitted["mean"], atol=1e-9)
    np.testing.assert_allclose(doc["scale"], fitted["scale"], atol=1e-9)
    # a still image the model finds no face in is named, not dropped
    cv2.imwrite(str(stills / "blank.png"), np.zeros((180, 240, 3), np.uint8))
    blank = stills_csv.iloc[:1].assign(image=str(stills / "blank.png"))
    pd.concat([stills_csv, blank]).to_csv(tmp_path / "with_blank.csv", index=False)
    bad = run("grimace", "calibrate", str(tmp_path / "with_blank.csv"), "--model", str(model), "--out", str(cal),
              "--set", overrides[0])  # fmt: skip
    assert bad.returncode == 2 and "no face found in" in bad.stderr and "blank.png" in bad.stderr, bad.stderr
