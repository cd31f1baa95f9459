"""The textual VAE: a sentence embedding -> MLP -> mu and log sigma^2 of the depth latent."""

from __future__ import annotations

import torch
import torch.nn as nn

LOGVAR_RANGE = (-10.0, 6.0)  # keeps exp(logvar / 2) finite in FP16


class TextVAE(nn.Module):
    def __init__(self, text_dim: int, hidden: tuple, latent_dim: int):
        super().__init__()
        layers, c = [], text_dim
        for h in hidden:
            layers += [nn.Linear(c, int(h)), nn.GELU()]
            c = int(h)
        self.body = nn.Sequential(*layers)
        self.mu = nn.Linear(c, latent_dim)
        self.logvar = nn.Linear(c, latent_dim)
        self.text_dim = text_dim

    def forward(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if embedding.dim() != 2 or embedding.shape[1] != self.text_dim:
            raise ValueError(f"text embedding: expected shape (B, {self.text_dim}), got {tuple(embedding.shape)}; "
                             "model.text_dim must match the text encoder's output size")
        x = self.body(embedding)
        return self.mu(x), self.logvar(x).clamp(*LOGVAR_RANGE)


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over the latent, mean over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(dim=1).mean()


def kl_eps(eps: torch.Tensor) -> torch.Tensor:
    """WorDepth's KL on the sampler's local samples: their pooled mean/std per channel vs N(0, 1)."""
    m = eps.mean(dim=(2, 3))
    var = eps.var(dim=(2, 3), unbiased=False).clamp_min(1e-6)
    return (0.5 * (var + m.pow(2) - 1 - var.log())).sum(dim=1).mean()
