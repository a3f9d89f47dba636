"""What the service's routers share: the request's dependencies and a few helpers.

Dependencies are defined at module level so FastAPI can resolve the ``Annotated`` aliases in every
route's signature, and tests can replace them through ``app.dependency_overrides``. The settings,
storage folder and file checker live in ``app.state``, put there by :func:`service.app.create_app`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from service.db import Job, Lab, Study, Token, hash_token
from service.intake import FileChecker
from service.settings import Settings
from service.storage import MAX_METADATA_CHARS, UploadError

__all__ = [
    "MAX_JSON_BODY_BYTES",
    "MAX_ROW_ID",
    "AppSettings",
    "Checker",
    "CurrentLab",
    "Db",
    "Storage",
    "app_version",
    "declared_length",
    "get_checker",
    "get_db",
    "get_lab",
    "get_settings",
    "get_storage",
    "job_json",
    "json_body",
    "json_request_body",
    "known_id",
    "own_study",
]

Model = TypeVar("Model", bound=BaseModel)
MAX_JSON_BODY_BYTES = MAX_METADATA_CHARS + 64 * 1024  # a JSON request: session metadata and a few fields
MAX_ROW_ID = 2**31 - 1  # ids are 32-bit INTEGER columns: a larger id is not found, never a database error


# ---------------------------------------------------------------------------------- dependencies
# The app.state accessors are async: they only read an attribute, so they need no worker thread.


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


async def get_storage(request: Request) -> Path:
    """The folder the stored files go under."""
    return request.app.state.storage


async def get_checker(request: Request) -> FileChecker:
    """The pool of child processes that open uploaded files to check them."""
    return request.app.state.checker


AppSettings = Annotated[Settings, Depends(get_settings)]
Storage = Annotated[Path, Depends(get_storage)]
Checker = Annotated[FileChecker, Depends(get_checker)]


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


# --------------------------------------------------------------------------------------- helpers


def known_id(value: int) -> bool:
    """True if ``value`` can be a row id at all (beyond it the database would refuse the query)."""
    return 1 <= value <= MAX_ROW_ID


def own_study(db: OrmSession, lab: Lab, study_id: int) -> Study:
    """The study ``study_id`` of ``lab``; 404 for another lab's study, as if it did not exist."""
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


def job_json(job: Job) -> dict[str, Any]:
    """A job as the API shows it (the first line of its error only)."""
    return {
        "id": job.id,
        "status": job.status,
        "progress": job.progress,
        "message": job.message,
        "attempts": job.attempts,
        "error": (job.error or "").splitlines()[0] if job.error else None,
        "updated_at": job.updated_at.isoformat(),
    }


def app_version() -> str:
    """The installed painbattery version."""
    from behavior import __version__

    return __version__
