"""The synthetic rig: seeded, realistic-looking small videos with exact ground truth, per assay.

Every later feature test (gait, withdrawal latency, grimace, burrowing, place preference) and the
demo use these clips: a clip's ``truth`` says what the features must find. One simulator per assay
registers in :data:`SIMULATORS` (``@register_simulator("gait")``); its parameters are a dataclass with
units in the field names (:class:`GaitParams`, :class:`HargreavesParams`, :class:`VonFreyParams`,
:class:`GrimaceParams`, :class:`BurrowingParams`, :class:`PlacePreferenceParams`,
:class:`PainBoxParams`).

>>> clip = simulate_clip("hargreaves", seed=1, latencies_s=[6.0, None])   # doctest: +SKIP
>>> write_clip(clip, "out/")                                               # doctest: +SKIP
>>> simulate_study("study/", seed=0)                                        # doctest: +SKIP

Conventions (pixel centres at integer coordinates, frame ``i`` at ``i / fps``, bottom-up views mirrored,
JSON truth with units in names) are described in :mod:`behavior.synthetic.base`; each assay module's
docstring states its exact ground truth.
"""

from __future__ import annotations

from behavior.synthetic.base import (
    SIMULATOR_PARAMS,
    SIMULATORS,
    Clip,
    default_params,
    make_params,
    register_simulator,
    simulate,
    simulate_clip,
    write_clip,
)
from behavior.synthetic.burrowing import BurrowingParams
from behavior.synthetic.evoked import HargreavesParams, VonFreyParams
from behavior.synthetic.gait import GaitParams
from behavior.synthetic.grimace import GrimaceParams
from behavior.synthetic.pain_box import PainBoxParams
from behavior.synthetic.place_preference import PlacePreferenceParams
from behavior.synthetic.study import (
    CHAPLAN_SERIES_G,
    StudyBaseline,
    StudyEffects,
    StudyPlan,
    plan_study,
    simulate_study,
    up_down_sequence,
)

__all__ = [
    "CHAPLAN_SERIES_G",
    "SIMULATORS",
    "SIMULATOR_PARAMS",
    "BurrowingParams",
    "Clip",
    "GaitParams",
    "GrimaceParams",
    "HargreavesParams",
    "PainBoxParams",
    "PlacePreferenceParams",
    "StudyBaseline",
    "StudyEffects",
    "StudyPlan",
    "VonFreyParams",
    "default_params",
    "make_params",
    "plan_study",
    "register_simulator",
    "simulate",
    "simulate_clip",
    "simulate_study",
    "up_down_sequence",
    "write_clip",
]
