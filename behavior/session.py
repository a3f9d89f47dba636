"""Session metadata: the :class:`Session` model, manifest CSVs, session sidecars and events.

A *session* is one recording of one animal in one assay at one timepoint. A study is described by a
manifest CSV (one row per session) or, for rigs and the synthetic rig, by a JSON sidecar beside each
video (``<stem>.json``) holding the same fields with the stimulus events inline.

Paths in a manifest or sidecar are relative to the file that names them.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from behavior.assays import is_assay_name

__all__ = [
    "EVENT_COLUMNS",
    "SESSION_ID_PATTERN",
    "Event",
    "ManifestError",
    "Session",
    "events_from_ttl",
    "events_to_frame",
    "read_events",
    "read_manifest",
    "read_session_sidecar",
    "write_events",
    "write_session_sidecar",
]

EVENT_COLUMNS = ("time_s", "kind", "side", "intensity")

#: What a session id may be: it names files (poses, caches, stored recordings), so no folders, no
#: ``..``, nothing a file system or a URL treats specially. Letters, digits, ``. _ -``, at most 128.
SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class ManifestError(ValueError):
    """A manifest or sidecar is invalid; the message names the file and every bad row."""


class Event(BaseModel):
    """One timed event of a session: a stimulus onset, a filament application, a light switching."""

    model_config = ConfigDict(extra="forbid")

    time_s: float = Field(ge=0, description="Seconds from the start of the video.")
    kind: str = Field(min_length=1, description="e.g. stimulus_on, stimulus_off, light_on, filament.")
    side: Literal["left", "right"] | None = None
    intensity: float | None = Field(None, description="Stimulus strength, e.g. filament grams.")

    @field_validator("time_s", "intensity")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError(f"expected a finite number, got {v}")
        return v


class Session(BaseModel):
    """One recording: which animal, group, timepoint and assay, and where its inputs are.

    ``side`` is the injured (ipsilateral) limb, when the model has one. ``video`` and ``pose`` are paths
    to the recording and to pose tracks (a DeepLabCut/SLEAP/NWB/netCDF file); at least one is needed.
    ``roi`` is the region of the video this session is about (``x, y, w, h`` in pixels; ``"x,y,w,h"`` in a
    manifest): one camera filming several chambers gives one session per chamber. Poses are predicted
    inside it (in full-frame pixels), and an assay's regions (Hargreaves ``light_roi``) are relative to it.
    """

    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(min_length=1, description=f"Matches {SESSION_ID_PATTERN} (it names files).")
    animal_id: str = Field(min_length=1)
    group: str = Field(min_length=1)
    timepoint: str = Field(min_length=1, description="e.g. baseline, d1, d7")
    assay: str
    side: Literal["left", "right"] | None = None
    fps: float = Field(gt=0)
    px_per_mm: float | None = Field(None, gt=0)
    video: Path | None = None
    pose: Path | None = None
    model: Path | None = None
    roi: tuple[int, int, int, int] | None = Field(
        None, description="Region of the video, x,y,w,h in pixels (one chamber of a multi-chamber rig)."
    )
    events: list[Event] = Field(default_factory=list)

    @field_validator("session_id", "animal_id", "group", "timepoint", mode="before")
    @classmethod
    def _as_text(cls, v: Any) -> Any:
        # Manifests often hold numeric ids (animal 12, timepoint 7); keep them as text.
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(int(v)) if float(v).is_integer() else str(v)
        return v

    @field_validator("session_id")
    @classmethod
    def _safe_session_id(cls, v: str) -> str:
        if not re.fullmatch(SESSION_ID_PATTERN, v) or ".." in v:
            raise ValueError(
                f"expected a session id of letters, digits and . _ - (starting with a letter or digit, "
                f"at most 128, no '..'), got {v[:60]!r}"
            )
        return v

    @field_validator("assay")
    @classmethod
    def _assay_name(cls, v: str) -> str:
        # Which assays exist is the registry's business (behavior.assays), checked at the boundaries
        # (manifests, sidecars, uploads, the orchestrator) by check_assay(); here only the form.
        if not is_assay_name(v):
            raise ValueError(f"expected an assay name of lower-case letters, digits and _, got {v[:60]!r}")
        return v

    @field_validator("roi", mode="before")
    @classmethod
    def _roi(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        parts = [p.strip() for p in v.split(",")] if isinstance(v, str) else v
        if not isinstance(parts, (list, tuple)) or len(parts) != 4:
            raise ValueError(f"expected a region x,y,w,h (four whole numbers of pixels), got {v!r}")
        values = []
        for part in parts:
            if isinstance(part, bool) or not isinstance(part, (int, str)) or not re.fullmatch(r"[+-]?\d+", str(part)):
                raise ValueError(f"expected a region x,y,w,h of whole numbers of pixels, got {v!r}")
            values.append(int(part))
        x, y, w, h = values
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise ValueError(f"expected a region x,y,w,h with x, y >= 0 and w, h > 0, got {v!r}")
        return tuple(values)

    @field_validator("fps", "px_per_mm")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError(f"expected a finite number, got {v}")
        return v

    @model_validator(mode="after")
    def _has_input(self) -> Session:
        if self.video is None and self.pose is None:
            raise ValueError("expected a video or a pose file, got neither")
        return self

    @property
    def domain(self) -> str:
        """The battery domain of this session's assay (evoked / spontaneous / affective), from the registry."""
        from behavior.assays import get_assay

        return get_assay(self.assay).domain

    def check_assay(self) -> None:
        """Check that the assay is registered and that the session has every input it needs.

        Raises
        ------
        ManifestError
            Naming the registered assays for an unknown one, or the missing input (no video for an
            assay that reads the video, no events for one that needs them, neither poses nor video).
        """
        from behavior.assays import UnknownAssayError, get_assay

        try:
            spec = get_assay(self.assay)
        except UnknownAssayError as exc:
            raise ManifestError(f"assay: {exc}") from exc
        missing = spec.missing_inputs(self)
        if missing:
            raise ManifestError(
                f"session {self.session_id}: assay {self.assay} needs {' and '.join(missing)}, got none"
            )

    def events_frame(self) -> pd.DataFrame:
        """The session's events as a DataFrame with columns ``time_s, kind, side, intensity``."""
        return events_to_frame(self.events)

    def resolve_paths(self, base: Path) -> Session:
        """Return a copy whose relative paths are made absolute against ``base``."""
        updates = {}
        for name in ("video", "pose", "model"):
            p = getattr(self, name)
            if p is not None and not p.is_absolute():
                updates[name] = (base / p).resolve()
        return self.model_copy(update=updates)

    def check_files(self) -> None:
        """Raise :class:`FileNotFoundError` naming the first input file that does not exist."""
        for name in ("video", "pose", "model"):
            p = getattr(self, name)
            if p is not None and not p.exists():
                raise FileNotFoundError(f"session {self.session_id}: {name} file not found: {p}")


