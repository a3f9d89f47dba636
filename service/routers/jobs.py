"""Scoring jobs: one job's status, and the lab's jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from service.db import Job, Recording, Study
from service.deps import CurrentLab, Db, job_json, known_id

__all__ = ["router"]

router = APIRouter()


@router.get("/api/v1/jobs/{job_id}")
def get_job(job_id: int, lab: CurrentLab, db: Db) -> dict[str, Any]:
    """A job's status (queued, running, done, failed), progress and error."""
    job = db.get(Job, job_id) if known_id(job_id) else None
    rec = db.get(Recording, job.recording_id) if job else None
    if job is None or rec is None or db.get(Study, rec.study_id).lab_id != lab.id:
        raise HTTPException(404, f"job {job_id} not found")
    return {**job_json(job), "session_id": rec.session_id, "study_id": rec.study_id}


@router.get("/api/v1/jobs")
def list_jobs(lab: CurrentLab, db: Db, study_id: int | None = None) -> list[dict[str, Any]]:
    """The lab's jobs (of one study if ``study_id``), newest first."""
    query = (
        select(Job, Recording)
        .join(Recording, Job.recording_id == Recording.id)
        .join(Study, Recording.study_id == Study.id)
        .where(Study.lab_id == lab.id)
    )
    if study_id is not None:
        if not known_id(study_id):
            return []
        query = query.where(Study.id == study_id)
    rows = db.execute(query.order_by(Job.id.desc()).limit(500)).all()
    return [{**job_json(j), "session_id": r.session_id, "study_id": r.study_id} for j, r in rows]
