"""The network's input/output contract, shared by export, training and every backend (numpy only).

Tensors (see docs/ARCHITECTURE.md): ``rgb`` uint8 (B, H, W, 3) normalised inside the graph;
``embodied`` float32 (B, 2, H, W) = [depth in metres with 0 = none, confidence in [0, 1]];
outputs ``depth`` and ``confidence`` (B, 1, H, W). An exported model carries a JSON sidecar
beside it (``models/NAME.onnx`` -> ``models/NAME.json``) that says all of this for that file, so a
backend can check the file it loads before it feeds it anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

INPUT_NAMES = ("rgb", "embodied")
OUTPUT_NAMES = ("depth", "confidence")
INPUT_DTYPES = {"rgb": "uint8", "embodied": "float32"}
OUTPUT_DTYPES = {"depth": "float32", "confidence": "float32"}
# ImageNet statistics (0-255 scale) applied inside the graph: callers always pass raw uint8 RGB.
RGB_MEAN = (0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0)
RGB_STD = (0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0)
SIDECAR_FORMAT = "edepth_ros/model-sidecar/1"


class ModelFileError(RuntimeError):
    """A model, engine or sidecar file is missing, corrupt or inconsistent (the message names it)."""


class ModelInputError(ValueError):
    """A tensor given to a backend has the wrong shape, dtype or values (the message names it)."""


def input_shapes(height: int, width: int, batch: int | str = 1) -> dict:
    return {"rgb": [batch, height, width, 3], "embodied": [batch, 2, height, width]}


def output_shapes(height: int, width: int, batch: int | str = 1) -> dict:
    return {"depth": [batch, 1, height, width], "confidence": [batch, 1, height, width]}


def pack_embodied(result_or_depth, confidence: Optional[np.ndarray] = None) -> np.ndarray:
    """The network's ``embodied`` input (2, H, W) float32 from an EmbodiedResult (or depth, conf).

    NaN / non-positive depth becomes 0 (the "none" code: NaN never enters the graph) and its
    confidence 0, so the network cannot trust a value that is not there.
    """
    if confidence is None:
        depth, confidence = result_or_depth.depth, result_or_depth.confidence
    else:
        depth = result_or_depth
    depth = np.asarray(depth, dtype=np.float32)
    confidence = np.asarray(confidence, dtype=np.float32)
    if depth.ndim != 2 or confidence.shape != depth.shape:
        raise ModelInputError(
            f"embodied: depth {depth.shape} and confidence {confidence.shape} must be the same (H, W)"
        )
    valid = np.isfinite(depth) & (depth > 0)
    out = np.empty((2,) + depth.shape, dtype=np.float32)
    out[0] = np.where(valid, depth, 0.0)
    out[1] = np.where(valid, np.clip(np.nan_to_num(confidence, nan=0.0), 0.0, 1.0), 0.0)
    return out


def unpack_embodied(embodied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_embodied`: (depth with NaN = none, confidence)."""
    depth = embodied[0].astype(np.float32, copy=True)
    depth[depth <= 0] = np.nan
    return depth, embodied[1].astype(np.float32, copy=True)


