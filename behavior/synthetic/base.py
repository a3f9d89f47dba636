"""Core of the synthetic rig: the :class:`Clip` record, the simulator registry, file writing.

A *simulator* turns a parameter dataclass and a :class:`numpy.random.Generator` into a :class:`Clip`:
rendered frames, the ground-truth Poses, the Session (with its stimulus events) and an assay-specific
``truth`` dict. Simulators register under an assay name with
:func:`register_simulator`; :func:`simulate_clip` looks them up, validates parameters and seeds the
generator, so the same seed always gives identical frames and truth.

Conventions shared by every simulator
-------------------------------------
- Pixel coordinates put the centre of the top-left pixel at ``(0, 0)``; ``x`` grows to the right and
  ``y`` downwards. Keypoints are exact (no label noise): they are the values the renderer drew from.
- Frame ``i`` is at time ``i / fps`` seconds. Event times are frame times (``frame / fps``), so an
  event and the first frame that shows it coincide exactly.
- Bottom-up views are mirror images (camera under the floor): the animal's left appears where, seen
  from above, its right would be.
- ``truth`` holds plain JSON values; units are in the key names; infinite or undefined values are
  ``None`` with an explicit flag beside them (e.g. ``censored``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import numpy as np
import xarray as xr
from pydantic import ValidationError

from behavior.assays import is_assay_name
from behavior.session import Event, Session, write_session_sidecar
from pose_models.poses import from_numpy

__all__ = [
    "SIMULATORS",
    "SIMULATOR_PARAMS",
    "SOURCE_SOFTWARE",
    "Clip",
    "default_params",
    "make_clip",
    "make_params",
    "register_simulator",
    "simulate",
    "simulate_clip",
    "to_jsonable",
    "write_clip",
]

SOURCE_SOFTWARE = "painbattery.synthetic"

#: Session fields a caller may set through ``session_fields`` (the others follow from the simulation).
SESSION_FIELDS = ("session_id", "animal_id", "group", "timepoint", "side", "model")

#: x264 quality of written clips: 23 keeps the files small (the frames carry sensor noise) while
#: every measurement the tests make on decoded frames stays within its stated tolerance.
DEFAULT_CRF = 23


@dataclass
class Clip:
    """One simulated recording with its exact ground truth.

    Attributes
    ----------
    name
        File stem used by :func:`write_clip`.
    frames
        ``(n_frames, height, width, 3)`` uint8 RGB.
    poses
        Ground-truth Poses (``fps`` set; one individual).
    session
        Session metadata: assay, fps, px_per_mm, side, events (stimulus onsets ...), group, animal,
        timepoint. ``video`` and ``pose`` name the files :func:`write_clip` writes.
    truth
        Assay-specific ground truth in plain JSON values, units in the key names.
    video_fps
        Frame rate written into the MP4 when it differs from ``session.fps`` (time-lapse clips such
        as burrowing play back faster than they were "recorded"); ``None`` means ``session.fps``.
    """

    name: str
    frames: np.ndarray
    poses: xr.Dataset
    session: Session
    truth: dict[str, Any]
    video_fps: float | None = None

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.frames.shape[0])

    @property
    def playback_fps(self) -> float:
        """Frame rate of the written MP4."""
        return float(self.video_fps if self.video_fps is not None else self.session.fps)


#: Simulators by assay name; each is called as ``fn(params, rng) -> Clip``.
SIMULATORS: dict[str, Callable[..., Clip]] = {}
#: The parameter dataclass of each simulator.
SIMULATOR_PARAMS: dict[str, type] = {}

F = TypeVar("F", bound=Callable[..., Clip])


def register_simulator(assay: str, params: type | None = None) -> Callable[[F], F]:
    """Register a simulator for ``assay`` (a decorator).

    Parameters
    ----------
    assay
        An assay name (the rig may simulate an assay before its extractor is registered).
    params
        The simulator's parameter dataclass. Defaults to the type annotation of the function's
        ``params`` argument.

    The decorated function is called as ``fn(params, rng)`` and returns a :class:`Clip`.
    """
    if not is_assay_name(assay):
        raise ValueError(f"expected an assay name of lower-case letters, digits and _, got {assay!r}")

    def decorate(fn: F) -> F:
        cls = params if params is not None else get_type_hints(fn).get("params")
        if cls is None or not dataclasses.is_dataclass(cls):
            raise TypeError(f"expected a parameter dataclass for simulator {assay!r}, got {cls!r}")
        old = SIMULATORS.get(assay)
        if old is not None and (old.__module__, old.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"a simulator for {assay!r} is already registered ({old.__qualname__})")
        SIMULATORS[assay] = fn
        SIMULATOR_PARAMS[assay] = cls
        return fn

    return decorate


def _lookup(assay: str) -> tuple[Callable[..., Clip], type]:
    if assay not in SIMULATORS:
        raise ValueError(f"unknown assay {assay!r} for the synthetic rig, expected one of {sorted(SIMULATORS)}")
    return SIMULATORS[assay], SIMULATOR_PARAMS[assay]


def make_params(assay: str, params: Mapping[str, Any] | None = None) -> Any:
    """Build the validated parameter dataclass of ``assay`` from keyword overrides.

    Raises
    ------
    ValueError
        For an unknown assay or parameter (the message lists the known names), or a value out of range.
    """
    _, cls = _lookup(assay)
    params = dict(params or {})
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for assay {assay!r}, expected from {known}")
    return cls(**params)


def default_params(assay: str) -> dict[str, Any]:
    """The default parameters of ``assay``'s simulator, as a plain dict."""
    return to_jsonable(dataclasses.asdict(make_params(assay)))


