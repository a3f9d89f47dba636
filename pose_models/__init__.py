"""painbattery's pose side: the Poses data model, pose file I/O and (lazily imported) pose networks.

``import pose_models`` and its I/O stay free of torch; only the network, training and inference
modules import it.
"""

from pose_models.poses import (
    PosesValidationError,
    drop_low_confidence,
    from_numpy,
    interpolate_gaps,
    px_to_mm,
    select,
    validate_poses,
)

__all__ = [
    "PosesValidationError",
    "drop_low_confidence",
    "from_numpy",
    "interpolate_gaps",
    "px_to_mm",
    "select",
    "validate_poses",
]
