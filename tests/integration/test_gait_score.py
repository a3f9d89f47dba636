"""Gait joins the battery: ``painbattery score`` on the synthetic rig's gait sessions, and the gait CLI."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def gait_study(tmp_path_factory):
    from behavior.synthetic import simulate_study

    folder = tmp_path_factory.mktemp("gait_study")
    manifest = simulate_study(
        folder, seed=7, animals_per_group=1, timepoints=("baseline", "d7"), assays=("gait",), n_jobs=2
    )
    return manifest


def test_score_scores_every_gait_session_with_the_planted_ratios(gait_study, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "behavior.cli", "score", str(gait_study), "--out", str(out), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    measures = pd.read_csv(out / "measures.csv")
    manifest = pd.read_csv(gait_study)
    assert set(measures["session_id"]) == set(manifest["session_id"])
    assert (pd.read_csv(out / "failures.csv").empty) if (out / "failures.csv").stat().st_size > 1 else True
    truth = pd.read_csv(gait_study.parent / "study_truth.csv").set_index("session_id")
    wide = measures.pivot(index="session_id", columns="measure", values="value")
    for sid, row in wide.iterrows():
        t = truth.loc[sid]
        area = t["gait_ipsi_hind_print_area_mm2"] / t["gait_contra_hind_print_area_mm2"]
        stance = t["gait_ipsi_hind_stance_duration_s"] / t["gait_contra_hind_stance_duration_s"]
        assert row["print_area_ratio_ipsi_contra"] == pytest.approx(area, rel=0.10), sid
        assert row["stance_ratio_ipsi_contra"] == pytest.approx(stance, rel=0.10), sid
        assert row["stride_length_mm"] == pytest.approx(t["gait_stride_length_mm"], rel=0.05), sid
        assert row["body_speed_mm_s"] == pytest.approx(t["gait_speed_mm_s"], rel=0.05), sid
    report = (out / "report.html").read_text()
    assert "Gait: footfall diagram per group" in report
    assert "Gait: ipsilateral / contralateral hind paw ratios over time" in report
    battery = pd.read_csv(out / "battery.csv")
    assert {"spontaneous.print_area_ratio_ipsi_contra", "spontaneous.stance_ratio_ipsi_contra"} <= set(battery.columns)


def test_gait_cli_writes_tables_and_refuses_bad_input(gait_study, tmp_path, monkeypatch, capsys):
    from behavior.cli import main

    manifest = pd.read_csv(gait_study)
    row = manifest.iloc[0]
    pose = gait_study.parent / row["pose"]
    video = gait_study.parent / row["video"]
    out = tmp_path / "cli"
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "behavior.cli",
            "gait",
            str(pose),
            "--video",
            str(video),
            "--fps",
            str(row["fps"]),
            "--px-per-mm",
            str(row["px_per_mm"]),
            "--side",
            str(row["side"]),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    for name in ("gait_stances", "gait_strides", "gait_bouts", "gait_summary", "measures", "quality"):
        assert (out / f"{name}.csv").is_file(), name
    assert (out / "footfall.png").stat().st_size > 1000
    m = pd.read_csv(out / "measures.csv").set_index("measure")["value"]
    assert np.isfinite(m["print_area_ratio_ipsi_contra"]) and math.isfinite(m["phase_lh_rh"])
    bad = [
        (("--fps", "0", "--px-per-mm", "2.5"), "fps > 0"),
        (("--fps", "60", "--px-per-mm", "-1"), "px_per_mm > 0"),
        (("--fps", "60", "--px-per-mm", "2.5", "--mode", "treadmill"), "--mode walkway"),
        (("--fps", "60", "--px-per-mm", "2.5", "--side", "up"), "--side left or right"),
        (
            ("--fps", "60", "--px-per-mm", "2.5", "--set", "paw_keypoints.left_hind=LH_toe"),
            "needs the paw keypoints left_hind (LH_toe)",
        ),
        (("--fps", "60", "--px-per-mm", "2.5", "--video", str(tmp_path / "none.mp4")), "video not found"),
    ]
    for args, message in bad:
        monkeypatch.setattr(sys, "argv", ["painbattery", "gait", str(pose), *args, "--out", str(out)])
        with pytest.raises(SystemExit) as exc:
            main()
        err = capsys.readouterr().err
        assert exc.value.code == 2, (args, err)
        assert message in err and len(err.strip().splitlines()) == 1, err
