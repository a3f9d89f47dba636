"""Place preference end to end: ``painbattery score`` on the synthetic rig's sessions (poses, and video by
background subtraction with no pose model), the preference score from the pre-test / test pairs, the report's
occupancy plot, ``painbattery place-preference``, and bad input as one-line errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.fixtures.cli import cli

BIN = Path(sys.executable).parent / "painbattery"
RIG = Path(__file__).resolve().parents[2] / "configs" / "rigs" / "synthetic_two_chamber.yaml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    from behavior.synthetic import simulate_study

    folder = tmp_path_factory.mktemp("cpp")
    return simulate_study(
        folder, seed=4, animals_per_group=1, timepoints=("baseline", "d7"), assays=("place_preference",), n_jobs=2
    )


def _truth(study: Path) -> dict[str, dict]:
    rows = pd.read_csv(study, dtype=str, keep_default_na=False)
    return {sid: json.loads((study.parent / f"{sid}.truth.json").read_text()) for sid in rows["session_id"]}


def _wide(out: Path) -> pd.DataFrame:
    m = pd.read_csv(out / "measures.csv")
    return m.pivot_table(index="session_id", columns="measure", values="value", aggfunc="first", dropna=False)


def _manifest(study: Path, path: Path, *, drop: str | None = None, video_only: bool = False) -> Path:
    rows = pd.read_csv(study, dtype=str, keep_default_na=False)
    for col in ("video", "pose"):
        rows[col] = [str((study.parent / v).resolve()) if v else "" for v in rows[col]]
    if video_only:
        rows["pose"] = ""
    if drop:
        rows = rows[rows["session_id"] != drop]
    rows.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def scored(study, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("cpp_out")
    proc = run("score", study, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_score_from_poses_times_entries_and_preference_exact(study, scored):
    out, proc = scored
    truth = _truth(study)
    w = _wide(out)
    assert set(w.index) == set(truth)  # every session scored
    for sid, t in truth.items():
        assert w.loc[sid, "time_in_paired_s"] == pytest.approx(t["time_in_paired_s"], abs=1e-9)
        assert w.loc[sid, "time_in_paired_fraction"] == pytest.approx(t["paired_fraction"], abs=1e-9)
        assert w.loc[sid, "entries_paired"] == t["n_entries"]
        assert w.loc[sid, "latency_to_paired_s"] == pytest.approx(t["latency_to_first_entry_s"], abs=1e-9)
        if sid.split("_")[1] == "baseline":
            assert np.isnan(w.loc[sid].get("preference_score_s", np.nan))
        else:
            pre = truth[sid.replace("_d7_", "_baseline_")]
            assert w.loc[sid, "preference_score_s"] == pytest.approx(
                t["time_in_paired_s"] - pre["time_in_paired_s"], abs=1e-9
            )
    battery = pd.read_csv(out / "battery.csv")
    assert {"affective.preference_score_s", "affective.time_in_paired_fraction"} <= set(battery.columns)
    html = (out / "report.html").read_text()
    assert "Place preference: chamber occupancy" in html and "preference score (test - pre-test)" in html
    assert "no affective measure" not in proc.stderr


def test_background_subtraction_from_video_agrees_with_the_truth(study, tmp_path):
    from behavior.batch import score_study

    result = score_study(_manifest(study, tmp_path / "video.csv", video_only=True), tmp_path / "out")
    assert result.failures.empty and not result.notes
    truth = _truth(study)
    w = result.measures.pivot_table(index="session_id", columns="measure", values="value", dropna=False)
    q = result.quality.set_index("session_id")
    assert set(q["tracking_source"]) == {"background_subtraction"} and set(q["pose_source"]) == {"none"}
    for sid, t in truth.items():
        assert abs(w.loc[sid, "time_in_paired_s"] - t["time_in_paired_s"]) <= 2.0
        assert abs(w.loc[sid, "time_in_unpaired_s"] - t["time_in_unpaired_s"]) <= 2.0
        assert w.loc[sid, "entries_paired"] == t["n_entries"]
        assert q.loc[sid, "samples_untracked"] == 0


def test_a_test_without_its_pretest_is_nan_with_a_note(study, scored, tmp_path):
    from behavior.batch import score_study

    gone = pd.read_csv(study)["session_id"].iloc[0]  # A01's baseline (pre-test)
    assert "baseline" in gone
    out = tmp_path / "out"
    shutil.copytree(scored[0] / "cache", out / "cache")  # the other sessions come from the cache
    result = score_study(_manifest(study, tmp_path / "m.csv", drop=gone), out)
    assert result.n_scored == 0
    test_id = gone.replace("_baseline_", "_d7_")
    assert len(result.notes) == 2 and all(n.startswith(f"session {test_id} (group") for n in result.notes)
    assert "expected a pre-test session of the same animal at timepoint 'baseline', got none" in result.notes[0]
    m = result.measures
    row = m[(m["session_id"] == test_id) & (m["measure"] == "preference_score_s")].iloc[0]
    assert np.isnan(row["value"]) and row["quality"] == "no_pretest"


def test_cli_on_a_flickering_video_with_its_pretest(tmp_path, capsys, monkeypatch):
    from behavior.synthetic.base import simulate_clip, write_clip

    test = simulate_clip("place_preference", seed=21, time_in_paired_s=38.0, n_entries=5, duration_s=60.0,
                         boundary_flicker_frames=4, name="test")  # fmt: skip
    pre = simulate_clip("place_preference", seed=22, time_in_paired_s=29.0, n_entries=4, duration_s=60.0, name="pre")
    write_clip(test, tmp_path)
    write_clip(pre, tmp_path)
    out = tmp_path / "out"
    code, stdout, stderr = cli(capsys, monkeypatch, "place-preference", tmp_path / "test.mp4", "--zones", RIG,
                               "--out", out, "--paired", "right", "--pretest", tmp_path / "pre.h5", "--fps", 5,
                               "--px-per-mm", 0.75)  # fmt: skip
    assert code == 0, stderr
    m = pd.read_csv(out / "measures.csv").set_index("measure")["value"]
    assert test.truth["n_entries_raw"] > 5 and m["entries_paired"] == 5
    assert abs(m["time_in_paired_s"] - test.truth["time_in_paired_s"]) <= 2.0
    expected = test.truth["time_in_paired_s"] - pre.truth["time_in_paired_s"]
    assert abs(m["preference_score_s"] - expected) <= 2.0
    frames = pd.read_csv(out / "frames.csv")
    assert len(frames) == 300 and {"zone_raw", "zone", "blob_area_px"} <= set(frames.columns)
    assert "body centre from background subtraction (every 1 frame(s), 5 per s)" in " ".join(stdout.split())


def _zones_file(path: Path, zones: dict) -> Path:
    zones = dict(zones)
    size = zones.pop("frame_size_px", None)
    path.write_text(yaml.safe_dump({"zones": zones, **({"frame_size_px": size} if size else {})}))
    return path


LEFT = [[10, 10], [160, 10], [160, 150], [10, 150]]
WIDE_LEFT = [[10, 10], [170, 10], [170, 150], [10, 150]]
RIGHT = [[160, 10], [310, 10], [310, 150], [160, 150]]
RIGHT_PAST_THE_FRAME = [[160, 10], [400, 10], [400, 150], [160, 150]]


@pytest.mark.parametrize(
    ("zones", "extra", "message"),
    [
        ({"left": WIDE_LEFT, "right": RIGHT}, (), "overlap by"),
        ({"left": LEFT, "right": RIGHT_PAST_THE_FRAME}, (), "expected vertices inside the frame of"),
        ({"left": LEFT, "right": RIGHT, "frame_size_px": [640, 480]}, (), "zones drawn on a 640x480 frame"),
        (None, ("--pretest", "x.h5"), "--pretest: expected --paired"),
        (None, ("--paired", "middle"), "expected a zone among"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(study, tmp_path, capsys, monkeypatch, zones, extra, message):
    video = study.parent / f"{pd.read_csv(study)['session_id'].iloc[0]}.mp4"
    zfile = _zones_file(tmp_path / "z.yaml", zones) if zones else RIG
    code, _, stderr = cli(
        capsys, monkeypatch, "place-preference", video, "--zones", zfile, "--out", tmp_path / "o", *extra
    )
    assert code == 2, stderr
    assert message in stderr and len(stderr.strip().splitlines()) == 1


@pytest.mark.realdata
def test_empty_chamber_clip_finds_no_animal(shared_data):
    """ezTrack's empty-chamber calibration clip: sensor noise and compression are not an animal."""
    from behavior.features.place_preference import PlacePreferenceConfig, Zones, score_track
    from behavior.features.place_preference.tracking import TrackingConfig, track_video

    clip = shared_data / "eztrack" / "PracticeVideos" / "Freezing_calibration.wmv"
    track = track_video(clip, TrackingConfig())
    assert len(track.frames) == 298 and track.frames_failed == 0
    assert np.isnan(track.xy_px).mean() >= 0.95
    zones = Zones.from_mapping({"zones": {"a": [[0, 0], [160, 0], [160, 240], [0, 240]],
                                          "b": [[160, 0], [320, 0], [320, 240], [160, 240]]}})  # fmt: skip
    result = score_track(track.xy_px, track.frames, track.dt_s, zones, "a", "b", PlacePreferenceConfig())
    assert {m.quality for m in result.measures} == {"tracking_lost"}
    assert all(np.isnan(m.value) for m in result.measures)


