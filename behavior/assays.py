"""The assay registry: every assay is a plug-in that registers one :class:`AssaySpec`.

A spec says everything the spine needs to run an assay without naming it: its name and battery domain
(written here once), its strict config model and file, what it needs from a session (poses and which
keypoints, the video, events), its extractor, the measures it produces (with units), and optionally
what it adds to the methods text and to the study report. The orchestrator
(:func:`behavior.pipeline.run_session`), batch scoring, the service and the report read this registry.

Built-in assays live in ``behavior.features`` and register on import. A lab's own assay registers the
same way from its own module, named in ``PAINBATTERY_ASSAY_MODULES`` (comma separated) or under the
``painbattery.assays`` entry-point group, so batch scoring, the service worker and the watch folder
load it in every process they start.

>>> spec = get_assay("hargreaves")
>>> spec.domain, [m.name for m in spec.measures][:2]
('evoked', ['latency_{side}_s', 'latency_ipsi_minus_contra_s'])
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from behavior.features.base import AssayResult
    from behavior.session import Session

__all__ = [
    "ASSAY_MODULES_ENV",
    "ASSAY_NAME_PATTERN",
    "DOMAINS",
    "AssayConfigError",
    "AssaySpec",
    "MeasureSpec",
    "ReportContext",
    "ReportItem",
    "UnknownAssayError",
    "assay_names",
    "check_overrides",
    "get_assay",
    "is_assay_name",
    "register_assay",
    "registered_assays",
]

Domain = Literal["evoked", "spontaneous", "affective"]
DOMAINS: tuple[str, ...] = ("evoked", "spontaneous", "affective")
ASSAY_MODULES_ENV = "PAINBATTERY_ASSAY_MODULES"
ENTRY_POINT_GROUP = "painbattery.assays"
#: What an assay may be called (sessions, manifests, the synthetic rig and specs all check this one).
ASSAY_NAME_PATTERN = r"[a-z][a-z0-9_]{0,63}"


def is_assay_name(name: str) -> bool:
    """Whether ``name`` has the form of an assay name (lower-case letters, digits, ``_``; at most 64)."""
    return re.fullmatch(ASSAY_NAME_PATTERN, name) is not None


class UnknownAssayError(ValueError):
    """An assay name no module registered; the message lists the registered ones."""


class AssayConfigError(ValueError):
    """An assay config with an unknown key (a typo) or an invalid value; the message names it."""


@dataclass(frozen=True)
class MeasureSpec:
    """A measure an assay produces: its name (``{side}`` stands for left/right/ipsi/contra), unit, meaning."""

    name: str
    unit: str
    description: str = ""


@dataclass(frozen=True)
class ReportItem:
    """Something an assay adds to the study report, placed in its domain's section.

    A figure (``png_base64``) or a table (``columns`` and ``rows`` of plain values, escaped when the
    report is rendered).
    """

    title: str
    png_base64: str | None = None
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()
    caption: str = ""


@dataclass(frozen=True)
class ReportContext:
    """What an assay's report hook gets: the study's tables and where per-session tables were written."""

    measures: pd.DataFrame
    quality: pd.DataFrame
    out_dir: Path | None
    group_names: dict[str, str] = field(default_factory=dict)

    def session_table(self, session_id: str, name: str) -> pd.DataFrame | None:
        """A per-session table the extractor returned (``sessions/<id>/<name>.csv``), if it was written."""
        import pandas as pd

        if self.out_dir is None:
            return None
        path = self.out_dir / "sessions" / session_id / f"{name}.csv"
        return pd.read_csv(path) if path.is_file() else None


Extractor = Callable[..., "AssayResult"]


@dataclass(frozen=True)
class AssaySpec:
    """One assay, as the spine sees it.

    Parameters
    ----------
    name
        The assay name sessions use (``hargreaves``); lower case, digits, ``_``.
    domain
        Battery domain: evoked, spontaneous or affective. Written only here.
    config_model
        Strict pydantic model of the assay's config (``extra="forbid"``).
    extract
        ``extract(poses, session, config, *, video=None) -> AssayResult``; ``poses`` is None when the
        assay needs none. It returns its measures, tables and quality figures. An extractor that also
        accepts ``progress=`` gets a callable ``progress(fraction)`` (0-1) when the caller follows progress.
    measures
        The measures it produces (for ``painbattery assays`` and the docs).
    needs_poses
        Whether the session needs poses (a pose file, or a video and a pose model).
    keypoints
        ``keypoints(config) -> names`` the poses must hold (checked before extraction).
    needs_video, needs_events
        Whether the session must name a video / carry events.
    config_file
        The YAML file; default ``configs/assays/<name>.yaml`` of the package. ``None`` values in the
        model's defaults are used when the file does not exist and the model needs nothing more.
    quality_figures
        Names of the quality figures the extractor reports (documentation and report columns).
    methods
        ``methods(config) -> str``: the assay's sentence(s) for the report's methods text.
    report
        ``report(context) -> list[ReportItem]``: figures or tables of its own for the study report.
    poses_optional
        With ``needs_poses`` False: use poses when the session has them (a pose file, or a video and a
        pose model), else the extractor gets ``poses=None`` and works from the video (place preference
        tracks the body centre by background subtraction when there is no pose model).
    pose_frame_step
        ``pose_frame_step(config, fps) -> int``: when poses come from the video through a pose model,
        predict every k-th frame only (an assay that examines a few frames per second); the other frames
        are NaN. None: every frame.
    across_sessions
        ``across_sessions(measures, quality, config) -> DataFrame``: measures that compare sessions of one
        animal (a test against its pre-test), computed once per study after every session is scored, from
        the study's long Measures rows of this assay and its quality rows (None when unknown). Returns
        rows ``session_id, measure, value, unit, n, quality`` (and optionally ``note``: one line saying why
        a value is NaN), each attributed to one of the given sessions. :func:`behavior.pipeline.study_measures`
        runs it; :func:`behavior.pipeline.run_session`, which sees one session, never does.
    labels
        Human labels of its quality figures and trial outcomes, for the report's tables.
    description
        One line for ``painbattery assays``.
    """

    name: str
    domain: Domain
    config_model: type[BaseModel]
    extract: Extractor
    measures: tuple[MeasureSpec, ...] = ()
    needs_poses: bool = True
    keypoints: Callable[[BaseModel], Sequence[str]] | None = None
    needs_video: bool = False
    needs_events: bool = False
    config_file: Path | None = None
    quality_figures: tuple[str, ...] = ()
    methods: Callable[[BaseModel], str] | None = None
    report: Callable[[ReportContext], list[ReportItem]] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    description: str = ""
    poses_optional: bool = False
    across_sessions: Callable[[pd.DataFrame, pd.DataFrame | None, BaseModel], pd.DataFrame] | None = None
    pose_frame_step: Callable[[BaseModel, float | None], int] | None = None

    def frame_step(self, config: BaseModel, fps: float | None) -> int:
        """Frames between two predicted poses of a session (1 unless the assay says otherwise)."""
        return max(1, int(self.pose_frame_step(config, fps))) if self.pose_frame_step is not None else 1

    def __post_init__(self) -> None:
        if not is_assay_name(self.name):
            raise ValueError(f"expected an assay name of lower-case letters, digits and _, got {self.name!r}")
        if self.domain not in DOMAINS:
            raise ValueError(f"assay {self.name}: expected a domain in {DOMAINS}, got {self.domain!r}")

    @property
    def config_path(self) -> Path:
        """Where the assay's YAML config lives."""
        if self.config_file is not None:
            return Path(self.config_file)
        from behavior.config import config_dir

        return config_dir() / "assays" / f"{self.name}.yaml"

    def load_config(self, overrides: Sequence[str] = (), path: str | Path | None = None) -> BaseModel:
        """The assay's config from its YAML file (or ``path``), with dotted ``key=value`` overrides.

        Raises
        ------
        AssayConfigError
            For an unknown key (a typo) or an invalid value, naming the key.
        """
        from behavior.config import apply_overrides, load_config

        source = Path(path) if path is not None else self.config_path
        data: dict[str, Any] = load_config("assays", source) if source.is_file() or path is not None else {}
        data = apply_overrides(data, list(overrides))
        try:
            return self.config_model.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "config"
            raise AssayConfigError(f"{self.name} config: {where}: {err['msg']}") from exc

    def applicable_overrides(self, overrides: Sequence[str]) -> list[str]:
        """The study-wide overrides that concern this assay, ready for :meth:`load_config`.

        ``<assay>.key=value`` concerns only that assay (the prefix is removed); an unprefixed
        ``key=value`` concerns every assay whose config has the top-level ``key``
        (``withdrawal.min_confidence=0.3`` reaches both withdrawal assays, not burrowing).
        """
        names = set(registered_assays())
        out = []
        for item in overrides:
            head = item.partition("=")[0].strip().split(".", 1)
            if len(head) == 2 and head[0] in names:
                if head[0] == self.name:
                    out.append(item.strip().split(".", 1)[1])
            elif head[0] in self.config_model.model_fields:
                out.append(item)
        return out

    def config_text(self) -> str | None:
        """The config file's text (part of the cache key), or None if the assay has no file."""
        try:
            return self.config_path.read_text()
        except OSError:
            return None

    def inputs(self) -> list[str]:
        """What a session of this assay must provide, in words (``painbattery assays``)."""
        out = []
        if self.needs_poses:
            out.append("poses (pose file, or video + pose model)")
        elif self.poses_optional:
            out.append("poses when there are any (pose file, or video + pose model), else the video")
        if self.needs_video:
            out.append("video")
        if self.needs_events:
            out.append("events")
        return out

    def missing_inputs(self, session: Session) -> list[str]:
        """What ``session`` lacks of :meth:`inputs`, in words (empty when it has everything)."""
        missing = []
        if self.needs_video and session.video is None:
            missing.append("a video")
        if self.needs_poses and session.pose is None and session.video is None:
            missing.append("a pose file (or a video and a pose model)")
        if self.needs_events and not session.events:
            missing.append("events")
        return missing


