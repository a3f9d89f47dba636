"""Burrowing through the spine: a simulated study's burrowing sessions scored by ``painbattery score``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent / "painbattery"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from behavior.synthetic import simulate_study

    folder = tmp_path_factory.mktemp("burrowing_study")
    return simulate_study(
        folder, seed=4, animals_per_group=1, timepoints=("baseline", "d7"), assays=("burrowing",), n_jobs=2
    )


def _tube_roi(study: Path) -> list[int]:
    first = pd.read_csv(study)["session_id"].iloc[0]
    return json.loads((study.parent / f"{first}.truth.json").read_text())["tube_roi"]


def test_score_recovers_the_planted_burrowing(study, tmp_path):
    # the rig names its tube in the manifest (roi), drawn once: no config override needed
    rois = pd.read_csv(study)["roi"]
    assert (rois == ",".join(str(v) for v in _tube_roi(study))).all()
    out = tmp_path / "out"
    result = run("score", str(study), "--out", str(out))
    assert result.returncode == 0, result.stderr
    measures = pd.read_csv(out / "measures.csv")
    truth = pd.read_csv(study.parent / "study_truth.csv")
    truth = truth.set_index("session_id")
    end = measures[measures["measure"] == "displaced_percent"].set_index("session_id")["value"]
    assert len(end) == len(truth) == 6
    assert (end - truth.loc[end.index, "burrowing_displaced_percent"]).abs().max() <= 5
    lat = measures[measures["measure"] == "latency_to_start_min"].set_index("session_id")["value"]
    assert (lat - truth.loc[lat.index, "burrowing_latency_s"] / 60).abs().max() <= 1
    assert set(measures["domain"]) == {"spontaneous"}
    for sid in end.index:
        frames = pd.read_csv(out / "sessions" / sid / "burrowing_frames.csv")
        assert {"time_s", "fill_fraction", "occluded"} <= set(frames.columns)
    quality = pd.read_csv(out / "quality.csv")
    assert (quality["frames_sampled"] > 0).all() and "frames_occluded" in quality
    html = (out / "report.html").read_text()
    assert "Burrowing: substrate displaced over time" in html


def test_a_tube_region_outside_the_frame_is_one_line_exit_2(study, tmp_path):
    video = study.parent / pd.read_csv(study)["video"].iloc[0]
    result = run("burrowing", str(video), "--roi", "300,10,50,20", "--fps", "0.05", "--out", str(tmp_path))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "expected a tube region inside the" in lines[0], result.stderr


def test_the_burrowing_command_writes_frames_and_session_tables(study, tmp_path):
    roi = ",".join(str(v) for v in _tube_roi(study))
    video = study.parent / pd.read_csv(study)["video"].iloc[0]
    result = run("burrowing", str(video), "--roi", roi, "--fps", "0.05", "--start-g", "200", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    measures = pd.read_csv(tmp_path / "measures.csv")
    assert {"displaced_percent", "displaced_g", "latency_to_start_min"} <= set(measures["measure"])
    assert len(pd.read_csv(tmp_path / "burrowing_frames.csv")) > 100
    assert (tmp_path / "provenance.json").is_file()
