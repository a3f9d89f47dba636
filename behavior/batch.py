"""Scoring a whole study: manifest in; measures, battery, statistics and report out.

Every session goes through :func:`behavior.pipeline.run_session`; measures that compare sessions of
an animal (an assay's ``across_sessions`` step) are added once the study's sessions are scored
(:func:`behavior.pipeline.study_measures`). Results are cached per session
under ``OUT/cache/<session_id>.json``, keyed by the content of the session's inputs and config
(:func:`behavior.pipeline.session_key`), and written atomically when the session finishes, so an
interrupted run resumes where it stopped and a re-run scores only sessions whose inputs changed. One
failing session is recorded in ``failures.csv`` and does not stop the others.

Executors: in-process (``workers=1``), a local process pool (``workers>1``), or a Dask distributed
cluster (``scheduler=ADDRESS``; LocalCluster, SSH or SLURM via dask-jobqueue). The same worker
function runs in all three, and results are assembled in manifest order, so the tables are identical.

One camera may film several chambers: sessions naming regions (``roi``) of one video, whose poses come
from the same model, are predicted in a pre-pass (:func:`predict_shared`, a task in the same executor)
that decodes the video once and writes each session's poses to ``OUT/poses/<session_id>.h5``; each
session is then scored from its file by :func:`behavior.pipeline.run_session` as usual.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from behavior.assays import check_overrides
from behavior.pipeline import MEASURES_COLUMNS, run_session, session_key, study_measures
from behavior.session import ManifestError, Session, read_manifest

__all__ = [
    "StudyResult",
    "keyed_session",
    "model_for",
    "predict_shared",
    "score_session",
    "score_study",
    "shared_videos",
]


@dataclass
class StudyResult:
    """The tables of a scored study."""

    measures: pd.DataFrame
    quality: pd.DataFrame
    failures: pd.DataFrame
    statuses: dict[str, str] = field(default_factory=dict)
    #: One line per across-session value that could not be computed (a test without its pre-test ...).
    notes: list[str] = field(default_factory=list)

    @property
    def n_cached(self) -> int:
        """Sessions taken from the cache."""
        return sum(s == "cached" for s in self.statuses.values())

    @property
    def n_scored(self) -> int:
        """Sessions scored in this run."""
        return sum(s == "scored" for s in self.statuses.values())


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(data, default=str))
    tmp.replace(path)


def model_for(session: Session, models: dict[str, str] | str | None) -> str | None:
    """The pose model a session uses when it names none: the study's model for its assay, else the default.

    ``models`` maps assay names to model folders; the key ``""`` is the default for every assay. A
    plain string is the default.
    """
    if models is None or isinstance(models, str):
        return models
    return models.get(session.assay) or models.get("")


def keyed_session(session: Session, models: dict[str, str] | str | None) -> Session:
    """The session as its cache key sees it: with the study's pose model when its poses come from it.

    A session that names no model of its own but has its poses predicted from its video with the
    study's model for its assay (``--model ASSAY=DIR`` or ``--model DIR``) is keyed by that model's
    weights, so scoring again with another model scores again instead of returning the first model's
    measures from the cache. A model the session does not use (it has a pose file, no video, or its
    assay reads no poses) leaves the key as it was.
    """
    from behavior.assays import UnknownAssayError, get_assay

    if session.model is not None or session.pose is not None or session.video is None:
        return session
    default = model_for(session, models)
    if not default:
        return session
    try:
        spec = get_assay(session.assay)
    except UnknownAssayError:
        return session  # its run reports the unknown assay
    if not (spec.needs_poses or spec.poses_optional):
        return session
    return session.model_copy(update={"model": Path(default)})


def score_session(
    session_data: dict[str, Any],
    out_dir: str,
    overrides: tuple[str, ...] = (),
    model: dict[str, str] | str | None = None,
    threads: int | None = None,
    predicted_poses: str | None = None,
) -> dict[str, Any]:
    """Score one session (or take it from the cache); runs in any executor, so takes and returns plain data.

    ``model``: the study's pose models by assay (``""`` for all), or one model folder for all.
    ``predicted_poses``: the session's poses, predicted by the :func:`predict_shared` pre-pass.
    """
    session = Session.model_validate(session_data)
    default_model = model_for(session, model)
    out = Path(out_dir)
    cache_dir = out / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    entry = cache_dir / f"{session.session_id}.json"
    try:
        key = session_key(keyed_session(session, model), tuple(overrides))
        if entry.is_file():
            cached = json.loads(entry.read_text())
            if cached.get("key") == key:
                return {**cached, "status": "cached"}
        result = run_session(
            session,
            overrides=tuple(overrides),
            model=Path(default_model) if default_model else None,
            work_dir=out / "poses",
            threads=threads,
            predicted_poses=Path(predicted_poses) if predicted_poses else None,
        )
        tables_dir = out / "sessions" / session.session_id
        tables_dir.mkdir(parents=True, exist_ok=True)
        for name, table in result.tables.items():
            table.to_csv(tables_dir / f"{name}.csv", index=False)
        data = {
            "key": key,
            "session_id": session.session_id,
            "measures": json.loads(result.measures.to_json(orient="records")),
            "quality": result.quality,
        }
        _write_json_atomic(entry, data)
        return {**data, "status": "scored"}
    except Exception as exc:  # one failing session is reported, the others go on
        return {
            "session_id": session.session_id,
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=5),
        }


def _cached(
    session: Session, out_dir: Path, overrides: tuple[str, ...], models: dict[str, str] | str | None = None
) -> bool:
    """Whether the session's cache entry holds a result for its current inputs (and the study's models)."""
    entry = out_dir / "cache" / f"{session.session_id}.json"
    if not entry.is_file():
        return False
    try:
        return json.loads(entry.read_text()).get("key") == session_key(keyed_session(session, models), overrides)
    except (OSError, ValueError):
        return False


def shared_videos(
    sessions: list[Session],
    model: dict[str, str] | str | None,
    out_dir: str | Path | None = None,
    overrides: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Groups of sessions whose poses come from one video and one pose model: predict each group in one pass.

    A session joins when its assay needs poses, it has a video and no pose file, and it has a pose
    model (its own, or the study's for its assay); with ``out_dir``, sessions already in the cache stay
    out. Only groups of two or more sessions are returned (a lone session predicts its own poses).

    Returns
    -------
    list of dict
        ``{"video", "model", "sessions": [session_id, ...], "rois": [[x, y, w, h] or None, ...]}``.
    """
    from behavior.assays import UnknownAssayError, get_assay

    groups: dict[tuple[str, str, int], dict[str, Any]] = {}
    for s in sessions:
        try:
            spec = get_assay(s.assay)
        except UnknownAssayError:
            continue  # its own run reports it
        needs_poses = spec.needs_poses
        model_dir = s.model or model_for(s, model)
        if not needs_poses or s.pose is not None or s.video is None or not model_dir:
            continue
        if out_dir is not None and _cached(s, Path(out_dir), overrides, model):
            continue
        step = 1
        if spec.pose_frame_step is not None:  # sessions that predict a frame in k share only with their like
            try:
                step = spec.frame_step(spec.load_config(spec.applicable_overrides(overrides)), s.fps)
            except ValueError:
                continue  # its own run reports the config error
        key = (str(Path(s.video).resolve()), str(Path(model_dir).resolve()), step)
        group = groups.setdefault(key, {"video": key[0], "model": key[1], "step": step, "sessions": [], "rois": []})
        group["sessions"].append(s.session_id)
        group["rois"].append(list(s.roi) if s.roi is not None else None)
    return [g for g in groups.values() if len(g["sessions"]) > 1]


