"""Assay feature extractors: one module per assay family, each registering under its assay name.

An extractor turns one session's poses (and, where needed, its video and events) into session-level
:class:`Measure` rows plus per-trial or per-frame tables; ``behavior.pipeline.run_session`` looks it
up in :data:`EXTRACTORS` by the session's assay. Feature functions inside the modules are pure.
"""

from __future__ import annotations

# Assay modules register their extractors on import.
from behavior.features import evoked  # noqa: F401  (after base: evoked registers into it)
from behavior.features.base import EXTRACTORS, AssayResult, Measure, register_extractor

__all__ = ["EXTRACTORS", "AssayResult", "Measure", "register_extractor"]
