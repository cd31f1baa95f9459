"""`edepth demo`: synthetic bag -> edepth_node over Fast DDS -> recorded outputs -> report in demo_out/."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..safe_paths import output_folder
from .arg_types import DEMO_FRAMES_MAX, demo_frames, domain_id, positive_float, scene_seed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", type=output_folder, help="report folder (default demo_out)")
    parser.add_argument("--frames", type=demo_frames, default=16,
                        help=f"frames of the synthetic drive (10 Hz; 1..{DEMO_FRAMES_MAX}, default 16)")
    parser.add_argument("--seed", type=scene_seed, default=2025, help="scene generator seed (not a training scene)")
    parser.add_argument("--rate", type=positive_float, default=0.25,
                        help="replay speed: 0.25 gives the node 400 ms a frame on a small CPU")
    parser.add_argument("--domain-id", type=domain_id, default=None,
                        help="ROS_DOMAIN_ID, 0-232 (default: $ROS_DOMAIN_ID or 99)")
    parser.add_argument("--model", default=None, help="model file for the node (default: the demo model in models/)")
    parser.add_argument("--backend", default="auto", help="node backend (auto, onnxruntime, embodied, ...)")
    parser.add_argument("--segmenter", action="store_true",
                        help="use the node's built-in segmenter instead of the scene's labels on /camera/semantic")
    parser.add_argument("--no-embodied-eval", action="store_true", help="skip the KITTI embodied-depth evaluation")
    parser.add_argument("--cache-dir", default=None, type=output_folder,
                        help="where the demo bag is cached (default .cache/demo)")
    parser.add_argument("--timeout", type=positive_float, default=120.0, help="seconds to wait for the node and recorder")


def run(args: argparse.Namespace) -> int:
    from ..demo import DemoError, DemoOptions, run_demo

    opts = DemoOptions(out=Path(args.out), frames=args.frames, seed=args.seed, rate=args.rate,
                       domain_id=args.domain_id, model=args.model, backend=args.backend,
                       labels="segmenter" if args.segmenter else "bag",
                       cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                       embodied_eval=not args.no_embodied_eval, timeout=args.timeout,
                       log=lambda m: print(m, flush=True))
    try:
        res = run_demo(opts)
    except (DemoError, ValueError, OSError) as exc:
        print(f"edepth demo: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    print("\nwhere everything is:")
    names = {"examples": "pictures", "error_by_distance": "error by dist.", "pred_vs_true": "pred vs true",
             "pointcloud": "point cloud", "offline_eval": "offline eval", "embodied_eval": "KITTI embodied"}
    print(f"  {'report':<15} {res.report}")
    for key, name in names.items():
        if key in res.files:
            print(f"  {name:<15} {res.files[key]}")
    print(f"  {'per frame':<15} {out / 'per_frame.csv'}")
    print(f"  {'node outputs':<15} {out / 'recorded'} (a ROS 2 bag: edepth play / edepth eval bag)")
    print(f"  {'logs':<15} {out / 'logs'}")
    m = res.metrics
    if res.frames_evaluated:
        print(f"\n{res.frames_evaluated} of {res.frames_sent} frames scored: AbsRel {m['abs_rel']:.3f}, "
              f"RMSE {m['rmse']:.2f} m, d1 {m['d1']:.3f}")
        import json

        off = json.loads((out / "summary.json").read_text()).get("offline_eval") or {}
        if off.get("frame_wall_median_ms") is not None and off.get("node_receive_to_publish_median_ms"):
            print(f"offline evaluation {off['frame_wall_median_ms']:.0f} ms a frame, the node "
                  f"{off['node_receive_to_publish_median_ms']:.0f} ms (ratio {off['offline_over_node_ratio']:.2f})")
        return 0
    print("no frame was scored: see the node log", file=sys.stderr)
    return 1
