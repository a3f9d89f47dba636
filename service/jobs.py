"""The database job queue and the worker that runs it.

A job is claimed with a compare-and-set ``UPDATE ... WHERE id = :id AND (queued and due, or running
with an expired lease) AND attempts < max_attempts``: whichever worker's update matches wins, on SQLite
and PostgreSQL alike (PostgreSQL also locks the candidate with ``FOR UPDATE SKIP LOCKED``). Labs take
turns: of the due jobs, the worker tries the oldest of each lab, the lab with the fewest running jobs
first, then the lab served least recently, so one lab's bulk upload cannot starve the others.

The worker scores in a child process (:mod:`service.scorer`) under a wall-clock limit per attempt
(``job_timeout_seconds``) and renews its lease only while that child is alive and within its limit: a
scorer that crashes (a segfault in a decoder) or hangs costs an attempt, never the worker. A worker
that dies or freezes stops renewing, and its job is retaken when the lease expires; a lease that
expires on the job's last attempt fails the job ("lease lost"), so a job that kills its workers cannot
loop forever. Completion is a compare-and-set on the worker's own claim, so a worker that lost its
lease can never record a result: no job is lost, none is done twice. Failures are retried with
exponential backoff up to ``max_attempts``, then the job fails with its error text kept.

GPU/CPU work happens only here, never in the request handlers.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, literal, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session as OrmSession

from service.db import Job, Recording, Study, make_engine, session_factory, utcnow
from service.scorer import ScorerChild, ScorerCrashError, ScorerError, ScorerTimeoutError
from service.settings import Settings

__all__ = ["Worker", "claim_job", "enqueue", "fail_exhausted", "recording_work_dir", "worker_id"]

log = logging.getLogger(__name__)


def worker_id() -> str:
    """A name for this worker process: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def enqueue(db: OrmSession, recording: Recording) -> Job:
    """Add a queued job for a recording (committed by the caller)."""
    job = Job(recording_id=recording.id, status="queued", message="waiting for a worker")
    db.add(job)
    db.flush()
    return job


def _due(now: datetime):
    return or_(
        (Job.status == "queued") & (Job.not_before <= now),
        (Job.status == "running") & (Job.lease_until < now),
    )


def _claimable(now: datetime, max_attempts: int | None):
    if max_attempts is None:
        return _due(now)
    return _due(now) & (Job.attempts < max_attempts)


def fail_exhausted(engine: Engine, max_attempts: int) -> list[int]:
    """Fail the due jobs that have no attempt left; return their ids.

    A running job whose lease expired on its last attempt fails with a reason naming the lost lease
    (its worker was killed, frozen or hung every time); a queued job with no attempt left (the limit
    was lowered) fails as such. Each update re-checks its condition, so concurrent workers agree.
    """
    factory = session_factory(engine)
    postgres = engine.dialect.name == "postgresql"
    failed: list[int] = []
    with factory() as db, db.begin():
        now = utcnow()
        exhausted = _due(now) & (Job.attempts >= max_attempts)
        query = select(Job.id, Job.status, Job.worker_id, Job.attempts).where(exhausted)
        if postgres:
            query = query.with_for_update(skip_locked=True)
        for job_id, status, worker, attempts in db.execute(query).all():
            if status == "running":
                error = (
                    f"LeaseLost: the lease of worker {worker} expired on attempt {attempts} of {max_attempts} "
                    "(the worker was killed, frozen or hung); not retried"
                )
            else:
                error = f"AttemptsExhausted: {attempts} attempt(s) used, max_attempts is {max_attempts}"
            done = db.execute(
                update(Job)
                .where(Job.id == job_id, exhausted)
                .values(
                    status="failed",
                    finished_at=now,
                    updated_at=now,
                    lease_until=None,
                    message=f"failed after {attempts} attempt(s)",
                    error=error,
                )
            ).rowcount
            if done == 1:
                failed.append(job_id)
                log.warning("job %s failed: %s", job_id, error)
    return failed


