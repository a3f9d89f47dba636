"""Spontaneous pain behaviours in a bottom-up pain box (LUPE-like): licking, flinching, guarding, ...

A session is one recording of one animal from below; a behaviour classifier trained on the lab's own
annotations (``painbattery behaviours train``, :mod:`behavior.classifiers`) labels every pose frame.
The config names the classifier's directory; the session's ``side`` (the injured paw) turns licking of
the left / right hind paw into ipsilateral / contralateral licking.

Measures (per behaviour ``b`` of the classifier): ``time_<b>_s``, ``time_<b>_fraction``, ``bouts_<b>``,
``mean_bout_<b>_s``; ``flinch_count``; ``licking_ipsi_s``, ``licking_contra_s``,
``licking_ipsi_minus_contra_s`` (see :mod:`behavior.classifiers.apply`). Tables: ``behaviour_frames``
(frame, behavior, probabilities) and ``behaviour_bouts``. The study report gets an ethogram strip per
session and the time in each behaviour per group over time.
"""

from __future__ import annotations

import base64
import io
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from behavior.assays import AssaySpec, MeasureSpec, ReportContext, ReportItem, register_assay
from behavior.features.base import AssayResult
from behavior.session import Session

__all__ = [
    "BEHAVIOUR_COLOURS",
    "PainBoxConfig",
    "ethogram_figure",
    "extract_pain_box",
    "pain_box_report",
    "time_in_behaviour_figure",
]

#: Colours of the default behaviour set (others cycle through tab10).
BEHAVIOUR_COLOURS = {
    "licking": "#d62728",
    "flinching": "#ff7f0e",
    "guarding": "#9467bd",
    "grooming": "#2ca02c",
    "rearing": "#17becf",
    "locomotion": "#1f77b4",
    "still": "#7f7f7f",
    "none": "#f0f0f0",
}


class PainBoxConfig(BaseModel):
    """``configs/assays/pain_box.yaml``."""

    model_config = ConfigDict(extra="forbid")
    assay: Literal["pain_box"] = "pain_box"
    classifier: Path | None = Field(None, description="model directory written by 'painbattery behaviours train'")
    roles: dict[str, str] = Field(default_factory=dict, description="keypoint name -> role, beyond the skeleton's")
    skeleton: str = Field("pain_box", min_length=1, description="skeleton file whose roles name the keypoints")
    behaviours: list[str] | None = Field(None, description="behaviours to report (default: all it scores)")
    max_untracked_fraction: float = Field(
        0.2, ge=0, le=1, description="above this share of frames without snout and tail base, measures are NaN"
    )
    expected_duration_s: float | None = Field(
        None, gt=0, description="planned session length: longer ones are cut to it, shorter ones (< 95 %) flagged"
    )


@lru_cache(maxsize=4)
def _classifier(path: str, mtime_ns: int) -> Any:
    from behavior.classifiers import load_classifier

    return load_classifier(path)


def _load(config: PainBoxConfig, session: Session) -> Any:
    if config.classifier is None:
        raise ValueError(
            f"session {session.session_id}: expected a behaviour classifier (pain_box config 'classifier': a model "
            "directory from 'painbattery behaviours train'), got none"
        )
    path = Path(config.classifier).expanduser()
    manifest = path / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"pain_box classifier: expected a model directory with manifest.json, got {path}")
    return _classifier(str(path.resolve()), manifest.stat().st_mtime_ns)


def extract_pain_box(poses: Any, session: Session, config: PainBoxConfig, *, video: Path | None = None) -> AssayResult:
    """The registered extractor: label every pose frame with the config's classifier, then session measures.

    Raises
    ------
    ValueError
        Without a classifier, for poses at another frame rate, a missing keypoint role, or an unknown behaviour.
    """
    from behavior.classifiers import apply_classifier
    from behavior.classifiers.roles import normalise_name

    clf = _load(config, session)
    roles = {normalise_name(k): v for k, v in config.roles.items()}
    scores = apply_classifier(
        clf,
        poses,
        roles=roles,
        skeleton=config.skeleton,
        behaviours=config.behaviours,
        side=session.side,
        fps=float(poses.attrs.get("fps") or session.fps),
        source=f"session {session.session_id}",
        max_untracked_fraction=config.max_untracked_fraction,
        expected_duration_s=config.expected_duration_s,
    )
    quality = {**scores.quality, "classifier": str(config.classifier), "behaviours": ", ".join(clf.behaviours)}
    if session.side is None:
        quality["measure_quality"] = "no side: no ipsi/contra licking"
    return AssayResult(
        measures=scores.measures,
        tables={"behaviour_frames": scores.frames, "behaviour_bouts": scores.bouts},
        quality=quality,
    )


