"""The battery table: the long Measures table pivoted to one row per animal x timepoint.

Columns are grouped by domain (evoked / spontaneous / affective: each measure's assay's domain, from
the registry) in the order ``configs/battery/default.yaml`` lists them; measures the config does not
list follow within their domain. :func:`completeness` warns when a study lacks a domain of the minimum battery.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from behavior.config import load_config
from behavior.stats import timepoint_order

__all__ = ["DOMAINS", "LOWER_IS_MORE_PAIN", "BatteryConfig", "BatteryMeasure", "battery_table", "completeness"]

DOMAINS = ("evoked", "spontaneous", "affective")
#: Measure families where a lower value is more pain whatever the assay's configuration.
LOWER_IS_MORE_PAIN = ("latency_", "threshold_")


class BatteryMeasure(BaseModel):
    """One measure of the battery: its name, which way is more pain, a label for reports."""

    model_config = ConfigDict(extra="forbid")
    measure: str
    direction: int = Field(description="+1: higher = more pain; -1: lower = more pain")
    label: str = ""


class BatteryConfig(BaseModel):
    """``configs/battery/<name>.yaml``."""

    model_config = ConfigDict(extra="forbid")
    name: str = "default"
    baseline_timepoint: str = "baseline"
    control_group: str = "Control"
    alpha: float = Field(0.05, gt=0, lt=1)
    #: The battery's measures in report order. Their domain is their assay's (behavior.assays), not
    #: written here: a measure's row in the Measures table carries it.
    measures: list[BatteryMeasure]

    @classmethod
    def load(cls, name_or_path: str | Path = "default") -> BatteryConfig:
        """Load a battery config by name or path."""
        return cls.model_validate(load_config("battery", name_or_path))

    def measure_info(self) -> dict[str, BatteryMeasure]:
        """measure name -> its config entry."""
        return {m.measure: m for m in self.measures}

    def direction(self, measure: str) -> int | None:
        """Which way is more pain for ``measure``: +1 higher, -1 lower, None when unknown.

        A measure the config lists has its direction; an unlisted one of a family whose direction is
        fixed by the assay (``latency_*``: shorter = more pain; ``threshold_*``: lower = more pain) gets
        -1; any other unlisted measure has no known direction (None), and is never guessed.
        """
        info = self.measure_info()
        if measure in info:
            return info[measure].direction
        if measure.startswith(LOWER_IS_MORE_PAIN):
            return -1
        return None

    def control_in(self, groups: list[str], key: dict[str, str] | None = None) -> str | None:
        """The label of the control group among ``groups``: the config's name, or its code in a blinding key.

        The name matches exactly, else in any case and surrounding spaces (like the baseline label)
        when exactly one group does; None when no group, or several, match.
        """
        if self.control_group in groups:
            return self.control_group
        wanted = self.control_group.strip().casefold()
        for names in (groups, [(key or {}).get(g) for g in groups]):
            hits = [
                g for g, n in zip(groups, names, strict=True) if isinstance(n, str) and n.strip().casefold() == wanted
            ]
            if hits:
                return hits[0] if len(hits) == 1 else None
        return None


def battery_table(measures: pd.DataFrame, config: BatteryConfig) -> pd.DataFrame:
    """Pivot the long Measures table: rows animal x timepoint (with group), columns ``domain.measure``.

    Several values of a measure for one animal and timepoint (repeated sessions) are averaged.
    """
    if measures.empty:
        return pd.DataFrame(columns=["animal_id", "group", "timepoint"])
    domain_of = dict(zip(measures["measure"], measures["domain"], strict=True))
    listed = [m.measure for m in config.measures]
    present = list(dict.fromkeys(measures["measure"]))
    ordered = [m for m in listed if m in present] + [m for m in present if m not in listed]
    ordered.sort(key=lambda m: DOMAINS.index(domain_of[m]) if domain_of[m] in DOMAINS else len(DOMAINS))
    # groupby + unstack keeps only the animal x timepoint rows that exist (pivot_table would cross them)
    wide = measures.groupby(["animal_id", "group", "timepoint", "measure"], sort=False)["value"].mean()
    wide = wide.unstack("measure")
    wide = wide.reindex(columns=ordered)
    wide.columns = [f"{domain_of[m]}.{m}" for m in ordered]
    wide = wide.reset_index()
    order = timepoint_order(wide["timepoint"], config.baseline_timepoint)
    wide["_t"] = wide["timepoint"].map(order.index)
    return wide.sort_values(["group", "animal_id", "_t"]).drop(columns="_t").reset_index(drop=True)


def completeness(measures: pd.DataFrame) -> list[str]:
    """Warnings for each domain of the minimum battery (evoked, spontaneous, affective) the study lacks."""
    have = set(measures["domain"]) if not measures.empty else set()
    return [
        f"the study has no {d} measure: the minimum battery asks for at least one evoked, one spontaneous "
        "and one affective measure"
        for d in DOMAINS
        if d not in have
    ]
