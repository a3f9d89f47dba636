"""Batch scoring of a simulated study: effects recovered, manifest errors first, resume, executors agree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from behavior.pipeline import MEASURES_COLUMNS

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent / "painbattery"
EVOKED = ("hargreaves", "von_frey")


def run(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=600, **kw)


def _rows(study: Path) -> pd.DataFrame:
    """The study's manifest rows with absolute paths, so a subset can be written anywhere."""
    rows = pd.read_csv(study, dtype=str, keep_default_na=False)
    for col in ("video", "pose", "events"):
        rows[col] = [str((Path(study).parent / v).resolve()) if v else "" for v in rows[col]]
    return rows


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from behavior.synthetic import simulate_study

    folder = tmp_path_factory.mktemp("study")
    return simulate_study(
        folder, seed=3, animals_per_group=4, timepoints=("baseline", "d7", "d14"), assays=EVOKED, n_jobs=2
    )


@pytest.fixture(scope="module")
def scored(study, tmp_path_factory):
    out = tmp_path_factory.mktemp("scored")
    result = run("score", str(study), "--out", str(out), "--workers", "2")
    assert result.returncode == 0, result.stderr
    return out


def test_outputs_and_the_measures_schema(scored, study):
    for name in (
        "report.html",
        "battery.csv",
        "measures.csv",
        "stats.csv",
        "quality.csv",
        "provenance.json",
        "measures.parquet",
        "battery.parquet",
    ):
        assert (scored / name).is_file(), name
    measures = pd.read_csv(scored / "measures.csv")
    assert measures.columns.tolist() == list(MEASURES_COLUMNS)
    assert set(measures["domain"]) == {"evoked"}
    n_sessions = len(pd.read_csv(study))
    assert measures["session_id"].nunique() == n_sessions == 3 * 4 * 3 * 2
    battery = pd.read_csv(scored / "battery.csv")
    assert len(battery) == 12 * 3 and "evoked.latency_ipsi_s" in battery.columns
    html = (scored / "report.html").read_text()
    assert "no spontaneous measure" in html and "data:image/png;base64," in html
    # every trial is counted per measure by outcome, and the methods say which tests are corrected together
    counts = pd.read_csv(scored / "trial_counts.csv")
    assert set(counts["measure"]) >= {"latency_ipsi_s", "latency_contra_s", "threshold_ipsi_g"}
    outcomes = counts[["responded", "censored", "no_baseline", "recording_ended", "untracked"]].sum(axis=1)
    assert (outcomes == counts["trials"]).all()
    assert "all pairwise group comparisons at all timepoints" in html and "left out of the mean" in html
    # these sessions come with pose files: the quality table says so (it used to say "predicted")
    assert set(pd.read_csv(scored / "quality.csv")["pose_source"]) == {"file"}


def test_planted_effects_are_recovered(scored, study):
    truth = pd.read_csv(Path(study).parent / "study_truth.csv")
    battery = pd.read_csv(scored / "battery.csv")
    d14 = battery[battery["timepoint"] == "d14"].groupby("group")
    latency = d14["evoked.latency_ipsi_s"].mean()
    threshold = d14["evoked.threshold_ipsi_g"].median()
    # CCI: hypersensitive (shorter latency, lower threshold); CCI+MSC in between; Control highest
    assert latency["CCI"] < latency["CCI+MSC"] < latency["Control"]
    assert threshold["CCI"] < threshold["Control"]
    # measured latencies follow the planted ones
    lat_truth = truth[truth["assay"] == "hargreaves"]
    assert not lat_truth.empty
    stats = pd.read_csv(scored / "stats.csv")
    lmm = stats[(stats["measure"] == "latency_ipsi_s") & (stats["analysis"] == "lmm_group_x_time")].iloc[0]
    assert lmm["p"] < 0.01 and bool(lmm["significant"])
    base = stats[(stats["measure"] == "latency_ipsi_s") & (stats["timepoint"] == "baseline")]
    assert not base["significant"].any()  # no group difference before the injury


