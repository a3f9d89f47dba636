"""Evoked-assay extractors (Hargreaves, von Frey, PAWS kinematics): session in, measures out.

Each reads its strict config from ``configs/assays/<assay>.yaml`` (:func:`assay_config`) and
registers under its assay name. Paw measures are named by side, or ipsilateral / contralateral when
the session names the injured side (``latency_ipsi_s``, ``threshold_contra_g``...).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from behavior.config import apply_overrides, load_config
from behavior.features.base import AssayResult, Measure, register_extractor
from behavior.features.paws import FEATURES, PawsParams, paw_features, track_from_poses
from behavior.features.von_frey import FilamentSeries, SequenceError, sudo_threshold, updown_threshold
from behavior.features.withdrawal import UNKNOWN_OUTCOMES, WithdrawalParams, withdrawal_trials
from behavior.session import Session

__all__ = [
    "HargreavesConfig",
    "PawsConfig",
    "VonFreyConfig",
    "assay_config",
    "extract_hargreaves",
    "extract_paws",
    "extract_von_frey",
    "stimulus_events",
]

SIDES = ("left", "right")


class HargreavesConfig(BaseModel):
    """``configs/assays/hargreaves.yaml``."""

    model_config = ConfigDict(extra="forbid")
    assay: Literal["hargreaves"] = "hargreaves"
    domain: Literal["evoked"] = "evoked"
    paw_keypoints: dict[Literal["left", "right"], str]
    cutoff_s: float = Field(20.0, gt=0)
    light_roi: dict[Literal["left", "right"], list[int]] | None = None
    withdrawal: WithdrawalParams = WithdrawalParams()


class VonFreyConfig(BaseModel):
    """``configs/assays/von_frey.yaml``."""

    model_config = ConfigDict(extra="forbid")
    assay: Literal["von_frey"] = "von_frey"
    domain: Literal["evoked"] = "evoked"
    paw_keypoints: dict[Literal["left", "right"], str]
    series: str = "chaplan8"
    method: Literal["updown", "sudo"] = "updown"
    response_window_s: float = Field(6.0, gt=0)
    off_grace_s: float = Field(0.5, ge=0, description="A withdrawal counts up to this long after removal.")
    withdrawal: WithdrawalParams = WithdrawalParams()


class PawsConfig(BaseModel):
    """``configs/assays/paws.yaml``."""

    model_config = ConfigDict(extra="forbid")
    assay: Literal["paws"] = "paws"
    domain: Literal["evoked"] = "evoked"
    paw: str
    reference: tuple[str, str] | None = None
    reference_mm: float | None = Field(None, gt=0)
    features: PawsParams = PawsParams()


_CONFIGS: dict[str, type[BaseModel]] = {
    "hargreaves": HargreavesConfig,
    "von_frey": VonFreyConfig,
    "paws": PawsConfig,
}


def assay_config(assay: str, overrides: Sequence[str] = (), path: str | Path | None = None) -> BaseModel:
    """Load and validate an assay's config, with dotted ``key=value`` overrides applied.

    Raises
    ------
    ValueError
        On an unknown assay, an unknown key (typo) or an invalid value, naming it.
    """
    if assay not in _CONFIGS:
        raise ValueError(f"no evoked config for assay {assay!r}, expected one of {sorted(_CONFIGS)}")
    data = apply_overrides(load_config("assays", path or assay), overrides)
    try:
        return _CONFIGS[assay].model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"{assay} config: {where}: {err['msg']}") from exc


def stimulus_events(session: Session, config: HargreavesConfig | VonFreyConfig, video: Path | None) -> pd.DataFrame:
    """The session's stimulus onsets: its events, or (Hargreaves) the heat-source light in the video."""
    events = session.events_frame()
    if (events["kind"] == "stimulus_on").any():
        return events
    roi_by_side = getattr(config, "light_roi", None)
    if video is not None and roi_by_side:
        from behavior.video import ROI, detect_light_switches

        rows = []
        for side, roi in roi_by_side.items():
            for e in detect_light_switches(video, ROI(*roi)):
                if e["kind"] == "light_on":
                    rows.append({"time_s": e["time_s"], "kind": "stimulus_on", "side": side, "intensity": np.nan})
        if rows:
            return pd.DataFrame(rows).sort_values("time_s").reset_index(drop=True)
    raise ValueError(
        f"session {session.session_id}: expected stimulus_on events (or a video and light_roi to find them), got none"
    )


def _named(stem: str, side: str, injured: str | None) -> str:
    if injured is None:
        return f"{stem}_{side}"
    return f"{stem}_{'ipsi' if side == injured else 'contra'}"


def _per_side(
    stem: str,
    unit: str,
    values: dict[str, tuple[float, int, str]],
    injured: str | None,
    *,
    difference: bool,
) -> list[Measure]:
    """Measures per paw (and ipsi minus contra), named by side or by injury."""
    out = [Measure(f"{_named(stem, s, injured)}_{unit}", v, unit, n, q) for s, (v, n, q) in values.items()]
    if difference and injured in values and len(values) == 2:
        contra = next(s for s in values if s != injured)
        (vi, ni, _), (vc, nc, _) = values[injured], values[contra]
        missing = [side for side, v in (("ipsi", vi), ("contra", vc)) if math.isnan(v)]
        quality = f"not scored: no {' or '.join(missing)} value" if missing else "ok"
        out.append(Measure(f"{stem}_ipsi_minus_contra_{unit}", vi - vc, unit, min(ni, nc), quality))
    return out


