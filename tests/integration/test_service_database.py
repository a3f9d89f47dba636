"""The service's database on SQLite and PostgreSQL: migrations (from empty, from the previous schema, several
processes at once) and a database that cannot be reached (exit 2 from the CLI, 503 from the API)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect, text

from tests.fixtures.service import BIN, DATABASES, Server, TestDatabase, fresh_database

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
BASELINE_COMMIT = "66a6dae"  # the schema the baseline revision reproduces (before migrations existed)
T0 = datetime(2024, 5, 1, 12, 0, 0)


@pytest.fixture
def database(request, tmp_path):
    db = fresh_database(request.param, tmp_path / "db")
    yield db
    db.drop()


def _differences(url: str, metadata) -> list:
    """What alembic's autogenerate would change to make the database at ``url`` match ``metadata``."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return [d for d in compare_metadata(ctx, metadata) if not _is_alembic_version(d)]
    finally:
        engine.dispose()


def _is_alembic_version(diff) -> bool:
    return isinstance(diff, tuple) and diff[0] == "remove_table" and diff[1].name == "alembic_version"


def _closed_port() -> int:
    with socket.socket() as s:  # bound, then released: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(env_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PAINBATTERY_DATA_DIR": str(tmp_path / "data"), "PAINBATTERY_DATABASE_URL": env_url}
    env.pop("PAINBATTERY_DEBUG", None)
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------------------------------- migrations


@pytest.mark.parametrize("database", DATABASES, indirect=True)
def test_an_empty_database_migrated_to_head_matches_the_models(database: TestDatabase):
    from service.db import Base, database_revision, make_engine

    engine = make_engine(database.url)
    try:
        assert database_revision(engine) == "0002_upload_state"
        make_engine(database.url).dispose()  # at head already: nothing to do, no error
    finally:
        engine.dispose()
    assert _differences(database.url, Base.metadata) == []


