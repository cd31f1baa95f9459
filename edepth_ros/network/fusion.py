"""Cross-attention fusion: queries from RGB features, keys and values from embodied-depth features.

softmax(Q_rgb K_depth^T / sqrt(d)) V_depth, multi-head, added back to the RGB features (residual).
A depthwise 3x3 convolution gives positions (conditional position encoding), so the block works at
any input size and exports to ONNX as plain convolutions and matmuls.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class CrossAttentionFusion(nn.Module):
    def __init__(self, rgb_channels: int, depth_channels: int, dim: int, heads: int):
        super().__init__()
        self.q_proj = nn.Conv2d(rgb_channels, dim, 1)
        self.kv_proj = nn.Conv2d(depth_channels, dim, 1)
        self.q_pos = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.kv_pos = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.q_norm = nn.LayerNorm(dim)
        self.kv_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.out = nn.Conv2d(dim, rgb_channels, 1)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        b, _, h, w = rgb.shape
        q = self.q_proj(rgb)
        q = q + self.q_pos(q)
        kv = self.kv_proj(depth)
        kv = kv + self.kv_pos(kv)
        q = q.flatten(2).transpose(1, 2)  # (B, hw, dim)
        kv = kv.flatten(2).transpose(1, 2)
        kv_n = self.kv_norm(kv)
        x = q + self.attn(self.q_norm(q), kv_n, kv_n, need_weights=False)[0]
        x = x + self.ffn(self.ffn_norm(x))
        x = x.transpose(1, 2).reshape(b, -1, h, w)
        return rgb + self.out(x)