def predict_shared(group: dict[str, Any], out_dir: str, threads: int | None = None) -> dict[str, Any]:
    """Predict the poses of a :func:`shared_videos` group, decoding its video once; runs in any executor.

    Each session's poses go to ``OUT/poses/<session_id>.h5``. A roi outside the video's frame is left
    out (that session then fails on its own with the reason); any other failure is returned, and the
    group's sessions then predict their own poses (and report their own errors).

    Returns
    -------
    dict
        ``{"poses": {session_id: path}, "error": None or text}``.
    """
    from pose_models.inference import PoseEstimator
    from pose_models.io import save_poses
    from pose_models.video import ROI, VideoError, check_roi, probe_video

    try:
        info = probe_video(group["video"])
        chosen = []
        for sid, roi in zip(group["sessions"], group["rois"], strict=True):
            try:
                if roi is not None:
                    check_roi(ROI(*roi), info)
            except (ValueError, VideoError):
                continue
            chosen.append((sid, roi))
        if not chosen:
            return {"poses": {}, "error": None}
        estimator = PoseEstimator.from_dir(group["model"], threads=threads)
        predicted = estimator.predict_video_rois(group["video"], [r for _, r in chosen], step=group.get("step", 1))
        poses_dir = Path(out_dir) / "poses"
        poses_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            sid: str(save_poses(ds, poses_dir / f"{sid}.h5")) for (sid, _), ds in zip(chosen, predicted, strict=True)
        }
        return {"poses": paths, "error": None}
    except Exception as exc:  # the sessions then run on their own and report their errors one by one
        return {"poses": {}, "error": f"{type(exc).__name__}: {exc}"}


