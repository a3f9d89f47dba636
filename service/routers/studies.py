"""Studies: create and list them, their sessions (and the multipart upload of one), measures, battery, report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session as OrmSession

from service.db import Job, Recording, Study
from service.deps import (
    AppSettings,
    Checker,
    CurrentLab,
    Db,
    Storage,
    declared_length,
    job_json,
    json_body,
    json_request_body,
    own_study,
)
from service.intake import MULTIPART_OVERHEAD_BYTES, accept, check_quota, read_multipart
from service.storage import UploadError, new_partial, parse_metadata

__all__ = ["StudyIn", "router"]

router = APIRouter()

#: The report on its own: no script runs, even opened directly; images are inline data.
REPORT_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"


class StudyIn(BaseModel):
    """A new study."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")  # no NUL/control characters


@router.post("/api/v1/studies", status_code=201, openapi_extra=json_request_body(StudyIn))
async def create_study(lab: CurrentLab, db: Db, request: Request) -> dict[str, Any]:
    """Create a study in the caller's lab."""
    body = await json_body(request, StudyIn)
    study = Study(lab_id=lab.id, name=body.name)
    db.add(study)
    db.commit()
    return {"id": study.id, "name": study.name}


@router.get("/api/v1/studies")
def list_studies(lab: CurrentLab, db: Db) -> list[dict[str, Any]]:
    """The caller's studies with their session counts."""
    rows = db.execute(
        select(Study, func.count(Recording.id))
        .outerjoin(Recording)
        .where(Study.lab_id == lab.id)
        .group_by(Study.id)
        .order_by(Study.id)
    ).all()
    return [{"id": s.id, "name": s.name, "sessions": n, "created_at": s.created_at.isoformat()} for s, n in rows]


@router.get("/api/v1/studies/{study_id}")
def get_study(study_id: int, lab: CurrentLab, db: Db) -> dict[str, Any]:
    """One study."""
    study = own_study(db, lab, study_id)
    return {"id": study.id, "name": study.name, "created_at": study.created_at.isoformat()}


@router.get("/api/v1/studies/{study_id}/sessions")
def list_sessions(study_id: int, lab: CurrentLab, db: Db) -> list[dict[str, Any]]:
    """The study's sessions with their latest job."""
    own_study(db, lab, study_id)
    out = []
    for rec in db.execute(select(Recording).where(Recording.study_id == study_id).order_by(Recording.id)).scalars():
        job = db.execute(select(Job).where(Job.recording_id == rec.id).order_by(Job.id.desc())).scalars().first()
        out.append(
            {
                **rec.metadata_json,
                "recording_id": rec.id,
                "file": Path(rec.video_path or rec.pose_path or "").name,
                "job": job_json(job) if job else None,
            }
        )
    return out


@router.post(
    "/api/v1/studies/{study_id}/sessions",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "metadata"],
                        "properties": {
                            "file": {"type": "string", "format": "binary", "description": "Video or pose file."},
                            "metadata": {"type": "string", "description": "JSON of the session fields."},
                        },
                    }
                }
            },
        }
    },
)
async def upload_session(
    study_id: int,
    lab: CurrentLab,
    db: Db,
    request: Request,
    settings: AppSettings,
    storage: Storage,
    checker: Checker,
) -> dict[str, Any]:
    """Upload one recording (video or pose file) with its session metadata; queues a scoring job.

    The token and the declared size are checked before any byte of the body is read; the file
    streams to disk (never spooled whole) and is checked in a child process.
    """
    study = own_study(db, lab, study_id)
    length = declared_length(request, settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES)
    check_quota(db, lab, length or 0, settings.lab_quota_bytes)
    partial = new_partial(storage)
    filename, raw_metadata, _ = await read_multipart(request, partial, settings.max_upload_bytes)
    try:
        meta = parse_metadata(raw_metadata)
    except UploadError:
        partial.unlink(missing_ok=True)
        raise
    return await accept(db, checker, storage, lab, study, partial, filename, meta)


# ------------------------------------------------------------------------------------- results


def study_measures(db: OrmSession, study_id: int) -> pd.DataFrame:
    """The long Measures table of the study's scored sessions, with the measures that compare sessions.

    Those (a test against its animal's pre-test) are computed here, over the sessions scored so far
    (:func:`behavior.pipeline.study_measures`), since each job scores one session.
    """
    from behavior.pipeline import MEASURES_COLUMNS
    from behavior.pipeline import study_measures as across_sessions

    rows, quality = [], []
    for rec in db.execute(select(Recording).where(Recording.study_id == study_id).order_by(Recording.id)).scalars():
        rows.extend(rec.measures_json or [])
        if rec.quality_json:
            quality.append(rec.quality_json)
    table, _ = across_sessions(pd.DataFrame(rows, columns=list(MEASURES_COLUMNS)), pd.DataFrame(quality))
    return table


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """``df`` as JSON records, NaN as null."""
    rows = json.loads(df.to_json(orient="records"))
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


@router.get("/api/v1/studies/{study_id}/measures")
def measures(study_id: int, lab: CurrentLab, db: Db) -> list[dict[str, Any]]:
    """The long Measures table of the study's scored sessions."""
    own_study(db, lab, study_id)
    return records(study_measures(db, study_id))


@router.get("/api/v1/studies/{study_id}/battery")
def battery(study_id: int, lab: CurrentLab, db: Db) -> list[dict[str, Any]]:
    """The battery: one row per animal x timepoint, columns ``domain.measure``."""
    from behavior.battery import BatteryConfig, battery_table

    own_study(db, lab, study_id)
    return records(battery_table(study_measures(db, study_id), BatteryConfig.load("default")))


@router.get("/api/v1/studies/{study_id}/report", response_class=HTMLResponse)
def report(study_id: int, lab: CurrentLab, db: Db, storage: Storage) -> HTMLResponse:
    """The study's HTML report (statistics and plots over the sessions scored so far)."""
    from behavior.report import write_outputs

    study = own_study(db, lab, study_id)
    table = study_measures(db, study_id)
    if table.empty:
        raise HTTPException(409, "no session of this study has been scored yet")
    quality = pd.DataFrame(
        [
            r.quality_json
            for r in db.execute(select(Recording).where(Recording.study_id == study_id)).scalars()
            if r.quality_json
        ]
    )
    failed = db.execute(
        select(Recording.session_id, Job.error)
        .join(Job, Job.recording_id == Recording.id)
        .where(Recording.study_id == study_id, Job.status == "failed")
    ).all()
    failures = pd.DataFrame(
        [{"session_id": s, "assay": "", "error": (e or "").splitlines()[0]} for s, e in failed],
        columns=["session_id", "assay", "error"],
    )
    out = storage / f"lab{lab.id}" / f"study{study.id}" / "report"
    paths = write_outputs(
        out,
        table,
        quality,
        failures,
        title=f"painbattery: {study.name}",
        provenance={"study": study.name, "study_id": study.id, "lab": lab.name},
    )
    return HTMLResponse(paths["report"].read_text(), headers={"Content-Security-Policy": REPORT_CSP})