def _error_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "row"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


# ----------------------------------------------------------------------------------------------- events


def events_to_frame(events: Iterable[Event | dict[str, Any]]) -> pd.DataFrame:
    """Turn events into the Events DataFrame (``time_s, kind, side, intensity``), sorted by time."""
    rows = [Event.model_validate(e).model_dump() if isinstance(e, dict) else e.model_dump() for e in events]
    df = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    df["time_s"] = df["time_s"].astype(float)
    df["intensity"] = df["intensity"].astype(float)
    df["kind"] = df["kind"].astype(object)
    df["side"] = df["side"].astype(object)
    return df.sort_values("time_s", kind="stable").reset_index(drop=True)


def read_events(path: str | Path) -> list[Event]:
    """Read an events sidecar: CSV with columns ``time_s,kind[,side,intensity]`` or JSON.

    JSON may be a list of event objects or an object with an ``events`` list (a session sidecar).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ManifestError
        If a row is not a valid event (the message gives the row number).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"events file not found: {path}")
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}: expected JSON, got a parse error at line {exc.lineno}") from exc
        if isinstance(raw, dict):
            raw = raw.get("events", [])
        if not isinstance(raw, list):
            raise ManifestError(f"{path}: expected a list of events, got {type(raw).__name__}")
        items = [(i + 1, r) for i, r in enumerate(raw)]
        where = "event"
    elif path.suffix.lower() in (".csv", ".tsv"):
        df = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str, keep_default_na=False)
        unknown = sorted(set(df.columns) - set(EVENT_COLUMNS))
        if unknown or not {"time_s", "kind"} <= set(df.columns):
            raise ManifestError(f"{path}: expected columns time_s,kind[,side,intensity], got {','.join(df.columns)}")
        items = [
            (i + 2, {k: (v if v != "" else None) for k, v in row.items()})
            for i, row in enumerate(df.to_dict("records"))
        ]
        where = "row"
    else:
        raise ManifestError(f"{path}: expected an events file ending .csv or .json, got {path.suffix!r}")
    events, errors = [], []
    for n, item in items:
        try:
            events.append(Event.model_validate(item))
        except ValidationError as exc:
            errors.append(f"{where} {n}: {_error_text(exc)}")
    if errors:
        raise ManifestError(f"{path}: " + "; ".join(errors))
    return events


def write_events(events: Iterable[Event], path: str | Path) -> Path:
    """Write events to a CSV (``time_s,kind,side,intensity``) or JSON list, chosen by suffix."""
    path = Path(path)
    events = list(events)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps([e.model_dump() for e in events], indent=1))
    else:
        events_to_frame(events).to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------------- sidecars


def read_session_sidecar(path: str | Path, *, check_files: bool = True, registered_only: bool = True) -> Session:
    """Read a session sidecar ``<stem>.json`` (Session fields, events inline).

    A sidecar that names no ``video`` gets the video beside it with the same stem, if there is one.
    The assay must be registered and the sidecar give what it needs, unless ``registered_only=False``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"session sidecar not found: {path}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: expected JSON, got a parse error at line {exc.lineno}") from exc
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: expected a JSON object of session fields, got {type(raw).__name__}")
    if raw.get("video") is None and raw.get("pose") is None:
        for suffix in (".mp4", ".avi", ".mov", ".mkv"):
            if path.with_suffix(suffix).exists():
                raw["video"] = path.with_suffix(suffix).name
                break
    try:
        session = Session.model_validate(raw).resolve_paths(path.parent)
    except ValidationError as exc:
        raise ManifestError(f"{path}: {_error_text(exc)}") from exc
    if registered_only:
        try:
            session.check_assay()
        except ManifestError as exc:
            raise ManifestError(f"{path}: {exc}") from exc
    if check_files:
        session.check_files()
    return session


