"""A rigid rodent silhouette (top or side view) placed so that its area centroid is a keypoint.

The silhouette is a union of ellipses in body coordinates (millimetres, ``+u`` forwards, ``+v`` to the
animal's right in the top view / downwards in the side view). Its area centroid is computed once by
fine rasterising (:func:`behavior.synthetic.render.shape_centroid`), so the ``centroid`` keypoint is
the centroid of the painted body (tail excluded, it is drawn thin and lighter).
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

import numpy as np

from behavior.synthetic.render import paint_capsule, paint_ellipse, shape_centroid

__all__ = ["ANIMAL_KEYPOINTS", "ANIMAL_SKELETON", "Animal"]

ANIMAL_KEYPOINTS = ("snout", "centroid", "tailbase")
ANIMAL_SKELETON = (("snout", "centroid"), ("centroid", "tailbase"))

# (u, v, semi-axis along u, semi-axis along v, angle_deg) in mm
_TOP = (
    (-3.0, 0.0, 22.0, 9.5, 0.0),  # trunk
    (19.0, 0.0, 10.0, 7.0, 0.0),  # head
    (27.0, 0.0, 5.5, 3.6, 0.0),  # snout
    (15.5, -6.2, 3.2, 2.6, 20.0),  # ears
    (15.5, 6.2, 3.2, 2.6, -20.0),
)
_SIDE = (
    (-2.0, 0.0, 22.0, 10.5, 0.0),  # trunk
    (19.0, -3.0, 9.5, 7.0, -15.0),  # head
    (26.5, -1.0, 5.5, 3.6, -8.0),  # snout
    (14.0, -9.0, 3.2, 3.6, -20.0),  # ear
    (10.0, 8.5, 3.0, 4.0, 0.0),  # fore leg
    (-15.0, 8.0, 4.5, 5.0, 0.0),  # hind leg
)
_SNOUT = {"top": (32.0, 0.0), "side": (31.5, -0.5)}
_TAILBASE = {"top": (-25.0, 0.0), "side": (-23.5, 2.0)}


class Animal:
    """A mouse silhouette of one view and colour.

    Parameters
    ----------
    view
        ``"top"`` (place preference) or ``"side"`` (burrowing).
    px_per_mm
        Scale of the frame.
    """

    def __init__(
        self,
        view: Literal["top", "side"],
        px_per_mm: float,
        color: tuple[float, float, float] = (34.0, 31.0, 33.0),
        tail_color: tuple[float, float, float] = (120.0, 104.0, 104.0),
    ) -> None:
        self.view = view
        self.ppm = px_per_mm
        self.shapes = _TOP if view == "top" else _SIDE
        self.color = color
        self.tail_color = tail_color
        self.offset = np.asarray(shape_centroid(self.shapes))  # centroid in body coordinates, mm

    def _frame(self, heading_rad: float) -> tuple[np.ndarray, float]:
        """Rotation (body mm -> image px) for a heading; the side view mirrors instead of turning over."""
        c, s = math.cos(heading_rad), math.sin(heading_rad)
        m = np.array([[c, -s], [s, c]]) * self.ppm
        flip = 1.0
        if self.view == "side" and c < 0:
            flip = -1.0  # facing left: mirror the v axis so the back stays up
        return m @ np.diag([1.0, flip]), flip

    def to_image(self, centroid_px: np.ndarray, heading_rad: float, uv: tuple[float, float]) -> np.ndarray:
        """Image position of body point ``uv`` (mm) for an animal whose centroid is at ``centroid_px``."""
        m, _ = self._frame(heading_rad)
        return np.asarray(centroid_px, float) + m @ (np.asarray(uv, float) - self.offset)

    def keypoints(self, centroid_px: np.ndarray, heading_rad: float) -> np.ndarray:
        """``(3, 2)`` positions of snout, centroid, tailbase."""
        return np.array(
            [
                self.to_image(centroid_px, heading_rad, _SNOUT[self.view]),
                np.asarray(centroid_px, float),
                self.to_image(centroid_px, heading_rad, _TAILBASE[self.view]),
            ]
        )

    def paint(self, img: np.ndarray, centroid_px: np.ndarray, heading_rad: float, tail_bend: float = 0.0) -> None:
        """Paint the tail (thin, lighter) then the body."""
        m, flip = self._frame(heading_rad)
        tail = [np.asarray(_TAILBASE[self.view])]
        for k in range(1, 6):  # a gently bending tail, 60 mm
            ang = math.pi + tail_bend * k / 5
            droop = 0.12 if self.view == "side" else 0.0
            tail.append(tail[-1] + 12.0 * np.array([math.cos(ang), math.sin(ang) + droop]))
        pts = [self.to_image(centroid_px, heading_rad, tuple(q)) for q in tail]
        for k, (q0, q1) in enumerate(itertools.pairwise(pts)):
            paint_capsule(img, q0, q1, max(2.6 - 0.35 * k, 0.9) * self.ppm, self.tail_color)
        base_deg = math.degrees(math.atan2(m[1, 0], m[0, 0]))
        for u, v, a, b, ang in self.shapes:
            centre = self.to_image(centroid_px, heading_rad, (u, v))
            paint_ellipse(img, centre, (a * self.ppm, b * self.ppm), base_deg + flip * ang, self.color)
