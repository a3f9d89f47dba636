"""The preference score: a test session's time in the paired chamber minus its pre-test's (pure functions).

Pairing
-------
Sessions are paired within an animal, keyed by ``(group, animal_id)`` (ids are often reused across
groups). The pre-test is the animal's session at ``pretest_timepoint`` (matched in any case and
surrounding spaces); every other session of the animal is a test against it. Then, per test session::

    preference_score_s       = time_in_paired_s(test) - time_in_paired_s(pre-test)
    preference_score_percent = 100 * (time_in_paired_fraction(test) - time_in_paired_fraction(pre-test))

Seconds compare only sessions of the same length: when the two durations differ by more than
``duration_tolerance_s`` the seconds score is NaN (``durations_differ``) and the percent score stands.
A test with no pre-test (``no_pretest``), an animal with several (``several_pretests``), or a pair
where either time is NaN (``unscored_session``), or whose paired chambers differ (``paired_chamber_differs``)
gives NaN with that reason, and a one-line note, never
a number from the wrong pair. In conditioned place aversion the same score is negative.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PairingError", "pair_sessions", "preference_rows", "preference_score"]

PREFERENCE_MEASURES = (("preference_score_s", "s"), ("preference_score_percent", "%"))


class PairingError(ValueError):
    """A test session cannot be paired with exactly one pre-test session of its animal."""


def _norm(label: object) -> str:
    return str(label).strip().casefold()


def preference_score(
    test: dict[str, Any], pretest: dict[str, Any], *, duration_tolerance_s: float = 1.0
) -> list[tuple[str, float, str, str]]:
    """The two scores of one pair as ``(measure, value, unit, quality)``.

    ``test`` and ``pretest`` hold ``time_in_paired_s``, ``time_in_paired_fraction`` and, when known,
    ``duration_s`` and ``paired_chamber`` (NaN or missing values give NaN scores with the reason; two
    sessions whose paired chambers differ give ``paired_chamber_differs``).
    """

    def num(d: dict[str, Any], key: str) -> float:
        v = d.get(key)
        try:
            return float(v) if v is not None else math.nan
        except (TypeError, ValueError):
            return math.nan

    t_s, p_s = num(test, "time_in_paired_s"), num(pretest, "time_in_paired_s")
    t_f, p_f = num(test, "time_in_paired_fraction"), num(pretest, "time_in_paired_fraction")
    t_d, p_d = num(test, "duration_s"), num(pretest, "duration_s")
    out: list[tuple[str, float, str, str]] = []
    chambers = (test.get("paired_chamber"), pretest.get("paired_chamber"))
    if all(isinstance(c, str) and c for c in chambers) and chambers[0] != chambers[1]:
        return [(m, math.nan, u, "paired_chamber_differs") for m, u in PREFERENCE_MEASURES]
    if math.isnan(t_s) or math.isnan(p_s):
        out.append(("preference_score_s", math.nan, "s", "unscored_session"))
    elif not (math.isnan(t_d) or math.isnan(p_d)) and abs(t_d - p_d) > duration_tolerance_s:
        out.append(("preference_score_s", math.nan, "s", "durations_differ"))
    else:
        quality = "ok" if not (math.isnan(t_d) or math.isnan(p_d)) else "durations_unknown"
        out.append(("preference_score_s", round(t_s - p_s, 9), "s", quality))
    if math.isnan(t_f) or math.isnan(p_f):
        out.append(("preference_score_percent", math.nan, "%", "unscored_session"))
    else:
        out.append(("preference_score_percent", round(100.0 * (t_f - p_f), 9), "%", "ok"))
    return out


def pair_sessions(sessions: pd.DataFrame, pretest_timepoint: str) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Pair every test session with its animal's pre-test.

    ``sessions`` has one row per session: ``session_id, animal_id, group, timepoint``.

    Returns
    -------
    pairs, problems
        ``pairs``: test session id -> pre-test session id. ``problems``: test session id ->
        ``(quality, note)`` for tests that cannot be paired (no pre-test, several).
    """
    pairs: dict[str, str] = {}
    problems: dict[str, tuple[str, str]] = {}
    want = _norm(pretest_timepoint)
    for (group, animal), g in sessions.groupby(["group", "animal_id"], sort=False):
        is_pre = g["timepoint"].map(_norm) == want
        pre_ids = g.loc[is_pre, "session_id"].astype(str).tolist()
        for row in g[~is_pre].itertuples(index=False):
            sid = str(row.session_id)
            who = f"session {sid} (group {group}, animal {animal}, timepoint {row.timepoint})"
            if not pre_ids:
                problems[sid] = (
                    "no_pretest",
                    f"{who}: expected a pre-test session of the same animal at timepoint {pretest_timepoint!r}, "
                    "got none: no preference score",
                )
            elif len(pre_ids) > 1:
                problems[sid] = (
                    "several_pretests",
                    f"{who}: expected one pre-test session at timepoint {pretest_timepoint!r}, got "
                    f"{len(pre_ids)} ({', '.join(pre_ids)}): no preference score",
                )
            else:
                pairs[sid] = pre_ids[0]
    return pairs, problems


