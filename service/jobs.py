"""The database job queue and the worker that runs it.

A job is claimed with a compare-and-set ``UPDATE ... WHERE id = :id AND (queued and due, or running
with an expired lease)``: whichever worker's update matches wins, on SQLite and PostgreSQL alike
(PostgreSQL also selects candidates with ``FOR UPDATE SKIP LOCKED``). The worker renews its lease
while it works; a worker that dies stops renewing, and its job is retaken when the lease expires.
Completion is a compare-and-set on the worker's own claim, so a worker that lost its lease can never
record a result: no job is lost, none is done twice. Failures are retried with exponential backoff
up to ``max_attempts``, then the job fails with its error text kept.

GPU/CPU work happens only here, never in the request handlers.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from service.db import Job, Recording, make_engine, session_factory, utcnow
from service.settings import Settings

__all__ = ["Worker", "claim_job", "enqueue", "worker_id"]


def worker_id() -> str:
    """A name for this worker process: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def enqueue(db: OrmSession, recording: Recording) -> Job:
    """Add a queued job for a recording (committed by the caller)."""
    job = Job(recording_id=recording.id, status="queued", message="waiting for a worker")
    db.add(job)
    db.flush()
    return job


def _claimable(now):
    return or_(
        (Job.status == "queued") & (Job.not_before <= now),
        (Job.status == "running") & (Job.lease_until < now),
    )


def claim_job(engine: Engine, me: str, lease_seconds: float) -> int | None:
    """Claim the oldest due job (or one whose worker's lease expired); return its id, or None."""
    factory = session_factory(engine)
    postgres = engine.dialect.name == "postgresql"
    for _ in range(5):  # another worker may win the race for a candidate: try the next one
        with factory() as db, db.begin():
            now = utcnow()
            query = select(Job.id).where(_claimable(now)).order_by(Job.id).limit(1)
            if postgres:
                query = query.with_for_update(skip_locked=True)
            candidate = db.execute(query).scalar_one_or_none()
            if candidate is None:
                return None
            claimed = db.execute(
                update(Job)
                .where(Job.id == candidate, _claimable(now))
                .values(
                    status="running",
                    worker_id=me,
                    lease_until=now + timedelta(seconds=lease_seconds),
                    attempts=Job.attempts + 1,
                    updated_at=now,
                    message="running",
                    progress=0.0,
                )
            ).rowcount
            if claimed == 1:
                return candidate
    return None


class Worker:
    """Takes jobs from the database and scores them with :func:`behavior.pipeline.run_session`.

    Parameters
    ----------
    settings
        Service settings (database, storage, leases, retries, default pose model).
    name
        Worker identity recorded on claimed jobs.
    """

    def __init__(self, settings: Settings, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or worker_id()
        self.engine = make_engine(settings.database_url or "")
        self.factory = session_factory(self.engine)
        self.stop = threading.Event()

    # ------------------------------------------------------------------------------ job row updates

    def _mine(self, job_id: int):
        return (Job.id == job_id) & (Job.worker_id == self.name) & (Job.status == "running")

    def _renew(self, job_id: int, **values: Any) -> bool:
        with self.factory() as db, db.begin():
            now = utcnow()
            values.setdefault("lease_until", now + timedelta(seconds=self.settings.lease_seconds))
            return db.execute(update(Job).where(self._mine(job_id)).values(updated_at=now, **values)).rowcount == 1

    def _heartbeat(self, job_id: int, done: threading.Event) -> None:
        interval = max(0.2, self.settings.lease_seconds / 3)
        while not done.wait(interval):
            if not self._renew(job_id):
                return

    # ----------------------------------------------------------------------------------- running

    def run_one(self) -> int | None:
        """Claim and run one job; return its id, or None when nothing is due."""
        job_id = claim_job(self.engine, self.name, self.settings.lease_seconds)
        if job_id is None:
            return None
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job_id, done), daemon=True)
        beat.start()
        try:
            measures, quality = self._score(job_id)
        except Exception as exc:
            done.set()
            self._failed(job_id, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3))
            return job_id
        done.set()
        with self.factory() as db, db.begin():
            now = utcnow()
            won = db.execute(
                update(Job)
                .where(self._mine(job_id))
                .values(status="done", progress=1.0, finished_at=now, updated_at=now, message="done", lease_until=None)
            ).rowcount
            if won == 1:  # only the worker that still holds the claim records the result
                job = db.get(Job, job_id)
                rec = db.get(Recording, job.recording_id)
                rec.measures_json = measures
                rec.quality_json = quality
        return job_id

    def _score(self, job_id: int) -> tuple[list[dict], dict]:
        from behavior.pipeline import run_session
        from behavior.session import Session

        with self.factory() as db:
            job = db.get(Job, job_id)
            rec = db.get(Recording, job.recording_id)
            meta = dict(rec.metadata_json)
            video, pose = rec.video_path, rec.pose_path
        meta.update(video=video, pose=pose)
        session = Session.model_validate(meta)
        last = [0.0]

        def progress(stage: str, fraction: float) -> None:
            value = 0.05 + 0.85 * fraction if stage == "poses" else 0.95
            if value - last[0] >= 0.05 or stage != "poses":
                last[0] = value
                self._renew(job_id, progress=round(value, 3), message=f"{stage} {100 * fraction:.0f} %")

        result = run_session(
            session,
            model=self.settings.default_model,
            work_dir=Path(self.settings.storage_dir or ".") / "poses",
            progress=progress,
        )
        measures = result.measures.to_dict("records")
        return measures, result.quality

    def _failed(self, job_id: int, error: str, detail: str) -> None:
        with self.factory() as db, db.begin():
            job = db.get(Job, job_id)
            if job is None or job.worker_id != self.name or job.status != "running":
                return
            now = utcnow()
            if job.attempts < self.settings.max_attempts:
                delay = self.settings.retry_backoff_seconds * 2 ** (job.attempts - 1)
                job.status, job.not_before = "queued", now + timedelta(seconds=delay)
                job.message = f"attempt {job.attempts} failed, retrying in {delay:.0f} s: {error}"
            else:
                job.status, job.finished_at = "failed", now
                job.message = f"failed after {job.attempts} attempt(s)"
            job.error, job.lease_until, job.updated_at = f"{error}\n{detail}", None, now

    def run(self, *, poll_seconds: float = 1.0, max_jobs: int | None = None, idle_exit: bool = False) -> int:
        """Work until stopped (or ``max_jobs`` done, or nothing is due when ``idle_exit``); return jobs run."""
        n = 0
        while not self.stop.is_set():
            job_id = self.run_one()
            if job_id is None:
                if idle_exit:
                    break
                self.stop.wait(poll_seconds)
                continue
            n += 1
            if max_jobs is not None and n >= max_jobs:
                break
        return n


def wait_for(engine: Engine, job_id: int, timeout: float = 60.0) -> str:
    """Poll a job until it is done or failed (tests and scripts); return its final status."""
    factory = session_factory(engine)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with factory() as db:
            status = db.get(Job, job_id).status
        if status in ("done", "failed"):
            return status
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} still not finished after {timeout} s")
