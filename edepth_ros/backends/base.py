"""The one interface every inference backend implements (numpy in, numpy out)."""

from __future__ import annotations

import abc
import logging
import os
from typing import Optional

import numpy as np

from ..model_io import (INPUT_NAMES, OUTPUT_NAMES, ModelFileError, ModelSpec, check_batch, check_inputs,
                        check_io_matches, sanitize_outputs, sha256_file, stale_export)

log = logging.getLogger(__name__)

# Option names per backend kind, here so the factory can check them without importing a runtime.
# COMMON_OPTIONS are accepted by every kind (the node and the CLI pass them whatever the backend):
# threads is used where the backend computes on the CPU, input_size / max_depth by the embodied-only
# backend; a network backend takes its size and max depth from its model.
COMMON_OPTIONS = ("threads", "max_depth", "input_size")
BACKEND_OPTIONS = {
    "embodied": (),
    "onnxruntime": ("threads", "providers", "optimization", "engine_cache_dir", "precision", "require_sidecar"),
    "torch": ("device", "threads", "text", "text_model", "half"),
    "tensorrt": ("precision", "engine_cache_dir", "workspace_mb", "max_batch", "calibration_data",
                 "calibration_cache", "rebuild"),
}


class BackendError(RuntimeError):
    """A backend cannot be created or run here (the message says which and what to do)."""


def max_threads() -> int:
    """The most ``threads`` a backend accepts: 256 (the node's ``backend_threads`` range), or 4 per
    logical CPU where that is more. threads=100000 had ONNX Runtime starting threads for minutes
    (17 GB, never ready); 2**31 was a raw TypeError from pybind11."""
    return max(256, 4 * (os.cpu_count() or 1))


def check_threads(threads, backend: str) -> Optional[int]:
    """The ``threads`` option: None or 0 (the runtime's default) or a positive integer up to ``max_threads()``."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
        raise BackendError(f"{backend} option threads={threads!r}: must be an integer >= 0 "
                           "(0 or unset: the runtime's default)")
    if threads > max_threads():
        raise BackendError(f"{backend} option threads={threads!r}: more than {max_threads()} (this machine has "
                           f"{os.cpu_count() or 1} logical CPUs) only oversubscribes the cores; use 0 (the physical "
                           "cores) or a number up to the core count")
    return int(threads)


def check_against_sidecar(model_path, spec: ModelSpec, digest: Optional[str] = None) -> str:
    """The ONNX file is the one its sidecar describes (sha256), before a runtime loads or builds it;
    warns when the export is stale. Returns the file's sha256 (``digest`` if the caller has it)."""
    digest = digest or sha256_file(model_path)
    if spec.onnx_sha256 and digest != spec.onnx_sha256:  # damaged, partly copied, or a different export
        raise ModelFileError(f"{model_path}: sha256 {digest[:16]}... differs from its sidecar's "
                             f"onnx_sha256 {spec.onnx_sha256[:16]}...; the file is damaged, partly "
                             "copied or from another export: copy the model and its .json together")
    stale = stale_export(spec, model_path)
    if stale:
        log.warning(stale)
    return digest


def check_model_io(spec: Optional[ModelSpec], inputs: dict, outputs: dict, model_path) -> None:
    """The tensors a runtime reports (name -> (shape, dtype name)) against the sidecar; without a
    sidecar, at least the edepth tensor names."""
    if spec is not None:
        check_io_matches(spec, inputs, outputs, model_path)
    elif set(inputs) != set(INPUT_NAMES) or not set(OUTPUT_NAMES) <= set(outputs):
        raise ModelFileError(f"{model_path}: inputs {sorted(inputs)} / outputs {sorted(outputs)} are not "
                             f"{INPUT_NAMES} / {OUTPUT_NAMES}: not an edepth export")
    else:  # no sidecar to compare with: at least the graph contract (another model may reuse the names)
        want = {"rgb": ("uint8", "(B, H, W, 3)", -1, 3), "embodied": ("float32", "(B, 2, H, W)", 1, 2),
                "depth": ("float32", "(B, 1, H, W)", 1, 1), "confidence": ("float32", "(B, 1, H, W)", 1, 1)}
        for name, (dtype, layout, axis, size) in want.items():
            shape, got = (inputs.get(name) or outputs.get(name))
            if str(got) != dtype or len(shape) != 4 or (isinstance(shape[axis], int) and shape[axis] != size):
                raise ModelFileError(f"{model_path}: tensor {name!r} is {got} {list(shape)}, the edepth graph "
                                     f"contract is {dtype} {layout}: not an edepth export (without a sidecar "
                                     "only the contract can be checked)")


class Backend(abc.ABC):
    """``infer(rgb (H, W, 3) uint8, embodied (2, H, W) float32) -> (depth, confidence)`` at the model size.

    ``input_size`` is (H, W) for a model with a fixed input, or None when the backend takes any
    size (the embodied-only backend). depth: float32 metres in (0, max_depth], NaN only where a
    backend has no estimate; confidence: float32 in [0, 1].
    """

    name: str = "backend"
    input_size: Optional[tuple[int, int]] = None
    max_depth: float = 80.0
    nan_is_none: bool = False  # NaN depth is this backend's "no estimate" (no warning when it gives some)

    def infer(self, rgb: np.ndarray, embodied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_inputs(rgb, embodied, self.input_size)
        return self._checked_outputs(*self._infer(rgb, embodied))

    def _checked_outputs(self, depth: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The runtime's outputs held to the contract (``model_io.sanitize_outputs``): NaN / inf / depth
        <= 0 become NaN with confidence 0 (warned once, naming the backend), depth above max_depth capped."""
        depth, confidence, n_bad = sanitize_outputs(depth, confidence, self.max_depth)
        if n_bad and not self.nan_is_none and not getattr(self, "_warned_bad_outputs", False):
            self._warned_bad_outputs = True
            log.warning("backend %s: the model output %d of %d depth values that are NaN, inf or <= 0 (an FP16 "
                        "overflow, or not an edepth model?); they are returned as NaN with confidence 0 "
                        "(warned once)", self.name, n_bad, depth.size)
        return depth, confidence

    @abc.abstractmethod
    def _infer(self, rgb: np.ndarray, embodied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inputs already validated by ``infer``."""

    def describe(self) -> dict:
        """What a log line or a benchmark JSON should say about this backend."""
        return {"name": self.name, "input_size": self.input_size, "max_depth": self.max_depth}

    def close(self) -> None:
        """Release sessions / device memory (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class BatchedBackend(Backend):
    """A backend whose runtime takes batches (ONNX Runtime, PyTorch): ``_run_batch`` is the one
    call into it; a single frame is a batch of one, and ``infer_batch`` gets ``infer``'s checks."""

    def _infer(self, rgb: np.ndarray, embodied: np.ndarray):
        depth, conf = self._run_batch(rgb[None], embodied[None])
        return depth[0, 0], conf[0, 0]

    def infer_batch(self, rgb: np.ndarray, embodied: np.ndarray):
        """(B, H, W, 3) uint8 and (B, 2, H, W) float32 -> (B, 1, H, W) depth and confidence."""
        check_batch(rgb, embodied, self.input_size)
        return self._checked_outputs(*self._run_batch(rgb, embodied))

    @abc.abstractmethod
    def _run_batch(self, rgb: np.ndarray, embodied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batched inputs already validated; (B, 1, H, W) float32 outputs as the runtime gives them."""