def write_session_sidecar(session: Session, path: str | Path) -> Path:
    """Write ``session`` as a JSON sidecar; paths under the sidecar's folder are stored relative."""
    path = Path(path)
    data = session.model_dump(mode="json", exclude_none=True)
    for name in ("video", "pose", "model"):
        p = getattr(session, name)
        if p is not None:
            try:
                data[name] = str(Path(p).resolve().relative_to(path.parent.resolve()))
            except ValueError:
                data[name] = str(p)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


# ------------------------------------------------------------------------------------- manifests

MANIFEST_COLUMNS = (
    "session_id",
    "animal_id",
    "group",
    "timepoint",
    "assay",
    "side",
    "video",
    "pose",
    "fps",
    "px_per_mm",
    "events",
    "model",
    "roi",
)
REQUIRED_COLUMNS = ("session_id", "animal_id", "group", "timepoint", "assay", "fps")


def read_manifest(path: str | Path, *, check_files: bool = True, registered_only: bool = True) -> list[Session]:
    """Read and validate a manifest CSV: one row per session.

    Every row is checked before anything is returned; all problems are reported at once, each with
    its line number in the file (the header is line 1): unknown columns, unknown assays, fps <= 0,
    duplicate session ids, missing video / pose / events files, invalid events, an input the assay
    needs but the row does not give. ``registered_only=False`` accepts assays no module registered
    (the synthetic rig simulates some ahead of their extractors).

    Raises
    ------
    FileNotFoundError
        If the manifest itself does not exist.
    ManifestError
        Listing every bad row.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if not header:
            raise ManifestError(f"{path}: expected a header row with columns {','.join(REQUIRED_COLUMNS)}")
        unknown = [h for h in header if h not in MANIFEST_COLUMNS]
        missing = [h for h in REQUIRED_COLUMNS if h not in header]
        if unknown or missing:
            parts = []
            if unknown:
                parts.append(f"unknown column(s) {unknown} (expected from {list(MANIFEST_COLUMNS)})")
            if missing:
                parts.append(f"missing column(s) {missing}")
            raise ManifestError(f"{path}: line 1: " + "; ".join(parts))
        rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    if not rows:
        raise ManifestError(f"{path}: expected at least one session row, got none")

    sessions: list[Session] = []
    errors: list[str] = []
    first_line: dict[str, int] = {}
    for i, row in enumerate(rows):
        line = i + 2
        fields: dict[str, Any] = {k: v for k, v in row.items() if v != "" and k != "events"}
        try:
            if row.get("events"):
                fields["events"] = read_events(_resolve(path.parent, row["events"]))
            session = Session.model_validate(fields).resolve_paths(path.parent)
            if registered_only:
                session.check_assay()
            if check_files:
                session.check_files()
        except ValidationError as exc:
            errors.append(f"line {line}: {_error_text(exc)}")
            continue
        except (FileNotFoundError, ManifestError) as exc:
            errors.append(f"line {line}: {exc}")
            continue
        if session.session_id in first_line:
            errors.append(
                f"line {line}: duplicate session_id {session.session_id!r} "
                f"(first on line {first_line[session.session_id]})"
            )
            continue
        first_line[session.session_id] = line
        sessions.append(session)
    if errors:
        raise ManifestError(f"{path}: " + "; ".join(errors))
    return sessions


def _resolve(base: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else base / q


def events_from_ttl(
    path: str | Path, *, kind: str = "stimulus_on", side: Literal["left", "right"] | None = None
) -> list[Event]:
    """Stimulus onsets from a rig's TTL log: a CSV with ``time_s`` and a digital level column.

    The level column is the first of ``value``, ``level``, ``ttl``, ``state``; each rise from 0 to a
    non-zero level is an onset. A CSV with only ``time_s`` lists the onsets themselves.

    Raises
    ------
    ManifestError
        If the file has no ``time_s`` column or non-numeric values (with the line number).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TTL file not found: {path}")
    df = pd.read_csv(path)
    if "time_s" not in df.columns:
        raise ManifestError(f"{path}: expected a time_s column, got {','.join(map(str, df.columns))}")
    level_col = next((c for c in ("value", "level", "ttl", "state") if c in df.columns), None)
    columns = ["time_s"] + ([level_col] if level_col else [])
    numeric = df[columns].apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna().any(axis=1)
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise ManifestError(f"{path}: line {line}: expected numbers in {columns}")
    if level_col is None:
        times = numeric["time_s"].to_numpy()
    else:
        high = numeric[level_col].to_numpy() > 0
        rises = np.flatnonzero(high & ~np.r_[False, high[:-1]])
        times = numeric["time_s"].to_numpy()[rises]
    return [Event(time_s=float(t), kind=kind, side=side) for t in np.sort(times)]
