"""The battery table: the long Measures table pivoted to one row per animal x timepoint.

Columns are grouped by domain (evoked / spontaneous / affective) in the order
``configs/battery/default.yaml`` gives; measures the config does not list follow in their session's
domain. :func:`completeness` warns when a study lacks a domain of the minimum battery.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from behavior.config import load_config
from behavior.stats import timepoint_order

__all__ = ["DOMAINS", "BatteryConfig", "BatteryMeasure", "battery_table", "completeness"]

DOMAINS = ("evoked", "spontaneous", "affective")


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
    domains: dict[str, list[BatteryMeasure]]

    @classmethod
    def load(cls, name_or_path: str | Path = "default") -> BatteryConfig:
        """Load a battery config by name or path."""
        return cls.model_validate(load_config("battery", name_or_path))

    def measure_info(self) -> dict[str, tuple[str, BatteryMeasure]]:
        """measure name -> (domain, its config entry)."""
        return {m.measure: (d, m) for d, ms in self.domains.items() for m in ms}


def battery_table(measures: pd.DataFrame, config: BatteryConfig) -> pd.DataFrame:
    """Pivot the long Measures table: rows animal x timepoint (with group), columns ``domain.measure``.

    Several values of a measure for one animal and timepoint (repeated sessions) are averaged.
    """
    if measures.empty:
        return pd.DataFrame(columns=["animal_id", "group", "timepoint"])
    info = config.measure_info()
    domain_of = {
        m: info[m][0] if m in info else d for m, d in zip(measures["measure"], measures["domain"], strict=True)
    }
    listed = [m.measure for d in config.domains.values() for m in d]
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
