"""The FastAPI upload service: ``create_app(settings)``.

Labs authenticate with API tokens (``Authorization: Bearer TOKEN``, hashed at rest) and only ever see
their own studies (another lab's study answers 404, as if it did not exist). Uploads stream to disk
and become a recording plus a queued job; ``painbattery worker`` processes score them. Every error is
a 4xx with a JSON body ``{"detail": "..."}`` naming the problem; a database that cannot be reached is a
503 with the same body.

The routes are in :mod:`service.routers` (one router per area), their shared dependencies in
:mod:`service.deps`; this module composes them with the lifespan, middleware and error handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool

from behavior.assays import registered_assays
from service.db import DatabaseUnavailableError, make_engine, unavailable
from service.db import session_factory as make_factory
from service.deps import app_version
from service.intake import FileChecker, expire_uploads
from service.routers import jobs, rigs, studies, uploads, web
from service.settings import Settings
from service.storage import UploadError

__all__ = ["create_app"]

log = logging.getLogger(__name__)
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


def _sweep_uploads(app: FastAPI, max_idle: timedelta) -> None:
    """Delete the resumable uploads idle longer than ``max_idle``."""
    with app.state.factory() as db:
        expire_uploads(db, app.state.storage, max_idle)


async def _sweeper(app: FastAPI, max_idle: timedelta) -> None:
    interval = min(3600.0, max(0.5, max_idle.total_seconds() / 4))
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(_sweep_uploads, app, max_idle)
        except (OperationalError, InterfaceError) as exc:  # the database is down: try again next time
            log.warning("upload sweep skipped: %s", unavailable(app.state.settings.database_url or "", exc))


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The file checker's pool and the upload sweeper, for as long as the app serves (the engine is made,
    and the database migrated, by :func:`create_app`)."""
    settings: Settings = app.state.settings
    max_idle = timedelta(hours=settings.upload_expiry_hours)
    app.state.factory = make_factory(app.state.engine)
    app.state.checker = FileChecker(settings.check_processes, settings.check_timeout_seconds)
    app.state.checker.warm_up()
    # the first upload would otherwise import every assay module (2-3 s) while its client waits
    asyncio.get_running_loop().run_in_executor(None, registered_assays)
    await run_in_threadpool(_sweep_uploads, app, max_idle)
    task = asyncio.create_task(_sweeper(app, max_idle))
    yield
    task.cancel()
    app.state.checker.close()
    app.state.engine.dispose()


async def _security_headers(request: Request, call_next):
    response = await call_next(request)
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 with one line when the database cannot be reached (down, dropped, refusing connections).

    The client learns only that; the URL and the driver's reason go to the server's log.
    """
    if not isinstance(exc, DatabaseUnavailableError):
        exc = unavailable(request.app.state.settings.database_url or "", exc)
    log.error("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        status_code=503,
        content={"detail": "database unavailable; try again later"},
        headers={"Retry-After": "30", "Connection": "close"},
    )


async def _upload_problem(request: Request, exc: UploadError) -> JSONResponse:
    # The body may not have been read (refused on its headers): close the connection, don't drain it.
    return JSONResponse(status_code=exc.status, content={"detail": str(exc)}, headers={"Connection": "close"})


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the database and storage come from ``settings`` (default: the environment).

    The database is reached and brought to the newest schema here, before anything serves, so a wrong URL
    is one line from ``painbattery serve`` rather than a failed start-up.

    Raises
    ------
    DatabaseUnavailableError
        When the database cannot be reached.
    """
    settings = settings or Settings()
    settings.ensure_dirs()
    app = FastAPI(
        title="painbattery",
        version=app_version(),
        summary="Upload rodent pain-behaviour recordings; get measures, the battery and a report.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.storage = settings.storage_dir
    app.state.engine = make_engine(settings.database_url or "")  # disposed when the app stops; usable again
    app.middleware("http")(_security_headers)
    app.add_exception_handler(UploadError, _upload_problem)
    for problem in (DatabaseUnavailableError, OperationalError, InterfaceError):
        app.add_exception_handler(problem, _database_unavailable)
    for area in (web, studies, uploads, jobs, rigs):
        app.include_router(area.router)
    return app
