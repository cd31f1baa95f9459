"""`edepth make-bag synthetic OUT --frames N --seed S` | `edepth make-bag kitti OUT --drive DIR`."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="source", metavar="SOURCE")
    sub.required = True
    s = sub.add_parser("synthetic", help="camera, camera_info, tf, ground-truth depth, labels and LiDAR "
                                         "from the scene generator")
    s.add_argument("out", help="output bag folder (must not exist)")
    s.add_argument("--frames", type=int, default=20, help="number of frames (10 Hz)")
    s.add_argument("--seed", type=int, default=0, help="scene generator seed")
    s.add_argument("--start", type=int, default=0, help="index of the first frame")
    s.add_argument("--width", type=int, default=1242)
    s.add_argument("--height", type=int, default=375)
    k = sub.add_parser("kitti", help="a KITTI raw drive folder to a bag")
    k.add_argument("out", help="output bag folder (must not exist)")
    k.add_argument("--drive", required=True, help="<date>/<date>_drive_NNNN_sync folder")
    k.add_argument("--calib", default=None, help="folder with calib_cam_to_cam.txt and calib_velo_to_cam.txt "
                                                 "(default: the drive's parent)")
    k.add_argument("--camera-height", type=float, default=1.65, help="nominal camera height for the static "
                                                                     "base_footprint -> camera transform (m)")
    k.add_argument("--max-frames", type=int, default=None)
    for p in (s, k):
        p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
        p.add_argument("--image-format", choices=("raw", "jpeg", "png"), default="raw",
                       help="raw sensor_msgs/Image, or CompressedImage on <image topic>/compressed")


def run(args: argparse.Namespace) -> int:
    from ..bags import io as bio
    from ..bags import make_bag as mb

    try:
        if args.source == "synthetic":
            summary = mb.make_synthetic_bag(args.out, frames=args.frames, seed=args.seed, width=args.width,
                                            height=args.height, storage=args.storage,
                                            image_format=args.image_format, start=args.start)
        else:
            summary = mb.make_kitti_bag(args.out, args.drive, calib_dir=args.calib, storage=args.storage,
                                        image_format=args.image_format, camera_height=args.camera_height,
                                        max_frames=args.max_frames)
    except (mb.MakeBagError, bio.BagError, ValueError, OSError) as exc:
        print(f"edepth make-bag: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {summary.path} ({summary.frames} frames, {args.storage})")
    for topic, count in sorted(summary.topics.items()):
        print(f"  {topic}: {count}")
    for note in summary.notes:
        print(f"  note: {note}")
    return 0
