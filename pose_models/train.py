"""Training a pose model from labelled frames: seeded split, augmentation, early stopping, checkpoints.

The trainer is small on purpose: the heads own their targets and losses, the data module owns
loading and augmentation; this module only loops. A model directory holds:

- ``model.yaml`` - the resolved config, keypoints, skeleton, left/right symmetry, input geometry;
- ``split.json`` - the seeded train/test split (frame names) and the seed;
- ``calibration.npz`` - up to 32 training-frame inputs, the activation ranges of the int8 export;
- ``weights.pt`` - the weights with the best validation error (the last epoch's without a validation
  share); ``checkpoint.pt`` - the last finished epoch (model, optimiser, step, best so far) to resume
  from; ``training_log.csv`` - training loss (and validation error, with a validation share) per epoch.

The schedule is a number of epochs, and every random draw of an epoch (frame order, augmentation)
comes from a generator seeded by ``(seed, epoch)``: the same data, config and seed give the same
weights on the same machine whatever its load, and a resumed run ends where an uninterrupted one
would. A wall-clock cap (``train.max_minutes``) applies only when asked for, and a run it stops says
so (``TrainResult.stopped_by``, ``model.yaml``, ``evaluation.json``).
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from pose_models.data import LabelledFrames, augment, infer_symmetry, load_labelled_frames, make_split, save_split
from pose_models.geometry import preprocess, to_input, to_original
from pose_models.inference import weights_digest, write_calibration_frames
from pose_models.nets.heads import decode
from pose_models.nets.model import ModelConfig, PoseNet

__all__ = ["ResumeError", "TrainResult", "load_resume_checkpoint", "lr_factor", "pick_device", "train_model"]

INPUT_MULTIPLE = 16


class ResumeError(ValueError):
    """A model directory that cannot be resumed (no checkpoint, or another config, data or seed)."""


@dataclass(frozen=True)
class TrainResult:
    """Outcome of a training run.

    ``best_val_error_px`` is NaN without a validation share; ``final_loss`` is the last epoch's mean
    training loss. ``stopped_by`` is ``"schedule"`` (all epochs run), ``"patience"`` (early stopping on
    validation error) or ``"max_minutes"`` (the wall-clock cap asked for cut the schedule short).
    """

    model_dir: Path
    best_val_error_px: float
    best_epoch: int
    epochs_run: int
    seconds: float
    final_loss: float = math.nan
    epochs_planned: int = 0
    stopped_by: str = "schedule"
    resumed_from_epoch: int = 0

    @property
    def has_validation(self) -> bool:
        """Whether a validation share was held out (else ``best_val_error_px`` is NaN)."""
        return not math.isnan(self.best_val_error_px)

    def summary(self) -> str:
        """One line saying what was run and what it measured (training loss, or validation error)."""
        if self.has_validation:
            head = (
                f"best validation error {self.best_val_error_px:.2f} px at epoch {self.best_epoch} of {self.epochs_run}"
            )
        else:
            head = f"{self.epochs_run} epochs, final training loss {self.final_loss:.4g} (no validation share)"
        tail = f" ({self.seconds / 60:.1f} min"
        if self.resumed_from_epoch:
            tail += f", resumed after epoch {self.resumed_from_epoch}"
        tail += ")"
        if self.stopped_by == "max_minutes":
            tail += f"; STOPPED BY THE TIME CAP after epoch {self.epochs_run} of {self.epochs_planned}"
        elif self.stopped_by == "patience":
            tail += f"; stopped early: no better validation error for {self.epochs_run - self.best_epoch} epochs"
        return head + tail


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _inputs(frames: LabelledFrames, config: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """Network-input images (N, H, W, 3), padded to one size, and keypoints in input pixels."""
    images = [preprocess(img, config.input_scale, config.crop, INPUT_MULTIPLE) for img in frames.images]
    h = max(i.shape[0] for i in images)
    w = max(i.shape[1] for i in images)
    batch = np.zeros((len(images), h, w, 3), np.uint8)
    for i, img in enumerate(images):
        batch[i, : img.shape[0], : img.shape[1]] = img
    return batch, to_input(frames.keypoints, config.input_scale, config.crop)


def _to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
    return x.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict_inputs(
    model: PoseNet, images: np.ndarray, device: torch.device, batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (input pixels) and confidences for network-input images, with the model in eval mode."""
    was_training = model.training
    model.eval()
    positions, scores = [], []
    for i in range(0, len(images), batch_size):
        heatmap, offsets = model(_to_tensor(images[i : i + batch_size], device))
        p, c = decode(heatmap.float().cpu().numpy(), offsets.float().cpu().numpy(), model.stride)
        positions.append(p)
        scores.append(c)
    model.train(was_training)
    return np.concatenate(positions), np.concatenate(scores)


def mean_error_px(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean Euclidean error over labelled keypoints (DeepLabCut's "RMSE")."""
    err = np.linalg.norm(predicted - truth, axis=-1)
    return float(np.nanmean(err))


def lr_factor(step: int, total_steps: int, warmup_steps: int, elapsed_s: float, budget_s: float | None) -> float:
    """Learning-rate multiplier: linear warm-up, then a cosine decay to zero.

    The decay follows whichever is further along, the step count or the time budget, so a run stopped
    by ``max_minutes`` has still annealed its learning rate instead of ending at a high one.
    """
    progress = step / total_steps
    if budget_s:
        progress = max(progress, elapsed_s / budget_s)
    warm = min(1.0, (step + 1) / warmup_steps)
    return warm * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch's draws: frame order and augmentation depend on (seed, epoch) only."""
    return np.random.default_rng([seed, epoch])


def _augmented_batches(
    images: np.ndarray,
    keypoints: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    augment_cfg,
    swap: np.ndarray | None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Augmented (images, keypoints) batches of one epoch, in ``order``, drawn from ``rng`` in sequence."""
    for b in range(0, len(order), batch_size):
        pairs = [augment(images[i], keypoints[i], rng, augment_cfg, swap) for i in order[b : b + batch_size]]
        yield np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _prefetched(batches: Iterator, pool: ThreadPoolExecutor) -> Iterator:
    """``batches``, each made on ``pool``'s thread while the caller trains on the one before.

    One worker makes the batches one after another, so the random draws keep their order (and the
    run its result); OpenCV releases the GIL, so augmentation overlaps the network's step.
    """
    sentinel = object()
    pending = pool.submit(next, batches, sentinel)
    while True:
        batch = pending.result()
        if batch is sentinel:
            return
        pending = pool.submit(next, batches, sentinel)
        yield batch


def _save_atomically(obj: object, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a run killed mid-write leaves the old file whole."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _fingerprint(frames: LabelledFrames, config: ModelConfig, seed: int, test_fraction: float, epochs: int) -> str:
    """What a resumed run must share with the run it continues: data, config, seed, split, schedule.

    The time cap is left out, so a run it cut short can be resumed without it.
    """
    import hashlib

    settings = config.model_dump(mode="json")
    settings["train"].pop("max_minutes", None)
    digest = hashlib.sha256()
    digest.update(repr((settings, seed, test_fraction, epochs, frames.keypoint_names)).encode())
    digest.update("\n".join(frames.names).encode())
    digest.update(np.nan_to_num(np.asarray(frames.keypoints, dtype=np.float64), nan=-1.0).tobytes())
    return digest.hexdigest()


def load_resume_checkpoint(
    out_dir: str | Path, frames: LabelledFrames, config: ModelConfig, seed: int, test_fraction: float, epochs: int
) -> dict:
    """The checkpoint a resumed run continues from, after checking it belongs to the same run.

    Raises
    ------
    ResumeError
        No ``checkpoint.pt`` in ``out_dir``, or one written with other data, config, seed or epochs.
    """
    path = Path(out_dir) / "checkpoint.pt"
    if not path.is_file():
        raise ResumeError(f"expected a checkpoint.pt to resume from in {out_dir}, found none")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # our own file, tensors only
    if checkpoint.get("fingerprint") != _fingerprint(frames, config, seed, test_fraction, epochs):
        raise ResumeError(
            f"expected the data, config, seed and epochs of the run in {out_dir} to resume it; they differ"
        )
    return checkpoint


def _read_log(path: Path, upto_epoch: int) -> list[list[str]]:
    """The training log's rows up to ``upto_epoch`` (a killed run may have logged no further)."""
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return [rows[0], *[r for r in rows[1:] if r and int(r[0]) <= upto_epoch]]


def train_model(
    source: str | Path | LabelledFrames,
    out_dir: str | Path,
    config: ModelConfig | None = None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    epochs: int | None = None,
    device: str | None = None,
    pretrained: bool | None = None,
    resume: bool = False,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train a pose model and write it to ``out_dir``.

    Parameters
    ----------
    source
        Labelled frames, or a path :func:`pose_models.data.load_labelled_frames` accepts.
    out_dir
        Model directory (created).
    config
        Model and training config (default: ``ModelConfig()``).
    test_fraction, seed
        The held-out test share and the seed of the split (saved in ``split.json``) and of training.
    epochs
        Override ``config.train.epochs``.
    device
        ``"cpu"``, ``"cuda"``...; default CUDA when available. On CUDA training uses mixed precision.
    pretrained
        Override ``config.pretrained`` (tests use random weights).
    resume
        Continue from ``out_dir/checkpoint.pt`` (the last finished epoch) to the end of the schedule.
        The data, config, seed and schedule must be those of the run it continues
        (:class:`ResumeError` otherwise); the result is that of an uninterrupted run.
    progress
        Called as ``progress(epoch, epochs, {"loss": ..., "val_error_px": ...})`` after every epoch
        (``val_error_px`` is NaN without a validation share).

    Returns
    -------
    TrainResult
        Including why the run stopped (``stopped_by``).
    """
    t_start = time.perf_counter()
    config = config or ModelConfig()
    train_cfg = config.train
    n_epochs = epochs or train_cfg.epochs
    frames = source if isinstance(source, LabelledFrames) else load_labelled_frames(source)
    out = Path(out_dir)
    checkpoint = load_resume_checkpoint(out, frames, config, seed, test_fraction, n_epochs) if resume else None
    fingerprint = _fingerprint(frames, config, seed, test_fraction, n_epochs)
    out.mkdir(parents=True, exist_ok=True)
    train_idx, test_idx = make_split(frames.names, test_fraction, seed)
    rng = np.random.default_rng(seed)
    n_val = round(len(train_idx) * train_cfg.val_fraction) if len(train_idx) >= 5 else 0
    val_idx = sorted(rng.choice(train_idx, n_val, replace=False).tolist()) if n_val else []
    fit_idx = [i for i in train_idx if i not in set(val_idx)]
    save_split(
        out / "split.json",
        frames.names,
        train_idx,
        test_idx,
        seed=seed,
        test_fraction=test_fraction,
        validation=[frames.names[i] for i in val_idx],
    )

    images, keypoints = _inputs(frames, config)
    symmetry = infer_symmetry(frames.keypoint_names)
    swap = np.arange(len(frames.keypoint_names))
    for a, b in symmetry:
        ia, ib = frames.keypoint_names.index(a), frames.keypoint_names.index(b)
        swap[ia], swap[ib] = ib, ia
    metadata = {
        "config": config.model_dump(mode="json"),
        "keypoints": frames.keypoint_names,
        "skeleton": frames.skeleton,
        "symmetry": symmetry,
        "input_hw": list(images.shape[1:3]),
        "source": frames.source,
        "n_frames": len(frames.names),
    }

    dev = pick_device(device)
    torch.manual_seed(seed)
    model = PoseNet(len(frames.keypoint_names), config, pretrained=pretrained).to(dev)
    model = model.to(memory_format=torch.channels_last)
    if train_cfg.frozen_layers and not (config.pretrained if pretrained is None else pretrained):
        raise ValueError("train.frozen_layers needs pretrained weights: frozen random layers learn nothing")
    model.freeze_backbone(train_cfg.frozen_layers)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(fit_idx) / train_cfg.batch_size))
    total_steps = n_epochs * steps_per_epoch
    warmup = min(3 * steps_per_epoch, total_steps // 10 + 1)
    budget_s = 60 * train_cfg.max_minutes if train_cfg.max_minutes is not None else None
    use_amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    stride = model.stride
    hw = (images.shape[1] // stride, images.shape[2] // stride)

    best_error, best_epoch, start_epoch, step, elapsed_before = math.inf, 0, 0, 0, 0.0
    final_loss = math.nan
    log_path = out / "training_log.csv"
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scaler.load_state_dict(checkpoint["scaler"])
        start_epoch, step = int(checkpoint["epoch"]), int(checkpoint["step"])
        best_error, best_epoch = float(checkpoint["best_error"]), int(checkpoint["best_epoch"])
        final_loss, elapsed_before = float(checkpoint["loss"]), float(checkpoint["seconds"])
        rows = _read_log(log_path, start_epoch)
        with log_path.open("w", newline="") as fh:
            csv.writer(fh).writerows(rows)
    else:
        with log_path.open("w", newline="") as fh:
            csv.writer(fh).writerow(["epoch", "loss", "val_error_px", "lr", "seconds"])
    stopped_by = "schedule"
    epoch = start_epoch
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="augment")
    try:
        # a run that stopped early on validation error is finished; one the time cap cut short goes on
        first = n_epochs + 1 if checkpoint is not None and checkpoint["stopped_by"] == "patience" else start_epoch + 1
        if first > n_epochs and checkpoint is not None:
            stopped_by = checkpoint["stopped_by"] if start_epoch < n_epochs else "schedule"
        for epoch in range(first, n_epochs + 1):
            model.train()
            epoch_rng = _epoch_rng(seed, epoch)
            order = epoch_rng.permutation(fit_idx)
            losses = []
            batches = _augmented_batches(
                images, keypoints, order, train_cfg.batch_size, epoch_rng, train_cfg.augment, swap if symmetry else None
            )
            for batch_img, kp in _prefetched(batches, pool):
                visible = np.isfinite(kp).all(axis=-1).astype(np.float32)
                kp = np.nan_to_num(kp, nan=-1e4)
                hm_target = torch.from_numpy(model.heatmap.targets(kp, visible, hw, stride)).to(dev)
                off_target, off_mask = (
                    torch.from_numpy(a).to(dev) for a in model.offset.targets(kp, visible, hw, stride)
                )
                weight = torch.from_numpy(visible).to(dev)
                with torch.autocast(dev.type, enabled=use_amp):
                    heatmap, offsets = model(_to_tensor(batch_img, dev))
                loss = model.heatmap.loss(heatmap.float(), hm_target, weight) + model.offset.loss(
                    offsets.float(), off_target, off_mask
                )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                elapsed = elapsed_before + time.perf_counter() - t_start
                lr = train_cfg.lr * lr_factor(step, total_steps, warmup, elapsed, budget_s)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                scaler.step(optimizer)
                scaler.update()
                step += 1
                losses.append(float(loss.detach()))
            final_loss = float(np.mean(losses))
            val_error = math.nan
            if val_idx:
                pred, _ = predict_inputs(model, images[val_idx], dev)
                val_error = mean_error_px(to_original(pred, config.input_scale, config.crop), frames.keypoints[val_idx])
            # With a validation share keep the weights of the lowest validation error. Without one, keep the
            # last (annealed) weights: the loss on freshly augmented frames is too noisy to pick an epoch by.
            if not val_idx or val_error < best_error:
                best_error, best_epoch = (val_error if val_idx else math.nan), epoch
                _save_atomically(model.state_dict(), out / "weights.pt")
            elapsed = elapsed_before + time.perf_counter() - t_start
            if val_idx and epoch - best_epoch >= train_cfg.patience_epochs and epoch < n_epochs:
                stopped_by = "patience"
            elif budget_s is not None and elapsed > budget_s and epoch < n_epochs:
                stopped_by = "max_minutes"
            with log_path.open("a", newline="") as fh:
                csv.writer(fh).writerow(
                    [
                        epoch,
                        f"{final_loss:.5f}",
                        f"{val_error:.3f}",
                        f"{optimizer.param_groups[0]['lr']:.2e}",
                        f"{elapsed:.1f}",
                    ]
                )
            # the checkpoint is written last: a run killed before this line repeats the epoch on resume
            _save_atomically(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": epoch,
                    "step": step,
                    "best_error": best_error,
                    "best_epoch": best_epoch,
                    "loss": final_loss,
                    "seconds": elapsed,
                    "stopped_by": stopped_by,
                    "fingerprint": fingerprint,
                },
                out / "checkpoint.pt",
            )
            if progress is not None:
                progress(epoch, n_epochs, {"loss": final_loss, "val_error_px": val_error})
            if stopped_by != "schedule":
                break
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    # a few training inputs (never test frames) from which the CPU int8 export takes its activation ranges
    write_calibration_frames(out, images[train_idx], seed=seed)
    seconds = elapsed_before + time.perf_counter() - t_start
    metadata.update(
        best_epoch=best_epoch,
        best_val_error_px=None if math.isnan(best_error) else best_error,
        final_loss=final_loss,
        epochs_run=epoch,
        epochs_planned=n_epochs,
        stopped_by=stopped_by,
        resumed_from_epoch=start_epoch,
        training_seconds=round(seconds, 1),
        seed=seed,
        weights_sha256=weights_digest(out / "weights.pt"),
        device=str(dev),
        torch_threads=torch.get_num_threads(),
    )
    (out / "model.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))
    return TrainResult(out, best_error, best_epoch, epoch, seconds, final_loss, n_epochs, stopped_by, start_epoch)
