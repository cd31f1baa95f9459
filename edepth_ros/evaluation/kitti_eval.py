"""KITTI depth evaluation in the peers' protocol: Eigen split, Garg crop, 1e-3 to 80 m, nine metrics.

Split files, one frame a line, two formats:
- BTS / AdaBins / iDisc file lists: ``<image path> <ground-truth path> <focal>`` relative to
  ``root`` (image) and ``gt_root`` (ground truth, default ``root``); ``None`` as the GT path means none.
- Eigen's own lines: ``<date>/<drive> <index> <l|r>``: image ``root/date/drive/image_0{2,3}/data/index.png``;
  ground truth the annotated depth ``gt_root/[train/|val/]drive/proj_depth/groundtruth/image_0{2,3}/index.png``
  when present, else the raw Velodyne scan built into a depth map as the peers' Eigen raw protocol does
  (Monodepth2's export_gt_depth: depth = the LiDAR's forward x, pixel round(u) - 1, round(v) - 1, the
  nearest return per pixel; ``eigen_raw_depth``). A ``gt_root`` that holds none of the split's ground
  truth is refused, and the report counts the frames of each ground-truth source.

Calibration: ``calib_dir`` when given, else ``root/<date>/`` (KITTI raw's calib_cam_to_cam.txt).
Ground plane for the embodied depth: ``nominal`` (the KITTI mounting, camera 1.65 m above a level
road) or ``fit-gt`` (a robust plane fitted to the frame's ground-truth points: an upper bound that
shows what a good live pose gives; it uses ground truth and is labelled so in the report).

Missing files and unreadable frames are skipped with their reason; the rest is evaluated and the
skipped count is reported.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .. import metrics as M
from . import report

log = logging.getLogger(__name__)

NOMINAL_CAMERA_HEIGHT = 1.65  # KITTI camera 2 above the road, metres (Geiger et al. 2013)
_DATE = re.compile(r"^\d{4}_\d{2}_\d{2}$")


class KittiEvalError(ValueError):
    """A split file or folder that cannot be evaluated at all (the message names it)."""


@dataclass
class SplitEntry:
    line_no: int
    name: str
    image: Path
    gt: Optional[Path] = None
    velodyne: Optional[Path] = None
    calib_dir: Optional[Path] = None
    focal: Optional[float] = None
    cam: int = 2


def parse_split(split_file, root, gt_root=None, calib_dir=None) -> tuple[list[SplitEntry], list[dict]]:
    """Entries of a split file, and the lines that could not be parsed (as skip records)."""
    split_file, root = Path(split_file), Path(root)
    given_gt_root = Path(gt_root) if gt_root else None
    gt_root = given_gt_root or root
    if not split_file.is_file():
        raise KittiEvalError(f"split file {split_file} not found")
    if not root.is_dir():
        raise KittiEvalError(f"KITTI root {root} is not a folder; pass --root with the raw-data folder")
    if given_gt_root is not None and not given_gt_root.is_dir():
        # a typo here used to score every Eigen line against raw LiDAR instead, silently
        raise KittiEvalError(f"--gt-root {given_gt_root} is not a folder; pass the annotated depth folder "
                             "(holds <drive>/proj_depth/groundtruth/...), or leave --gt-root out to score "
                             "Eigen lines against raw LiDAR")
    entries, bad = [], []
    try:
        text = split_file.read_text()
    except UnicodeDecodeError:
        raise KittiEvalError(f"split file {split_file} is not a text file; give a split list "
                             "('<image> <ground truth> <focal>' or '<date>/<drive> <index> <l|r>' per line)") from None
    for no, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            entries.append(_parse_line(no, parts, root, gt_root, calib_dir))
        except ValueError as exc:
            bad.append({"line": no, "name": line.strip(), "reason": str(exc)})
    with_gt = [e for e in entries if e.gt is not None]
    if given_gt_root is not None and with_gt and not any(e.gt.is_file() for e in with_gt):
        eigen = any(e.velodyne is not None for e in with_gt)
        layouts = ("<gt-root>/<drive>/proj_depth/groundtruth/image_0{2,3}/<index>.png, and the same under "
                   "<gt-root>/train/ and <gt-root>/val/ (KITTI's data_depth_annotated)" if eigen
                   else "<gt-root>/<the split's ground-truth path>")
        raise KittiEvalError(
            f"--gt-root {given_gt_root} holds none of the split's {len(with_gt)} ground-truth files (looked for "
            f"{layouts}; the first: {with_gt[0].gt}); pass the annotated depth folder, or leave --gt-root out "
            "to score Eigen lines against raw LiDAR")
    return entries, bad


def _calib_for(first_component: str, root: Path, calib_dir) -> Optional[Path]:
    if calib_dir:
        return Path(calib_dir)
    if _DATE.match(first_component):
        return root / first_component
    return None


def _parse_line(no: int, parts: list[str], root: Path, gt_root: Path, calib_dir) -> SplitEntry:
    first = parts[0].split("/")[0]
    if len(parts) >= 2 and parts[1].isdigit():  # Eigen: date/drive index side
        date_drive = parts[0].strip("/")
        if "/" not in date_drive:
            raise ValueError(f"line {no}: {parts[0]!r} is not <date>/<drive>")
        date, drive = date_drive.split("/", 1)
        side = parts[2] if len(parts) > 2 else "l"
        if side not in ("l", "r"):  # anything else used to mean the left camera
            raise ValueError(f"line {no}: side {side!r}: use 'l' (image_02) or 'r' (image_03)")
        cam = 3 if side == "r" else 2
        idx = f"{int(parts[1]):010d}"
        # KITTI's data_depth_annotated puts the drives under train/ and val/; a merged folder has them at the top
        rel = Path(drive) / "proj_depth" / "groundtruth" / f"image_0{cam}" / f"{idx}.png"
        gt = next((g for g in (gt_root / rel, gt_root / "train" / rel, gt_root / "val" / rel) if g.is_file()),
                  gt_root / rel)
        return SplitEntry(  # the camera in the name: '5 l' and '5 r' are two frames
            line_no=no, name=f"{drive}/image_0{cam}/{idx}", cam=cam,
            image=root / date / drive / f"image_0{cam}" / "data" / f"{idx}.png", gt=gt,
            velodyne=root / date / drive / "velodyne_points" / "data" / f"{idx}.bin",
            calib_dir=_calib_for(date, root, calib_dir))
    if len(parts) < 2:
        raise ValueError(f"line {no}: expected '<image> <ground truth> <focal>' or '<date>/<drive> <index> <l|r>'")
    focal = None
    if len(parts) >= 3:
        try:
            focal = float(parts[2])
        except ValueError:
            raise ValueError(f"line {no}: focal {parts[2]!r} is not a number") from None
    cam = 3 if "image_03" in parts[0] else 2
    gt = None if parts[1] == "None" else gt_root / parts[1]
    return SplitEntry(line_no=no, name=parts[0], image=root / parts[0], gt=gt, focal=focal, cam=cam,
                      calib_dir=_calib_for(first, root, calib_dir))


# ------------------------------------------------------------------------------ frame loading

def read_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"image {path} is missing or not an image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_depth_png(path: Path) -> np.ndarray:
    """KITTI annotated depth: uint16 PNG, metres = value / 256, 0 = none -> float32 with NaN."""
    import cv2

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise FileNotFoundError(f"ground-truth depth {path} is missing or unreadable")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"ground-truth depth {path}: expected a uint16 single-channel PNG, got {raw.dtype} {raw.shape}")
    d = raw.astype(np.float32) / 256.0
    d[raw == 0] = np.nan
    return d


_CALIB_CACHE: dict = {}


def load_calib(entry: SplitEntry):
    from .. import kitti

    if entry.calib_dir is None:
        raise FileNotFoundError(
            f"no calibration for {entry.name}: its path does not start with a <date> folder; pass --calib "
            "with the folder holding calib_cam_to_cam.txt")
    key = (str(entry.calib_dir), entry.cam)
    if key not in _CALIB_CACHE:
        if not (entry.calib_dir / "calib_cam_to_cam.txt").is_file():
            raise FileNotFoundError(f"calibration {entry.calib_dir / 'calib_cam_to_cam.txt'} is missing")
        _CALIB_CACHE[key] = kitti.read_raw_calib(entry.calib_dir, cam=entry.cam)
    return _CALIB_CACHE[key]


def eigen_raw_depth(points_velo, calib, width: int, height: int) -> np.ndarray:
    """Raw-LiDAR ground truth as the peers' Eigen protocol builds it (Monodepth2's export_gt_depth,
    generate_depth_map with vel_depth=True, which follows KITTI's MATLAB devkit): every return with
    LiDAR x >= 0 is projected by P_rect @ R_rect @ T_velo_to_cam, lands on pixel (round(u) - 1,
    round(v) - 1), and its depth is the LiDAR's forward x (not camera z); the nearest return wins a
    pixel. float32 (height, width), NaN where no return (or depth <= 0).

    kitti.project_lidar (camera z, pixel round(u)) is the geometric projection; its depths are 2-3% nearer
    and its pixels one down-right of this, so scoring against it is not comparable with published Eigen figures.
    """
    from .. import kitti

    pts = np.asarray(points_velo, dtype=np.float64)
    pts = pts[pts[:, 0] >= 0]  # NaN x is dropped too
    cam = kitti.lidar_to_camera(pts, calib)  # T_cam_velo = stereo offset @ R_rect @ T_velo_to_cam
    img = cam @ calib.camera.K.T  # K [I | t] = P_rect: the same as P_rect @ R_rect @ T_velo_to_cam @ X
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.round(img[:, 0] / img[:, 2]) - 1
        v = np.round(img[:, 1] / img[:, 2]) - 1
    x = pts[:, 0]
    ok = np.isfinite(u) & np.isfinite(v) & (u >= 0) & (v >= 0) & (u < width) & (v < height)
    flat = v[ok].astype(np.int64) * width + u[ok].astype(np.int64)
    depth = np.full(width * height, np.inf)
    np.minimum.at(depth, flat, x[ok])  # nearest return per pixel
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth.reshape(height, width).astype(np.float32)


def load_ground_truth(entry: SplitEntry, calib, width: int, height: int) -> tuple[np.ndarray, str]:
    if entry.gt is not None and entry.gt.is_file():
        return read_depth_png(entry.gt), "annotated"
    if entry.velodyne is not None and entry.velodyne.is_file():
        from .. import kitti

        return eigen_raw_depth(kitti.read_velodyne(entry.velodyne), calib, width, height), "velodyne"
    looked = [str(p) for p in (entry.gt, entry.velodyne) if p is not None]
    raise FileNotFoundError(f"no ground truth for {entry.name}: looked for {', '.join(looked) or 'nothing'}")


def fitted_plane(gt: np.ndarray, camera):
    """A robust plane through the ground-truth points of the image's lower part (GroundPlane.fit)."""
    from ..ground import GroundPlane

    h = gt.shape[0]
    rows = np.zeros_like(gt, dtype=bool)
    rows[int(0.55 * h):] = True
    sel = rows & np.isfinite(gt) & (gt > 1e-3) & (gt < 40.0)
    pts = camera.rays()[sel] * gt[sel][:, None]
    return GroundPlane.fit(pts)


