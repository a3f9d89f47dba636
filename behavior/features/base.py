"""The extractor contract shared by every assay module: :class:`Measure`, :class:`AssayResult`, registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import pandas as pd

__all__ = ["EXTRACTORS", "MEASURE_COLUMNS", "AssayResult", "Measure", "register_extractor"]

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
    """What an extractor returns for one session: measures plus per-trial/per-frame tables."""

    measures: list[Measure]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def measures_frame(self) -> pd.DataFrame:
        """The measures as a DataFrame with :data:`MEASURE_COLUMNS`."""
        return pd.DataFrame([asdict(m) for m in self.measures], columns=list(MEASURE_COLUMNS))


#: Extractors by assay name; each is ``fn(poses, session, config, *, video=None) -> AssayResult``.
EXTRACTORS: dict[str, Callable[..., AssayResult]] = {}


def register_extractor(assay: str) -> Callable[[Callable[..., AssayResult]], Callable[..., AssayResult]]:
    """Register an extractor for ``assay`` (a decorator)."""

    def decorate(fn: Callable[..., AssayResult]) -> Callable[..., AssayResult]:
        EXTRACTORS[assay] = fn
        return fn

    return decorate
