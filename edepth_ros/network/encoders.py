"""The two encoders: a timm RGB backbone and a small convolutional encoder for the embodied depth.

Both return four feature maps at strides 4, 8, 16 and 32 so that fusion and decoder skips line up.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .config import ModelConfig, NetworkConfigError

STRIDES = (4, 8, 16, 32)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def norm(channels: int, kind: str = "group") -> nn.Module:
    """``group``: per-sample statistics, so DDP with small per-GPU batches equals a bigger batch.
    ``batch``: folds into the preceding conv at export (TensorRT, ONNX Runtime), the vehicle's
    choice; multi-GPU training syncs it (SyncBatchNorm, see the trainer)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(math.gcd(channels, 8), channels)


def activation(kind: str = "gelu") -> nn.Module:
    """``relu`` fuses into the conv before it in TensorRT and ONNX Runtime; ``gelu`` does not."""
    return nn.ReLU(inplace=True) if kind == "relu" else nn.GELU()


def conv_block(cin: int, cout: int, stride: int = 1, norm_kind: str = "group", act: str = "gelu") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), norm(cout, norm_kind), activation(act),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False), norm(cout, norm_kind), activation(act))


class RGBEncoder(nn.Module):
    """timm backbone (``features_only``), normalising uint8-range input inside the graph."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        import timm

        kwargs = dict(features_only=True, pretrained=False)
        if cfg.pretrained_path:  # local weights only: nothing is downloaded at run time
            kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(cfg.pretrained_path)))
        elif cfg.pretrained:
            raise NetworkConfigError(
                "model.pretrained: true needs model.pretrained_path (a local weights file); "
                "weights are never downloaded at run time")
        try:
            self.body = timm.create_model(cfg.backbone, **kwargs)
        except Exception as exc:  # timm raises many types; name the key and the cause
            raise NetworkConfigError(f"model.backbone: could not build '{cfg.backbone}' "
                                     f"(pretrained_path={cfg.pretrained_path}): {exc}") from exc
        reductions = list(self.body.feature_info.reduction())
        channels = list(self.body.feature_info.channels())
        self.indices = []
        for s in STRIDES:
            if s not in reductions:
                raise NetworkConfigError(
                    f"model.backbone: '{cfg.backbone}' has feature strides {reductions}; "
                    f"need {list(STRIDES)}")
            self.indices.append(len(reductions) - 1 - reductions[::-1].index(s))
        self.channels = [channels[i] for i in self.indices]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0, persistent=False)

    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        """rgb: (B, 3, H, W) float in [0, 255]."""
        x = (rgb - self.mean) / self.std
        feats = self.body(x)
        return [feats[i] for i in self.indices]


def embodied_channels(embodied: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """(B, 2, H, W) [depth m (0 = none), confidence] -> (B, 3, H, W) [log depth / log max, valid, conf]."""
    depth, conf = embodied[:, 0:1], embodied[:, 1:2]
    valid = (depth > 0).to(depth.dtype)
    logd = torch.log(depth.clamp(min_depth, max_depth)) / math.log(max_depth) * valid
    return torch.cat([logd, valid, conf.clamp(0, 1) * valid], dim=1)


class DepthEncoder(nn.Module):
    """Strided conv pyramid over the normalised embodied depth, at the RGB encoder's strides."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = [int(x) for x in cfg.depth_channels]
        k, a = cfg.norm, cfg.act
        self.stem = nn.Sequential(conv_block(3, c[0] // 2 or 1, 2, k, a), conv_block(c[0] // 2 or 1, c[0], 2, k, a))
        self.stages = nn.ModuleList([conv_block(c[i - 1], c[i], 2, k, a) for i in range(1, 4)])
        self.channels = c

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats
