"""The extractor contract shared by every assay module: :class:`Measure` and :class:`AssayResult`.

Assays register an :class:`behavior.assays.AssaySpec` (their extractor among its fields).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

__all__ = ["MEASURE_COLUMNS", "AssayResult", "Measure"]

MEASURE_COLUMNS = ("measure", "value", "unit", "n", "quality")


@dataclass(frozen=True)
class Measure:
    """One session-level measure: a name carrying its unit, the value, how many trials it rests on."""

    measure: str
    value: float
    unit: str
    n: int = 1
    quality: str = "ok"


@dataclass
class AssayResult:
    """What an extractor returns for one session: measures, per-trial/per-frame tables, quality figures.

    ``quality`` holds the assay's own data-quality figures (JSON-able: numbers, strings, lists of
    records), merged into the session's quality row beside the pipeline's generic ones.
    """

    measures: list[Measure]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)

    def measures_frame(self) -> pd.DataFrame:
        """The measures as a DataFrame with :data:`MEASURE_COLUMNS`."""
        return pd.DataFrame([asdict(m) for m in self.measures], columns=list(MEASURE_COLUMNS))


