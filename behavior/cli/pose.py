"""``painbattery pose ...`` (convert, train, evaluate, predict pose files and models) and ``painbattery info``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from behavior.cli.common import _print_frame, _print_mapping, console, progress_bar

pose_app = typer.Typer(help="Pose files and models.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``info`` and the ``pose`` group to the root app."""
    app.command()(info)
    app.add_typer(pose_app, name="pose")


def info(
    file: Annotated[Path, typer.Argument(help="A video or a pose file (DeepLabCut, SLEAP, NWB, netCDF).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show what a video or pose file holds."""
    from behavior.video import VIDEO_SUFFIXES, probe_video

    if file.suffix.lower() in VIDEO_SUFFIXES:
        values = probe_video(file).as_dict()
        title = f"video {file.name}"
    else:
        from pose_models.io import load_poses
        from pose_models.poses import poses_summary

        values = {"path": str(file), **poses_summary(load_poses(file))}
        title = f"poses {file.name}"
    if as_json:
        console.print_json(json.dumps(values))
    else:
        _print_mapping(title, values)


# ------------------------------------------------------------------------------------------- pose


@pose_app.command("convert")
def pose_convert(
    src: Annotated[Path, typer.Argument(help="Input pose file.")],
    dst: Annotated[Path, typer.Argument(help="Output pose file; its suffix picks the format.")],
    fps: Annotated[float | None, typer.Option(help="Frame rate, for inputs that do not store it.")] = None,
) -> None:
    """Convert a pose file to another format (.h5/.csv DeepLabCut, .slp, .analysis.h5, .nwb, .nc)."""
    from pose_models.io import detect_format, load_poses, save_poses

    if src.resolve() == dst.resolve():
        raise ValueError(f"expected an output path different from the input, got {dst}")
    detect_format(dst, for_writing=True)  # refuse an unknown output suffix before reading anything
    ds = load_poses(src, fps=fps)
    save_poses(ds, dst)
    console.print(
        f"wrote {dst} ({ds.sizes['time']} frames, {ds.sizes['keypoints']} keypoints, "
        f"{ds.sizes['individuals']} individual(s))"
    )


@pose_app.command("train")
def pose_train(
    labels: Annotated[
        Path, typer.Argument(help="DeepLabCut project/labeled-data folder/CollectedData file, or SLEAP .slp/.pkg.slp.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    config: Annotated[
        str, typer.Option(help="Model config (configs/models/NAME.yaml) or a YAML path.")
    ] = "efficientnet_lite0_s16",
    epochs: Annotated[int | None, typer.Option(min=1, help="Override the config's epochs.")] = None,
    test_fraction: Annotated[float, typer.Option(help="Held-out test share of the labelled frames.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the train/test split and of training.")] = 0,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda when available).")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads (default: all cores).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override key.sub=value.")] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option(
            "--max-minutes",
            min=0.01,
            help="Stop after this much wall time (the learning-rate decay is timed to end by then). "
            "Off by default: a capped model depends on how busy the machine was.",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its checkpoint.pt to the end.")
    ] = False,
) -> None:
    """Train a pose model (EfficientNet-Lite0 + heatmap/offset heads) on labelled frames.

    The schedule is a number of epochs; the same labels, config and seed give the same model.
    """
    from pose_models.config import apply_overrides, load_config
    from pose_models.nets.model import ModelConfig

    overrides = [*(set_ or []), *([f"train.max_minutes={max_minutes}"] if max_minutes is not None else [])]
    model_config = ModelConfig.model_validate(apply_overrides(load_config("models", config), overrides))
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)
    from pose_models.data import load_labelled_frames
    from pose_models.train import train_model

    frames = load_labelled_frames(labels)  # bad labels fail here, before any progress output
    console.print(f"{len(frames.names)} labelled frames, keypoints {', '.join(frames.keypoint_names)}")
    n_epochs = epochs or model_config.train.epochs
    if resume:  # a checkpoint of another run fails here, before any progress output
        from pose_models.train import load_resume_checkpoint

        load_resume_checkpoint(out, frames, model_config, seed, test_fraction, n_epochs)
    with progress_bar() as progress:
        task = progress.add_task("training", total=n_epochs)

        def report(epoch: int, total: int, figures: dict[str, float]) -> None:
            description = f"training: loss {figures['loss']:.3g}"
            if figures["val_error_px"] == figures["val_error_px"]:  # not NaN: there is a validation share
                description += f", validation error {figures['val_error_px']:.2f} px"
            progress.update(task, completed=epoch, total=total, description=description)

        result = train_model(
            frames,
            out,
            model_config,
            test_fraction=test_fraction,
            seed=seed,
            epochs=epochs,
            device=device,
            resume=resume,
            progress=report,
        )
    from behavior.provenance import write_provenance

    write_provenance(
        out,
        command="pose train" + (" --resume" if resume else ""),
        config={
            "model": model_config.model_dump(mode="json"),
            "labels": str(labels),
            "test_fraction": test_fraction,
            "seed": seed,
            "epochs_planned": result.epochs_planned,
            "epochs_run": result.epochs_run,
            "stopped_by": result.stopped_by,
            "resumed_from_epoch": result.resumed_from_epoch,
            "torch_threads": torch.get_num_threads(),
        },
        outputs=[out / "weights.pt", out / "model.yaml", out / "split.json"],
    )
    console.print(f"wrote {result.model_dir}: {result.summary()}")


