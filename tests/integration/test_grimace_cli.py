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