def _old_models(folder: Path):
    """The models at BASELINE_COMMIT, from git (None when the history is not there, e.g. a shallow clone)."""
    git = shutil.which("git")
    if git is None:
        return None
    out = subprocess.run(
        [git, "-C", str(REPO), "show", f"{BASELINE_COMMIT}:service/db.py"], capture_output=True, text=True
    )
    if out.returncode != 0:
        return None
    path = folder / "old_service_db.py"
    path.write_text(out.stdout)
    spec = importlib.util.spec_from_file_location("old_service_db", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_service_db"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("database", DATABASES, indirect=True)
def test_the_baseline_revision_is_the_schema_create_all_made_before(database: TestDatabase, tmp_path):
    from service.db import upgrade_database

    old = _old_models(tmp_path)
    if old is None:
        pytest.skip(f"commit {BASELINE_COMMIT} is not in this clone's history")
    engine = create_engine(database.url)
    try:
        upgrade_database(engine, "0001_baseline")
    finally:
        engine.dispose()
    assert _differences(database.url, old.Base.metadata) == []


def _previous_schema_with_a_row_in_each_table(url: str) -> None:
    """A database as the old ``create_all`` left it (baseline tables, no alembic_version), one row per table,
    plus a finished and a half-received upload."""
    from service.db import upgrade_database

    engine = create_engine(url)
    try:
        upgrade_database(engine, "0001_baseline")
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE alembic_version"))
            rows = [
                "INSERT INTO labs (id, name, created_at) VALUES (1, 'lab-old', :t)",
                "INSERT INTO tokens (id, lab_id, token_hash, name, created_at, revoked)"
                " VALUES (1, 1, 'ab12', 'ci', :t, false)",
                "INSERT INTO studies (id, lab_id, name, created_at) VALUES (1, 1, 'old study', :t)",
                "INSERT INTO recordings (id, study_id, session_id, metadata_json, created_at)"
                " VALUES (1, 1, 's1', '{\"fps\": 30}', :t)",
                "INSERT INTO rigs (id, rig_id, lab_id, study_id, secret, created_at)"
                " VALUES (1, 'rig-1', 1, 1, 'x', :t)",
                "INSERT INTO jobs (id, recording_id, status, attempts, not_before, progress, message, created_at,"
                " updated_at) VALUES (1, 1, 'done', 1, :t, 1.0, 'done', :t, :t)",
                "INSERT INTO uploads (id, lab_id, study_id, filename, size, \"offset\", metadata_json, recording_id,"
                " created_at) VALUES ('u-done', 1, 1, 'a.mp4', 10, 10, '{}', 1, :t)",
                "INSERT INTO uploads (id, lab_id, study_id, filename, size, \"offset\", metadata_json, created_at)"
                " VALUES ('u-half', 1, 1, 'b.mp4', 10, 4, '{}', :t)",
                "INSERT INTO uploads (id, lab_id, study_id, filename, size, \"offset\", metadata_json, created_at)"
                " VALUES ('u-new', 1, 1, 'c.mp4', 10, 0, '{}', :t)",
                "INSERT INTO rig_deliveries (id, rig_id, idempotency_key, recording_id, job_id, created_at)"
                " VALUES (1, 'rig-1', 'k1', 1, 1, :t)",
            ]
            for row in rows:
                conn.execute(text(row), {"t": T0})
    finally:
        engine.dispose()


@pytest.mark.parametrize("database", DATABASES, indirect=True)
def test_a_database_of_the_previous_schema_is_stamped_upgraded_and_keeps_its_rows(database: TestDatabase):
    from service.db import Base, Recording, RigDelivery, Upload, database_revision, make_engine, session_factory

    _previous_schema_with_a_row_in_each_table(database.url)
    engine = make_engine(database.url)
    try:
        assert database_revision(engine) == "0002_upload_state"
        with engine.connect() as conn:
            for table in ("labs", "tokens", "studies", "recordings", "rigs", "jobs", "rig_deliveries"):
                assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 1, table
        with session_factory(engine)() as db:
            assert db.get(Recording, 1).size_bytes == 0 and db.get(Recording, 1).metadata_json == {"fps": 30}
            assert db.get(RigDelivery, 1).request_sha256 == ""
            done, half, new = (db.get(Upload, u) for u in ("u-done", "u-half", "u-new"))
            assert (done.state, done.recording_id, done.chunks, done.session_id) == ("complete", 1, [], "")
            assert half.state == "failed" and "older version" in half.error
            assert new.state == "receiving" and new.error is None
            assert {u.updated_at for u in (done, half, new)} == {T0}
        columns = {c["name"]: c for c in inspect(engine).get_columns("uploads")}
        assert {"session_id", "chunks", "state", "error", "updated_at"} <= set(columns)
    finally:
        engine.dispose()
    assert _differences(database.url, Base.metadata) == []


@pytest.mark.parametrize("database", DATABASES, indirect=True)
def test_processes_starting_at_once_on_an_empty_database_migrate_it_once(database: TestDatabase, tmp_path):
    """The API, workers and admin commands all migrate at start-up: four at once must all succeed."""
    env = {**os.environ, "PAINBATTERY_DATA_DIR": str(tmp_path / "data"), "PAINBATTERY_DATABASE_URL": database.url}
    procs = [
        subprocess.Popen([str(BIN), "admin", "create-lab", f"lab-{i}"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]  # fmt: skip
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outs]
    assert sorted(int(out) for out, _ in outs) == [1, 2, 3, 4]


# ------------------------------------------------------------------------------------ unreachable database


def test_admin_worker_and_serve_with_an_unreachable_database_exit_2_with_one_line(tmp_path):
    port = _closed_port()
    cases = {
        f"postgresql+psycopg://painbattery:secret-pw@127.0.0.1:{port}/painbattery": "Connection refused",
        f"sqlite:///{tmp_path}/no/such/folder/painbattery.db": "No such file or directory",
    }
    socket_dir = Path("/var/run/postgresql")
    if (socket_dir / ".s.PGSQL.5432").exists():  # a local server: peer authentication refuses a stranger
        cases["postgresql+psycopg://no_such_role_pb@/painbattery"] = "authentication failed"
    for url, reason in cases.items():
        for args in (("admin", "create-lab", "lab-x"), ("worker", "--idle-exit"), ("serve", "--port", str(port))):
            out = _run(url, tmp_path, *args)
            lines = out.stderr.strip().splitlines()
            assert out.returncode == 2, (url, args, out.stderr)
            assert len(lines) == 1 and lines[0].startswith("error: cannot reach the database"), out.stderr
            assert reason in lines[0], lines[0]
            assert "secret-pw" not in out.stderr  # the password is never printed


def test_the_api_answers_503_when_its_database_cannot_be_reached(tmp_path):
    """In process: the app's sessions are pointed at a closed port after start-up."""
    from fastapi.testclient import TestClient
    from sqlalchemy.orm import sessionmaker

    from service.app import create_app
    from service.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "data", check_processes=1))
    with TestClient(app) as client:
        assert client.get("/api/v1/studies").status_code == 401  # up, and asking for a token
        dead = create_engine(f"postgresql+psycopg://pb:pw@127.0.0.1:{_closed_port()}/pb")
        app.state.factory = sessionmaker(dead)
        r = client.get("/api/v1/studies", headers={"Authorization": "Bearer pb_x"})
        assert r.status_code == 503 and r.json() == {"detail": "database unavailable; try again later"}
        assert r.headers["retry-after"] == "30" and r.headers["x-content-type-options"] == "nosniff"
        assert client.get("/api/v1/health").status_code == 200  # liveness needs no database
        dead.dispose()


@pytest.mark.parametrize("kind", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_running_server_whose_database_is_dropped_answers_503(kind, tmp_path):
    """A real server on PostgreSQL: its database is dropped under it; requests get 503 and JSON, not 500."""
    srv = Server(tmp_path, kind)
    try:
        _, headers = srv.lab("lab-503")
        assert httpx.get(f"{srv.url}/api/v1/studies", headers=headers).status_code == 200
        srv.database.drop()
        for path in ("/api/v1/studies", "/api/v1/me"):
            r = httpx.get(srv.url + path, headers=headers)
            assert r.status_code == 503, r.text
            assert r.json() == {"detail": "database unavailable; try again later"}
        assert httpx.get(f"{srv.url}/api/v1/health").status_code == 200
    finally:
        srv.stop()
