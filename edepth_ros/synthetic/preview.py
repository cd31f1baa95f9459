"""Pictures of synthetic frames: image, exact depth, exact labels and the weight-free
segmenter's labels (with its road IoU), one matplotlib PNG per frame.

    python -m edepth_ros.synthetic.preview --out DIR [--seed 0] [--frames 0 10 20] [--width 1242 --height 375]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..safe_paths import output_folder

# Cityscapes train-id colours (RGB), for label pictures
PALETTE = np.zeros((256, 3), np.uint8)
PALETTE[:19] = [
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
]


def colorize(labels: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB picture of Cityscapes train ids (255 ignore: black)."""
    return PALETTE[labels]


def write_preview(frame, path: Path, segmenter=None) -> dict:
    """One PNG for one SyntheticFrame; returns what it measured (road IoU of the segmenter)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import labels as L
    from ..segmenter import road_iou

    panels = [("image", frame.rgb, None), ("depth (m), sky blank", np.where(np.isfinite(frame.depth), frame.depth, np.nan), "magma_r"),
              ("labels (ground truth)", colorize(frame.labels), None)]
    info = {"index": frame.index, "stamp": frame.stamp}
    if segmenter is not None:
        pred = segmenter.segment(frame.rgb, frame.camera, frame.plane)
        info["road_iou"] = road_iou(pred, frame.labels == L.ROAD)
        panels.append((f"GeometricSegmenter (road IoU {info['road_iou']:.3f})", colorize(pred), None))
    H, W = frame.depth.shape
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 10 * H / W * len(panels) + 0.4 * len(panels)))
    for ax, (title, img, cmap) in zip(np.atleast_1d(axes), panels):
        shown = ax.imshow(img, cmap=cmap, vmin=0 if cmap else None, vmax=80 if cmap else None)
        if cmap:
            fig.colorbar(shown, cax=ax.inset_axes([1.01, 0.0, 0.012, 1.0]))  # keeps the panels aligned
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    p = frame.pose
    fig.suptitle(f"frame {frame.index}: camera {p.height:.2f} m, pitch {np.rad2deg(p.pitch):+.2f} deg, "
                 f"roll {np.rad2deg(p.roll):+.2f} deg", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m edepth_ros.synthetic.preview", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=output_folder, required=True, help="folder for the PNGs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int, nargs="+", default=[0, 10, 20])
    p.add_argument("--width", type=int, default=1242)
    p.add_argument("--height", type=int, default=375)
    p.add_argument("--no-segmenter", action="store_true", help="skip the segmenter panel")
    args = p.parse_args(argv)
    from tqdm import tqdm

    from ..camera import CameraModelError
    from ..segmenter import GeometricSegmenter
    from . import SceneGenerator, SyntheticError

    try:
        gen = SceneGenerator(args.seed, width=args.width, height=args.height)
        seg = None if args.no_segmenter else GeometricSegmenter()
        for i in tqdm(args.frames, desc="rendering previews", unit="frame"):
            info = write_preview(gen.frame(i, lidar=False), args.out / f"seed{args.seed}_frame{i:04d}.png", seg)
            if "road_iou" in info:
                tqdm.write(f"frame {i}: segmenter road IoU {info['road_iou']:.3f}")
    except (SyntheticError, CameraModelError) as exc:  # a size no camera has is the camera model's to refuse
        print(f"preview: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(args.frames)} PNGs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
