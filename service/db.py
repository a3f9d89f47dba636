"""Database schema (SQLAlchemy 2.0; SQLite by default, PostgreSQL by URL), its migrations and the session factory.

The models here are the schema's truth; ``service/migrations`` (Alembic) takes a database there: a
change to a model goes with a new revision, and a test checks that an empty database migrated to head
matches these models exactly.
"""

from __future__ import annotations

import fcntl
import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    make_url,
    text,
)
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

__all__ = [
    "BASELINE_REVISION",
    "Base",
    "DatabaseUnavailableError",
    "Job",
    "Lab",
    "Recording",
    "Rig",
    "RigDelivery",
    "Study",
    "Token",
    "Upload",
    "alembic_config",
    "database_revision",
    "hash_token",
    "make_engine",
    "new_token",
    "safe_url",
    "session_factory",
    "unavailable",
    "upgrade_database",
    "utcnow",
]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: The revision of the schema the old ``create_all`` made (commit 66a6dae); older databases are stamped at it.
BASELINE_REVISION = "0001_baseline"
MIGRATION_LOCK_KEY = 0x7062_6D69_6772  # "pbmigr": the advisory lock migrations hold on PostgreSQL


def utcnow() -> datetime:
    """Now in UTC, naive (stored the same way by SQLite and PostgreSQL, so comparisons are safe)."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_token() -> str:
    """A new random API token (shown once; only its hash is stored)."""
    return "pb_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 of a token (tokens are 256-bit random, so a plain hash is safe at rest)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Base(DeclarativeBase):
    """Declarative base."""


class Lab(Base):
    """A lab: owns studies, tokens and rigs; sees nothing of other labs."""

    __tablename__ = "labs"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Token(Base):
    """An API token of a lab (hashed at rest)."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("labs.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked: Mapped[bool] = mapped_column(default=False)


class Study(Base):
    """A study of a lab."""

    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("labs.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Recording(Base):
    """One session of a study: its metadata, stored files, and (once scored) measures and quality."""

    __tablename__ = "recordings"
    __table_args__ = (UniqueConstraint("study_id", "session_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    session_id: Mapped[str] = mapped_column(String(200))
    metadata_json: Mapped[dict] = mapped_column(JSON)
    video_path: Mapped[str | None] = mapped_column(Text, default=None)
    pose_path: Mapped[str | None] = mapped_column(Text, default=None)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    measures_json: Mapped[list | None] = mapped_column(JSON, default=None)
    quality_json: Mapped[dict | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """Scoring work for one recording, taken by workers from the database queue."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)  # queued|running|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class Upload(Base):
    """A resumable chunked upload (bytes received so far = ``offset``).

    Each PATCH streams into a chunk file of its own; the offset advances by a compare-and-set on
    ``offset``, and only the winner's chunk is listed in ``chunks`` (``[offset, size, name]``), so two
    requests at the same offset can never both write into the file. ``state``: receiving, complete,
    failed (the file failed its final check: ``error`` says why) or expired.
    """

    __tablename__ = "uploads"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("labs.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    session_id: Mapped[str] = mapped_column(String(200), default="", server_default="")
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    chunks: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    state: Mapped[str] = mapped_column(String(16), default="receiving", server_default="receiving", index=True)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    metadata_json: Mapped[dict] = mapped_column(JSON)
    recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Rig(Base):
    """A camera rig allowed to post recordings into a study, with its HMAC secret."""

    __tablename__ = "rigs"
    id: Mapped[int] = mapped_column(primary_key=True)
    rig_id: Mapped[str] = mapped_column(String(100), unique=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("labs.id"))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RigDelivery(Base):
    """A rig POST already accepted, by idempotency key: a retried POST returns the same recording."""

    __tablename__ = "rig_deliveries"
    __table_args__ = (UniqueConstraint("rig_id", "idempotency_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    rig_id: Mapped[str] = mapped_column(String(100))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    # of the body hash, file name and metadata
    request_sha256: Mapped[str] = mapped_column(String(64), default="", server_default="")
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatabaseUnavailableError(ValueError):
    """The database cannot be reached: refused, unknown host, bad credentials, missing database.

    A ``ValueError`` so the command line reports it as one line and exit 2 (a setting to fix, not a bug);
    the API answers 503.
    """


def safe_url(url: str | URL) -> str:
    """``url`` with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def unavailable(url: str | URL, exc: BaseException) -> DatabaseUnavailableError:
    """The one-line :class:`DatabaseUnavailableError` of a failed connection to ``url``."""
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    reason = lines[0] if lines else type(cause).__name__
    return DatabaseUnavailableError(f"cannot reach the database {safe_url(url)}: {reason}")


def make_engine(url: str, *, migrate: bool = True) -> Engine:
    """An engine for ``url``, the database brought to the newest schema (see :func:`upgrade_database`).

    SQLite gets WAL and a busy timeout so the API and workers share it.

    Parameters
    ----------
    url
        SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://user:pw@host/db``).
    migrate
        Run the migrations (the default); False only connects once to check the database is there.

    Raises
    ------
    DatabaseUnavailableError
        When the database cannot be reached (one line naming the URL, password hidden, and the reason).
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record) -> None:  # pragma: no cover - driver hook
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    else:
        engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    try:
        if migrate:
            upgrade_database(engine)
        else:
            with engine.connect():
                pass
    except (OperationalError, InterfaceError) as exc:
        engine.dispose()
        raise unavailable(url, exc) from exc
    return engine


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the migration lock of ``engine``'s database.

    The API, workers and admin commands all migrate at start-up, perhaps at once: PostgreSQL serialises
    them with a transaction-scoped advisory lock (and runs the DDL in that transaction), SQLite with an
    exclusive lock on a file beside the database.
    """
    database = engine.url.database or ""
    lock_file = None
    if engine.dialect.name == "sqlite" and database and database != ":memory:" and not database.startswith("file:"):
        try:
            lock_file = Path(database + ".migrate-lock").open("a")  # noqa: SIM115 - closed in finally
        except OSError as exc:  # the database's folder is missing or not writable
            raise unavailable(engine.url, exc) from exc
        fcntl.flock(lock_file, fcntl.LOCK_EX)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            yield conn
    finally:
        if lock_file is not None:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            lock_file.close()


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration of the service's migrations (``service/migrations``), on ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Bring ``engine``'s database to ``revision`` (default: the newest), under the migration lock.

    An empty database is built from the baseline up; one made by the old ``create_all`` (tables but no
    ``alembic_version``) is first stamped at :data:`BASELINE_REVISION`, the schema it has, then upgraded.
    """
    with _migration_lock(engine) as conn:
        cfg = alembic_config(conn)
        tables = set(inspect(conn).get_table_names())
        if "alembic_version" not in tables and "labs" in tables:
            command.stamp(cfg, BASELINE_REVISION)
        command.upgrade(cfg, revision)


def database_revision(engine: Engine) -> str | None:
    """The revision ``engine``'s database is at (None: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def session_factory(engine: Engine) -> sessionmaker:
    """ORM sessions bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)
