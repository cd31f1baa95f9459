"""Benchmark of the scene generator and the weight-free segmenter, one thread, printing JSON.

    python -m edepth_ros.synthetic.bench [--json OUT] [--repeats N] [--kitti DIR]

- render: one 1242x375 frame (camera image, labels, depth, 64-beam LiDAR); reference: the same
  frame with every primitive tested at every pixel (no bounding-box culling), same run.
- segment: GeometricSegmenter on a 1242x375 frame (a KITTI road frame when the samples are
  found, else a synthetic frame); reference: the same segmenter at full resolution
  (work_scale 1.0), same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..safe_paths import output_file


def _times(fn, repeats: int) -> list[float]:
    fn()  # warm caches (rays, plane geometry)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def _stats(ms: list[float]) -> dict:
    return {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)), "runs": len(ms)}


def _road_frame(kitti: Path):
    import cv2

    img = kitti / "road" / "image_2" / "um_000000.png"
    if not img.is_file():
        return None
    bgr = cv2.imread(str(img))
    if bgr is None:
        from . import SyntheticError

        raise SyntheticError(f"{img}: not a readable image (a damaged KITTI sample?); restore it or pass "
                             "--kitti to another sample folder")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def run(repeats: int = 10, kitti: Path | None = None) -> dict:
    import cv2

    cv2.setNumThreads(1)
    from ..camera import CameraModel
    from ..ground import GroundPlane
    from ..segmenter import GeometricConfig, GeometricSegmenter
    from . import SceneGenerator

    rgb = _road_frame(kitti) if kitti is not None else None  # first: a bad file fails before the timing
    gen = SceneGenerator(0)
    render = _times(lambda: gen.frame(3), repeats)
    gen.cull = False
    render_ref = _times(lambda: gen.frame(3), max(2, repeats // 4))
    gen.cull = True

    if rgb is not None and rgb.shape[:2] == (375, 1242):
        source = "KITTI road um_000000"
        cam = CameraModel.from_intrinsics(721.5377, 721.5377, 609.5593, 172.854, 1242, 375)
        plane = GroundPlane.from_static(1.65)
    else:
        source = "synthetic seed 0 frame 3"
        f = gen.frame(3, lidar=False)
        rgb, cam, plane = f.rgb, f.camera, f.plane
    seg = GeometricSegmenter()
    segment = _times(lambda: seg.segment(rgb, cam, plane), repeats * 3)
    full = GeometricSegmenter(GeometricConfig(work_scale=1.0))
    segment_ref = _times(lambda: full.segment(rgb, cam, plane), repeats)
    return {
        "threads": 1,
        "size": [1242, 375],
        "render": {**_stats(render), "reference": "no bounding-box culling", "reference_stats": _stats(render_ref),
                   "speedup_vs_reference": float(np.median(render_ref) / np.median(render))},
        "segment": {**_stats(segment), "input": source, "reference": "work_scale 1.0 (full resolution)",
                    "reference_stats": _stats(segment_ref),
                    "speedup_vs_reference": float(np.median(segment_ref) / np.median(segment))},
    }


def main(argv=None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    p = argparse.ArgumentParser(prog="python -m edepth_ros.synthetic.bench", description=__doc__.splitlines()[0])
    p.add_argument("--json", type=output_file, help="also write the results here")
    p.add_argument("--repeats", type=int, default=10)
    project = Path(__file__).resolve().parents[2]
    p.add_argument("--kitti", type=Path, default=Path(os.environ.get("EDEPTH_KITTI_SAMPLES", project.parent / "shared" / "kitti")))
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats: must be >= 1")
    from . import SyntheticError

    try:
        result = run(args.repeats, args.kitti)
    except SyntheticError as exc:
        print(f"{p.prog}: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
