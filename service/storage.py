"""Storing uploaded recordings safely: plain file names, streamed writes, validation, nothing half-written.

Metadata and the file name are validated before any byte is accepted (:func:`validate_metadata`).
Every upload is then written to ``STORAGE/tmp/<uuid>.partial`` while it streams in, checked as the file
it claims to be (:func:`check_file`: decodable video or readable pose file, in a child process), and
only then moved under ``STORAGE/lab<L>/study<S>/<uuid>/<name>`` (:func:`store`). Any failure deletes
the partial file.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from behavior.session import ManifestError, Session
from pose_models.video import VIDEO_SUFFIXES

__all__ = [
    "POSE_SUFFIXES",
    "UploadError",
    "check_file",
    "check_filename",
    "new_partial",
    "parse_metadata",
    "staged_name",
    "store",
    "validate_metadata",
]

POSE_SUFFIXES = (".h5", ".csv", ".slp", ".nwb", ".nc")
MAX_METADATA_CHARS = 256 * 1024  # a session's fields and its events; far more than any real sidecar
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,200}$")


class UploadError(ValueError):
    """An upload that cannot be accepted; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_filename(name: str) -> tuple[str, str]:
    """Accept a plain file name (no folders, no ``..``) of a video or pose file; return (name, kind).

    Raises
    ------
    UploadError
        400 for a path or odd characters, 415 for a file type that is neither a video nor a pose file.
    """
    if not name or "/" in name or "\\" in name or ".." in name or not _SAFE_NAME.match(name):
        raise UploadError(400, f"expected a plain file name (letters, digits, . _ - space), got {name!r}")
    lower = name.lower()
    if lower.endswith(VIDEO_SUFFIXES):
        return name, "video"
    if lower.endswith(POSE_SUFFIXES):
        return name, "pose"
    raise UploadError(
        415, f"expected a video ({', '.join(VIDEO_SUFFIXES)}) or a pose file ({', '.join(POSE_SUFFIXES)}), got {name!r}"
    )


def new_partial(storage: Path) -> Path:
    """A fresh temporary path for an incoming upload."""
    tmp = storage / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp / f"{uuid.uuid4().hex}.partial"


def parse_metadata(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    """Session metadata from a JSON string or dict (paths are the server's business, not the client's)."""
    if raw is None or raw == "":
        raise UploadError(422, "expected session metadata (JSON of the session fields), got none")
    size = len(raw) if isinstance(raw, str) else len(json.dumps(raw))  # a JSON body's dict is held to the same limit
    if size > MAX_METADATA_CHARS:
        raise UploadError(413, f"expected session metadata of at most {MAX_METADATA_CHARS} characters, got {size}")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UploadError(422, f"expected session metadata as JSON, got a parse error: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise UploadError(422, f"expected a JSON object of session fields, got {type(raw).__name__}")
    for forbidden in ("video", "pose", "model"):
        raw.pop(forbidden, None)
    return raw


def validate_metadata(metadata: dict[str, Any], filename: str) -> tuple[Session, str]:
    """Validate session metadata and file name before any byte of the file is accepted.

    Returns
    -------
    session, kind
        The Session (its path a placeholder named after ``filename``) and ``"video"`` or ``"pose"``.

    Raises
    ------
    UploadError
        400/415 for the name, 422 for invalid metadata (a traversal ``session_id`` among them).
    """
    name, kind = check_filename(filename)
    meta = dict(metadata)
    meta[kind] = name
    try:
        session = Session.model_validate(meta)
        session.check_assay()  # a registered assay, and the inputs it needs (a video, events...)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'metadata'}: {e['msg']}" for e in exc.errors())
        raise UploadError(422, f"invalid session metadata: {errors}") from exc
    except ManifestError as exc:
        raise UploadError(422, f"invalid session metadata: {exc}") from exc
    return session, kind


def check_file(path: str, kind: str, fps: float, filename: str) -> tuple[int, str] | None:
    """Open a received file as what its name says; return ``(status, message)`` if it is unusable.

    Runs in a child process of the API (see ``service.app``): decoders are native code, and a file that
    crashes or hangs one must not take the API down. Returns plain values (no exception objects) so
    nothing but our own data crosses the process boundary.
    """
    if kind == "video":
        from pose_models.video import VideoError, probe_video

        try:
            probe_video(path)
        except VideoError as exc:
            return 422, f"{filename}: {str(exc).split(': ', 1)[-1]}"
        return None
    from pose_models.io import PoseFileError, load_poses

    try:
        load_poses(path, fps=fps)
    except (PoseFileError, ValueError, FileNotFoundError) as exc:
        return 422, f"{filename}: {str(exc).split(': ', 1)[-1]}"
    return None


def staged_name(partial: Path, filename: str, kind: str) -> Path:
    """Where a partial file is renamed before its check: the readers pick the format by suffix."""
    token = partial.name.split(".", 1)[0]
    suffix = Path(filename).suffix if kind == "video" else "." + filename.split(".", 1)[-1]  # keeps .analysis.h5
    return partial.with_name(token + suffix)


def store(staged: Path, filename: str, storage: Path, lab_id: int, study_id: int) -> Path:
    """Move a checked file to ``STORAGE/lab<L>/study<S>/<uuid>/<name>``; the name is ours, not the user's path."""
    name, _ = check_filename(filename)
    folder = storage / f"lab{lab_id}" / f"study{study_id}" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    final = folder / name
    shutil.move(str(staged), final)
    return final
