"""KITTI depth evaluation in the peers' protocol: Eigen split, Garg crop, 1e-3 to 80 m, nine metrics.

Split files, one frame a line, two formats:
- BTS / AdaBins / iDisc file lists: ``<image path> <ground-truth path> <focal>`` relative to
  ``root`` (image) and ``gt_root`` (ground truth, default ``root``); ``None`` as the GT path means none.
- Eigen's own lines: ``<date>/<drive> <index> <l|r>``: image ``root/date/drive/image_0{2,3}/data/index.png``;
  ground truth the annotated depth ``gt_root/drive/proj_depth/groundtruth/image_0{2,3}/index.png``
  when present, else the raw Velodyne scan projected into the camera (Eigen's original protocol).

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
    gt_root = Path(gt_root) if gt_root else root
    if not split_file.is_file():
        raise KittiEvalError(f"split file {split_file} not found")
    if not root.is_dir():
        raise KittiEvalError(f"KITTI root {root} is not a folder; pass --root with the raw-data folder")
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
        return SplitEntry(
            line_no=no, name=f"{drive}/{idx}", cam=cam,
            image=root / date / drive / f"image_0{cam}" / "data" / f"{idx}.png",
            gt=gt_root / drive / "proj_depth" / "groundtruth" / f"image_0{cam}" / f"{idx}.png",
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


def load_ground_truth(entry: SplitEntry, calib, width: int, height: int) -> tuple[np.ndarray, str]:
    if entry.gt is not None and entry.gt.is_file():
        return read_depth_png(entry.gt), "annotated"
    if entry.velodyne is not None and entry.velodyne.is_file():
        from .. import kitti

        depth, _ = kitti.project_lidar(kitti.read_velodyne(entry.velodyne), calib, width, height)
        return depth.astype(np.float32), "velodyne"
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
    plane = fitted_plane(gt, camera) if ground == "fit-gt" else GroundPlane.from_static(camera_height)
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
            reason = (f"{entry.gt or 'projected LiDAR'}: no ground-truth pixel in {min_depth:g}-{max_depth:g} m"
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
        write_report(res, Path(out_dir), pipeline, pvt, entries, ground, camera_height, crop, model_name, plots)
    return res


def write_report(res: KittiEvalResult, out: Path, pipeline, pvt, entries, ground, camera_height, crop,
                 model_name: str, plots: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report.write_csv(out / "per_frame.csv", res.per_frame or [{"name": "", "note": "no frame evaluated"}])
    if res.skipped:
        report.write_csv(out / "skipped.csv", res.skipped)
    res.files["per_frame_csv"] = out / "per_frame.csv"
    if plots and res.per_frame:
        res.files["error_by_distance"] = report.plot_error_by_distance(res.bins, out / "error_by_distance.png")
        res.files["pred_vs_true"] = pvt.plot(out / "pred_vs_true.png")
        rows = []
        by_name = {e.name: e for e in entries}
        for label, i in report.pick_best_median_worst(res.per_frame):
            r = res.per_frame[i]
            frame, gt, _ = frame_for(by_name[r["name"]], ground, camera_height)
            o = pipeline.process(frame)
            rows.append({"title": f"{label}: {Path(r['name']).stem}\nAbsRel {r['abs_rel']:.3f}", "rgb": frame.rgb,
                         "embodied": o.embodied.depth, "pred": o.depth, "gt": gt})
        if rows:
            res.files["examples"] = report.plot_examples(rows, out / "examples.png")
    ground_text = (f"nominal KITTI mounting: camera {camera_height} m above a level road" if ground == "nominal"
                   else "plane fitted to each frame's ground-truth points (uses ground truth: an upper bound)")
    lines = [
        "# KITTI depth evaluation", "",
        f"- model: {model_name or pipeline.backend.name}",
        f"- frames evaluated: {len(res.per_frame)}; skipped: {len(res.skipped)}",
        report.no_depth_line(res.per_frame, "name"),
        f"- protocol: {crop or 'no'} crop, ground truth {M.MIN_DEPTH:g}-{M.MAX_DEPTH:g} m, predictions clamped to that range, "
        "metrics averaged over frames",
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
        "skipped": res.skipped, "ground": ground, "crop": crop,
        "by_distance": {f"{lo:g}-{hi:g}": {"pixels": s.n, **s.metrics()} for (lo, hi), s in sorted(res.bins.items())},
    })
    res.files["summary_md"] = out / "summary.md"
    res.files["summary_json"] = out / "summary.json"


def _lat(stats: dict) -> str:
    if not stats.get("n"):
        return "-"
    return f"median {stats['median_ms']:.1f} ms, p95 {stats['p95_ms']:.1f} ms over {stats['n']} frames"
