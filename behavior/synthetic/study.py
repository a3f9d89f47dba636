"""A whole synthetic study: Control / CCI / CCI+MSC animals x timepoints x assays, with planted effects.

Design
------
Each animal gets an injured (ipsilateral) ``side`` and, per measure, a lasting random effect (its
own baseline). At every session the simulator parameters are::

    value = population_baseline * animal_factor * session_factor * injury_effect(m)

with ``m = group_effect[group] * timepoint_effect[timepoint]`` (0 at baseline and for Control, 1 for
CCI after injury, 0.5 for CCI+MSC: partial recovery). Ratios act linearly
(``1 - m * (1 - ratio)``), additive shifts as ``m * delta``, and the von Frey threshold geometrically
(``ratio ** m``, thresholds are log-normal). Only the ipsilateral paw is affected:

- Hargreaves: shorter ipsilateral withdrawal latency (one trial per paw, ipsilateral first).
- von Frey: lower ipsilateral 50 % threshold. Each paw is tested by Dixon's up-down walk on the
  Chaplan series (0.4, 0.6, 1.0, 2.0, 4.0, 6.0, 8.0, 15.0 g) starting at 2.0 g; the response
  probability is a logistic in log10 force around the paw's true threshold
  (:func:`up_down_sequence`).
- Gait: guarding of the ipsilateral hind paw (smaller, fainter print, shorter stance).
- Grimace: higher Mouse Grimace Scale features. Burrowing: slower, later.
- Place preference: more time in the paired (analgesic-paired) chamber.

``StudyEffects.null()`` plants no group effect: every group draws from the baseline distribution.
``study_truth.csv`` holds one row per session with the planted values: ``<measure>`` is the value of
that animal at that session (what the simulator was given), ``<measure>_pop`` the population (median)
value of its group at that timepoint (no animal variability), so with null effects the ``_pop``
columns are identical across groups.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from behavior.session import MANIFEST_COLUMNS, write_events
from behavior.synthetic.base import simulate_clip, to_jsonable, write_clip

__all__ = [
    "CHAPLAN_SERIES_G",
    "PlannedSession",
    "StudyBaseline",
    "StudyEffects",
    "StudyPlan",
    "plan_study",
    "simulate_study",
    "up_down_sequence",
]

CHAPLAN_SERIES_G = (0.4, 0.6, 1.0, 2.0, 4.0, 6.0, 8.0, 15.0)
DEFAULT_ASSAYS = ("hargreaves", "von_frey", "gait", "grimace", "burrowing", "place_preference")


@dataclass(frozen=True)
class StudyEffects:
    """Planted group effects (full CCI effect on the ipsilateral side, scaled by ``m``).

    Attributes
    ----------
    group_effect
        ``m`` per group (0 = no effect, 1 = full injury effect). Groups not listed take
        ``default_group_effect``, or raise when it is None.
    timepoint_effect, default_timepoint_effect
        Multiplier per timepoint (``baseline`` = 0: before injury); unlisted timepoints take the default.
    hargreaves_latency_ratio
        Ipsilateral latency at full effect / baseline.
    von_frey_threshold_ratio
        Ipsilateral 50 % threshold at full effect / baseline (applied as ``ratio ** m``).
    gait_print_area_ratio, gait_stance_ratio, gait_print_intensity_ratio
        Ipsilateral hind paw guarding at full effect.
    grimace_eye_aperture_delta, grimace_ear_angle_delta_deg, grimace_nose_bulge_delta,
    grimace_cheek_bulge_delta, grimace_whisker_angle_delta_deg
        Shifts of the face parameters at full effect.
    burrowing_rate_ratio, burrowing_latency_ratio
        Burrowing rate and latency to start at full effect / baseline.
    place_preference_fraction_delta
        Shift of the share of time in the paired chamber at full effect.
    """

    group_effect: Mapping[str, float] = field(default_factory=lambda: {"Control": 0.0, "CCI": 1.0, "CCI+MSC": 0.5})
    default_group_effect: float | None = None
    timepoint_effect: Mapping[str, float] = field(default_factory=lambda: {"baseline": 0.0})
    default_timepoint_effect: float = 1.0
    hargreaves_latency_ratio: float = 0.45
    von_frey_threshold_ratio: float = 0.15
    gait_print_area_ratio: float = 0.6
    gait_stance_ratio: float = 0.8
    gait_print_intensity_ratio: float = 0.8
    grimace_eye_aperture_delta: float = -0.3
    grimace_ear_angle_delta_deg: float = -20.0
    grimace_nose_bulge_delta: float = 0.3
    grimace_cheek_bulge_delta: float = 0.3
    grimace_whisker_angle_delta_deg: float = 25.0
    burrowing_rate_ratio: float = 0.35
    burrowing_latency_ratio: float = 3.0
    place_preference_fraction_delta: float = 0.2

    @classmethod
    def null(cls) -> StudyEffects:
        """No group effect at all: every group is drawn from the baseline distribution."""
        return cls(group_effect={}, default_group_effect=0.0)

    def multiplier(self, group: str, timepoint: str) -> float:
        """Effect multiplier ``m`` of a group at a timepoint."""
        if group in self.group_effect:
            g = float(self.group_effect[group])
        elif self.default_group_effect is not None:
            g = float(self.default_group_effect)
        else:
            raise ValueError(
                f"expected a group from {sorted(self.group_effect)} (StudyEffects.group_effect), got {group!r}"
            )
        t = float(self.timepoint_effect.get(timepoint, self.default_timepoint_effect))
        return g * t


@dataclass(frozen=True)
class StudyBaseline:
    """Population baseline (median) values and variability of the planted parameters.

    ``*_animal_cv`` / ``*_animal_sd`` are between-animal (lasting) variability; ``*_session_cv`` the
    session-to-session and ``*_trial_cv`` trial-to-trial variability. CVs are log-normal sigmas.
    """

    hargreaves_latency_s: float = 10.0
    hargreaves_animal_cv: float = 0.12
    hargreaves_trial_cv: float = 0.10
    von_frey_threshold_g: float = 8.0
    von_frey_animal_sd_log10: float = 0.08
    von_frey_slope_log10: float = 0.08
    gait_stride_length_mm: float = 50.0
    gait_speed_mm_s: float = 150.0
    gait_stance_duration_s: float = 0.2
    gait_print_area_mm2: Mapping[str, float] = field(default_factory=lambda: {"fore": 10.0, "hind": 14.0})
    gait_print_intensity: Mapping[str, float] = field(default_factory=lambda: {"fore": 170.0, "hind": 200.0})
    gait_animal_cv: float = 0.05
    grimace_eye_aperture: float = 0.95
    grimace_ear_angle_deg: float = 75.0
    grimace_nose_bulge: float = 0.05
    grimace_cheek_bulge: float = 0.05
    grimace_whisker_angle_deg: float = 55.0
    grimace_animal_sd: float = 0.5  # in units of each feature's typical spread (see _grimace)
    burrowing_rate_per_min: float = 0.025
    burrowing_latency_s: float = 300.0
    burrowing_animal_cv: float = 0.2
    burrowing_duration_s: float = 3600.0
    place_preference_fraction: float = 0.5
    place_preference_animal_sd: float = 0.05
    place_preference_duration_s: float = 60.0
    session_cv: float = 0.05


# Random effects drawn per animal, in this order (so adding an assay never changes the others).
_TRAITS = (
    "hargreaves",
    "hargreaves_contra",
    "von_frey",
    "von_frey_contra",
    "gait_area",
    "gait_stance",
    "gait_stride",
    "gait_speed",
    "gait_intensity",
    "eye",
    "ear",
    "nose",
    "cheek",
    "whisker",
    "burrow_rate",
    "burrow_latency",
    "cpp",
)


@dataclass
class _Ctx:
    """What a parameter builder knows about one session."""

    group: str
    timepoint: str
    side: str
    m: float
    z: dict[str, float]
    rng: np.random.Generator
    effects: StudyEffects
    base: StudyBaseline

    @property
    def contra(self) -> str:
        return "right" if self.side == "left" else "left"

    def lin(self, ratio: float) -> float:
        return 1.0 - self.m * (1.0 - ratio)

    def noise(self) -> float:
        return float(np.exp(self.base.session_cv * self.rng.standard_normal()))


def up_down_sequence(
    threshold_g: float,
    rng: np.random.Generator,
    *,
    series: Sequence[float] = CHAPLAN_SERIES_G,
    start_g: float = 2.0,
    slope_log10: float = 0.08,
    n_after_change: int = 4,
) -> list[tuple[float, str]]:
    """Dixon's up-down walk for a paw whose true 50 % threshold is ``threshold_g``.

    A filament of force ``f`` evokes a withdrawal (``"X"``) with probability
    ``1 / (1 + exp(-(log10 f - log10 threshold_g) / slope_log10))``; otherwise ``"O"``. After an ``X``
    the next filament is one step weaker, after an ``O`` one step stronger (staying at the ends of
    the series). Testing stops ``n_after_change`` trials after the first change of response, or at
    once when the strongest filament gives ``O`` (or the weakest ``X``) before any change.

    Returns
    -------
    list of (filament_g, response)
    """
    series = [float(s) for s in series]
    if start_g not in series:
        raise ValueError(f"expected start_g from the series {series}, got {start_g}")
    if not threshold_g > 0:
        raise ValueError(f"expected threshold_g > 0, got {threshold_g}")
    i = series.index(start_g)
    trials: list[tuple[float, str]] = []
    changed_at: int | None = None
    while True:
        f = series[i]
        p = 1.0 / (1.0 + math.exp(-(math.log10(f) - math.log10(threshold_g)) / slope_log10))
        r = "X" if rng.random() < p else "O"
        trials.append((f, r))
        if changed_at is None and len(trials) >= 2 and r != trials[-2][1]:
            changed_at = len(trials) - 1
        if changed_at is not None:
            if len(trials) - 1 - changed_at >= n_after_change:
                return trials
        elif (r == "O" and i == len(series) - 1) or (r == "X" and i == 0):
            return trials
        i = max(i - 1, 0) if r == "X" else min(i + 1, len(series) - 1)


# ------------------------------------------------------------------------ per-assay parameter builders


def _hargreaves(c: _Ctx) -> tuple[dict[str, Any], dict[str, Any]]:
    b = c.base
    pop = {"ipsi": b.hargreaves_latency_s * c.lin(c.effects.hargreaves_latency_ratio), "contra": b.hargreaves_latency_s}
    true = {
        "ipsi": pop["ipsi"] * math.exp(b.hargreaves_animal_cv * c.z["hargreaves"]) * c.noise(),
        "contra": pop["contra"] * math.exp(b.hargreaves_animal_cv * c.z["hargreaves_contra"]) * c.noise(),
    }
    lat = [true[k] * math.exp(b.hargreaves_trial_cv * c.rng.standard_normal()) for k in ("ipsi", "contra")]
    params = {"latencies_s": lat, "trial_sides": [c.side, c.contra], "side": c.side}
    cols = {
        "hargreaves_ipsi_latency_s": true["ipsi"],
        "hargreaves_contra_latency_s": true["contra"],
        "hargreaves_ipsi_latency_s_pop": pop["ipsi"],
        "hargreaves_contra_latency_s_pop": pop["contra"],
        "hargreaves_trial_latencies_s": json.dumps([round(v, 4) for v in lat]),
    }
    return params, cols


def _von_frey(c: _Ctx) -> tuple[dict[str, Any], dict[str, Any]]:
    b = c.base
    pop = {"ipsi": b.von_frey_threshold_g * c.effects.von_frey_threshold_ratio**c.m, "contra": b.von_frey_threshold_g}
    true = {
        "ipsi": pop["ipsi"] * 10 ** (b.von_frey_animal_sd_log10 * c.z["von_frey"]),
        "contra": pop["contra"] * 10 ** (b.von_frey_animal_sd_log10 * c.z["von_frey_contra"]),
    }
    seqs = {k: up_down_sequence(true[k], c.rng, slope_log10=b.von_frey_slope_log10) for k in ("ipsi", "contra")}
    trials = [(c.side, f, r) for f, r in seqs["ipsi"]] + [(c.contra, f, r) for f, r in seqs["contra"]]
    params = {
        "filaments_g": [f for _, f, _ in trials],
        "responses": [r for _, _, r in trials],
        "trial_sides": [s for s, _, _ in trials],
        "response_latency_s": [float(c.rng.uniform(0.25, 0.6)) for _ in trials],
        "side": c.side,
        # Two up-down series in one clip: short applications and pauses keep it under ~30 s.
        "application_s": 1.0,
        "inter_trial_s": 0.5,
    }
    cols = {
        "von_frey_ipsi_threshold_g": true["ipsi"],
        "von_frey_contra_threshold_g": true["contra"],
        "von_frey_ipsi_threshold_g_pop": pop["ipsi"],
        "von_frey_contra_threshold_g_pop": pop["contra"],
        "von_frey_ipsi_pattern": "".join(r for _, r in seqs["ipsi"]),
        "von_frey_contra_pattern": "".join(r for _, r in seqs["contra"]),
        "von_frey_ipsi_filaments_g": json.dumps([f for f, _ in seqs["ipsi"]]),
        "von_frey_contra_filaments_g": json.dumps([f for f, _ in seqs["contra"]]),
    }
    return params, cols


def _gait(c: _Ctx) -> tuple[dict[str, Any], dict[str, Any]]:
    b, e = c.base, c.effects
    cv = b.gait_animal_cv
    stride = b.gait_stride_length_mm * math.exp(cv * c.z["gait_stride"]) * c.noise()
    speed = b.gait_speed_mm_s * math.exp(cv * c.z["gait_speed"]) * c.noise()
    stance0 = b.gait_stance_duration_s * math.exp(cv * c.z["gait_stance"])
    area_f = math.exp(cv * c.z["gait_area"])
    inten_f = math.exp(cv * c.z["gait_intensity"])
    ipsi_hind = f"{c.side}_hind"
    area, inten, stance = {}, {}, {}
    pops: dict[str, Any] = {}
    for paw in ("left_fore", "right_fore", "left_hind", "right_hind"):
        girdle = "fore" if paw.endswith("fore") else "hind"
        guard = paw == ipsi_hind
        r_area = c.lin(e.gait_print_area_ratio) if guard else 1.0
        r_st = c.lin(e.gait_stance_ratio) if guard else 1.0
        r_int = c.lin(e.gait_print_intensity_ratio) if guard else 1.0
        area[paw] = b.gait_print_area_mm2[girdle] * area_f * r_area * c.noise()
        inten[paw] = min(255.0, b.gait_print_intensity[girdle] * inten_f * r_int * c.noise())
        stance[paw] = stance0 * r_st * c.noise()
        pops[paw] = (
            b.gait_print_area_mm2[girdle] * r_area,
            b.gait_stance_duration_s * r_st,
            b.gait_print_intensity[girdle] * r_int,
        )
    params = {
        "stride_length_mm": stride,
        "speed_mm_s": speed,
        "stance_duration_s": stance,
        "print_area_mm2": area,
        "print_intensity": inten,
    }
    contra_hind = f"{c.contra}_hind"
    cols = {
        "gait_stride_length_mm": stride,
        "gait_speed_mm_s": speed,
        "gait_stride_length_mm_pop": b.gait_stride_length_mm,
        "gait_speed_mm_s_pop": b.gait_speed_mm_s,
    }
    for label, paw in (("ipsi_hind", ipsi_hind), ("contra_hind", contra_hind)):
        cols[f"gait_{label}_print_area_mm2"] = area[paw]
        cols[f"gait_{label}_stance_duration_s"] = stance[paw]
        cols[f"gait_{label}_print_intensity"] = inten[paw]
        cols[f"gait_{label}_print_area_mm2_pop"] = pops[paw][0]
        cols[f"gait_{label}_stance_duration_s_pop"] = pops[paw][1]
        cols[f"gait_{label}_print_intensity_pop"] = pops[paw][2]
    return params, cols


def _grimace(c: _Ctx) -> tuple[dict[str, Any], dict[str, Any]]:
    from behavior.synthetic.grimace import action_unit_scores

    b, e, m, sd = c.base, c.effects, c.m, c.base.grimace_animal_sd
    spec = {  # name: (baseline, full-effect shift, typical spread, lo, hi)
        "eye_aperture": (b.grimace_eye_aperture, e.grimace_eye_aperture_delta, 0.06, 0.0, 1.0),
        "ear_angle_deg": (b.grimace_ear_angle_deg, e.grimace_ear_angle_delta_deg, 8.0, 0.0, 120.0),
        "nose_bulge": (b.grimace_nose_bulge, e.grimace_nose_bulge_delta, 0.06, 0.0, 1.0),
        "cheek_bulge": (b.grimace_cheek_bulge, e.grimace_cheek_bulge_delta, 0.06, 0.0, 1.0),
        "whisker_angle_deg": (b.grimace_whisker_angle_deg, e.grimace_whisker_angle_delta_deg, 8.0, 0.0, 180.0),
    }
    traits = dict(zip(spec, ("eye", "ear", "nose", "cheek", "whisker"), strict=True))
    params, cols = {}, {}
    for name, (base, delta, spread, lo, hi) in spec.items():
        pop = min(max(base + m * delta, lo), hi)
        val = min(max(pop + sd * spread * c.z[traits[name]] + 0.3 * spread * c.rng.standard_normal(), lo), hi)
        params[name] = val
        cols[f"grimace_{name}"] = val
        cols[f"grimace_{name}_pop"] = pop
    scores = action_unit_scores(**params)
    pop_scores = action_unit_scores(**{k: cols[f"grimace_{k}_pop"] for k in spec})
    cols["grimace_mgs_score"] = float(np.mean(list(scores.values())))
    cols["grimace_mgs_score_pop"] = float(np.mean(list(pop_scores.values())))
    params["facing"] = str(c.rng.choice(["left", "right"]))
    return params, cols


def _burrowing(c: _Ctx) -> tuple[dict[str, Any], dict[str, Any]]:
    b, e = c.base, c.effects
    pop_rate = b.burrowing_rate_per_min * c.lin(e.burrowing_rate_ratio)
    pop_lat = b.burrowing_latency_s * c.lin(e.burrowing_latency_ratio)
    rate = pop_rate * math.exp(b.burrowing_animal_cv * c.z["burrow_rate"]) * c.noise()
    lat = min(pop_lat * math.exp(b.burrowing_animal_cv * c.z["burrow_latency"]) * c.noise(), b.burrowing_duration_s)
    displaced = min(1.0, rate * max(0.0, b.burrowing_duration_s - lat) / 60.0)
    params = {"displaced_fraction_per_min": rate, "latency_to_start_s": lat, "duration_s": b.burrowing_duration_s}
    cols = {
        "burrowing_displaced_fraction_per_min": rate,
        "burrowing_latency_s": lat,
        "burrowing_displaced_percent": 100 * displaced,
        "burrowing_displaced_fraction_per_min_pop": pop_rate,
        "burrowing_latency_s_pop": pop_lat,
    }
    return params, cols


def _place_preference(c: _Ctx) -> tuple[dict[str, Any], dict[str, Any]]:
    b, e = c.base, c.effects
    pop = min(max(b.place_preference_fraction + c.m * e.place_preference_fraction_delta, 0.1), 0.9)
    frac = min(
        max(
            pop
            + b.place_preference_animal_sd * c.z["cpp"]
            + 0.5 * b.place_preference_animal_sd * c.rng.standard_normal(),
            0.1,
        ),
        0.9,
    )
    duration = b.place_preference_duration_s
    paired = "right" if c.side == "left" else "left"  # balanced: the analgesic chamber opposite the lesion
    # 3-6 entries, fewer when a chamber's time cannot hold that many visits of min_visit_s (2 s).
    n_entries = max(1, min(int(c.rng.integers(3, 7)), int(min(frac, 1 - frac) * duration // 2.0) - 1))
    params = {
        "time_in_paired_s": frac * duration,
        "n_entries": n_entries,
        "duration_s": duration,
        "paired_chamber": paired,
    }
    cols = {
        "place_preference_paired_fraction": frac,
        "place_preference_paired_fraction_pop": pop,
        "place_preference_time_in_paired_s": frac * duration,
        "place_preference_n_entries": n_entries,
        "place_preference_paired_chamber": paired,
    }
    return params, cols


def _pain_box(c: _Ctx) -> tuple[dict[str, Any], dict[str, Any]]:
    # the planted effect scales how much more an injured animal licks, flinches and guards its injured paw
    factor = 1.0 + 3.0 * max(c.m, 0.0)
    params = {"duration_s": 60.0, "injured": c.m > 0, "injury_factor": factor, "side": c.side}
    cols = {"pain_box_injured": c.m > 0, "pain_box_injury_factor": factor}
    return params, cols


#: How a study turns planted values into simulator parameters, by assay.
STUDY_PARAMS: dict[str, Callable[[_Ctx], tuple[dict[str, Any], dict[str, Any]]]] = {
    "hargreaves": _hargreaves,
    "von_frey": _von_frey,
    "gait": _gait,
    "grimace": _grimace,
    "burrowing": _burrowing,
    "place_preference": _place_preference,
    "pain_box": _pain_box,
}


def _key(text: str) -> int:
    return zlib.crc32(text.encode())


@dataclass(frozen=True)
class PlannedSession:
    """One session of a planned study: what to simulate and under which name."""

    assay: str
    name: str
    seed: tuple[int, ...]
    session_fields: dict[str, Any]
    params: dict[str, Any]


@dataclass(frozen=True)
class StudyPlan:
    """A study before rendering: the sessions, their planted values and the design."""

    sessions: list[PlannedSession]
    truth: pd.DataFrame
    design: dict[str, Any]


def plan_study(
    *,
    seed: int = 0,
    animals_per_group: int = 3,
    groups: Sequence[str] = ("Control", "CCI", "CCI+MSC"),
    timepoints: Sequence[str] = ("baseline", "d7", "d14"),
    assays: Sequence[str] = DEFAULT_ASSAYS,
    effects: StudyEffects | None = None,
    baseline: StudyBaseline | None = None,
) -> StudyPlan:
    """Draw the animals and every session's simulator parameters without rendering anything.

    :func:`simulate_study` renders this plan; ``plan.truth`` is exactly its ``study_truth.csv``.
    Parameters as in :func:`simulate_study`.
    """
    effects = effects if effects is not None else StudyEffects()
    baseline = baseline if baseline is not None else StudyBaseline()
    unknown = [a for a in assays if a not in STUDY_PARAMS]
    if unknown:
        raise ValueError(f"unknown assay(s) {unknown} for a study, expected from {sorted(STUDY_PARAMS)}")
    if animals_per_group < 1 or not groups or not timepoints or not assays:
        raise ValueError(
            "expected animals_per_group >= 1 and non-empty groups, timepoints and assays, got "
            f"{animals_per_group}, {list(groups)}, {list(timepoints)}, {list(assays)}"
        )
    for name, items in (("groups", groups), ("timepoints", timepoints), ("assays", assays)):
        if len(set(items)) != len(items):
            raise ValueError(f"expected unique {name}, got {list(items)}")
    for g in groups:
        effects.multiplier(g, timepoints[0])  # fail early on a group without an effect
    master = np.random.default_rng(seed)
    animals = []
    for g in groups:
        for _ in range(animals_per_group):
            idx = len(animals)
            side = "left" if master.random() < 0.5 else "right"
            z = dict(zip(_TRAITS, master.standard_normal(len(_TRAITS)), strict=True))
            animals.append({"index": idx, "animal_id": f"A{idx + 1:02d}", "group": g, "side": side, "z": z})

    sessions, truth_rows = [], []
    for a in animals:
        for tp in timepoints:
            m = effects.multiplier(a["group"], tp)
            for assay in assays:
                key = (seed, a["index"], _key(tp), _key(assay))
                ctx = _Ctx(
                    group=a["group"],
                    timepoint=tp,
                    side=a["side"],
                    m=m,
                    z=a["z"],
                    rng=np.random.default_rng((*key, 1)),
                    effects=effects,
                    base=baseline,
                )
                params, cols = STUDY_PARAMS[assay](ctx)
                sid = f"{a['animal_id']}_{tp}_{assay}"
                fields = {
                    "session_id": sid,
                    "animal_id": a["animal_id"],
                    "group": a["group"],
                    "timepoint": tp,
                    "side": a["side"],
                }
                sessions.append(
                    PlannedSession(assay=assay, name=sid, seed=(*key, 2), session_fields=fields, params=params)
                )
                truth_rows.append({**fields, "assay": assay, "effect_multiplier": m, **to_jsonable(cols)})
    design = {
        "seed": seed,
        "animals_per_group": animals_per_group,
        "groups": list(groups),
        "timepoints": list(timepoints),
        "assays": list(assays),
        "effects": dataclasses.asdict(effects),
        "baseline": dataclasses.asdict(baseline),
        "animals": [{k: a[k] for k in ("animal_id", "group", "side")} for a in animals],
    }
    return StudyPlan(sessions=sessions, truth=pd.DataFrame(truth_rows), design=to_jsonable(design))


def _run_task(task: tuple[PlannedSession, Path, bool]) -> dict[str, Any]:
    """Simulate and write one session (its video too, unless told not to); return its file names, fps and scale."""
    planned, out_dir, video = task
    clip = simulate_clip(
        planned.assay, seed=planned.seed, name=planned.name, session_fields=planned.session_fields, **planned.params
    )
    paths = write_clip(clip, out_dir, video=video)
    events = ""
    if clip.session.events:
        events = write_events(clip.session.events, out_dir / f"{clip.name}.events.csv").name
    return {
        "video": paths["video"].name if "video" in paths else "",
        "pose": paths["pose"].name,
        "events": events,
        "fps": float(clip.session.fps),
        "px_per_mm": clip.session.px_per_mm,
        "roi": ",".join(str(v) for v in clip.session.roi) if clip.session.roi else "",
    }


def simulate_study(
    out_dir: str | Path,
    *,
    seed: int = 0,
    animals_per_group: int = 3,
    groups: Sequence[str] = ("Control", "CCI", "CCI+MSC"),
    timepoints: Sequence[str] = ("baseline", "d7", "d14"),
    assays: Sequence[str] = DEFAULT_ASSAYS,
    effects: StudyEffects | None = None,
    baseline: StudyBaseline | None = None,
    progress: Callable[[int, int], None] | None = None,
    n_jobs: int = 1,
    without_video: Collection[str] = (),
) -> Path:
    """Simulate and write a whole study (see the module docstring for the planted effects).

    Writes, in ``out_dir``, every session's clip files (``<session_id>.mp4/.h5/.json/.truth.json`` and
    ``<session_id>.events.csv`` when it has events), ``manifest.csv`` (one row per session, paths
    relative to it), ``study_truth.csv`` (planted values per session) and ``study_design.json``.

    Parameters
    ----------
    seed
        Seeds everything: animal sides and random effects, session parameters, rendering.
    animals_per_group, groups, timepoints, assays
        The design: every animal is recorded in every assay at every timepoint.
    effects, baseline
        Planted effects (default :class:`StudyEffects`) and baseline distribution.
    progress
        Called as ``progress(done, total)`` after each session.
    n_jobs
        Worker processes (1 = in this process). Results do not depend on it.
    without_video
        Assays whose sessions are written without their video (scored from their pose files only); their
        manifest rows name no video. Nothing else changes: the poses are those the video would show.

    Returns
    -------
    Path
        The manifest.
    """
    plan = plan_study(
        seed=seed,
        animals_per_group=animals_per_group,
        groups=groups,
        timepoints=timepoints,
        assays=assays,
        effects=effects,
        baseline=baseline,
    )
    if n_jobs < 1:
        raise ValueError(f"expected n_jobs >= 1, got {n_jobs}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(without_video) - set(assays))
    if unknown:
        raise ValueError(f"without_video names assays the study does not simulate: {unknown}")
    tasks = [(s, out_dir, s.assay not in without_video) for s in plan.sessions]
    results: list[dict[str, Any]] = []
    total = len(tasks)
    if n_jobs > 1:
        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            for res in pool.map(_run_task, tasks, chunksize=4):
                results.append(res)
                if progress is not None:
                    progress(len(results), total)
    else:
        for task in tasks:
            results.append(_run_task(task))
            if progress is not None:
                progress(len(results), total)

    rows = []
    for planned, res in zip(plan.sessions, results, strict=True):
        f = planned.session_fields
        rows.append(
            {
                **{k: f[k] for k in ("session_id", "animal_id", "group", "timepoint")},
                "assay": planned.assay,
                "side": f["side"],
                "video": res["video"],
                "pose": res["pose"],
                "fps": repr(res["fps"]),
                "px_per_mm": repr(res["px_per_mm"]) if res["px_per_mm"] is not None else "",
                "events": res["events"],
                "model": "",
                "roi": res["roi"],
            }
        )
    manifest = out_dir / "manifest.csv"
    pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)).to_csv(manifest, index=False)
    plan.truth.to_csv(out_dir / "study_truth.csv", index=False)
    (out_dir / "study_design.json").write_text(json.dumps(plan.design, indent=1) + "\n")
    return manifest
