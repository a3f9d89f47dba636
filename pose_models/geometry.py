"""Frame geometry shared by training and inference: crop, resize, pad, and coordinate mapping.

Only NumPy and OpenCV, so inference on ONNX Runtime stays light.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["preprocess", "to_input", "to_original"]


def preprocess(image: np.ndarray, scale: float, crop: tuple[int, int, int, int] | None, multiple: int) -> np.ndarray:
    """Crop, resize by ``scale`` and pad (bottom/right) to a multiple of ``multiple``: the network input."""
    if crop is not None:
        x, y, w, h = crop
        image = image[y : y + h, x : x + w]
    if scale != 1.0:
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        # Halving with bilinear interpolation averages each 2x2 block, exactly as INTER_AREA does, but
        # faster; stronger reductions need INTER_AREA to avoid aliasing.
        interpolation = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
        image = cv2.resize(image, size, interpolation=interpolation)
    h, w = image.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
    return image


def to_input(xy: np.ndarray, scale: float, crop: tuple[int, int, int, int] | None) -> np.ndarray:
    """Original-frame pixel coordinates -> network-input coordinates (pixel centres at integers)."""
    offset = np.array(crop[:2], dtype=float) if crop is not None else 0.0
    return (xy - offset + 0.5) * scale - 0.5


def to_original(xy: np.ndarray, scale: float, crop: tuple[int, int, int, int] | None) -> np.ndarray:
    """Network-input coordinates -> original-frame pixel coordinates."""
    offset = np.array(crop[:2], dtype=float) if crop is not None else 0.0
    return (xy + 0.5) / scale - 0.5 + offset
