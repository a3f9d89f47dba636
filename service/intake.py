"""Taking recordings in: streamed bodies, checks in child processes, one transaction per recording.

Everything here runs after the caller is authenticated (a lab token, or a rig signature over the
headers) and after the declared size is checked against the limits, so an anonymous client can never
make the service write more than a request's headers.

- :func:`read_multipart` streams a ``multipart/form-data`` body straight into a partial file (no
  spooling of the whole body first), with the size limit enforced as it streams.
- :class:`FileChecker` opens each received file as what its name says (video decode, pose file read)
  in a pool of child processes: decoders are native code, and a file that crashes or hangs one must not
  stall the event loop or take the API down.
- :func:`accept` turns a checked file into a stored recording plus its queued job in one transaction
  (with any extra rows the caller adds, e.g. a rig's idempotency record).
- Chunked uploads: :func:`assemble_chunks`, :func:`expire_uploads`; quotas: :func:`check_quota`.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import timedelta
from pathlib import Path
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession

from service.db import Job, Lab, Recording, Study, Upload, utcnow
from service.jobs import enqueue
from service.storage import (
    MAX_METADATA_CHARS,
    UploadError,
    check_file,
    staged_name,
    store,
    validate_metadata,
)

__all__ = [
    "FileChecker",
    "accept",
    "assemble_chunks",
    "check_quota",
    "discard_upload_files",
    "expire_uploads",
    "new_chunk_path",
    "read_multipart",
    "request_sha256",
    "session_exists",
    "stream_body",
]

MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries, part headers and the metadata field around the file


async def stream_body(chunks: AsyncIterator[bytes], partial: Path, limit: int, digest: Any | None = None) -> int:
    """Write a request body to ``partial`` as it arrives; 413 (and nothing left) once past ``limit`` bytes."""
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


async def read_multipart(request: Any, partial: Path, limit: int) -> tuple[str, str, int]:
    """Stream a ``multipart/form-data`` body with fields ``file`` and ``metadata`` into ``partial``.

    Returns
    -------
    filename, metadata, size
        The file part's name, the metadata field's text, and the file's size in bytes.

    Raises
    ------
    UploadError
        400 for a body that is not the expected form (malformed, or cut short before its closing
        boundary), 413 past ``limit`` (file) or the metadata limit.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UploadError(400, f"expected a multipart/form-data body, got {content_type.decode(errors='replace')!r}")
    state: dict[str, Any] = {"field": None, "headers": {}, "header": b"", "value": b""}
    found: dict[str, Any] = {"filename": None, "metadata": bytearray(), "size": 0, "fh": None}

    def on_part_begin() -> None:
        state["headers"], state["field"] = {}, None

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["header"].lower()] = state["value"]
        state["header"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode(errors="replace")
        if name == "file":
            if found["fh"] is not None or found["filename"] is not None:
                raise UploadError(400, "expected one file part, got several")
            found["filename"] = disposition.get(b"filename", b"").decode("utf-8", errors="replace")
            found["fh"] = partial.open("wb")
        elif name != "metadata":
            raise UploadError(400, f"expected the form fields file and metadata, got {name[:40]!r}")
        state["field"] = name

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["field"] == "file":
            found["size"] += end - start
            if found["size"] > limit:
                raise UploadError(413, f"upload larger than the limit of {limit} bytes")
            found["fh"].write(data[start:end])
        else:
            found["metadata"] += data[start:end]
            if len(found["metadata"]) > MAX_METADATA_CHARS:
                raise UploadError(413, f"expected session metadata of at most {MAX_METADATA_CHARS} characters")

    def on_part_end() -> None:
        if state["field"] == "file" and found["fh"] is not None:
            found["fh"].close()

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        try:
            async for chunk in request.stream():
                parser.write(chunk)
        except MultipartParseError as exc:
            raise UploadError(400, f"expected a well-formed multipart/form-data body: {exc}") from exc
        parser.finalize()  # checks nothing: a body cut short before its closing boundary must be caught here
        if parser.state != MultipartState.END:
            raise UploadError(400, "the multipart body ended before its closing boundary (an incomplete upload)")
        if found["filename"] is None:
            raise UploadError(400, "expected a file part named 'file', got none")
    except BaseException:
        if found["fh"] is not None:
            found["fh"].close()
        partial.unlink(missing_ok=True)
        raise
    finally:
        if found["fh"] is not None:
            found["fh"].close()
    return found["filename"], found["metadata"].decode("utf-8", errors="replace"), found["size"]


def _load_readers() -> None:
    """Import what :func:`check_file` opens files with (run in a checker child to warm it up)."""
    import importlib.util

    import pose_models.io
    import pose_models.video  # noqa: F401

    if importlib.util.find_spec("dask") is not None:
        import dask.array  # noqa: F401  (xarray imports it on the first file it opens)


class FileChecker:
    """Open received files in child processes (spawned, so no state of the API leaks into them).

    A child that crashes (a native decoder's segfault) or outlives ``timeout_s`` is killed and the
    pool replaced; the file is refused with 422 and the API goes on serving.
    """

    def __init__(self, processes: int, timeout_s: float) -> None:
        self.processes = processes
        self.timeout_s = timeout_s
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def warm_up(self) -> None:
        """Start the child processes and load the readers now, not on the first uploads (fire and forget).

        A spawned child imports the video and pose readers on its first check: 3-5 s on a small
        machine, which the first uploads after a start would wait (p95 4.6 s in bench/load_service.py).
        """
        pool = self._executor()
        for _ in range(self.processes):
            pool.submit(_load_readers)

    def _discard(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # ProcessPoolExecutor cannot cancel a running call: end its children ourselves.
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    async def check(self, path: Path, kind: str, fps: float, filename: str) -> None:
        """Raise :class:`UploadError` (422) if ``path`` is not a readable ``kind`` file."""
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor(), check_file, str(path), kind, fps, filename)
            problem = await asyncio.wait_for(future, self.timeout_s)
        except BrokenProcessPool as exc:
            self._discard()
            raise UploadError(422, f"{filename}: the reader crashed on this file (a corrupt or hostile file)") from exc
        except TimeoutError as exc:
            self._discard()
            raise UploadError(422, f"{filename}: checking the file took longer than {self.timeout_s:.0f} s") from exc
        if problem is not None:
            raise UploadError(*problem)

    def close(self) -> None:
        """Stop the child processes (killed: a check still running has no one left to answer)."""
        procs = list((getattr(self._pool, "_processes", None) or {}).values())
        self._discard()
        for proc in procs:
            proc.join(timeout=5)


def check_quota(
    db: OrmSession, lab: Lab, new_bytes: int, quota: int | None, *, exclude_upload: str | None = None
) -> None:
    """507 if storing ``new_bytes`` more would take the lab past its quota (stored + uploads in progress)."""
    if quota is None:
        return
    stored = db.execute(
        select(func.coalesce(func.sum(Recording.size_bytes), 0))
        .join(Study, Recording.study_id == Study.id)
        .where(Study.lab_id == lab.id)
    ).scalar_one()
    pending_query = select(func.coalesce(func.sum(Upload.size), 0)).where(
        Upload.lab_id == lab.id, Upload.state == "receiving"
    )
    if exclude_upload is not None:
        pending_query = pending_query.where(Upload.id != exclude_upload)
    pending = db.execute(pending_query).scalar_one()
    if stored + pending + new_bytes > quota:
        raise UploadError(
            507, f"lab quota of {quota} bytes exceeded: {stored + pending} in use, {new_bytes} more requested"
        )


def session_exists(db: OrmSession, study: Study, session_id: str) -> bool:
    """True if the study already has a recording with this session id."""
    return (
        db.execute(
            select(Recording.id).where(Recording.study_id == study.id, Recording.session_id == session_id)
        ).first()
        is not None
    )


async def accept(
    db: OrmSession,
    checker: FileChecker,
    storage: Path,
    lab: Lab,
    study: Study,
    partial: Path,
    filename: str,
    metadata: dict[str, Any],
    *,
    add_rows: Callable[[OrmSession, Recording, Job], None] | None = None,
) -> dict[str, Any]:
    """Check a received file with its metadata, store it, and create its recording and job (one transaction).

    ``add_rows`` may add rows of its own to the same transaction (a rig's delivery record), so they
    exist if and only if the recording does. The partial file is gone afterwards whatever happens.

    Raises
    ------
    UploadError
        4xx for bad metadata or a bad file, 409 for a session id the study already has.
    IntegrityError
        If a unique constraint of a row ``add_rows`` added fails (the caller decides what it means).
    """
    staged = partial
    stored: Path | None = None
    study_id, lab_id = study.id, lab.id  # plain values: a failed flush leaves the ORM objects unusable
    try:
        session, kind = validate_metadata(metadata, filename)
        if session_exists(db, study, session.session_id):
            raise UploadError(409, f"session {session.session_id!r} already exists in study {study_id}")
        staged = staged_name(partial, filename, kind)
        partial.rename(staged)
        await checker.check(staged, kind, session.fps, filename)
        size = staged.stat().st_size
        stored = store(staged, filename, storage, lab_id, study_id)
        rec = Recording(
            study_id=study_id,
            session_id=session.session_id,
            metadata_json=session.model_dump(mode="json", exclude={"video", "pose", "model"}),
            video_path=str(stored) if kind == "video" else None,
            pose_path=str(stored) if kind == "pose" else None,
            size_bytes=size,
        )
        db.add(rec)
        try:
            db.flush()
        except IntegrityError as exc:  # the same session id raced in from another request
            raise UploadError(409, f"session {session.session_id!r} already exists in study {study_id}") from exc
        job = enqueue(db, rec)
        if add_rows is not None:
            add_rows(db, rec, job)
        db.commit()
        stored = None  # committed: keep it
        return {"session_id": session.session_id, "recording_id": rec.id, "job_id": job.id}
    except BaseException:
        db.rollback()
        raise
    finally:
        partial.unlink(missing_ok=True)
        staged.unlink(missing_ok=True)
        if stored is not None:
            shutil.rmtree(stored.parent, ignore_errors=True)


def upload_dir(storage: Path, upload_id: str) -> Path:
    """Where a chunked upload's chunk files live."""
    return storage / "tmp" / f"upload-{upload_id}"


def new_chunk_path(storage: Path, upload_id: str) -> Path:
    """A fresh file for one PATCH request's bytes (each request writes only its own file)."""
    folder = upload_dir(storage, upload_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{uuid.uuid4().hex}.chunk"


def assemble_chunks(storage: Path, upload: Upload) -> Path:
    """Concatenate the chunks the upload row lists (and only those) into one partial file.

    Raises
    ------
    UploadError
        422 if a listed chunk is missing or not the size recorded for it.
    """
    folder = upload_dir(storage, upload.id)
    out = storage / "tmp" / f"{upload.id}.partial"
    expected = 0
    with out.open("wb") as dst:
        for offset, size, name in upload.chunks:
            chunk = folder / name
            if offset != expected or not chunk.is_file() or chunk.stat().st_size != size:
                out.unlink(missing_ok=True)
                raise UploadError(422, f"upload {upload.id}: chunk at offset {offset} is missing or damaged")
            with chunk.open("rb") as src:
                shutil.copyfileobj(src, dst, 4 * 1024 * 1024)
            expected += size
    if expected != upload.size:
        out.unlink(missing_ok=True)
        raise UploadError(422, f"upload {upload.id}: expected {upload.size} bytes, got {expected}")
    return out


def discard_upload_files(storage: Path, upload_id: str) -> None:
    """Remove a chunked upload's chunk files and partial file."""
    shutil.rmtree(upload_dir(storage, upload_id), ignore_errors=True)
    (storage / "tmp" / f"{upload_id}.partial").unlink(missing_ok=True)


def expire_uploads(db: OrmSession, storage: Path, max_idle: timedelta) -> int:
    """Mark uploads idle for longer than ``max_idle`` (receiving or failed) expired and delete their files."""
    cutoff = utcnow() - max_idle
    stale = (
        db.execute(select(Upload).where(Upload.state.in_(("receiving", "failed")), Upload.updated_at < cutoff))
        .scalars()
        .all()
    )
    for upload in stale:
        discard_upload_files(storage, upload.id)
        upload.state, upload.chunks = "expired", []
        upload.error = upload.error or f"no data for more than {max_idle.total_seconds() / 3600:.3g} h"
    db.commit()
    return len(stale)


def request_sha256(content_sha256: str, filename: str, metadata: str) -> str:
    """What a rig delivery is, for idempotency: its body's hash, file name and metadata."""
    return hashlib.sha256(f"{content_sha256}\n{filename}\n{metadata}".encode()).hexdigest()
