"""Group x time statistics for the battery.

Per measure:

- **Linear mixed model** ``value ~ group * timepoint`` with a random intercept per animal
  (statsmodels ``MixedLM``, maximum likelihood); the group x time interaction is tested with a
  likelihood-ratio test against the additive model (chi-squared, df = number of interaction terms).
- **Pairwise group comparisons at each timepoint**: Welch's t-test with Hedges' g and its 95 %
  confidence interval (normal approximation, Hedges & Olkin). Holm's correction runs over the
  family of *every* timepoint x group-pair test of the measure (:data:`HOLM_FAMILY`).
- **Change from baseline** per animal, and the **area under the time curve** of that change
  (trapezoid over the study's timepoints from baseline on, days axis, baseline = day 0; an animal missing one
  of them is left out and counted) compared between groups the same way, Holm over the group pairs.

Animals are keyed by ``(group, animal_id)``: labs number animals 1-6 in each group, so animal 3 of
Control and animal 3 of CCI are two animals. Timepoint labels are parsed with their unit (``4h``,
``d3``, ``day 7``, ``wk2``, ``d-7``; a bare number is days); the baseline label matches in any case; a label
that cannot be placed in time is refused (:class:`TimepointError`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = [
    "HOLM_FAMILY",
    "STATS_COLUMNS",
    "TimepointError",
    "analyse_measure",
    "analyse_measures",
    "auc_per_animal",
    "auc_timepoints",
    "change_from_baseline",
    "hedges_g",
    "holm",
    "is_baseline",
    "mixed_model_interaction",
    "pairwise_by_timepoint",
    "timepoint_days",
    "timepoint_hours",
    "timepoint_order",
]

STATS_COLUMNS = (
    "measure",
    "analysis",
    "timepoint",
    "group_a",
    "group_b",
    "n_a",
    "n_b",
    "mean_a",
    "mean_b",
    "difference",
    "hedges_g",
    "g_ci_low",
    "g_ci_high",
    "statistic",
    "df",
    "p",
    "p_holm",
    "significant",
    "note",
)


#: Which tests Holm's correction treats as one family (stated in the report's methods).
HOLM_FAMILY = (
    "Holm's correction is applied per measure over the family of all pairwise group comparisons at all "
    "timepoints of that measure (timepoints x group pairs, baseline included); the AUC comparisons of a "
    "measure form a second family (its group pairs). The mixed-model interaction test is one test per "
    "measure and is not corrected; no correction is made across measures."
)

_UNITS_H = {"h": 1.0, "hr": 1.0, "hrs": 1.0, "hour": 1.0, "hours": 1.0, "d": 24.0, "day": 24.0, "days": 24.0}
_UNITS_H |= {"w": 168.0, "wk": 168.0, "wks": 168.0, "week": 168.0, "weeks": 168.0}
_NUMBER = r"([-+]?\d+(?:\.\d+)?)"
_UNIT = r"([a-z]+)"
_UNIT_FIRST = re.compile(rf"^{_UNIT}[\s_]*{_NUMBER}$")  # a "-" before the number is its sign: d-7 is -7 days
_NUMBER_FIRST = re.compile(rf"^{_NUMBER}[\s_-]*{_UNIT}?$")


class TimepointError(ValueError):
    """A timepoint label that cannot be placed in time (no number, or an unknown unit)."""


def _normal(label: object) -> str:
    return str(label).strip().lower()


def is_baseline(timepoints: Iterable[object] | pd.Series, baseline: str = "baseline") -> np.ndarray:
    """Which labels are the baseline label (case and surrounding spaces ignored), as a boolean array."""
    return np.array([_normal(t) == _normal(baseline) for t in timepoints], dtype=bool)


def timepoint_hours(timepoint: object, baseline: str = "baseline") -> float:
    """Hours after baseline of a timepoint label.

    ``baseline`` (any case) -> 0; ``4h``, ``4 hours`` -> 4; ``d3``, ``day 3``, ``3d``, ``3`` -> 72;
    ``wk2``, ``w2``, ``2 weeks`` -> 336. Negative numbers (``-7d``, ``d -7``) are before baseline; a
    unit joined to a negative number by a hyphen (``Day-3``, ``d-7``) is refused as ambiguous.

    Raises
    ------
    TimepointError
        For a label without a number or with a unit other than hours, days or weeks.
    """
    text = _normal(timepoint)
    if text == _normal(baseline):
        return 0.0
    m = _UNIT_FIRST.match(text)
    if m and m.group(2).startswith("-") and not re.match(rf"^{_UNIT}[\s_]+-", text):
        # "Day-3" reads as day 3 to some and as 3 days before baseline to others: refuse, don't guess.
        raise TimepointError(
            f"timepoint {str(timepoint)!r} is ambiguous (day 3, or 3 days before baseline?): "
            f"write 'd3' for after baseline, or '-3d' / 'd -3' for before it"
        )
    if m:
        unit, number = m.group(1), m.group(2)
    else:
        m = _NUMBER_FIRST.match(text)
        if not m:
            raise TimepointError(
                f"expected a timepoint like {baseline!r}, '4h', 'd3', 'day 7' or 'wk2', got {str(timepoint)!r}"
            )
        number, unit = m.group(1), m.group(2) or "d"
    if unit not in _UNITS_H:
        raise TimepointError(
            f"expected a timepoint unit of hours (h), days (d) or weeks (w), got {unit!r} in {str(timepoint)!r}"
        )
    return float(number) * _UNITS_H[unit]


def timepoint_days(timepoint: object, baseline: str = "baseline") -> float:
    """Days after baseline of a timepoint label (:func:`timepoint_hours` / 24): ``4h`` -> 1/6, ``wk2`` -> 14."""
    return timepoint_hours(timepoint, baseline) / 24.0


def timepoint_order(timepoints: Iterable[object], baseline: str = "baseline") -> list[str]:
    """Timepoints in time order (baseline at 0 h, then by hours after it).

    Raises
    ------
    TimepointError
        Naming every label that cannot be placed in time, or two labels for the same time.
    """
    seen = list(dict.fromkeys(str(t) for t in timepoints))
    hours, bad = {}, []
    for t in seen:
        try:
            hours[t] = timepoint_hours(t, baseline)
        except TimepointError:
            bad.append(t)
    if bad:
        raise TimepointError(
            f"expected timepoints placed in time ({baseline!r}, '4h', 'd3', 'day 7', 'wk2'), got {bad} "
            f"that cannot be placed"
        )
    by_time: dict[float, str] = {}
    for t, h in hours.items():
        if h in by_time:
            raise TimepointError(f"expected one label per time, got {by_time[h]!r} and {t!r} both at {h:g} h")
        by_time[h] = t
    return sorted(seen, key=lambda t: hours[t])


def hedges_g(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Hedges' g of ``a - b`` (pooled SD, small-sample correction) and its 95 % CI."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return (np.nan, np.nan, np.nan)
    pooled = np.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2))
    if pooled == 0:
        return (np.nan, np.nan, np.nan)
    j = 1 - 3 / (4 * (n1 + n2) - 9)
    g = j * (a.mean() - b.mean()) / pooled
    se = np.sqrt((n1 + n2) / (n1 * n2) + g**2 / (2 * (n1 + n2)))
    return (float(g), float(g - 1.96 * se), float(g + 1.96 * se))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN)."""
    p = np.asarray(pvalues, float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok])]
    m = len(order)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out