_REGISTRY: dict[str, AssaySpec] = {}
_LOADED = False
#: Loading imports every assay module (seconds: scipy, sklearn); a thread asking meanwhile waits for
#: the whole registry instead of seeing the part loaded so far (the service's threads on a fresh start).
_LOAD_LOCK = threading.Lock()
_LOADING_THREAD: int | None = None


def register_assay(spec: AssaySpec) -> AssaySpec:
    """Register an assay (called by its module at import). Registering a name twice replaces it."""
    _REGISTRY[spec.name] = spec
    return spec


def _load_plugins() -> None:
    """Import the built-in assay modules, then any named by the environment or by entry points."""
    global _LOADED, _LOADING_THREAD
    if _LOADED or threading.get_ident() == _LOADING_THREAD:  # loaded, or asked again while loading
        return
    with _LOAD_LOCK:
        if _LOADED:
            return
        _LOADING_THREAD = threading.get_ident()
        try:
            importlib.import_module("behavior.features")
            names = [m.strip() for m in os.environ.get(ASSAY_MODULES_ENV, "").split(",") if m.strip()]
            for name in names:
                try:
                    importlib.import_module(name)
                except ImportError as exc:
                    raise UnknownAssayError(
                        f"{ASSAY_MODULES_ENV} names module {name!r}, which cannot be imported: {exc}"
                    ) from exc
            from importlib.metadata import entry_points

            for ep in entry_points(group=ENTRY_POINT_GROUP):
                ep.load()
            _LOADED = True
        finally:
            _LOADING_THREAD = None


