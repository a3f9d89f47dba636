"""Attacks on the upload service that broke it, each with real requests to a real server on 127.0.0.1.

Malformed or truncated multipart bodies, out-of-range ids, NUL characters (PostgreSQL text cannot
hold them), a non-ASCII rig signature, unbounded JSON metadata, and JSON bodies read before the token
was checked. Every answer must be a 4xx with a JSON body, and nothing may stay behind in storage/tmp.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.test_service import DATABASES, Server, metadata, rig_headers
from tests.integration.test_service_security import new_study, raw_request_head

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=DATABASES)
def server(request, tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp(f"atk-{request.param}"), request.param)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from behavior.synthetic import simulate_clip, write_clip

    c = simulate_clip("hargreaves", seed=13, latencies_s=[3.5], session_fields={"side": "left"})
    return c, write_clip(c, tmp_path_factory.mktemp("clip"))


def tmp_files(server: Server) -> list:
    return [p for p in (server.root / "data" / "storage" / "tmp").rglob("*") if p.is_file()]


def assert_json_4xx(r: httpx.Response, status: int | None = None) -> None:
    assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("application/json"), r.text[:300]
    assert status is None or r.status_code == status, r.text[:300]
    assert isinstance(r.json()["detail"], str | list)


def _part(name: str, data: bytes, filename: str | None = None) -> bytes:
    fn = f'; filename="{filename}"' if filename is not None else ""
    return f'--BB\r\nContent-Disposition: form-data; name="{name}"{fn}\r\n\r\n'.encode() + data + b"\r\n"


def _post_multipart(server: Server, headers: dict, study: int, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/studies/{study}/sessions",
        headers={**headers, "Content-Type": "multipart/form-data; boundary=BB"},
        content=body,
        timeout=60,
    )


def test_malformed_and_truncated_multipart_bodies_are_refused_with_400(server, clip):
    clip_obj, paths = clip
    headers, study = new_study(server, "lab-mp-bad")
    pose = paths["pose"].read_bytes()
    meta = json.dumps(metadata(clip_obj, "mp-cut")).encode()
    bodies = {
        "garbage before the first boundary": b"garbage\r\n\r\n--BB\r\nxx\r\n",
        "a part header without a colon": b"--BB\r\nContent-Disposition form-data\r\n\r\nxx\r\n--BB--\r\n",
        # the file part's bytes end where the connection ended: no closing boundary, an incomplete file
        "no closing boundary": _part("metadata", meta)
        + b'--BB\r\nContent-Disposition: form-data; name="file"; filename="p.h5"\r\n\r\n'
        + pose,
    }
    for what, body in bodies.items():
        r = _post_multipart(server, headers, study, body)
        assert r.status_code == 400, (what, r.status_code, r.text[:300])
        assert_json_4xx(r)
    sessions = httpx.get(f"{server.url}/api/v1/studies/{study}/sessions", headers=headers).json()
    assert sessions == []
    assert tmp_files(server) == []
    # a well-formed body still goes in
    ok = _post_multipart(server, headers, study, _part("metadata", meta) + _part("file", pose, "p.h5") + b"--BB--\r\n")
    assert ok.status_code == 201, ok.text


def test_out_of_range_ids_are_not_found_like_any_missing_id(server):
    headers, _ = new_study(server, "lab-big-ids")
    for big in (2**31, 2**63, 10**20):
        for path in (f"studies/{big}", f"studies/{big}/sessions", f"studies/{big}/measures", f"jobs/{big}"):
            r = httpx.get(f"{server.url}/api/v1/{path}", headers=headers)
            assert_json_4xx(r, 404)
        assert httpx.get(f"{server.url}/api/v1/jobs?study_id={big}", headers=headers).json() == []
        body = {"study_id": big, "filename": "p.h5", "size": 100, "metadata": {}}
        assert_json_4xx(httpx.post(f"{server.url}/api/v1/uploads", headers=headers, json=body), 404)
    # as would a missing upload id, whatever its characters
    for upload_id in ("%00", "a%00b", "x" * 300):
        assert_json_4xx(httpx.get(f"{server.url}/api/v1/uploads/{upload_id}", headers=headers), 404)


def test_nul_and_control_characters_in_a_study_name_are_refused(server):
    headers, _ = new_study(server, "lab-nul")
    for name in ("a\u0000b", "line\nbreak"):
        r = httpx.post(f"{server.url}/api/v1/studies", headers=headers, json={"name": name})
        assert_json_4xx(r, 422)
    names = [s["name"] for s in httpx.get(f"{server.url}/api/v1/studies", headers=headers).json()]
    assert names == ["lab-nul"]


def test_rig_signature_or_id_with_odd_characters_is_refused_as_unsigned(server, clip):
    clip_obj, paths = clip
    _, study = new_study(server, "lab-rig-odd")
    server.cli("admin", "create-rig", "rig-odd", "--study-id", str(study))
    body = paths["pose"].read_bytes()
    meta = json.dumps(metadata(clip_obj, "odd1"))
    signed = rig_headers("not-the-secret", "rig-odd", "p.h5", "k1", meta, body)
    url = f"{server.url}/api/v1/rigs/rig-odd/recordings"
    r = httpx.post(url, headers={**signed, "X-Painbattery-Signature": b"\xe9" * 64}, content=body)
    assert_json_4xx(r, 401)
    assert r.json()["detail"] == "unknown rig or bad signature"
    r = httpx.post(f"{server.url}/api/v1/rigs/rig%00odd/recordings", headers=signed, content=body)
    assert_json_4xx(r, 401)
    assert r.json()["detail"] == "unknown rig or bad signature"
    assert tmp_files(server) == []


def test_resumable_upload_metadata_is_held_to_the_metadata_limit(server, clip):
    clip_obj, _ = clip
    headers, study = new_study(server, "lab-big-json")
    meta = {**metadata(clip_obj, "huge-json"), "group": "x" * (300 * 1024)}
    body = {"study_id": study, "filename": "p.h5", "size": 100, "metadata": meta}
    r = httpx.post(f"{server.url}/api/v1/uploads", headers=headers, json=body, timeout=60)
    assert_json_4xx(r, 413)
    assert "metadata" in r.json()["detail"]
    r = httpx.post(
        f"{server.url}/api/v1/uploads", headers=headers, json={**body, "metadata": {**meta, "group": "x" * 4 * 1024**2}}
    )
    assert_json_4xx(r, 413)


@pytest.mark.parametrize("path", ["/api/v1/uploads", "/api/v1/studies"])
def test_json_bodies_without_a_token_are_refused_before_they_are_read(server, path):
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {500 * 1024**2}\r\n"
    )
    # only 4 KiB of the declared 500 MiB are ever sent: an answer at all means the body was not awaited
    answer = raw_request_head(server, head, b'{"name": "' + b"x" * 4096, timeout=5)
    assert answer.startswith("HTTP/1.1 401") and "Bearer" in answer, answer[:300]


def test_json_bodies_keep_their_usual_answers(server, clip):
    clip_obj, _ = clip
    headers, study = new_study(server, "lab-json-ok")
    bad_json = httpx.post(f"{server.url}/api/v1/studies", headers=headers, content=b"{nope")
    assert_json_4xx(bad_json, 422)
    too_long = httpx.post(f"{server.url}/api/v1/studies", headers=headers, json={"name": "a" * 300})
    assert_json_4xx(too_long, 422)
    assert too_long.json()["detail"][0]["loc"] == ["body", "name"]
    missing = httpx.post(f"{server.url}/api/v1/uploads", headers=headers, json={"study_id": study})
    assert_json_4xx(missing, 422)
    ok = httpx.post(
        f"{server.url}/api/v1/uploads",
        headers=headers,
        json={"study_id": study, "filename": "p.h5", "size": 100, "metadata": metadata(clip_obj, "ok-json")},
    )
    assert ok.status_code == 201 and ok.json()["offset"] == 0, ok.text
    schema = httpx.get(f"{server.url}/openapi.json").json()["paths"]["/api/v1/uploads"]["post"]
    assert "study_id" in schema["requestBody"]["content"]["application/json"]["schema"]["properties"]