def _animal_key(df: pd.DataFrame) -> pd.Series:
    """One key per animal: ``(group, animal_id)`` as a string (ids are often reused across groups)."""
    return df["group"].astype(str) + "\x1f" + df["animal_id"].astype(str)


def mixed_model_interaction(df: pd.DataFrame) -> dict[str, float | str]:
    """Likelihood-ratio test of the group x timepoint interaction in a random-intercept mixed model.

    ``df`` has columns ``animal_id, group, timepoint, value`` (one row per animal and timepoint); the
    random intercept is per ``(group, animal_id)``, so ids reused across groups are different animals.
    """
    import statsmodels.formula.api as smf

    data = df.dropna(subset=["value"]).copy()
    data["group"] = data["group"].astype(str)
    data["timepoint"] = data["timepoint"].astype(str)
    data["_animal"] = _animal_key(data)
    if data["group"].nunique() < 2 or data["timepoint"].nunique() < 2 or data["_animal"].nunique() < 3:
        return {"statistic": np.nan, "df": np.nan, "p": np.nan, "note": "needs >= 2 groups, 2 timepoints, 3 animals"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on small studies; the result says if it failed
        try:
            full = smf.mixedlm("value ~ C(group) * C(timepoint)", data, groups=data["_animal"]).fit(reml=False)
            reduced = smf.mixedlm("value ~ C(group) + C(timepoint)", data, groups=data["_animal"]).fit(reml=False)
        except (np.linalg.LinAlgError, ValueError) as exc:
            return {"statistic": np.nan, "df": np.nan, "p": np.nan, "note": f"mixed model failed: {exc}"}
    stat = max(0.0, 2 * (full.llf - reduced.llf))
    dof = len(full.fe_params) - len(reduced.fe_params)
    note = "" if full.converged and reduced.converged else "did not converge"
    return {"statistic": float(stat), "df": float(dof), "p": float(sps.chi2.sf(stat, dof)), "note": note}


def pairwise_by_timepoint(df: pd.DataFrame, groups: Sequence[str], timepoints: Sequence[str]) -> list[dict]:
    """Welch t-tests between every pair of groups at each timepoint.

    Holm's correction (``p_holm``) runs over the whole family returned: every timepoint x group-pair
    test (see :data:`HOLM_FAMILY`), not within each timepoint.
    """
    rows = []
    for tp in timepoints:
        at = df[df["timepoint"] == tp]
        for ga, gb in combinations(groups, 2):
            a = at.loc[at["group"] == ga, "value"].dropna().to_numpy()
            b = at.loc[at["group"] == gb, "value"].dropna().to_numpy()
            row = {
                "analysis": "pairwise",
                "timepoint": tp,
                "group_a": ga,
                "group_b": gb,
                "n_a": len(a),
                "n_b": len(b),
                "mean_a": a.mean() if len(a) else np.nan,
                "mean_b": b.mean() if len(b) else np.nan,
            }
            row["difference"] = row["mean_a"] - row["mean_b"]
            row["hedges_g"], row["g_ci_low"], row["g_ci_high"] = hedges_g(a, b)
            if len(a) >= 2 and len(b) >= 2 and (a.std() > 0 or b.std() > 0):
                with warnings.catch_warnings():
                    # one group with no spread (all 4 animals at 100 %) is a valid Welch test; scipy warns
                    # of "precision loss" in that group's moments, which says nothing about the result
                    warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
                    t = sps.ttest_ind(a, b, equal_var=False)
                row.update(statistic=float(t.statistic), df=float(t.df), p=float(t.pvalue), note="Welch t-test")
            else:
                row.update(statistic=np.nan, df=np.nan, p=np.nan, note="too few animals or no variance")
            rows.append(row)
    for row, adj in zip(rows, holm([r["p"] for r in rows]), strict=True):
        row["p_holm"] = adj
    return rows


def change_from_baseline(df: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Each animal's value minus its baseline value (column ``change``).

    Animals are keyed by ``(group, animal_id)``; the baseline label matches in any case. Animals
    without a baseline value are left out (the AUC note counts them).
    """
    at_base = is_baseline(df["timepoint"], baseline)
    key = _animal_key(df)
    base = pd.Series(df.loc[at_base, "value"].to_numpy(dtype=float), index=key[at_base].to_numpy())
    if base.index.has_duplicates:
        dup = sorted({k.replace("\x1f", "/") for k in base.index[base.index.duplicated()]})
        raise ValueError(f"expected one baseline value per animal (group/animal), got several for {dup}")
    keep = key.isin(base.index).to_numpy()
    out = df[keep].copy()
    out["change"] = out["value"].to_numpy(dtype=float) - key[keep].map(base).to_numpy(dtype=float)
    return out


def auc_timepoints(timepoints: Sequence[str], baseline: str = "baseline") -> list[str]:
    """The timepoints a change-from-baseline AUC runs over: the baseline and every one after it."""
    return [t for t in timepoints if timepoint_hours(t, baseline) >= 0]


def auc_per_animal(df: pd.DataFrame, baseline: str, timepoints: Sequence[str] | None = None) -> pd.DataFrame:
    """Area under each animal's change-from-baseline curve over the study's timepoints (trapezoid, unit x days).

    Every animal is integrated over the same timepoints (``timepoints``, default every timepoint in
    ``df``) from the baseline on, on the days axis (``4h`` is 1/6 day); timepoints before the
    baseline (``d-7``) are not part of the curve. An animal missing a value at one of them (or its
    baseline) gets no AUC: it is listed with ``auc`` NaN and the missing timepoints in ``missing``,
    so callers leave it out and count it, instead of integrating a shorter span.
    """
    study = list(timepoints) if timepoints is not None else timepoint_order(df["timepoint"], baseline)
    study = auc_timepoints(study, baseline)
    days = {t: timepoint_days(t, baseline) for t in study}
    base_label = next((t for t in study if is_baseline([t], baseline)[0]), baseline)
    rows = []
    for (group, animal), g in df.groupby(["group", "animal_id"], sort=False):
        present = {str(t): v for t, v in zip(g["timepoint"], g["value"], strict=True) if pd.notna(v)}
        missing = [t for t in study if t not in present]
        if missing or base_label not in present:
            rows.append({"animal_id": animal, "group": group, "auc": np.nan, "missing": ", ".join(missing)})
            continue
        x = np.array([days[t] for t in study])
        y = np.array([present[t] - present[base_label] for t in study])
        rows.append({"animal_id": animal, "group": group, "auc": float(np.trapezoid(y, x)), "missing": ""})
    return pd.DataFrame(rows, columns=["animal_id", "group", "auc", "missing"])


def analyse_measure(df: pd.DataFrame, measure: str, *, baseline: str = "baseline", alpha: float = 0.05) -> pd.DataFrame:
    """All analyses of one measure (``df``: animal_id, group, timepoint, value).

    Rows: the mixed model's interaction test, the pairwise tests at every timepoint (one Holm family),
    and the AUC pairwise tests (a second Holm family); see :data:`HOLM_FAMILY`.
    """
    groups = sorted(df["group"].astype(str).unique())
    timepoints = timepoint_order(df["timepoint"], baseline)
    rows: list[dict] = []
    lmm = mixed_model_interaction(df)
    rows.append({"analysis": "lmm_group_x_time", **lmm})
    rows.extend(pairwise_by_timepoint(df, groups, timepoints))
    if is_baseline(timepoints, baseline).any() and len(timepoints) > 1:
        auc = auc_per_animal(df, baseline, timepoints)
        left_out = auc[auc["auc"].isna()]
        spanned = auc_timepoints(timepoints, baseline)
        span = f"days {timepoint_days(spanned[0], baseline):g}-{timepoint_days(spanned[-1], baseline):g}"
        note = f"AUC over {', '.join(spanned)} ({span})"
        if len(left_out):
            who = "; ".join(f"{g}/{a} (no {m})" for g, a, m in left_out[["group", "animal_id", "missing"]].to_numpy())
            note += f"; {len(left_out)} animal(s) missing a timepoint left out: {who}"
        values = auc.dropna(subset=["auc"]).rename(columns={"auc": "value"}).assign(timepoint="auc")
        for row in pairwise_by_timepoint(values, groups, ["auc"]):
            extra = "" if row["note"] == "Welch t-test" else f"{row['note']}; "
            rows.append({**row, "analysis": "auc_pairwise", "timepoint": None, "note": f"{extra}{note}"})
    out = pd.DataFrame(rows)
    out.insert(0, "measure", measure)
    for col in STATS_COLUMNS:
        if col not in out:
            out[col] = np.nan
    p_used = out["p_holm"].where(out["analysis"] != "lmm_group_x_time", out["p"])
    out["significant"] = p_used < alpha
    return out[list(STATS_COLUMNS)]


def analyse_measures(
    measures: pd.DataFrame,
    *,
    baseline: str = "baseline",
    alpha: float = 0.05,
    map_fn: Callable[..., Iterable[pd.DataFrame]] = map,
) -> pd.DataFrame:
    """:func:`analyse_measure` for every measure of a long Measures table (one value per animal x timepoint).

    ``map_fn`` runs the per-measure analyses (a process pool's ``map`` spreads them over cores; the
    result is the same).
    """
    tasks = []
    for measure, g in measures.groupby("measure", sort=True):
        per_animal = g.groupby(["animal_id", "group", "timepoint"], as_index=False)["value"].mean()
        tasks.append((str(measure), len(g), per_animal))
    frames = list(map_fn(partial(_analyse_task, baseline=baseline, alpha=alpha), tasks))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(STATS_COLUMNS))


def _analyse_task(task: tuple[str, int, pd.DataFrame], *, baseline: str, alpha: float) -> pd.DataFrame:
    measure, n_sessions, per_animal = task
    if per_animal["value"].notna().sum() == 0:
        # Nothing to test, but say so: the measure keeps a row (its note) instead of vanishing.
        empty = dict.fromkeys(STATS_COLUMNS, np.nan)
        empty |= {"measure": measure, "analysis": "lmm_group_x_time", "significant": False}
        empty["note"] = f"no values: all {n_sessions} session value(s) are NaN (see the data-quality table)"
        return pd.DataFrame([empty], columns=list(STATS_COLUMNS))
    return analyse_measure(per_animal, measure, baseline=baseline, alpha=alpha)