def frame_for(entry: SplitEntry, ground: str, camera_height: float):
    """(Frame, gt, gt_source, camera) for one split entry; raises FileNotFoundError/ValueError with a reason."""
    from ..frame import Frame
    from ..ground import GroundPlane

    if not entry.image.is_file():
        raise FileNotFoundError(f"image {entry.image} is missing")
    calib = load_calib(entry)
    rgb = read_rgb(entry.image)
    h, w = rgb.shape[:2]
    camera = calib.camera
    if (camera.width, camera.height) != (w, h):
        raise ValueError(f"image {entry.image} is {w}x{h} but the calibration in {entry.calib_dir} is "
                         f"{camera.width}x{camera.height}")
    if entry.focal is not None and abs(entry.focal - camera.fx) > 1.0:
        log.warning("%s: split focal %.2f differs from calibration fx %.2f; using the calibration",
                    entry.name, entry.focal, camera.fx)
    gt, source = load_ground_truth(entry, calib, w, h)
    if gt.shape != (h, w):
        raise ValueError(f"ground truth for {entry.name} is {gt.shape[1]}x{gt.shape[0]}, image is {w}x{h}")
    if ground == "fit-gt":
        plane_gt = gt
        if source == "velodyne":  # the plane needs metric camera-frame points: camera z at the true pixel
            from .. import kitti

            plane_gt, _ = kitti.project_lidar(kitti.read_velodyne(entry.velodyne), calib, w, h)
        plane = fitted_plane(plane_gt, camera)
    else:
        plane = GroundPlane.from_static(camera_height)
    return Frame(rgb=rgb, camera=camera, plane=plane, frame_id=entry.name), gt, source


