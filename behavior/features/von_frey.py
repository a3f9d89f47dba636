"""von Frey mechanical thresholds: the up-down method, the simplified up-down, and % response.

Up-down (Chaplan et al. 1994 after Dixon 1980): filaments are applied in order, one step weaker after
a withdrawal (X) and one step stiffer after none (O), until four more applications have followed the
first change of response. The 50 % threshold is ``10**(Xf + k*delta) / 1e4`` grams, ``Xf`` the log-unit
marking of the last filament used, ``delta`` the mean step between markings, ``k`` Dixon's value for
the pattern (:mod:`behavior.features.dixon`). A series that never changes response is *bounded*: all
withdrawals down to the lightest filament, or none up to the stiffest, get the series' assigned
values (Chaplan: 0.25 g and 15 g) and a flag.

Simplified up-down (SUDO, Bonin et al. 2014): five applications by the same up-down rule, starting
at the series' start filament; the threshold sits half a filament below the fifth filament if it
gave a withdrawal and half a filament above if not, converted to grams through the least-squares
line of log10(force) against filament number over the series.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from behavior.config import load_config
from behavior.features.dixon import DIXON_K, dixon_k_ml

__all__ = [
    "Filament",
    "FilamentSeries",
    "SequenceError",
    "SudoResult",
    "UpDownResult",
    "parse_response",
    "percent_response",
    "read_updown_csv",
    "sudo_threshold",
    "thresholds_table",
    "updown_threshold",
]

N_AFTER_CHANGE = 4  # Chaplan: four more applications after the first change of response
SUDO_STIMULI = 5


class SequenceError(ValueError):
    """A filament/response sequence cannot be scored (unknown filament, breaks the rule, too short)."""


class Filament(BaseModel):
    """One filament: its log-unit marking and nominal force."""

    model_config = ConfigDict(extra="forbid")
    marking: float = Field(gt=0)
    force_g: float = Field(gt=0)


class FilamentSeries(BaseModel):
    """A filament set (``configs/filaments/<name>.yaml``), lightest first."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    filaments: list[Filament] = Field(min_length=2)
    start_g: float = Field(gt=0)
    delta_log: float | None = Field(None, gt=0, description="Mean step in log units; None = from markings.")
    all_responses_g: float = Field(gt=0, description="Assigned when every application gives a withdrawal.")
    no_responses_g: float = Field(gt=0, description="Assigned when no application does.")

    @field_validator("filaments")
    @classmethod
    def _increasing(cls, filaments: list[Filament]) -> list[Filament]:
        marks = [f.marking for f in filaments]
        forces = [f.force_g for f in filaments]
        if any(b <= a for a, b in itertools.pairwise(marks)) or any(b <= a for a, b in itertools.pairwise(forces)):
            raise ValueError("expected filaments in increasing order of marking and force")
        return filaments

    @model_validator(mode="after")
    def _start_in_series(self) -> FilamentSeries:
        self.index_of(self.start_g)
        return self

    @classmethod
    def load(cls, name_or_path: str | Path) -> FilamentSeries:
        """Load a series by name from ``configs/filaments/`` or from a YAML path."""
        data = load_config("filaments", name_or_path)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ValueError(f"filament series {name_or_path}: {exc.errors()[0]['msg']}") from exc

    @property
    def forces_g(self) -> list[float]:
        """Nominal forces, lightest first."""
        return [f.force_g for f in self.filaments]

    @property
    def markings(self) -> list[float]:
        """Log-unit markings, lightest first."""
        return [f.marking for f in self.filaments]

    @property
    def delta(self) -> float:
        """Mean step between adjacent filaments in log units."""
        if self.delta_log is not None:
            return self.delta_log
        return (self.markings[-1] - self.markings[0]) / (len(self.filaments) - 1)

    def index_of(self, force_g: float) -> int:
        """Position of a filament given by its force (within 2 %, so 1.4 and 1.41 g both match)."""
        for i, f in enumerate(self.filaments):
            if math.isclose(force_g, f.force_g, rel_tol=0.02):
                return i
        raise SequenceError(
            f"filament {force_g:g} g is not in series {self.name} ({', '.join(f'{g:g}' for g in self.forces_g)} g)"
        )


def parse_response(value: object) -> Literal["X", "O"]:
    """Read a response as X (withdrawal) or O (none): accepts X/O, 1/0, True/False, any case."""
    text = str(value).strip().upper()
    if text in ("X", "1", "1.0", "TRUE", "Y", "YES"):
        return "X"
    if text in ("O", "0", "0.0", "FALSE", "N", "NO"):
        return "O"
    raise SequenceError(f"expected a response X/1 (withdrawal) or O/0 (none), got {value!r}")


