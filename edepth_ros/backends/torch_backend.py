"""PyTorch eager backend: the reference the exported graphs are checked against, and for development.

It runs the same ``network.DeployNet`` that ``edepth export`` writes to ONNX, so a difference
between this backend and ONNX Runtime / TensorRT is an export or runtime problem, not a model one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..model_io import ModelFileError, read_sidecar, sha256_file
from .base import Backend, BackendError

log = logging.getLogger(__name__)


def load_network(checkpoint):
    """(DepthNet in eval mode, checkpoint metadata dict) from a checkpoint file.

    Wraps ``network.load_checkpoint`` so that a missing or corrupt file is a ModelFileError naming it.
    """
    from ..network import CheckpointError, load_checkpoint

    path = Path(checkpoint)
    if not path.is_file():
        raise ModelFileError(f"{path}: checkpoint not found; train one with `edepth train` or fix the path")
    try:
        net = load_checkpoint(path)
    except CheckpointError as exc:  # already names the file and the cure
        raise ModelFileError(str(exc)) from exc
    except Exception as exc:  # anything else from torch.load: still name the file
        raise ModelFileError(f"{path}: cannot load checkpoint ({type(exc).__name__}: {str(exc)[:300]}); "
                             "the file is corrupt or not an edepth checkpoint") from exc
    return net.eval(), dict(getattr(net, "checkpoint_meta", {}) or {})


class TorchBackend(Backend):
    OPTIONS = ("device", "threads", "text", "half")

    def __init__(self, module: torch.nn.Module, input_size: Optional[tuple[int, int]] = None,
                 max_depth: Optional[float] = None, device: Optional[str] = None, threads: Optional[int] = None,
                 half: bool = False):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if threads:
            torch.set_num_threads(int(threads))
        self.device = torch.device(device)
        self.half = bool(half) and self.device.type == "cuda"
        self.module = module.eval().to(self.device)
        size = input_size if input_size is not None else getattr(module, "input_size", None)
        self.input_size = None if size is None else (int(size[0]), int(size[1]))
        self.max_depth = float(max_depth if max_depth is not None else getattr(module, "max_depth", 80.0))
        self.name = f"torch-{self.device.type}"

    @classmethod
    def from_file(cls, path, text: Optional[str] = None, **kw) -> "TorchBackend":
        """From a checkpoint (.pt: latent from ``text``, else the one learned in training) or from an
        exported .onnx (its sidecar names the checkpoint and holds the baked latent: the same graph)."""
        from ..network import DeployNet

        path = Path(path)
        if path.suffix.lower() == ".onnx":
            spec = read_sidecar(path)
            if not spec.checkpoint:
                raise ModelFileError(f"{path}: its sidecar names no checkpoint; PyTorch needs the .pt file")
            ckpt = spec.checkpoint_file(path)
            if spec.checkpoint_sha256 and ckpt.is_file() and sha256_file(ckpt) != spec.checkpoint_sha256:
                raise ModelFileError(f"{ckpt}: sha256 differs from the one {path} was exported from; "
                                     "re-export, or point the sidecar at the original checkpoint")
            net, _ = load_network(ckpt)
            lat = spec.text_latent or {}
            module = DeployNet(net, lat.get("mu"), lat.get("sigma"))
        else:
            net, _ = load_network(path)
            mu = sigma = None
            if text:
                from ..export import latent_for_texts

                mu, sigma = latent_for_texts(net, [text])
            module = DeployNet(net, mu, sigma)
        return cls(module, **kw)

    @torch.inference_mode()
    def _infer(self, rgb: np.ndarray, embodied: np.ndarray):
        depth, conf = self.infer_batch(rgb[None], embodied[None])
        return depth[0, 0], conf[0, 0]

    @torch.inference_mode()
    def infer_batch(self, rgb: np.ndarray, embodied: np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device)
        e = torch.from_numpy(np.ascontiguousarray(embodied)).to(self.device)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half):
            depth, conf = self.module(x, e)
        return depth.float().cpu().numpy(), conf.float().cpu().numpy()

    def describe(self) -> dict:
        d = super().describe()
        d.update(device=str(self.device), threads=torch.get_num_threads(), torch=torch.__version__)
        return d

    def close(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


__all__ = ["TorchBackend", "BackendError", "load_network"]
