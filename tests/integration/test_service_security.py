"""Attacks on the upload service, each with real requests to a real server on 127.0.0.1.

Each test reproduces a defect a review confirmed (crafted pickles, unauthenticated disk filling, the
PATCH race, traversal ids, idempotency that dropped data, NaN timestamps, rig-id probing, stuck
uploads, missing quotas and expiry, the page's headers) and checks the database and storage after.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.test_service import DATABASES, Server, metadata, rig_headers, upload, wait_job
from tests.unit.test_unsafe_files import crafted_object_column

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=DATABASES)
def server(request, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp(f"sec-{request.param}"), request.param)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from behavior.synthetic import simulate_clip, write_clip

    c = simulate_clip("hargreaves", seed=12, latencies_s=[4.0], session_fields={"side": "left"})
    return c, write_clip(c, tmp_path_factory.mktemp("clip"))


def new_study(server: Server, lab: str) -> tuple[dict, int]:
    _, headers = server.lab(lab)
    study = httpx.post(f"{server.url}/api/v1/studies", json={"name": lab}, headers=headers).json()["id"]
    return headers, study


def stored_files(server: Server) -> list[Path]:
    return [p for p in (server.root / "data" / "storage").rglob("*") if p.is_file() and "report" not in p.parts]


def raw_request_head(server: Server, head: str, body_prefix: bytes, timeout: float = 10.0) -> str:
    """Send a request's headers and the first bytes of a much longer body; return what the server answers."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(head.encode() + b"\r\n" + body_prefix)
        answer = b""
        try:
            while chunk := sock.recv(65536):  # the server answers and closes; until then it would wait
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass  # still waiting for the rest of the body (answer empty), or closed hard after answering
        return answer.decode(errors="replace")


def test_crafted_dlc_h5_upload_is_refused_and_its_payload_never_runs(server, clip, tmp_path):
    clip_obj, _ = clip
    headers, study = new_study(server, "lab-pickle")
    marker = tmp_path / "payload-ran"
    evil = crafted_object_column(tmp_path, marker)
    r = upload(server, headers, study, evil, metadata(clip_obj, "evil1"))
    assert r.status_code == 422 and "pickled" in r.json()["detail"], r.text
    time.sleep(0.5)
    assert not marker.exists()
    assert list((server.root / "data" / "storage" / "tmp").glob("*")) == []


def test_no_token_multipart_is_refused_before_its_body_is_read(server):
    boundary = "xyz"
    head = (
        f"POST /api/v1/studies/1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {200 * 1024**2}\r\n"
    )
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'.encode()
    answer = raw_request_head(server, head, part + b"\0" * 4096)
    assert answer.startswith("HTTP/1.1 401"), answer[:200]
    assert list((server.root / "data" / "storage" / "tmp").glob("*")) == []


def test_oversized_content_length_is_refused_at_once(tmp_path):
    srv = Server(tmp_path, "sqlite", PAINBATTERY_MAX_UPLOAD_BYTES="100000")
    try:
        headers, study = new_study(srv, "lab-big")
        head = (
            f"POST /api/v1/studies/{study}/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {headers['Authorization']}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {50 * 1024**2}\r\n"
        )
        answer = raw_request_head(srv, head, b"--b\r\n" + b"\0" * 4096)
        assert answer.startswith("HTTP/1.1 413") and "limit" in answer, answer[:300]
        assert stored_files(srv) == []
    finally:
        srv.stop()


def test_unsigned_rig_body_is_refused_before_it_is_read(server, clip):
    clip_obj, _ = clip
    _, study = new_study(server, "lab-rig-fill")
    server.cli("admin", "create-rig", "rig-fill", "--study-id", str(study))
    meta = json.dumps(metadata(clip_obj, "fill1"))
    head = (
        "POST /api/v1/rigs/rig-fill/recordings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-Painbattery-Timestamp: {int(time.time())}\r\nX-Painbattery-Signature: {'0' * 64}\r\n"
        f"X-Painbattery-Filename: a.mp4\r\nX-Painbattery-Metadata: {meta}\r\n"
        f"X-Painbattery-Content-SHA256: {'1' * 64}\r\nIdempotency-Key: k\r\nContent-Length: {200 * 1024**2}\r\n"
    )
    answer = raw_request_head(server, head, b"\0" * 4096)
    assert answer.startswith("HTTP/1.1 401") and "bad signature" in answer, answer[:300]
    assert list((server.root / "data" / "storage" / "tmp").glob("*")) == []