def _not_scored(t: pd.DataFrame) -> str:
    """``"not scored 2/5 (recording_ended 1, untracked 1)"`` for the trials of unknown outcome, or ``""``."""
    counts = {q: int((t["quality"] == q).sum()) for q in UNKNOWN_OUTCOMES}
    total = sum(counts.values())
    if not total:
        return ""
    reasons = ", ".join(f"{q} {c}" for q, c in counts.items() if c)
    return f"not scored {total}/{len(t)} ({reasons})"


def _label_trials(trials: pd.DataFrame, stem: str, unit: str, injured: str | None) -> pd.DataFrame:
    """The trials table with the measure each trial feeds (``measure``), for per-measure counts."""
    out = trials.copy()
    out["measure"] = [
        f"{_named(stem, s, injured)}_{unit}" if isinstance(s, str) and s in SIDES else None for s in out["side"]
    ]
    return out


@register_extractor("hargreaves")
def extract_hargreaves(
    poses: xr.Dataset, session: Session, config: HargreavesConfig, *, video: Path | None = None
) -> AssayResult:
    """Withdrawal latency per paw: the mean over trials of known outcome.

    Trials without a withdrawal before the cut-off count at the cut-off (censored, and counted in the
    measure's quality). Trials whose outcome is unknown (paw untracked before the onset or during the
    window, video ending before the cut-off) are left out of the mean and counted in its quality; a
    paw with no trial of known outcome gets NaN.
    """
    events = stimulus_events(session, config, video)
    trials = withdrawal_trials(
        poses,
        events,
        window_s=config.cutoff_s,
        paw_by_side=config.paw_keypoints,
        params=config.withdrawal,
        px_per_mm=session.px_per_mm,
        fps=session.fps,
    )
    values = {}
    for side in SIDES:
        t = trials[trials["side"] == side]
        if t.empty:
            continue
        scored = t[t["quality"] == "ok"]
        n_censored = int(scored["censored"].sum())
        parts = [f"censored {n_censored}/{len(scored)}" if n_censored else "", _not_scored(t)]
        quality = "; ".join(p for p in parts if p) or "ok"
        value = float(scored["latency_s"].mean()) if len(scored) else math.nan
        values[side] = (value, len(scored), quality)
    return AssayResult(
        measures=_per_side("latency", "s", values, session.side, difference=True),
        tables={"trials": _label_trials(trials, "latency", "s", session.side)},
    )


@register_extractor("von_frey")
def extract_von_frey(
    poses: xr.Dataset, session: Session, config: VonFreyConfig, *, video: Path | None = None
) -> AssayResult:
    """50 % threshold per paw from filament events and withdrawals seen in the video.

    An application whose outcome is unknown (paw untracked, video ending during it) is neither a
    withdrawal nor its absence, and the up-down rule cannot go on without it: the paw's series stops
    there with a NaN threshold whose quality names the application and the reason.
    """
    events = stimulus_events(session, config, video)
    trials = withdrawal_trials(
        poses,
        events,
        window_s=config.response_window_s,
        paw_by_side=config.paw_keypoints,
        params=config.withdrawal,
        px_per_mm=session.px_per_mm,
        fps=session.fps,
        off_grace_s=config.off_grace_s,
    )
    series = FilamentSeries.load(config.series)
    score: Callable = updown_threshold if config.method == "updown" else sudo_threshold
    values = {}
    for side in SIDES:
        t = trials[trials["side"] == side]
        if t.empty:
            continue
        if t["intensity"].isna().any():
            values[side] = (math.nan, len(t), "filament force (event intensity) missing")
            continue
        unknown = t[t["quality"] != "ok"]
        if not unknown.empty:
            first = unknown.iloc[0]
            at = int(np.flatnonzero((t["trial"] == first["trial"]).to_numpy())[0]) + 1
            values[side] = (
                math.nan,
                len(t),
                f"series stopped at application {at} ({first['intensity']:g} g at {first['stimulus_time_s']:g} s): "
                f"outcome unknown ({first['quality']}); {_not_scored(t)}",
            )
            continue
        try:
            r = score(t["intensity"].tolist(), ["X" if x else "O" for x in t["responded"]], series)
            values[side] = (r.threshold_g, len(t), f"{r.pattern} {r.flag}".strip())
        except SequenceError as exc:
            values[side] = (math.nan, len(t), str(exc))
    return AssayResult(
        measures=_per_side("threshold", "g", values, session.side, difference=False),
        tables={"trials": _label_trials(trials, "threshold", "g", session.side)},
    )


@register_extractor("paws")
def extract_paws(poses: xr.Dataset, session: Session, config: PawsConfig, *, video: Path | None = None) -> AssayResult:
    """Kinematic features of one high-speed withdrawal clip."""
    x, h, _ = track_from_poses(
        poses, config.paw, reference=config.reference, reference_mm=config.reference_mm, px_per_mm=session.px_per_mm
    )
    features = paw_features(x, h, session.fps, config.features)
    measures = []
    for name in FEATURES:
        unit = "count" if name.endswith("shakes") else ("mm/s" if name.endswith("mm_s") else name.rsplit("_", 1)[-1])
        measures.append(Measure(name, features[name], unit))
    return AssayResult(measures=measures, tables={"features": pd.DataFrame([features])})
