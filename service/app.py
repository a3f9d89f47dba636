"""The FastAPI upload service: ``create_app(settings)``.

Labs authenticate with API tokens (``Authorization: Bearer TOKEN``, hashed at rest) and only ever see
their own studies (another lab's study answers 404, as if it did not exist). Uploads stream to disk
and become a recording plus a queued job; ``painbattery worker`` processes score them. Every error is
a 4xx with a JSON body ``{"detail": "..."}`` naming the problem.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pandas as pd
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession
from starlette.concurrency import run_in_threadpool

from service.db import Job, Lab, Recording, Rig, RigDelivery, Study, Token, Upload, hash_token, make_engine, utcnow
from service.db import session_factory as make_factory
from service.intake import (
    MULTIPART_OVERHEAD_BYTES,
    FileChecker,
    accept,
    assemble_chunks,
    check_quota,
    discard_upload_files,
    expire_uploads,
    new_chunk_path,
    read_multipart,
    request_sha256,
    session_exists,
    stream_body,
)
from service.settings import Settings
from service.storage import (
    MAX_METADATA_CHARS,
    UploadError,
    check_filename,
    new_partial,
    parse_metadata,
    validate_metadata,
)

__all__ = ["create_app"]

WEB = Path(__file__).parent / "web"
CHECK_GRACE_S = 600.0  # a final check stuck this long (its server died) may be retried


class StudyIn(BaseModel):
    """A new study."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")  # no NUL/control characters


class UploadIn(BaseModel):
    """Start of a resumable upload."""

    study_id: int
    filename: str = Field(min_length=1, max_length=255)
    size: int = Field(gt=0)
    metadata: dict[str, Any]


Model = TypeVar("Model", bound=BaseModel)
MAX_JSON_BODY_BYTES = MAX_METADATA_CHARS + 64 * 1024  # a JSON request: session metadata and a few fields
MAX_ROW_ID = 2**31 - 1  # ids are 32-bit INTEGER columns: a larger id is not found, never a database error
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


def known_id(value: int) -> bool:
    """True if ``value`` can be a row id at all (beyond it the database would refuse the query)."""
    return 1 <= value <= MAX_ROW_ID


