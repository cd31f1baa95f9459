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

from ..model_io import ModelFileError, read_sidecar, stale_export
from .base import BACKEND_OPTIONS, BackendError, BatchedBackend, check_threads

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


def torch_device(device) -> torch.device:
    """The ``device`` option: None (CUDA if PyTorch sees a GPU, else the CPU), "cpu" or "cuda[:N]"."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise BackendError(f"torch option device={device!r}: use 'cpu' or 'cuda[:N]' (or leave it unset)")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise BackendError(f"torch option device={device!r}: PyTorch sees no CUDA GPU here (a CPU build, no "
                               "driver, or CUDA_VISIBLE_DEVICES); use device='cpu' or leave it unset")
        if dev.index is not None and dev.index >= count:
            raise BackendError(f"torch option device={device!r}: PyTorch sees {count} CUDA GPU(s), "
                               f"cuda:0..cuda:{count - 1}")
    return dev


# fields of a model config that only say how training initialised the weights
_INIT_ONLY = ("pretrained", "pretrained_path")


def _check_same_config(net, exported: dict, checkpoint, model_path) -> None:
    """The checkpoint the sidecar names has the model config the ONNX was exported with: with no
    checkpoint_sha256 to compare (a hand-made or older sidecar), a checkpoint of another config ran as
    "the same graph" (max_depth 40 against the graph's 80: 19 m apart) or failed with a raw ValueError."""
    import json

    if not isinstance(exported, dict) or not exported:
        return
    have = json.loads(json.dumps(net.cfg.to_dict(), default=str))
    differ = sorted(k for k in set(exported) & set(have) if k not in _INIT_ONLY and exported[k] != have[k])
    if differ:
        shown = ", ".join(f"{k} {exported[k]!r} (checkpoint: {have[k]!r})" for k in differ[:4])
        raise ModelFileError(f"{model_path} was exported from a model config that {checkpoint} does not have: "
                             f"{shown}{' ...' if len(differ) > 4 else ''}; the sidecar names another "
                             "checkpoint: re-export, or give PyTorch the checkpoint (.pt) itself")


class TorchBackend(BatchedBackend):
    OPTIONS = BACKEND_OPTIONS["torch"]

    def __init__(self, module: torch.nn.Module, input_size: Optional[tuple[int, int]] = None,
                 max_depth: Optional[float] = None, device: Optional[str] = None, threads: Optional[int] = None,
                 half: bool = False):
        threads = check_threads(threads, "torch")
        self.device = torch_device(device)
        if threads:
            torch.set_num_threads(threads)
        self.half = bool(half) and self.device.type == "cuda"
        self.module = module.eval().to(self.device)
        size = input_size if input_size is not None else getattr(module, "input_size", None)
        self.input_size = None if size is None else (int(size[0]), int(size[1]))
        self.max_depth = float(max_depth if max_depth is not None else getattr(module, "max_depth", 80.0))
        self.name = f"torch-{self.device.type}"

    @classmethod
    def from_file(cls, path, text: Optional[str] = None, text_model: Optional[str] = None, **kw) -> "TorchBackend":
        """From a checkpoint (.pt: latent from ``text``, embedded with the encoder the checkpoint was
        trained with, found at ``text_model`` where it has moved; else the latent learned in training)
        or from an exported .onnx (its sidecar names the checkpoint and holds the baked latent and the
        size it was exported at: the same graph)."""
        from ..network import DeployNet

        path = Path(path)
        if text_model and not text:
            raise BackendError("torch option text_model: only used to embed the text option; give text too")
        if path.suffix.lower() == ".onnx":
            if text:
                raise BackendError(f"torch option text: {path} has its text latent baked in (sidecar); re-export "
                                   "it with --text, or give the checkpoint (.pt) with text")
            spec = read_sidecar(path)
            if not spec.checkpoint:
                raise ModelFileError(f"{path}: its sidecar names no checkpoint; PyTorch needs the .pt file")
            stale = stale_export(spec, path)
            if stale:  # ONNX Runtime only warns (it runs the export itself); here other weights would run
                raise ModelFileError(f"{stale}; or give PyTorch the checkpoint (.pt) itself")
            checkpoint = spec.checkpoint_file(path)
            net, _ = load_network(checkpoint)
            _check_same_config(net, spec.config, checkpoint, path)
            lat = spec.text_latent or {}
            try:
                module = DeployNet(net, lat.get("mu"), lat.get("sigma"))
            except ValueError as exc:  # a latent of another size than the network's
                raise ModelFileError(f"{path}: its sidecar's text_latent does not fit {checkpoint} ({exc}); "
                                     "re-export the model from that checkpoint") from exc
            # the export's size, not the training config's: the same input as ONNX Runtime / TensorRT get
            module.input_size = (spec.height, spec.width)
        else:
            net, _ = load_network(path)
            mu = sigma = None
            if text:
                from ..export import ExportError, latent_for_texts

                try:
                    mu, sigma = latent_for_texts(net, [text], encoder_model=text_model)
                except (ExportError, ValueError) as exc:  # ValueError: network.text.TextError
                    raise BackendError(f"torch option text: {exc}") from exc
            module = DeployNet(net, mu, sigma)
        return cls(module, **kw)

    @torch.inference_mode()
    def _run_batch(self, rgb: np.ndarray, embodied: np.ndarray):
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
