"""`edepth eval kitti ...` (Eigen split, the peers' protocol) and `edepth eval bag BAG ...` (LiDAR / depth GT)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from ..safe_paths import output_folder
from .arg_types import positive_int


def _add_model(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--checkpoint", help="PyTorch checkpoint (.pt) run by the torch backend")
    g.add_argument("--onnx", help="exported ONNX model run by ONNX Runtime")
    g.add_argument("--engine", help="TensorRT engine (needs TensorRT and a GPU)")
    g.add_argument("--embodied-only", action="store_true", help="no network: score the embodied scene depth")
    p.add_argument("--threads", type=int, default=None,
                   help="backend CPU threads (0: the runtime's default; default: 1 on a machine of 2 cores "
                        "or fewer, where more threads make PyTorch many times slower, else 0)")
    p.add_argument("--out", default=None, type=output_folder, help="report folder (default eval_out/<kind>)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--max-frames", type=positive_int, default=None, help="only the first N frames")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND")
    sub.required = True
    k = sub.add_parser("kitti", help="KITTI Eigen split: Garg crop, 1e-3-80 m, nine metrics, plots")
    k.add_argument("--root", required=True, help="KITTI raw data folder (holds <date>/<drive>/image_02/...)")
    k.add_argument("--split", required=True, help="split file: '<image> <gt> <focal>' or '<date>/<drive> <idx> l' lines")
    k.add_argument("--gt-root", default=None,
                   help="annotated depth folder: <drive>/proj_depth/groundtruth/... or KITTI's train/<drive>, "
                        "val/<drive> (default: --root; Eigen lines without annotated depth use raw LiDAR)")
    k.add_argument("--calib", default=None, help="folder with calib_cam_to_cam.txt (default: root/<date>)")
    k.add_argument("--ground", choices=("nominal", "fit-gt"), default="nominal",
                   help="ground plane for the embodied depth: nominal mounting, or fitted to the GT (upper bound)")
    k.add_argument("--camera-height", type=float, default=1.65, help="nominal camera height above the road (m)")
    k.add_argument("--crop", choices=("garg", "eigen", "none"), default="garg")
    _add_model(k)
    b = sub.add_parser("bag", help="a ROS 2 bag against LiDAR or a ground-truth depth image")
    b.add_argument("bag", help="bag folder or .mcap/.db3 file")
    b.add_argument("--image-topic", default="/camera/image_raw", help="sensor_msgs/Image or CompressedImage")
    b.add_argument("--camera-info-topic", default="/camera/camera_info")
    gt = b.add_mutually_exclusive_group(required=True)
    gt.add_argument("--lidar-topic", help="sensor_msgs/PointCloud2 ground truth")
    gt.add_argument("--depth-topic", help="sensor_msgs/Image 32FC1/16UC1 ground-truth depth")
    b.add_argument("--labels-topic", default=None, help="mono8 Cityscapes train ids (default: built-in segmenter)")
    b.add_argument("--extrinsics", default=None,
                   help="T_camera_lidar instead of /tf_static: 16 numbers (4x4 row-major) or 'x y z qx qy qz qw'")
    b.add_argument("--ground-frame", default="base_footprint", help="tf frame of the road (z = 0)")
    b.add_argument("--camera-height", type=float, default=1.65,
                   help="static mounting used where the bag has no ground_frame -> camera transform (m)")
    b.add_argument("--camera-pitch", type=float, default=0.0, help="static mounting pitch (rad, + looks down)")
    b.add_argument("--max-dt", type=float, default=0.05, help="largest image / ground-truth stamp difference (s)")
    b.add_argument("--tf-max-age", type=float, default=1.0,
                   help="largest gap (s) between a stamp and the nearest /tf transform used for it, as the node's "
                        "tf_max_age: beyond it a LiDAR frame is skipped and the ground pose is the static mounting")
    b.add_argument("--crop", choices=("garg", "eigen", "none"), default="none")
    _add_model(b)


def parse_extrinsics(text: str) -> np.ndarray:
    from ..bags.io import quaternion_to_matrix

    try:
        vals = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"--extrinsics {text!r}: not numbers") from None
    if not all(np.isfinite(vals)):
        raise ValueError(f"--extrinsics {text!r}: every number must be finite")
    if len(vals) == 16:
        from ..camera import check_rotation

        T = np.array(vals).reshape(4, 4)
        # a scaled or sheared rotation, or a projective last row, would move every LiDAR point: wrong ground truth
        if not np.allclose(T[3], (0, 0, 0, 1), atol=1e-9):
            raise ValueError(f"--extrinsics: the last row is {T[3].tolist()}, not 0 0 0 1: give a rigid transform "
                             "T_camera_lidar (rotation and translation, 4x4 row-major)")
        check_rotation(T[:3, :3], "--extrinsics (rotation part, the upper-left 3x3)",
                       "give a rigid transform T_camera_lidar, or 'x y z qx qy qz qw'")
    elif len(vals) == 7:
        T = np.eye(4)
        try:
            T[:3, :3] = quaternion_to_matrix(*vals[3:])
        except RuntimeError as exc:  # BagError: a zero quaternion
            raise ValueError(f"--extrinsics {text!r}: {exc}") from None
        T[:3, 3] = vals[:3]
    else:
        raise ValueError(f"--extrinsics: {len(vals)} numbers; give 16 (4x4 row-major) or 7 (x y z qx qy qz qw)")
    return T


def make_pipeline(args):
    """The node's pipeline: DepthPipeline over create_backend (same defaults as edepth_node)."""
    from ..backends import create_backend
    from ..pipeline import DepthPipeline

    from ..demo import demo_threads

    options = {"max_depth": 80.0}
    threads = demo_threads() if args.threads is None else args.threads
    if threads:
        options["threads"] = threads
    if args.embodied_only:
        backend = create_backend("embodied", None, **options)
    elif args.onnx:
        backend = create_backend("auto", args.onnx, **options)
    elif args.engine:
        backend = create_backend("tensorrt", args.engine, **options)
    else:
        backend = create_backend("torch", args.checkpoint, **options)
    return DepthPipeline(backend), (args.onnx or args.engine or args.checkpoint or "embodied only")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out or f"eval_out/{args.kind}")
    crop = None if args.crop == "none" else args.crop
    try:
        pipeline, model_name = make_pipeline(args)
        if args.kind == "kitti":
            from ..evaluation import kitti_eval as ke

            entries, bad = ke.parse_split(args.split, args.root, args.gt_root, args.calib)
            for b in bad:
                print(f"edepth eval: split line {b['line']} skipped: {b['reason']}", file=sys.stderr)
            if args.max_frames is not None:
                entries = entries[: args.max_frames]
            res = ke.evaluate(entries, pipeline, out_dir=out, ground=args.ground, camera_height=args.camera_height,
                              crop=crop, skipped=bad, progress=not args.quiet, model_name=model_name,
                              plots=not args.no_plots)
            skipped = len(res.skipped)
        else:
            from ..evaluation import bag_eval as be
            from ..ground import GroundPlane

            res = be.evaluate_bag(
                args.bag, pipeline, args.image_topic, args.camera_info_topic, lidar_topic=args.lidar_topic,
                depth_topic=args.depth_topic, labels_topic=args.labels_topic,
                extrinsics=parse_extrinsics(args.extrinsics) if args.extrinsics else None,
                ground_frame=args.ground_frame,
                static_plane=GroundPlane.from_static(args.camera_height, args.camera_pitch),
                max_dt=args.max_dt, max_frames=args.max_frames, crop=crop, out_dir=out,
                progress=not args.quiet, model_name=model_name, plots=not args.no_plots, tf_max_age=args.tf_max_age)
            skipped = sum(res.skipped.values())
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"edepth eval {args.kind}: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # a backend whose runtime is not installed (torch, tensorrt)
        print(f"edepth eval {args.kind}: the chosen backend cannot load ({exc}); install its runtime or use "
              "--onnx / --embodied-only", file=sys.stderr)
        return 2
    print((out / "summary.md").read_text())
    print(f"\nreport: {out / 'summary.md'}  ({len(res.per_frame)} frames evaluated, {skipped} skipped)")
    if not res.per_frame:
        print(f"edepth eval {args.kind}: no frame could be scored ({skipped} skipped; the reasons are in "
              f"{out / 'summary.md'})", file=sys.stderr)
        return 1
    if all(r.get("note") for r in res.per_frame):  # every mean is NaN: not a result to pass on
        print(f"edepth eval {args.kind}: no frame has depth at any ground-truth pixel ({res.per_frame[0]['note']}; "
              f"every frame's note is in {out / 'per_frame.csv'})", file=sys.stderr)
        return 1
    return 0
