"""Watch folders: rigs drop a recording and its ``<stem>.json`` sidecar; each is scored exactly once.

A recording is *ready* when its sidecar exists and the file's size and modification time have not
changed for ``settle_seconds`` (a file still being written keeps growing). What was processed is kept
in ``<folder>/.painbattery-watch.sqlite`` by content hash, so a restart neither scores a file twice
nor misses one that arrived while the watcher was down (every start begins with a full scan).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from behavior.provenance import file_sha256
from behavior.session import read_session_sidecar
from pose_models.video import VIDEO_SUFFIXES

__all__ = ["FolderWatcher", "LocalScorer", "ServiceSubmitter"]

STATE_FILE = ".painbattery-watch.sqlite"


class Handler(Protocol):
    """What to do with a ready recording; returns a short description of the result."""

    def __call__(self, recording: Path, sidecar: Path) -> str: ...


class LocalScorer:
    """Score a recording on this machine into ``out`` (through the one orchestrator, cached per session)."""

    def __init__(self, out: Path, overrides: tuple[str, ...] | list[str] = ()) -> None:
        self.out = Path(out)
        self.overrides = tuple(overrides)  # dotted assay config overrides, as 'score --set' takes them

    def __call__(self, recording: Path, sidecar: Path) -> str:
        from behavior.batch import score_session

        session = read_session_sidecar(sidecar)
        if session.video is None and session.pose is None:
            session = session.model_copy(update={"video": recording})
        result = score_session(session.model_dump(mode="json"), str(self.out), overrides=self.overrides)
        if result["status"] == "failed":
            raise RuntimeError(result["error"])
        return f"scored {session.session_id} ({len(result['measures'])} measures)"


class ServiceSubmitter:
    """Upload a recording with its sidecar metadata to a painbattery service."""

    def __init__(self, url: str, token: str, study_id: int, timeout: float = 300.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.study_id = study_id
        self.timeout = timeout

    def __call__(self, recording: Path, sidecar: Path) -> str:
        import httpx

        meta = json.loads(sidecar.read_text())
        for key in ("video", "pose", "model"):
            meta.pop(key, None)
        with recording.open("rb") as fh:
            response = httpx.post(
                f"{self.url}/api/v1/studies/{self.study_id}/sessions",
                headers={"Authorization": f"Bearer {self.token}"},
                files={"file": (recording.name, fh, "application/octet-stream")},
                data={"metadata": json.dumps(meta)},
                timeout=self.timeout,
            )
        if response.status_code == 409:  # already there (e.g. submitted before a crash): done, not an error
            return f"already submitted: {meta.get('session_id')}"
        if response.status_code != 201:
            raise RuntimeError(f"service answered {response.status_code}: {response.text[:300]}")
        body = response.json()
        return f"submitted {body['session_id']} as job {body['job_id']}"


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


class FolderWatcher:
    """Find complete recordings in a folder and hand each one, once, to ``handler``.

    Parameters
    ----------
    folder
        The watched folder (not recursive).
    handler
        Called with (recording, sidecar) for each ready recording.
    settle_seconds
        How long size and mtime must stay unchanged before a file counts as finished.
    """

    def __init__(self, folder: Path, handler: Handler, *, settle_seconds: float = 2.0) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"watch folder not found: {self.folder}")
        self.handler = handler
        self.settle_seconds = settle_seconds
        self._seen: dict[Path, _Seen] = {}
        self._wake = threading.Event()
        self.stop = threading.Event()
        self._db = sqlite3.connect(self.folder / STATE_FILE, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS processed (sha256 TEXT PRIMARY KEY, path TEXT, result TEXT, at REAL)"
        )
        self._db.commit()

    def processed(self) -> list[tuple[str, str]]:
        """(path, result) of everything processed so far."""
        return list(self._db.execute("SELECT path, result FROM processed ORDER BY at"))

    def _candidates(self) -> list[tuple[Path, Path]]:
        out = []
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in VIDEO_SUFFIXES:
                continue
            sidecar = path.with_suffix(".json")
            if sidecar.is_file():
                out.append((path, sidecar))
        return out

    def _stable(self, path: Path, now: float) -> bool:
        st = path.stat()
        seen = self._seen.get(path)
        if seen is None or (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
            self._seen[path] = _Seen(st.st_size, st.st_mtime_ns, now)
            return False
        return st.st_size > 0 and now - seen.since >= self.settle_seconds

    def process_ready(self) -> list[str]:
        """One scan: process every recording that is ready and not processed yet; return the results."""
        results = []
        now = time.monotonic()
        for recording, sidecar in self._candidates():
            if not self._stable(recording, now):
                continue
            digest = file_sha256(recording)
            if self._db.execute("SELECT 1 FROM processed WHERE sha256 = ?", (digest,)).fetchone():
                continue
            try:
                result = self.handler(recording, sidecar)
            except Exception as exc:  # keep watching; the file is retried on the next scan
                results.append(f"failed {recording.name}: {exc}")
                continue
            self._db.execute("INSERT INTO processed VALUES (?, ?, ?, ?)", (digest, str(recording), result, time.time()))
            self._db.commit()
            results.append(result)
        return results

    def run_forever(self, poll_seconds: float | None = None) -> None:
        """Scan on every file event (watchdog) and at least every ``poll_seconds`` until ``stop`` is set."""
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        wake = self._wake

        class _Poke(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                wake.set()

        observer = Observer()
        observer.schedule(_Poke(), str(self.folder), recursive=False)
        observer.start()
        interval = poll_seconds or max(0.2, self.settle_seconds / 2)
        try:
            while not self.stop.is_set():
                self.process_ready()
                wake.wait(interval)
                wake.clear()
        finally:
            observer.stop()
            observer.join()
