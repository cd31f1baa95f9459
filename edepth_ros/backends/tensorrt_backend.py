"""TensorRT 10 backend: engine built from the exported ONNX, cached, run on a CUDA stream.

Written against the TensorRT 10 Python API (name-based tensors, ``execute_async_v3``):

- build: ``Builder`` -> ``create_network(0)`` -> ``OnnxParser.parse_from_file`` -> builder config
  (workspace pool limit, FP16 by default, INT8 with a calibrator / calibration cache on request,
  a timing cache loaded and saved between builds) -> ``build_serialized_network``;
- dynamic batch (``--dynamic-batch`` exports): one optimization profile, batch 1 (what this
  backend runs) up to the ``max_batch`` option; TensorRT 10 builds no engine for dynamic inputs
  without one;
- engine cache: the file name carries a key of the ONNX file's sha256, the TensorRT version, the
  GPU name and the precision (and, where they apply, the INT8 calibration and the max batch). An
  engine from another TensorRT or GPU therefore never gets loaded by mistake (the "version tag does
  not match" failure of prebuilt engines); one that still fails to deserialize is rebuilt from the
  ONNX instead of failing;
- the ONNX is checked against its sidecar as for ONNX Runtime: its sha256 before any build, the
  tensors of the parsed network and of the engine (also a prebuilt one, when it has a sidecar);
- run: device buffers per I/O tensor, ``context.set_tensor_address`` for each name, host-to-device
  copies, ``execute_async_v3(stream)``, device-to-host copies, one stream synchronise.

CUDA memory and streams come from PyTorch when a CUDA build is installed, else from cuda-python
(``cuda.bindings.runtime``), so a Jetson image without torch works too.

The equivalent ``trtexec`` command is logged on every build, for people who build engines by hand.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..model_io import (OUTPUT_NAMES, ModelFileError, ModelInputError, atomic_output, read_sidecar,
                        sha256_file)
from .base import BACKEND_OPTIONS, Backend, BackendError, check_against_sidecar, check_model_io

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_WORKSPACE_MB = 1024
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


# ---------------------------------------------------------------------------------------------
# pure helpers (tested without TensorRT)


def engine_key(onnx_sha256: str, trt_version: str, gpu_name: str, precision: str,
               calibration: Optional[str] = None, max_batch: int = 1) -> str:
    """What an engine depends on; any change gives a different cache file (so a rebuild).

    calibration: identity of the INT8 calibration (``calibration_identity``); max_batch: the top of
    the dynamic-batch profile. Left out of the key at their defaults, so fp16/fp32 engines of a
    static export keep the key they had."""
    if precision not in PRECISIONS:
        raise BackendError(f"tensorrt precision {precision!r} is not one of {PRECISIONS}")
    parts = [onnx_sha256, trt_version, gpu_name, precision]
    if calibration is not None:
        parts.append(f"calibration:{calibration}")
    if max_batch != 1:
        parts.append(f"max_batch:{int(max_batch)}")
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def engine_cache_path(cache_dir, onnx_path, onnx_sha256: str, trt_version: str, gpu_name: str,
                      precision: str, calibration: Optional[str] = None, max_batch: int = 1) -> Path:
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower() or "gpu"
    key = engine_key(onnx_sha256, trt_version, gpu_name, precision, calibration, max_batch)
    return Path(cache_dir) / f"{Path(onnx_path).stem}.{precision}.trt{trt_version}.{gpu}.{key}.engine"


def calibration_identity(samples: Optional[Sequence[tuple]], cache_file) -> Optional[str]:
    """What an INT8 engine is calibrated from: the frames when given (they are used, not an older
    cache), else the calibration cache file's contents; None when there is neither."""
    if samples:
        h = hashlib.sha256()
        for frame in samples:
            for arr in frame:
                arr = np.ascontiguousarray(arr)
                h.update(f"{arr.shape}{arr.dtype.str}".encode())
                h.update(memoryview(arr).cast("B"))
        return "frames:" + h.hexdigest()[:16]
    if cache_file is not None and Path(cache_file).is_file():
        return "cache:" + sha256_file(cache_file)[:16]
    return None