@contextmanager
def _executor(workers: int, scheduler: str | None) -> Iterator[Callable[..., Iterator[Any]]]:
    """``run(fn, calls)``: call ``fn(*args)`` for each args of ``calls`` in the chosen executor, yield results."""
    if scheduler:
        try:
            from distributed import Client
            from distributed import as_completed as dask_completed
        except ImportError as exc:
            raise ValueError("--scheduler needs the distributed extra: pip install 'painbattery[distributed]'") from exc
        with Client(scheduler) as client:

            def run_dask(fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> Iterator[Any]:
                futures = [client.submit(fn, *args, pure=False) for args in calls]
                for future in dask_completed(futures):
                    yield future.result()

            yield run_dask
    elif workers > 1:
        # spawn, not fork: a parent that already ran torch/OpenMP (e.g. trained a model) deadlocks forked children
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:

            def run_pool(fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> Iterator[Any]:
                futures = [pool.submit(fn, *args) for args in calls]
                for future in as_completed(futures):
                    yield future.result()

            yield run_pool
    else:

        def run_here(fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> Iterator[Any]:
            for args in calls:
                yield fn(*args)

        yield run_here


def _run_all(
    payloads: list[dict[str, Any]],
    out_dir: Path,
    overrides: tuple[str, ...],
    model: dict[str, str],
    workers: int,
    scheduler: str | None,
    progress: Callable[[int, int, dict[str, Any]], None] | None,
    shared: list[dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    total = len(payloads)

    def done(r: dict[str, Any]) -> None:
        results[r["session_id"]] = r
        if progress is not None:
            progress(len(results), total, r)

    # share the cores between local workers; a Dask worker gets one thread per task
    threads = max(1, (os.cpu_count() or 1) // workers) if not scheduler else 1
    with _executor(workers, scheduler) as run:
        predicted: dict[str, str] = {}
        if shared:  # videos several sessions share (one per chamber): decoded once, before the sessions
            pre_threads = max(1, (os.cpu_count() or 1) // min(workers, len(shared))) if not scheduler else 1
            for r in run(predict_shared, [(g, str(out_dir), pre_threads) for g in shared]):
                predicted.update(r["poses"])
        calls = [(p, str(out_dir), overrides, model, threads, predicted.get(p["session_id"])) for p in payloads]
        for r in run(score_session, calls):
            done(r)
    return results


def score_study(
    manifest: str | Path | list[Session],
    out_dir: str | Path,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    model: str | Path | dict[str, str | Path] | None = None,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> StudyResult:
    """Score every session of a manifest (validated in full before any work starts).

    ``model`` is the pose model for sessions with a video, no pose file and no model of their own: one
    folder for every assay, or a mapping assay -> folder (``""``: the default for the other assays),
    since a study may film different body parts with different cameras.

    Returns
    -------
    StudyResult
        The long measures table (manifest order), per-session data quality, and the failures.
    """
    sessions = read_manifest(manifest) if not isinstance(manifest, list) else manifest
    if not sessions:
        raise ManifestError("expected at least one session, got none")
    check_overrides(overrides, [s.assay for s in sessions])  # a typo fails here, before any work
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payloads = [s.model_dump(mode="json") for s in sessions]
    # export each pose model to ONNX once, here, rather than in every worker at the same time
    models_by_assay = {k: str(v) for k, v in (model.items() if isinstance(model, dict) else [("", model)]) if v}
    models = {Path(m) for m in [*(s.model for s in sessions if s.model and not s.pose), *models_by_assay.values()]}
    for model_dir in sorted(models):
        if (Path(model_dir) / "weights.pt").is_file():
            from pose_models.inference import export_onnx

            export_onnx(model_dir, precision="auto")
    shared = shared_videos(sessions, models_by_assay, out, tuple(overrides))
    results = _run_all(payloads, out, tuple(overrides), models_by_assay, max(1, workers), scheduler, progress, shared)
    measures, quality, failures = [], [], []
    statuses = {}
    for s in sessions:  # manifest order, whatever order the executor finished in
        r = results[s.session_id]
        statuses[s.session_id] = r["status"]
        if r["status"] == "failed":
            failures.append({"session_id": s.session_id, "assay": s.assay, "error": r["error"]})
            continue
        measures.extend(r["measures"])
        quality.append(r["quality"])
    measures_df = pd.DataFrame(measures, columns=list(MEASURES_COLUMNS))
    quality_df = pd.DataFrame(quality)
    # measures that compare sessions of an animal (a test against its pre-test): once, over the whole study
    measures_df, notes = study_measures(measures_df, quality_df, overrides=tuple(overrides))
    return StudyResult(
        measures=measures_df,
        quality=quality_df,
        failures=pd.DataFrame(failures, columns=["session_id", "assay", "error"]),
        statuses=statuses,
        notes=notes,
    )


def default_workers() -> int:
    """A sensible local process count: the cores, at most 4."""
    return min(4, os.cpu_count() or 1)