# ------------------------------------------------------------------------------ evaluation

@dataclass
class KittiEvalResult:
    per_frame: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    mean: dict = field(default_factory=dict)
    embodied_mean: dict = field(default_factory=dict)
    bins: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)


def evaluate(entries: list[SplitEntry], pipeline, out_dir=None, ground: str = "nominal",
             camera_height: float = NOMINAL_CAMERA_HEIGHT, crop: str = "garg",
             min_depth: float = M.MIN_DEPTH, max_depth: float = M.MAX_DEPTH, skipped: list | None = None,
             progress: bool = True, model_name: str = "", plots: bool = True) -> KittiEvalResult:
    """Run ``pipeline`` on each entry and score it; writes the report into ``out_dir`` when given."""
    from tqdm import tqdm

    if ground not in ("nominal", "fit-gt"):
        raise KittiEvalError(f"ground={ground!r}: use 'nominal' or 'fit-gt'")
    res = KittiEvalResult(skipped=list(skipped or []))
    pvt = report.PredVsTrue(max_depth)
    for entry in tqdm(entries, desc="KITTI eval", unit="frame", disable=not progress):
        try:
            frame, gt, source = frame_for(entry, ground, camera_height)
        except (OSError, ValueError) as exc:
            log.warning("skipping %s (line %d): %s", entry.name, entry.line_no, exc)
            res.skipped.append({"line": entry.line_no, "name": entry.name, "reason": str(exc)})
            continue
        gt_mask = M.gt_valid_mask(gt, min_depth, max_depth, crop)
        if not gt_mask.any():  # nothing to score: its metrics would be NaN, silently out of the mean
            used = entry.gt if source == "annotated" else f"LiDAR scan {entry.velodyne}"
            reason = (f"{used}: no ground-truth pixel in {min_depth:g}-{max_depth:g} m"
                      + (f" inside the {crop} crop" if crop else ""))
            log.warning("skipping %s (line %d): %s", entry.name, entry.line_no, reason)
            res.skipped.append({"line": entry.line_no, "name": entry.name, "reason": reason})
            continue
        t0 = time.perf_counter()
        out = pipeline.process(frame)
        wall_ms = (time.perf_counter() - t0) * 1000.0
        score = M.score_frame(out.depth, gt, min_depth, max_depth, crop, gt_mask=gt_mask)
        emb = M.score_frame(out.embodied.depth, gt, min_depth, max_depth, crop, bins=None, gt_mask=gt_mask)
        M.merge_bins(res.bins, score.bins)
        pvt.add(score.pred, score.gt)
        res.per_frame.append({
            "name": entry.name, "line": entry.line_no, "gt_source": source, "pixels": score.pixels,
            "coverage": score.coverage,
            **score.metrics, **{f"embodied_{k}": emb.metrics[k] for k in ("abs_rel", "rmse", "d1")},
            "embodied_coverage": emb.coverage,
            "latency_ms": wall_ms, **{k: float(v) for k, v in out.timings.items()},
            "note": report.no_depth_note(score, out),
        })
    res.mean = M.mean_metrics(res.per_frame)
    res.embodied_mean = {k: float(np.nanmean([r[f"embodied_{k}"] for r in res.per_frame]))
                         if res.per_frame else float("nan") for k in ("abs_rel", "rmse", "d1")}
    res.latency = report.latency_stats(r["latency_ms"] for r in res.per_frame)
    if out_dir is not None:
        write_report(res, Path(out_dir), pipeline, pvt, entries, ground, camera_height, crop, model_name, plots,
                     min_depth, max_depth)
    return res


