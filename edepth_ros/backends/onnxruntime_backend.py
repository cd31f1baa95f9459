"""ONNX Runtime backend: CPU here, CUDA / TensorRT execution providers where installed.

Session options are set for latency on one stream of frames: a fixed intra-op thread pool,
sequential execution (the graph is a chain; a parallel executor only adds scheduling), all graph
optimisations. The model file is checked against its sidecar before the first frame.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..model_io import OUTPUT_NAMES, ModelFileError, ModelInputError, ModelSpec, read_sidecar
from .base import (BACKEND_OPTIONS, BackendError, BatchedBackend, check_against_sidecar, check_model_io,
                   check_threads)

log = logging.getLogger(__name__)

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PRECISIONS = ("fp16", "fp32")  # what the TensorRT execution provider is asked for
_ORT_TYPES = {"tensor(uint8)": "uint8", "tensor(float)": "float32", "tensor(float16)": "float16",
              "tensor(int64)": "int64", "tensor(int32)": "int32"}


def default_threads() -> int:
    """Physical cores if psutil knows them, else logical: hyper-threads slow conv kernels down."""
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
    except Exception:  # psutil is optional here
        n = None
    return max(1, int(n or os.cpu_count() or 1))


def session_options(threads: Optional[int] = None, optimization: str = "all", optimized_model_path=None):
    import onnxruntime as ort

    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    if optimization not in levels:
        raise BackendError(f"onnxruntime optimization {optimization!r} is not one of {sorted(levels)}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or default_threads())
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = levels[optimization]
    so.enable_mem_pattern = True
    so.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise here
    if optimized_model_path:
        so.optimized_model_filepath = str(optimized_model_path)
    return so


def provider_list(requested: Optional[Sequence[str]], cache_dir: Optional[str], fp16: bool) -> list:
    """Providers to ask for, in order, with options; only those this onnxruntime build has."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if isinstance(requested, str):  # one provider, not a sequence of its characters
        requested = [requested]
    wanted = list(requested) if requested else [p for p in PREFERRED_PROVIDERS if p in available]
    missing = [p for p in wanted if p not in available]
    if missing:
        raise BackendError(f"onnxruntime providers {missing} are not in this build (available: {available}); "
                           "install onnxruntime-gpu for CUDA/TensorRT, or use the CPU")
    out: list = []
    for p in wanted:
        if p == "TensorrtExecutionProvider":
            opts = {"trt_fp16_enable": bool(fp16)}
            if cache_dir:
                opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir),
                            trt_timing_cache_enable=True, trt_timing_cache_path=str(cache_dir))
            out.append((p, opts))
        else:
            out.append(p)
    if "CPUExecutionProvider" not in wanted:
        out.append("CPUExecutionProvider")  # nodes a GPU provider refuses still run
    return out


class OnnxRuntimeBackend(BatchedBackend):
    OPTIONS = BACKEND_OPTIONS["onnxruntime"]

    def __init__(self, model_path, threads: Optional[int] = None, providers: Optional[Sequence[str]] = None,
                 optimization: str = "all", engine_cache_dir: Optional[str] = None, precision: str = "fp16",
                 require_sidecar: bool = True):
        import onnxruntime as ort

        threads = check_threads(threads, "onnxruntime")
        if precision not in PRECISIONS:
            raise BackendError(f"onnxruntime option precision={precision!r} is not one of {PRECISIONS}; "
                               "int8 needs the tensorrt backend with calibration")
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ModelFileError(f"{self.model_path}: ONNX model not found; export it with `edepth export`")
        self.spec: Optional[ModelSpec] = read_sidecar(self.model_path) if require_sidecar else None
        if self.spec is not None:
            check_against_sidecar(self.model_path, self.spec)
        so = session_options(threads, optimization)
        provs = provider_list(providers, engine_cache_dir, precision == "fp16")
        try:
            self.session = ort.InferenceSession(str(self.model_path), sess_options=so, providers=provs)
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf types; name the file
            raise ModelFileError(f"{self.model_path}: ONNX Runtime cannot load it ({type(exc).__name__}: "
                                 f"{str(exc).strip()[:300]}); the file is corrupt or not an edepth export: "
                                 "re-export it") from exc
        ins = {i.name: (i.shape, _ORT_TYPES.get(i.type, i.type)) for i in self.session.get_inputs()}
        outs = {o.name: (o.shape, _ORT_TYPES.get(o.type, o.type)) for o in self.session.get_outputs()}
        check_model_io(self.spec, ins, outs, self.model_path)
        shape = ins["rgb"][0]
        if self.spec is not None:  # a graph of dynamic height/width still runs at the size its sidecar says
            self.input_size = (self.spec.height, self.spec.width)
        else:
            self.input_size = (int(shape[1]), int(shape[2])) if all(isinstance(s, int) for s in shape[1:3]) else None
        self.max_depth = float(self.spec.max_depth) if self.spec is not None else 80.0
        self.batch_fixed = shape[0] if isinstance(shape[0], int) else None
        self.providers = self.session.get_providers()
        self.threads = so.intra_op_num_threads
        self.name = "onnxruntime-" + ("cpu" if self.providers[0] == "CPUExecutionProvider" else
                                      self.providers[0].replace("ExecutionProvider", "").lower())
        log.info("ONNX Runtime %s: %s, providers %s, %d threads", ort.__version__, self.model_path,
                 self.providers, self.threads)

    def _run_batch(self, rgb: np.ndarray, embodied: np.ndarray):
        if self.session is None:
            raise BackendError(f"{self.name} backend for {self.model_path} is closed; create a new one")
        if self.batch_fixed is not None and rgb.shape[0] != self.batch_fixed:
            raise ModelInputError(f"tensor 'rgb': {self.model_path} was exported with batch {self.batch_fixed}, "
                                  f"got {rgb.shape[0]}; re-export with --dynamic-batch")
        feeds = {"rgb": np.ascontiguousarray(rgb), "embodied": np.ascontiguousarray(embodied)}
        depth, conf = self.session.run(list(OUTPUT_NAMES), feeds)
        return depth, conf

    def describe(self) -> dict:
        d = super().describe()
        d.update(model=str(self.model_path), providers=self.providers, threads=self.threads)
        return d

    def close(self) -> None:
        self.session = None
