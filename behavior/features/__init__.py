"""Assay feature extractors: one module per assay family, each registering its :class:`AssaySpec`.

An extractor turns one session's inputs (poses when the assay needs them, the video, events) into
session-level :class:`Measure` rows, per-trial or per-frame tables and quality figures;
``behavior.pipeline.run_session`` finds it through :func:`behavior.assays.get_assay`. Feature
functions inside the modules are pure.
"""

from __future__ import annotations

# Assay modules register their specs on import (behavior.assays imports this package to load them).
from behavior.features import burrowing, evoked, gait, grimace, pain_box, place_preference  # noqa: F401
from behavior.features.base import AssayResult, Measure

__all__ = ["AssayResult", "Measure"]