def profile_shapes(inputs: dict, max_batch: int, model_path) -> dict:
    """{name: (min, opt, max)} for the inputs {name: shape} with a dynamic batch (-1 first): batch 1
    to max_batch, optimised for 1 (what this backend runs). {} for a static model."""
    dynamic = {n: tuple(int(d) for d in s) for n, s in inputs.items() if -1 in tuple(s)}
    for name, shape in dynamic.items():
        if -1 in shape[1:] or not shape or shape[0] != -1:
            raise ModelFileError(f"{model_path}: input {name!r} has shape {list(shape)}: only the batch may be "
                                 "dynamic; re-export with `edepth export --height H --width W`")
    if not dynamic and max_batch != 1:
        raise BackendError(f"tensorrt option max_batch={max_batch}: {model_path} has a static batch of 1; "
                           "re-export it with `edepth export --dynamic-batch`, or leave max_batch at 1")
    return {n: ((1, *s[1:]), (1, *s[1:]), (max_batch, *s[1:])) for n, s in dynamic.items()}


def trtexec_command(onnx_path, engine_path, precision: str = "fp16", timing_cache=None,
                    workspace_mb: int = DEFAULT_WORKSPACE_MB, calibration_cache=None,
                    shapes: Optional[dict] = None) -> str:
    """The trtexec line that builds the same engine by hand (shapes: ``profile_shapes``)."""
    parts = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}",
             f"--memPoolSize=workspace:{int(workspace_mb)}M"]
    for flag, i in (("--minShapes", 0), ("--optShapes", 1), ("--maxShapes", 2)) if shapes else ():
        parts.append(flag + "=" + ",".join(f"{n}:{'x'.join(map(str, s[i]))}" for n, s in shapes.items()))
    if precision in ("fp16", "int8"):
        parts.append("--fp16")
    if precision == "int8":
        parts.append("--int8")
        if calibration_cache:
            parts.append(f"--calib={calibration_cache}")
    if timing_cache:
        parts.append(f"--timingCacheFile={timing_cache}")
    return " ".join(parts)


def default_cache_dir() -> Path:
    return Path(os.environ.get("EDEPTH_ENGINE_CACHE", Path.home() / ".cache" / "edepth_ros" / "engines"))


