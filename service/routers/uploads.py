"""Resumable uploads: start one, send its bytes in chunks (PATCH at ``Upload-Offset``), ask how far it got."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session as OrmSession
from starlette.concurrency import run_in_threadpool

from service.db import Lab, Upload, utcnow
from service.deps import (
    AppSettings,
    Checker,
    CurrentLab,
    Db,
    Storage,
    declared_length,
    json_body,
    json_request_body,
    own_study,
)
from service.intake import (
    FileChecker,
    accept,
    assemble_chunks,
    check_quota,
    discard_upload_files,
    new_chunk_path,
    session_exists,
    stream_body,
)
from service.storage import UploadError, parse_metadata, validate_metadata

__all__ = ["UploadIn", "router"]

router = APIRouter()

CHECK_GRACE_S = 600.0  # a final check stuck this long (its server died) may be retried
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


class UploadIn(BaseModel):
    """Start of a resumable upload."""

    study_id: int
    filename: str = Field(min_length=1, max_length=255)
    size: int = Field(gt=0)
    metadata: dict[str, Any]


@router.post("/api/v1/uploads", status_code=201, openapi_extra=json_request_body(UploadIn))
async def start_upload(lab: CurrentLab, db: Db, request: Request, settings: AppSettings) -> dict[str, Any]:
    """Start a resumable upload; then send the bytes with PATCH and ``Upload-Offset``.

    Everything but the file is checked here (name, size, metadata, a session id the study already
    has), so an upload never fails at its last byte for a reason known at its first.
    """
    body = await json_body(request, UploadIn)
    study = own_study(db, lab, body.study_id)
    if body.size > settings.max_upload_bytes:
        raise HTTPException(413, f"upload of {body.size} bytes exceeds the limit of {settings.max_upload_bytes}")
    meta = parse_metadata(body.metadata)
    session, _ = validate_metadata(meta, body.filename)
    if session_exists(db, study, session.session_id):
        raise HTTPException(409, f"session {session.session_id!r} already exists in study {study.id}")
    busy = db.execute(
        select(Upload.id).where(
            Upload.study_id == study.id, Upload.session_id == session.session_id, Upload.state == "receiving"
        )
    ).scalar_one_or_none()
    if busy is not None:
        raise HTTPException(409, f"session {session.session_id!r} is already being uploaded as upload {busy}")
    check_quota(db, lab, body.size, settings.lab_quota_bytes)
    upload = Upload(
        id=uuid.uuid4().hex,
        lab_id=lab.id,
        study_id=study.id,
        session_id=session.session_id,
        filename=body.filename,
        size=body.size,
        chunks=[],
        metadata_json=meta,
    )
    db.add(upload)
    db.commit()
    return {"upload_id": upload.id, "offset": 0, "size": upload.size}


def own_upload(db: OrmSession, lab: Lab, upload_id: str) -> Upload:
    """The upload ``upload_id`` of ``lab``; 404 for another lab's (or a malformed id)."""
    upload = db.get(Upload, upload_id) if _UPLOAD_ID.match(upload_id) else None
    if upload is None or upload.lab_id != lab.id:
        raise HTTPException(404, f"upload {upload_id} not found")
    return upload


def upload_json(upload: Upload, **extra: Any) -> dict[str, Any]:
    """An upload as the API shows it, with ``extra`` fields."""
    out = {
        "upload_id": upload.id,
        "offset": upload.offset,
        "size": upload.size,
        "complete": upload.state == "complete",
        "state": upload.state,
    }
    if upload.error:
        out["error"] = upload.error
    return {**out, **extra}


@router.get("/api/v1/uploads/{upload_id}")
def upload_status(upload_id: str, lab: CurrentLab, db: Db) -> dict[str, Any]:
    """How many bytes have arrived (resume from ``offset``), and the upload's state."""
    return upload_json(own_upload(db, lab, upload_id))