def simulate_clip(
    assay: str,
    *,
    seed: int | Sequence[int] = 0,
    name: str | None = None,
    session_fields: Mapping[str, Any] | None = None,
    **params: Any,
) -> Clip:
    """Simulate one clip of ``assay``.

    Parameters
    ----------
    assay
        A registered assay (``sorted(SIMULATORS)``).
    seed
        Seed of the random generator (an int or a sequence of ints); same seed, same clip.
    name
        File stem and default session id; defaults to ``"<assay>_seed<seed>"``.
    session_fields
        Session fields to set: any of ``session_id, animal_id, group, timepoint, side, model``.
    **params
        Simulator parameters (see the assay's parameter dataclass, e.g. :class:`GaitParams`).

    Raises
    ------
    ValueError
        For an unknown assay, parameter or session field, or an invalid value.
    """
    fn, _ = _lookup(assay)
    p = make_params(assay, params)
    rng = np.random.default_rng(seed)
    clip = fn(p, rng)
    if name is None:
        seed_text = "-".join(str(s) for s in seed) if isinstance(seed, Sequence) else str(seed)
        name = f"{assay}_seed{seed_text}"
    return _rename(clip, name, session_fields)


def _rename(clip: Clip, name: str, session_fields: Mapping[str, Any] | None) -> Clip:
    fields = dict(session_fields or {})
    unknown = sorted(set(fields) - set(SESSION_FIELDS))
    if unknown:
        raise ValueError(f"unknown session field(s) {unknown}, expected from {list(SESSION_FIELDS)}")
    data = clip.session.model_dump()
    data.update(session_id=name, video=Path(f"{name}.mp4"), pose=Path(f"{name}.h5"))
    data.update(fields)
    try:
        session = Session.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"invalid session fields {fields}: {exc}") from exc
    return dataclasses.replace(clip, name=name, session=session)


