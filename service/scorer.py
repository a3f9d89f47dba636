"""Scoring a job in a child process, so a scorer that hangs or crashes cannot wedge or kill the worker.

The worker keeps one child (multiprocessing "spawn" context: a forked child of a process that has used
torch can deadlock) and hands it one job at a time over a pipe. Only plain values cross the pipe:

- parent -> child: ``("score", job_id, session_dict, model_path_or_None, work_dir)``, or ``None`` to stop;
- child -> parent: ``("ready",)`` or ``("fatal", error)`` once at start (the scorer was loaded or not),
  then per job ``("progress", job_id, stage, fraction)`` any number of times and one of
  ``("done", job_id, measures, quality)`` (JSON-able lists and dicts) or ``("error", job_id, error, detail)``.

The scorer is a function named by the operator's ``PAINBATTERY_SCORER`` setting
(``"package.module:function"``; default :func:`score_session`, which runs
:func:`behavior.pipeline.run_session`), called as ``scorer(session, model=..., work_dir=..., progress=...)``,
plus ``overrides=[...]`` when the operator sets ``PAINBATTERY_ASSAY_OVERRIDES`` (dotted assay config
overrides for every job, such as ``<assay>.classifier=/srv/models/...``). Neither ever comes from a
user's upload. The child survives scorer exceptions and serves the next job; the parent replaces it only
when it dies or has to be killed (limit reached, claim lost).
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import json
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_SCORER",
    "ScorerChild",
    "ScorerCrashError",
    "ScorerError",
    "ScorerTimeoutError",
    "describe_exit",
    "load_scorer",
    "score_session",
]

DEFAULT_SCORER = "service.scorer:score_session"

Progress = Callable[[str, float], None]
Scorer = Callable[..., tuple[list[dict[str, Any]], dict[str, Any]]]


class ScorerError(RuntimeError):
    """The scorer raised: ``str(exc)`` is its ``"Type: message"``, ``detail`` its traceback."""

    def __init__(self, error: str, detail: str = "") -> None:
        super().__init__(error)
        self.detail = detail


class ScorerCrashError(RuntimeError):
    """The scoring child died (a signal, e.g. a segfault in native code, or an exit) before answering."""


class ScorerTimeoutError(TimeoutError):
    """The scoring child ran past the per-job wall-clock limit and was killed."""


def score_session(
    session: dict[str, Any],
    *,
    model: str | None,
    work_dir: str,
    progress: Progress,
    overrides: tuple[str, ...] | list[str] = (),
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The default scorer: run :func:`behavior.pipeline.run_session` on one session.

    Parameters
    ----------
    session
        Session fields (as stored with the recording, plus the stored ``video`` / ``pose`` paths).
    model
        Pose model folder for a video without a pose file, or None.
    work_dir
        Where predicted poses are written.
    progress
        Called as ``progress(stage, fraction)``.
    overrides
        The operator's dotted assay config overrides (``PAINBATTERY_ASSAY_OVERRIDES``).

    Returns
    -------
    tuple
        The measures as a list of records and the quality figures.
    """
    from behavior.pipeline import run_session
    from behavior.session import Session

    result = run_session(
        Session.model_validate(session),
        overrides=tuple(overrides),
        model=Path(model) if model else None,
        work_dir=Path(work_dir),
        progress=progress,
    )
    return result.measures.to_dict("records"), result.quality


def load_scorer(spec: str) -> Scorer:
    """Import the scorer named ``"package.module:function"``.

    Raises
    ------
    ValueError
        If ``spec`` is not of that form, the module cannot be imported or has no such callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected a scorer as 'package.module:function', got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"scorer {spec!r}: cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise ValueError(f"scorer {spec!r}: expected a function {attr!r} in {module_name!r}, got {target!r}")
    return target


def describe_exit(exitcode: int | None) -> str:
    """How a child ended, in words: ``"killed by signal 11 (SIGSEGV)"`` or ``"exited with code 3"``."""
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-exitcode} ({name})"
    return f"exited with code {exitcode}"


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and other non-JSON leaves made plain (NaN kept, as the JSON columns do)."""

    def default(obj: Any) -> Any:
        if hasattr(obj, "item"):  # numpy scalar
            return obj.item()
        if hasattr(obj, "tolist"):  # numpy array
            return obj.tolist()
        if hasattr(obj, "isoformat"):
            return obj.isoformat()
        return str(obj)

    return json.loads(json.dumps(value, default=default, allow_nan=True))


def _orphan_watch(parent_pid: int) -> None:
    # A worker killed outright (SIGKILL) cannot stop its child; the child notices and leaves.
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(3)


