"""Pose file interop: a registry of loaders and savers chosen by file suffix and content.

>>> ds = load_poses("video1DLC_resnet50.h5", fps=30)     # DeepLabCut
>>> save_poses(ds, "video1.slp")                         # SLEAP
>>> save_poses(ds, "video1.nc")                          # our own netCDF

Each format module registers itself with :func:`register_format`; nothing dispatches by an if/elif
chain. Where two formats share a suffix (a DeepLabCut ``.h5`` and a SLEAP ``.analysis.h5``), the
longest matching suffix wins and a *sniffer* that looks inside the file settles the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from pose_models.poses import append_log, validate_poses

__all__ = [
    "PoseFileError",
    "PoseFormat",
    "detect_format",
    "formats",
    "load_poses",
    "register_format",
    "save_poses",
]


class PoseFileError(ValueError):
    """A pose file cannot be read or written: wrong format, empty, or inconsistent."""


Loader = Callable[..., xr.Dataset]
Saver = Callable[[xr.Dataset, Path], None]
Sniffer = Callable[[Path], bool]


@dataclass(frozen=True)
class PoseFormat:
    """One registered pose file format."""

    name: str
    suffixes: tuple[str, ...]
    description: str
    load: Loader | None = None
    save: Saver | None = None
    sniff: Sniffer | None = None

    def matching_suffix(self, path: Path) -> str | None:
        """The longest of this format's suffixes that ``path`` ends with, if any."""
        name = path.name.lower()
        hits = [s for s in self.suffixes if name.endswith(s)]
        return max(hits, key=len) if hits else None


_REGISTRY: dict[str, PoseFormat] = {}


def register_format(
    name: str,
    suffixes: tuple[str, ...],
    description: str,
    *,
    load: Loader | None = None,
    save: Saver | None = None,
    sniff: Sniffer | None = None,
) -> PoseFormat:
    """Register a pose file format (called by each format module at import)."""
    fmt = PoseFormat(name, tuple(s.lower() for s in suffixes), description, load, save, sniff)
    _REGISTRY[name] = fmt
    return fmt


def formats() -> list[PoseFormat]:
    """All registered formats."""
    return list(_REGISTRY.values())


def _candidates(path: Path) -> list[tuple[str, PoseFormat]]:
    hits = [(s, f) for f in _REGISTRY.values() if (s := f.matching_suffix(path)) is not None]
    return sorted(hits, key=lambda h: -len(h[0]))


def _known_suffixes() -> str:
    return ", ".join(sorted({s for f in _REGISTRY.values() for s in f.suffixes}))


def detect_format(path: str | Path, *, for_writing: bool = False) -> PoseFormat:
    """Pick the format of ``path`` from its suffix and, for reading, its content.

    Raises
    ------
    PoseFileError
        If no registered format takes this suffix, or the content matches none of them.
    """
    path = Path(path)
    candidates = _candidates(path)
    if for_writing:
        candidates = [(s, f) for s, f in candidates if f.save is not None]
    else:
        candidates = [(s, f) for s, f in candidates if f.load is not None]
    if not candidates:
        raise PoseFileError(
            f"{path}: expected a pose file ending in one of {_known_suffixes()}, got {path.suffix or 'no suffix'!r}"
        )
    if for_writing:
        return candidates[0][1]
    # A more specific suffix (".analysis.h5") is tried before a general one (".h5"); a sniffer may
    # reject a file whose content is not its format, and then the next candidate is tried.
    for _, fmt in candidates:
        if fmt.sniff is None or fmt.sniff(path):
            return fmt
    names = " or ".join(f.description for _, f in candidates)
    raise PoseFileError(f"{path}: expected {names}, got a file whose content matches none of them")


def load_poses(path: str | Path, *, fps: float | None = None, format: str | None = None) -> xr.Dataset:
    """Read a pose file into a Poses dataset.

    Parameters
    ----------
    path
        A DeepLabCut ``.h5``/``.csv`` (predictions or labelled data), SLEAP ``.slp``/``.pkg.slp``/
        ``.analysis.h5``, NWB ``.nwb`` (ndx-pose) or painbattery ``.nc`` file.
    fps
        Frame rate, for formats that do not store it (DeepLabCut). Overrides a stored one.
    format
        Force a registered format by name instead of detecting it.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    PoseFileError
        If the format is unknown, the file is malformed, or it holds no frames.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"pose file not found: {path}")
    if path.is_dir():
        raise PoseFileError(f"{path}: expected a pose file, got a directory")
    if path.stat().st_size == 0:
        raise PoseFileError(f"{path}: file is empty (0 bytes)")
    fmt = _REGISTRY[format] if format else detect_format(path)
    if fmt.load is None:
        raise PoseFileError(f"{path}: format {fmt.name} cannot be read")
    try:
        ds = fmt.load(path, fps=fps)
    except (PoseFileError, FileNotFoundError):
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError) as exc:
        # Libraries raise all sorts for a malformed or hostile file (RecursionError for JSON nested
        # 30,000 deep, AttributeError for a value of the wrong type); report it as the file's fault, once.
        raise PoseFileError(f"{path}: cannot be read as {fmt.description}: {exc}") from exc
    validate_poses(ds)
    if ds.sizes["time"] == 0:
        raise PoseFileError(f"{path}: holds no frames ({fmt.description} with 0 rows)")
    return append_log(ds, "load_poses", path=str(path), format=fmt.name)


def save_poses(ds: xr.Dataset, path: str | Path, *, format: str | None = None) -> Path:
    """Write a Poses dataset; the format follows the suffix of ``path`` unless ``format`` is given.

    The file is written under a temporary name in the same folder and renamed when complete, so a
    failure never leaves a half-written file under the final name.
    """
    validate_poses(ds)
    path = Path(path)
    fmt = _REGISTRY[format] if format else detect_format(path, for_writing=True)
    if fmt.save is None:
        raise PoseFileError(f"{path}: format {fmt.name} cannot be written")
    if not path.parent.exists():
        raise FileNotFoundError(f"output folder not found: {path.parent}")
    suffix = fmt.matching_suffix(path) or path.suffix
    tmp = path.with_name(f".{path.name[: -len(suffix)]}.partial{suffix}")
    try:
        fmt.save(ds, tmp)
        tmp.replace(path)
    except PoseFileError as exc:
        raise PoseFileError(f"{path}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


# Format modules register themselves on import.
from pose_models.io import dlc, netcdf, nwb, sleap  # noqa: E402, F401
