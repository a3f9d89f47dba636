"""``painbattery behaviours ...``: train a behaviour classifier on a lab's annotations, apply it to poses.

``train POSES... --labels LABELS... --fps F --out MODEL_DIR``: one annotation file per pose file (bout CSV
``behavior,start_frame,stop_frame`` 0-based inclusive, a per-frame label column, or a BORIS export);
cross-validated by animal (``--animal`` per pose file; each file its own animal by default), blocked in
time with one animal. ``apply MODEL_DIR POSES... --out DIR`` writes ``frames.csv`` (``frame``, ``behavior``
with ``none`` where no behaviour, ``p_<behaviour>`` per behaviour), ``bouts.csv`` and ``measures.csv``
(one folder per pose file when several are given).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from behavior.cli.common import _print_frame, console, progress_bar

behaviours_app = typer.Typer(
    help="Behaviour classifiers (licking, flinching, guarding, ...): train on annotations, apply to poses.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``behaviours`` group to the root app."""
    app.add_typer(behaviours_app, name="behaviours")


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@behaviours_app.command("train")
def train(
    poses: Annotated[list[Path], typer.Argument(help="Pose files (DeepLabCut, SLEAP, NWB, netCDF).")],
    labels: Annotated[list[Path], typer.Option("--labels", help="Annotation file per pose file, in order.")],
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    fps: Annotated[float | None, typer.Option("--fps", help="Frame rate of the poses and labels.")] = None,
    animal: Annotated[
        list[str] | None, typer.Option("--animal", help="Animal of each pose file (cross-validation groups).")
    ] = None,
    roles: Annotated[
        str | None, typer.Option("--roles", help="Keypoint roles: name=role pairs (nose=snout,...) or a YAML.")
    ] = None,
    folds: Annotated[int, typer.Option("--folds", help="Cross-validation folds.", min=2)] = 5,
    min_confidence: Annotated[float, typer.Option("--min-confidence", help="Points below become NaN.")] = 0.5,
    subject: Annotated[str | None, typer.Option("--subject", help="BORIS subject to take.")] = None,
    max_iter: Annotated[int, typer.Option("--max-iter", help="Boosting iterations (fewer: faster).", min=1)] = 80,
) -> None:
    """Train and cross-validate a behaviour classifier; save it with its provenance."""
    from behavior.classifiers import (
        BehaviourEstimator,
        FeatureParams,
        labelled_session,
        parse_role_pairs,
        read_annotations,
        resolve_roles,
        save_classifier,
        train_classifier,
    )
    from behavior.classifiers.sessions import poses_fps
    from behavior.provenance import file_sha256
    from pose_models.io import load_poses

    for p in poses:
        if not p.exists():
            raise FileNotFoundError(f"pose file not found: {p}")

    labels = _split([str(p) for p in labels])
    if len(labels) != len(poses):
        raise ValueError(f"--labels: expected one annotation file per pose file ({len(poses)}), got {len(labels)}")
    animals = _split(animal)
    if animals and len(animals) != len(poses):
        raise ValueError(f"--animal: expected one animal per pose file ({len(poses)}), got {len(animals)}")
    if fps is not None and not fps > 0:
        raise ValueError(f"--fps: expected a frame rate > 0, got {fps}")
    mapping = parse_role_pairs(roles)
    params = FeatureParams(min_confidence=min_confidence)
    # read and check every input before the progress bar starts, so bad input stays one line
    loaded = []
    for pose, lab in zip(poses, labels, strict=True):
        if not Path(lab).is_file():
            raise FileNotFoundError(f"annotation file not found: {lab}")
        ds = load_poses(pose, fps=fps)
        rate = poses_fps(ds, fps, source=pose.name)
        per_frame = read_annotations(lab, n_frames=int(ds.sizes["time"]), fps=rate, subject=subject)
        resolve_roles([str(k) for k in ds["keypoints"].values], mapping=mapping, source=pose.name)
        loaded.append((ds, per_frame, rate))
    sessions = []
    with progress_bar() as bar:
        task = bar.add_task("features", total=len(poses))
        for i, (pose, (ds, per_frame, rate)) in enumerate(zip(poses, loaded, strict=True)):
            group = animals[i] if animals else pose.stem
            sessions.append(labelled_session(ds, per_frame, fps=rate, roles=mapping, group=group, params=params))
            sessions[-1].name = pose.stem
            bar.update(task, advance=1)
        task = bar.add_task("cross-validation and fit", total=1)
        clf, cv = train_classifier(sessions, n_splits=folds, estimator=BehaviourEstimator(max_iter=max_iter))
        bar.update(task, advance=1)
    clf.provenance["inputs"] = [
        {"path": str(p), "sha256": file_sha256(p)} for pair in zip(poses, labels, strict=True) for p in map(Path, pair)
    ]
    clf.provenance["command"] = "behaviours train"
    save_classifier(clf, out)
    _print_frame(cv.per_class.round(3), f"cross-validation: {cv.scheme}")
    console.print(
        f"macro F1 over behaviours {cv.macro_f1:.3f} (before smoothing {cv.macro_f1_unsmoothed:.3f}); smoothing "
        f"{cv.smoothing.as_dict()}; roles {clf.roles}; {len(clf.feature_names)} features at {clf.fps:g} fps; "
        f"wrote {out}"
    )


