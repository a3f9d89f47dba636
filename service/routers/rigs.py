"""The rig hook: a recording rig posts a finished recording, signed with its secret."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession

from service.db import Job, Lab, Recording, Rig, RigDelivery, Study
from service.deps import AppSettings, Checker, Db, Storage
from service.intake import accept, check_quota, request_sha256, stream_body
from service.storage import MAX_METADATA_CHARS, UploadError, check_filename, new_partial, parse_metadata

__all__ = ["router"]

router = APIRouter()

_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@router.post("/api/v1/rigs/{rig_id}/recordings", status_code=201)
async def rig_recording(
    rig_id: str,
    request: Request,
    db: Db,
    x_painbattery_timestamp: Annotated[str, Header(max_length=20)],
    x_painbattery_signature: Annotated[str, Header(max_length=128)],
    x_painbattery_filename: Annotated[str, Header(max_length=255)],
    x_painbattery_metadata: Annotated[str, Header(max_length=MAX_METADATA_CHARS)],
    x_painbattery_content_sha256: Annotated[str, Header(max_length=64)],
    content_length: Annotated[int, Header(ge=0)],
    idempotency_key: Annotated[str, Header(min_length=1, max_length=200)],
    settings: AppSettings,
    storage: Storage,
    checker: Checker,
) -> JSONResponse:
    """A rig posts a finished recording: raw file body, session metadata in a header.

    Everything is checked before a byte of the body is read. The signature is the hex HMAC-SHA256,
    with the rig's secret, of these lines joined by ``\\n``: timestamp (integer unix seconds), rig
    id, file name, idempotency key, the body's SHA-256 (hex), the body's length, metadata. The
    body is then checked against its declared hash and length as it streams. A timestamp outside
    the allowed clock skew is refused as a replay. A retried POST with the same ``Idempotency-Key``
    and the same recording returns what the first created (200) and creates nothing; the same key
    with a different recording is refused (422).
    """
    if not _TIMESTAMP.match(x_painbattery_timestamp):
        raise HTTPException(401, "expected an integer unix timestamp in X-Painbattery-Timestamp")
    if abs(time.time() - int(x_painbattery_timestamp)) > settings.rig_clock_skew_seconds:
        raise HTTPException(401, "timestamp outside the allowed window (a replayed or delayed request)")
    content_sha256 = x_painbattery_content_sha256.strip().lower()
    if not _SHA256.match(content_sha256):
        raise HTTPException(400, "expected the body's hex SHA-256 in X-Painbattery-Content-SHA256")
    # A NUL cannot be in a stored rig id (nor be sent to PostgreSQL): such a rig is simply unknown.
    rig = None if "\x00" in rig_id else db.execute(select(Rig).where(Rig.rig_id == rig_id)).scalar_one_or_none()
    signed = "\n".join(
        [
            x_painbattery_timestamp,
            rig_id,
            x_painbattery_filename,
            idempotency_key,
            content_sha256,
            str(content_length),
            x_painbattery_metadata,
        ]
    )
    # An unknown rig costs the same HMAC and gets the same answer as a bad signature.
    secret = rig.secret if rig is not None else secrets.token_hex(16)
    expected = hmac.new(secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
    # As bytes: header values are latin-1 text, and compare_digest refuses non-ASCII str.
    given = x_painbattery_signature.strip().lower().encode("latin-1")
    if not hmac.compare_digest(expected.encode(), given) or rig is None:
        raise HTTPException(401, "unknown rig or bad signature")
    if content_length > settings.max_upload_bytes:
        raise UploadError(413, f"upload of {content_length} bytes exceeds the limit of {settings.max_upload_bytes}")
    fingerprint = request_sha256(content_sha256, x_painbattery_filename, x_painbattery_metadata)

    def previous_delivery() -> JSONResponse | None:
        prev = db.execute(
            select(RigDelivery).where(RigDelivery.rig_id == rig_id, RigDelivery.idempotency_key == idempotency_key)
        ).scalar_one_or_none()
        if prev is None:
            return None
        if prev.request_sha256 != fingerprint:
            raise HTTPException(422, f"Idempotency-Key {idempotency_key!r} was already used for a different recording")
        rec = db.get(Recording, prev.recording_id)
        return JSONResponse(
            status_code=200, content={"session_id": rec.session_id, "job_id": prev.job_id, "duplicate": True}
        )

    if (answer := previous_delivery()) is not None:
        return answer
    check_filename(x_painbattery_filename)
    meta = parse_metadata(x_painbattery_metadata)
    lab, study = db.get(Lab, rig.lab_id), db.get(Study, rig.study_id)
    check_quota(db, lab, content_length, settings.lab_quota_bytes)
    partial = new_partial(storage)
    digest = hashlib.sha256()
    size = await stream_body(request.stream(), partial, content_length, digest=digest)
    if size != content_length or not hmac.compare_digest(digest.hexdigest(), content_sha256):
        partial.unlink(missing_ok=True)
        raise HTTPException(400, "the body does not match its signed length and X-Painbattery-Content-SHA256")

    def delivery(db: OrmSession, rec: Recording, job: Job) -> None:
        db.add(
            RigDelivery(
                rig_id=rig_id,
                idempotency_key=idempotency_key,
                request_sha256=fingerprint,
                recording_id=rec.id,
                job_id=job.id,
            )
        )
        db.flush()  # the unique (rig, key) constraint decides a race here, before the commit

    try:
        result = await accept(
            db, checker, storage, lab, study, partial, x_painbattery_filename, meta, add_rows=delivery
        )
    except (IntegrityError, UploadError) as exc:
        # The same key raced in from another request: answer as its retry would be answered.
        if (answer := previous_delivery()) is not None:
            return answer
        if isinstance(exc, UploadError):
            raise
        raise HTTPException(409, f"recording for Idempotency-Key {idempotency_key!r} conflicts") from exc
    return JSONResponse(status_code=201, content={**result, "duplicate": False})