async def json_body(request: Request, model: type[Model]) -> Model:
    """The request's JSON body as ``model``, read only now (after the token was checked) and bounded.

    Routes take their JSON body this way rather than as a parameter, because FastAPI reads a body
    parameter before the token dependency runs: an anonymous client could make the server hold any
    amount of JSON in memory before its 401.

    Raises
    ------
    UploadError
        413 for a body (declared or streamed) over :data:`MAX_JSON_BODY_BYTES`.
    RequestValidationError
        422 (FastAPI's usual answer) for a body that is not valid JSON of ``model``.
    """
    raw = request.headers.get("content-length")
    if raw is not None and raw.isdigit() and int(raw) > MAX_JSON_BODY_BYTES:
        raise UploadError(413, f"request body of {raw} bytes exceeds the limit of {MAX_JSON_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY_BYTES:
            raise UploadError(413, f"request body exceeds the limit of {MAX_JSON_BODY_BYTES} bytes")
    try:
        return model.model_validate_json(bytes(body))
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from exc


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` of a route that reads ``model`` with :func:`json_body`."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


# ---------------------------------------------------------------------------------- dependencies
# Defined at module level so FastAPI can resolve the Annotated aliases in every route's signature.


def get_db(request: Request) -> Iterator[OrmSession]:
    """One ORM session per request."""
    with request.app.state.factory() as db:
        yield db


Db = Annotated[OrmSession, Depends(get_db)]


def get_lab(db: Db, authorization: Annotated[str | None, Header()] = None) -> Lab:
    """The lab of the bearer token; 401 without a valid token."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "expected an Authorization: Bearer <token> header")
    token = db.execute(
        select(Token).where(Token.token_hash == hash_token(authorization[7:].strip()), Token.revoked.is_(False))
    ).scalar_one_or_none()
    if token is None:
        raise HTTPException(401, "invalid or revoked token")
    return db.get(Lab, token.lab_id)


CurrentLab = Annotated[Lab, Depends(get_lab)]


SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
#: The page: our own script and styles only; the report is shown in a sandboxed srcdoc frame.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "frame-src 'self' about:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
#: The report on its own: no script runs, even opened directly; images are inline data.
REPORT_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the database and storage come from ``settings`` (default: the environment)."""
    settings = settings or Settings()
    storage: Path = settings.storage_dir  # type: ignore[assignment]
    checker = FileChecker(settings.check_processes, settings.check_timeout_seconds)
    max_idle = timedelta(hours=settings.upload_expiry_hours)

    def sweep_uploads() -> None:
        with app.state.factory() as db:
            expire_uploads(db, storage, max_idle)

    async def sweeper() -> None:
        interval = min(3600.0, max(0.5, max_idle.total_seconds() / 4))
        while True:
            await asyncio.sleep(interval)
            await run_in_threadpool(sweep_uploads)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        settings.ensure_dirs()
        app.state.engine = make_engine(settings.database_url or "")
        app.state.factory = make_factory(app.state.engine)
        await run_in_threadpool(sweep_uploads)
        task = asyncio.create_task(sweeper())
        yield
        task.cancel()
        checker.close()
        app.state.engine.dispose()

    app = FastAPI(
        title="painbattery",
        version=_version(),
        summary="Upload rodent pain-behaviour recordings; get measures, the battery and a report.",
        lifespan=lifespan,
    )
    app.state.settings = settings

    @app.middleware("http")
    async def _security_headers(request: Request, call_next):
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    def own_study(db: OrmSession, lab: Lab, study_id: int) -> Study:
        study = db.get(Study, study_id) if known_id(study_id) else None
        if study is None or study.lab_id != lab.id:
            raise HTTPException(404, f"study {study_id} not found")
        return study

    def declared_length(request: Request, limit: int) -> int | None:
        """The body's Content-Length, refused at once (before any byte is read) when over ``limit``."""
        raw = request.headers.get("content-length")
        if raw is None:
            return None
        if not raw.isdigit():
            raise UploadError(400, f"expected a Content-Length of digits, got {raw[:30]!r}")
        if int(raw) > limit:
            raise UploadError(413, f"upload of {raw} bytes exceeds the limit of {limit} bytes")
        return int(raw)

    @app.exception_handler(UploadError)
    async def _upload_problem(request: Request, exc: UploadError) -> JSONResponse:
        # The body may not have been read (refused on its headers): close the connection, don't drain it.
        return JSONResponse(status_code=exc.status, content={"detail": str(exc)}, headers={"Connection": "close"})

    # ------------------------------------------------------------------------------------ pages

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB / "index.html", headers={"Content-Security-Policy": PAGE_CSP})

    @app.get("/app.js", include_in_schema=False)
    def script() -> FileResponse:
        return FileResponse(WEB / "app.js", media_type="text/javascript")

    @app.get("/api/v1/health")
    def health() -> dict[str, str]:
        """Liveness check (no token needed)."""
        return {"status": "ok", "version": _version()}

    @app.get("/api/v1/me")
    def me(lab: CurrentLab) -> dict[str, Any]:
        """The lab the token belongs to."""
        return {"lab_id": lab.id, "lab": lab.name}

    # --------------------------------------------------------------------------------- studies

    @app.post("/api/v1/studies", status_code=201, openapi_extra=json_request_body(StudyIn))
    async def create_study(lab: CurrentLab, db: Db, request: Request) -> dict[str, Any]:
        """Create a study in the caller's lab."""
        body = await json_body(request, StudyIn)
        study = Study(lab_id=lab.id, name=body.name)
        db.add(study)
        db.commit()
        return {"id": study.id, "name": study.name}

    @app.get("/api/v1/studies")
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

    @app.get("/api/v1/studies/{study_id}")
    def get_study(study_id: int, lab: CurrentLab, db: Db) -> dict[str, Any]:
        """One study."""
        study = own_study(db, lab, study_id)
        return {"id": study.id, "name": study.name, "created_at": study.created_at.isoformat()}

    @app.get("/api/v1/studies/{study_id}/sessions")
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
                    "job": _job_json(job) if job else None,
                }
            )
        return out

    @app.post(
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
    async def upload_session(study_id: int, lab: CurrentLab, db: Db, request: Request) -> dict[str, Any]:
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

    # ------------------------------------------------------------------------- chunked uploads

    @app.post("/api/v1/uploads", status_code=201, openapi_extra=json_request_body(UploadIn))
    async def start_upload(lab: CurrentLab, db: Db, request: Request) -> dict[str, Any]:
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
        upload = db.get(Upload, upload_id) if _UPLOAD_ID.match(upload_id) else None
        if upload is None or upload.lab_id != lab.id:
            raise HTTPException(404, f"upload {upload_id} not found")
        return upload

    def upload_json(upload: Upload, **extra: Any) -> dict[str, Any]:
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

    @app.get("/api/v1/uploads/{upload_id}")
    def upload_status(upload_id: str, lab: CurrentLab, db: Db) -> dict[str, Any]:
        """How many bytes have arrived (resume from ``offset``), and the upload's state."""
        return upload_json(own_upload(db, lab, upload_id))

    async def finish_upload(db: OrmSession, lab: Lab, upload: Upload) -> dict[str, Any]:
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
            partial = assemble_chunks(storage, upload)
            study = own_study(db, lab, upload.study_id)
            result = await accept(
                db, checker, storage, lab, study, partial, upload.filename, dict(upload.metadata_json)
            )
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

    @app.patch("/api/v1/uploads/{upload_id}")
    async def upload_chunk(
        upload_id: str,
        request: Request,
        lab: CurrentLab,
        db: Db,
        upload_offset: Annotated[int, Header(ge=0, description="Byte offset of this chunk.")],
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
                return await finish_upload(db, lab, upload)
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
            raise HTTPException(
                409, f"another request wrote at offset {upload_offset} first; GET the upload and resume"
            )
        db.refresh(upload)
        if upload.offset < upload.size:
            return upload_json(upload)
        return await finish_upload(db, lab, upload)

    # ------------------------------------------------------------------------------------ jobs

    @app.get("/api/v1/jobs/{job_id}")
    def get_job(job_id: int, lab: CurrentLab, db: Db) -> dict[str, Any]:
        """A job's status (queued, running, done, failed), progress and error."""
        job = db.get(Job, job_id) if known_id(job_id) else None
        rec = db.get(Recording, job.recording_id) if job else None
        if job is None or rec is None or db.get(Study, rec.study_id).lab_id != lab.id:
            raise HTTPException(404, f"job {job_id} not found")
        return {**_job_json(job), "session_id": rec.session_id, "study_id": rec.study_id}

    @app.get("/api/v1/jobs")
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
        return [{**_job_json(j), "session_id": r.session_id, "study_id": r.study_id} for j, r in rows]

    # ------------------------------------------------------------------------------- results

    def study_measures(db: OrmSession, study_id: int) -> pd.DataFrame:
        from behavior.pipeline import MEASURES_COLUMNS

        rows = []
        for rec in db.execute(select(Recording).where(Recording.study_id == study_id).order_by(Recording.id)).scalars():
            rows.extend(rec.measures_json or [])
        return pd.DataFrame(rows, columns=list(MEASURES_COLUMNS))

    @app.get("/api/v1/studies/{study_id}/measures")
    def measures(study_id: int, lab: CurrentLab, db: Db) -> list[dict[str, Any]]:
        """The long Measures table of the study's scored sessions."""
        own_study(db, lab, study_id)
        return _records(study_measures(db, study_id))

    @app.get("/api/v1/studies/{study_id}/battery")
    def battery(study_id: int, lab: CurrentLab, db: Db) -> list[dict[str, Any]]:
        """The battery: one row per animal x timepoint, columns ``domain.measure``."""
        from behavior.battery import BatteryConfig, battery_table

        own_study(db, lab, study_id)
        return _records(battery_table(study_measures(db, study_id), BatteryConfig.load("default")))

    @app.get("/api/v1/studies/{study_id}/report", response_class=HTMLResponse)
    def report(study_id: int, lab: CurrentLab, db: Db) -> HTMLResponse:
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

    # ------------------------------------------------------------------------------ rig hooks

    @app.post("/api/v1/rigs/{rig_id}/recordings", status_code=201)
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
                raise HTTPException(
                    422, f"Idempotency-Key {idempotency_key!r} was already used for a different recording"
                )
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

    return app


def _job_json(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "status": job.status,
        "progress": job.progress,
        "message": job.message,
        "attempts": job.attempts,
        "error": (job.error or "").splitlines()[0] if job.error else None,
        "updated_at": job.updated_at.isoformat(),
    }


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    rows = json.loads(df.to_json(orient="records"))
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


def _version() -> str:
    from behavior import __version__

    return __version__
