"""``painbattery place-preference POSES|VIDEO --zones ZONES.yaml --out DIR``: chamber occupancy of one test.

A pose file gives the body centre from its keypoints; a video (no pose model needed) by background
subtraction. With ``--paired`` the paired / unpaired measures are added, and with ``--pretest`` (the
same animal's pre-test, a pose file or video) the preference score: test minus pre-test time in the
paired chamber.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from behavior.cli.common import _print_frame, console, progress_bar


def register(app: typer.Typer) -> None:
    """Add the ``place-preference`` command to the root app."""
    app.command("place-preference")(place_preference)


def _session_for(path: Path, fps: float | None, px_per_mm: float | None, roi: str | None) -> tuple[Any, Any]:
    """A session of the file (pose file or video) and its poses (None for a video)."""
    from behavior.session import Session
    from pose_models.video import VIDEO_SUFFIXES, probe_video

    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    sid = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem)[:128].lstrip("._-") or "session"
    fields: dict[str, Any] = {
        "session_id": sid,
        "animal_id": "cli",
        "group": "cli",
        "timepoint": "test",
        "assay": "place_preference",
        "px_per_mm": px_per_mm,
        "roi": roi,
    }
    if path.suffix.lower() in VIDEO_SUFFIXES:
        info = probe_video(path)
        return Session(**fields, fps=fps or info.fps, video=path), None
    from pose_models.io import load_poses

    poses = load_poses(path, fps=fps)
    got = poses.attrs.get("fps")
    if not got:
        raise ValueError(f"{path}: expected a frame rate (--fps) for a pose file that stores none, got none")
    return Session(**fields, fps=float(got), pose=path), poses


def _score_one(path: Path, args: dict[str, Any], zones: Any, config: Any, paired: str | None, label: str) -> Any:
    from behavior.features.place_preference import body_track, score_body_track, session_zones

    session, poses = _session_for(path, args["fps"], args["px_per_mm"], args["roi"])
    z = session_zones(session, config, zones, session.video)
    if paired is not None:
        z.index(paired)
        if paired not in z.chambers:
            raise ValueError(f"--paired: expected one of the chambers {list(z.chambers)}, got {paired!r}")
    unpaired = None if paired is None else (z.chambers[1] if paired == z.chambers[0] else z.chambers[0])
    with progress_bar() as bar:
        task = bar.add_task(f"tracking {label}", total=100)
        track = body_track(
            poses, session, config, video=session.video, progress=lambda f: bar.update(task, completed=round(100 * f))
        )
    return score_body_track(track, z, paired, unpaired, config, px_per_mm=session.px_per_mm)


def place_preference(
    source: Annotated[Path, typer.Argument(help="Pose file (body keypoints) or video (background subtraction).")],
    zones: Annotated[Path, typer.Option("--zones", help="Zones YAML: named chamber polygons in pixels.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder for frames.csv, visits.csv, measures.csv.")],
    paired: Annotated[str | None, typer.Option("--paired", help="The paired chamber (a zone name).")] = None,
    pretest: Annotated[
        Path | None, typer.Option("--pretest", help="The same animal's pre-test (pose file or video): adds the score.")
    ] = None,
    fps: Annotated[float | None, typer.Option("--fps", help="Frame rate (pose files that store none).")] = None,
    px_per_mm: Annotated[float | None, typer.Option("--px-per-mm", help="Scale: distance in mm.")] = None,
    roi: Annotated[str | None, typer.Option("--roi", help="Region x,y,w,h of the video the zones are in.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Place-preference config override key=value.")] = None,
) -> None:
    """Time in each zone, entries, latency, distance; with --paired and --pretest, the preference score."""
    import pandas as pd

    from behavior.assays import get_assay
    from behavior.features.place_preference import load_zones
    from behavior.features.place_preference.pairing import preference_score
    from behavior.provenance import write_provenance

    if pretest is not None and paired is None:
        raise ValueError("--pretest: expected --paired naming the paired chamber, got none")
    config = get_assay("place_preference").load_config(list(set_ or []))
    z = load_zones(zones)
    args = {"fps": fps, "px_per_mm": px_per_mm, "roi": roi}
    result = _score_one(source, args, z, config, paired, source.name)
    out.mkdir(parents=True, exist_ok=True)
    outputs = []
    measures = result.measures_frame()
    tables = {"frames": result.tables["place_preference_frames"], "visits": result.tables["place_preference_visits"]}
    quality = [{"input": str(source), **result.quality}]
    if pretest is not None:
        pre = _score_one(pretest, args, z, config, paired, f"pre-test {pretest.name}")
        figures = {}
        for name, res in (("test", result), ("pretest", pre)):
            values = {m.measure: m.value for m in res.measures}
            figures[name] = {**values, "duration_s": res.quality["duration_s"]}
        rows = [
            {"measure": m, "value": v, "unit": u, "n": 2, "quality": q}
            for m, v, u, q in preference_score(
                figures["test"], figures["pretest"], duration_tolerance_s=config.duration_tolerance_s
            )
        ]
        measures = pd.concat([measures, pd.DataFrame(rows)], ignore_index=True)
        tables["pretest_frames"] = pre.tables["place_preference_frames"]
        tables["pretest_visits"] = pre.tables["place_preference_visits"]
        pre_measures = pre.measures_frame()
        pre_measures.to_csv(out / "pretest_measures.csv", index=False)
        outputs.append(out / "pretest_measures.csv")
        quality.append({"input": str(pretest), **pre.quality})
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
        outputs.append(out / f"{name}.csv")
    measures.to_csv(out / "measures.csv", index=False)
    pd.DataFrame(quality).to_csv(out / "quality.csv", index=False)
    outputs += [out / "measures.csv", out / "quality.csv"]
    write_provenance(
        out,
        command="place-preference",
        config={**config.model_dump(mode="json"), "zones_file": str(zones), "paired": paired},
        inputs=[p for p in (source, pretest, zones) if p is not None],
        outputs=outputs,
    )
    _print_frame(measures[["measure", "value", "unit", "n", "quality"]], f"place preference: {source.name}")
    q = result.quality
    sampling = f"every {q['tracking_step_frames']} frame(s), {q['tracking_fps']:g} per s"
    console.print(
        f"body centre from {q['tracking_source'].replace('_', ' ')} ({sampling}); {q['samples_untracked']} of "
        f"{q['samples']} tracked frames without a body centre; {q['flicker_runs_absorbed']} flicker episode(s) "
        f"not counted as visits; wrote {out}"
    )
    if paired is None:
        console.print("no --paired chamber: per-zone measures only (no paired / unpaired measures or score)")
