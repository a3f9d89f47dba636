"""Labelled frames for training: loading (DeepLabCut, SLEAP), the seeded split, and augmentation.

Sources accepted by :func:`load_labelled_frames`:

- a DeepLabCut project folder (``config.yaml`` + ``labeled-data/<video>/CollectedData_<scorer>.h5``),
- a DeepLabCut ``labeled-data/<video>`` folder, or one ``CollectedData_*.h5``/``.csv`` file (image
  paths in it are relative to the project folder two levels up),
- a SLEAP ``.slp`` / ``.pkg.slp`` file (user-labelled instances; images from its videos or embedded).

Images are read once and kept in memory at the model's input scale (a few hundred frames).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pose_models.geometry import preprocess, to_original

__all__ = [
    "LabelledFrames",
    "LabelsError",
    "augment",
    "infer_symmetry",
    "load_labelled_frames",
    "make_split",
    "preprocess",
    "to_original",
]


class LabelsError(ValueError):
    """A labelled-data source is unusable (missing images, no labels, several animals...)."""


@dataclass
class LabelledFrames:
    """Human-labelled frames: images and keypoints (original pixels, NaN where unlabelled)."""

    names: list[str]
    images: list[np.ndarray]  # RGB uint8, original size
    keypoints: np.ndarray  # (N, K, 2)
    keypoint_names: list[str]
    skeleton: list[list[str]] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        if not (len(self.names) == len(self.images) == len(self.keypoints)):
            raise LabelsError("expected one image and one row of keypoints per labelled frame")
        if len(self.names) == 0:
            raise LabelsError(f"{self.source}: expected labelled frames, got none")


def _dlc_label_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if (path / "config.yaml").is_file() and (path / "labeled-data").is_dir():
        files = sorted((path / "labeled-data").glob("*/CollectedData_*.h5"))
        if not files:
            files = sorted((path / "labeled-data").glob("*/CollectedData_*.csv"))
        return files
    files = sorted(path.glob("CollectedData*.h5")) or sorted(path.glob("CollectedData*.csv"))
    return files


def _load_dlc(path: Path) -> LabelledFrames:
    from pose_models.io import load_poses

    files = _dlc_label_files(path)
    if not files:
        raise LabelsError(
            f"{path}: expected a DeepLabCut project (config.yaml, labeled-data/*/CollectedData_*.h5), a "
            "labeled-data folder or a CollectedData file, got none of them"
        )
    names: list[str] = []
    keypoints = []
    keypoint_names: list[str] | None = None
    missing: list[str] = []
    images = []
    for file in files:
        ds = load_poses(file)
        if ds.attrs.get("kind") != "labels" or "image" not in ds.coords:
            raise LabelsError(f"{file}: expected human labels (CollectedData, image paths), got predictions")
        if ds.sizes["individuals"] != 1:
            raise LabelsError(f"{file}: expected one animal per frame (multi-animal training is not supported yet)")
        kp = [str(k) for k in ds["keypoints"].values]
        if keypoint_names is None:
            keypoint_names = kp
        elif kp != keypoint_names:
            raise LabelsError(f"{file}: expected keypoints {keypoint_names}, got {kp}")
        # DeepLabCut image paths are relative to the project folder (labeled-data/<video>/img.png)
        project = file.resolve().parents[2] if len(file.resolve().parents) > 2 else file.parent
        for rel, xy in zip(ds["image"].values, ds["position"].values[:, :, :, 0].transpose(0, 2, 1), strict=True):
            rel = str(rel)
            # DeepLabCut: relative to the project; lightning-pose keeps CollectedData.csv at the project root
            candidates = [project / rel, file.parent / rel, file.parent / Path(rel).name]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                missing.append(rel)
                continue
            image = cv2.imread(str(found), cv2.IMREAD_COLOR)
            if image is None:
                missing.append(f"{rel} (unreadable)")
                continue
            names.append(rel)
            images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            keypoints.append(xy)
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise LabelsError(f"{path}: {len(missing)} labelled image(s) not found: {shown}")
    return LabelledFrames(names, images, np.asarray(keypoints, dtype=np.float64), keypoint_names or [], [], str(path))


def _load_sleap(path: Path) -> LabelledFrames:
    import sleap_io as sio

    labels = sio.load_slp(str(path))
    if len(labels.skeletons) != 1:
        raise LabelsError(f"{path}: expected one skeleton, got {len(labels.skeletons)}")
    node_names = list(labels.skeletons[0].node_names)
    names, images, keypoints, missing = [], [], [], set()
    for lf in labels.labeled_frames:
        user = [inst for inst in lf.instances if not isinstance(inst, sio.PredictedInstance)]
        if not user:
            continue
        if len(user) > 1:
            raise LabelsError(
                f"{path}: frame {lf.frame_idx} has {len(user)} labelled animals "
                "(multi-animal training is not supported yet)"
            )
        try:
            image = lf.image
        except Exception as exc:
            missing.add(f"{lf.video.filename} ({type(exc).__name__})")
            continue
        if image is None:
            missing.add(str(lf.video.filename))
            continue
        image = np.asarray(image)
        if image.ndim == 2 or image.shape[-1] == 1:
            image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
        names.append(f"{Path(str(lf.video.filename)).name}#{lf.frame_idx}")
        images.append(image.astype(np.uint8))
        keypoints.append(user[0].numpy())
    if missing:
        raise LabelsError(f"{path}: images of labelled frames cannot be read from: {', '.join(sorted(missing))}")
    if not names:
        raise LabelsError(f"{path}: holds no user-labelled instances to train on")
    skeleton = [list(e) for e in labels.skeletons[0].edge_names]
    return LabelledFrames(names, images, np.asarray(keypoints, dtype=np.float64), node_names, skeleton, str(path))


def load_labelled_frames(source: str | Path) -> LabelledFrames:
    """Load human-labelled frames from a DeepLabCut project/folder/file or a SLEAP file.

    Raises
    ------
    FileNotFoundError
        If the source does not exist.
    LabelsError
        If it holds no labels, several animals per frame, or labels whose images are missing (all listed).
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"labels not found: {path}")
    from pose_models.io import PoseFileError

    if path.name.lower().endswith(".slp"):
        return _load_sleap(path)
    try:
        return _load_dlc(path)
    except PoseFileError as exc:
        raise LabelsError(str(exc)) from exc