def session_features_check(ds, clf, mapping: dict[str, str], fps: float, source: str) -> None:
    """Refuse poses a classifier cannot score (another fps, a missing keypoint role) before any work."""
    import numpy as np

    from behavior.classifiers import resolve_roles

    if not np.isclose(fps, clf.fps, rtol=1e-3):
        raise ValueError(
            f"{source}: expected poses at the classifier's {clf.fps:g} fps, got {fps:g} fps "
            "(resample the poses or train a classifier at this rate)"
        )
    resolve_roles([str(k) for k in ds["keypoints"].values], mapping=mapping, required=clf.roles, source=source)


@behaviours_app.command("apply")
def apply(
    model: Annotated[Path, typer.Argument(help="Model directory written by 'behaviours train'.")],
    poses: Annotated[list[Path], typer.Argument(help="Pose files to score.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    fps: Annotated[
        float | None, typer.Option("--fps", help="Frame rate of the poses (files storing none: the classifier's).")
    ] = None,
    roles: Annotated[str | None, typer.Option("--roles", help="Keypoint roles: name=role pairs or a YAML.")] = None,
    behaviours: Annotated[
        list[str] | None, typer.Option("--behaviours", help="Behaviours to report (default: all it scores).")
    ] = None,
    side: Annotated[str | None, typer.Option("--side", help="Injured side (left/right): ipsi/contra licking.")] = None,
    max_untracked: Annotated[
        float,
        typer.Option(
            "--max-untracked", min=0, max=1, help="Above this share of untracked frames the measures are NaN."
        ),
    ] = 0.2,
    duration_s: Annotated[
        float | None,
        typer.Option(
            "--duration-s", min=0.001, help="Planned session length: longer files are cut to it, shorter flagged."
        ),
    ] = None,
) -> None:
    """Label every pose frame with a saved classifier; write frames, bouts and session measures."""
    import pandas as pd

    from behavior.classifiers import apply_classifier, load_classifier, parse_role_pairs
    from behavior.classifiers.sessions import poses_fps
    from behavior.provenance import write_provenance
    from pose_models.io import load_poses

    if side is not None and side not in ("left", "right"):
        raise ValueError(f"--side: expected left or right, got {side!r}")
    clf = load_classifier(model)
    chosen = _split(behaviours) or None
    if chosen is not None:
        unknown = [b for b in chosen if b not in clf.behaviours]
        if unknown:
            raise ValueError(f"--behaviours: unknown behaviour(s) {unknown}, expected from {clf.behaviours}")
    mapping = parse_role_pairs(roles)
    for p in poses:
        if not p.exists():
            raise FileNotFoundError(f"pose file not found: {p}")
    out.mkdir(parents=True, exist_ok=True)
    all_measures = []
    assumed: list[str] = []
    written: list[Path] = []
    loaded = []
    for p in poses:  # every input checked before the progress bar starts: bad input stays one line
        ds = load_poses(p, fps=fps)
        if fps is None and not ds.attrs.get("fps"):
            assumed.append(p.name)  # a DLC file stores no rate: the classifier's
        rate = poses_fps(ds, fps if fps is not None or ds.attrs.get("fps") else clf.fps, source=p.name)
        session_features_check(ds, clf, mapping, rate, p.name)
        loaded.append((ds, rate))
    with progress_bar() as bar:
        task = bar.add_task("scoring", total=len(poses))
        for p, (ds, rate) in zip(poses, loaded, strict=True):
            scores = apply_classifier(
                clf,
                ds,
                roles=mapping,
                behaviours=chosen,
                side=side,
                fps=rate,
                source=p.name,
                max_untracked_fraction=max_untracked,
                expected_duration_s=duration_s,
            )
            folder = out if len(poses) == 1 else out / p.stem
            folder.mkdir(parents=True, exist_ok=True)
            measures = scores.measures_frame()
            for name, table in (("frames", scores.frames), ("bouts", scores.bouts), ("measures", measures)):
                table.to_csv(folder / f"{name}.csv", index=False)
                written.append(folder / f"{name}.csv")
            all_measures.append(measures.assign(input=p.name))
            bar.update(task, advance=1)
    if len(poses) > 1:
        pd.concat(all_measures, ignore_index=True).to_csv(out / "measures.csv", index=False)
        written.append(out / "measures.csv")
    write_provenance(
        out,
        command="behaviours apply",
        config={
            "model": str(model),
            "behaviours": chosen or clf.behaviours,
            "side": side,
            "roles": mapping,
            "max_untracked_fraction": max_untracked,
            "expected_duration_s": duration_s,
        },
        inputs=[*poses, model / "manifest.json", model / "model.joblib"],
        outputs=written,
    )
    shown = pd.concat(all_measures, ignore_index=True)
    shown = shown[shown["measure"].str.startswith(("time_", "flinch", "licking"))]
    _print_frame(shown[["input", "measure", "value", "unit"]], f"behaviours: {model.name}")
    if assumed:
        console.print(f"{', '.join(assumed)}: no frame rate stored; taken as the classifier's {clf.fps:g} fps")
    console.print(f"scored {len(poses)} pose file(s) with {len(clf.behaviours)} behaviours; wrote {out}")
