"""Registered model configurations, by name (``model.arch`` in a YAML file picks one).

- ``demo``: small enough to train on a 2-core CPU in about 20 minutes (96 x 320).
- ``realtime``: the vehicle model, sized for Jetson Orin at 30 fps with TensorRT FP16 (192 x 640).
- ``paper``: paper fidelity, large backbone at 352 x 1216, max depth 80 m.
"""

from __future__ import annotations

from .config import ModelConfig

MODEL_CONFIGS: dict[str, ModelConfig] = {
    "demo": ModelConfig(
        name="demo", backbone="regnetx_002", input_size=(96, 320), max_depth=80.0,
        depth_channels=(8, 16, 32, 64), fusion_levels=(2, 3), fusion_dim=64, fusion_heads=4,
        text_dim=384, text_hidden=(128,), latent_dim=32, sampler_dim=64, sampler_layers=1,
        sampler_heads=4, decoder_channels=(96, 64, 32, 16), head_channels=8, embodied_residual=True),
    "realtime": ModelConfig(
        name="realtime", backbone="efficientnet_b0", input_size=(192, 640), max_depth=80.0,
        depth_channels=(16, 32, 64, 128), fusion_levels=(2, 3), fusion_dim=128, fusion_heads=4,
        text_dim=384, text_hidden=(256,), latent_dim=64, sampler_dim=128, sampler_layers=2,
        sampler_heads=4, decoder_channels=(192, 96, 48, 24), head_channels=16, embodied_residual=True,
        norm="batch"),
    "paper": ModelConfig(
        name="paper", backbone="convnext_large", input_size=(352, 1216), max_depth=80.0,
        depth_channels=(32, 64, 128, 256), fusion_levels=(2, 3), fusion_dim=256, fusion_heads=8,
        text_dim=384, text_hidden=(512, 256), latent_dim=128, sampler_dim=256, sampler_layers=4,
        sampler_heads=8, decoder_channels=(512, 256, 128, 64), head_channels=32),
}


def get_config(name: str) -> ModelConfig:
    from dataclasses import replace

    from .config import NetworkConfigError

    if name not in MODEL_CONFIGS:
        raise NetworkConfigError(f"model.arch: unknown model '{name}'; registered: {sorted(MODEL_CONFIGS)}")
    return replace(MODEL_CONFIGS[name])