def check_inputs(rgb: np.ndarray, embodied: np.ndarray, size: Optional[tuple[int, int]]) -> None:
    """Raise ModelInputError naming the tensor when an input to ``Backend.infer`` is malformed.

    Checked in Python before any runtime sees the buffer: a wrong shape handed to a TensorRT
    binding reads out of bounds instead of failing.
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ModelInputError(
            f"tensor 'rgb': expected uint8 (H, W, 3) RGB, got "
            f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}"
        )
    h, w = rgb.shape[:2]
    if size is not None and (h, w) != tuple(size):
        raise ModelInputError(
            f"tensor 'rgb': this model takes {size[0]}x{size[1]} (HxW), got {h}x{w}; "
            "resize with preprocess.ModelInput first (DepthPipeline does it)"
        )
    if not isinstance(embodied, np.ndarray) or embodied.dtype != np.float32 or embodied.shape != (2, h, w):
        raise ModelInputError(
            f"tensor 'embodied': expected float32 (2, {h}, {w}), got "
            f"{getattr(embodied, 'dtype', type(embodied).__name__)} {getattr(embodied, 'shape', '')}; "
            "build it with model_io.pack_embodied"
        )
    _check_embodied_values(embodied)


def _check_embodied_values(embodied: np.ndarray) -> None:
    """Finite, depth >= 0 (0 = none), confidence in [0, 1]: what ``pack_embodied`` makes. A negative
    depth or a confidence of 50 is no 'none' code the graph knows: it runs and returns a wrong map."""
    if not np.isfinite(embodied).all():
        raise ModelInputError("tensor 'embodied': contains NaN/inf; 0 is the 'none' code (use pack_embodied)")
    depth, conf = embodied[..., 0, :, :], embodied[..., 1, :, :]
    if depth.size and float(depth.min()) < 0.0:
        raise ModelInputError(f"tensor 'embodied': channel 0 (depth, metres) has negative values (min "
                              f"{float(depth.min()):.4g}); 0 is the 'none' code (use pack_embodied)")
    if conf.size and (float(conf.min()) < 0.0 or float(conf.max()) > 1.0):
        raise ModelInputError(f"tensor 'embodied': channel 1 (confidence) must lie in [0, 1], got "
                              f"{float(conf.min()):.4g}..{float(conf.max()):.4g} (use pack_embodied)")


def sanitize_outputs(depth: np.ndarray, confidence: np.ndarray, max_depth: float) -> tuple[np.ndarray, np.ndarray, int]:
    """A network's outputs held to the contract: depth in (0, max_depth] or NaN (no estimate),
    confidence in [0, 1] and 0 where the depth is NaN. NaN, inf and depth <= 0 (what an FP16 engine
    overflowing or a foreign model gives) become NaN with confidence 0; depth above max_depth is
    capped. Valid outputs come back unchanged. Returns (depth, confidence, pixels made NaN)."""
    depth = np.asarray(depth, dtype=np.float32)
    confidence = np.asarray(confidence, dtype=np.float32)
    bad = ~((depth > 0) & (depth < np.inf))  # NaN compares False: bad too
    n_bad = int(np.count_nonzero(bad))
    if n_bad:
        depth = np.where(bad, np.float32(np.nan), depth)
    depth = np.minimum(depth, np.float32(max_depth))
    confidence = np.where(bad | ~np.isfinite(confidence), np.float32(0.0),
                          np.clip(confidence, 0.0, 1.0)).astype(np.float32, copy=False)
    return depth, confidence, n_bad


def check_batch(rgb: np.ndarray, embodied: np.ndarray, size: Optional[tuple[int, int]]) -> None:
    """``check_inputs`` for a batch: (B, H, W, 3) uint8 and (B, 2, H, W) float32 with the same B."""
    for name, x in (("rgb", rgb), ("embodied", embodied)):
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[0] < 1:
            raise ModelInputError(f"tensor '{name}': infer_batch takes a batch (B, ...) of 4 dimensions, got "
                                  f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
    if rgb.shape[0] != embodied.shape[0]:
        raise ModelInputError(f"tensors 'rgb' and 'embodied': batch {rgb.shape[0]} and {embodied.shape[0]} differ")
    check_inputs(rgb[0], embodied[0], size)  # dtype and per-frame shape, the same for every frame
    _check_embodied_values(embodied)  # the first frame was checked, bad values may be in any


# ---------------------------------------------------------------------------------------------
# files


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Nothing half-written ever carries the final name (a crash mid-export leaves the old file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a model must be readable by the node's user
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """``models/NAME.onnx`` -> ``models/NAME.json`` (also for .engine / .plan files)."""
    return Path(model_path).with_suffix(".json")


@dataclass
class ModelSpec:
    """What the sidecar JSON of an exported model says about it."""

    height: int
    width: int
    max_depth: float
    inputs: dict = field(default_factory=dict)  # name -> {"shape": [...], "dtype": "..."}
    outputs: dict = field(default_factory=dict)
    dynamic_batch: bool = False
    normalisation: dict = field(default_factory=lambda: {"mean": list(RGB_MEAN), "std": list(RGB_STD),
                                                         "scale": "0-255, inside the graph"})
    text: Optional[str] = None
    text_latent: Optional[dict] = None  # {"mu": [...], "sigma": [...]}: lets PyTorch rebuild the same graph
    config: dict = field(default_factory=dict)
    checkpoint: Optional[str] = None
    checkpoint_sha256: Optional[str] = None
    onnx_sha256: Optional[str] = None
    opset: Optional[int] = None
    parity: dict = field(default_factory=dict)
    format: str = SIDECAR_FORMAT

    @classmethod
    def for_size(cls, height: int, width: int, max_depth: float, dynamic_batch: bool = False, **kw) -> "ModelSpec":
        batch: int | str = "batch" if dynamic_batch else 1
        inputs = {n: {"shape": s, "dtype": INPUT_DTYPES[n]} for n, s in input_shapes(height, width, batch).items()}
        outputs = {n: {"shape": s, "dtype": OUTPUT_DTYPES[n]} for n, s in output_shapes(height, width, batch).items()}
        return cls(height=int(height), width=int(width), max_depth=float(max_depth), inputs=inputs,
                   outputs=outputs, dynamic_batch=dynamic_batch, **kw)

    def to_dict(self) -> dict:
        return asdict(self)

    def checkpoint_file(self, model_path: str | os.PathLike) -> Optional[Path]:
        """The checkpoint this model was exported from; a relative path is relative to the model's
        folder (what `edepth export` writes, so a committed or copied model folder stays whole)."""
        if not self.checkpoint:
            return None
        ckpt = Path(self.checkpoint)
        return ckpt if ckpt.is_absolute() else Path(model_path).parent / ckpt


def write_sidecar(model_path: str | os.PathLike, spec: ModelSpec) -> Path:
    out = sidecar_path(model_path)
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps(spec.to_dict(), indent=2, default=_json_default) + "\n")
    return out


def _json_default(obj: Any):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def read_sidecar(model_path: str | os.PathLike) -> ModelSpec:
    """Read and validate the sidecar of ``model_path``; ModelFileError names the file and field."""
    path = sidecar_path(model_path)
    if not path.is_file():
        raise ModelFileError(
            f"{path}: sidecar JSON of model {model_path} not found; re-export with `edepth export` "
            "(it writes the model and its sidecar together)"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc}); re-export the model") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if data.get("format") != SIDECAR_FORMAT:
        raise ModelFileError(f"{path}: field 'format' is {data.get('format')!r}, expected {SIDECAR_FORMAT!r}")
    known = set(ModelSpec.__dataclass_fields__)
    try:
        spec = ModelSpec(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise ModelFileError(f"{path}: missing field ({exc})") from exc
    _check_spec_types(spec, path)
    for name in INPUT_NAMES:
        if name not in spec.inputs:
            raise ModelFileError(f"{path}: field 'inputs' lacks tensor {name!r} (has {sorted(spec.inputs)})")
    for name in OUTPUT_NAMES:
        if name not in spec.outputs:
            raise ModelFileError(f"{path}: field 'outputs' lacks tensor {name!r} (has {sorted(spec.outputs)})")
    if not (spec.height > 0 and spec.width > 0 and spec.max_depth > 0):
        raise ModelFileError(f"{path}: height/width/max_depth must be positive, got "
                             f"{spec.height}/{spec.width}/{spec.max_depth}")
    _check_spec_agrees(spec, path)
    return spec


def _check_spec_agrees(spec: ModelSpec, path: Path) -> None:
    """The sidecar's fields agree with each other: an edited height, width or max_depth would
    otherwise feed the graph another size or cap every depth at the wrong range, silently."""
    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"{path}: {what}; the sidecar was edited or damaged, re-export the model")

    hw = {"rgb": (1, 2), "embodied": (2, 3)}  # where H and W sit in each input's shape
    for name, (ih, iw) in hw.items():
        shape = spec.inputs[name]["shape"]
        if len(shape) != 4:
            raise bad(f"inputs.{name}.shape {shape} is not 4-D")
        if [shape[ih], shape[iw]] != [spec.height, spec.width]:
            raise bad(f"height x width {spec.height} x {spec.width} differs from inputs.{name}.shape {shape}")
    cfg_max = spec.config.get("max_depth") if isinstance(spec.config, dict) else None
    if isinstance(cfg_max, (int, float)) and not isinstance(cfg_max, bool) and float(cfg_max) != spec.max_depth:
        raise bad(f"max_depth {spec.max_depth} differs from config.max_depth {cfg_max} (the graph's cap)")


def _check_spec_types(spec: ModelSpec, path: Path) -> None:
    """Every field a backend relies on has the JSON type it expects (an edited or damaged sidecar
    must fail here, naming the field, not later inside a runtime)."""
    def bad(name: str, want: str, value) -> ModelFileError:
        return ModelFileError(f"{path}: field {name!r} must be {want}, got {value!r}; re-export the model")

    for name in ("height", "width"):
        v = getattr(spec, name)
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad(name, "an integer", v)
    try:
        finite = (isinstance(spec.max_depth, (int, float)) and not isinstance(spec.max_depth, bool)
                  and bool(np.isfinite(float(spec.max_depth))))
    except (TypeError, ValueError, OverflowError):
        finite = False
    if not finite:
        raise bad("max_depth", "a finite number of metres", spec.max_depth)
    spec.max_depth = float(spec.max_depth)
    if not isinstance(spec.dynamic_batch, bool):
        raise bad("dynamic_batch", "true or false", spec.dynamic_batch)
    for group in ("inputs", "outputs"):
        tensors = getattr(spec, group)
        if not isinstance(tensors, dict):
            raise bad(group, "an object {tensor name: {shape, dtype}}", tensors)
        for tname, t in tensors.items():
            where = f"{group}.{tname}"
            if not isinstance(t, dict) or not isinstance(t.get("dtype"), str) or not isinstance(t.get("shape"), list):
                raise bad(where, 'an object {"shape": [...], "dtype": "..."}', t)
            if not all(isinstance(d, str) or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
                       for d in t["shape"]):
                raise bad(f"{where}.shape", "positive integers or names of dynamic dimensions", t["shape"])
    for name in ("onnx_sha256", "checkpoint_sha256"):
        v = getattr(spec, name)
        if v is not None and not isinstance(v, str):
            raise bad(name, "a hex string or null", v)


def stale_export(spec: ModelSpec, model_path) -> Optional[str]:
    """Why the export is stale, or None: the checkpoint its sidecar names is still there but its
    sha256 has changed since (retrained or replaced without re-exporting)."""
    checkpoint = spec.checkpoint_file(model_path)
    if checkpoint is None or not spec.checkpoint_sha256 or not checkpoint.is_file():
        return None  # an engine shipped without its checkpoint: nothing to compare
    digest = sha256_file(checkpoint)
    if digest == spec.checkpoint_sha256:
        return None
    return (f"{model_path} was exported from {checkpoint} (sha256 {spec.checkpoint_sha256[:12]}...), which has "
            f"changed since (now {digest[:12]}...): the export is stale; re-export it with `edepth export "
            f"--checkpoint {checkpoint} --height {spec.height} --width {spec.width} --out {model_path}`")


def check_io_matches(spec: ModelSpec, actual_inputs: dict, actual_outputs: dict, model_path) -> None:
    """Compare the tensors a runtime reports (name -> (shape, dtype)) with the sidecar's.

    Shapes may use strings for dynamic dimensions; those match anything.
    """
    for kind, declared, actual in (("input", spec.inputs, actual_inputs), ("output", spec.outputs, actual_outputs)):
        if set(declared) != set(actual):
            raise ModelFileError(
                f"{model_path}: {kind}s {sorted(actual)} do not match its sidecar "
                f"{sidecar_path(model_path)} ({sorted(declared)}); the two files are from different "
                "exports: re-export with `edepth export`"
            )
        for name, (shape, dtype) in actual.items():
            want = declared[name]
            if str(dtype) != want["dtype"]:
                raise ModelFileError(f"{model_path}: {kind} tensor {name!r} is {dtype}, sidecar says {want['dtype']}")
            if len(shape) != len(want["shape"]) or any(
                isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(shape, want["shape"])
            ):
                raise ModelFileError(
                    f"{model_path}: {kind} tensor {name!r} has shape {list(shape)}, sidecar says {want['shape']}"
                )
