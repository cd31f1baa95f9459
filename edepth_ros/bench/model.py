"""`edepth bench model`: latency (median, p95) and peak memory of the network per backend, as JSON.

ONNX Runtime and PyTorch eager are always measured in the same run on the same inputs and threads,
so their ratio is meaningful whatever the machine's load. The model is the real network (a
registered config, random init unless --checkpoint is given), exported to ONNX for this run.
Also reported: the model's GFLOPs (torch's FLOP counter) beside Depth Anything V2-S, the peer
the real-time config is sized against for a Jetson Orin at 30 fps.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..commands.arg_types import non_negative_int, positive_int
from ..safe_paths import output_file

# Depth Anything V2-S at 308 x 308 on a Jetson Orin 8 GB (TensorRT FP16): 23.5 ms (the figure).
PEER = {"name": "Depth Anything V2-S", "height": 308, "width": 308, "orin_8gb_ms": 23.5, "params_m": 24.8}
BACKENDS = ("onnxruntime", "torch", "tensorrt", "embodied", "all")


def add_arguments(parser) -> None:
    parser.add_argument("--backend", default="onnxruntime", choices=BACKENDS,
                        help="backend to measure; onnxruntime and torch are always measured as the reference pair")
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--config", default="realtime", help="registered model config (demo|realtime|paper) or YAML")
    parser.add_argument("--checkpoint", help="use these weights (default: random init, same cost)")
    parser.add_argument("--onnx", help="measure this exported .onnx instead of exporting one")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for both runtimes; 0 (default): the physical cores, what ONNX Runtime "
                             "and PyTorch use by default and what the node uses with backend_threads 0")
    parser.add_argument("--warmup", type=non_negative_int, default=3)
    parser.add_argument("--iters", type=positive_int, default=20)
    parser.add_argument("--no-peer-flops", action="store_true", help="skip counting the peer backbone's FLOPs")
    parser.add_argument("--json", metavar="OUT", type=output_file, help="write the JSON report here (also printed)")
    parser.add_argument("--png", metavar="OUT", type=output_file,
                        help="also draw the latencies (median, p95) as a bar chart")


class PeakRSS:
    """Samples the process's resident memory in a thread: the peak while a backend is created and run."""

    def __init__(self, period: float = 0.005):
        import psutil

        self.proc = psutil.Process()
        self.period = period
        self.base = self.peak = self.proc.memory_info().rss

    def __enter__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(self.period)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        return False


def time_interleaved(backends: dict, rgb, emb, iters: int) -> dict:
    """Round-robin timing: each round runs every backend once, so the load of a shared machine
    falls on all of them alike and their ratio stays fair."""
    from tqdm import tqdm

    times = {k: [] for k in backends}
    for _ in tqdm(range(iters), desc="bench rounds", unit="round", file=sys.stderr):
        for kind, backend in backends.items():
            t0 = time.perf_counter()
            backend.infer(rgb, emb)
            times[kind].append((time.perf_counter() - t0) * 1000.0)
    out = {}
    for kind, ts in times.items():
        t = np.asarray(ts)
        out[kind] = {"median_ms": float(np.median(t)), "p95_ms": float(np.percentile(t, 95)),
                     "mean_ms": float(t.mean()), "min_ms": float(t.min()), "iters": iters}
    return out


def count_gflops(module, rgb, emb) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(torch.from_numpy(rgb[None]), torch.from_numpy(emb[None]))
    return counter.get_total_flops() / 1e9


def plot_latencies(report: dict, path) -> None:
    """Median and p95 per backend, with the same-run ratio in the title (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..model_io import atomic_output

    rows = [(k, v) for k, v in report["results"].items() if "median_ms" in v]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=120)
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [v["median_ms"] for _, v in rows], 0.4, label="median")
    ax.bar(x + 0.2, [v["p95_ms"] for _, v in rows], 0.4, label="p95")
    ax.set_xticks(x, [k for k, _ in rows])
    ax.set_ylabel("ms per frame")
    ratio = report.get("speedup_onnxruntime_vs_torch")
    ax.set_title(f"{report['config']} {report['height']}x{report['width']}, {report['threads']} thread(s)"
                 + (f": ONNX Runtime {ratio:.2f}x PyTorch" if ratio else ""), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def peer_backbone_gflops() -> dict:
    """The peer's ViT-S/14 encoder at 308 x 308, counted here (its DPT head is not, so a lower bound)."""
    import timm
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=308).eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        vit(torch.zeros(1, 3, 308, 308))
    return {"encoder_gflops": counter.get_total_flops() / 1e9, "encoder": "vit_small_patch14_dinov2 @308",
            "encoder_params_m": sum(p.numel() for p in vit.parameters()) / 1e6}


