"""The pose network: a backbone, a small feature pyramid, and heads (registries for both).

``PoseNet`` = EfficientNet-Lite0 (cut at stride 8 or 16) -> top-down FPN merging the stride-16/8/4
features into one stride-4 (or 8) map -> heatmap and offset heads. ``ModelConfig`` is the strict
config (``configs/models/*.yaml``) saved with every trained model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from pose_models.nets.efficientnet_lite import EfficientNetLite0, load_imagenet_weights
from pose_models.nets.heads import HeatmapHead, OffsetHead

__all__ = ["BACKBONES", "AugmentConfig", "ModelConfig", "PoseNet", "TrainConfig"]

# Backbone name -> factory(out_stride, pretrained) returning a module with .channels and .out_stride.
BACKBONES: dict[str, Callable[[int, bool], nn.Module]] = {
    "efficientnet_lite0": lambda out_stride, pretrained: (
        load_imagenet_weights(EfficientNetLite0(out_stride)) if pretrained else EfficientNetLite0(out_stride)
    ),
}

# Input normalisation of the Lite models: x / 127.5 - 1 (applied inside the exported graph too).
INPUT_MEAN = 127.5
INPUT_STD = 127.5


class AugmentConfig(BaseModel):
    """Training augmentation suited to lab video."""

    model_config = ConfigDict(extra="forbid")
    rotation_deg: float = Field(25.0, ge=0)
    scale: tuple[float, float] = (0.75, 1.25)
    translate_fraction: float = Field(0.08, ge=0)
    flip: bool = True
    brightness: float = Field(25.0, ge=0, description="Max added grey level.")
    contrast: tuple[float, float] = (0.7, 1.3)
    motion_blur_p: float = Field(0.2, ge=0, le=1)
    motion_blur_max_px: int = Field(9, ge=3)


class TrainConfig(BaseModel):
    """Optimisation and stopping."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    val_fraction: float = Field(0.1, ge=0, lt=1, description="Share of training frames held out for early stopping.")
    patience_epochs: int = Field(40, ge=1)
    max_minutes: float | None = Field(
        None, gt=0, description="Stop after this long; the learning-rate decay is timed to end by then."
    )
    frozen_layers: int = Field(
        0,
        ge=0,
        description=(
            "The first N layers of the backbone (the stem, then its MBConv blocks in order) keep their "
            "pretrained weights and batch-norm statistics; no gradient flows through them, which cuts "
            "a CPU training step by a third (N=5) to a half (N=8)."
        ),
    )
    augment: AugmentConfig = AugmentConfig()


class ModelConfig(BaseModel):
    """A pose model: architecture, input geometry, heads and training (``configs/models/*.yaml``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = "efficientnet_lite0_s16"
    backbone: Literal["efficientnet_lite0"] = "efficientnet_lite0"
    pretrained: bool = True
    out_stride: Literal[8, 16] = 16
    head_stride: Literal[4, 8] = 4
    neck_channels: int = Field(64, ge=8)
    input_scale: float = Field(0.5, gt=0, le=2, description="Frames are resized by this factor.")
    crop: tuple[int, int, int, int] | None = Field(None, description="Region [x, y, w, h] of the original frame.")
    sigma_cells: float = Field(1.0, gt=0)
    offset_radius_cells: float = Field(2.0, gt=0)
    train: TrainConfig = TrainConfig()


class PoseNet(nn.Module):
    """Backbone + FPN neck + heatmap/offset heads.

    Input: float tensor ``(B, 3, H, W)`` of RGB values 0-255 (H, W multiples of ``out_stride``);
    normalisation happens inside, so the exported ONNX graph takes raw pixels.
    Output: ``(heatmap_logits (B, K, H/s, W/s), offsets (B, 2K, H/s, W/s))`` with s = ``head_stride``.
    """

    def __init__(self, n_keypoints: int, config: ModelConfig, *, pretrained: bool | None = None) -> None:
        super().__init__()
        self.config = config
        self.n_keypoints = n_keypoints
        use_pretrained = config.pretrained if pretrained is None else pretrained
        self.backbone = BACKBONES[config.backbone](config.out_stride, use_pretrained)
        strides = [4, 8, 16][: len(self.backbone.channels)]
        keep = [i for i, s in enumerate(strides) if s >= config.head_stride]
        self.keep = keep
        c = config.neck_channels
        self.lateral = nn.ModuleList(nn.Conv2d(self.backbone.channels[i], c, 1) for i in keep)
        self.smooth = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False),
            nn.BatchNorm2d(c),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
        )
        self.heatmap = HeatmapHead(c, n_keypoints, sigma_cells=config.sigma_cells)
        self.offset = OffsetHead(c, n_keypoints, radius_cells=config.offset_radius_cells)
        self.register_buffer("mean", torch.tensor(INPUT_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(INPUT_STD), persistent=False)
        self.frozen: list[nn.Module] = []

    def freeze_backbone(self, n_layers: int) -> None:
        """Fix the first ``n_layers`` backbone layers (the stem, then blocks): weights and BN statistics.

        The early layers of an ImageNet backbone find edges and blobs that suit any video. Frozen, they
        need no backward pass through the largest feature maps, and their batch norms run on their
        ImageNet statistics in training as in inference (as detectron2's FrozenBatchNorm does), so
        training and inference see the same network.

        Raises
        ------
        ValueError
            When ``n_layers`` exceeds the backbone's layers.
        """
        layers = [self.backbone.stem, *self.backbone.blocks]
        if not 0 <= n_layers <= len(layers):
            raise ValueError(f"expected train.frozen_layers in 0..{len(layers)} (stem + blocks), got {n_layers}")
        self.frozen = layers[:n_layers]
        for layer in self.frozen:
            layer.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> PoseNet:
        """Set training mode; frozen backbone layers stay in eval mode (fixed BN statistics)."""
        super().train(mode)
        for layer in self.frozen:
            layer.eval()
        return self

    @property
    def stride(self) -> int:
        """Input pixels per output cell."""
        return self.config.head_stride

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.backbone((x - self.mean) / self.std)
        feats = [feats[i] for i in self.keep]
        # top-down: start from the deepest map, upsample and add each shallower lateral
        y = self.lateral[-1](feats[-1])
        for lateral, feat in zip(reversed(self.lateral[:-1]), reversed(feats[:-1]), strict=True):
            y = F.interpolate(y, size=feat.shape[-2:], mode="bilinear", align_corners=False) + lateral(feat)
        y = self.smooth(y)
        return self.heatmap(y), self.offset(y)