# --------------------------------------------------------------------------- figures


def _colour(behaviour: str, order: list[str]) -> str:
    import matplotlib

    if behaviour in BEHAVIOUR_COLOURS:
        return BEHAVIOUR_COLOURS[behaviour]
    return matplotlib.colors.to_hex(matplotlib.colormaps["tab10"](order.index(behaviour) % 10))


def ethogram_figure(
    sessions: dict[str, np.ndarray], fps: float | dict[str, float], *, behaviours: list[str] | None = None
) -> Any:
    """An ethogram strip per session: one row, the behaviour of each frame in colour, time in seconds.

    Parameters
    ----------
    sessions
        Session label -> per-frame behaviour labels.
    fps
        Frame rate (one, or per session).
    behaviours
        Legend order (default: every label seen, ``none`` last).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    seen = sorted({str(v) for labels in sessions.values() for v in labels} - {"none"})
    order = list(behaviours) if behaviours is not None else seen
    order += [b for b in seen if b not in order]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(sessions) + 1.3))
    for row, (name, labels) in enumerate(sessions.items()):
        rate = fps[name] if isinstance(fps, dict) else fps
        labels = np.asarray(labels).astype(str)
        if labels.size == 0:
            continue
        change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
        starts = np.concatenate([[0], change])
        stops = np.concatenate([change, [labels.size]])
        for b in order:
            keep = labels[starts] == b
            if keep.any():
                spans = list(zip(starts[keep] / rate, (stops[keep] - starts[keep]) / rate, strict=True))
                ax.broken_barh(spans, (row - 0.4, 0.8), color=_colour(b, order), linewidth=0)
    ax.set_yticks(range(len(sessions)), list(sessions), fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    ax.spines[["top", "right"]].set_visible(False)
    handles = [Patch(color=_colour(b, order), label=b) for b in order]
    ax.legend(
        handles=handles, fontsize=7, frameon=False, ncol=min(len(order), 8), loc="lower left", bbox_to_anchor=(0, 1)
    )
    fig.tight_layout()
    return fig


def time_in_behaviour_figure(measures: pd.DataFrame, *, group_names: dict[str, str] | None = None) -> Any:
    """Mean share of time in each behaviour per group over timepoints (one panel per behaviour).

    ``measures`` is the long Measures table (rows ``time_<b>_fraction`` of the pain-box sessions).
    Returns None when there are no such rows.
    """
    from behavior.stats import timepoint_order

    rows = measures[measures["measure"].astype(str).str.match(r"^time_.+_fraction$")]
    if rows.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rows.assign(behaviour=rows["measure"].str.slice(5, -9))
    behaviours = sorted(rows["behaviour"].unique())
    timepoints = timepoint_order(rows["timepoint"].astype(str))
    groups = sorted(rows["group"].astype(str).unique())
    cols = min(4, len(behaviours))
    nrows = int(np.ceil(len(behaviours) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols + 0.6, 2.2 * nrows + 0.4), squeeze=False, sharex=True)
    x = np.arange(len(timepoints))
    for ax, b in zip(axes.flat, behaviours, strict=False):
        mine = rows[rows["behaviour"] == b]
        for g in groups:
            by_tp = mine[mine["group"].astype(str) == g].groupby(mine["timepoint"].astype(str))["value"]
            mean = by_tp.mean().reindex(timepoints).to_numpy(dtype=float) * 100
            sem = by_tp.sem().reindex(timepoints).to_numpy(dtype=float) * 100
            ax.errorbar(x, mean, yerr=sem, marker="o", ms=3, lw=1, capsize=2, label=(group_names or {}).get(g, g))
        ax.set_title(b, fontsize=9)
        ax.set_xticks(x, timepoints, rotation=30, fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in list(axes.flat)[len(behaviours) :]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("time (% of session)", fontsize=8)
    axes[0][-1 if len(behaviours) >= cols else 0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


#: At most this many sessions in the report's ethogram (one row each).
MAX_ETHOGRAM_SESSIONS = 40


def pain_box_report(ctx: ReportContext) -> list[ReportItem]:
    """The pain box's part of the study report: time in each behaviour per group over time, ethograms."""
    m = ctx.measures
    if m.empty or "assay" not in m:
        return []
    pb = m[m["assay"] == "pain_box"]
    items: list[ReportItem] = []
    fig = time_in_behaviour_figure(pb, group_names=ctx.group_names)
    if fig is not None:
        items.append(
            ReportItem(
                title="Pain box: time in each behaviour",
                png_base64=_png(fig),
                caption="Mean share of the session in each classified behaviour per group and timepoint (+- SEM).",
            )
        )
    strips: dict[str, np.ndarray] = {}
    rates: dict[str, float] = {}
    sessions = pb.drop_duplicates("session_id").sort_values(["group", "timepoint", "session_id"])
    for row in sessions.head(MAX_ETHOGRAM_SESSIONS).itertuples():
        table = ctx.session_table(str(row.session_id), "behaviour_frames")
        if table is None or "behavior" not in table:
            continue
        n = pb[(pb["session_id"] == row.session_id) & (pb["measure"].str.startswith("time_"))]
        seconds = n[n["measure"].str.endswith("_s")]["value"].sum()
        fraction = n[n["measure"].str.endswith("_fraction")]["value"].sum()
        label = f"{row.session_id} ({ctx.group_names.get(str(row.group), str(row.group))}, {row.timepoint})"
        strips[label] = table["behavior"].fillna("none").astype(str).to_numpy()
        rates[label] = float(len(table) * fraction / seconds) if seconds > 0 and fraction > 0 else 1.0
    if strips:
        items.append(
            ReportItem(
                title="Pain box: ethogram per session",
                png_base64=_png(ethogram_figure(strips, rates)),
                caption="Classified behaviour of every frame; grey: none of the behaviours.",
            )
        )
    return items


def _methods(config: PainBoxConfig) -> str:
    return (
        "Spontaneous pain behaviours (bottom-up pain box) were labelled per frame by a gradient-boosting classifier "
        "trained on human annotations (pose features over sliding windows, scaled to body length; cross-validated "
        "with folds grouped by animal; bout smoothing chosen on the training folds). Licking was attributed to the "
        "hind paw nearer the snout, ipsilateral or contralateral to the injury."
    )


register_assay(
    AssaySpec(
        name="pain_box",
        domain="spontaneous",
        config_model=PainBoxConfig,
        extract=extract_pain_box,
        measures=(
            MeasureSpec("licking_ipsi_s", "s", "time licking the injured hind paw"),
            MeasureSpec("licking_contra_s", "s", "time licking the other hind paw"),
            MeasureSpec("licking_ipsi_minus_contra_s", "s", "licking time, injured minus other hind paw"),
            MeasureSpec("flinch_count", "count", "flinching / shaking bouts"),
            MeasureSpec("time_{behaviour}_s", "s", "time in each behaviour the classifier scores"),
            MeasureSpec("time_{behaviour}_fraction", "fraction", "share of the session in each behaviour"),
            MeasureSpec("bouts_{behaviour}", "count", "bouts of each behaviour"),
            MeasureSpec("mean_bout_{behaviour}_s", "s", "mean bout duration of each behaviour"),
        ),
        needs_poses=True,
        quality_figures=("n_frames", "duration_s", "untracked_fraction", "frames_without_body_axis", "body_length_px"),
        methods=_methods,
        report=pain_box_report,
        labels={
            "frames_without_body_axis": "frames without snout and tail base",
            "untracked_fraction": "share of frames untracked (no behaviour read)",
        },
        description="Pain box: licking (ipsi/contra), flinching, guarding, grooming, rearing from a trained classifier",
    )
)
