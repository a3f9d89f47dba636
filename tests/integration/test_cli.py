"""The installed ``painbattery`` command, run as a user would (subprocesses)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from behavior.video import write_video
from pose_models.io import load_poses, save_poses
from tests.fixtures.poses import random_predictions

BIN = Path(sys.executable).parent / "painbattery"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_bad_input(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("painbattery ")


def test_import_behavior_does_not_import_torch():
    code = (
        "import sys, behavior, behavior.session, behavior.video, pose_models, pose_models.io; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_info_on_a_video_and_a_pose_file(tmp_path):
    video = write_video(tmp_path / "v.mp4", np.zeros((12, 64, 80, 3), np.uint8), fps=15)
    result = run("info", str(video), "--json")
    assert result.returncode == 0, result.stderr
    assert '"n_frames": 12' in result.stdout and '"width": 80' in result.stdout
    poses = save_poses(random_predictions(n_frames=9, n_keypoints=2), tmp_path / "p.h5")
    result = run("info", str(poses), "--json")
    assert result.returncode == 0, result.stderr
    assert '"frames": 9' in result.stdout and '"kp1"' in result.stdout


def test_info_on_truncated_and_fake_videos_exits_2_with_one_line(tmp_path):
    video = write_video(tmp_path / "v.mp4", np.random.default_rng(0).integers(0, 255, (40, 64, 80, 3), np.uint8), 15)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    assert_bad_input(run("info", str(truncated)), "truncated.mp4", "truncated")
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file\n")
    assert_bad_input(run("info", str(fake)), "notes.mp4", "not a video")
    assert_bad_input(run("info", str(tmp_path / "absent.h5")), "not found")
    (tmp_path / "table.xlsx").write_bytes(b"PK\x03\x04")
    assert_bad_input(run("info", str(tmp_path / "table.xlsx")), "expected a pose file ending in one of")


def test_pose_convert_round_trip_and_bad_output(tmp_path):
    ds = random_predictions(n_frames=20, n_keypoints=3)
    src = save_poses(ds, tmp_path / "in.h5")
    result = run("pose", "convert", str(src), str(tmp_path / "out.slp"))
    assert result.returncode == 0, result.stderr
    result = run("pose", "convert", str(tmp_path / "out.slp"), str(tmp_path / "back.h5"))
    assert result.returncode == 0, result.stderr
    back = load_poses(tmp_path / "back.h5")
    np.testing.assert_allclose(back["position"].values, ds["position"].values, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(back["confidence"].values, ds["confidence"].values, atol=1e-6, equal_nan=True)
    assert_bad_input(run("pose", "convert", str(src), str(tmp_path / "out.docx")), "out.docx")
    assert not (tmp_path / "out.docx").exists()
    assert_bad_input(run("pose", "convert", str(src), str(src)), "different from the input")


def test_usage_errors_exit_2():
    result = run("pose", "convert")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.mark.realdata
def test_convert_shared_dlc_files_to_slp_and_back(shared_data, tmp_path):
    files = [
        shared_data / "dlc-examples/examples/openfield-Pranav-2018-10-30/labeled-data/m4s1/CollectedData_Pranav.h5",
        shared_data
        / "bsoid/yttri-bottomup_dlc-model/examples"
        / "raw_clip1DLC_resnet50_OpenFieldHighResApr8shuffle1_1030000.h5",
    ]
    for src in files:
        slp, back = tmp_path / f"{src.stem}.slp", tmp_path / f"{src.stem}.back.h5"
        assert run("pose", "convert", str(src), str(slp)).returncode == 0
        result = run("pose", "convert", str(slp), str(back))
        assert result.returncode == 0, result.stderr
        a, b = load_poses(src), load_poses(back)
        assert list(a["keypoints"].values) == list(b["keypoints"].values)
        np.testing.assert_allclose(a["position"].values, b["position"].values, atol=1e-6, equal_nan=True)
        np.testing.assert_allclose(a["confidence"].values, b["confidence"].values, atol=1e-6, equal_nan=True)


def test_simulate_writes_clips_sidecars_and_provenance(tmp_path):
    result = run("simulate", "hargreaves", "--out", str(tmp_path / "sim"), "--n-clips", "2", "--seed", "4")
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in (tmp_path / "sim").iterdir())
    stems = sorted({name.split(".")[0] for name in files if name.endswith(".mp4")})
    assert len(stems) == 2
    for stem in stems:
        for ext in (".mp4", ".h5", ".json", ".truth.json"):
            assert f"{stem}{ext}" in files
    assert "provenance.json" in files
    info = run("info", str(tmp_path / "sim" / f"{stems[0]}.mp4"), "--json")
    assert info.returncode == 0 and '"width": 160' in info.stdout


def test_simulate_unknown_assay_exits_2_naming_the_known_ones(tmp_path):
    assert_bad_input(run("simulate", "hargreves", "--out", str(tmp_path)), "hargreves", "hargreaves", "study")


def test_evoked_updown_writes_thresholds_and_rejects_bad_sequences(tmp_path):
    src = tmp_path / "responses.csv"
    src.write_text(
        "animal_id,paw,filament_g,response\n"
        + "".join(f"r1,left,{g},{r}\n" for g, r in zip([2, 4, 2, 4, 6, 4], "OXOOXX", strict=True))
        + "".join(f"r1,right,{g},{r}\n" for g, r in zip([2, 1, 0.6, 0.4], "1111", strict=True))
    )
    result = run("evoked", "updown", str(src), "--series", "chaplan8", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "out" / "thresholds.csv").read_text().splitlines()
    assert lines[0] == "animal_id,paw,threshold_g,pattern,flag"
    animal, paw, threshold, pattern, flag = lines[1].split(",")
    assert (animal, paw, pattern, flag) == ("r1", "left", "OXOOXX", "")
    assert float(threshold) == pytest.approx(10 ** (4.56 - 0.169 * (5.18 - 3.61) / 7) / 1e4)
    assert lines[2].endswith(",XXXX,all_responses")
    bad = tmp_path / "bad.csv"
    bad.write_text("animal_id,paw,filament_g,response\nr1,left,2,O\nr1,left,3,X\n")
    assert_bad_input(run("evoked", "updown", str(bad)), "filament 3 g is not in series chaplan8")
    assert_bad_input(run("evoked", "updown", str(src), "--series", "chaplan9"), "unknown filaments config")


def test_evoked_latency_from_a_simulated_clip(tmp_path):
    from behavior.synthetic import simulate_clip, write_clip

    clip = simulate_clip("hargreaves", seed=4, latencies_s=[2.0, None], trial_sides=["left", "left"], cutoff_s=6.0)
    paths = write_clip(clip, tmp_path)
    events = tmp_path / "events.csv"
    events.write_text(
        "time_s,kind,side,intensity\n" + "".join(f"{e.time_s},{e.kind},{e.side},\n" for e in clip.session.events)
    )
    args = ["evoked", "latency", str(paths["pose"]), "--events", str(events), "--paw", "left_hind"]
    result = run(*args, "--fps", "15", "--cutoff-s", "6", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    rows = [line.split(",") for line in (tmp_path / "out" / "trials.csv").read_text().splitlines()]
    assert rows[0][:5] == ["trial", "stimulus_time_s", "latency_s", "responded", "censored"]
    assert abs(float(rows[1][2]) - clip.truth["trials"][0]["latency_s"]) <= 2 / 15 + 1e-9
    assert rows[1][3:5] == ["True", "False"] and rows[2][2:5] == ["6.0", "False", "True"]
    assert_bad_input(run(*args, "--out", str(tmp_path / "o2")), "frame rate")


# Every command of every group: a group module that is not registered in behavior/cli/__init__.py,
# or a command that is lost from its group, fails here.
COMMAND_GROUPS = {
    (): [
        *("info", "score", "simulate", "demo", "assays", "serve", "worker", "watch", "burrowing"),
        *("gait", "place-preference"),
        *("pose", "evoked", "admin", "grimace", "behaviours"),
    ],
    ("pose",): ["convert", "train", "evaluate", "predict"],
    ("evoked",): ["updown", "latency", "paws"],
    ("admin",): ["create-lab", "create-token", "create-rig"],
    ("grimace",): ["score", "calibrate"],
    ("behaviours",): ["train", "apply"],
}


@pytest.mark.parametrize("group", list(COMMAND_GROUPS), ids=lambda g: " ".join(g) or "root")
def test_every_command_group_help_lists_its_commands(group):
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run([str(BIN), *group, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    commands = result.stdout.split("─ Commands ", 1)[1]
    # a command's name starts its row; a wrapped help line starts with blanks
    listed = re.findall(r"^│ (\S+) ", commands, flags=re.MULTILINE)
    assert listed == COMMAND_GROUPS[group]