_SIDE = re.compile(r"(?i)(left|right|(?<![a-z])l(?=[_\s-])|(?<![a-z])r(?=[_\s-]))")


def infer_symmetry(keypoint_names: Sequence[str]) -> list[list[str]]:
    """Left/right keypoint pairs from their names (leftear/rightear, L_hindpaw/R_hindpaw, left_fore...)."""
    swap = {
        "left": "right",
        "right": "left",
        "Left": "Right",
        "Right": "Left",
        "LEFT": "RIGHT",
        "RIGHT": "LEFT",
        "l": "r",
        "r": "l",
        "L": "R",
        "R": "L",
    }
    names = list(keypoint_names)
    pairs = []
    for name in names:
        mirrored = _SIDE.sub(lambda m: swap.get(m.group(0), m.group(0)), name)
        if mirrored != name and mirrored in names and [mirrored, name] not in pairs:
            pairs.append([name, mirrored])
    return pairs


def make_split(names: Sequence[str], test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded random train/test split of frame indices (at least one frame on each side)."""
    n = len(names)
    if not 0 < test_fraction < 1:
        raise ValueError(f"expected 0 < test_fraction < 1, got {test_fraction}")
    if n < 2:
        raise LabelsError(f"expected at least 2 labelled frames to split, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = min(max(1, round(n * test_fraction)), n - 1)
    return sorted(order[n_test:].tolist()), sorted(order[:n_test].tolist())


def save_split(path: Path, names: Sequence[str], train: Sequence[int], test: Sequence[int], **meta: object) -> None:
    """Write the split (frame names on each side) to JSON."""
    path.write_text(
        json.dumps({**meta, "train": [names[i] for i in train], "test": [names[i] for i in test]}, indent=1)
    )


def augment(
    image: np.ndarray,
    keypoints: np.ndarray,
    rng: np.random.Generator,
    cfg,
    swap: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Random flip (swapping left/right keypoints), rotation, scale, shift, brightness/contrast, motion blur.

    Parameters
    ----------
    image
        Network-input image (H, W, 3) uint8.
    keypoints
        (K, 2) input-pixel coordinates, NaN where unlabelled; points pushed out of the frame become NaN.
    cfg
        :class:`pose_models.nets.model.AugmentConfig`.
    swap
        Index permutation that exchanges left and right keypoints, or None (then no flips).
    """
    h, w = image.shape[:2]
    kp = keypoints.copy()
    if cfg.flip and swap is not None and rng.random() < 0.5:
        image = image[:, ::-1]
        kp[:, 0] = (w - 1) - kp[:, 0]
        kp = kp[swap]
    angle = rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)
    scale = rng.uniform(*cfg.scale)
    shift = rng.uniform(-cfg.translate_fraction, cfg.translate_fraction, 2) * (w, h)
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
    m[:, 2] += shift
    fill = tuple(float(v) for v in image.reshape(-1, 3).mean(axis=0))
    image = cv2.warpAffine(
        np.ascontiguousarray(image), m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=fill
    )
    kp = kp @ m[:, :2].T + m[:, 2]
    outside = (kp[:, 0] < 0) | (kp[:, 0] > w - 1) | (kp[:, 1] < 0) | (kp[:, 1] > h - 1)
    kp[outside] = np.nan
    alpha = rng.uniform(*cfg.contrast)
    beta = rng.uniform(-cfg.brightness, cfg.brightness)
    image = cv2.convertScaleAbs(image, alpha=alpha, beta=beta)
    if rng.random() < cfg.motion_blur_p:
        length = int(rng.integers(3, cfg.motion_blur_max_px + 1))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1.0 / length
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        image = cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))
    return image, kp