def make_clip(
    *,
    assay: str,
    frames: np.ndarray,
    positions_px: np.ndarray,
    keypoints: Sequence[str],
    skeleton: Sequence[tuple[str, str]],
    fps: float,
    px_per_mm: float,
    truth: dict[str, Any],
    events: Sequence[Event] = (),
    side: str | None = None,
    confidence: np.ndarray | None = None,
    video_fps: float | None = None,
    roi: Sequence[int] | None = None,
) -> Clip:
    """Assemble a :class:`Clip` from a simulator's arrays (used by every simulator).

    Parameters
    ----------
    positions_px
        ``(n_frames, n_keypoints, 2)`` ground-truth positions in pixels.
    confidence
        ``(n_frames, n_keypoints)``; defaults to 1 (visible).
    roi
        The session's region of the video, ``(x, y, w, h)`` (e.g. the tube a burrowing rig films).
    """
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    positions_px = np.asarray(positions_px, dtype=np.float64)
    n = frames.shape[0]
    if positions_px.shape != (n, len(keypoints), 2):
        raise ValueError(f"expected positions of shape {(n, len(keypoints), 2)}, got {positions_px.shape}")
    conf = None if confidence is None else np.asarray(confidence, dtype=np.float64)[:, :, None]
    poses = from_numpy(
        positions_px.transpose(0, 2, 1)[..., None],
        conf,
        keypoint_names=list(keypoints),
        fps=fps,
        source_software=SOURCE_SOFTWARE,
        skeleton=[list(e) for e in skeleton],
    )
    name = f"{assay}_synthetic"
    session = Session(
        session_id=name,
        animal_id="synthetic",
        group="synthetic",
        timepoint="baseline",
        assay=assay,
        side=side,
        fps=fps,
        px_per_mm=px_per_mm,
        video=Path(f"{name}.mp4"),
        pose=Path(f"{name}.h5"),
        events=sorted(events, key=lambda e: e.time_s),
        roi=tuple(int(v) for v in roi) if roi is not None else None,
    )
    truth = to_jsonable(
        {
            "assay": assay,
            "fps": fps,
            "px_per_mm": px_per_mm,
            "n_frames": n,
            "frame_height_px": frames.shape[1],
            "frame_width_px": frames.shape[2],
            **truth,
        }
    )
    return Clip(name=name, frames=frames, poses=poses, session=session, truth=truth, video_fps=video_fps)


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and paths to plain JSON values; non-finite floats to None."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


# ------------------------------------------------------------------------------------------- files


def write_clip(clip: Clip, out_dir: str | Path, *, crf: int = DEFAULT_CRF, video: bool = True) -> dict[str, Path]:
    """Write a clip as the four files a rig would produce.

    ``<stem>.mp4`` (H.264), ``<stem>.h5`` (DeepLabCut layout), ``<stem>.json`` (session sidecar whose
    ``video`` and ``pose`` point at the two files, relative) and ``<stem>.truth.json``.

    Parameters
    ----------
    video
        False: no ``.mp4`` (a session scored from its pose file only; encoding is most of a clip's
        writing time), and the sidecar names no video.

    Returns
    -------
    dict
        Paths under the keys ``video`` (only when written), ``pose``, ``sidecar``, ``truth``.
    """
    from behavior.video import write_video
    from pose_models.io import save_poses  # imported here: the I/O layer is optional for in-memory use

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = clip.name
    paths = {
        "video": out_dir / f"{stem}.mp4",
        "pose": out_dir / f"{stem}.h5",
        "sidecar": out_dir / f"{stem}.json",
        "truth": out_dir / f"{stem}.truth.json",
    }
    if video:
        write_video(paths["video"], clip.frames, clip.playback_fps, crf=crf)
    else:
        del paths["video"]
    save_poses(clip.poses, paths["pose"])
    session = clip.session.model_copy(update={"video": paths.get("video"), "pose": paths["pose"]})
    write_session_sidecar(session, paths["sidecar"])
    paths["truth"].write_text(json.dumps(clip.truth, indent=1) + "\n")
    return paths


def simulate(
    assay: str,
    out_dir: str | Path,
    *,
    n_clips: int = 1,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    **params: Any,
) -> list[Path]:
    """Simulate ``n_clips`` clips of ``assay`` and write them to ``out_dir``.

    Clip ``i`` is seeded with ``(seed, i)`` and named ``<assay>_s<seed>_<i>``.

    Parameters
    ----------
    progress
        Called as ``progress(done, total)`` after each clip.

    Returns
    -------
    list of Path
        The session sidecars.
    """
    if n_clips < 1:
        raise ValueError(f"expected n_clips >= 1, got {n_clips}")
    make_params(assay, params)  # fail before writing anything
    sidecars = []
    for i in range(n_clips):
        clip = simulate_clip(assay, seed=(seed, i), name=f"{assay}_s{seed}_{i:03d}", **params)
        sidecars.append(write_clip(clip, out_dir)["sidecar"])
        if progress is not None:
            progress(i + 1, n_clips)
    return sidecars
