"""The upload service with a real uvicorn server on 127.0.0.1 and a real database (SQLite, and PostgreSQL
when PAINBATTERY_TEST_POSTGRES_URL reaches one; a database of its own per server): uploads, jobs and workers,
labs and tokens, rig hooks, bad input, a database that cannot be reached."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.service import BIN, DATABASES, Server

pytestmark = pytest.mark.slow
__all__ = ["BIN", "DATABASES", "Server", "metadata", "rig_headers", "upload", "wait_job"]  # used by the other suites


@pytest.fixture(scope="module", params=DATABASES)
def server(request, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp(f"svc-{request.param}"), request.param)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from behavior.synthetic import simulate_clip, write_clip

    c = simulate_clip("hargreaves", seed=11, latencies_s=[3.0], session_fields={"side": "left"})
    return c, write_clip(c, tmp_path_factory.mktemp("clip"))


def metadata(clip_obj, session_id: str) -> dict:
    meta = clip_obj.session.model_dump(mode="json", exclude={"video", "pose", "model"})
    meta["session_id"] = session_id
    return meta


def upload(server: Server, headers: dict, study: int, path: Path, meta: dict, name: str | None = None):
    with path.open("rb") as fh:
        return httpx.post(
            f"{server.url}/api/v1/studies/{study}/sessions",
            headers=headers,
            files={"file": (name or path.name, fh)},
            data={"metadata": json.dumps(meta)},
            timeout=60,
        )


def wait_job(server: Server, headers: dict, job_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{server.url}/api/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise TimeoutError(job)


def test_upload_job_worker_measures_battery_report(server, clip):
    clip_obj, paths = clip
    _, headers = server.lab("lab-a")
    study = httpx.post(f"{server.url}/api/v1/studies", json={"name": "CCI pilot"}, headers=headers).json()["id"]
    r = upload(server, headers, study, paths["pose"], metadata(clip_obj, "s1"))
    assert r.status_code == 201, r.text
    job_id = r.json()["job_id"]
    assert httpx.get(f"{server.url}/api/v1/jobs/{job_id}", headers=headers).json()["status"] == "queued"
    worker = server.worker("--idle-exit")
    assert worker.wait(timeout=120) == 0
    job = wait_job(server, headers, job_id)
    assert job["status"] == "done" and job["progress"] == 1.0 and job["attempts"] == 1
    measures = httpx.get(f"{server.url}/api/v1/studies/{study}/measures", headers=headers).json()
    latency = [m for m in measures if m["measure"] == "latency_ipsi_s"]
    assert len(latency) == 1 and abs(latency[0]["value"] - clip_obj.truth["trials"][0]["latency_s"]) <= 2 / 15
    battery = httpx.get(f"{server.url}/api/v1/studies/{study}/battery", headers=headers).json()
    assert battery[0]["animal_id"] == clip_obj.session.animal_id and "evoked.latency_ipsi_s" in battery[0]
    report = httpx.get(f"{server.url}/api/v1/studies/{study}/report", headers=headers, timeout=120)
    assert report.status_code == 200 and "<html" in report.text and "Hargreaves latency, ipsilateral" in report.text


def test_labs_only_see_their_own_studies_and_tokens_are_required(server):
    _, a = server.lab("lab-iso-a")
    _, b = server.lab("lab-iso-b")
    study_a = httpx.post(f"{server.url}/api/v1/studies", json={"name": "A only"}, headers=a).json()["id"]
    assert study_a in [s["id"] for s in httpx.get(f"{server.url}/api/v1/studies", headers=a).json()]
    assert study_a not in [s["id"] for s in httpx.get(f"{server.url}/api/v1/studies", headers=b).json()]
    for path in (
        f"/api/v1/studies/{study_a}",
        f"/api/v1/studies/{study_a}/measures",
        f"/api/v1/studies/{study_a}/sessions",
        f"/api/v1/studies/{study_a}/report",
    ):
        r = httpx.get(server.url + path, headers=b)
        assert r.status_code == 404 and "not found" in r.json()["detail"]
    assert httpx.get(f"{server.url}/api/v1/studies").status_code == 401
    bad = httpx.get(f"{server.url}/api/v1/studies", headers={"Authorization": "Bearer pb_nope"})
    assert bad.status_code == 401 and bad.json()["detail"] == "invalid or revoked token"


def test_bad_uploads_get_clear_4xx_and_leave_nothing_behind(server, clip, tmp_path):
    clip_obj, paths = clip
    _, headers = server.lab("lab-bad")
    study = httpx.post(f"{server.url}/api/v1/studies", json={"name": "bad"}, headers=headers).json()["id"]
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video at all")
    meta = metadata(clip_obj, "bad1")
    cases = [
        (upload(server, headers, study, text, meta), 415, "expected a video"),
        (upload(server, headers, study, fake, meta), 422, "not a video"),
        (upload(server, headers, study, paths["pose"], meta, name="../../etc/passwd.h5"), 400, "plain file name"),
        (upload(server, headers, study, paths["pose"], {**meta, "fps": -5}), 422, "fps"),
        (upload(server, headers, study, paths["pose"], {**meta, "assay": "hargreves"}), 422, "unknown assay"),
        (upload(server, headers, 99999, paths["pose"], meta), 404, "study 99999 not found"),
    ]
    for response, status, fragment in cases:
        assert response.status_code == status, response.text
        assert fragment in response.json()["detail"]
    assert upload(server, headers, study, paths["pose"], meta).status_code == 201
    dup = upload(server, headers, study, paths["pose"], meta)
    assert dup.status_code == 409 and "already exists" in dup.json()["detail"]
    leftovers = list((server.root / "data" / "storage" / "tmp").glob("*"))
    assert leftovers == []
    stored = list((server.root / "data" / "storage").rglob("*.h5"))
    assert len([p for p in stored if "lab" in str(p)]) >= 1


@pytest.mark.parametrize("database", DATABASES)
def test_oversized_upload_is_refused(tmp_path, clip, database):
    clip_obj, paths = clip
    srv = Server(tmp_path, database, PAINBATTERY_MAX_UPLOAD_BYTES="1000")
    try:
        _, headers = srv.lab("lab-small")
        study = httpx.post(f"{srv.url}/api/v1/studies", json={"name": "s"}, headers=headers).json()["id"]
        r = upload(srv, headers, study, paths["video"], metadata(clip_obj, "big"))
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        assert list((tmp_path / "data" / "storage" / "tmp").glob("*")) == []
    finally:
        srv.stop()


def test_chunked_upload_resumes_from_the_offset(server, clip):
    clip_obj, paths = clip
    _, headers = server.lab("lab-chunks")
    study = httpx.post(f"{server.url}/api/v1/studies", json={"name": "chunks"}, headers=headers).json()["id"]
    data = paths["video"].read_bytes()
    start = httpx.post(
        f"{server.url}/api/v1/uploads",
        headers=headers,
        json={
            "study_id": study,
            "filename": paths["video"].name,
            "size": len(data),
            "metadata": metadata(clip_obj, "chunked"),
        },
    ).json()
    url = f"{server.url}/api/v1/uploads/{start['upload_id']}"
    half = len(data) // 2
    r = httpx.patch(url, headers={**headers, "Upload-Offset": "0"}, content=data[:half])
    assert r.json() == {
        "upload_id": start["upload_id"],
        "offset": half,
        "size": len(data),
        "complete": False,
        "state": "receiving",
    }
    wrong = httpx.patch(url, headers={**headers, "Upload-Offset": "0"}, content=data[:10])
    assert wrong.status_code == 409 and f"expected Upload-Offset {half}" in wrong.json()["detail"]
    offset = httpx.get(url, headers=headers).json()["offset"]  # the client lost track: ask, then resume
    done = httpx.patch(url, headers={**headers, "Upload-Offset": str(offset)}, content=data[offset:]).json()
    assert done["complete"] and done["session_id"] == "chunked" and done["job_id"] > 0


def _sign(secret: str, ts: str, rig: str, filename: str, key: str, meta: str, body: bytes) -> str:
    lines = [ts, rig, filename, key, hashlib.sha256(body).hexdigest(), str(len(body)), meta]
    return hmac.new(secret.encode(), "\n".join(lines).encode(), hashlib.sha256).hexdigest()


def rig_headers(secret: str, rig: str, filename: str, key: str, meta: str, body: bytes, ts: str | None = None) -> dict:
    """The headers of a signed rig POST (the signature covers everything but the body, which its hash stands for)."""
    ts = ts or str(int(time.time()))
    return {
        "X-Painbattery-Timestamp": ts,
        "X-Painbattery-Signature": _sign(secret, ts, rig, filename, key, meta, body),
        "X-Painbattery-Filename": filename,
        "X-Painbattery-Metadata": meta,
        "X-Painbattery-Content-SHA256": hashlib.sha256(body).hexdigest(),
        "Idempotency-Key": key,
    }


def test_signed_rig_posts_are_idempotent_and_bad_signatures_refused(server, clip):
    clip_obj, paths = clip
    _, headers = server.lab("lab-rig")
    study = httpx.post(f"{server.url}/api/v1/studies", json={"name": "rig"}, headers=headers).json()["id"]
    secret = server.cli("admin", "create-rig", "rig-7", "--study-id", str(study))
    body = paths["video"].read_bytes()
    meta = json.dumps(metadata(clip_obj, "rig-7-0001"))
    post_headers = rig_headers(secret, "rig-7", "rec0001.mp4", "rig-7/rec0001", meta, body)
    url = f"{server.url}/api/v1/rigs/rig-7/recordings"
    first = httpx.post(url, headers=post_headers, content=body, timeout=60)
    assert first.status_code == 201, first.text
    again = httpx.post(url, headers=post_headers, content=body, timeout=60)
    assert again.status_code == 200 and again.json()["duplicate"] and again.json()["job_id"] == first.json()["job_id"]
    sessions = httpx.get(f"{server.url}/api/v1/studies/{study}/sessions", headers=headers).json()
    assert [s["session_id"] for s in sessions] == ["rig-7-0001"]
    forged = httpx.post(
        url, headers={**post_headers, "X-Painbattery-Signature": "0" * 64, "Idempotency-Key": "other"}, content=body
    )
    assert forged.status_code == 401 and forged.json()["detail"] == "unknown rig or bad signature"
    old = str(int(time.time()) - 3600)
    stale = httpx.post(url, content=body, headers=rig_headers(secret, "rig-7", "rec0001.mp4", "k2", meta, body, ts=old))
    assert stale.status_code == 401 and "replayed" in stale.json()["detail"]


@pytest.mark.parametrize("database", DATABASES)
def test_killed_worker_job_is_finished_once_by_another(database, clip, make_server):
    """Worker A takes the job and freezes; its lease runs out; B finishes; A wakes and must not record."""
    clip_obj, paths = clip
    server = make_server(database)  # a database of its own: a queue holding only this job
    _, headers = server.lab("lab-kill")
    study = httpx.post(f"{server.url}/api/v1/studies", json={"name": "kill"}, headers=headers).json()["id"]
    job_id = upload(server, headers, study, paths["pose"], metadata(clip_obj, "k1")).json()["job_id"]
    a = server.worker("--max-jobs", "1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if httpx.get(f"{server.url}/api/v1/jobs/{job_id}", headers=headers).json()["status"] != "queued":
            break
        time.sleep(0.01)
    os.killpg(a.pid, signal.SIGSTOP)  # A holds the job and stops renewing its lease
    job = httpx.get(f"{server.url}/api/v1/jobs/{job_id}", headers=headers).json()
    assert job["status"] == "running", job  # frozen while holding it (its first job loads the analysis stack)
    time.sleep(3.0)  # the 2 s lease expires
    b = server.worker("--idle-exit")
    assert b.wait(timeout=120) == 0
    job = wait_job(server, headers, job_id)
    assert job["status"] == "done" and job["attempts"] == 2
    os.killpg(a.pid, signal.SIGCONT)  # A wakes up: its completion must not count
    a.wait(timeout=120)
    final = httpx.get(f"{server.url}/api/v1/jobs/{job_id}", headers=headers).json()
    assert final["status"] == "done"
    measures = httpx.get(f"{server.url}/api/v1/studies/{study}/measures", headers=headers).json()
    assert len([m for m in measures if m["measure"] == "latency_ipsi_s"]) == 1  # recorded once


def test_watch_folder_waits_for_complete_files_and_never_scores_twice(tmp_path, clip):
    from behavior.session import write_session_sidecar
    from service.watch import FolderWatcher, LocalScorer

    clip_obj, paths = clip
    folder = tmp_path / "drop"
    folder.mkdir()
    data = paths["video"].read_bytes()
    target = folder / "rec1.mp4"
    target.write_bytes(data[: len(data) // 3])  # the rig is still writing
    session = clip_obj.session.model_copy(update={"video": target, "pose": paths["pose"], "session_id": "w1"})
    write_session_sidecar(session, folder / "rec1.json")
    watcher = FolderWatcher(folder, LocalScorer(tmp_path / "out"), settle_seconds=0.5)
    assert watcher.process_ready() == []
    time.sleep(0.3)
    with target.open("ab") as fh:
        fh.write(data[len(data) // 3 :])  # still growing: not ready
    assert watcher.process_ready() == []
    time.sleep(0.7)
    results = watcher.process_ready()
    assert len(results) == 1 and results[0].startswith("scored w1")
    assert watcher.process_ready() == []
    restarted = FolderWatcher(folder, LocalScorer(tmp_path / "out"), settle_seconds=0.0)
    restarted.process_ready()
    assert restarted.process_ready() == [] and len(restarted.processed()) == 1


def test_watch_folder_submits_to_the_service(server, clip, tmp_path):
    from behavior.session import write_session_sidecar
    from service.watch import FolderWatcher, ServiceSubmitter

    clip_obj, paths = clip
    _, headers = server.lab("lab-watch")
    study = httpx.post(f"{server.url}/api/v1/studies", json={"name": "watched"}, headers=headers).json()["id"]
    folder = tmp_path / "rig"
    folder.mkdir()
    (folder / "rec9.mp4").write_bytes(paths["video"].read_bytes())
    session = clip_obj.session.model_copy(update={"video": folder / "rec9.mp4", "session_id": "watched-9"})
    write_session_sidecar(session, folder / "rec9.json")
    submitter = ServiceSubmitter(server.url, headers["Authorization"].split()[1], study)
    watcher = FolderWatcher(folder, submitter, settle_seconds=0.0)
    watcher.process_ready()  # first look: remembers the size
    results = watcher.process_ready()
    assert len(results) == 1 and results[0].startswith("submitted watched-9 as job")
    sessions = httpx.get(f"{server.url}/api/v1/studies/{study}/sessions", headers=headers).json()
    assert [s["session_id"] for s in sessions] == ["watched-9"] and sessions[0]["job"]["status"] in (
        "queued",
        "running",
        "done",
        "failed",
    )
    # a restarted watcher with a lost state file resubmits: the service answers 409 and nothing is duplicated
    (folder / ".painbattery-watch.sqlite").unlink()
    again = FolderWatcher(folder, submitter, settle_seconds=0.0)
    again.process_ready()
    assert again.process_ready()[0].startswith("already submitted")
    assert len(httpx.get(f"{server.url}/api/v1/studies/{study}/sessions", headers=headers).json()) == 1