async def finish_upload(
    db: OrmSession, checker: FileChecker, storage: Path, lab: Lab, upload: Upload
) -> dict[str, Any]:
    """Assemble and check a fully received upload, once, even with concurrent final PATCHes."""
    now = utcnow()
    won = db.execute(
        update(Upload)
        .where(
            Upload.id == upload.id,
            Upload.offset == Upload.size,
            (Upload.state == "receiving")
            | ((Upload.state == "validating") & (Upload.updated_at < now - timedelta(seconds=2 * CHECK_GRACE_S))),
        )
        .values(state="validating", updated_at=now)
    ).rowcount
    db.commit()
    if won != 1:
        db.refresh(upload)
        if upload.state == "complete":
            return upload_json(upload, complete=True)
        raise HTTPException(409, f"upload {upload.id} is being checked by another request; GET it for the result")
    try:
        upload.chunks  # noqa: B018 -- load the expired row here: the thread below must not use the session
        # copying up to max_upload_bytes of chunk files must not stall every lab's requests on the event loop
        partial = await run_in_threadpool(assemble_chunks, storage, upload)
        study = own_study(db, lab, upload.study_id)
        result = await accept(db, checker, storage, lab, study, partial, upload.filename, dict(upload.metadata_json))
    except (UploadError, HTTPException) as exc:
        status = exc.status if isinstance(exc, UploadError) else exc.status_code
        reason = str(exc) if isinstance(exc, UploadError) else str(exc.detail)
        discard_upload_files(storage, upload.id)
        db.execute(
            update(Upload)
            .where(Upload.id == upload.id)
            .values(state="failed", error=reason, chunks=[], updated_at=utcnow())
        )
        db.commit()
        raise UploadError(status, f"{reason} (upload {upload.id} failed; start a new upload)") from exc
    discard_upload_files(storage, upload.id)
    db.execute(
        update(Upload)
        .where(Upload.id == upload.id)
        .values(state="complete", recording_id=result["recording_id"], chunks=[], updated_at=utcnow())
    )
    db.commit()
    db.refresh(upload)
    return upload_json(upload, **result)


@router.patch("/api/v1/uploads/{upload_id}")
async def upload_chunk(
    upload_id: str,
    request: Request,
    lab: CurrentLab,
    db: Db,
    upload_offset: Annotated[int, Header(ge=0, description="Byte offset of this chunk.")],
    storage: Storage,
    checker: Checker,
) -> dict[str, Any]:
    """Append a chunk at ``Upload-Offset``; the last chunk checks the file and queues its job.

    Each request streams into a file of its own; the offset then advances by a compare-and-set, so
    of two requests at the same offset (a client retrying after a timeout) exactly one counts.
    """
    upload = own_upload(db, lab, upload_id)
    if upload.state == "complete":
        raise HTTPException(409, "upload already complete")
    if upload.state in ("failed", "expired"):
        raise HTTPException(410, f"upload {upload.id} {upload.state}: {upload.error}; start a new upload")
    if upload_offset != upload.offset:
        raise HTTPException(409, f"expected Upload-Offset {upload.offset}, got {upload_offset}")
    room = upload.size - upload.offset
    length = declared_length(request, room)
    if length == 0 or room == 0:
        if upload.offset == upload.size:  # a retried last request: check the file (once)
            return await finish_upload(db, checker, storage, lab, upload)
        return upload_json(upload)
    chunk = new_chunk_path(storage, upload.id)
    try:
        written = await stream_body(request.stream(), chunk, room)
    except UploadError as exc:
        raise UploadError(413, f"chunk goes past the declared size of {upload.size} bytes") from exc
    if written == 0:
        chunk.unlink(missing_ok=True)
        return upload_json(upload)
    won = db.execute(
        update(Upload)
        .where(Upload.id == upload.id, Upload.offset == upload_offset, Upload.state == "receiving")
        .values(
            offset=upload_offset + written,
            chunks=[*upload.chunks, [upload_offset, written, chunk.name]],
            updated_at=utcnow(),
        )
    ).rowcount
    db.commit()
    if won != 1:
        chunk.unlink(missing_ok=True)
        raise HTTPException(409, f"another request wrote at offset {upload_offset} first; GET the upload and resume")
    db.refresh(upload)
    if upload.offset < upload.size:
        return upload_json(upload)
    return await finish_upload(db, checker, storage, lab, upload)