def preference_rows(
    measures: pd.DataFrame,
    quality: pd.DataFrame | None,
    *,
    pretest_timepoint: str,
    duration_tolerance_s: float = 1.0,
) -> pd.DataFrame:
    """Preference-score rows for every test session of a long Measures table of place-preference sessions.

    Returns rows ``session_id, measure, value, unit, n, quality, note`` (``note``: one line, for the
    sessions that could not be scored, else empty).
    """
    cols = ["session_id", "measure", "value", "unit", "n", "quality", "note"]
    if measures.empty:
        return pd.DataFrame(columns=cols)
    sessions = measures[["session_id", "animal_id", "group", "timepoint"]].drop_duplicates("session_id")
    wide = (
        measures[measures["measure"].isin(["time_in_paired_s", "time_in_paired_fraction"])]
        .groupby(["session_id", "measure"])["value"]
        .mean()
        .unstack("measure")
    )
    known: dict[str, dict[str, Any]] = {}
    if quality is not None and not quality.empty and "session_id" in quality:
        for rec in quality.to_dict("records"):
            d = rec.get("duration_s")
            known[str(rec["session_id"])] = {
                "duration_s": float(d) if d is not None and pd.notna(d) else math.nan,
                "paired_chamber": rec.get("paired_chamber") if isinstance(rec.get("paired_chamber"), str) else None,
            }

    def figures(sid: str) -> dict[str, Any]:
        row = wide.loc[sid].to_dict() if sid in wide.index else {}
        return {**row, "duration_s": math.nan, **known.get(sid, {})}

    pairs, problems = pair_sessions(sessions, pretest_timepoint)
    rows: list[dict[str, Any]] = []
    for sid, (reason, note) in problems.items():
        for measure, unit in PREFERENCE_MEASURES:
            rows.append(
                {
                    "session_id": sid,
                    "measure": measure,
                    "value": np.nan,
                    "unit": unit,
                    "n": 0,
                    "quality": reason,
                    "note": note,
                }
            )
    for sid, pre in pairs.items():
        for measure, value, unit, q in preference_score(
            figures(sid), figures(pre), duration_tolerance_s=duration_tolerance_s
        ):
            note = (
                ""
                if q in ("ok", "durations_unknown")
                else (f"session {sid}: {measure} not computed against pre-test {pre} ({q.replace('_', ' ')})")
            )
            rows.append(
                {
                    "session_id": sid,
                    "measure": measure,
                    "value": value,
                    "unit": unit,
                    "n": 2,
                    "quality": q,
                    "note": note,
                }
            )
    order = {s: i for i, s in enumerate(sessions["session_id"].astype(str))}
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values("session_id", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