def _lab_turns(db: OrmSession, now: datetime, max_attempts: int | None) -> list[int]:
    """The oldest claimable job of each lab, in the order labs take turns.

    Labs with fewer running jobs come first, then labs served least recently (the last time a worker
    touched one of their attempted jobs), then the lab whose oldest job is oldest.
    """
    joined = (
        select(Study.lab_id)
        .select_from(Job)
        .join(Recording, Recording.id == Job.recording_id)
        .join(Study, Study.id == Recording.study_id)
    )
    heads = dict(
        db.execute(
            joined.add_columns(func.min(Job.id)).where(_claimable(now, max_attempts)).group_by(Study.lab_id)
        ).all()
    )
    if len(heads) <= 1:
        return list(heads.values())
    running = func.sum(case(((Job.status == "running") & (Job.lease_until >= now), 1), else_=0))
    served = func.max(case((Job.attempts > 0, Job.updated_at), else_=None))
    stats = {
        lab: (int(n or 0), last or datetime.min)
        for lab, n, last in db.execute(
            joined.add_columns(running, served).where(Study.lab_id.in_(list(heads))).group_by(Study.lab_id)
        ).all()
    }
    return [heads[lab] for lab in sorted(heads, key=lambda lab: (*stats[lab], heads[lab]))]


def claim_job(engine: Engine, me: str, lease_seconds: float, max_attempts: int | None = None) -> int | None:
    """Claim a due job (or one whose worker's lease expired), labs taking turns; return its id, or None.

    Parameters
    ----------
    engine
        The queue's database.
    me
        The claiming worker's name.
    lease_seconds
        How long the claim holds without renewal.
    max_attempts
        Jobs with this many attempts are not claimed again (None: no limit); see :func:`fail_exhausted`.
    """
    factory = session_factory(engine)
    postgres = engine.dialect.name == "postgresql"
    for _ in range(3):  # other workers may win every candidate of a round: look again
        with factory() as db:
            candidates = _lab_turns(db, utcnow(), max_attempts)
        if not candidates:
            return None
        for candidate in candidates:
            with factory() as db, db.begin():
                now = utcnow()
                claimable = _claimable(now, max_attempts)
                if postgres:
                    lock = select(Job.id).where(Job.id == candidate, claimable).with_for_update(skip_locked=True)
                    if db.execute(lock).scalar_one_or_none() is None:
                        continue
                claimed = db.execute(
                    update(Job)
                    .where(Job.id == candidate, claimable)
                    .values(
                        status="running",
                        worker_id=me,
                        lease_until=now + timedelta(seconds=lease_seconds),
                        attempts=Job.attempts + 1,
                        updated_at=now,
                        # a retaken job says whose lease ran out (evaluated before worker_id is set)
                        message=case(
                            (Job.status == "running", literal("running; retaken after the lease of ") + Job.worker_id),
                            else_=literal("running"),
                        ),
                        progress=0.0,
                    )
                ).rowcount
                if claimed == 1:
                    return candidate
    return None


class _ClaimLostError(Exception):
    """This worker's claim on the job is gone (lease expired and retaken, or the job finished)."""


def recording_work_dir(rec: Recording) -> Path:
    """Where a recording's derived files (predicted poses) go: beside its stored file, under its lab and study.

    Never a folder shared by recordings: session ids are unique only within a study, so two labs'
    ``s1`` would otherwise write the same ``poses/s1.h5``.
    """
    stored = rec.video_path or rec.pose_path
    if not stored:
        raise ValueError(f"expected recording {rec.id} to have a stored file, got none")
    return Path(stored).parent / "derived"