def _walk(series: FilamentSeries, filaments_g: Sequence[float], responses: Sequence[object]) -> tuple[list[int], str]:
    """Check that the sequence follows the up-down rule; return filament indices and the X/O string."""
    if len(filaments_g) != len(responses):
        raise SequenceError(f"expected one response per application, got {len(filaments_g)} and {len(responses)}")
    if not filaments_g:
        raise SequenceError("expected at least one application, got none")
    idx = [series.index_of(float(g)) for g in filaments_g]
    pattern = "".join(parse_response(r) for r in responses)
    top = len(series.filaments) - 1
    for i in range(len(idx) - 1):
        step = -1 if pattern[i] == "X" else 1
        expected = min(max(idx[i] + step, 0), top)
        if idx[i + 1] != expected:
            raise SequenceError(
                f"impossible sequence: application {i + 2} used {series.forces_g[idx[i + 1]]:g} g, but after "
                f"{'a withdrawal' if step < 0 else 'no withdrawal'} to {series.forces_g[idx[i]]:g} g the up-down "
                f"rule gives {series.forces_g[expected]:g} g"
            )
    return idx, pattern


@dataclass(frozen=True)
class UpDownResult:
    """The 50 % threshold of one up-down series."""

    threshold_g: float
    pattern: str
    flag: str
    k: float | None
    last_filament_g: float
    n_applications: int


def updown_threshold(
    filaments_g: Sequence[float],
    responses: Sequence[object],
    series: FilamentSeries,
    *,
    n_after_change: int = N_AFTER_CHANGE,
) -> UpDownResult:
    """50 % withdrawal threshold by the up-down method (Chaplan 1994).

    Parameters
    ----------
    filaments_g
        Force of each filament applied, in the order applied.
    responses
        Response to each application: X/1 withdrawal, O/0 none.
    series
        The filament set used.
    n_after_change
        Applications after the first change of response (Chaplan: 4, Dixon's nominal N = 6; Dixon's
        table also covers 0-3 for series stopped earlier).

    Returns
    -------
    UpDownResult
        ``flag`` is ``""`` for a regular estimate, ``nonstandard_start`` when the first filament is
        not the series' start filament, ``all_responses`` / ``no_responses`` for a bounded
        series, ``capped_low`` / ``capped_high`` when the estimate fell outside the assigned bounds,
        ``extra_applications_ignored`` when applications followed the end of the series, and
        ``k_from_likelihood`` when the pattern is outside Dixon's table or the walk was held at the
        end of the series (k is then Dixon's maximum-likelihood estimate on the actual levels).

    Raises
    ------
    SequenceError
        Unknown filament, a step that breaks the up-down rule, or too few applications.
    """
    if not 0 <= n_after_change <= N_AFTER_CHANGE:
        raise ValueError(f"expected 0-{N_AFTER_CHANGE} applications after the change, got {n_after_change}")
    idx, pattern = _walk(series, filaments_g, responses)
    flags: list[str] = []
    if idx[0] != series.index_of(series.start_g):
        flags.append("nonstandard_start")
    change = next((i for i, r in enumerate(pattern) if r != pattern[0]), None)
    if change is None:
        at_bottom = pattern[0] == "X" and idx[-1] == 0
        at_top = pattern[0] == "O" and idx[-1] == len(series.filaments) - 1
        if at_bottom or at_top:
            value = series.all_responses_g if at_bottom else series.no_responses_g
            flag = "all_responses" if at_bottom else "no_responses"
            flag = ";".join([*flags, flag])
            return UpDownResult(value, pattern, flag, None, series.forces_g[idx[-1]], len(pattern))
        raise SequenceError(
            f"too few applications: {len(pattern)} without a change of response ({pattern}); continue until "
            f"the response changes or the series ends at {series.forces_g[0]:g} / {series.forces_g[-1]:g} g"
        )
    n_used = change + 1 + n_after_change
    if len(pattern) < n_used:
        raise SequenceError(
            f"too few applications: the response first changed at application {change + 1} ({pattern}), "
            f"so {n_used} are needed ({n_after_change} after the change), got {len(pattern)}"
        )
    if len(pattern) > n_used:
        flags.append("extra_applications_ignored")
    used, used_idx = pattern[:n_used], idx[:n_used]
    held = any(a == b for a, b in itertools.pairwise(used_idx))  # walk held at an end
    if used in DIXON_K and not held:
        k = DIXON_K[used]
    else:
        levels = (np.asarray(series.markings)[used_idx] - series.markings[used_idx[-1]]) / series.delta
        k = dixon_k_ml(used, positions=levels)
        flags.append("k_from_likelihood")
    last = used_idx[-1]
    threshold_g = 10 ** (series.markings[last] + k * series.delta) / 1e4
    if threshold_g < series.all_responses_g:
        threshold_g, flags = series.all_responses_g, [*flags, "capped_low"]
    elif threshold_g > series.no_responses_g:
        threshold_g, flags = series.no_responses_g, [*flags, "capped_high"]
    return UpDownResult(threshold_g, used, ";".join(flags), k, series.forces_g[last], len(pattern))


@dataclass(frozen=True)
class SudoResult:
    """The threshold of one simplified up-down (SUDO) series."""

    threshold_g: float
    pattern: str
    flag: str
    final_position: float


