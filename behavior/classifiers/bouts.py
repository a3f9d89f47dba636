"""Bouts and per-frame labels: run-length coding, bouts <-> labels, and bout smoothing.

A per-frame label track is a 1-D array of behaviour names with :data:`NONE` where no behaviour is
scored. A bout is a run of one behaviour, ``start_frame`` and ``stop_frame`` both inclusive and 0-based.
Everything here is vectorised over runs (never a Python loop per frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "BOUT_COLUMNS",
    "NONE",
    "UNTRACKED",
    "Smoothing",
    "bouts_to_labels",
    "labels_to_bouts",
    "runs",
    "seen_bouts",
    "smooth_labels",
]

#: The label of a frame with no behaviour.
NONE = "none"
#: The label of a scored frame in which the body is not seen (reserved: no annotation may use it).
UNTRACKED = "untracked"
BOUT_COLUMNS = ("behavior", "start_frame", "stop_frame")


def runs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length code of an integer track: ``(starts, lengths, values)``."""
    codes = np.asarray(codes)
    n = codes.size
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, codes[:0]
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [n]]))
    return starts, lengths, codes[starts]


def labels_to_bouts(labels: Sequence[str] | np.ndarray, *, fps: float | None = None) -> pd.DataFrame:
    """The bouts of a per-frame label track (``none`` runs left out).

    Returns
    -------
    DataFrame
        ``behavior, start_frame, stop_frame, n_frames`` and, with ``fps``, ``start_s, duration_s``.
    """
    labels = np.asarray(labels, dtype=object)
    names, codes = np.unique(labels.astype(str), return_inverse=True)
    starts, lengths, values = runs(codes)
    keep = names[values] != NONE if len(values) else np.zeros(0, dtype=bool)
    out = pd.DataFrame(
        {
            "behavior": names[values][keep] if len(values) else np.zeros(0, dtype=object),
            "start_frame": starts[keep],
            "stop_frame": (starts + lengths - 1)[keep],
            "n_frames": lengths[keep],
        }
    )
    if fps is not None:
        out["start_s"] = np.round(out["start_frame"] / fps, 6)
        out["duration_s"] = np.round(out["n_frames"] / fps, 6)
    return out


def seen_bouts(labels: Sequence[str] | np.ndarray, *, fps: float | None = None) -> pd.DataFrame:
    """The bouts of the frames in which the body is seen (:data:`UNTRACKED` frames left out).

    Runs of one behaviour on both sides of an untracked stretch are one bout (the animal was not seen
    to stop, so a tracking gap does not split a bout into two and halve its duration); ``start_frame``
    and ``stop_frame`` are the recording's, ``n_frames`` and ``duration_s`` count the frames seen.
    """
    labels = np.asarray(labels, dtype=object).astype(str)
    seen = np.flatnonzero(labels != UNTRACKED)
    out = labels_to_bouts(labels[seen], fps=fps)
    if len(seen):
        out["start_frame"] = seen[out["start_frame"].to_numpy(np.int64)]
        out["stop_frame"] = seen[out["stop_frame"].to_numpy(np.int64)]
    if fps is not None:
        out["start_s"] = np.round(out["start_frame"] / fps, 6)
    return out


