"""Inference backends behind one interface (``base.Backend``) and the factory that picks one.

Runtimes are imported only when their backend is created: ``import edepth_ros.backends`` needs
neither torch, onnxruntime nor TensorRT.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Optional

from .base import BACKEND_OPTIONS, COMMON_OPTIONS, Backend, BackendError
from .embodied_only import EmbodiedOnlyBackend

__all__ = ["Backend", "BackendError", "EmbodiedOnlyBackend", "create_backend", "available_backends", "KINDS"]

log = logging.getLogger(__name__)

KINDS = ("auto", "tensorrt", "onnxruntime", "onnxruntime-cuda", "onnxruntime-cpu", "torch", "embodied")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _ort_providers() -> list[str]:
    if not _has("onnxruntime"):
        return []
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _tensorrt_usable() -> bool:
    if not _has("tensorrt"):
        return False
    from .tensorrt_backend import cuda_device_name

    return cuda_device_name() is not None


def available_backends() -> dict:
    """Which kinds can run on this machine, and why not where they cannot."""
    providers = _ort_providers()
    return {
        "tensorrt": _tensorrt_usable(),
        "onnxruntime-cuda": "CUDAExecutionProvider" in providers,
        "onnxruntime-cpu": "CPUExecutionProvider" in providers,
        "torch": _has("torch"),
        "embodied": True,
        "onnxruntime_providers": providers,
    }


def create_backend(kind: str = "auto", model_path: Optional[str] = None, **options) -> Backend:
    """Build a backend.

    kind: one of KINDS. "auto" tries TensorRT, ONNX Runtime CUDA, ONNX Runtime CPU, PyTorch, in
    that order, among those the file type allows (.onnx: all; .engine/.plan: TensorRT;
    .pt/.pth/.ckpt: PyTorch); with no model_path it returns the embodied-only backend.
    options are passed to the backend: base.COMMON_OPTIONS for every kind, else those in
    base.BACKEND_OPTIONS for the kind; any other name is refused (a misspelling must not pass
    silently). With "auto", an option of another candidate backend is dropped instead.
    """
    if kind not in KINDS:
        raise BackendError(f"backend kind {kind!r} is not one of {', '.join(KINDS)}")
    requested = kind
    if kind == "embodied" or (kind == "auto" and (model_path is None or str(model_path) == "")):
        if kind == "auto":
            log.warning("no model file configured: using the embodied-only backend (no network)")
        _pick(options, "embodied", requested)
        return EmbodiedOnlyBackend(options.get("input_size"), options.get("max_depth", 80.0))
    if model_path is None or str(model_path) == "":
        raise BackendError(f"backend {kind!r} needs a model file (model_path); none was given")
    path = Path(model_path)
    if not path.is_file():
        raise BackendError(_not_a_file(path))
    suffix = path.suffix.lower()
    if kind == "auto":
        kind = _auto_kind(path, suffix)
        log.info("backend auto -> %s for %s", kind, path)
    if kind == "tensorrt":
        from .tensorrt_backend import TensorRTBackend

        return TensorRTBackend(path, **_pick(options, "tensorrt", requested))
    if kind.startswith("onnxruntime"):
        if suffix != ".onnx":
            raise BackendError(f"ONNX Runtime needs an .onnx file, got {path}")
        from .onnxruntime_backend import OnnxRuntimeBackend

        opts = _pick(options, "onnxruntime", requested)
        if kind == "onnxruntime-cuda":
            opts["providers"] = ["CUDAExecutionProvider"]
        elif kind == "onnxruntime-cpu":
            opts["providers"] = ["CPUExecutionProvider"]
        return OnnxRuntimeBackend(path, **opts)
    if kind == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend.from_file(path, **_pick(options, "torch", requested))
    raise BackendError(f"backend kind {kind!r} not handled")  # pragma: no cover


def _not_a_file(path: Path) -> str:
    """Why ``path`` cannot be loaded as a model file, for the error (not always "not found")."""
    if path.is_dir():
        return (f"model file {path} is a folder, not a model file; give the .onnx (or .engine / .pt) file "
                "inside it as model_path")
    if path.is_symlink():  # a link whose target is missing, or a loop of links
        try:
            path.resolve(strict=True)
            why = "does not lead to a regular file"
        except RuntimeError:  # pathlib's "Symlink loop" (Python < 3.13)
            why = "is part of a loop of links"
        except OSError as exc:
            why = "is part of a loop of links" if getattr(exc, "errno", None) == 40 else \
                f"points to {os.readlink(path)!r}, which does not exist"
        return f"model file {path} is a symbolic link that {why}; fix the link or model_path"
    if path.exists():
        return f"model file {path} is not a regular file (a device, FIFO or socket); give the exported .onnx file"
    return f"model file {path} not found; export one with `edepth export` or fix model_path"


def _auto_kind(path: Path, suffix: str) -> str:
    if suffix in ENGINE_SUFFIXES:
        if not _tensorrt_usable():
            raise BackendError(f"{path} is a TensorRT engine, but TensorRT or a CUDA GPU is not available here; "
                               "pass the .onnx file instead")
        return "tensorrt"
    if suffix in CHECKPOINT_SUFFIXES:
        return "torch"
    if suffix != ".onnx":
        raise BackendError(f"{path}: unknown model type {suffix!r} (expected .onnx, .engine/.plan or .pt)")
    if _tensorrt_usable():
        return "tensorrt"
    providers = _ort_providers()
    if "CUDAExecutionProvider" in providers:
        return "onnxruntime-cuda"
    if "CPUExecutionProvider" in providers:
        return "onnxruntime-cpu"
    if _has("torch"):
        return "torch"
    raise BackendError("no runtime for ONNX models is installed: install onnxruntime (or onnxruntime-gpu)")


def _pick(options: dict, backend: str, requested: str) -> dict:
    """The options ``backend`` takes; BackendError for a name it does not know."""
    allowed = BACKEND_OPTIONS[backend]
    valid = sorted(set(allowed) | set(COMMON_OPTIONS))
    unknown = sorted(set(options) - set(valid))
    known_elsewhere = set().union(*BACKEND_OPTIONS.values())
    if unknown and (requested != "auto" or not set(unknown) <= known_elsewhere):
        raise BackendError(f"backend {requested!r} ({backend}): unknown option(s) {', '.join(map(repr, unknown))}; "
                           f"valid: {', '.join(map(repr, valid))}")
    if unknown:  # auto picked a backend the caller could not know: options of the others do not apply
        log.debug("options %s do not apply to the %s backend auto picked", unknown, backend)
    return {k: v for k, v in options.items() if k in allowed}
