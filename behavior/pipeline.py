"""The one orchestrator: ``run_session`` turns one session into its measures.

Session in (metadata, pose file or video + model, events) -> the assay's spec from the registry
(:mod:`behavior.assays`) -> poses, only if the assay needs them (read, or predicted by the session's
pose model) -> the assay's extractor -> the long Measures rows with data-quality figures. The batch
CLI, the service worker and the rig hooks all call this; nothing else re-implements it, and it names
no assay: what an assay needs and how it is scored is in its spec.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from behavior import __version__
from behavior.assays import UnknownAssayError, get_assay
from behavior.provenance import file_sha256
from behavior.session import ManifestError, Session

__all__ = ["MEASURES_COLUMNS", "SessionError", "SessionResult", "run_session", "session_key", "study_measures"]

MEASURES_COLUMNS = (
    "session_id",
    "animal_id",
    "group",
    "timepoint",
    "assay",
    "domain",
    "measure",
    "value",
    "unit",
    "n",
    "quality",
)


class SessionError(ValueError):
    """A session cannot be scored (no extractor for its assay, no poses and no model...)."""


@dataclass
class SessionResult:
    """Everything one session produced."""

    session_id: str
    measures: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    poses_path: Path | None = None


def session_key(session: Session, overrides: tuple[str, ...] = ()) -> str:
    """Cache key of a session: its fields, the content of its input files, config overrides, version.

    Any change to the video, pose file, model weights, events or parameters changes the key, so a
    re-run scores exactly the sessions whose inputs changed.
    """
    # a session without a roi keeps the key it had before sessions could name one
    exclude = {"video", "pose", "model"} | ({"roi"} if session.roi is None else set())
    parts: dict[str, Any] = {
        "session": session.model_dump(mode="json", exclude=exclude),
        "overrides": list(overrides),
        "version": __version__,
    }
    for name in ("video", "pose"):
        p = getattr(session, name)
        parts[name] = file_sha256(p) if p is not None else None
    if session.model is not None:
        weights = Path(session.model) / "weights.pt"
        parts["model"] = file_sha256(weights) if weights.is_file() else str(session.model)
    try:
        parts["assay_config"] = get_assay(session.assay).config_text()
    except UnknownAssayError:
        parts["assay_config"] = None
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _poses_for(
    session: Session,
    work_dir: Path | None,
    model: Path | None,
    threads: int | None,
    progress: Callable[[str, float], None] | None,
    predicted: Path | None = None,
    step: int = 1,
) -> tuple[Any, Path | None]:
    from pose_models.io import load_poses

    if session.pose is not None:
        return load_poses(session.pose, fps=session.fps), session.pose
    if predicted is not None:  # predicted already (batch scoring decodes a video shared by sessions once)
        return load_poses(predicted, fps=session.fps), Path(predicted)
    model_dir = session.model or model
    if session.video is None or model_dir is None:
        raise SessionError(f"session {session.session_id}: expected a pose file, or a video and a pose model")
    from pose_models.inference import PoseEstimator
    from pose_models.io import save_poses

    estimator = PoseEstimator.from_dir(model_dir, threads=threads)
    report = (lambda done, total: progress("poses", done / max(total, 1))) if progress else None
    poses = estimator.predict_video(session.video, roi=session.roi, progress=report, step=step)
    poses_path = None
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
        poses_path = save_poses(poses, work_dir / f"{session.session_id}.h5")
    return poses, poses_path


def _takes_progress(extract: Callable[..., Any]) -> bool:
    """Whether an extractor accepts ``progress=`` (a callable taking the fraction done, 0-1)."""
    try:
        params = inspect.signature(extract).parameters
    except (TypeError, ValueError):
        return False
    return "progress" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def run_session(
    session: Session,
    *,
    overrides: tuple[str, ...] | list[str] = (),
    model: Path | None = None,
    work_dir: Path | None = None,
    threads: int | None = None,
    progress: Callable[[str, float], None] | None = None,
    predicted_poses: Path | None = None,
) -> SessionResult:
    """Score one session.

    Parameters
    ----------
    session
        The session (paths already resolved).
    overrides
        Dotted config overrides of the study (``section.key=value`` for every assay that has the
        section, ``<assay>.section.key=value`` for one); those that concern this assay are applied.
    model
        Pose model to use when the session has a video but no pose file and names no model.
    work_dir
        Where predicted poses are written (``<session_id>.h5``).
    threads
        CPU threads for pose inference (default: all cores).
    progress
        Called as ``progress(stage, fraction)``: ``("poses", 0-1)`` while predicting, ``("features", 0-1)``
        while the extractor runs (an extractor that accepts ``progress=`` reports its own fraction done)
        and ``("features", 1.0)`` at the end.
    predicted_poses
        Poses already predicted from the session's video (inside its ``roi``) with its pose model, used
        instead of predicting them again: batch scoring decodes a video that several sessions share
        (one per chamber) once and hands each session its file. Ignored when the session has a pose file.

    Raises
    ------
    SessionError
        If the assay is not registered, the session lacks an input the assay needs (a video, events,
        poses or a pose model), or the poses lack a keypoint the assay's config names.
    """
    try:
        session.check_assay()
    except ManifestError as exc:
        raise SessionError(f"session {session.session_id}: {exc}") from exc
    spec = get_assay(session.assay)
    session.check_files()
    config = spec.load_config(spec.applicable_overrides(overrides))
    poses, poses_path = None, None
    has_poses = session.pose is not None or predicted_poses is not None
    if spec.needs_poses or (
        spec.poses_optional and (has_poses or (session.video is not None and (session.model or model) is not None))
    ):
        step = spec.frame_step(config, session.fps)
        poses, poses_path = _poses_for(session, work_dir, model, threads, progress, predicted_poses, step)
        if spec.keypoints is not None:
            have = {str(k) for k in poses["keypoints"].values}
            lacking = [k for k in spec.keypoints(config) if k not in have]
            if lacking:
                raise SessionError(
                    f"session {session.session_id}: assay {spec.name} needs keypoints {lacking}, "
                    f"expected among the poses' {sorted(have)}"
                )
    extra: dict[str, Any] = {}
    if progress is not None and _takes_progress(spec.extract):  # any assay may report its own progress
        extra["progress"] = lambda fraction: progress("features", float(fraction))
    result = spec.extract(poses, session, config, video=session.video, **extra)
    if progress is not None:
        progress("features", 1.0)
    measures = result.measures_frame()
    identity = {
        "session_id": session.session_id,
        "animal_id": session.animal_id,
        "group": session.group,
        "timepoint": session.timepoint,
        "assay": session.assay,
        "domain": spec.domain,
    }
    for key, value in identity.items():
        measures[key] = value
    measures = measures[list(MEASURES_COLUMNS)]
    quality: dict[str, Any] = {"session_id": session.session_id, "assay": session.assay}
    if session.video is not None:  # report hooks may draw from it (contact sheets)
        quality["video"] = str(session.video)
    if poses is not None:
        pos_missing = np.isnan(poses["position"].values).any(axis=1)
        quality["frames"] = int(poses.sizes["time"])
        quality["missing_point_fraction"] = float(pos_missing.mean())
        # a session's own pose file is "file"; poses from the video through a model are "predicted"
        quality["pose_source"] = "file" if session.pose is not None else "predicted"
    else:
        quality["pose_source"] = "none"
    quality.update(result.quality)  # the assay's own figures (trials by outcome, ...)
    return SessionResult(session.session_id, measures, result.tables, quality, poses_path)


def study_measures(
    measures: pd.DataFrame,
    quality: pd.DataFrame | None = None,
    *,
    overrides: tuple[str, ...] | list[str] = (),
) -> tuple[pd.DataFrame, list[str]]:
    """Add the measures that compare sessions (each assay's ``across_sessions`` step) to a study's table.

    Run once per study on the long Measures table of its scored sessions (batch scoring, the service's
    study tables): every registered assay with an ``across_sessions`` step gets its own rows and quality
    rows and returns new rows for its sessions (a test minus its pre-test), which take the identity
    columns of the session they belong to. Steps are recomputed every time (they are cheap), so a
    re-scored pre-test changes its tests' scores. Names no assay.

    Returns
    -------
    measures, notes
        The table with the new rows appended, and one line per value a step could not compute (NaN
        with a reason in ``quality``).

    Raises
    ------
    SessionError
        If a step returns a row for a session that is not among its assay's sessions.
    """
    from behavior.assays import registered_assays

    if measures.empty or "assay" not in measures:
        return measures, []
    added: list[pd.DataFrame] = []
    notes: list[str] = []
    for name, spec in registered_assays().items():
        if spec.across_sessions is None:
            continue
        own = measures[measures["assay"] == name]
        if own.empty:
            continue
        own_quality = None
        if quality is not None and not quality.empty and "session_id" in quality:
            own_quality = quality[quality["session_id"].isin(set(own["session_id"]))]
        config = spec.load_config(spec.applicable_overrides(overrides))
        rows = spec.across_sessions(own, own_quality, config)
        if rows is None or rows.empty:
            continue
        identity = own.drop_duplicates("session_id").set_index("session_id")
        unknown = sorted(set(rows["session_id"]) - set(identity.index))
        if unknown:
            raise SessionError(f"assay {name}: its across-session step returned rows for unknown sessions {unknown}")
        if "note" in rows:
            notes.extend(str(n) for n in rows["note"] if isinstance(n, str) and n)
        rows = rows.drop(columns=["note"], errors="ignore").copy()
        for col in ("animal_id", "group", "timepoint", "assay", "domain"):
            rows[col] = rows["session_id"].map(identity[col])
        added.append(rows[list(MEASURES_COLUMNS)])
    if not added:
        return measures, notes
    out = pd.concat([measures, *added], ignore_index=True)
    return out[list(MEASURES_COLUMNS)], notes