GT_SOURCES = {
    "annotated": "KITTI annotated depth (proj_depth/groundtruth PNGs)",
    "velodyne": "raw LiDAR, built as the peers' Eigen raw protocol (depth = LiDAR x, pixel round(u)-1, "
                "round(v)-1, nearest return)",
}


def gt_source_counts(per_frame: list) -> dict:
    counts = {k: 0 for k in GT_SOURCES}
    for r in per_frame:
        counts[r["gt_source"]] = counts.get(r["gt_source"], 0) + 1
    return counts


def _gt_source_lines(counts: dict) -> list[str]:
    lines = ["- ground truth: " + "; ".join(f"{n} frames {GT_SOURCES.get(k, k)}" for k, n in counts.items() if n)
             if any(counts.values()) else "- ground truth: no frame scored"]
    if sum(1 for n in counts.values() if n) > 1:
        lines.append("- **warning: mixed ground truth**: the means average frames scored against annotated depth and "
                     "frames scored against raw LiDAR, two protocols whose published figures differ; pass --gt-root "
                     "with annotated depth for every frame, or a split of one kind (per_frame.csv's gt_source)")
    return lines


def write_report(res: KittiEvalResult, out: Path, pipeline, pvt, entries, ground, camera_height, crop,
                 model_name: str, plots: bool, min_depth: float = M.MIN_DEPTH, max_depth: float = M.MAX_DEPTH) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report.write_csv(out / "per_frame.csv", res.per_frame or [{"name": "", "note": "no frame evaluated"}])
    if res.skipped:
        report.write_csv(out / "skipped.csv", res.skipped)
    res.files["per_frame_csv"] = out / "per_frame.csv"
    if plots and res.per_frame:
        res.files["error_by_distance"] = report.plot_error_by_distance(res.bins, out / "error_by_distance.png")
        res.files["pred_vs_true"] = pvt.plot(out / "pred_vs_true.png")
        rows = []
        by_line = {e.line_no: e for e in entries}  # a line is one frame; a name may repeat in a split
        for label, i in report.pick_best_median_worst(res.per_frame):
            r = res.per_frame[i]
            frame, gt, _ = frame_for(by_line[r["line"]], ground, camera_height)
            o = pipeline.process(frame)
            cam = next((p + " " for p in Path(r["name"]).parts if p in ("image_02", "image_03")), "")
            rows.append({"title": f"{label}: {cam}{Path(r['name']).stem}\nAbsRel {r['abs_rel']:.3f}", "rgb": frame.rgb,
                         "embodied": o.embodied.depth, "pred": o.depth, "gt": gt})
        if rows:
            res.files["examples"] = report.plot_examples(rows, out / "examples.png")
    ground_text = (f"nominal KITTI mounting: camera {camera_height} m above a level road" if ground == "nominal"
                   else "plane fitted to each frame's ground-truth points (uses ground truth: an upper bound)")
    counts = gt_source_counts(res.per_frame)
    if sum(1 for n in counts.values() if n) > 1:
        log.warning("mixed ground truth: %s; the means average both (see %s)",
                    ", ".join(f"{n} frames {k}" for k, n in counts.items() if n), out / "summary.md")
    lines = [
        "# KITTI depth evaluation", "",
        f"- model: {model_name or pipeline.backend.name}",
        f"- frames evaluated: {len(res.per_frame)}; skipped: {len(res.skipped)}",
        *_gt_source_lines(counts),
        report.no_depth_line(res.per_frame, "name"),
        f"- protocol: {crop or 'no'} crop, ground truth {min_depth:g}-{max_depth:g} m, predictions clamped to that "
        "range, metrics averaged over frames",
        f"- ground plane for the embodied depth: {ground_text}",
        f"- latency (pipeline.process, this machine): {_lat(res.latency)}", "",
        "## Summary (peers' layout; published numbers are on the full Eigen split of 652/697 frames)", "",
        report.peers_table(res.mean, extra_rows={"embodied depth alone": res.embodied_mean}), "",
        "## All nine metrics", "", report.metrics_table({"ours": res.mean}), "",
        "## By ground-truth distance (pooled over pixels)", "", report.distance_table(res.bins), "",
    ]
    if res.skipped:
        lines += ["## Skipped frames", ""] + [f"- line {s['line']}: {s['name']}: {s['reason']}" for s in res.skipped] + [""]
    for key, title in (("error_by_distance", "Error by distance"), ("pred_vs_true", "Predicted vs true"),
                       ("examples", "Best, median, worst (RGB | embodied | prediction | error)")):
        if key in res.files:
            lines += [f"## {title}", "", f"![{title}]({Path(res.files[key]).name})", ""]
    (out / "summary.md").write_text("\n".join(lines))
    report.write_json(out / "summary.json", {
        "mean": res.mean, "embodied_mean": res.embodied_mean, "latency": res.latency,
        "frames": len(res.per_frame), "frames_without_depth": sum(1 for r in res.per_frame if r["note"]),
        "skipped": res.skipped, "ground": ground, "crop": crop, "min_depth": min_depth, "max_depth": max_depth,
        "gt_sources": counts, "gt_mixed": sum(1 for n in counts.values() if n) > 1,
        "by_distance": {f"{lo:g}-{hi:g}": {"pixels": s.n, **s.metrics()} for (lo, hi), s in sorted(res.bins.items())},
    })
    res.files["summary_md"] = out / "summary.md"
    res.files["summary_json"] = out / "summary.json"


def _lat(stats: dict) -> str:
    if not stats.get("n"):
        return "-"
    return f"median {stats['median_ms']:.1f} ms, p95 {stats['p95_ms']:.1f} ms over {stats['n']} frames"
