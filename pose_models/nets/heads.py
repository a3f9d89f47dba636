"""Pose heads: each owns its targets, its loss and its decoding.

- :class:`HeatmapHead` - one confidence map per keypoint (logits); target a Gaussian of ``sigma``
  cells around the keypoint; loss binary cross-entropy summed over cells; decoding the arg-max cell
  and its sigmoid score.
- :class:`OffsetHead` - DeepLabCut's *location refinement*: for each keypoint an (dx, dy) vector per
  cell pointing from the cell centre to the keypoint, in units of the head stride; trained on cells
  within ``radius`` cells of the keypoint (smooth L1); decoding adds the vector at the arg-max cell.

Coordinates: pixel centres at integers. Cell ``(i, j)`` of a stride-``s`` map has its centre at input
pixel ``(j*s + (s-1)/2, i*s + (s-1)/2)``. Decoding is NumPy so it runs on ONNX Runtime outputs too.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pose_models.nets.decoding import cell_centres, decode

__all__ = ["HEADS", "HeatmapHead", "OffsetHead", "cell_centres", "decode"]


class HeatmapHead(nn.Module):
    """Per-keypoint confidence maps (logits)."""

    name = "heatmap"

    def __init__(self, in_channels: int, n_keypoints: int, *, sigma_cells: float = 1.0) -> None:
        super().__init__()
        self.n_keypoints = n_keypoints
        self.sigma_cells = sigma_cells
        self.conv = nn.Conv2d(in_channels, n_keypoints, 1)
        nn.init.constant_(self.conv.bias, -4.0)  # start near "no keypoint here" (sigmoid ~0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def targets(self, keypoints: np.ndarray, visible: np.ndarray, hw: tuple[int, int], stride: int) -> np.ndarray:
        """Gaussian targets ``(B, K, h, w)`` for keypoints ``(B, K, 2)`` in input pixels; zeros where not visible."""
        h, w = hw
        ys, xs = cell_centres(h, stride), cell_centres(w, stride)
        dx = (xs[None, None, :] - keypoints[..., 0:1]) / stride  # (B, K, w)
        dy = (ys[None, None, :] - keypoints[..., 1:2]) / stride  # (B, K, h)
        g = np.exp(-(dy[..., :, None] ** 2 + dx[..., None, :] ** 2) / (2 * self.sigma_cells**2))
        return (g * visible[..., None, None]).astype(np.float32)

    @staticmethod
    def loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """BCE summed over cells, averaged over labelled keypoints (``weight`` (B, K) is 1 where labelled)."""
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(dim=(2, 3))
        return (bce * weight).sum() / weight.sum().clamp(min=1.0)


class OffsetHead(nn.Module):
    """Location refinement vectors (dx, dy per keypoint, in units of the stride)."""

    name = "offset"

    def __init__(self, in_channels: int, n_keypoints: int, *, radius_cells: float = 2.0) -> None:
        super().__init__()
        self.n_keypoints = n_keypoints
        self.radius_cells = radius_cells
        self.conv = nn.Conv2d(in_channels, 2 * n_keypoints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def targets(
        self, keypoints: np.ndarray, visible: np.ndarray, hw: tuple[int, int], stride: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Offset targets ``(B, 2K, h, w)`` (x then y per keypoint) and their mask (cells near a keypoint)."""
        h, w = hw
        b, k = keypoints.shape[:2]
        ys, xs = cell_centres(h, stride), cell_centres(w, stride)
        tx = (keypoints[..., 0:1] - xs[None, None, :]) / stride  # (B, K, w)
        ty = (keypoints[..., 1:2] - ys[None, None, :]) / stride  # (B, K, h)
        target = np.empty((b, k, 2, h, w), np.float32)
        target[:, :, 0] = np.broadcast_to(tx[..., None, :], (b, k, h, w))
        target[:, :, 1] = np.broadcast_to(ty[..., :, None], (b, k, h, w))
        near = (target[:, :, 0] ** 2 + target[:, :, 1] ** 2) <= self.radius_cells**2
        mask = np.repeat((near & (visible[..., None, None] > 0))[:, :, None], 2, axis=2)
        target = np.nan_to_num(target)
        return target.reshape(b, 2 * k, h, w), mask.reshape(b, 2 * k, h, w).astype(np.float32)

    @staticmethod
    def loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Smooth L1 over the masked cells, averaged per masked value."""
        err = F.smooth_l1_loss(pred, target, reduction="none", beta=0.5)
        return (err * mask).sum() / mask.sum().clamp(min=1.0)


HEADS = {"heatmap": HeatmapHead, "offset": OffsetHead}