def test_concurrent_patches_at_one_offset_leave_the_file_exactly_as_sent(server, clip):
    clip_obj, paths = clip
    headers, study = new_study(server, "lab-race")
    data = paths["video"].read_bytes()
    start = httpx.post(
        f"{server.url}/api/v1/uploads",
        headers=headers,
        json={"study_id": study, "filename": "race.mp4", "size": len(data), "metadata": metadata(clip_obj, "race")},
    ).json()
    url = f"{server.url}/api/v1/uploads/{start['upload_id']}"
    results: dict[int, httpx.Response] = {}

    def slow_patch(n_bytes: int) -> None:
        def body():
            for i in range(0, n_bytes, 64):
                time.sleep(0.005)  # both requests stream at once
                yield data[i : min(i + 64, n_bytes)]

        results[n_bytes] = httpx.patch(url, headers={**headers, "Upload-Offset": "0"}, content=body(), timeout=60)

    threads = [threading.Thread(target=slow_patch, args=(n,)) for n in (6400, 9600)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [200, 409], {n: r.text for n, r in results.items()}
    offset = httpx.get(url, headers=headers).json()["offset"]
    assert offset in (6400, 9600)
    done = httpx.patch(url, headers={**headers, "Upload-Offset": str(offset)}, content=data[offset:], timeout=60)
    assert done.status_code == 200 and done.json()["complete"], done.text
    stored = [p for p in stored_files(server) if p.name == "race.mp4"]
    assert len(stored) == 1 and stored[0].read_bytes() == data


def test_traversal_session_ids_are_refused_everywhere(server, clip):
    clip_obj, paths = clip
    headers, study = new_study(server, "lab-traversal")
    for bad in ("../../../../tmp/x", "/etc/cron.d/x", "a/b", "..", "x\n"):
        meta = {**metadata(clip_obj, "ok"), "session_id": bad}
        r = upload(server, headers, study, paths["pose"], meta)
        assert r.status_code == 422 and "session id" in r.json()["detail"], (bad, r.text)
        r = httpx.post(
            f"{server.url}/api/v1/uploads",
            headers=headers,
            json={"study_id": study, "filename": "p.h5", "size": 10, "metadata": meta},
        )
        assert r.status_code == 422 and "session id" in r.json()["detail"], (bad, r.text)
    assert not Path("/tmp/x.h5").exists()
    assert httpx.get(f"{server.url}/api/v1/studies/{study}/sessions", headers=headers).json() == []


def test_reused_idempotency_key_with_another_recording_is_refused_and_nothing_dropped(server, clip):
    clip_obj, paths = clip
    headers, study = new_study(server, "lab-idem")
    secret = server.cli("admin", "create-rig", "rig-idem", "--study-id", str(study))
    url = f"{server.url}/api/v1/rigs/rig-idem/recordings"
    video, pose = paths["video"].read_bytes(), paths["pose"].read_bytes()
    meta1 = json.dumps(metadata(clip_obj, "idem-1"))
    meta2 = json.dumps(metadata(clip_obj, "idem-2"))
    first = httpx.post(url, headers=rig_headers(secret, "rig-idem", "a.mp4", "K", meta1, video), content=video)
    assert first.status_code == 201, first.text
    other = httpx.post(url, headers=rig_headers(secret, "rig-idem", "b.h5", "K", meta2, pose), content=pose)
    assert other.status_code == 422 and "different recording" in other.json()["detail"], other.text
    sessions = httpx.get(f"{server.url}/api/v1/studies/{study}/sessions", headers=headers).json()
    assert [s["session_id"] for s in sessions] == ["idem-1"]
    # the rig learns it and sends the second recording under its own key: nothing is lost
    again = httpx.post(url, headers=rig_headers(secret, "rig-idem", "b.h5", "K2", meta2, pose), content=pose)
    assert again.status_code == 201, again.text


def test_racing_duplicate_rig_posts_make_one_recording(server, clip):
    clip_obj, paths = clip
    headers, study = new_study(server, "lab-idem-race")
    secret = server.cli("admin", "create-rig", "rig-race", "--study-id", str(study))
    url = f"{server.url}/api/v1/rigs/rig-race/recordings"
    body = paths["pose"].read_bytes()
    meta = json.dumps(metadata(clip_obj, "race-1"))
    h = rig_headers(secret, "rig-race", "r.h5", "RK", meta, body)
    answers: list[httpx.Response] = []
    threads = [
        threading.Thread(target=lambda: answers.append(httpx.post(url, headers=h, content=body, timeout=60)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(a.status_code for a in answers)
    assert codes.count(201) == 1 and all(c in (200, 201) for c in codes), [a.text for a in answers]
    assert len({a.json()["job_id"] for a in answers}) == 1
    sessions = httpx.get(f"{server.url}/api/v1/studies/{study}/sessions", headers=headers).json()
    assert [s["session_id"] for s in sessions] == ["race-1"]
    assert len([p for p in stored_files(server) if p.name == "r.h5"]) == 1


def test_rig_timestamps_must_be_finite_integers_and_rig_ids_are_not_revealed(server, clip):
    clip_obj, paths = clip
    _, study = new_study(server, "lab-ts")
    secret = server.cli("admin", "create-rig", "rig-ts", "--study-id", str(study))
    body = paths["pose"].read_bytes()
    meta = json.dumps(metadata(clip_obj, "ts-1"))
    for ts in ("nan", "inf", "1e9", "-1", str(time.time())):
        h = rig_headers(secret, "rig-ts", "t.h5", "T", meta, body, ts=ts)
        r = httpx.post(f"{server.url}/api/v1/rigs/rig-ts/recordings", headers=h, content=body)
        assert r.status_code == 401 and "integer unix timestamp" in r.json()["detail"], (ts, r.text)
    old = str(int(time.time()) - 3600)
    answers = {}
    for rig in ("rig-ts", "no-such-rig"):
        stale = rig_headers(secret, rig, "t.h5", "T", meta, body, ts=old)
        fresh = rig_headers("wrong-secret", rig, "t.h5", "T", meta, body)
        answers[rig] = [
            httpx.post(f"{server.url}/api/v1/rigs/{rig}/recordings", headers=hh, content=body).json()["detail"]
            for hh in (stale, fresh)
        ]
    assert answers["rig-ts"] == answers["no-such-rig"]
    assert answers["rig-ts"][1] == "unknown rig or bad signature"


def test_a_body_that_does_not_match_its_signed_hash_is_refused(server, clip):
    clip_obj, paths = clip
    headers, study = new_study(server, "lab-hash")
    secret = server.cli("admin", "create-rig", "rig-hash", "--study-id", str(study))
    body = paths["pose"].read_bytes()
    meta = json.dumps(metadata(clip_obj, "hash-1"))
    h = rig_headers(secret, "rig-hash", "h.h5", "H", meta, body)
    tampered = bytearray(body)
    tampered[-1] ^= 0xFF
    r = httpx.post(f"{server.url}/api/v1/rigs/rig-hash/recordings", headers=h, content=bytes(tampered))
    assert r.status_code == 400 and "does not match" in r.json()["detail"]
    assert httpx.get(f"{server.url}/api/v1/studies/{study}/sessions", headers=headers).json() == []
    assert list((server.root / "data" / "storage" / "tmp").glob("*")) == []


def test_a_resumable_upload_that_fails_its_check_ends_clearly_and_leaves_nothing(server, clip):
    clip_obj, _ = clip
    headers, study = new_study(server, "lab-stuck")
    junk = b"this is not a video at all" * 20
    meta = metadata(clip_obj, "stuck-1")
    start = httpx.post(
        f"{server.url}/api/v1/uploads",
        headers=headers,
        json={"study_id": study, "filename": "junk.mp4", "size": len(junk), "metadata": meta},
    ).json()
    url = f"{server.url}/api/v1/uploads/{start['upload_id']}"
    r = httpx.patch(url, headers={**headers, "Upload-Offset": "0"}, content=junk)
    assert r.status_code == 422 and "start a new upload" in r.json()["detail"], r.text
    status = httpx.get(url, headers=headers).json()
    assert status["state"] == "failed" and "not a video" in status["error"]
    retry = httpx.patch(url, headers={**headers, "Upload-Offset": str(len(junk))}, content=b"")
    assert retry.status_code == 410 and "start a new upload" in retry.json()["detail"]
    assert not list((server.root / "data" / "storage" / "tmp").glob(f"*{start['upload_id']}*"))
    # the same session can be sent again, in a new upload
    again = httpx.post(
        f"{server.url}/api/v1/uploads",
        headers=headers,
        json={"study_id": study, "filename": "junk.mp4", "size": len(junk), "metadata": meta},
    )
    assert again.status_code == 201


def test_start_upload_checks_everything_but_the_file(server, clip):
    clip_obj, paths = clip
    headers, study = new_study(server, "lab-early")
    assert upload(server, headers, study, paths["pose"], metadata(clip_obj, "early-1")).status_code == 201
    cases = [
        ({"metadata": metadata(clip_obj, "early-1")}, 409, "already exists"),
        ({"metadata": {**metadata(clip_obj, "early-2"), "assay": "hargreves"}}, 422, "unknown assay"),
        ({"metadata": {**metadata(clip_obj, "early-2"), "fps": 0}}, 422, "fps"),
        ({"filename": "notes.txt"}, 415, "expected a video"),
        ({"filename": "../x.h5"}, 400, "plain file name"),
    ]
    for change, status, fragment in cases:
        body = {"study_id": study, "filename": "p.h5", "size": 100, "metadata": metadata(clip_obj, "early-2"), **change}
        r = httpx.post(f"{server.url}/api/v1/uploads", headers=headers, json=body)
        assert r.status_code == status and fragment in r.json()["detail"], (change, r.text)


@pytest.mark.parametrize("database", DATABASES)
def test_abandoned_uploads_expire_and_quotas_hold(tmp_path, clip, database):
    clip_obj, paths = clip
    data = paths["video"].read_bytes()
    srv = Server(
        tmp_path,
        database,
        PAINBATTERY_UPLOAD_EXPIRY_HOURS=str(1.5 / 3600),
        PAINBATTERY_LAB_QUOTA_BYTES=str(len(data) + 1000),
    )
    try:
        headers, study = new_study(srv, "lab-quota")
        body = {"study_id": study, "filename": "q.mp4", "size": len(data), "metadata": metadata(clip_obj, "q1")}
        start = httpx.post(f"{srv.url}/api/v1/uploads", headers=headers, json=body).json()
        url = f"{srv.url}/api/v1/uploads/{start['upload_id']}"
        assert httpx.patch(url, headers={**headers, "Upload-Offset": "0"}, content=data[:100]).status_code == 200
        # a second upload would take the lab past its quota while the first is open
        r = httpx.post(
            f"{srv.url}/api/v1/uploads", headers=headers, json={**body, "metadata": metadata(clip_obj, "q2")}
        )
        assert r.status_code == 507 and "quota" in r.json()["detail"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and httpx.get(url, headers=headers).json()["state"] != "expired":
            time.sleep(0.3)
        assert httpx.get(url, headers=headers).json()["state"] == "expired"
        assert not list((tmp_path / "data" / "storage" / "tmp").glob(f"*{start['upload_id']}*"))
        late = httpx.patch(url, headers={**headers, "Upload-Offset": "100"}, content=data[100:200])
        assert late.status_code == 410
        # the expired upload no longer counts against the quota; a stored recording does
        assert upload(srv, headers, study, paths["video"], metadata(clip_obj, "q3")).status_code == 201
        over = upload(srv, headers, study, paths["video"], metadata(clip_obj, "q4"))
        assert over.status_code == 507 and "quota" in over.json()["detail"]
    finally:
        srv.stop()


def test_page_and_report_carry_a_content_security_policy(server):
    page = httpx.get(f"{server.url}/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<iframe id="report" class="hidden" title="report" sandbox referrerpolicy' in page.text  # no allow-*
    assert httpx.get(f"{server.url}/api/v1/health").headers["x-content-type-options"] == "nosniff"


def test_the_report_is_served_sandboxed_with_no_scripts(server, clip):
    """The study report (HTML built from the lab's data) carries a CSP of its own: sandboxed, no scripts."""
    clip_obj, paths = clip
    headers, study = new_study(server, "lab-report-csp")
    job = upload(server, headers, study, paths["pose"], metadata(clip_obj, "csp-1")).json()["job_id"]
    worker = server.worker("--idle-exit")
    assert wait_job(server, headers, job)["status"] == "done"
    worker.wait(timeout=60)
    r = httpx.get(f"{server.url}/api/v1/studies/{study}/report", headers=headers, timeout=120)
    assert r.status_code == 200 and r.text.lstrip().lower().startswith("<!doctype html"), r.text[:200]
    policy = [p.strip() for p in r.headers["content-security-policy"].split(";")]
    assert "sandbox" in policy and "default-src 'none'" in policy and not any("script-src" in p for p in policy)
    assert r.headers["x-content-type-options"] == "nosniff"


def test_upload_sizes_are_64_bit():
    from sqlalchemy import BigInteger

    from service.db import Recording, Upload

    for column in (Upload.__table__.c.size, Upload.__table__.c.offset, Recording.__table__.c.size_bytes):
        assert isinstance(column.type, BigInteger)


def test_metadata_field_of_10_mb_is_refused(server, clip):
    clip_obj, paths = clip
    headers, study = new_study(server, "lab-huge-meta")
    meta = {**metadata(clip_obj, "huge"), "group": "x" * (10 * 1024**2)}
    r = upload(server, headers, study, paths["pose"], meta)
    assert r.status_code == 413 and "metadata" in r.json()["detail"]


def test_derived_files_of_two_labs_with_one_session_id_never_share_a_path(tmp_path):
    from service.db import Recording
    from service.jobs import recording_work_dir

    a = Recording(id=1, session_id="s1", pose_path=str(tmp_path / "lab1/study1/aaa/s1.mp4"))
    b = Recording(id=2, session_id="s1", video_path=str(tmp_path / "lab2/study5/bbb/s1.mp4"))
    assert recording_work_dir(a) != recording_work_dir(b)
    assert recording_work_dir(a).is_relative_to(tmp_path / "lab1/study1/aaa")


def test_stopping_the_server_leaves_no_checker_process(tmp_path, clip):
    import psutil

    clip_obj, paths = clip
    srv = Server(tmp_path, "sqlite")
    try:
        headers, study = new_study(srv, "lab-children")
        assert upload(srv, headers, study, paths["pose"], metadata(clip_obj, "c1")).status_code == 201
        children = psutil.Process(srv.proc.pid).children(recursive=True)
        assert children, "the upload was checked in a child process"
    finally:
        srv.stop()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def checking_child(srv: Server, timeout: float = 60.0):
    """The child process that checks an upload (a spawned pool worker of the server), once it exists."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(srv.proc.pid).children(recursive=True):
            try:
                cmdline = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "spawn_main" in cmdline and "resource_tracker" not in cmdline:
                return child
        time.sleep(0.005)
    raise TimeoutError("no checking child appeared")


def upload_in_thread(srv: Server, headers: dict, study: int, path: Path, meta: dict) -> tuple[threading.Thread, dict]:
    answer: dict[str, httpx.Response] = {}

    def send() -> None:
        answer["r"] = httpx.post(
            f"{srv.url}/api/v1/studies/{study}/sessions",
            headers=headers,
            files={"file": (path.name, path.read_bytes())},
            data={"metadata": json.dumps(meta)},
            timeout=120,
        )

    thread = threading.Thread(target=send)
    thread.start()
    return thread, answer


def test_a_checker_that_crashes_costs_its_upload_a_422_and_the_api_goes_on(tmp_path, clip):
    """The child checking an upload dies mid-check (as a native decoder's segfault would): that upload is
    refused with 422, the API keeps answering, and the next upload is checked by a fresh child and stored."""
    import signal

    clip_obj, paths = clip
    srv = Server(tmp_path, "sqlite", PAINBATTERY_CHECK_PROCESSES="1")
    try:
        headers, study = new_study(srv, "lab-crash-check")
        thread, answer = upload_in_thread(srv, headers, study, paths["pose"], metadata(clip_obj, "crash-1"))
        checking_child(srv).send_signal(signal.SIGKILL)
        thread.join(timeout=120)
        r = answer["r"]
        assert r.status_code == 422 and "reader crashed" in r.json()["detail"], r.text
        assert srv.proc.poll() is None and httpx.get(f"{srv.url}/api/v1/health").status_code == 200
        again = upload(srv, headers, study, paths["pose"], metadata(clip_obj, "crash-2"))
        assert again.status_code == 201, again.text
        sessions = httpx.get(f"{srv.url}/api/v1/studies/{study}/sessions", headers=headers).json()
        assert [s["session_id"] for s in sessions] == ["crash-2"]
        assert list((tmp_path / "data" / "storage" / "tmp").glob("*")) == []
    finally:
        srv.stop()


def test_a_hung_check_never_stalls_the_api_and_is_cut_short_at_its_limit(tmp_path, clip):
    """The child checking an upload hangs (frozen, as a decoder stuck in native code): other requests are
    answered meanwhile, the upload is refused with 422 at the check limit, and the hung child is killed."""
    import signal

    clip_obj, paths = clip
    srv = Server(tmp_path, "sqlite", PAINBATTERY_CHECK_PROCESSES="1", PAINBATTERY_CHECK_TIMEOUT_SECONDS="6")
    try:
        headers, study = new_study(srv, "lab-hung-check")
        thread, answer = upload_in_thread(srv, headers, study, paths["pose"], metadata(clip_obj, "hung-1"))
        child = checking_child(srv)
        child.send_signal(signal.SIGSTOP)
        # while the check hangs, the API answers other labs (the upload's answer has not come yet)
        assert httpx.get(f"{srv.url}/api/v1/health", timeout=5).status_code == 200
        _, other = srv.lab("lab-other")
        assert httpx.get(f"{srv.url}/api/v1/studies", headers=other, timeout=5).json() == []
        assert thread.is_alive() and "r" not in answer
        thread.join(timeout=120)
        r = answer["r"]
        assert r.status_code == 422 and "took longer than 6 s" in r.json()["detail"], r.text
        child.wait(timeout=10)  # killed, not left frozen
        assert upload(srv, headers, study, paths["pose"], metadata(clip_obj, "hung-2")).status_code == 201
    finally:
        srv.stop()


def test_a_pose_file_that_trips_its_reader_is_refused_with_422(server, clip, tmp_path):
    """A crafted file whose reader fails in an unplanned way (an attribute of the wrong type, JSON nested
    past the recursion limit) is the file's fault: 422 with the reason, never a 500, and nothing is kept."""
    from tests.unit.test_unsafe_files import crafted_deep_slp, crafted_odd_attribute

    clip_obj, _ = clip
    headers, study = new_study(server, "lab-odd")
    for i, crafted in enumerate((crafted_odd_attribute(tmp_path), crafted_deep_slp(tmp_path))):
        r = upload(server, headers, study, crafted, metadata(clip_obj, f"odd-{i}"))
        assert r.status_code == 422 and crafted.name in r.json()["detail"], r.text
    assert httpx.get(f"{server.url}/api/v1/studies/{study}/sessions", headers=headers).json() == []
    assert list((server.root / "data" / "storage" / "tmp").glob("*")) == []
