"""Drawing primitives of the synthetic rig: anti-aliased shapes with exact geometry, textures, noise.

Shapes are painted on float32 RGB canvases (0-255) with an analytic coverage: a pixel whose centre
lies on a shape's edge is half covered. The painted area and centroid of a shape therefore match
its geometry to a small fraction of a pixel, which is what lets tests measure print areas and
centroids against the ground truth. Pixel ``(row i, column j)`` has its centre at ``x=j, y=i``.

:func:`finish` turns a canvas into a camera frame: a mild Gaussian blur (optics), a little temporal
sensor noise, rounding to uint8. Static texture (floor grain, blotches) goes into each clip's
background once, so the videos look like lab footage yet stay small once encoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

__all__ = [
    "BLUR_SIGMA_PX",
    "NOISE_LEVELS",
    "blotches",
    "capsule_coverage",
    "ellipse_coverage",
    "finish",
    "grain",
    "paint",
    "paint_capsule",
    "paint_ellipse",
    "paint_polygon",
    "shape_centroid",
    "vignette",
]

#: Optical blur of every frame (Gaussian sigma, pixels).
BLUR_SIGMA_PX = 0.7
#: Temporal sensor noise: each pixel gets an integer offset in [-NOISE_LEVELS, NOISE_LEVELS] per frame.
NOISE_LEVELS = 1

Color = Sequence[float]
Patch = tuple[slice, slice, np.ndarray]


def ellipse_coverage(
    height: int, width: int, center: Sequence[float], axes: Sequence[float], angle_deg: float = 0.0
) -> Patch | None:
    """Anti-aliased coverage (0-1) of a filled ellipse over the pixels it touches.

    Parameters
    ----------
    center
        ``(x, y)`` in pixels.
    axes
        Semi-axes ``(a, b)`` in pixels; ``a`` lies along the direction ``(cos angle, sin angle)`` in
        image axes (x right, y down), so a positive angle turns clockwise on screen, like OpenCV.

    Returns
    -------
    (rows, cols, coverage) or None
        Slices of the canvas and the coverage patch, or None when the ellipse is off the canvas.
    """
    cx, cy = float(center[0]), float(center[1])
    a, b = max(float(axes[0]), 1e-3), max(float(axes[1]), 1e-3)
    r = max(a, b) + 1.5
    x0, x1 = max(int(np.floor(cx - r)), 0), min(int(np.ceil(cx + r)) + 1, width)
    y0, y1 = max(int(np.floor(cy - r)), 0), min(int(np.ceil(cy + r)) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    th = np.deg2rad(angle_deg)
    c, s = np.float32(np.cos(th)), np.float32(np.sin(th))
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    ua = (dx * c + dy * s) * np.float32(1 / a)  # u / a
    vb = (dy * c - dx * s) * np.float32(1 / b)  # v / b
    f = ua * ua + vb * vb - np.float32(1.0)
    grad = np.sqrt((ua * np.float32(1 / a)) ** 2 + (vb * np.float32(1 / b)) ** 2) * np.float32(2.0)
    # f / |grad f| is the signed distance to the edge to first order; the centre (grad 0) is inside.
    cov = np.clip(np.float32(0.5) - f / np.maximum(grad, np.float32(1e-6)), 0.0, 1.0)
    return slice(y0, y1), slice(x0, x1), cov


def capsule_coverage(
    height: int, width: int, p0: Sequence[float], p1: Sequence[float], width_px: float
) -> Patch | None:
    """Anti-aliased coverage of a segment from ``p0`` to ``p1`` with round caps, ``width_px`` wide."""
    (ax, ay), (bx, by) = (float(p0[0]), float(p0[1])), (float(p1[0]), float(p1[1]))
    r = width_px / 2
    x0, x1 = max(int(np.floor(min(ax, bx) - r - 1)), 0), min(int(np.ceil(max(ax, bx) + r + 1)) + 1, width)
    y0, y1 = max(int(np.floor(min(ay, by) - r - 1)), 0), min(int(np.ceil(max(ay, by) + r + 1)) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    px = np.arange(x0, x1, dtype=np.float32)[None, :] - ax
    py = np.arange(y0, y1, dtype=np.float32)[:, None] - ay
    vx, vy = bx - ax, by - ay
    L2 = vx * vx + vy * vy
    t = np.clip((px * vx + py * vy) / L2, 0.0, 1.0) if L2 > 0 else np.zeros_like(px + py)
    dist = np.hypot(px - t * vx, py - t * vy)
    cov = np.clip(r + 0.5 - dist, 0.0, 1.0).astype(np.float32)
    return slice(y0, y1), slice(x0, x1), cov


def paint(img: np.ndarray, patch: Patch | None, color: Color, alpha: float = 1.0) -> None:
    """Blend ``color`` into ``img`` (float32, h x w x 3) with the patch's coverage times ``alpha``."""
    if patch is None:
        return
    rows, cols, cov = patch
    w = (cov * np.float32(alpha))[:, :, None]
    region = img[rows, cols]
    region += w * (np.asarray(color, dtype=np.float32) - region)