def sudo_threshold(filaments_g: Sequence[float], responses: Sequence[object], series: FilamentSeries) -> SudoResult:
    """Threshold by the simplified up-down method (Bonin et al. 2014): five applications.

    The threshold is the fifth filament's position minus 0.5 if it gave a withdrawal, plus 0.5 if not,
    converted to grams with the least-squares line of log10(force) against filament position.
    """
    idx, pattern = _walk(series, filaments_g, responses)
    if len(pattern) < SUDO_STIMULI:
        raise SequenceError(f"too few applications for SUDO: expected {SUDO_STIMULI}, got {len(pattern)}")
    flag = "extra_applications_ignored" if len(pattern) > SUDO_STIMULI else ""
    fifth = idx[SUDO_STIMULI - 1]
    position = fifth - 0.5 if pattern[SUDO_STIMULI - 1] == "X" else fifth + 0.5
    slope, intercept = np.polyfit(np.arange(len(series.filaments)), np.log10(series.forces_g), 1)
    return SudoResult(float(10 ** (slope * position + intercept)), pattern[:SUDO_STIMULI], flag, position)


# ----------------------------------------------------------------------------------------- tables

UPDOWN_COLUMNS = ("animal_id", "paw", "filament_g", "response")


def read_updown_csv(path: str | Path) -> pd.DataFrame:
    """Read an up-down responses CSV: one row per application, in the order applied.

    Columns ``animal_id,paw,filament_g,response`` (response X/1 or O/0); extra columns are kept.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    SequenceError
        Naming the line of every bad row (missing column, non-numeric force, unknown response).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"responses file not found: {path}")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in UPDOWN_COLUMNS if c not in df.columns]
    if missing:
        raise SequenceError(f"{path}: expected columns {','.join(UPDOWN_COLUMNS)}, missing {missing}")
    if df.empty:
        raise SequenceError(f"{path}: expected at least one application row, got none")
    errors, forces, responses = [], [], []
    for i, row in enumerate(df.to_dict("records")):
        line = i + 2
        try:
            g = float(row["filament_g"])
            if not g > 0:
                raise ValueError
            forces.append(g)
        except ValueError:
            errors.append(f"line {line}: filament_g: expected a force in grams > 0, got {row['filament_g']!r}")
            forces.append(np.nan)
        try:
            responses.append(parse_response(row["response"]))
        except SequenceError as exc:
            errors.append(f"line {line}: response: {exc}")
            responses.append("")
        if not row["animal_id"].strip() or not row["paw"].strip():
            errors.append(f"line {line}: expected animal_id and paw, got an empty value")
    if errors:
        raise SequenceError(f"{path}: " + "; ".join(errors))
    out = df.copy()
    out["filament_g"] = forces
    out["response"] = responses
    out["line"] = np.arange(len(df)) + 2
    return out


def thresholds_table(
    applications: pd.DataFrame, series: FilamentSeries, *, method: Literal["updown", "sudo"] = "updown"
) -> pd.DataFrame:
    """Threshold per animal and paw from an applications table (see :func:`read_updown_csv`).

    Returns
    -------
    pandas.DataFrame
        ``animal_id, paw, threshold_g, pattern, flag``, in order of first appearance.

    Raises
    ------
    SequenceError
        Listing every animal/paw whose sequence cannot be scored, with the lines involved.
    """
    rows, errors = [], []
    for (animal, paw), group in applications.groupby(["animal_id", "paw"], sort=False):
        try:
            if method == "updown":
                r = updown_threshold(group["filament_g"].tolist(), group["response"].tolist(), series)
            else:
                r = sudo_threshold(group["filament_g"].tolist(), group["response"].tolist(), series)
        except SequenceError as exc:
            lines = group["line"].tolist() if "line" in group else []
            where = f" (lines {lines[0]}-{lines[-1]})" if lines else ""
            errors.append(f"animal {animal} paw {paw}{where}: {exc}")
            continue
        rows.append(
            {"animal_id": animal, "paw": paw, "threshold_g": r.threshold_g, "pattern": r.pattern, "flag": r.flag}
        )
    if errors:
        raise SequenceError("; ".join(errors))
    return pd.DataFrame(rows, columns=["animal_id", "paw", "threshold_g", "pattern", "flag"])


def percent_response(applications: pd.DataFrame) -> pd.DataFrame:
    """% of applications giving a withdrawal, per animal, paw and filament (fixed-force protocols).

    Returns
    -------
    pandas.DataFrame
        ``animal_id, paw, filament_g, n_applications, n_responses, response_percent``.
    """
    df = applications.assign(responded=(applications["response"] == "X").astype(int))
    out = (
        df.groupby(["animal_id", "paw", "filament_g"], sort=False)["responded"]
        .agg(n_applications="count", n_responses="sum")
        .reset_index()
    )
    out["response_percent"] = 100.0 * out["n_responses"] / out["n_applications"]
    return out
