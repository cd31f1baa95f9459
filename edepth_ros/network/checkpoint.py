"""Checkpoints: one dict of tensors and plain values, loadable with ``torch.load(weights_only=True)``.

Written atomically (a temporary file in the same folder, then ``os.replace``) so that "latest"
is never half written. Loading checks the format, the config and every tensor's shape before any
weight is copied: a corrupt or mismatched file raises ``CheckpointError``, never a half-loaded model.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

from .config import ModelConfig, NetworkConfigError

FORMAT = "edepth-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable, of another format, or does not fit the model."""


def save_checkpoint(path: str | os.PathLike, net, extra: dict[str, Any] | None = None) -> Path:
    """Atomically write ``{format, config, model, **extra}`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in _unwrap(net).state_dict().items()}
    payload = {"format": FORMAT, "config": _unwrap(net).cfg.to_dict(), "model": state,
               "model_sha256": state_digest(state)}
    payload.update(extra or {})
    # a writer killed with -9 leaves its temporary file behind: clear those first, or they pile up
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; checkpoints are shared files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes: torch.load does not check its zip
    records' CRCs, so bytes flipped on disk would otherwise load as silently wrong weights."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key]
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy())
    return h.hexdigest()


def read_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """The raw payload, validated for format (weights_only: no code runs from the file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist; train one with `edepth train --config "
                              "models/NAME.yaml` or give the path of a .pt file")
    if path.stat().st_size == 0:  # a write cut short by a full disk; torch.load's error says nothing
        raise CheckpointError(f"checkpoint '{path}' is empty (0 bytes); retrain or use the previous checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        first = next(iter(str(exc).splitlines()), "")  # some errors carry no message at all
        raise CheckpointError(f"checkpoint '{path}' is corrupt or not a PyTorch file ({type(exc).__name__}: "
                              f"{first[:200]}); retrain or use the previous checkpoint") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        fmt = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"checkpoint '{path}': format '{fmt}' is not '{FORMAT}' (an edepth training checkpoint)")
    for key in ("config", "model"):
        if key not in payload:
            raise CheckpointError(f"checkpoint '{path}': missing field '{key}'")
    digest = payload.get("model_sha256")  # absent in checkpoints written before it was added
    state = payload["model"]
    if digest is not None and isinstance(state, Mapping) and all(isinstance(v, torch.Tensor) for v in state.values()):
        if state_digest(state) != digest:
            raise CheckpointError(f"checkpoint '{path}': its weights do not match the sha256 written with them; "
                                  "the file was damaged after it was written: retrain or use the previous checkpoint")
    return payload


def load_state_strict(net, state: dict, source: str = "checkpoint") -> None:
    """Copy ``state`` into ``net`` only if every key and shape matches (all or nothing)."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{source}: its weights are a {type(state).__name__}, not a state dict; the file "
                              "is damaged or not an edepth checkpoint; retrain or use the previous checkpoint")
    odd = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if odd:  # checked before any shape, so nothing is copied from a damaged file
        raise CheckpointError(f"{source}: entries {odd[:3]} are not tensors; the file is damaged or not an "
                              "edepth checkpoint; retrain or use the previous checkpoint")
    target = _unwrap(net).state_dict()
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(target[k].shape)}"
             for k in target if k in state and tuple(state[k].shape) != tuple(target[k].shape)]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{source} does not fit this model: {len(missing)} missing tensors {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}, {len(wrong)} with other shapes {wrong[:3]}; "
            "it was trained with another model config")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{source}: tensors {bad[:3]} hold NaN/inf; use an earlier checkpoint")
    _unwrap(net).load_state_dict(state, strict=True)


def load_checkpoint(path: str | os.PathLike, map_location="cpu", config: ModelConfig | None = None):
    """Build the model described by the checkpoint's config and load its weights (eval mode).

    Returns the ``DepthNet`` in eval mode; ``net.checkpoint_meta`` holds the payload's non-tensor
    fields (step, epoch, metrics). With ``config`` given, the checkpoint must match it.
    """
    from .model import DepthNet

    payload = read_checkpoint(path, map_location)
    raw = payload["config"]
    if isinstance(raw, Mapping):
        # the checkpoint holds every weight: the backbone's initial weights file is neither needed
        # nor read (it may have moved); the original settings stay in net.checkpoint_meta["config"]
        raw = {**raw, "pretrained": False, "pretrained_path": None}
    try:
        cfg = ModelConfig.from_dict(raw, prefix=f"checkpoint '{path}' config")
    except NetworkConfigError as exc:
        raise CheckpointError(str(exc)) from exc
    if config is not None:
        ours, theirs = _shape_config(config), _shape_config(cfg)
        if ours != theirs:
            diff = [k for k, v in ours.items() if theirs.get(k) != v]
            raise CheckpointError(f"checkpoint '{path}' was trained with another model config (differs in {diff})")
    try:
        net = DepthNet(cfg)
    except NetworkConfigError as exc:
        raise CheckpointError(f"checkpoint '{path}': its model cannot be built: {exc}") from exc
    load_state_strict(net, payload["model"], source=f"checkpoint '{path}'")
    net.eval()
    net.checkpoint_meta = {k: v for k, v in payload.items() if k not in ("model", "optimizer", "scaler", "rng")}
    return net


def _shape_config(cfg: ModelConfig) -> dict:
    """The config without where the initial backbone weights came from (no effect on a loaded model)."""
    return {k: v for k, v in cfg.to_dict().items() if k not in ("pretrained", "pretrained_path")}


def _unwrap(net):
    return net.module if hasattr(net, "module") else net
