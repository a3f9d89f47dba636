"""Database schema (SQLAlchemy 2.0; SQLite by default, PostgreSQL by URL) and the session factory."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

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
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

__all__ = [
    "Base",
    "Job",
    "Lab",
    "Recording",
    "Rig",
    "RigDelivery",
    "Study",
    "Token",
    "Upload",
    "hash_token",
    "make_engine",
    "new_token",
    "utcnow",
]


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
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
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
    session_id: Mapped[str] = mapped_column(String(200), default="")
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    chunks: Mapped[list] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default="receiving", index=True)
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
    request_sha256: Mapped[str] = mapped_column(String(64), default="")  # of body hash, file name and metadata
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so the API and workers share it."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record) -> None:  # pragma: no cover - driver hook
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    else:
        engine = create_engine(url, pool_pre_ping=True)
    Base.metadata.create_all(engine)
    return engine


def session_factory(engine: Engine) -> sessionmaker:
    """ORM sessions bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)
