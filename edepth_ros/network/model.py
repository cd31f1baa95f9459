"""DepthNet (trained) and DeployNet (exported): one module, two paths.

- text path: z = mu + sigma * eps, eps ~ N(0, 1), (mu, sigma) from the text VAE; no image skips.
- image path: eps_img from the conditional sampler over the fused RGB/depth features,
  z = mu + eps_img * sigma; skips from both encoders. This is what runs on the vehicle.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn

from .config import ModelConfig
from .decoder import Decoder
from .encoders import DepthEncoder, RGBEncoder, embodied_channels
from .fusion import CrossAttentionFusion
from .sampler import ConditionalSampler
from .text_vae import TextVAE, kl_eps, kl_normal

PATHS = ("image", "text")


class DepthNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.rgb_encoder = RGBEncoder(cfg)
        rc = self.rgb_encoder.channels
        dc = list(cfg.depth_channels) if cfg.depth_branch else [0, 0, 0, 0]
        self.depth_encoder = DepthEncoder(cfg) if cfg.depth_branch else None
        self.fusion = nn.ModuleDict()
        if cfg.depth_branch:
            for lvl in cfg.fusion_levels:
                self.fusion[str(int(lvl))] = CrossAttentionFusion(rc[lvl], dc[lvl], cfg.fusion_dim, cfg.fusion_heads)
        latent = cfg.latent_dim if cfg.text_vae else 0
        if cfg.text_vae:
            self.text_vae = TextVAE(cfg.text_dim, tuple(cfg.text_hidden), cfg.latent_dim)
            self.sampler = ConditionalSampler(rc[3] + dc[3], cfg.latent_dim, cfg.sampler_dim,
                                              cfg.sampler_layers, cfg.sampler_heads)
        else:
            self.text_vae = None
            self.sampler = None
        # The latent the deployed graph uses when no text is given: running mean of mu / sigma.
        self.register_buffer("latent_mu", torch.zeros(max(latent, 1)))
        self.register_buffer("latent_sigma", torch.ones(max(latent, 1)))
        skip_channels = [rc[i] + dc[i] for i in (2, 1, 0)]
        self.decoder = Decoder(latent + rc[3] + dc[3], skip_channels, cfg.decoder_channels, cfg.head_channels,
                               3 if cfg.depth_branch else 0, cfg.max_depth, gate=cfg.embodied_residual,
                               norm_kind=cfg.norm, act=cfg.act)

    # ------------------------------------------------------------------ pieces
    def encode_text(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentence embedding (B, text_dim) -> (mu, logvar), each (B, latent_dim)."""
        if self.text_vae is None:
            raise RuntimeError("this model has no text VAE (model.text_vae: false)")
        return self.text_vae(embedding)

    def encode_image(self, rgb: torch.Tensor, embodied: torch.Tensor):
        """rgb uint8/float (B, H, W, 3); embodied (B, 2, H, W) -> per-level features (fused)."""
        h, w = rgb.shape[1:3]
        if embodied.shape[0] != rgb.shape[0] or embodied.shape[1] != 2 or tuple(embodied.shape[2:]) != (h, w):
            raise ValueError(f"embodied: expected shape ({rgb.shape[0]}, 2, {h}, {w}) to match rgb "
                             f"{tuple(rgb.shape)}, got {tuple(embodied.shape)}")
        x = rgb.float().permute(0, 3, 1, 2)  # cast first: TensorRT rejects a Transpose on uint8
        feats = self.rgb_encoder(x)
        if self.depth_encoder is None:
            return feats, None
        emb = embodied_channels(embodied.float(), self.cfg.min_depth, self.cfg.max_depth)
        dfeats = self.depth_encoder(emb)
        for key, block in self.fusion.items():
            lvl = int(key)
            feats[lvl] = block(feats[lvl], dfeats[lvl])
        feats = [torch.cat([f, d], dim=1) for f, d in zip(feats, dfeats)]
        return feats, emb

    def _decode(self, z, feats, emb):
        bottleneck = feats[3] if z is None else torch.cat([z, feats[3]], dim=1)
        skips = [feats[2], feats[1], feats[0]]
        full = emb
        if emb is None:  # no depth branch: an empty full-resolution input keeps the decoder uniform
            full = feats[0].new_zeros(feats[0].shape[0], 0, feats[0].shape[-2] * 4, feats[0].shape[-1] * 4)
        log_depth, conf_logit, gate_logit = self.decoder(bottleneck, skips, full)
        if gate_logit is not None and emb is not None:
            # convex blend with the embodied log depth where it exists: stays within (0, max_depth]
            e_log = emb[:, 0:1].float() * math.log(self.cfg.max_depth)
            g = torch.sigmoid(gate_logit) * emb[:, 1:2].float()
            log_depth = log_depth + g * (e_log - log_depth)
        return log_depth, conf_logit

    # ------------------------------------------------------------------ paths
    def forward(self, rgb: torch.Tensor, embodied: torch.Tensor, text_embedding: torch.Tensor | None = None,
                path: str = "image", mu: torch.Tensor | None = None, sigma: torch.Tensor | None = None) -> dict:
        """Returns dict(depth, confidence, log_depth, conf_logit, kl_text, kl_eps, mu, logvar).

        text_embedding (B, text_dim) gives (mu, sigma) through the VAE; else the given (mu, sigma)
        (latent,) or (B, latent) are used; else the running latent learned in training.
        """
        if path not in PATHS:
            raise ValueError(f"path: '{path}' is not one of {PATHS}")
        zero = rgb.new_zeros((), dtype=torch.float32)
        out = dict(kl_text=zero, kl_eps=zero, mu=None, logvar=None)
        b = rgb.shape[0]
        feats, emb = self.encode_image(rgb, embodied) if path == "image" else (None, None)
        if self.text_vae is None:
            if path == "text":
                raise ValueError("path: 'text' needs a text VAE; this model has model.text_vae: false")
            log_depth, conf_logit = self._decode(None, feats, emb)
            return self._finish(out, log_depth, conf_logit)
        if text_embedding is not None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and path == "text"):
                mu_b, logvar = self.encode_text(text_embedding.float())  # frozen VAE in the image path
            sigma_b = torch.exp(0.5 * logvar)
            out.update(mu=mu_b, logvar=logvar, kl_text=kl_normal(mu_b, logvar))
            if self.training:
                with torch.no_grad():  # running latent for deployment without text
                    self.latent_mu.lerp_(mu_b.mean(0), 0.01)
                    self.latent_sigma.lerp_(sigma_b.mean(0), 0.01)
        else:
            if path == "text":
                raise ValueError("path: 'text' needs text_embedding")
            mu_b = self.latent_mu if mu is None else mu
            sigma_b = self.latent_sigma if sigma is None else sigma
            mu_b = mu_b.reshape(-1, self.cfg.latent_dim).expand(b, -1)
            sigma_b = sigma_b.reshape(-1, self.cfg.latent_dim).expand(b, -1)
        if path == "text":
            H, W = rgb.shape[1:3]
            h, w = H // 32, W // 32
            eps = torch.randn(b, self.cfg.latent_dim, h, w, device=rgb.device) if self.training else \
                torch.zeros(b, self.cfg.latent_dim, h, w, device=rgb.device)
            z = mu_b[:, :, None, None] + eps * sigma_b[:, :, None, None]
            rc, dc = self.rgb_encoder.channels, (self.cfg.depth_channels if self.cfg.depth_branch else [0] * 4)
            feats = [z.new_zeros(b, rc[i] + dc[i], H // s, W // s) for i, s in enumerate((4, 8, 16, 32))]
            emb = z.new_zeros(b, 3, H, W) if self.cfg.depth_branch else None
        else:
            eps = self.sampler(feats[3], mu_b, sigma_b)
            out["kl_eps"] = kl_eps(eps.float())
            z = mu_b.detach()[:, :, None, None] + eps * sigma_b.detach()[:, :, None, None]
        # the text path feeds the decoder zero skips: its batch statistics must not move the running
        # BatchNorm statistics that the deployed image path uses (model.norm: batch)
        with _running_stats_frozen(self.decoder) if path == "text" else contextlib.nullcontext():
            log_depth, conf_logit = self._decode(z, feats, emb)
        return self._finish(out, log_depth, conf_logit)

    def _finish(self, out: dict, log_depth: torch.Tensor, conf_logit: torch.Tensor) -> dict:
        out.update(log_depth=log_depth, conf_logit=conf_logit, depth=torch.exp(log_depth),
                   confidence=torch.sigmoid(conf_logit))
        return out

    def image_forward(self, rgb, embodied, mu=None, sigma=None):
        out = self.forward(rgb, embodied, path="image", mu=mu, sigma=sigma)
        return out["depth"], out["confidence"]


@contextlib.contextmanager
def _running_stats_frozen(module: nn.Module):
    """BatchNorm layers still normalise with the batch's statistics but leave their running ones
    as they are (momentum 0)."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom


class DeployNet(nn.Module):
    """The exported graph: the image path with the text latent (mu, sigma) as constant buffers.

    forward(rgb uint8 (B, H, W, 3), embodied float32 (B, 2, H, W)) -> (depth (B, 1, H, W) in
    (0, max_depth], confidence (B, 1, H, W) in [0, 1]). mu / sigma default to the running latent
    learned in training.
    """

    def __init__(self, net: DepthNet, mu: torch.Tensor | None = None, sigma: torch.Tensor | None = None):
        super().__init__()
        self.net = net
        latent = net.cfg.latent_dim if net.cfg.text_vae else 1
        mu = net.latent_mu.detach().clone() if mu is None else torch.as_tensor(mu, dtype=torch.float32).reshape(-1)
        sigma = net.latent_sigma.detach().clone() if sigma is None else torch.as_tensor(sigma, dtype=torch.float32).reshape(-1)
        for name, t in (("mu", mu), ("sigma", sigma)):
            if t.numel() != latent:
                raise ValueError(f"DeployNet {name}: expected {latent} values (model.latent_dim), got {t.numel()}")
        if (sigma <= 0).any() or not torch.isfinite(sigma).all() or not torch.isfinite(mu).all():
            raise ValueError("DeployNet sigma: must be finite and > 0 (it is exp(logvar / 2))")
        self.register_buffer("mu", mu.float().to(net.latent_mu.device))
        self.register_buffer("sigma", sigma.float().to(net.latent_mu.device))
        self.max_depth = float(net.cfg.max_depth)
        self.input_size = tuple(net.cfg.input_size)

    def forward(self, rgb: torch.Tensor, embodied: torch.Tensor):
        if self.net.cfg.text_vae:
            depth, conf = self.net.image_forward(rgb, embodied, self.mu, self.sigma)
        else:
            depth, conf = self.net.image_forward(rgb, embodied)
        return depth.clamp(max=self.max_depth), conf