def run(args) -> int:
    from ..backends.base import BackendError
    from ..model_io import ModelFileError

    try:
        return _run(args)
    except (ModelFileError, BackendError, ValueError) as exc:  # names the file / parameter already
        print(f"edepth bench model: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    import cv2
    import torch

    from ..backends import create_backend
    from ..backends.onnxruntime_backend import default_threads
    from ..backends.torch_backend import TorchBackend
    from ..export import example_inputs, export_onnx
    from ..network import DeployNet, build_model, model_config

    if args.threads < 0:
        raise ValueError(f"--threads: {args.threads} must be >= 0 (0: the physical cores)")
    args.threads = args.threads or default_threads()  # both runtimes get the same count
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    torch.manual_seed(0)
    if args.onnx:  # the file's own size, config and (when its checkpoint is at hand) weights
        from ..model_io import read_sidecar

        spec = read_sidecar(args.onnx)
        args.height, args.width = spec.height, spec.width
        cfg = model_config(spec.config)
        ckpt = spec.checkpoint_file(args.onnx)
        ckpt = ckpt if ckpt is not None and ckpt.is_file() else None
        deploy = TorchBackend.from_file(args.onnx).module if ckpt else DeployNet(build_model(cfg).eval())
        net = deploy.net
    else:
        cfg = model_config(args.config)
        cfg.input_size = (args.height, args.width)
        if args.checkpoint:
            from ..backends.torch_backend import load_network

            net, _ = load_network(args.checkpoint)
        else:
            net = build_model(cfg)
        deploy = DeployNet(net.eval())
    rgb, emb = example_inputs(args.height, args.width, max_depth=float(cfg.max_depth))
    rgb, emb = rgb[0], emb[0]
    report = {"config": cfg.name, "height": args.height, "width": args.width, "threads": args.threads,
              "warmup": args.warmup, "iters": args.iters, "torch": torch.__version__, "results": {}}
    report["gflops"] = count_gflops(deploy, rgb, emb)
    report["params_m"] = sum(p.numel() for p in deploy.parameters()) / 1e6

    with tempfile.TemporaryDirectory(prefix="edepth-bench-") as tmp:
        onnx_path = args.onnx
        if onnx_path is None:
            onnx_path = str(Path(tmp) / f"{cfg.name}.onnx")
            t0 = time.perf_counter()
            exp = export_onnx(args.checkpoint, args.height, args.width, None, onnx_path, net=net, check_fp16=False)
            report["export_s"] = time.perf_counter() - t0
            report["parity"] = exp.parity
        wanted = ["onnxruntime", "torch"] + ([args.backend] if args.backend not in ("onnxruntime", "torch", "all")
                                             else (["tensorrt", "embodied"] if args.backend == "all" else []))
        backends = {}
        for kind in wanted:  # create and warm up one at a time: peak memory per backend
            try:
                with PeakRSS() as mem:
                    if kind == "torch":
                        backend = TorchBackend(deploy, device="cpu", threads=args.threads)
                    elif kind == "onnxruntime":
                        backend = create_backend("onnxruntime-cpu", onnx_path, threads=args.threads)
                    elif kind == "embodied":
                        backend = create_backend("embodied", input_size=(args.height, args.width))
                    else:
                        backend = create_backend(kind, onnx_path)
                    for _ in range(max(1, args.warmup)):
                        backend.infer(rgb, emb)
                backends[kind] = backend
                report["results"][kind] = {"peak_rss_mb": mem.peak / 2**20,
                                           "delta_rss_mb": (mem.peak - mem.base) / 2**20,
                                           "backend": json.loads(json.dumps(backend.describe(), default=str))}
            except Exception as exc:  # a backend absent here (TensorRT) is reported, not fatal
                report["results"][kind] = {"error": f"{type(exc).__name__}: {exc}"}
        for kind, res in time_interleaved(backends, rgb, emb, args.iters).items():
            report["results"][kind].update(res)
        for backend in backends.values():
            backend.close()
    report["note"] = ("torch delta_rss_mb excludes the module's weights (built before the measurement); "
                      "timings are interleaved round-robin in one process")
    ort_ms = report["results"]["onnxruntime"].get("median_ms")
    torch_ms = report["results"]["torch"].get("median_ms")
    if ort_ms and torch_ms:
        report["speedup_onnxruntime_vs_torch"] = torch_ms / ort_ms
        report["target_2x_met"] = torch_ms / ort_ms >= 2.0
    peer = dict(PEER)
    if not args.no_peer_flops:
        try:
            peer.update(peer_backbone_gflops())
            # FLOP-proportional sizing: a rough first estimate, not a measurement (op mix differs)
            report["orin_fp16_estimate_ms"] = PEER["orin_8gb_ms"] * report["gflops"] / peer["encoder_gflops"]
        except Exception as exc:  # timm without that model: still report the rest
            peer["error"] = str(exc)
    report["peer"] = peer
    text = json.dumps(report, indent=2)
    print(text)
    if args.png:
        plot_latencies(report, args.png)
    if args.json:
        from ..model_io import atomic_output

        with atomic_output(args.json) as tmp_json:
            tmp_json.write_text(text + "\n")
    return 0
