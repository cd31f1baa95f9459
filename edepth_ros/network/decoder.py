"""The depth decoder shared by the text path and the image path.

Bottleneck (stride 32) = [z, fused features]; then up through strides 16, 8, 4 with skips from both
encoders, then to stride 2 and full resolution, where the normalised embodied depth joins once more.
Heads: metric depth bounded in [max_depth / 1000, max_depth] (a sigmoid in log space, so nothing
overflows in FP16) and a per-pixel confidence in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .encoders import activation, conv_block, norm


class Decoder(nn.Module):
    def __init__(self, bottleneck_in: int, skip_channels: list[int], channels: tuple, head: int,
                 full_res_in: int, max_depth: float, gate: bool = False, norm_kind: str = "group",
                 act: str = "gelu"):
        super().__init__()
        c = [int(x) for x in channels]
        k, a = norm_kind, act
        self.bottleneck = conv_block(bottleneck_in, c[0], 1, k, a)
        # skip_channels: per level 2, 1, 0 (strides 16, 8, 4)
        self.ups = nn.ModuleList([conv_block(c[i] + skip_channels[i], c[i + 1], 1, k, a) for i in range(3)])
        self.up_half = conv_block(c[3], head, 1, k, a)
        # one conv at full resolution: the costliest layer of the net on a CPU
        self.full = nn.Sequential(nn.Conv2d(head + full_res_in, head, 3, 1, 1, bias=False), norm(head, k), activation(a))
        self.depth_head = nn.Conv2d(head, 1, 3, 1, 1)
        self.conf_head = nn.Conv2d(head, 1, 3, 1, 1)
        self.gate_head = nn.Conv2d(head, 1, 3, 1, 1) if gate else None
        self.log_max = math.log(max_depth)
        self.log_min = math.log(max_depth / 1000.0)

    def forward(self, bottleneck: torch.Tensor, skips: list[torch.Tensor], full_res: torch.Tensor):
        x = self.bottleneck(bottleneck)
        for up, skip in zip(self.ups, skips):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = up(torch.cat([x, skip], dim=1))
        h, w = full_res.shape[-2:]
        x = F.interpolate(x, size=(h // 2, w // 2), mode="bilinear", align_corners=False)
        x = self.up_half(x)
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        x = self.full(torch.cat([x, full_res], dim=1))
        out = self._heads(x).float().clamp(-20.0, 20.0)
        log_depth = self.log_min + (self.log_max - self.log_min) * torch.sigmoid(out[:, 0:1])
        gate = None if self.gate_head is None else out[:, 2:3]
        return log_depth, out[:, 1:2], gate

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """Depth, confidence (and gate) logits from one convolution.

        The heads stay separate modules (checkpoints keep their keys), but run as one conv with their
        weights stacked: at full resolution a CPU runtime pads each 1-channel output to a whole
        channel block, so three 1-channel convs cost nearly three times one 3-channel conv.
        """
        heads = [self.depth_head, self.conf_head] + ([self.gate_head] if self.gate_head is not None else [])
        weight = torch.cat([h.weight for h in heads], dim=0)
        bias = torch.cat([h.bias for h in heads], dim=0)
        return F.conv2d(x, weight, bias, padding=1)
