"""Training a pose model from labelled frames: seeded split, augmentation, early stopping, checkpoints.

The trainer is small on purpose: the heads own their targets and losses, the data module owns
loading and augmentation; this module only loops. A model directory holds:

- ``model.yaml`` - the resolved config, keypoints, skeleton, left/right symmetry, input geometry;
- ``split.json`` - the seeded train/test split (frame names) and the seed;
- ``calibration.npz`` - up to 32 training-frame inputs, the activation ranges of the int8 export;
- ``weights.pt`` - the weights with the best validation error (the last epoch's without a validation
  share); ``checkpoint.pt`` - the last epoch
  (model, optimiser, epoch) to resume from; ``training_log.csv`` - loss and validation error per epoch.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
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

__all__ = ["TrainResult", "lr_factor", "pick_device", "train_model"]

INPUT_MULTIPLE = 16


@dataclass(frozen=True)
class TrainResult:
    """Outcome of a training run."""

    model_dir: Path
    best_val_error_px: float
    best_epoch: int
    epochs_run: int
    seconds: float


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
        The held-out test share and the seed of the split (saved in ``split.json``).
    epochs
        Override ``config.train.epochs``.
    device
        ``"cpu"``, ``"cuda"``...; default CUDA when available. On CUDA training uses mixed precision.
    pretrained
        Override ``config.pretrained`` (tests use random weights).
    progress
        Called as ``progress(epoch, epochs, {"loss": ..., "val_error_px": ...})`` after every epoch.
    """
    t_start = time.perf_counter()
    config = config or ModelConfig()
    train_cfg = config.train
    n_epochs = epochs or train_cfg.epochs
    frames = source if isinstance(source, LabelledFrames) else load_labelled_frames(source)
    out = Path(out_dir)
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
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(fit_idx) / train_cfg.batch_size))
    total_steps = n_epochs * steps_per_epoch
    warmup = min(3 * steps_per_epoch, total_steps // 10 + 1)
    budget_s = 60 * train_cfg.max_minutes if train_cfg.max_minutes is not None else None
    step = 0
    use_amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    stride = model.stride
    hw = (images.shape[1] // stride, images.shape[2] // stride)

    best_error, best_epoch = math.inf, 0
    log_path = out / "training_log.csv"
    with log_path.open("w", newline="") as fh:
        csv.writer(fh).writerow(["epoch", "loss", "val_error_px", "lr", "seconds"])
    epoch = 0
    for epoch in range(1, n_epochs + 1):
        model.train()
        order = rng.permutation(fit_idx)
        losses = []
        for b in range(0, len(order), train_cfg.batch_size):
            idx = order[b : b + train_cfg.batch_size]
            batch_img, batch_kp = [], []
            for i in idx:
                img, kp = augment(images[i], keypoints[i], rng, train_cfg.augment, swap if symmetry else None)
                batch_img.append(img)
                batch_kp.append(kp)
            kp = np.stack(batch_kp)
            visible = np.isfinite(kp).all(axis=-1).astype(np.float32)
            kp = np.nan_to_num(kp, nan=-1e4)
            hm_target = torch.from_numpy(model.heatmap.targets(kp, visible, hw, stride)).to(dev)
            off_target, off_mask = (torch.from_numpy(a).to(dev) for a in model.offset.targets(kp, visible, hw, stride))
            weight = torch.from_numpy(visible).to(dev)
            with torch.autocast(dev.type, enabled=use_amp):
                heatmap, offsets = model(_to_tensor(np.stack(batch_img), dev))
            loss = model.heatmap.loss(heatmap.float(), hm_target, weight) + model.offset.loss(
                offsets.float(), off_target, off_mask
            )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            lr = train_cfg.lr * lr_factor(step, total_steps, warmup, time.perf_counter() - t_start, budget_s)
            for group in optimizer.param_groups:
                group["lr"] = lr
            scaler.step(optimizer)
            scaler.update()
            step += 1
            losses.append(float(loss.detach()))
        val_error = math.nan
        if val_idx:
            pred, _ = predict_inputs(model, images[val_idx], dev)
            val_error = mean_error_px(to_original(pred, config.input_scale, config.crop), frames.keypoints[val_idx])
        # With a validation share keep the weights of the lowest validation error. Without one, keep the
        # last (annealed) weights: the loss on freshly augmented frames is too noisy to pick an epoch by.
        if not val_idx or val_error < best_error:
            best_error, best_epoch = (val_error if val_idx else float(np.mean(losses))), epoch
            torch.save(model.state_dict(), out / "weights.pt")
        torch.save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}, out / "checkpoint.pt"
        )
        elapsed = time.perf_counter() - t_start
        with log_path.open("a", newline="") as fh:
            csv.writer(fh).writerow(
                [
                    epoch,
                    f"{np.mean(losses):.5f}",
                    f"{val_error:.3f}",
                    f"{optimizer.param_groups[0]['lr']:.2e}",
                    f"{elapsed:.1f}",
                ]
            )
        if progress is not None:
            progress(epoch, n_epochs, {"loss": float(np.mean(losses)), "val_error_px": val_error})
        if epoch - best_epoch >= train_cfg.patience_epochs:
            break
        if train_cfg.max_minutes is not None and elapsed > 60 * train_cfg.max_minutes:
            break
    # a few training inputs (never test frames) from which the CPU int8 export takes its activation ranges
    write_calibration_frames(out, images[train_idx], seed=seed)
    metadata.update(
        best_epoch=best_epoch,
        best_val_error_px=best_error,
        epochs_run=epoch,
        weights_sha256=weights_digest(out / "weights.pt"),
        device=str(dev),
    )
    (out / "model.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))
    return TrainResult(out, best_error, best_epoch, epoch, time.perf_counter() - t_start)