class Worker:
    """Takes jobs from the database and scores them in a child process with the configured scorer.

    Parameters
    ----------
    settings
        Service settings (database, storage, leases, retries, time limit, scorer, default pose model).
    name
        Worker identity recorded on claimed jobs.
    """

    def __init__(self, settings: Settings, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or worker_id()
        self.engine = make_engine(settings.database_url or "")
        self.factory = session_factory(self.engine)
        self.stop = threading.Event()
        self.scorer = ScorerChild(settings.scorer, overrides=tuple(settings.assay_overrides))

    def close(self) -> None:
        """Stop the scoring child."""
        self.scorer.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ job row updates

    def _mine(self, job_id: int):
        return (Job.id == job_id) & (Job.worker_id == self.name) & (Job.status == "running")

    def _renew(self, job_id: int, **values: Any) -> bool | None:
        """Extend the lease (and set ``values``); True if still ours, False if lost, None if the database failed."""
        try:
            with self.factory() as db, db.begin():
                now = utcnow()
                values.setdefault("lease_until", now + timedelta(seconds=self.settings.lease_seconds))
                rows = db.execute(update(Job).where(self._mine(job_id)).values(updated_at=now, **values)).rowcount
        except SQLAlchemyError as exc:  # a busy or lost database: try again at the next beat
            log.warning("job %s: lease renewal failed: %s", job_id, exc)
            return None
        return rows == 1

    # ----------------------------------------------------------------------------------- running

    def run_one(self) -> int | None:
        """Claim and run one job; return its id, or None when nothing is due."""
        fail_exhausted(self.engine, self.settings.max_attempts)
        job_id = claim_job(self.engine, self.name, self.settings.lease_seconds, max_attempts=self.settings.max_attempts)
        if job_id is None:
            return None
        try:
            measures, quality = self._score(job_id)
        except _ClaimLostError:
            log.warning("job %s: claim lost (lease expired and the job was retaken); result dropped", job_id)
            return job_id
        except ScorerError as exc:
            self._failed(job_id, str(exc), exc.detail)
            return job_id
        except (ScorerCrashError, ScorerTimeoutError) as exc:
            self._failed(job_id, f"{type(exc).__name__}: {exc}", "")
            return job_id
        except Exception as exc:  # in the worker itself (e.g. the scorer cannot be started): fail the attempt
            self._failed(job_id, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3))
            return job_id
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
        """Score a claimed job in the child; keep the lease while the child lives and is within its limit."""
        with self.factory() as db:
            job = db.get(Job, job_id)
            rec = db.get(Recording, job.recording_id)
            session = dict(rec.metadata_json)
            session.update(video=rec.video_path, pose=rec.pose_path)
            work_dir = str(recording_work_dir(rec))
        model = str(self.settings.default_model) if self.settings.default_model else None
        limit = self.settings.job_timeout_seconds
        interval = max(0.2, self.settings.lease_seconds / 3)
        self.scorer.submit(job_id, session, model, work_dir)
        began = time.monotonic()
        deadline, next_beat = began + limit, began + interval
        last = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                self.scorer.kill()
                raise ScorerTimeoutError(f"scorer cut short at {limit:g} s (PAINBATTERY_JOB_TIMEOUT_SECONDS)")
            if now >= next_beat and self.scorer.alive():
                self._keep(job_id)
                next_beat = now + interval
            message = self.scorer.next_message(min(next_beat, deadline) - now)  # raises ScorerCrashError
            if message is None or message[1] != job_id:
                continue
            kind = message[0]
            if kind == "progress":
                stage, fraction = message[2], message[3]
                value = 0.05 + 0.85 * fraction if stage == "poses" else 0.95
                if value - last >= 0.05 or stage != "poses":
                    last = value
                    self._keep(job_id, progress=round(value, 3), message=f"{stage} {100 * fraction:.0f} %")
                    next_beat = time.monotonic() + interval
            elif kind == "done":
                return message[2], message[3]
            elif kind == "error":
                raise ScorerError(message[2], message[3])

    def _keep(self, job_id: int, **values: Any) -> None:
        """Renew the lease; on a lost claim, kill the child (its result could not count) and give up."""
        if self._renew(job_id, **values) is False:
            self.scorer.kill()
            raise _ClaimLostError(job_id)

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
            job.error = f"{error}\n{detail}" if detail else error
            job.lease_until, job.updated_at = None, now

    def run(self, *, poll_seconds: float = 1.0, max_jobs: int | None = None, idle_exit: bool = False) -> int:
        """Work until stopped (or ``max_jobs`` done, or nothing is due when ``idle_exit``); return jobs run.

        Raises
        ------
        ValueError
            If the configured scorer cannot be loaded, or an assay override names no setting of any
            registered assay (both checked before any job is claimed).
        """
        n = 0
        try:
            if self.settings.assay_overrides:
                from behavior.assays import assay_names, check_overrides

                try:
                    check_overrides(self.settings.assay_overrides, assay_names())
                except ValueError as exc:
                    raise ValueError(f"PAINBATTERY_ASSAY_OVERRIDES: {exc}") from exc
            self.scorer.start()
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
        finally:
            self.close()
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
