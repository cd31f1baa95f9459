"""The conditional sampler: transformer blocks over the fused image features give h x w local
samples eps_img that replace the VAE's Gaussian noise, z = mu + eps_img * sigma."""

from __future__ import annotations

import torch
import torch.nn as nn


class ConditionalSampler(nn.Module):
    def __init__(self, in_channels: int, latent_dim: int, dim: int, layers: int, heads: int):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, dim, 1)
        self.pos = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.cond = nn.Linear(2 * latent_dim, dim)  # (mu, sigma), detached, broadcast to the map
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(dim, latent_dim)

    def forward(self, feat: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        b, _, h, w = feat.shape
        x = self.inp(feat)
        x = x + self.pos(x)
        x = x.flatten(2).transpose(1, 2)
        x = x + self.cond(torch.cat([mu, sigma], dim=1).detach()).unsqueeze(1)
        x = self.out(self.blocks(x))
        return x.transpose(1, 2).reshape(b, -1, h, w)
