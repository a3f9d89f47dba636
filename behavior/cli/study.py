"""Whole studies: ``painbattery score`` (a manifest into the battery report), ``simulate`` (synthetic-rig
clips) and ``demo`` (a simulated study scored end to end); ``_score_and_report`` is shared by score and demo.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from behavior.cli.common import console, err_console, progress_bar


def register(app: typer.Typer) -> None:
    """Add ``score``, ``simulate`` and ``demo`` to the root app."""
    app.command()(score)
    app.command()(simulate)
    app.command()(demo)


def _score_and_report(
    manifest: Path,
    out: Path,
    *,
    workers: int,
    scheduler: str | None,
    overrides: list[str],
    model: dict[str, Path] | None,
    battery: str,
    unblind: Path | None,
    title: str,
) -> None:
    """Score a manifest and write the battery outputs (shared by ``score`` and ``demo``)."""
    from behavior.batch import score_study
    from behavior.battery import BatteryConfig
    from behavior.provenance import file_sha256, write_provenance
    from behavior.report import read_unblind_key, write_outputs
    from behavior.session import read_manifest
    from behavior.stats import timepoint_order

    sessions = read_manifest(manifest)  # every row checked before any work starts
    battery_config = BatteryConfig.load(battery)
    # a timepoint label the statistics cannot place in time is refused here, before any session is scored
    timepoint_order([s.timepoint for s in sessions], battery_config.baseline_timepoint)
    key = read_unblind_key(unblind) if unblind else None
    with progress_bar() as progress:
        task = progress.add_task("scoring sessions", total=len(sessions))
        frames = progress.add_task("frames analysed", total=None)
        n_frames = [0]

        def report(done: int, total: int, r: dict) -> None:
            progress.update(task, completed=done, description=f"scoring sessions ({r['session_id']}: {r['status']})")
            n_frames[0] += int((r.get("quality") or {}).get("frames", 0))
            progress.update(frames, completed=n_frames[0])

        result = score_study(
            sessions, out, workers=workers, scheduler=scheduler, overrides=overrides, model=model, progress=report
        )
    provenance = {
        "manifest": str(manifest),
        "manifest_sha256": file_sha256(manifest),
        "sessions": len(sessions),
        "executor": f"dask {scheduler}" if scheduler else f"{workers} process(es)",
        "overrides": ", ".join(overrides) or "none",
        "battery": battery_config.name,
    }
    paths = write_outputs(
        out,
        result.measures,
        result.quality,
        result.failures,
        config=battery_config,
        unblind=key,
        provenance=provenance,
        parameters={"overrides": overrides},
        title=title,
        n_jobs=workers,
    )
    write_provenance(
        out,
        command="score",
        config={**provenance, "battery_config": battery_config.model_dump()},
        inputs=[manifest],
        outputs=list(paths.values()),
    )
    console.print(
        f"{result.n_scored} session(s) scored, {result.n_cached} from the cache, {len(result.failures)} failed; "
        f"wrote {', '.join(p.name for p in paths.values())} to {out}"
    )
    for row in result.failures.itertuples():
        err_console.print(f"[yellow]failed[/yellow] {row.session_id}: {row.error}")
    for note in result.notes:
        err_console.print(f"[yellow]warning[/yellow]: {note}")
    from behavior.battery import completeness

    for warning in completeness(result.measures):
        err_console.print(f"[yellow]warning[/yellow]: {warning}")
    if result.failures.shape[0] == len(sessions):
        raise StudyError(_why_none_scored(result.failures))


class StudyError(ValueError):
    """No session of a study could be scored: bad input, so exit 2 with the reasons."""


def _why_none_scored(failures, shown: int = 5) -> str:
    """One line: every session failed, and why (the first few, then how many more)."""
    reasons = [f"{f.session_id}: {f.error}" for f in failures.itertuples()]
    more = f"; and {len(reasons) - shown} more (see failures.csv)" if len(reasons) > shown else ""
    return f"no session could be scored: {'; '.join(reasons[:shown])}{more}"


def parse_models(values: list[str] | None) -> dict[str, Path] | None:
    """``--model`` values: ``DIR`` (every assay) or ``ASSAY=DIR`` (that assay's sessions), repeatable.

    Raises
    ------
    ValueError
        For an assay no module registered, or two models given for one assay.
    """
    from behavior.assays import get_assay

    if not values:
        return None
    out: dict[str, Path] = {}
    for value in values:
        assay, sep, folder = value.partition("=")
        if not sep:
            assay, folder = "", value
        elif not Path(value).exists():
            get_assay(assay)  # an unknown assay names the registered ones
        else:
            assay, folder = "", value  # a folder whose name holds "="
        if assay in out:
            raise ValueError(f"--model: expected one model per assay, got two for {assay or 'the default'!r}")
        out[assay] = Path(folder)
    return out


def score(
    manifest: Annotated[Path, typer.Argument(help="Manifest CSV: one row per session.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (results are cached here per session).")],
    workers: Annotated[int, typer.Option(min=1, help="Local worker processes.")] = 1,
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address (tcp://host:8786).")] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="Pose model for sessions with a video, no pose file and no model column: DIR for every assay, "
            "or ASSAY=DIR (repeatable: a face model for grimace, a paw model for the rest)."
        ),
    ] = None,
    battery: Annotated[str, typer.Option(help="Battery config (configs/battery/NAME.yaml).")] = "default",
    unblind: Annotated[
        Path | None, typer.Option(help="Blinding key CSV code,group: names shown in the report.")
    ] = None,
    title: Annotated[str, typer.Option(help="Report title.")] = "painbattery report",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Assay config override key.sub=value.")] = None,
) -> None:
    """Score every session of a study and write measures, battery, statistics and the HTML report."""
    _score_and_report(
        manifest,
        out,
        workers=workers,
        scheduler=scheduler,
        overrides=set_ or [],
        model=parse_models(model),
        battery=battery,
        unblind=unblind,
        title=title,
    )


# --------------------------------------------------------------------------------- simulate / demo


def simulate(
    assay: Annotated[str, typer.Argument(help="Assay to simulate, or 'study' for a whole small study.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (created if missing).")],
    n_clips: Annotated[int, typer.Option(min=1, help="Number of clips (single assay).")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 0,
    animals_per_group: Annotated[int, typer.Option(min=1, help="Animals per group ('study').")] = 2,
) -> None:
    """Write synthetic-rig clips: video, ground-truth poses (.h5) and session sidecar (.json) per clip."""
    from behavior import synthetic
    from behavior.provenance import write_provenance

    if assay != "study" and assay not in synthetic.SIMULATORS:
        known = ", ".join(["study", *sorted(synthetic.SIMULATORS)])
        raise ValueError(f"unknown assay {assay!r}, expected one of {known}")
    out.mkdir(parents=True, exist_ok=True)
    with progress_bar() as progress:
        task = progress.add_task(f"simulating {assay}", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        if assay == "study":
            manifest = synthetic.simulate_study(out, seed=seed, animals_per_group=animals_per_group, progress=report)
            console.print(f"wrote study manifest {manifest}")
        else:
            sidecars = synthetic.simulate(assay, out, n_clips=n_clips, seed=seed, progress=report)
            console.print(f"wrote {len(sidecars)} {assay} clip(s) to {out}")
    config = {"assay": assay, "n_clips": n_clips, "seed": seed, "animals_per_group": animals_per_group}
    outputs = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "provenance.json")
    write_provenance(out, command=f"simulate {assay}", config=config, outputs=outputs)


#: Face clips (6 labelled frames each) and epochs of the demo's face model.
DEMO_FACE_CLIPS = 16
DEMO_FACE_EPOCHS = 40
#: Backbone layers (stem + 4 blocks) the demo's pose models keep at their ImageNet weights: training costs
#: 40-50 % less (face 178 -> 105 s, paws 58 -> 29 s on a 2-core EPYC), held-out error face 1.86 -> 2.00 px,
#: paws 1.74 -> 1.60 px. A paw model placed a few pixels off under the heat lamp's glow read withdrawals at
#: the onset until the Hargreaves detector took the rest again after it (withdrawal.onset_shift_s):
#: bench/hargreaves_from_video.py scores all 72 of the demo's trials within a frame with either model.
DEMO_FROZEN_LAYERS = 5
#: Assays the demo scores from their pose files alone: their videos are never read, and encoding them was
#: a third of the simulation's time. (Gait reads print areas from its videos; Hargreaves and grimace go
#: through pose models, burrowing reads the tube.)
DEMO_POSE_FILE_ONLY = ("von_frey", "pain_box", "place_preference")


def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo-output"),
    seed: Annotated[int, typer.Option(help="Random seed of the simulated study.")] = 0,
    animals_per_group: Annotated[int, typer.Option(min=2, help="Animals per group.")] = 4,
) -> None:
    """Simulate a CCI + MSC study on the synthetic rig and score it end to end into a battery report.

    Control / CCI / CCI+MSC animals at baseline, day 7 and day 14, with hypersensitivity of the injured
    paw after CCI, ongoing pain (grimace, less burrowing) and partial recovery with MSC written into the
    simulator. Hargreaves sessions go from video through a paw model and grimace sessions through a
    face model, both trained here on synthetic labelled frames; von Frey sessions use pose files,
    pain-box sessions go from pose files through a behaviour classifier trained here on planted labels,
    and burrowing reads the tube in the video. Every simulated assay with a registered module joins.
    """
    import pandas as pd
    import torch

    from behavior import synthetic
    from behavior.assays import registered_assays
    from behavior.synthetic.training import labelled_frames
    from pose_models.nets.model import ModelConfig, TrainConfig
    from pose_models.train import train_model

    out.mkdir(parents=True, exist_ok=True)
    study_dir = out / "study"
    assays = tuple(a for a in synthetic.SIMULATORS if a in registered_assays())
    with progress_bar() as progress:
        task = progress.add_task("simulating study", total=None)
        manifest = synthetic.simulate_study(
            study_dir,
            seed=seed,
            animals_per_group=animals_per_group,
            assays=assays,
            n_jobs=min(2, os.cpu_count() or 1),
            without_video=[a for a in DEMO_POSE_FILE_ONLY if a in assays],
            progress=lambda d, t: progress.update(task, completed=d, total=t),
        )
        torch.set_num_threads(os.cpu_count() or 1)
        # (assay whose sessions go from video through this model, its training frames, clips, epochs, folder)
        models = [("hargreaves", ("hargreaves", "von_frey"), 8, 30, DEMO_FROZEN_LAYERS, out / "pose_model")]
        if "grimace" in assays:
            # face keypoints lie a few pixels apart: the face model needs more frames and epochs than paws
            models.append(
                (
                    "grimace",
                    ("grimace",),
                    DEMO_FACE_CLIPS,
                    DEMO_FACE_EPOCHS,
                    DEMO_FROZEN_LAYERS,
                    out / "face_model",
                )
            )
        for i, (_, frame_assays, n_clips, epochs, frozen, model_dir) in enumerate(models):
            task = progress.add_task(f"training the {model_dir.name.replace('_', ' ')} on synthetic frames", total=None)
            config = ModelConfig(
                input_scale=1.0,
                neck_channels=32,
                train=TrainConfig(epochs=epochs, batch_size=8, lr=2e-3, patience_epochs=epochs, frozen_layers=frozen),
            )
            train_model(
                labelled_frames(assays=frame_assays, n_clips=n_clips, seed=10_000 * (i + 1) + seed),
                model_dir,
                config,
                seed=seed,
                progress=lambda e, n, f, task=task: progress.update(task, completed=e, total=n),
            )
        # The demo's 30-epoch paw model peaks lower than a fully trained one, and how low varies from machine to
        # machine (float rounding changes the model): one scored its paw points under the lamp's glow 0.27-0.31
        # while placing them within 1 px of the truth, and at the default 0.5 most Hargreaves trials were left
        # unscored as untracked. Another's points all score over 0.5. 0.3 keeps the demo's trials scored on both.
        overrides = ["withdrawal.min_confidence=0.3"]
        if "grimace" in assays:
            # Likewise the 40-epoch face model with its frozen early layers: its snout points score 0.2-0.35
            # while it places them within 2 px of the truth (held out), so at the default 0.5 most frames read
            # as grooming. At 0.2, 35 of the 36 sessions are scored, mean |mgs_score - truth| 0.11
            # (at 0.35 only 4 of them).
            overrides.append("grimace.selection.min_confidence=0.2")
        if "pain_box" in assays:
            # the pain-box sessions are scored from their pose files by a classifier of planted labels
            from behavior.synthetic.pain_box import train_synthetic_classifier

            progress.add_task("training the behaviour classifier on synthetic labels", total=None)
            classifier = train_synthetic_classifier(out / "behaviour_model", n_animals=4, duration_s=40, seed=seed)
            overrides.append(f"pain_box.classifier={classifier.resolve()}")
    rows = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    by_video = pd.Series(False, index=rows.index)
    for assay, *_, model_dir in models:  # these sessions go from video through their model
        these = rows["assay"] == assay
        rows.loc[these, "pose"] = ""
        rows.loc[these, "model"] = str(model_dir.resolve())
        by_video |= these
    demo_manifest = study_dir / "manifest_demo.csv"
    rows.to_csv(demo_manifest, index=False)
    console.print(
        f"study: {len(rows)} sessions ({', '.join(assays)}), {rows['animal_id'].nunique()} animals, "
        f"{by_video.sum()} scored from video through a pose model"
    )
    _score_and_report(
        demo_manifest,
        out,
        workers=min(2, os.cpu_count() or 1),
        scheduler=None,
        overrides=overrides,
        model=None,
        battery="default",
        unblind=None,
        title="painbattery demo: CCI + MSC (simulated)",
    )
    console.print(f"open {out / 'report.html'}")