@pose_app.command("evaluate")
def pose_evaluate(
    model: Annotated[Path, typer.Argument(help="Model directory.")],
    labels: Annotated[
        Path | None, typer.Argument(help="Labelled frames (default: the ones it was trained on).")
    ] = None,
    pcutoff: Annotated[float, typer.Option(help="Confidence cut-off for the *_pcutoff figures.")] = 0.6,
    backend: Annotated[str, typer.Option(help="auto, onnx or torch.")] = "auto",
    precision: Annotated[
        str, typer.Option(help="ONNX precision: auto (int8 when the model has calibration frames), int8 or fp32.")
    ] = "auto",
) -> None:
    """Train/test pixel error (DeepLabCut's RMSE), per keypoint, PCK, and labels that look wrong."""
    from pose_models.evaluate import evaluate_model

    result = evaluate_model(model, labels, pcutoff=pcutoff, backend=backend, precision=precision)
    figures = {k: v for k, v in result.items() if not isinstance(v, (dict, list))}
    _print_mapping(f"evaluation of {model}", figures)
    _print_mapping("test error per keypoint (px)", result["test_rmse_px_per_keypoint"])
    if result["label_issues"]:
        import pandas as pd

        _print_frame(pd.DataFrame(result["label_issues"]), "labels to check")
    console.print(f"wrote {model / 'evaluation.json'}")


@pose_app.command("predict")
def pose_predict(
    videos: Annotated[list[Path], typer.Argument(help="Video file(s).")],
    model: Annotated[Path, typer.Option("--model", help="Model directory.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    format: Annotated[str, typer.Option("--format", help="h5 (DeepLabCut, + csv), slp, nc or nwb.")] = "h5",
    labeled_video: Annotated[bool, typer.Option("--labeled-video", help="Also write <stem>_labeled.mp4.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Frames per inference batch.")] = 8,
    backend: Annotated[str, typer.Option(help="auto (CUDA if present, else ONNX Runtime), onnx or torch.")] = "auto",
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads (default: all cores).")] = None,
    precision: Annotated[
        str, typer.Option(help="ONNX precision: auto (int8 when the model has calibration frames), int8 or fp32.")
    ] = "auto",
    roi: Annotated[
        str | None,
        typer.Option(help="Predict inside this region x,y,w,h (one chamber); poses stay in full-frame pixels."),
    ] = None,
) -> None:
    """Predict keypoints in every frame of each video; write poses in DeepLabCut/SLEAP/netCDF layout."""
    from behavior.provenance import write_provenance
    from pose_models.inference import PoseEstimator, write_labeled_video
    from pose_models.io import save_poses
    from pose_models.video import ROI, check_roi, probe_video

    suffix = {"h5": ".h5", "slp": ".slp", "nc": ".nc", "nwb": ".nwb"}.get(format)
    if suffix is None:
        raise ValueError(f"expected --format h5, slp, nc or nwb, got {format!r}")
    region = ROI.parse(roi) if roi is not None else None
    for video in videos:
        info = probe_video(video)  # every input checked before any work starts
        if region is not None:
            check_roi(region, info, video)
    estimator = PoseEstimator.from_dir(
        model,
        backend=backend,
        threads=threads,
        precision=precision,  # type: ignore[arg-type]
    )
    out.mkdir(parents=True, exist_ok=True)
    outputs = []
    with progress_bar() as progress:
        for video in videos:
            task = progress.add_task(f"{video.name} ({estimator.backend})", total=None)
            poses = estimator.predict_video(
                video,
                roi=region,
                batch_size=batch_size,
                progress=lambda d, t, task=task: progress.update(task, completed=d, total=t),
            )
            target = out / f"{video.stem}{suffix}"
            outputs.append(save_poses(poses, target))
            if format == "h5":
                outputs.append(save_poses(poses, target.with_suffix(".csv")))
            if labeled_video:
                outputs.append(write_labeled_video(video, poses, out / f"{video.stem}_labeled.mp4"))
    write_provenance(
        out,
        command="pose predict",
        config={
            "model": str(model),
            "format": format,
            "batch_size": batch_size,
            "backend": estimator.backend,
            "weights_sha256": estimator.meta.get("weights_sha256"),
            "roi": roi,
        },
        inputs=videos,
        outputs=outputs,
    )
    console.print(f"wrote {len(outputs)} file(s) to {out}")
