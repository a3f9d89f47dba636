"""The web page, its script, the health check and who-am-I."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.deps import CurrentLab, app_version

__all__ = ["router"]

router = APIRouter()

WEB = Path(__file__).parent.parent / "web"
#: The page: our own script and styles only; the report is shown in a sandboxed srcdoc frame.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "frame-src 'self' about:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(WEB / "index.html", headers={"Content-Security-Policy": PAGE_CSP})


@router.get("/app.js", include_in_schema=False)
def script() -> FileResponse:
    return FileResponse(WEB / "app.js", media_type="text/javascript")


@router.get("/api/v1/health")
def health() -> dict[str, str]:
    """Liveness check (no token needed)."""
    return {"status": "ok", "version": app_version()}


@router.get("/api/v1/me")
def me(lab: CurrentLab) -> dict[str, Any]:
    """The lab the token belongs to."""
    return {"lab_id": lab.id, "lab": lab.name}