def bouts_to_labels(bouts: pd.DataFrame, n_frames: int, *, source: str = "bouts") -> np.ndarray:
    """A per-frame label track of ``n_frames`` from a bout table (``behavior, start_frame, stop_frame``).

    Raises
    ------
    ValueError
        If a bout has ``stop_frame < start_frame`` or a negative start, runs past ``n_frames``, or two
        bouts overlap (a frame gets one behaviour).
    """
    labels = np.full(n_frames, NONE, dtype=object)
    if bouts.empty:
        return labels
    start = bouts["start_frame"].to_numpy(dtype=np.int64)
    stop = bouts["stop_frame"].to_numpy(dtype=np.int64)
    names = bouts["behavior"].astype(str).str.strip().to_numpy(dtype=object)
    bad = np.flatnonzero((stop < start) | (start < 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{source}: expected 0 <= start_frame <= stop_frame, got {names[i]} {start[i]}-{stop[i]} "
            f"(row {i + 1}; {bad.size} such bout(s))"
        )
    if stop.max() >= n_frames:
        i = int(np.argmax(stop))
        raise ValueError(
            f"{source}: labels run past the poses: expected stop_frame < {n_frames} (the pose file's frames), "
            f"got {names[i]} ending at frame {stop[i]}"
        )
    order = np.argsort(start, kind="stable")
    s, e = start[order], stop[order]
    overlap = np.flatnonzero(s[1:] <= e[:-1])
    if overlap.size:
        a, b = order[overlap[0]], order[overlap[0] + 1]
        raise ValueError(
            f"{source}: expected one behaviour per frame, got overlapping bouts {names[a]} {start[a]}-{stop[a]} "
            f"and {names[b]} {start[b]}-{stop[b]}"
        )
    if np.any(names == NONE) or np.any(names == ""):
        raise ValueError(f"{source}: expected behaviour names, got an empty or {NONE!r} behaviour")
    # mark every frame with its bout index via a difference array (no loop per frame)
    idx = np.zeros(n_frames + 1, dtype=np.int64)
    np.add.at(idx, s, np.arange(1, len(s) + 1))
    np.add.at(idx, e + 1, -np.arange(1, len(s) + 1))
    which = np.cumsum(idx[:-1])
    inside = which > 0
    labels[inside] = names[order][which[inside] - 1]
    return labels


@dataclass(frozen=True)
class Smoothing:
    """Bout smoothing of per-frame predictions.

    Attributes
    ----------
    window_frames
        Centred moving average of the class probabilities before the arg-max (1: none).
    min_bout_frames
        Runs shorter than this take the label of their longer neighbour.
    max_gap_frames
        A run of at most this many frames between two runs of one behaviour joins them.
    """

    window_frames: int = 1
    min_bout_frames: int = 1
    max_gap_frames: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain dict (the saved classifier's manifest)."""
        return {
            "window_frames": self.window_frames,
            "min_bout_frames": self.min_bout_frames,
            "max_gap_frames": self.max_gap_frames,
        }


def _moving_average(p: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return p
    c = np.cumsum(np.vstack([np.zeros((1, p.shape[1])), p]), axis=0)
    n = p.shape[0]
    half = width // 2
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    return (c[hi] - c[lo]) / (hi - lo)[:, None]


def smooth_labels(proba: np.ndarray, smoothing: Smoothing, *, tracked: np.ndarray | None = None) -> np.ndarray:
    """Class codes per frame from probabilities ``(n_frames, n_classes)`` after bout smoothing.

    With ``tracked`` (per frame, whether the body is seen), each run of tracked frames is smoothed on
    its own: the predictions of unseen frames (no features, so a guess) neither average into, fill the
    gaps of nor absorb the short bouts of the frames around them. Untracked frames get code -1.
    """
    if tracked is not None:
        tracked = np.asarray(tracked, dtype=bool)
        codes = np.full(len(tracked), -1, dtype=np.int64)
        starts, lengths, values = runs(tracked)
        for s, n in zip(starts[values], lengths[values], strict=True):
            codes[s : s + n] = smooth_labels(proba[s : s + n], smoothing)
        return codes
    p = _moving_average(np.asarray(proba, dtype=float), smoothing.window_frames)
    codes = np.argmax(p, axis=1)
    if smoothing.max_gap_frames > 0:
        codes = _fill_gaps(codes, smoothing.max_gap_frames)
    if smoothing.min_bout_frames > 1:
        codes = _drop_short(codes, smoothing.min_bout_frames)
    return codes


def _fill_gaps(codes: np.ndarray, max_gap: int) -> np.ndarray:
    _starts, lengths, values = runs(codes)
    if len(values) < 3:
        return codes
    fill = np.zeros(len(values), dtype=bool)
    fill[1:-1] = (lengths[1:-1] <= max_gap) & (values[:-2] == values[2:])
    new_values = values.copy()
    new_values[1:-1][fill[1:-1]] = values[:-2][fill[1:-1]]
    return np.repeat(new_values, lengths)


def _drop_short(codes: np.ndarray, min_len: int) -> np.ndarray:
    for _ in range(4):  # a few passes: a short run next to another short run
        _starts, lengths, values = runs(codes)
        short = lengths < min_len
        if not short.any() or len(values) < 2:
            break
        prev_len = np.concatenate([[-1], lengths[:-1]])
        next_len = np.concatenate([lengths[1:], [-1]])
        prev_val = np.concatenate([values[:1], values[:-1]])
        next_val = np.concatenate([values[1:], values[-1:]])
        take_prev = prev_len >= next_len
        repl = np.where(take_prev, prev_val, next_val)
        # only replace short runs whose chosen neighbour is not itself short
        neigh_len = np.where(take_prev, prev_len, next_len)
        do = short & (neigh_len >= min_len)
        if not do.any():
            do = short & (lengths == lengths[short].min())
        new_values = np.where(do, repl, values)
        codes = np.repeat(new_values, lengths)
    return codes
