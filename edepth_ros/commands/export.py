"""`edepth export`: a checkpoint -> one fused ONNX graph (text latent baked in) + JSON sidecar."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from ..safe_paths import output_file
from .arg_types import SYNTHETIC_TEXTS_MAX, text_source


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="edepth training checkpoint (.pt)")
    parser.add_argument("--height", type=int, required=True, help="model input height (multiple of 32)")
    parser.add_argument("--width", type=int, required=True, help="model input width (multiple of 32)")
    text = parser.add_mutually_exclusive_group()
    text.add_argument("--text", help="the deployment's scene description; its (mu, sigma) is baked in")
    text.add_argument("--text-from", metavar="SOURCE", type=text_source,
                      help="descriptions to average: a .txt (one a line), a .json list, or synthetic[:N] "
                           f"(training-style text of N generated frames, 1..{SYNTHETIC_TEXTS_MAX}); default: the "
                           "latent learned in training")
    parser.add_argument("--text-encoder", choices=("sentence-transformers", "clip"),
                        help="only confirms the kind: the text is embedded with the encoder the checkpoint "
                             "was trained with (another kind is refused)")
    parser.add_argument("--text-model", metavar="DIR",
                        help="that encoder's folder, where it is no longer where training found it")
    parser.add_argument("--out", required=True, type=output_file,
                        help="output .onnx path (the sidecar goes beside it as .json)")
    parser.add_argument("--dynamic-batch", action="store_true", help="export a dynamic batch axis")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                        help="torch.onnx exporter (default torchscript: fast; dynamo: torch.export based, opset >= 18)")
    parser.add_argument("--no-fp16-check", action="store_true", help="skip the FP16 activation range check")
    parser.add_argument("--no-cpu-rewrites", action="store_true",
                        help="keep the exporter's graph as it is (default: exact rewrites that let ONNX Runtime's "
                             "CPU kernels keep its blocked layout; see edepth_ros/onnx_passes.py)")
    parser.add_argument("--no-strict", action="store_true",
                        help="write the file even if parity or the FP16 check fails (reported only)")
    parser.add_argument("--json", metavar="FILE", type=output_file, help="also write the check report as JSON here")


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx"):  # per-pass notes of the graph optimiser
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import torch

    from ..export import ExportError, export_onnx, read_texts
    from ..model_io import ModelFileError

    torch.set_num_threads(max(1, torch.get_num_threads()))
    from ..model_io import sidecar_path

    if args.json and Path(args.json).resolve() == sidecar_path(Path(args.out)).resolve():
        # the report written there would replace the sidecar every backend needs to load the model
        print(f"edepth export: --json {args.json} is the sidecar of --out {args.out}; give another file name",
              file=sys.stderr)
        return 2
    if args.json and Path(args.json).resolve() == Path(args.out).resolve():
        # the report would be written over the model just exported (exit 0, a model no backend loads)
        print(f"edepth export: --json {args.json} is the --out model file itself; give another file name",
              file=sys.stderr)
        return 2
    try:
        text = read_texts(args.text_from) if args.text_from else args.text
        report = export_onnx(args.checkpoint, args.height, args.width, text, args.out,
                             dynamic_batch=args.dynamic_batch, opset=args.opset,
                             check_fp16=not args.no_fp16_check, strict=not args.no_strict,
                             exporter=args.exporter, cpu_rewrites=not args.no_cpu_rewrites,
                             text_encoder=args.text_encoder, text_model=args.text_model)
    except (ExportError, ModelFileError, ValueError) as exc:
        print(f"edepth export: {exc}", file=sys.stderr)
        return 2
    print(f"sidecar: {report.sidecar_path}")  # the checks' summary is logged by export_onnx
    from ..backends.tensorrt_backend import profile_shapes, trtexec_command
    from ..model_io import input_shapes

    # a dynamic-batch export needs its shape range on the command line (batch 1 to 8 here)
    shapes = profile_shapes({n: [-1 if d == "batch" else d for d in s]
                             for n, s in input_shapes(args.height, args.width, "batch").items()},
                            8, report.onnx_path) if args.dynamic_batch else None
    print("TensorRT engine by hand (the tensorrt backend also builds and caches it by itself):\n  "
          + trtexec_command(report.onnx_path, report.onnx_path.with_suffix(".engine"), "fp16", shapes=shapes))
    if args.json:
        from ..model_io import atomic_output

        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps({"onnx": str(report.onnx_path), "sha256": report.onnx_sha256,
                                       "parity": report.parity, "fp16": report.fp16,
                                       "seconds": report.seconds}, indent=2, default=str))
    return 0
