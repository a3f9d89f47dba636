"""painbattery's pose side: the Poses data model, pose file I/O and (lazily imported) pose networks.

``import pose_models`` and its I/O stay free of torch; only the network, training and inference
modules import it.
"""

import os

# FFmpeg and OpenCV print their own warnings ("moov atom not found") to stderr; we report every
# failure ourselves in one line, so keep theirs quiet. Must be set before cv2 is first imported.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

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