def paint_ellipse(
    img: np.ndarray,
    center: Sequence[float],
    axes: Sequence[float],
    angle_deg: float,
    color: Color,
    alpha: float = 1.0,
) -> None:
    """Paint a filled anti-aliased ellipse (see :func:`ellipse_coverage`)."""
    paint(img, ellipse_coverage(img.shape[0], img.shape[1], center, axes, angle_deg), color, alpha)


def paint_capsule(
    img: np.ndarray, p0: Sequence[float], p1: Sequence[float], width_px: float, color: Color, alpha: float = 1.0
) -> None:
    """Paint a thick anti-aliased segment with round caps."""
    paint(img, capsule_coverage(img.shape[0], img.shape[1], p0, p1, width_px), color, alpha)


def paint_polygon(img: np.ndarray, points: np.ndarray, color: Color, alpha: float = 1.0) -> None:
    """Paint a filled anti-aliased polygon (vertices ``(n, 2)`` in pixels, sub-pixel precise)."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    # fillPoly's sub-pixel coordinates put pixel centres at integers, like the rest of this module.
    pts = np.round(np.asarray(points, dtype=np.float64) * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA, shift=4)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return
    rows, cols = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
    paint(img, (rows, cols, mask[rows, cols].astype(np.float32) / 255.0), color, alpha)


def blotches(rng: np.random.Generator, height: int, width: int, *, scale_px: float, amp: float) -> np.ndarray:
    """Smooth zero-mean random field (h, w) float32 with features about ``scale_px`` wide, std ``amp``."""
    gh, gw = max(int(np.ceil(height / scale_px)) + 2, 2), max(int(np.ceil(width / scale_px)) + 2, 2)
    small = rng.standard_normal((gh, gw)).astype(np.float32)
    field = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    std = float(field.std()) or 1.0
    return (field - field.mean()) * np.float32(amp / std)


def grain(rng: np.random.Generator, height: int, width: int, amp: float) -> np.ndarray:
    """Static fine grain (h, w) float32, std ``amp`` (texture of a floor, a sensor's fixed pattern)."""
    return (rng.standard_normal((height, width)) * amp).astype(np.float32)


def vignette(height: int, width: int, strength: float = 0.15) -> np.ndarray:
    """Multiplicative lens fall-off (h, w, 1) float32: 1 in the centre, ``1 - strength`` at the corners."""
    y = (np.arange(height, dtype=np.float32) - (height - 1) / 2) / (height / 2)
    x = (np.arange(width, dtype=np.float32) - (width - 1) / 2) / (width / 2)
    r2 = (x[None, :] ** 2 + y[:, None] ** 2) / 2
    return (1.0 - strength * r2)[:, :, None].astype(np.float32)


def finish(img: np.ndarray, rng: np.random.Generator, *, blur_sigma_px: float = BLUR_SIGMA_PX) -> np.ndarray:
    """Blur, add temporal noise and quantise (round, saturate) a float canvas into a uint8 RGB frame."""
    if blur_sigma_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma_px, borderType=cv2.BORDER_REFLECT)
    else:
        img = img.copy()
    h, w = img.shape[:2]
    noise = rng.integers(-NOISE_LEVELS, NOISE_LEVELS + 1, (h, w), dtype=np.int8)
    img += cv2.merge([noise, noise, noise]).astype(np.float32)
    np.maximum(img, 0.0, out=img)
    return cv2.convertScaleAbs(img)


@lru_cache(maxsize=64)
def shape_centroid(ellipses: tuple[tuple[float, float, float, float, float], ...]) -> tuple[float, float]:
    """Centroid of the union of ellipses ``(cx, cy, a, b, angle_deg)`` (any unit), by fine rasterising.

    Used to place a rigid animal silhouette so that its area centroid sits exactly on the
    ``centroid`` keypoint.
    """
    arr = np.asarray(ellipses, dtype=np.float64)
    r = float((np.abs(arr[:, :2]).max(axis=1) + arr[:, 2:4].max(axis=1)).max())
    step = r / 400
    grid = np.arange(-r, r + step, step)
    gx, gy = np.meshgrid(grid, grid)
    mask = np.zeros(gx.shape, bool)
    for cx, cy, a, b, ang in arr:
        th = np.deg2rad(ang)
        u = (gx - cx) * np.cos(th) + (gy - cy) * np.sin(th)
        v = -(gx - cx) * np.sin(th) + (gy - cy) * np.cos(th)
        mask |= (u / a) ** 2 + (v / b) ** 2 <= 1
    return float(gx[mask].mean()), float(gy[mask].mean())