def cuda_device_name() -> Optional[str]:
    """Name of CUDA device 0, or None where there is none (no driver, no GPU, no CUDA library)."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # torch absent or a CPU build: try cuda-python
        pass
    try:
        cudart = _cudart()
        err, prop = cudart.cudaGetDeviceProperties(0)
        if int(err) == 0:
            name = prop.name
            return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\x00")
    except Exception:
        pass
    return None


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


# ---------------------------------------------------------------------------------------------
# CUDA memory: torch when it has CUDA, else cuda-python


class _TorchCuda:
    def __init__(self):
        import torch

        self.torch = torch
        self.stream = torch.cuda.Stream()
        self.handle = self.stream.cuda_stream

    def alloc(self, shape, dtype):
        t = self.torch.empty(tuple(shape), dtype=getattr(self.torch, np.dtype(dtype).name), device="cuda")
        return t, int(t.data_ptr())

    def h2d(self, dev, host: np.ndarray):
        with self.torch.cuda.stream(self.stream):
            dev.copy_(self.torch.from_numpy(host), non_blocking=False)

    def d2h(self, dev, host: np.ndarray):
        with self.torch.cuda.stream(self.stream):
            host[...] = dev.cpu().numpy()

    def sync(self):
        self.stream.synchronize()

    def close(self):
        pass


class _CudaPython:
    def __init__(self):
        self.rt = _cudart()
        self.handle = self._ok(self.rt.cudaStreamCreate(), "cudaStreamCreate")
        self.ptrs: list = []

    def _ok(self, result, what):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise BackendError(f"CUDA {what} failed with error {err}")
        return rest[0] if rest else None

    def alloc(self, shape, dtype):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        ptr = self._ok(self.rt.cudaMalloc(nbytes), "cudaMalloc")
        self.ptrs.append(ptr)
        return (ptr, nbytes), int(ptr)

    def h2d(self, dev, host: np.ndarray):
        ptr, nbytes = dev
        self._ok(self.rt.cudaMemcpyAsync(ptr, host.ctypes.data, nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.handle), "memcpy H2D")

    def d2h(self, dev, host: np.ndarray):
        ptr, nbytes = dev
        self._ok(self.rt.cudaMemcpyAsync(host.ctypes.data, ptr, nbytes,
                                         self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.handle), "memcpy D2H")

    def sync(self):
        self._ok(self.rt.cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self):
        for p in self.ptrs:
            self.rt.cudaFree(p)
        self.ptrs = []


def _cuda_memory():
    try:
        import torch

        if torch.cuda.is_available():
            return _TorchCuda()
    except ImportError:
        pass
    try:
        return _CudaPython()
    except ImportError as exc:
        raise BackendError("tensorrt backend: needs CUDA memory from PyTorch (CUDA build) or cuda-python "
                           "(pip install cuda-python)") from exc


# ---------------------------------------------------------------------------------------------
# INT8 calibration


def make_calibrator(trt, samples: Optional[Sequence[tuple]], cache_file, memory):
    """An IInt8EntropyCalibrator2 over (rgb, embodied) samples; with none, only the cache is used."""

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.samples = list(samples or [])
            self.index = 0
            self.buffers = {}

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            if self.index >= len(self.samples):
                return None
            rgb, emb = self.samples[self.index]
            self.index += 1
            ptrs = []
            for name, arr in (("rgb", rgb[None]), ("embodied", emb[None])):
                if name not in self.buffers:
                    self.buffers[name] = memory.alloc(arr.shape, arr.dtype)
                memory.h2d(self.buffers[name][0], np.ascontiguousarray(arr))
            memory.sync()
            return [self.buffers[n][1] for n in names]

        def read_calibration_cache(self):
            if self.samples:  # frames given: calibrate on them (the engine key names them), not an old cache
                return None
            p = Path(cache_file) if cache_file else None
            return p.read_bytes() if p is not None and p.is_file() else None

        def write_calibration_cache(self, cache):
            if cache_file:
                with atomic_output(cache_file) as tmp:
                    tmp.write_bytes(bytes(cache))

    return _Calibrator()


# ---------------------------------------------------------------------------------------------
# backend


class TensorRTBackend(Backend):
    OPTIONS = BACKEND_OPTIONS["tensorrt"]

    def __init__(self, model_path, precision: str = "fp16", engine_cache_dir=None,
                 workspace_mb: int = DEFAULT_WORKSPACE_MB, max_batch: int = 1,
                 calibration_data: Optional[Sequence[tuple]] = None, calibration_cache=None,
                 rebuild: bool = False):
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise BackendError("tensorrt backend: the tensorrt Python package is not installed (on Jetson it "
                               "comes with JetPack; on x86 install TensorRT 10); use --backend onnxruntime") from exc
        if precision not in PRECISIONS:
            raise BackendError(f"tensorrt precision {precision!r} is not one of {PRECISIONS}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, (int, np.integer)) or max_batch < 1:
            raise BackendError(f"tensorrt option max_batch={max_batch!r}: must be an integer >= 1 (the largest "
                               "batch a --dynamic-batch engine accepts)")
        self.max_batch = int(max_batch)
        self.trt = trt
        self.gpu = cuda_device_name()
        if self.gpu is None:
            raise BackendError("tensorrt backend: no CUDA GPU is visible (driver, CUDA_VISIBLE_DEVICES?); "
                               "use --backend onnxruntime on this machine")
        self.logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(self.logger, "")
        self.precision = precision
        self.workspace_mb = int(workspace_mb)
        self.memory = _cuda_memory()
        path = Path(model_path)
        if not path.is_file():
            raise ModelFileError(f"{path}: model file not found")
        # the sidecar before any build: a model without one is refused in seconds, not after minutes
        self.spec = None
        if path.suffix.lower() not in ENGINE_SUFFIXES or path.with_suffix(".json").is_file():
            self.spec = read_sidecar(path)
        if path.suffix.lower() in ENGINE_SUFFIXES:
            self.onnx_path, self.engine_path = None, path
            # what the engine was built with is fixed inside it: build options given here do nothing
            ignored = {"precision": precision != "fp16", "workspace_mb": int(workspace_mb) != DEFAULT_WORKSPACE_MB,
                       "max_batch": self.max_batch != 1, "calibration_data": calibration_data is not None,
                       "calibration_cache": calibration_cache is not None, "rebuild": bool(rebuild),
                       "engine_cache_dir": engine_cache_dir is not None}
            ignored = [k for k, given in ignored.items() if given]
            if ignored:
                log.warning("%s is a prebuilt engine: option(s) %s apply only when the engine is built and are "
                            "ignored; give the .onnx file to build with them", path, ", ".join(ignored))
            self.precision = precision = "prebuilt"  # not readable back from an engine: claim none
            serialized = path.read_bytes()
        else:
            self.onnx_path = path
            digest = check_against_sidecar(path, self.spec)  # the file the sidecar describes, before a build
            cache_dir = Path(engine_cache_dir) if engine_cache_dir else default_cache_dir()
            cache_dir.mkdir(parents=True, exist_ok=True)
            self.timing_cache = cache_dir / f"timing.trt{trt.__version__}.cache"
            self.calibration_cache = Path(calibration_cache) if calibration_cache else \
                cache_dir / f"{path.stem}.int8.calib"
            calibration = calibration_identity(calibration_data, self.calibration_cache) \
                if precision == "int8" else None
            self.engine_path = engine_cache_path(cache_dir, path, digest, trt.__version__, self.gpu, precision,
                                                 calibration, self.max_batch)
            serialized = None if rebuild or not self.engine_path.is_file() else self.engine_path.read_bytes()
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(serialized) if serialized else None
        if self.engine is None:
            if self.onnx_path is None:
                raise ModelFileError(
                    f"{self.engine_path}: TensorRT {trt.__version__} on {self.gpu} cannot load this engine (built "
                    "by another TensorRT version or GPU, or corrupt); give the .onnx file instead and the engine "
                    "is rebuilt and cached, or rebuild by hand with trtexec")
            if serialized:
                log.warning("%s does not deserialize with TensorRT %s on %s: rebuilding", self.engine_path,
                            trt.__version__, self.gpu)
            serialized = self._build(calibration_data)
            self.engine = self.runtime.deserialize_cuda_engine(serialized)
            if self.engine is None:
                raise ModelFileError(f"{self.engine_path}: freshly built engine does not deserialize")
        self.context = self.engine.create_execution_context()
        self._bind()
        self.name = f"tensorrt-{precision}"

    # -- build --------------------------------------------------------------------------------
    def _build(self, calibration_data) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse_from_file(str(self.onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelFileError(f"{self.onnx_path}: TensorRT's ONNX parser rejected it: {errors}")
        def tensors(get, count):  # name -> (shape, dtype name), as check_model_io compares them
            return {t.name: (tuple(int(d) for d in t.shape), np.dtype(trt.nptype(t.dtype)).name)
                    for t in map(get, range(count))}

        inputs = tensors(network.get_input, network.num_inputs)
        outputs = tensors(network.get_output, network.num_outputs)
        check_model_io(self.spec, inputs, outputs, self.onnx_path)  # before minutes of building
        shapes = profile_shapes({n: s for n, (s, _) in inputs.items()}, self.max_batch, self.onnx_path)
        cmd = trtexec_command(self.onnx_path, self.engine_path, self.precision, self.timing_cache,
                              self.workspace_mb, self.calibration_cache if self.precision == "int8" else None,
                              shapes)
        log.info("building TensorRT engine (minutes on a Jetson); by hand: %s", cmd)
        print(f"[edepth] TensorRT build, equivalent command: {cmd}", flush=True)
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_mb << 20)
        if shapes:  # TensorRT 10 builds nothing for dynamic inputs without a profile
            profile = builder.create_optimization_profile()
            for name, (lo, opt, hi) in shapes.items():
                profile.set_shape(name, lo, opt, hi)
            config.add_optimization_profile(profile)
            if self.precision == "int8":  # INT8 scales of runtime dimensions need a calibration profile
                config.set_calibration_profile(profile)
        if self.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if self.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            if not calibration_data and not self.calibration_cache.is_file():
                raise BackendError(f"tensorrt int8: no calibration_data and no calibration cache at "
                                   f"{self.calibration_cache}; give ~100 representative frames or use fp16")
            config.int8_calibrator = make_calibrator(trt, calibration_data, self.calibration_cache, self.memory)
        blob = self.timing_cache.read_bytes() if self.timing_cache.is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError(f"{self.onnx_path}: TensorRT engine build failed (see the TensorRT log above); "
                               f"try by hand: {cmd}")
        data = bytes(serialized)
        with atomic_output(self.engine_path) as tmp:
            tmp.write_bytes(data)
        with atomic_output(self.timing_cache) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
        meta = {"onnx": str(self.onnx_path), "tensorrt": trt.__version__, "gpu": self.gpu,
                "precision": self.precision, "max_batch": self.max_batch, "trtexec": cmd}
        with atomic_output(self.engine_path.with_suffix(".build.json")) as tmp:
            tmp.write_text(json.dumps(meta, indent=2))
        log.info("TensorRT engine cached at %s", self.engine_path)
        return data

    # -- I/O ----------------------------------------------------------------------------------
    def _bind(self):
        trt, engine = self.trt, self.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        io = {n: (tuple(int(d) for d in engine.get_tensor_shape(n)),
                  np.dtype(trt.nptype(engine.get_tensor_dtype(n))).name) for n in names}
        # a prebuilt engine is checked against its sidecar too (when it has one), as the ONNX is
        check_model_io(self.spec, {n: io[n] for n in inputs}, {n: v for n, v in io.items() if n not in inputs},
                       self.engine_path if self.onnx_path is None else self.onnx_path)
        self.host, self.device = {}, {}
        for n in names:
            shape = list(engine.get_tensor_shape(n))
            if shape and shape[0] == -1:  # dynamic batch: run batch 1
                shape[0] = 1
                if n in inputs:
                    self.context.set_input_shape(n, tuple(shape))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(n)))
            self.host[n] = np.empty(shape, dtype)
            self.device[n], ptr = self.memory.alloc(shape, dtype)
            self.context.set_tensor_address(n, ptr)
        rgb_shape = self.host["rgb"].shape
        self.input_size = (int(rgb_shape[1]), int(rgb_shape[2]))
        self.max_depth = float(self.spec.max_depth) if self.spec is not None else 80.0
        for n, want in (("rgb", np.uint8), ("embodied", np.float32)):
            if self.host[n].dtype != want:
                raise ModelFileError(f"{self.engine_path}: input {n!r} is {self.host[n].dtype}, expected {np.dtype(want)}")

    def _infer(self, rgb: np.ndarray, embodied: np.ndarray):
        if self.context is None:
            raise BackendError(f"{self.name} backend for {self.engine_path} is closed; create a new one")
        for name, arr in (("rgb", rgb[None]), ("embodied", embodied[None])):
            if arr.shape != self.host[name].shape:
                raise ModelInputError(f"tensor {name!r}: engine expects {self.host[name].shape}, got {arr.shape}")
            np.copyto(self.host[name], arr)
            self.memory.h2d(self.device[name], self.host[name])
        if not self.context.execute_async_v3(self.memory.handle):
            raise BackendError(f"{self.engine_path}: execute_async_v3 failed (see the TensorRT log)")
        for name in OUTPUT_NAMES:
            self.memory.d2h(self.device[name], self.host[name])
        self.memory.sync()
        return self.host["depth"][0, 0].copy(), self.host["confidence"][0, 0].copy()

    def describe(self) -> dict:
        d = super().describe()
        d.update(engine=str(self.engine_path), onnx=str(self.onnx_path), gpu=self.gpu,
                 tensorrt=self.trt.__version__, precision=self.precision)
        return d

    def close(self) -> None:
        self.context = None
        self.engine = None
        if getattr(self, "memory", None) is not None:
            self.memory.close()