def registered_assays() -> dict[str, AssaySpec]:
    """Every registered assay by name (built-in and plug-in modules loaded on first call)."""
    _load_plugins()
    return dict(_REGISTRY)


def assay_names() -> list[str]:
    """The registered assay names, sorted."""
    return sorted(registered_assays())


def check_overrides(overrides: Sequence[str], assays: Sequence[str]) -> None:
    """Check a study's config overrides before any work: each reaches an assay of the study and is valid.

    Raises
    ------
    AssayConfigError
        For an override that concerns none of ``assays`` (a typo, or an assay the study does not
        have), or one that makes an assay's config invalid; the message names it.
    """
    specs = [get_assay(a) for a in dict.fromkeys(assays)]
    for item in overrides:
        if not any(spec.applicable_overrides([item]) for spec in specs):
            names = ", ".join(s.name for s in specs)
            raise AssayConfigError(
                f"override {item!r} matches no setting of the study's assays ({names}): "
                f"expected a key of their configs, or <assay>.key=value"
            )
    for spec in specs:
        spec.load_config(spec.applicable_overrides(overrides))


def get_assay(name: str) -> AssaySpec:
    """The spec of a registered assay.

    Raises
    ------
    UnknownAssayError
        If no module registered ``name``; the message lists the registered assays.
    """
    specs = registered_assays()
    if name not in specs:
        raise UnknownAssayError(f"unknown assay {name!r}, expected one of {sorted(specs)}")
    return specs[name]