def _child_main(conn: Connection, spec: str, parent_pid: int, overrides: tuple[str, ...] = ()) -> None:
    """The child's loop: load the scorer, then score jobs until told to stop or the pipe closes."""
    faulthandler.enable()  # a segfault prints the Python stack to the worker's stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    threading.Thread(target=_orphan_watch, args=(parent_pid,), daemon=True).start()
    try:
        scorer = load_scorer(spec)
    except ValueError as exc:
        conn.send(("fatal", str(exc)))
        return
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        _, job_id, session, model, work_dir = message

        def progress(stage: str, fraction: float, job_id: int = job_id) -> None:
            conn.send(("progress", job_id, str(stage), float(fraction)))

        try:
            extra = {"overrides": list(overrides)} if overrides else {}
            measures, quality = scorer(session, model=model, work_dir=work_dir, progress=progress, **extra)
            conn.send(("done", job_id, *_plain([measures, quality])))
        except Exception as exc:  # reported to the parent, which fails or retries the job
            conn.send(("error", job_id, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=5)))


class ScorerChild:
    """One long-lived scoring child process, replaced when it dies or is killed.

    Parameters
    ----------
    spec
        The scorer, ``"package.module:function"``.
    start_timeout
        Longest wait for a new child to load its scorer.
    overrides
        Dotted assay config overrides handed to the scorer with every job (the operator's setting).
    """

    def __init__(
        self, spec: str = DEFAULT_SCORER, *, start_timeout: float = 300.0, overrides: tuple[str, ...] = ()
    ) -> None:
        self.spec = spec
        self.overrides = tuple(overrides)
        self.start_timeout = start_timeout
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self.spawn_seconds: list[float] = []  # wall time of each start, for figures

    @property
    def pid(self) -> int | None:
        """The current child's pid, or None."""
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        """Whether a child is running."""
        return self._proc is not None and self._proc.is_alive()

    def start(self) -> None:
        """Start a child (if none is alive) and wait until it has loaded the scorer.

        Raises
        ------
        ValueError
            If the scorer cannot be loaded.
        ScorerCrashError
            If the child dies or says nothing within ``start_timeout``.
        """
        if self.alive():
            return
        self.kill()
        began = time.monotonic()
        parent_conn, child_conn = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_child_main,
            args=(child_conn, self.spec, os.getpid(), self.overrides),
            name="painbattery-scorer",
            daemon=True,
        )
        proc.start()
        child_conn.close()  # so the parent's end sees EOF when the child dies
        self._proc, self._conn = proc, parent_conn
        try:
            ready = parent_conn.poll(self.start_timeout)
            message = parent_conn.recv() if ready else None
        except EOFError:
            message = None
        if message is None or message[0] != "ready":
            if message is None:
                proc.join(1.0)  # it may be dying: give it a moment to say how
            how = describe_exit(proc.exitcode)
            self.kill()
            if message is not None and message[0] == "fatal":
                raise ValueError(message[1])
            raise ScorerCrashError(f"scorer process {how} while loading {self.spec!r}")
        self.spawn_seconds.append(time.monotonic() - began)

    def submit(self, job_id: int, session: dict[str, Any], model: str | None, work_dir: str) -> None:
        """Hand one job to the child (starting one if needed)."""
        self.start()
        assert self._conn is not None
        self._conn.send(("score", job_id, session, model, work_dir))

    def next_message(self, timeout: float) -> tuple | None:
        """The child's next message within ``timeout`` seconds, or None.

        Raises
        ------
        ScorerCrashError
            If the child has died (its pipe closed, or it is gone without a word).
        """
        assert self._conn is not None and self._proc is not None
        try:
            if self._conn.poll(max(0.0, timeout)):
                return self._conn.recv()
        except (EOFError, OSError):
            pass  # the child is gone: find out how below
        else:
            if self._proc.is_alive():
                return None
        self._proc.join(5.0)
        how = describe_exit(self._proc.exitcode)
        self._discard()
        raise ScorerCrashError(f"scorer crashed: the scoring process was {how}")

    def kill(self) -> None:
        """Kill the child now (SIGKILL: a hung native call ignores anything gentler)."""
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(10.0)
        self._discard()

    def close(self, timeout: float = 5.0) -> None:
        """Ask an idle child to leave; kill it if it does not within ``timeout`` seconds."""
        if self._proc is not None and self._proc.is_alive() and self._conn is not None:
            with contextlib.suppress(OSError):  # already gone
                self._conn.send(None)
            self._proc.join(timeout)
        self.kill()

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None and self._proc.exitcode is not None:
            self._proc.close()
        self._proc = self._conn = None
