"""Annotation readers: a lab's human behaviour labels as one label per pose frame.

Formats (chosen from the file's columns; CSV or TSV):

- **bout CSV**: ``behavior,start_frame,stop_frame``, 0-based, both inclusive (frames of the pose file).
- **per-frame CSV**: one row per pose frame, a label column named ``behavior``, ``label`` or ``action``
  (an optional ``frame`` column must then count 0, 1, 2, ...); empty, ``none``/``other`` mean no behaviour.
- **BORIS aggregated events** (Observations > Export aggregated events, tabular): ``Subject, Behavior,
  Behavior type, Start (s), Stop (s)`` (and ``FPS`` in newer versions); state events cover the frames
  shown from ``Start`` up to (not including) ``Stop``, point events one frame.
- **BORIS tabular events** (Observations > Export events): ``Time, Subject, Behavior`` and a
  ``Behavior type`` (BORIS >= 8) or ``Status`` column of ``START``/``STOP``/``POINT``; older exports put
  observation metadata rows above the column header, which are skipped.

Seconds become frames as ``round(t * fps)`` (frame ``i`` is shown at ``i / fps``). A BORIS ``FPS`` column
that disagrees with the poses' frame rate, labels that run past the pose file, a bout with
``stop < start`` and overlapping bouts are refused with a one-line :class:`AnnotationError`.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from behavior.classifiers.bouts import NONE, bouts_to_labels

__all__ = ["AnnotationError", "read_annotations", "read_bout_table"]

NO_BEHAVIOUR_VALUES = frozenset({"", "none", "nan", "other", "background"})
MAX_ANNOTATION_BYTES = 64 * 1024 * 1024


class AnnotationError(ValueError):
    """An annotation file cannot be matched to its pose file; the message names the file and the problem."""


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    if path.stat().st_size > MAX_ANNOTATION_BYTES:
        raise AnnotationError(f"{path}: expected an annotation table under 64 MB, got {path.stat().st_size} bytes")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    lines = text.splitlines()
    if not lines:
        raise AnnotationError(f"{path}: expected an annotation table, got an empty file")
    try:
        delimiter = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=",\t;").delimiter
    except csv.Error:
        delimiter = ","
    # BORIS < 8 writes observation metadata above the header: start at the first row naming the columns
    header = 0
    for i, line in enumerate(lines[:200]):
        cells = [c.strip().strip('"').lower() for c in line.split(delimiter)]
        if "behavior" in cells and ("time" in cells or "start (s)" in cells):
            header = i
            break
    try:
        return pd.read_csv(io.StringIO("\n".join(lines[header:])), sep=delimiter, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: expected a CSV/TSV annotation table, got: {exc}") from exc


def _numbers(df: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(df[column].str.strip(), errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise AnnotationError(f"{path}: expected numbers in column {column!r}, got {df[column].iloc[bad[0]]!r}")
    return values


def _frames(values: np.ndarray, column: str, path: Path) -> np.ndarray:
    if np.any(values != np.round(values)):
        raise AnnotationError(
            f"{path}: expected whole frame numbers in {column!r}, got {values[values != np.round(values)][0]}"
        )
    return values.astype(np.int64)


def _check_boris_fps(df: pd.DataFrame, fps: float, path: Path) -> None:
    if "FPS" not in df.columns:
        return
    got = pd.to_numeric(df["FPS"].str.strip(), errors="coerce").dropna()
    got = got[got > 0]
    if len(got) and not np.allclose(got.to_numpy(), fps, rtol=1e-3):
        raise AnnotationError(f"{path}: BORIS coded the video at {got.iloc[0]:g} fps, expected the poses' {fps:g} fps")


def _pick_subject(df: pd.DataFrame, subject: str | None, path: Path) -> pd.DataFrame:
    if "Subject" not in df.columns:
        return df
    subjects = sorted(set(df["Subject"].str.strip()) - {""})
    if subject is not None:
        if subject not in subjects:
            raise AnnotationError(f"{path}: expected subject {subject!r} among {subjects}, got none of its events")
        return df[df["Subject"].str.strip() == subject]
    if len(subjects) > 1:
        raise AnnotationError(f"{path}: events of several subjects {subjects}: expected one (name it with subject=)")
    return df


def _seconds_to_frames(t_s: np.ndarray, fps: float) -> np.ndarray:
    return np.round(np.asarray(t_s, dtype=float) * fps).astype(np.int64)


def _boris_aggregated(df: pd.DataFrame, fps: float, path: Path) -> pd.DataFrame:
    start = _seconds_to_frames(_numbers(df, "Start (s)", path), fps)
    stop_s = _numbers(df, "Stop (s)", path)
    if np.any(stop_s < _numbers(df, "Start (s)", path)):
        i = int(np.flatnonzero(stop_s < _numbers(df, "Start (s)", path))[0])
        raise AnnotationError(f"{path}: expected Stop (s) >= Start (s), got row {i + 1}: {df.iloc[i]['Behavior']}")
    kind = (
        df["Behavior type"].str.strip().str.upper() if "Behavior type" in df.columns else pd.Series("STATE", df.index)
    )
    point = (kind == "POINT").to_numpy()
    stop = np.where(point, start, np.maximum(start, _seconds_to_frames(stop_s, fps) - 1))
    return pd.DataFrame({"behavior": df["Behavior"].str.strip().to_numpy(), "start_frame": start, "stop_frame": stop})


def _boris_tabular(df: pd.DataFrame, fps: float, path: Path) -> pd.DataFrame:
    status_col = "Behavior type" if "Behavior type" in df.columns else "Status"
    if status_col not in df.columns:
        raise AnnotationError(
            f"{path}: BORIS events: expected a 'Behavior type' or 'Status' column, got {list(df.columns)}"
        )
    t = _numbers(df, "Time", path)
    status = df[status_col].str.strip().str.upper().to_numpy()
    names = df["Behavior"].str.strip().to_numpy()
    subj = df["Subject"].str.strip().to_numpy() if "Subject" in df.columns else np.full(len(df), "")
    rows: list[tuple[str, int, int]] = []
    open_at: dict[tuple[str, str], float] = {}
    order = np.argsort(t, kind="stable")
    for i in order:  # one pass over events (not frames)
        key = (str(subj[i]), str(names[i]))
        if status[i] == "POINT":
            f = int(_seconds_to_frames(t[i : i + 1], fps)[0])
            rows.append((key[1], f, f))
        elif status[i] == "START":
            if key in open_at:
                raise AnnotationError(f"{path}: {key[1]} STARTs again at {t[i]:g} s before its STOP")
            open_at[key] = t[i]
        elif status[i] == "STOP":
            if key not in open_at:
                raise AnnotationError(f"{path}: {key[1]} STOPs at {t[i]:g} s without a START")
            t0 = open_at.pop(key)
            f0 = int(_seconds_to_frames(np.array([t0]), fps)[0])
            f1 = max(f0, int(_seconds_to_frames(t[i : i + 1], fps)[0]) - 1)
            rows.append((key[1], f0, f1))
        else:
            raise AnnotationError(f"{path}: expected {status_col} START, STOP or POINT, got {status[i]!r}")
    if open_at:
        name = next(iter(open_at))[1]
        raise AnnotationError(f"{path}: {name} STARTs at {open_at[next(iter(open_at))]:g} s and never STOPs")
    return pd.DataFrame(rows, columns=["behavior", "start_frame", "stop_frame"])


def read_bout_table(path: str | Path, *, fps: float, subject: str | None = None) -> pd.DataFrame | None:
    """The bouts of an annotation file in frames (``behavior, start_frame, stop_frame``, inclusive).

    Returns None for a per-frame label file (see :func:`read_annotations`).

    Raises
    ------
    AnnotationError
        For a file of no known form, a bad number, or a BORIS frame rate that is not ``fps``.
    """
    path = Path(path)
    df = _read_table(path)
    cols = set(df.columns)
    if {"behavior", "start_frame", "stop_frame"} <= cols:
        start = _frames(_numbers(df, "start_frame", path), "start_frame", path)
        stop = _frames(_numbers(df, "stop_frame", path), "stop_frame", path)
        return pd.DataFrame(
            {"behavior": df["behavior"].str.strip().to_numpy(), "start_frame": start, "stop_frame": stop}
        )
    if {"Behavior", "Start (s)", "Stop (s)"} <= cols:
        _check_boris_fps(df, fps, path)
        return _boris_aggregated(_pick_subject(df, subject, path), fps, path)
    if {"Behavior", "Time"} <= cols:
        _check_boris_fps(df, fps, path)
        return _boris_tabular(_pick_subject(df, subject, path), fps, path)
    return None


def read_annotations(path: str | Path, *, n_frames: int, fps: float, subject: str | None = None) -> np.ndarray:
    """One label per pose frame from an annotation file (bouts, per-frame labels or a BORIS export).

    Parameters
    ----------
    path
        The annotation file.
    n_frames, fps
        The pose file's number of frames and frame rate: labels are matched to them.
    subject
        The BORIS subject to take when the export holds several.

    Returns
    -------
    numpy.ndarray
        ``(n_frames,)`` behaviour names, :data:`~behavior.classifiers.bouts.NONE` where none is scored.

    Raises
    ------
    AnnotationError
        If labels run past the poses, a per-frame file's length differs from the poses', a bout has
        ``stop < start``, bouts overlap, or a BORIS export was coded at another frame rate.
    """
    path = Path(path)
    if not (fps > 0 and math.isfinite(fps)):
        raise AnnotationError(f"{path}: expected a frame rate > 0, got {fps}")
    bouts = read_bout_table(path, fps=fps, subject=subject)
    if bouts is not None:
        try:
            return bouts_to_labels(bouts, n_frames, source=str(path))
        except ValueError as exc:
            raise AnnotationError(str(exc)) from exc
    df = _read_table(path)
    lower = {c.strip().lower(): c for c in df.columns}
    col = next((lower[c] for c in ("behavior", "behaviour", "label", "action") if c in lower), None)
    if col is None:
        raise AnnotationError(
            f"{path}: expected bouts (behavior,start_frame,stop_frame), a per-frame label column (behavior/label) "
            f"or a BORIS export, got columns {list(df.columns)}"
        )
    if len(df) != n_frames:
        raise AnnotationError(
            f"{path}: expected one label per pose frame ({n_frames}), got {len(df)} rows"
            + (" (labels run past the poses)" if len(df) > n_frames else "")
        )
    if "frame" in lower:
        frames = _frames(_numbers(df, lower["frame"], path), "frame", path)
        if not np.array_equal(frames, np.arange(n_frames)):
            raise AnnotationError(f"{path}: expected frames 0..{n_frames - 1} in order, got {frames[:3].tolist()}...")
    labels = df[col].str.strip().to_numpy(dtype=object)
    labels[np.isin(np.char.lower(labels.astype(str)), list(NO_BEHAVIOUR_VALUES))] = NONE
    return labels
