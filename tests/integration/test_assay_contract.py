"""The assay contract: a new assay is a module that registers a spec, and the spine runs it unchanged.

A toy assay defined here (mean brightness of a region; it needs only the video, no poses, no model)
is scored through ``painbattery score``, the service worker and ``watch``, with no change to
``behavior/pipeline.py``, ``behavior/batch.py`` or ``service/``: the plug-in is named in
``PAINBATTERY_ASSAY_MODULES`` and every process loads it. The spine names no assay (checked on its
source), and bad input keeps its clear one-line errors.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "painbattery"
GRAYS = {"t1": 40, "t2": 120, "t3": 200}  # the planted brightness of each toy session's video

TOY_MODULE = '''
"""A toy assay: mean brightness of a region of the video (needs no poses)."""
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from behavior.assays import AssaySpec, MeasureSpec, ReportItem, register_assay
from behavior.features.base import AssayResult, Measure


class ToyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: list[int] = Field(default_factory=lambda: [0, 0, 16, 16])


def extract(poses, session, config, *, video=None):
    from pose_models.video import VideoReader

    assert poses is None  # the orchestrator predicts nothing for an assay that needs no poses
    x, y, w, h = config.region
    with VideoReader(video, gray=True) as reader:
        means = [float(frame[y : y + h, x : x + w].mean()) for frame in reader]
    return AssayResult(
        measures=[Measure("brightness_mean", float(np.mean(means)), "gray", n=len(means))],
        quality={"frames_read": len(means)},
    )


def report(context):
    toy = context.measures[context.measures["assay"] == "toy_brightness"]
    rows = tuple((r.session_id, round(r.value, 1)) for r in toy.itertuples())
    return [ReportItem(title="Toy brightness per session", columns=("session", "gray"), rows=rows)]


register_assay(
    AssaySpec(
        name="toy_brightness",
        domain="affective",
        config_model=ToyConfig,
        extract=extract,
        measures=(MeasureSpec("brightness_mean", "gray", "mean brightness of the region"),),
        needs_poses=False,
        needs_video=True,
        config_file=Path(__file__).with_name("toy_brightness.yaml"),
        quality_figures=("frames_read",),
        methods=lambda config: f"Toy: mean brightness of region {config.region}.",
        report=report,
        description="mean brightness of a region (a test plug-in)",
    )
)
'''


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict:
    """The plug-in module on a path of its own, three gray videos, and the env every process needs."""
    from pose_models.video import write_video

    root = tmp_path_factory.mktemp("toy")
    plugins = root / "plugins"
    plugins.mkdir()
    (plugins / "toy_brightness.py").write_text(TOY_MODULE)
    (plugins / "toy_brightness.yaml").write_text("region: [4, 4, 16, 16]\n")
    videos = {}
    for sid, gray in GRAYS.items():
        frames = [np.full((32, 32, 3), gray, np.uint8) for _ in range(10)]
        videos[sid] = write_video(root / f"{sid}.mp4", frames, fps=10.0)
    env = {
        **os.environ,
        "PAINBATTERY_ASSAY_MODULES": "toy_brightness",
        "PYTHONPATH": os.pathsep.join([str(plugins), str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return {"root": root, "videos": videos, "env": env}


def toy_session(sid: str, video: Path, group: str = "G") -> dict:
    return {"session_id": sid, "animal_id": sid, "group": group, "timepoint": "baseline", "assay": "toy_brightness"} | {
        "fps": 10.0,
        "video": str(video),
    }


def run(args: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=300, **kw)


def test_a_toy_assay_is_scored_by_painbattery_score_with_no_poses_and_no_model(toy, tmp_path):
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame([toy_session(s, v, group=f"G{i}") for i, (s, v) in enumerate(toy["videos"].items())]).to_csv(
        manifest, index=False
    )
    out = tmp_path / "out"
    result = run(["score", str(manifest), "--out", str(out)], toy["env"])
    assert result.returncode == 0, result.stderr
    measures = pd.read_csv(out / "measures.csv")
    assert set(measures["assay"]) == {"toy_brightness"} and set(measures["domain"]) == {"affective"}
    for row in measures.itertuples():
        assert row.measure == "brightness_mean" and abs(row.value - GRAYS[row.session_id]) <= 2.0, row
        assert row.n == 10
    quality = pd.read_csv(out / "quality.csv")
    assert quality["frames_read"].tolist() == [10, 10, 10] and set(quality["pose_source"]) == {"none"}
    assert not (out / "poses").exists() or not any((out / "poses").iterdir())  # nothing was predicted
    battery = pd.read_csv(out / "battery.csv")
    assert "affective.brightness_mean" in battery.columns
    html = (out / "report.html").read_text()
    section = html.split("<h2>Affective assays</h2>", 1)[1].split("<h2>", 1)[0]
    assert "Toy brightness per session" in section and "t3" in section
    assert "Toy: mean brightness of region [4, 4, 16, 16]." in html  # its methods sentence, its config file
    assert "no affective measure" not in result.stderr  # the toy's domain counts for the battery
    listed = json.loads(run(["assays", "--json"], toy["env"]).stdout)
    toy_row = next(r for r in listed if r["assay"] == "toy_brightness")
    assert toy_row["domain"] == "affective" and toy_row["inputs"] == ["video"]
    assert toy_row["measures"] == [
        {"measure": "brightness_mean", "unit": "gray", "description": "mean brightness of the region"}
    ]


def test_a_toy_assay_is_scored_by_the_service_worker(toy, tmp_path):
    from tests.integration.test_service import Server

    saved = dict(os.environ)
    os.environ.update({k: toy["env"][k] for k in ("PAINBATTERY_ASSAY_MODULES", "PYTHONPATH")})
    try:
        srv = Server(tmp_path, "sqlite")  # the server and its workers inherit the plug-in
    finally:
        os.environ.clear()
        os.environ.update(saved)
    worker = None
    try:
        lab_id = int(srv.cli("admin", "create-lab", "toy-lab"))
        headers = {"Authorization": f"Bearer {srv.cli('admin', 'create-token', str(lab_id))}"}
        study = httpx.post(f"{srv.url}/api/v1/studies", json={"name": "toy"}, headers=headers).json()["id"]
        meta = {k: v for k, v in toy_session("t2", toy["videos"]["t2"]).items() if k != "video"}
        with toy["videos"]["t2"].open("rb") as fh:
            r = httpx.post(
                f"{srv.url}/api/v1/studies/{study}/sessions",
                headers=headers,
                files={"file": ("t2.mp4", fh)},
                data={"metadata": json.dumps(meta)},
                timeout=60,
            )
        assert r.status_code == 201, r.text
        worker = srv.worker("--idle-exit")
        assert worker.wait(timeout=180) == 0
        job = httpx.get(f"{srv.url}/api/v1/jobs/{r.json()['job_id']}", headers=headers).json()
        assert job["status"] == "done", job
        measures = httpx.get(f"{srv.url}/api/v1/studies/{study}/measures", headers=headers).json()
        assert [m["measure"] for m in measures] == ["brightness_mean"]
        assert abs(measures[0]["value"] - GRAYS["t2"]) <= 2.0 and measures[0]["domain"] == "affective"
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        srv.stop()


def test_a_toy_assay_is_scored_from_a_watch_folder(toy, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    video = folder / "rec1.mp4"
    video.write_bytes(toy["videos"]["t1"].read_bytes())
    sidecar = {k: v for k, v in toy_session("w1", video).items() if k != "video"}
    (folder / "rec1.json").write_text(json.dumps(sidecar))
    out = tmp_path / "out"
    result = run(["watch", str(folder), "--out", str(out), "--once", "--settle-seconds", "0.2"], toy["env"])
    assert result.returncode == 0 and "processed 1 recording(s)" in result.stdout, result.stdout + result.stderr
    cached = json.loads((out / "cache" / "w1.json").read_text())
    (measure,) = cached["measures"]
    assert measure["measure"] == "brightness_mean" and abs(measure["value"] - GRAYS["t1"]) <= 2.0


def test_the_spine_names_no_assay():
    """pipeline, batch, report and the service run any registered assay without naming one."""
    from behavior.synthetic import SIMULATORS

    names = {"hargreaves", "von_frey", "von frey", "paws", *SIMULATORS, "spontaneous_behaviour"}
    words = names | {n.replace("_", " ") for n in names} | {"withdrawal", "filament", "min_confidence", "cutoff_s"}
    files = [
        REPO / "behavior/pipeline.py",
        REPO / "behavior/batch.py",
        REPO / "behavior/report.py",
        REPO / "behavior/templates/report.html",
        *sorted((REPO / "service").rglob("*.py")),
    ]
    found = []
    for path in files:
        text = path.read_text().lower()
        found += [f"{path.relative_to(REPO)}: {w}" for w in sorted(words) if re.search(rf"\b{re.escape(w)}\b", text)]
    assert found == []


def test_missing_inputs_unknown_assays_typos_and_all_failed_studies_are_one_clear_line(toy, tmp_path):
    from behavior.synthetic import simulate_clip, write_clip

    clip = simulate_clip("hargreaves", seed=5, latencies_s=[3.0], session_fields={"side": "left"})
    paths = write_clip(clip, tmp_path / "clip")
    env = toy["env"]

    def score(rows: list[dict], *extra: str) -> subprocess.CompletedProcess:
        manifest = tmp_path / "m.csv"
        pd.DataFrame(rows).to_csv(manifest, index=False)
        return run(["score", str(manifest), "--out", str(tmp_path / "o"), *extra], env)

    base = {"session_id": "h1", "animal_id": "a1", "group": "G", "timepoint": "baseline", "fps": clip.session.fps}
    cases = [
        # the toy reads the video: a pose file alone will not do
        ([{**base, "assay": "toy_brightness", "pose": str(paths["pose"])}], (), "needs a video"),
        ([{**base, "assay": "hargreves", "pose": str(paths["pose"])}], (), "expected one of ["),
        (
            [{**base, "assay": "hargreaves", "pose": str(paths["pose"])}],
            ("--set", "withdrawal.noise_factr=3"),
            "noise_factr",
        ),
        (
            [{**base, "assay": "hargreaves", "pose": str(paths["pose"])}],
            ("--model", "hargreves=/nope"),
            "unknown assay",
        ),
    ]
    for rows, extra, fragment in cases:
        result = score(rows, *extra)
        assert result.returncode == 2 and fragment in result.stderr, (fragment, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 or "error:" in result.stderr.strip().splitlines()[-1]
    assert "toy_brightness" in score([cases[1][0][0]]).stderr  # the registered assays are named, plug-ins too
    # every session fails at scoring (its poses lack the paw the config names): why, per session, exit 2
    lacking = tmp_path / "lacking.nc"
    from pose_models.io import load_poses, save_poses
    from pose_models.poses import select

    poses = load_poses(paths["pose"], fps=clip.session.fps)
    save_poses(select(poses, keypoints=[str(k) for k in poses["keypoints"].values if k != "left_hind"]), lacking)
    rows = [{**base, "session_id": f"h{i}", "assay": "hargreaves", "pose": str(lacking)} for i in range(2)]
    result = score(rows)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no session could be scored: h0: ") and "h1: " in last and "left_hind" in last