def test_background_subtraction_inside_a_roi_of_a_wider_video(tmp_path):
    """One camera, two boxes: the session's roi picks its box; zones are relative to the roi."""
    from behavior.features.place_preference import extract_place_preference
    from behavior.session import Session
    from behavior.synthetic.base import simulate_clip
    from pose_models.video import write_video

    clip = simulate_clip("place_preference", seed=31, time_in_paired_s=25.0, n_entries=3, duration_s=40.0)
    other = simulate_clip("place_preference", seed=32, time_in_paired_s=10.0, n_entries=2, duration_s=40.0)
    wide = np.concatenate([other.frames, clip.frames], axis=2)  # 640x160: this session's box on the right
    write_video(tmp_path / "two_boxes.mp4", wide, clip.session.fps, crf=23)
    session = Session(session_id="s", animal_id="A", group="G", timepoint="d7", assay="place_preference",
                      fps=clip.session.fps, video=tmp_path / "two_boxes.mp4", roi="320,0,320,160")  # fmt: skip
    from behavior.assays import get_assay

    config = get_assay("place_preference").load_config(["paired_chamber=right"])
    result = extract_place_preference(None, session, config)
    m = {x.measure: x.value for x in result.measures}
    assert abs(m["time_in_paired_s"] - clip.truth["time_in_paired_s"]) <= 2.0
    assert m["entries_paired"] == clip.truth["n_entries"]
    frames = result.tables["place_preference_frames"]
    assert frames["x_px"].min() > 320  # full-frame pixels