def test_every_session_scores_its_planted_truth(scored, study):
    """Each session's scored measures against ``study_truth.csv`` (issue 11: the demo still recovers
    its planted effects): the Hargreaves latency of each paw within 2 frames of its planted trial
    latency, every trial responded and counted, and the von Frey threshold of each paw exactly the
    up-down threshold of its planted filaments and responses."""
    from behavior.features.von_frey import FilamentSeries, updown_threshold

    truth = pd.read_csv(Path(study).parent / "study_truth.csv").set_index("session_id")
    measures = pd.read_csv(scored / "measures.csv")
    value = measures.set_index(["session_id", "measure"])["value"]
    fps = pd.read_csv(study).set_index("session_id")["fps"]
    cutoff = 20.0  # configs/assays/hargreaves.yaml
    hargreaves = truth[truth["assay"] == "hargreaves"]
    assert len(hargreaves) == 36
    errors = []
    for sid, row in hargreaves.iterrows():
        planted = dict(zip(("ipsi", "contra"), json.loads(row["hargreaves_trial_latencies_s"]), strict=True))
        for paw, latency in planted.items():
            errors.append(abs(value[(sid, f"latency_{paw}_s")] - min(latency, cutoff)) * fps[sid])
    assert max(errors) <= 2.0, sorted(errors)[-5:]
    counts = pd.read_csv(scored / "trial_counts.csv")
    harg = counts[counts["measure"].isin(["latency_ipsi_s", "latency_contra_s"])]
    assert harg["trials"].sum() == 72 and harg[["no_baseline", "recording_ended", "untracked"]].sum().sum() == 0
    series = FilamentSeries.load("chaplan8")
    von_frey = truth[truth["assay"] == "von_frey"]
    assert len(von_frey) == 36
    for sid, row in von_frey.iterrows():
        for paw in ("ipsi", "contra"):
            forces = json.loads(row[f"von_frey_{paw}_filaments_g"])
            want = updown_threshold(forces, list(row[f"von_frey_{paw}_pattern"]), series).threshold_g
            assert value[(sid, f"threshold_{paw}_g")] == pytest.approx(want, rel=1e-9, nan_ok=True), (sid, paw)


def test_bad_manifest_fails_before_any_work(study, tmp_path):
    rows = pd.read_csv(study, dtype=str, keep_default_na=False)
    rows.loc[1, "assay"] = "hargraves"
    rows.loc[3, "pose"] = "missing.h5"
    rows.loc[5, "session_id"] = rows.loc[4, "session_id"]
    bad = Path(study).parent / "bad_manifest.csv"
    rows.to_csv(bad, index=False)
    result = run("score", str(bad), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and "line 3: assay: unknown assay 'hargraves'" in line
    assert "line 5:" in line and "missing.h5" in line and "line 7: duplicate session_id" in line
    assert not (tmp_path / "out").exists()


def test_timepoint_that_cannot_be_placed_fails_before_any_work(study, tmp_path):
    rows = _rows(study)
    rows.loc[rows["timepoint"] == "d7", "timepoint"] = "post-op"
    bad = tmp_path / "manifest.csv"
    rows.to_csv(bad, index=False)
    result = run("score", str(bad), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "['post-op'] that cannot be placed" in result.stderr
    assert not (tmp_path / "out" / "cache").exists()


def test_killed_run_resumes_with_only_the_unfinished_sessions(study, tmp_path):
    rows = _rows(study).iloc[:10].reset_index(drop=True)
    stuck = 6  # this session's pose file is a pipe nobody writes to: the run blocks there, like a hung disk
    real = Path(rows.loc[stuck, "pose"])
    fifo = tmp_path / "stuck.h5"
    os.mkfifo(fifo)
    rows.loc[stuck, "pose"] = str(fifo)
    manifest = tmp_path / "manifest.csv"
    rows.to_csv(manifest, index=False)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [str(BIN), "score", str(manifest), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / "cache").glob("*.json"))) < stuck:
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)  # killed half way, with no chance to clean up
    proc.wait()
    assert len(list((out / "cache").glob("*.json"))) == stuck
    fifo.unlink()
    fifo.write_bytes(real.read_bytes())
    result = run("score", str(manifest), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"{len(rows) - stuck} session(s) scored, {stuck} from the cache, 0 failed" in " ".join(result.stdout.split())
    again = run("score", str(manifest), "--out", str(out))
    assert f"0 session(s) scored, {len(rows)} from the cache" in " ".join(again.stdout.split())


def test_one_failing_session_does_not_stop_the_others(study, tmp_path):
    rows = _rows(study).iloc[:4].copy()
    broken = tmp_path / "broken.h5"
    broken.write_text("not a pose file")
    rows.loc[rows.index[1], "pose"] = str(broken)
    manifest = tmp_path / "manifest.csv"
    rows.to_csv(manifest, index=False)
    result = run("score", str(manifest), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert failures["session_id"].tolist() == [rows.iloc[1]["session_id"]]
    assert "broken.h5" in failures["error"][0]
    assert pd.read_csv(tmp_path / "out" / "measures.csv")["session_id"].nunique() == 3


def test_processes_and_dask_give_identical_tables(study, tmp_path):
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    from behavior.batch import score_study

    rows = _rows(study).iloc[:12]
    manifest = tmp_path / "manifest.csv"
    rows.to_csv(manifest, index=False)
    local = score_study(manifest, tmp_path / "local", workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask = score_study(manifest, tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert dask.n_scored == len(rows)
    pd.testing.assert_frame_equal(local.measures, dask.measures)
    pd.testing.assert_frame_equal(local.quality, dask.quality)
