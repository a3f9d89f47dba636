"""Zones of a place-preference (or open-field) rig: named polygons drawn once per rig, in a YAML file.

A zones file::

    name: two_chamber_rig_3
    frame_size_px: [640, 480]      # optional: the frame (or the session's roi) the polygons were drawn on
    zones:                         # name -> polygon [[x, y], ...] in pixels (>= 3 vertices)
      left: [[20, 40], [318, 40], [318, 440], [20, 440]]
      right: [[322, 40], [620, 40], [620, 440], [322, 440]]
    chambers: [left, right]        # optional: the two compared chambers (default: the zones, when two)

Coordinates follow the project's convention (the centre of the top-left pixel is ``(0, 0)``) and are
relative to the session's ``roi`` when it has one, so one file serves every chamber of a multi-chamber
rig. Zones must not overlap (a body centre falls in one zone or in none) and must lie inside the frame;
a point on an edge shared by two zones goes to the first zone listed. Zone names become measure names
(``time_in_left_s``), so they are lower-case letters, digits and ``_``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pose_models.config import parse_yaml

__all__ = ["OUTSIDE", "RESERVED_ZONE_NAMES", "UNTRACKED", "ZoneError", "Zones", "load_zones", "zone_labels"]

#: Label of a body centre in no zone, and of a frame without a body centre.
OUTSIDE = -1
UNTRACKED = -2
#: Names a zone may not take: they name the paired / unpaired aliases and the no-zone time in measures.
RESERVED_ZONE_NAMES = ("paired", "unpaired", "outside", "untracked", "zones")
ZONE_NAME_PATTERN = r"[a-z][a-z0-9_]{0,31}"
#: Overlap (px^2) two zones may share before they count as overlapping (sampling of shared edges).
MAX_OVERLAP_PX2 = 1.0


class ZoneError(ValueError):
    """A zones file that cannot be used: unreadable, a bad polygon, overlapping zones, outside the frame."""


class _ZonesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""
    frame_size_px: tuple[int, int] | None = Field(None, description="width, height the zones were drawn on")
    zones: dict[str, list[tuple[float, float]]]
    chambers: list[str] | None = None


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


@dataclass(frozen=True)
class Zones:
    """Named, validated polygons (pixels) and the two chambers a preference compares.

    Use :func:`load_zones` (or :meth:`from_mapping`) to build one; :meth:`check_frame` checks them
    against a frame and :meth:`shifted` moves them into full-frame pixels of a session's roi.
    """

    names: tuple[str, ...]
    polygons: tuple[np.ndarray, ...]
    chambers: tuple[str, str]
    name: str = ""
    frame_size_px: tuple[int, int] | None = None
    source: str = ""

    @classmethod
    def from_mapping(cls, data: Any, source: str = "zones") -> Zones:
        """Validate a parsed zones file (see the module docstring).

        Raises
        ------
        ZoneError
            For an unknown key, a zone name that cannot name a measure, a polygon with fewer than 3
            vertices, a non-finite vertex, no area, overlapping zones, or chambers that are not two zones.
        """
        try:
            f = _ZonesFile.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "file"
            raise ZoneError(f"{source}: {where}: {err['msg']}") from exc
        if len(f.zones) < 2:
            raise ZoneError(f"{source}: expected at least 2 zones (two chambers), got {len(f.zones)}")
        names, polys = [], []
        for name, vertices in f.zones.items():
            if not re.fullmatch(ZONE_NAME_PATTERN, name) or name in RESERVED_ZONE_NAMES:
                raise ZoneError(
                    f"{source}: expected zone names of lower-case letters, digits and _ (not "
                    f"{', '.join(RESERVED_ZONE_NAMES)}), got {name!r}"
                )
            poly = np.asarray(vertices, dtype=float).reshape(-1, 2)
            if len(poly) < 3:
                raise ZoneError(f"{source}: zone {name!r}: expected a polygon of >= 3 vertices, got {len(poly)}")
            bad = np.flatnonzero(~np.isfinite(poly).all(axis=1))
            if bad.size:
                raise ZoneError(
                    f"{source}: zone {name!r}: expected finite x, y at every vertex, got {poly[bad[0]].tolist()} "
                    f"at vertex {int(bad[0])}"
                )
            if abs(_area(poly)) < 1.0:
                raise ZoneError(
                    f"{source}: zone {name!r}: expected a polygon with an area, got {abs(_area(poly)):.2g} px^2"
                )
            names.append(name)
            polys.append(poly)
        if f.chambers is None:
            if len(names) != 2:
                raise ZoneError(
                    f"{source}: expected 'chambers: [a, b]' naming the two compared chambers among {names}, got none"
                )
            chambers = (names[0], names[1])
        else:
            unknown = [c for c in f.chambers if c not in names]
            if len(f.chambers) != 2 or len(set(f.chambers)) != 2 or unknown:
                raise ZoneError(f"{source}: expected chambers to be two different zones of {names}, got {f.chambers}")
            chambers = (f.chambers[0], f.chambers[1])
        zones = cls(tuple(names), tuple(polys), chambers, f.name, f.frame_size_px, source)
        zones._check_overlap()
        if f.frame_size_px is not None:
            zones.check_frame(*f.frame_size_px, what="the frame_size_px of the zones file")
        return zones

    def _check_overlap(self) -> None:
        from matplotlib.path import Path as MplPath

        step = 0.25  # sample spacing (px); samples sit between the lines of a whole or quarter pixel grid
        for i in range(len(self.names)):
            for j in range(i + 1, len(self.names)):
                a, b = self.polygons[i], self.polygons[j]
                lo = np.maximum(a.min(axis=0), b.min(axis=0))
                hi = np.minimum(a.max(axis=0), b.max(axis=0))
                if (hi <= lo).any():
                    continue
                xs = np.arange(math.floor(lo[0]), math.ceil(hi[0]), step) + step / 2
                ys = np.arange(math.floor(lo[1]), math.ceil(hi[1]), step) + step / 2
                gx, gy = np.meshgrid(xs, ys)
                pts = np.column_stack([gx.ravel(), gy.ravel()])
                both = MplPath(a).contains_points(pts) & MplPath(b).contains_points(pts)
                overlap = float(both.sum()) * step * step
                if overlap > MAX_OVERLAP_PX2:
                    raise ZoneError(
                        f"{self.source}: zones {self.names[i]!r} and {self.names[j]!r} overlap by {overlap:.0f} px^2, "
                        "expected zones that do not overlap (a body centre must fall in one zone)"
                    )

    def check_frame(self, width: int, height: int, what: str = "the frame") -> None:
        """Raise :class:`ZoneError` unless every vertex lies inside a ``width`` x ``height`` frame."""
        for name, poly in zip(self.names, self.polygons, strict=True):
            out = (poly[:, 0] < -0.5) | (poly[:, 0] > width) | (poly[:, 1] < -0.5) | (poly[:, 1] > height)
            if out.any():
                k = int(np.flatnonzero(out)[0])
                raise ZoneError(
                    f"{self.source}: zone {name!r}: expected vertices inside {what} ({width}x{height} px), "
                    f"got {poly[k].tolist()} at vertex {k}"
                )

    def shifted(self, dx: float, dy: float) -> Zones:
        """The zones moved by ``(dx, dy)`` pixels (from a session's roi into full-frame pixels)."""
        polys = tuple(p + np.array([dx, dy]) for p in self.polygons)
        return Zones(self.names, polys, self.chambers, self.name, self.frame_size_px, self.source)

    def index(self, name: str) -> int:
        """The position of zone ``name``.

        Raises
        ------
        ZoneError
            If there is no such zone (the message lists them).
        """
        if name not in self.names:
            raise ZoneError(f"{self.source}: expected a zone among {list(self.names)}, got {name!r}")
        return self.names.index(name)


def load_zones(name_or_path: str | Path) -> Zones:
    """Read a zones file: a path to a YAML file, or the name of a rig file ``configs/rigs/<name>.yaml``.

    Raises
    ------
    ZoneError
        If the file is missing, not YAML, or its zones are invalid (see :meth:`Zones.from_mapping`).
    """
    from behavior.config import config_dir

    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = config_dir() / "rigs" / f"{name_or_path}.yaml"
    if not p.is_file():
        known = sorted(q.stem for q in (config_dir() / "rigs").glob("*.yaml"))
        raise ZoneError(f"zones file not found: {name_or_path} (expected a .yaml path or a rig among {known})")
    try:
        data = parse_yaml(p.read_text())
    except yaml.YAMLError as exc:
        raise ZoneError(f"{p}: expected YAML, got a parse error: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise ZoneError(f"{p}: expected a YAML mapping with 'zones', got {type(data).__name__}")
    return Zones.from_mapping(data, source=str(p))


def zone_labels(xy_px: np.ndarray, zones: Zones) -> np.ndarray:
    """The zone of each point: its index in ``zones.names``, :data:`OUTSIDE` or :data:`UNTRACKED` (NaN).

    A point in several zones (only possible on a shared edge) goes to the first one listed.
    """
    from matplotlib.path import Path as MplPath

    xy_px = np.asarray(xy_px, dtype=float).reshape(-1, 2)
    labels = np.full(len(xy_px), OUTSIDE, dtype=np.int16)
    known = np.isfinite(xy_px).all(axis=1)
    labels[~known] = UNTRACKED
    pts = xy_px[known]
    free = np.ones(len(pts), bool)
    sub = labels[known]
    for k, poly in enumerate(zones.polygons):
        inside = MplPath(poly).contains_points(pts) & free
        sub[inside] = k
        free &= ~inside
    labels[known] = sub
    return labels