@pytest.mark.slow
def test_the_service_pairs_uploaded_sessions_into_the_battery(study, tmp_path):
    """Each job scores one session; the study's battery and report pair the pre-test and test."""
    import httpx

    from tests.fixtures.service import Server
    from tests.integration.test_service import upload, wait_job

    rows = pd.read_csv(study, dtype=str, keep_default_na=False).head(2)  # A01: baseline (pre-test) and d7
    truth = _truth(study)
    with Server(tmp_path / "svc", "sqlite") as server:
        _, headers = server.lab("lab-cpp")
        sid = httpx.post(f"{server.url}/api/v1/studies", json={"name": "CPP"}, headers=headers).json()["id"]
        jobs = []
        for row in rows.to_dict("records"):
            meta = {k: row[k] for k in ("session_id", "animal_id", "group", "timepoint", "assay", "side")}
            meta |= {"fps": float(row["fps"]), "px_per_mm": float(row["px_per_mm"])}
            r = upload(server, headers, sid, study.parent / row["pose"], meta)
            assert r.status_code == 201, r.text
            jobs.append(r.json()["job_id"])
        assert server.worker("--idle-exit").wait(timeout=300) == 0
        assert all(wait_job(server, headers, j)["status"] == "done" for j in jobs)
        battery = httpx.get(f"{server.url}/api/v1/studies/{sid}/battery", headers=headers).json()
        test_row = next(b for b in battery if b["timepoint"] == "d7")
        pre, test = (truth[s] for s in rows["session_id"])
        assert test_row["affective.preference_score_s"] == pytest.approx(
            test["time_in_paired_s"] - pre["time_in_paired_s"], abs=1e-9
        )
        report = httpx.get(f"{server.url}/api/v1/studies/{sid}/report", headers=headers, timeout=120)
        assert report.status_code == 200 and "Place preference: chamber occupancy" in report.text
