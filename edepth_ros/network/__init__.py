"""The vision-language depth network (PyTorch): build, run, save and load it.

``build_model(config)`` takes a registered name ("demo", "realtime", "paper"), a ``ModelConfig``,
a mapping (the ``model:`` section of a YAML file) or the path of a YAML file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from .config import ModelConfig, NetworkConfigError, project_root
from .model import DeployNet, DepthNet
from .registry import MODEL_CONFIGS, get_config

__all__ = ["build_model", "model_config", "DepthNet", "DeployNet", "load_checkpoint", "save_checkpoint",
           "read_checkpoint", "ModelConfig", "MODEL_CONFIGS", "NetworkConfigError", "CheckpointError",
           "text_latent"]


def model_config(config: Any) -> ModelConfig:
    """Resolve any accepted form of model configuration to a validated ``ModelConfig``."""
    if isinstance(config, ModelConfig):
        return config.validate()
    if isinstance(config, str) and config in MODEL_CONFIGS:
        return get_config(config).validate()
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if not path.is_file():
            raise NetworkConfigError(f"model config '{config}': neither a registered model {sorted(MODEL_CONFIGS)} "
                                     "nor an existing YAML file")
        import yaml

        data = yaml.safe_load(path.read_text()) or {}
        if "model" not in data:
            raise NetworkConfigError(f"{path}: missing key 'model' (the network's settings)")
        return ModelConfig.from_dict(data["model"], root=project_root(path.parent))
    if isinstance(config, Mapping):
        return ModelConfig.from_dict(config)
    raise NetworkConfigError(f"model config: cannot use a {type(config).__name__}")


def build_model(config: Any) -> DepthNet:
    """A freshly initialised ``DepthNet`` (random init, or backbone weights from a local file)."""
    return DepthNet(model_config(config))


def text_latent(net: DepthNet, embeddings) -> tuple:
    """(mu, sigma) for a deployment from sentence embeddings (N, text_dim): the VAE's mean over them."""
    import torch

    emb = torch.as_tensor(embeddings, dtype=torch.float32)
    if emb.dim() == 1:
        emb = emb[None]
    with torch.no_grad():
        mu, logvar = net.encode_text(emb.to(net.latent_mu.device))
    return mu.mean(0), torch.exp(0.5 * logvar).mean(0)
