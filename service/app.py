"""The FastAPI upload service: ``create_app(settings)``.

Labs authenticate with API tokens (``Authorization: Bearer TOKEN``, hashed at rest) and only ever see
their own studies (another lab's study answers 404, as if it did not exist). Uploads stream to disk
and become a recording plus a queued job; ``painbattery worker`` processes score them. Every error is
a 4xx with a JSON body ``{"detail": "..."}`` naming the problem.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession

from service.db import Job, Lab, Recording, Rig, RigDelivery, Study, Token, Upload, hash_token, make_engine
from service.db import session_factory as make_factory
from service.jobs import enqueue
from service.settings import Settings
from service.storage import UploadError, check_filename, new_partial, parse_metadata, validate_and_store

__all__ = ["create_app"]

WEB = Path(__file__).parent / "web"


class StudyIn(BaseModel):
    """A new study."""

    name: str = Field(min_length=1, max_length=200)


class UploadIn(BaseModel):
    """Start of a resumable upload."""

    study_id: int
    filename: str
    size: int = Field(gt=0)
    metadata: dict[str, Any]


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


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the database and storage come from ``settings`` (default: the environment)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        settings.ensure_dirs()
        app.state.engine = make_engine(settings.database_url or "")
        app.state.factory = make_factory(app.state.engine)
        yield
        app.state.engine.dispose()

    app = FastAPI(
        title="painbattery",
        version=_version(),
        summary="Upload rodent pain-behaviour recordings; get measures, the battery and a report.",
        lifespan=lifespan,
    )
    app.state.settings = settings

    def own_study(db: OrmSession, lab: Lab, study_id: int) -> Study:
        study = db.get(Study, study_id)
        if study is None or study.lab_id != lab.id:
            raise HTTPException(404, f"study {study_id} not found")
        return study

    @app.exception_handler(UploadError)
    async def _upload_problem(request: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"detail": str(exc)})

    # --------------------------------------------------------------------------------- helpers

    def accept(db: OrmSession, lab: Lab, study: Study, partial: Path, filename: str, metadata: dict) -> dict:
        """Validate + store a received file, create its recording and job (one transaction)."""
        session, stored = validate_and_store(partial, filename, metadata, settings.storage_dir, lab.id, study.id)
        exists = db.execute(
            select(Recording.id).where(Recording.study_id == study.id, Recording.session_id == session.session_id)
        ).first()
        if exists:
            shutil.rmtree(stored.parent, ignore_errors=True)
            raise HTTPException(409, f"session {session.session_id!r} already exists in study {study.id}")
        meta = session.model_dump(mode="json", exclude={"video", "pose", "model"})
        kind = "video" if session.video is not None else "pose"
        rec = Recording(
            study_id=study.id,
            session_id=session.session_id,
            metadata_json=meta,
            video_path=str(stored) if kind == "video" else None,
            pose_path=str(stored) if kind == "pose" else None,
        )
        db.add(rec)
        db.flush()
        job = enqueue(db, rec)
        db.commit()
        return {"session_id": session.session_id, "recording_id": rec.id, "job_id": job.id}

    async def stream_to(partial: Path, chunks, limit: int, digest=None) -> int:
        size = 0
        try:
            with partial.open("wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise UploadError(413, f"upload larger than the limit of {limit} bytes")
                    if digest is not None:
                        digest.update(chunk)
                    fh.write(chunk)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return size

    # ------------------------------------------------------------------------------------ pages

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB / "index.html")

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

    @app.post("/api/v1/studies", status_code=201)
    def create_study(body: StudyIn, lab: CurrentLab, db: Db) -> dict[str, Any]:
        """Create a study in the caller's lab."""
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

    @app.post("/api/v1/studies/{study_id}/sessions", status_code=201)
    async def upload_session(
        study_id: int,
        lab: CurrentLab,
        db: Db,
        request: Request,
        file: Annotated[UploadFile, File(description="The video or pose file.")],
        metadata: Annotated[str, Form(description="JSON of the session fields.")],
    ) -> dict[str, Any]:
        """Upload one recording (video or pose file) with its session metadata; queues a scoring job."""
        study = own_study(db, lab, study_id)
        check_filename(file.filename or "")
        meta = parse_metadata(metadata)
        partial = new_partial(settings.storage_dir)

        async def chunks():
            while block := await file.read(settings.chunk_bytes):
                yield block

        await stream_to(partial, chunks(), settings.max_upload_bytes)
        return accept(db, lab, study, partial, file.filename or "", meta)

    # ------------------------------------------------------------------------- chunked uploads

    @app.post("/api/v1/uploads", status_code=201)
    def start_upload(body: UploadIn, lab: CurrentLab, db: Db) -> dict[str, Any]:
        """Start a resumable upload; then send the bytes with PATCH and ``Upload-Offset``."""
        own_study(db, lab, body.study_id)
        check_filename(body.filename)
        if body.size > settings.max_upload_bytes:
            raise HTTPException(413, f"upload of {body.size} bytes exceeds the limit of {settings.max_upload_bytes}")
        meta = parse_metadata(body.metadata)
        upload = Upload(
            id=uuid.uuid4().hex,
            lab_id=lab.id,
            study_id=body.study_id,
            filename=body.filename,
            size=body.size,
            metadata_json=meta,
        )
        db.add(upload)
        db.commit()
        return {"upload_id": upload.id, "offset": 0, "size": upload.size}

    def own_upload(db: OrmSession, lab: Lab, upload_id: str) -> Upload:
        upload = db.get(Upload, upload_id)
        if upload is None or upload.lab_id != lab.id:
            raise HTTPException(404, f"upload {upload_id} not found")
        return upload

    @app.get("/api/v1/uploads/{upload_id}")
    def upload_status(upload_id: str, lab: CurrentLab, db: Db) -> dict[str, Any]:
        """How many bytes have arrived (resume from ``offset``)."""
        upload = own_upload(db, lab, upload_id)
        return {
            "upload_id": upload.id,
            "offset": upload.offset,
            "size": upload.size,
            "complete": upload.recording_id is not None,
        }

    @app.patch("/api/v1/uploads/{upload_id}")
    async def upload_chunk(
        upload_id: str,
        request: Request,
        lab: CurrentLab,
        db: Db,
        upload_offset: Annotated[int, Header(description="Byte offset of this chunk.")],
    ) -> dict[str, Any]:
        """Append a chunk at ``Upload-Offset``; the last chunk validates the file and queues its job."""
        upload = own_upload(db, lab, upload_id)
        if upload.recording_id is not None:
            raise HTTPException(409, "upload already complete")
        if upload_offset != upload.offset:
            raise HTTPException(409, f"expected Upload-Offset {upload.offset}, got {upload_offset}")
        path = settings.storage_dir / "tmp" / f"{upload.id}.partial"
        path.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with path.open("ab") as fh:
            fh.truncate(upload.offset)  # drop whatever an interrupted chunk left beyond the recorded offset
            async for chunk in request.stream():
                written += len(chunk)
                if upload.offset + written > upload.size:
                    fh.truncate(upload.offset)
                    raise HTTPException(413, f"chunk goes past the declared size of {upload.size} bytes")
                fh.write(chunk)
        upload.offset += written
        db.commit()
        if upload.offset < upload.size:
            return {"upload_id": upload.id, "offset": upload.offset, "size": upload.size, "complete": False}
        study = own_study(db, lab, upload.study_id)
        result = accept(db, lab, study, path, upload.filename, dict(upload.metadata_json))
        upload.recording_id = result["recording_id"]
        db.commit()
        return {"upload_id": upload.id, "offset": upload.offset, "size": upload.size, "complete": True, **result}

    # ------------------------------------------------------------------------------------ jobs

    @app.get("/api/v1/jobs/{job_id}")
    def get_job(job_id: int, lab: CurrentLab, db: Db) -> dict[str, Any]:
        """A job's status (queued, running, done, failed), progress and error."""
        job = db.get(Job, job_id)
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
        out = settings.storage_dir / f"lab{lab.id}" / f"study{study.id}" / "report"
        paths = write_outputs(
            out,
            table,
            quality,
            failures,
            title=f"painbattery: {study.name}",
            provenance={"study": study.name, "study_id": study.id, "lab": lab.name},
        )
        return HTMLResponse(paths["report"].read_text())

    # ------------------------------------------------------------------------------ rig hooks

    @app.post("/api/v1/rigs/{rig_id}/recordings", status_code=201)
    async def rig_recording(
        rig_id: str,
        request: Request,
        db: Db,
        x_painbattery_timestamp: Annotated[str, Header()],
        x_painbattery_signature: Annotated[str, Header()],
        x_painbattery_filename: Annotated[str, Header()],
        x_painbattery_metadata: Annotated[str, Header()],
        idempotency_key: Annotated[str, Header(min_length=1, max_length=200)],
    ) -> JSONResponse:
        """A rig posts a finished recording: raw file body, session metadata in a header.

        Signature: hex HMAC-SHA256 with the rig's secret over ``timestamp + "." + metadata + "." + body``.
        A timestamp outside the allowed clock skew is refused as a replay; a retried POST with the same
        ``Idempotency-Key`` returns the recording it created the first time (200) and creates nothing.
        """
        rig = db.execute(select(Rig).where(Rig.rig_id == rig_id)).scalar_one_or_none()
        if rig is None:
            raise HTTPException(401, "unknown rig or bad signature")
        try:
            ts = float(x_painbattery_timestamp)
        except ValueError as exc:
            raise HTTPException(401, "expected a unix timestamp in X-Painbattery-Timestamp") from exc
        if abs(time.time() - ts) > settings.rig_clock_skew_seconds:
            raise HTTPException(401, "timestamp outside the allowed window (a replayed or delayed request)")
        check_filename(x_painbattery_filename)
        mac = hmac.new(
            rig.secret.encode(), f"{x_painbattery_timestamp}.{x_painbattery_metadata}.".encode(), hashlib.sha256
        )
        partial = new_partial(settings.storage_dir)
        await stream_to(partial, request.stream(), settings.max_upload_bytes, digest=mac)
        if not hmac.compare_digest(mac.hexdigest(), x_painbattery_signature.strip().lower()):
            partial.unlink(missing_ok=True)
            raise HTTPException(401, "unknown rig or bad signature")
        previous = db.execute(
            select(RigDelivery).where(RigDelivery.rig_id == rig_id, RigDelivery.idempotency_key == idempotency_key)
        ).scalar_one_or_none()
        if previous is not None:
            partial.unlink(missing_ok=True)
            rec = db.get(Recording, previous.recording_id)
            return JSONResponse(
                status_code=200, content={"session_id": rec.session_id, "job_id": previous.job_id, "duplicate": True}
            )
        lab, study = db.get(Lab, rig.lab_id), db.get(Study, rig.study_id)
        result = accept(db, lab, study, partial, x_painbattery_filename, parse_metadata(x_painbattery_metadata))
        db.add(
            RigDelivery(
                rig_id=rig_id,
                idempotency_key=idempotency_key,
                recording_id=result["recording_id"],
                job_id=result["job_id"],
            )
        )
        try:
            db.commit()
        except IntegrityError:  # the same key raced in twice: keep the first
            db.rollback()
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
