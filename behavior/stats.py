"""Group x time statistics for the battery.

Per measure:

- **Linear mixed model** ``value ~ group * timepoint`` with a random intercept per animal
  (statsmodels ``MixedLM``, maximum likelihood); the group x time interaction is tested with a
  likelihood-ratio test against the additive model (chi-squared, df = number of interaction terms).
- **Pairwise group comparisons at each timepoint**: Welch's t-test, Holm-corrected within the
  timepoint, with Hedges' g and its 95 % confidence interval (normal approximation, Hedges & Olkin).
- **Change from baseline** per animal, and the **area under the time curve** of that change
  (trapezoid over days, baseline = day 0) compared between groups the same way.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = [
    "STATS_COLUMNS",
    "analyse_measure",
    "analyse_measures",
    "auc_per_animal",
    "change_from_baseline",
    "hedges_g",
    "holm",
    "mixed_model_interaction",
    "pairwise_by_timepoint",
    "timepoint_days",
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


def timepoint_days(timepoint: str, baseline: str = "baseline") -> float:
    """Day number of a timepoint label: ``baseline`` -> 0, ``d7``/``day 7``/``7`` -> 7, else NaN."""
    if str(timepoint).lower() == str(baseline).lower():
        return 0.0
    m = re.search(r"-?\d+(\.\d+)?", str(timepoint))
    return float(m.group(0)) if m else float("nan")


def timepoint_order(timepoints: Iterable[str], baseline: str = "baseline") -> list[str]:
    """Timepoints in time order: baseline first, then by day number, unnumbered labels last (as seen)."""
    seen = list(dict.fromkeys(str(t) for t in timepoints))
    return sorted(seen, key=lambda t: (np.nan_to_num(timepoint_days(t, baseline), nan=np.inf), seen.index(t)))


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


def mixed_model_interaction(df: pd.DataFrame) -> dict[str, float | str]:
    """Likelihood-ratio test of the group x timepoint interaction in a random-intercept mixed model.

    ``df`` has columns ``animal_id, group, timepoint, value`` (one row per animal and timepoint).
    """
    import statsmodels.formula.api as smf

    data = df.dropna(subset=["value"]).copy()
    data["group"] = data["group"].astype(str)
    data["timepoint"] = data["timepoint"].astype(str)
    if data["group"].nunique() < 2 or data["timepoint"].nunique() < 2 or data["animal_id"].nunique() < 3:
        return {"statistic": np.nan, "df": np.nan, "p": np.nan, "note": "needs >= 2 groups, 2 timepoints, 3 animals"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on small studies; the result says if it failed
        try:
            full = smf.mixedlm("value ~ C(group) * C(timepoint)", data, groups=data["animal_id"]).fit(reml=False)
            reduced = smf.mixedlm("value ~ C(group) + C(timepoint)", data, groups=data["animal_id"]).fit(reml=False)
        except (np.linalg.LinAlgError, ValueError) as exc:
            return {"statistic": np.nan, "df": np.nan, "p": np.nan, "note": f"mixed model failed: {exc}"}
    stat = max(0.0, 2 * (full.llf - reduced.llf))
    dof = len(full.fe_params) - len(reduced.fe_params)
    note = "" if full.converged and reduced.converged else "did not converge"
    return {"statistic": float(stat), "df": float(dof), "p": float(sps.chi2.sf(stat, dof)), "note": note}


def pairwise_by_timepoint(df: pd.DataFrame, groups: Sequence[str], timepoints: Sequence[str]) -> list[dict]:
    """Welch t-tests between every pair of groups at each timepoint, Holm-corrected per timepoint."""
    rows = []
    for tp in timepoints:
        at = df[df["timepoint"] == tp]
        block = []
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
                t = sps.ttest_ind(a, b, equal_var=False)
                row.update(statistic=float(t.statistic), df=float(t.df), p=float(t.pvalue), note="Welch t-test")
            else:
                row.update(statistic=np.nan, df=np.nan, p=np.nan, note="too few animals or no variance")
            block.append(row)
        for row, adj in zip(block, holm([r["p"] for r in block]), strict=True):
            row["p_holm"] = adj
        rows.extend(block)
    return rows


def change_from_baseline(df: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Each animal's value minus its baseline value (column ``change``); animals without a baseline drop out."""
    base = df[df["timepoint"] == baseline].set_index("animal_id")["value"]
    out = df[df["animal_id"].isin(base.index)].copy()
    out["change"] = out["value"] - out["animal_id"].map(base).astype(float)  # (empty maps keep the key dtype)
    return out


def auc_per_animal(df: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Area under each animal's change-from-baseline curve over days (trapezoid; unit x days)."""
    changed = change_from_baseline(df, baseline)
    changed = changed.assign(day=[timepoint_days(t, baseline) for t in changed["timepoint"]]).dropna(subset=["day"])
    rows = []
    for (animal, group), g in changed.groupby(["animal_id", "group"], sort=False):
        g = g.sort_values("day").dropna(subset=["change"])
        if len(g) >= 2:
            rows.append({"animal_id": animal, "group": group, "auc": float(np.trapezoid(g["change"], g["day"]))})
    return pd.DataFrame(rows, columns=["animal_id", "group", "auc"])


def analyse_measure(df: pd.DataFrame, measure: str, *, baseline: str = "baseline", alpha: float = 0.05) -> pd.DataFrame:
    """All analyses of one measure (``df``: animal_id, group, timepoint, value)."""
    groups = sorted(df["group"].astype(str).unique())
    timepoints = timepoint_order(df["timepoint"], baseline)
    rows: list[dict] = []
    lmm = mixed_model_interaction(df)
    rows.append({"analysis": "lmm_group_x_time", **lmm})
    rows.extend(pairwise_by_timepoint(df, groups, timepoints))
    if baseline in set(df["timepoint"]) and len(timepoints) > 1:
        auc = auc_per_animal(df, baseline).rename(columns={"auc": "value"}).assign(timepoint="auc")
        for row in pairwise_by_timepoint(auc, groups, ["auc"]):
            rows.append({**row, "analysis": "auc_pairwise", "timepoint": None})
    out = pd.DataFrame(rows)
    out.insert(0, "measure", measure)
    for col in STATS_COLUMNS:
        if col not in out:
            out[col] = np.nan
    p_used = out["p_holm"].where(out["analysis"] != "lmm_group_x_time", out["p"])
    out["significant"] = p_used < alpha
    return out[list(STATS_COLUMNS)]


def analyse_measures(measures: pd.DataFrame, *, baseline: str = "baseline", alpha: float = 0.05) -> pd.DataFrame:
    """:func:`analyse_measure` for every measure of a long Measures table (one value per animal x timepoint)."""
    frames = []
    for measure, g in measures.groupby("measure", sort=True):
        per_animal = g.groupby(["animal_id", "group", "timepoint"], as_index=False)["value"].mean()
        if per_animal["value"].notna().sum() == 0:
            continue
        frames.append(analyse_measure(per_animal, str(measure), baseline=baseline, alpha=alpha))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(STATS_COLUMNS))
