"""`edepth embodied-eval`: score embodied depth against projected LiDAR on KITTI object frames."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..safe_paths import output_file, output_folder
from .arg_types import float_range, positive_float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kitti-object", required=True, metavar="DIR",
                        help="KITTI object-layout folder with image_2/, velodyne/, calib/ (matched by stem)")
    parser.add_argument("--plane", choices=("lidar", "static"), default="lidar",
                        help="lidar: robust fit to the LiDAR ground returns per frame; static: KITTI's "
                             "nominal mounting (road 1.73 m below the LiDAR, level with its x-y plane)")
    parser.add_argument("--seg", default="auto", metavar="auto|LABEL_DIR",
                        help="auto: the weight-free GeometricSegmenter; or a folder of uint8 Cityscapes "
                             "train-id label PNGs named by stem")
    parser.add_argument("--ground-threshold", type=positive_float, default=0.10, metavar="M",
                        help="LiDAR points within this distance of the LiDAR-fitted plane are the "
                             "ground points of the 'lidar_ground' score (default 0.10 m)")
    # the ranges EmbodiedConfig accepts, checked here so that the message names the flag
    parser.add_argument("--inpaint-scale", type=float_range(0.0, 1.0, "0 = no inpainting, 1 = full resolution"),
                        default=None, help="override EmbodiedConfig.inpaint_scale (0..1; 1.0 = full-resolution Telea)")
    parser.add_argument("--sidewalk-height", type=float_range(-1.0, 1.0, "metres from the road level"),
                        default=0.0, metavar="M",
                        help="treat sidewalk pixels as raised by M metres (a curb) instead of at road "
                             "level (EmbodiedConfig.ground_heights; -1..1, default 0)")
    parser.add_argument("--plots", metavar="DIR", default=None, type=output_folder,
                        help="write one PNG per frame (image, depth, regions, error at LiDAR points)")
    parser.add_argument("--json", metavar="OUT", default=None, type=output_file, help="write the results as JSON here")
    parser.add_argument("--per-frame", action="store_true", help="also print the per-frame scores")


def _summary(result: dict) -> dict:
    keys = ("kitti_object", "plane", "seg", "frames", "skipped", "ms_per_frame", "ms_per_frame_median", "cpu_ms_per_frame",
            "seg_ms_per_frame", "road", "ground", "scene", "lidar_ground", "ground_threshold_m",
            "lidar_ground_by_threshold", "paper")
    return {k: result[k] for k in keys}


def run(args: argparse.Namespace) -> int:
    from ..embodied import EmbodiedConfig, EmbodiedConfigError
    from ..evaluation.embodied_eval import EvalError, EvalOptions, evaluate
    from ..ground import GroundPoseError
    from ..kitti import KittiFormatError
    from ..labels import SIDEWALK, LabelError

    try:
        overrides = {}
        if args.inpaint_scale is not None:
            overrides["inpaint_scale"] = args.inpaint_scale
        if args.sidewalk_height:
            overrides["ground_heights"] = {SIDEWALK: args.sidewalk_height}
        config = EmbodiedConfig(**overrides)
        options = EvalOptions(plane=args.plane, seg=args.seg, ground_threshold=args.ground_threshold,
                              embodied=config, plot_dir=args.plots)
        result = evaluate(args.kitti_object, options, log=lambda m: print(m, file=sys.stderr))
    except (EvalError, EmbodiedConfigError, KittiFormatError, LabelError, GroundPoseError) as exc:
        print(f"edepth embodied-eval: {exc}", file=sys.stderr)
        return 2
    shown = result if args.per_frame else _summary(result)
    print(json.dumps(shown, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if result["frames"] > 0 else 1
