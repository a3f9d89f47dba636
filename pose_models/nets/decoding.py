"""Keypoints from head outputs, in NumPy only (so ONNX Runtime inference never imports torch).

Coordinates: pixel centres at integers. Cell ``(i, j)`` of a stride-``s`` map has its centre at input
pixel ``(j*s + (s-1)/2, i*s + (s-1)/2)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cell_centres", "decode"]


def cell_centres(n: int, stride: int) -> np.ndarray:
    """Input-pixel coordinate of the centre of each of ``n`` cells of a stride-``stride`` map."""
    return np.arange(n) * stride + (stride - 1) / 2.0


def decode(heatmap_logits: np.ndarray, offsets: np.ndarray | None, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint positions and confidences from head outputs.

    Parameters
    ----------
    heatmap_logits
        ``(B, K, h, w)`` logits.
    offsets
        ``(B, 2K, h, w)`` refinement vectors in stride units, or None.
    stride
        Input pixels per cell.

    Returns
    -------
    positions, confidence
        ``(B, K, 2)`` input-pixel coordinates (x, y) and ``(B, K)`` sigmoid scores in [0, 1].
    """
    b, k, h, w = heatmap_logits.shape
    flat = heatmap_logits.reshape(b, k, h * w)
    best = flat.argmax(axis=2)
    iy, ix = np.divmod(best, w)
    score = np.take_along_axis(flat, best[..., None], axis=2)[..., 0]
    confidence = 1.0 / (1.0 + np.exp(-score.astype(np.float64)))
    x = cell_centres(w, stride)[ix]
    y = cell_centres(h, stride)[iy]
    if offsets is not None:
        off = offsets.reshape(b, k, 2, h * w)
        x = x + np.take_along_axis(off[:, :, 0], best[..., None], axis=2)[..., 0] * stride
        y = y + np.take_along_axis(off[:, :, 1], best[..., None], axis=2)[..., 0] * stride
    return np.stack([x, y], axis=-1), confidence.astype(np.float32)
