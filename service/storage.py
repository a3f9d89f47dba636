"""Storing uploaded recordings safely: plain file names, streamed writes, validation, nothing half-written.

Every upload is written to ``STORAGE/tmp/<uuid>.partial`` while it streams in, validated (file type,
decodable video or readable pose file, session metadata), and only then moved under
``STORAGE/lab<L>/study<S>/<uuid>/<name>``. Any failure deletes the partial file.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from behavior.session import Session
from pose_models.video import VIDEO_SUFFIXES

__all__ = ["POSE_SUFFIXES", "UploadError", "check_filename", "new_partial", "validate_and_store"]

POSE_SUFFIXES = (".h5", ".csv", ".slp", ".nwb", ".nc")
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


def validate_and_store(
    partial: Path, filename: str, metadata: dict[str, Any], storage: Path, lab_id: int, study_id: int
) -> tuple[Session, Path]:
    """Validate a received file with its metadata and move it into storage.

    Returns
    -------
    session, stored_path
        The validated Session (paths pointing at the stored file) and where the file now lives.

    Raises
    ------
    UploadError
        415/400 for the name, 422 for invalid metadata or a corrupt/unreadable file. The partial file is
        deleted whatever happens.
    """
    token = partial.name.split(".", 1)[0]  # the upload's uuid: every temporary name starts with it
    try:
        name, kind = check_filename(filename)
        meta = dict(metadata)
        meta[kind] = str(partial)
        try:
            session = Session.model_validate(meta)
        except ValidationError as exc:
            errors = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'metadata'}: {e['msg']}" for e in exc.errors())
            raise UploadError(422, f"invalid session metadata: {errors}") from exc
        if kind == "video":
            from pose_models.video import VideoError, probe_video

            staged = partial.with_suffix(Path(name).suffix)
            partial.rename(staged)
            partial = staged
            try:
                probe_video(staged)
            except VideoError as exc:
                raise UploadError(422, f"{name}: {str(exc).split(': ', 1)[-1]}") from exc
        else:
            from pose_models.io import PoseFileError, load_poses

            staged = partial.with_name(token + "." + name.split(".", 1)[-1])
            partial.rename(staged)
            partial = staged
            try:
                load_poses(staged, fps=session.fps)
            except (PoseFileError, ValueError) as exc:
                raise UploadError(422, f"{name}: {str(exc).split(': ', 1)[-1]}") from exc
        folder = storage / f"lab{lab_id}" / f"study{study_id}" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        final = folder / name
        shutil.move(str(partial), final)
        return session.model_copy(update={kind: final}), final
    finally:
        for leftover in partial.parent.glob(token + "*"):
            leftover.unlink(missing_ok=True)
