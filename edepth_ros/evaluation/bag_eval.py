"""Evaluate the depth pipeline on a ROS 2 bag against LiDAR or a ground-truth depth image.

One pass over the bag in log-time order (rosbags, numpy views of the CDR buffers): each image is
paired with the ground-truth message whose header stamp is nearest (within ``max_dt``; by log time
where the header stamps are unusable, all 0 or not increasing, with a note); LiDAR goes into the
camera through the bag's /tf_static and /tf (or given extrinsics); the camera's ground pose comes
from /tf (ground_frame -> camera frame) when the bag has it, else from the static mounting. A /tf
transform farther than ``tf_max_age`` from the stamp is not used (the node's rule): the LiDAR
frame is skipped, the ground pose falls back to the static mounting. The SAME ``DepthPipeline`` as
the node computes the depth. Bad input (no such topic, images before any camera_info, LiDAR with no
transform, a truncated bag) is reported by count and reason; everything else is still evaluated.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .. import metrics as M
from ..bags import io as bio
from ..ros.params import SPECS
from . import report

log = logging.getLogger(__name__)


TF_MAX_AGE = float(SPECS["tf_max_age"].default)  # seconds: the node's own default, one pipeline
MAX_WINDOW_S = 30.0  # the most bag time an image waits for its ground truth (what is waiting is in memory)


# `edepth eval bag`'s option for each topic role, named in the errors
EVAL_FLAGS = {"image": "--image-topic", "lidar": "--lidar-topic", "depth": "--depth-topic", "labels": "--labels-topic"}


class BagEvalError(ValueError):
    """Nothing of the bag can be evaluated as asked (the message names the topic or file)."""


@dataclass
class BagEvalResult:
    per_frame: list = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    mean: dict = field(default_factory=dict)
    pooled: dict = field(default_factory=dict)
    embodied_mean: dict = field(default_factory=dict)
    bins: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)
    overhead: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    truncated: Optional[str] = None
    files: dict = field(default_factory=dict)


def lidar_to_depth(points_cam: np.ndarray, camera, min_z: float = 0.1) -> np.ndarray:
    """Sparse float32 depth image (NaN = none) of camera-frame points; the nearest point wins a pixel."""
    depth = np.full((camera.height, camera.width), np.nan, np.float32)
    pts = points_cam[points_cam[:, 2] > min_z]
    if len(pts) == 0:
        return depth
    u, v, z = camera.project(pts)
    ui = np.floor(u + 0.5)
    vi = np.floor(v + 0.5)
    ok = np.isfinite(ui) & np.isfinite(vi) & (ui >= 0) & (vi >= 0) & (ui < camera.width) & (vi < camera.height)
    ui, vi, z = ui[ok].astype(np.int64), vi[ok].astype(np.int64), z[ok]
    order = np.argsort(-z)  # far first, so the nearest point is written last
    depth[vi[order], ui[order]] = z[order]
    return depth


def _read_tf(reader: bio.BagReader, log_time: bool = False) -> bio.TfTree:
    """log_time: frames are paired by log time, so are the transforms (TfTree's clock)."""
    tree = bio.TfTree(log_time=log_time)
    topics = reader.topics
    for topic, static in (("/tf_static", True), ("/tf", False)):
        if topic in topics:
            for _, msgtype, t, raw in reader.messages([topic]):
                tree.add_message(reader.deserialize(raw, msgtype), static, log_t=t)
    return tree


def evaluate_bag(bag, pipeline, image_topic: str, camera_info_topic: str, lidar_topic: str | None = None,
                 depth_topic: str | None = None, labels_topic: str | None = None,
                 extrinsics: np.ndarray | None = None, ground_frame: str | None = bio.GROUND_FRAME,
                 static_plane=None, max_dt: float = 0.05, max_frames: int | None = None,
                 min_depth: float = M.MIN_DEPTH, max_depth: float = M.MAX_DEPTH, crop: str | None = None,
                 out_dir=None, progress: bool = True, model_name: str = "", plots: bool = True,
                 tf_max_age: float | None = TF_MAX_AGE) -> BagEvalResult:
    """Score ``pipeline`` on a bag. ``extrinsics``: T_camera_lidar 4x4 (used instead of /tf_static).

    ground_frame: the tf frame of the road; None ignores the bag's ground pose and uses ``static_plane``
    (what a node without tf sees). tf_max_age: seconds between a stamp and the nearest /tf transform
    used for it (the node's tf_max_age; None: any): farther, a LiDAR frame is skipped and the ground
    pose falls back to ``static_plane``, as the node does.
    """
    from tqdm import tqdm

    from ..frame import Frame
    from ..ground import GroundPlane, GroundPoseError
    from ..ros import convert

    if (lidar_topic is None) == (depth_topic is None):
        raise BagEvalError("give exactly one ground truth: --lidar-topic or --depth-topic")
    if tf_max_age is not None and not (np.isfinite(tf_max_age) and tf_max_age >= 0):
        raise BagEvalError(f"--tf-max-age {tf_max_age}: give a number of seconds >= 0")
    max_age_ns = None if tf_max_age is None else int(round(tf_max_age * 1e9))
    gt_topic = lidar_topic or depth_topic
    res = BagEvalResult()
    reader = bio.BagReader(bag)
    try:
        try:
            reader.require_depth_sources(image_topic, camera_info_topic, lidar_topic, depth_topic, labels_topic,
                                         flags=EVAL_FLAGS)
        except bio.BagError as exc:
            raise BagEvalError(str(exc)) from None
        # header stamps pair the topics; where a driver leaves them 0 (or constant) they would pair
        # every image with one ground truth, so the bag's log time is used instead, with a note
        stamp_problem, lag_ns = _stamp_check(reader, image_topic, gt_topic)
        log_time = stamp_problem is not None
        if log_time:
            res.notes.append(f"header stamps unusable ({stamp_problem}): images, ground truth, labels, camera_info "
                             "and tf paired by bag log time instead (as good as the recording latency); set "
                             "header.stamp in the driver")
            log.warning("bag %s: %s", bag, res.notes[-1])
        infos = bio.CameraInfos(reader, camera_info_topic, log_time=log_time)
        if not infos.msgs:
            raise BagEvalError(f"camera_info topic {camera_info_topic} has no message in {bag}: images without "
                               "camera_info cannot be evaluated (record the camera's camera_info too)")
        tf = _read_tf(reader, log_time)
        n_images = reader.topics[image_topic].count
        # an image waits this long (bag log time) for its ground truth, and ground truth is kept as long
        # for a late image: wide enough for the recording lag between the two topics, up to MAX_WINDOW_S
        window_ns = int(max(2.0e9, 4 * max_dt * 1e9, min(0 if log_time else 2 * lag_ns, MAX_WINDOW_S * 1e9)))
        if not log_time and lag_ns > 1e9:
            res.notes.append(f"{gt_topic} and {image_topic} are logged up to {lag_ns / 1e9:.1f} s apart for the same "
                             f"header stamp (recording latency): images wait {window_ns / 1e9:.1f} s of the bag for "
                             "their ground truth" + (" (the most it waits: frames with a longer lag are skipped)"
                                                     if 2 * lag_ns > MAX_WINDOW_S * 1e9 else ""))
        max_dt_ns = int(max_dt * 1e9)
        pending: deque = deque()  # (log_t, stamp, image msg)
        gts: deque = deque()  # (log_t, stamp, gt msg)
        labels: deque = deque()  # (log_t, stamp, label msg), pruned by log time like gts
        pvt = report.PredVsTrue(max_depth)
        examples: dict = {}
        wall_start = time.perf_counter()
        last_done = [wall_start]  # end of the previous frame: frame-to-frame wall time, everything included
        process_ms_total = 0.0
        total = min(n_images, max_frames or n_images) or None  # None: count unknown (a salvaged bag)
        bar = tqdm(total=total, desc="bag eval", unit="frame", disable=not progress)
        plane_source = Counter()
        plane_fallback = Counter()  # why a frame did not get its ground pose from tf
        label_fallback = Counter()  # why a frame's label image was not used
        first_case: dict = {}  # skip reason -> the first frame's details (stamps, ages), for the notes
        first_fallback: dict = {}  # the same for plane_fallback
        nearest_miss: list = []  # |dt| of the nearest ground truth of images skipped for --max-dt

        def skip(reason: str, detail: str | None = None) -> None:
            res.skipped[reason] += 1
            if detail:
                first_case.setdefault(reason, detail)

        # Scoring a frame against dense ground truth costs about as much as the pipeline: it runs on
        # one worker thread (NumPy releases the GIL) while the next frame goes through the pipeline.
        # One worker keeps the rows in order; at most two frames wait, so memory stays bounded.
        scorer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bag-eval-score")
        scoring: deque = deque()
        submitted = [0]

        def score(rgb, out, gt, gt_mask, stamp, best, proc_ms) -> None:
            score = M.score_frame(out.depth, gt, min_depth, max_depth, crop, gt_mask=gt_mask)
            m = score.metrics
            em = M.score_frame(out.embodied.depth, gt, min_depth, max_depth, crop, bins=None, gt_mask=gt_mask).metrics
            M.merge_bins(res.bins, score.bins)
            pvt.add(score.pred, score.gt)
            row = {"stamp": f"{stamp / 1e9:.6f}", "gt_dt_ms": (best[1] - stamp) / 1e6, "pixels": score.pixels,
                   "coverage": score.coverage, **m,
                   **{f"embodied_{k}": em[k] for k in ("abs_rel", "rmse", "d1")},
                   "process_ms": proc_ms, **{k: float(v) for k, v in out.timings.items()},
                   "note": report.no_depth_note(score, out)}
            now = time.perf_counter()
            row["frame_wall_ms"] = (now - last_done[0]) * 1000.0
            last_done[0] = now
            res.per_frame.append(row)
            if plots and np.isfinite(m["abs_rel"]):
                _keep_example(examples, (m["abs_rel"], len(res.per_frame) - 1, rgb, out, gt),
                              [r["abs_rel"] for r in res.per_frame])

        def resolve(item) -> None:
            nonlocal process_ms_total
            log_t, stamp, img = item
            if max_frames is not None and submitted[0] >= max_frames:
                return
            bar.update(1)
            best = min(gts, key=lambda g: abs(g[1] - stamp), default=None)
            if best is None or abs(best[1] - stamp) > max_dt_ns:
                skip(f"no {gt_topic} message within {max_dt * 1000:.0f} ms of the image")
                if best is not None:
                    nearest_miss.append(abs(best[1] - stamp))
                return
            try:
                info, camera = infos.info_at(stamp)
            except ValueError as exc:  # CameraModelError, as the node skips the frame
                skip(f"camera_info on {camera_info_topic} is unusable: {exc}")
                return
            cam_frame = img.header.frame_id or camera.frame_id or bio.CAMERA_FRAME
            try:
                rgb = bio.image_to_rgb(img)
            except ValueError as exc:
                # one count per kind of failure, not per message size
                skip("image not decodable: " + re.sub(r"\d+ bytes", "N bytes", str(exc)))
                return
            # the node's own check: size, and frame_id (camera_info of another camera)
            problem = convert.info_image_mismatch(info, rgb.shape[1], rgb.shape[0], img.header.frame_id, camera)
            if problem:
                skip(f"{problem} ({camera_info_topic} vs {image_topic})")
                return
            gt_msg = best[2]
            if lidar_topic:
                T = extrinsics
                if T is None:
                    try:
                        T = tf.lookup(cam_frame, gt_msg.header.frame_id, best[1], max_age_ns)
                    except bio.TfStaleError as exc:
                        skip(f"LiDAR frame {gt_msg.header.frame_id!r} -> camera frame {cam_frame!r}: /tf "
                             f"{exc.parent} -> {exc.child} has no transform within tf_max_age {tf_max_age:g} s of "
                             "the LiDAR stamp (a tf publisher that stopped? pass --extrinsics or --tf-max-age)",
                             f"at LiDAR stamp {best[1] * 1e-9:.3f} s: {exc}")
                        return
                if T is None:
                    skip(f"LiDAR frame {gt_msg.header.frame_id!r} has no transform to camera frame "
                         f"{cam_frame!r} in /tf_static or /tf (pass --extrinsics)")
                    return
                try:
                    xyz = bio.pointcloud_xyz(gt_msg)
                except bio.BagError as exc:
                    skip(f"{lidar_topic}: {exc}")
                    return
                pts = xyz @ T[:3, :3].T + T[:3, 3]
                gt = lidar_to_depth(pts, camera)
            else:
                try:
                    gt = bio.depth_to_metres(gt_msg)
                except ValueError as exc:
                    skip(f"{depth_topic}: {exc}")
                    return
                if gt.shape != rgb.shape[:2]:
                    skip(f"depth image {gt.shape[1]}x{gt.shape[0]} differs from the image")
                    return
                depth_frame = gt_msg.header.frame_id
                if depth_frame and img.header.frame_id and depth_frame != img.header.frame_id:
                    skip(f"{depth_topic} frame_id {depth_frame!r} differs from the image's {img.header.frame_id!r}: "
                         "the depth is not registered to this camera (record it registered to the image, e.g. "
                         "depth_image_proc register)")
                    return
            # a frame with no ground truth to score is not evaluated (its metrics would be NaN)
            gt_mask = M.gt_valid_mask(gt, min_depth, max_depth, crop)
            if not gt_mask.any():
                skip(bio.no_ground_truth_reason(gt_topic, gt, gt_msg, min_depth, max_depth,
                                                f" inside the {crop} crop" if crop else ""))
                return
            plane = None
            if ground_frame:
                try:
                    T_cg = tf.lookup(cam_frame, ground_frame, stamp, max_age_ns)
                except bio.TfStaleError as exc:
                    T_cg = None
                    why = (f"/tf {exc.parent} -> {exc.child} has no transform within tf_max_age {tf_max_age:g} s "
                           "of the image stamp")
                    plane_fallback[why] += 1
                    first_fallback.setdefault(why, f"at image stamp {stamp * 1e-9:.3f} s: {exc}")
                else:
                    if T_cg is None:
                        plane_fallback[f"no transform {ground_frame} -> {cam_frame} in /tf_static or /tf"] += 1
                if T_cg is not None:
                    try:
                        plane = GroundPlane.from_transform(T_cg)
                        plane_source["tf"] += 1
                    except GroundPoseError as exc:  # counted once, not a note per frame
                        why = "the tf ground pose is outside the pose limits"
                        plane_fallback[why] += 1
                        first_fallback.setdefault(why, f"at image stamp {stamp * 1e-9:.3f} s: {exc}")
            if plane is None and static_plane is not None:
                plane = static_plane
                plane_source["static"] += 1
            lab = None
            if labels_topic:
                if log_time:  # log times of two topics rarely agree exactly: the nearest within max_dt
                    near = min(labels, key=lambda m: abs(m[1] - stamp), default=None)
                    lab = near[2] if near is not None and abs(near[1] - stamp) <= max_dt_ns else None
                else:
                    lab = next((m for _, s, m in labels if s == stamp), None)
                if lab is not None:  # an unusable label image: the built-in segmenter, as the node does
                    try:
                        lab = bio.labels_array(lab)
                    except ValueError as exc:  # ConversionError
                        label_fallback[f"{labels_topic}: {exc}"] += 1
                        lab = None
                    else:
                        if lab.shape != rgb.shape[:2]:
                            label_fallback[f"{labels_topic}: label image {lab.shape[1]}x{lab.shape[0]} but the image "
                                           f"is {rgb.shape[1]}x{rgb.shape[0]}"] += 1
                            lab = None
            t0 = time.perf_counter()
            out = pipeline.process(Frame(rgb=rgb, camera=camera, plane=plane, labels=lab,
                                         stamp=stamp * 1e-9, frame_id=cam_frame))
            proc_ms = (time.perf_counter() - t0) * 1000.0
            process_ms_total += proc_ms
            submitted[0] += 1
            while len(scoring) >= 2:
                scoring.popleft().result()  # re-raises a scoring error here
            scoring.append(scorer.submit(score, rgb, out, gt, gt_mask, stamp, best, proc_ms))

        for topic, msgtype, t, raw in reader.messages([image_topic, gt_topic] + ([labels_topic] if labels_topic else [])):
            if max_frames is not None and submitted[0] >= max_frames:
                break
            msg = reader.deserialize(raw, msgtype)
            stamp = t if log_time else bio.header_ns(msg.header)
            if topic == image_topic:
                pending.append((t, stamp, msg))
            elif topic == labels_topic:
                labels.append((t, stamp, msg))
            else:
                gts.append((t, stamp, msg))
            while pending and t - pending[0][0] > window_ns:
                resolve(pending.popleft())
            horizon = (pending[0][0] if pending else t) - 2 * window_ns
            for buffered in (gts, labels):
                while buffered and buffered[0][0] < horizon:
                    buffered.popleft()
        while pending:
            resolve(pending.popleft())
        while scoring:
            scoring.popleft().result()
        scorer.shutdown()
        bar.close()
        res.truncated = reader.truncated
        wall_ms = (time.perf_counter() - wall_start) * 1000.0
    finally:
        reader.close()

    if res.truncated:
        res.notes.append(f"the bag ends early ({res.truncated}): evaluated what could be read")
    if nearest_miss:
        res.notes.append(f"images skipped for --max-dt {max_dt * 1000:.0f} ms: their nearest {gt_topic} message (of "
                         f"those logged within {window_ns / 1e9:g} s) was {min(nearest_miss) / 1e6:.0f}-"
                         f"{max(nearest_miss) / 1e6:.0f} ms away (a constant offset between the sensors' stamps? "
                         "raise --max-dt)")
    res.notes += [f"{reason}; first case {detail}" for reason, detail in first_case.items()]
    fallback = "the static mounting" if static_plane is not None else "the pipeline's fallback"
    res.notes += [f"ground plane from {fallback} for {n} frames: {why}"
                  + (f"; first case {first_fallback[why]}" if why in first_fallback else "")
                  for why, n in plane_fallback.most_common()]
    res.notes += [f"built-in segmenter for {n} frames: {why}" for why, n in label_fallback.most_common()]
    no_depth = [r for r in res.per_frame if r["note"]]
    if no_depth:
        res.notes.append(f"{report.NO_DEPTH}: {len(no_depth)} frame{'s' if len(no_depth) > 1 else ''}; first case "
                         f"at stamp {no_depth[0]['stamp']} s: {no_depth[0]['note']}")
    if not res.per_frame:
        res.notes.append("no frame could be scored: " + ("see the skipped reasons" if res.skipped
                                                          else f"no message on {image_topic} was read"))
    res.mean = M.mean_metrics(res.per_frame)
    res.pooled = report.pooled(res.bins).metrics()
    with warnings.catch_warnings():  # all NaN (no embodied depth without a plane): NaN, without a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        res.embodied_mean = {k: float(np.nanmean([r[f"embodied_{k}"] for r in res.per_frame])) if res.per_frame
                             else float("nan") for k in ("abs_rel", "rmse", "d1")}
    res.latency = report.latency_stats(r["process_ms"] for r in res.per_frame)
    n = max(1, len(res.per_frame))
    # steady state: frame-to-frame wall time without the first frame (imports, caches, session warm-up)
    steady = report.latency_stats(r["frame_wall_ms"] for r in res.per_frame[1:])
    res.overhead = {"wall_ms_per_frame": wall_ms / n, "pipeline_ms_per_frame": process_ms_total / n,
                    "bag_and_metrics_ms_per_frame": (wall_ms - process_ms_total) / n,
                    "frame_wall_ms_median": steady.get("median_ms", float("nan")),
                    "frame_wall_ms_p95": steady.get("p95_ms", float("nan"))}
    res.notes.append(f"ground plane: {dict(plane_source) or 'none (pipeline fallback)'}")
    if out_dir is not None:
        write_report(res, Path(out_dir), bag, gt_topic, pvt, examples, model_name or pipeline.backend.name, crop,
                     plots)
    return res


def _stamp_check(reader: bio.BagReader, image_topic: str, gt_topic: str) -> tuple[str | None, int]:
    """(why the header stamps of the two topics cannot pair them, None when they can; the most ns by
    which one topic is logged after the other for the same stamp), from each topic's first messages'
    CDR bytes (no image is deserialized)."""
    topics = [image_topic, gt_topic]
    stamps: dict = {t: [] for t in topics}
    latency: dict = {t: [] for t in topics}  # log time - header stamp
    for topic, _, t, raw in reader.messages(topics):
        stamp = bio.cdr_header_ns(raw)
        stamps[topic].append(stamp)
        if stamp:
            latency[topic].append(t - stamp)
        if all(len(v) >= bio.STAMP_CHECK_MESSAGES for v in stamps.values()):
            break
    lag = 0
    if latency[image_topic] and latency[gt_topic]:
        a, b = latency[image_topic], latency[gt_topic]
        lag = max(max(b) - min(a), max(a) - min(b), 0)
    return bio.header_stamps_problem(stamps), lag


def write_report(res: BagEvalResult, out: Path, bag, gt_topic: str, pvt, examples, model_name: str, crop,
                 plots: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report.write_csv(out / "per_frame.csv", res.per_frame or [{"stamp": "", "note": "no frame evaluated"}])
    res.files["per_frame_csv"] = out / "per_frame.csv"
    if res.per_frame and plots:
        res.files["error_by_distance"] = report.plot_error_by_distance(res.bins, out / "error_by_distance.png")
        res.files["pred_vs_true"] = pvt.plot(out / "pred_vs_true.png")
    if examples:
        order = [k for k in ("best", "median", "worst") if k in examples]
        rows = [{"title": f"{lab}\nAbsRel {a:.3f}", "rgb": rgb, "embodied": o.embodied.depth, "pred": o.depth,
                 "gt": gt} for lab, (a, i, rgb, o, gt) in ((k, examples[k]) for k in order)]
        res.files["examples"] = report.plot_examples(rows, out / "examples.png")
    lines = [
        "# Bag evaluation", "",
        f"- bag: {bag}", f"- ground truth: {gt_topic}", f"- model: {model_name}",
        f"- frames evaluated: {len(res.per_frame)}; skipped: {sum(res.skipped.values())}",
        report.no_depth_line(res.per_frame, "stamp"),
        f"- crop: {crop or 'none'}; depth range {M.MIN_DEPTH:g}-{M.MAX_DEPTH:g} m",
        f"- pipeline latency: {_lat(res.latency)}",
        f"- per frame: {res.overhead['wall_ms_per_frame']:.1f} ms wall, of which pipeline "
        f"{res.overhead['pipeline_ms_per_frame']:.1f} ms, bag reading + metrics "
        f"{res.overhead['bag_and_metrics_ms_per_frame']:.1f} ms; steady state (after the first frame) "
        f"median {res.overhead['frame_wall_ms_median']:.1f} ms, p95 {res.overhead['frame_wall_ms_p95']:.1f} ms "
        "frame to frame", "",
        report.metrics_table({"mean over frames": res.mean, "pooled over pixels": res.pooled,
                              "embodied depth alone (mean)": res.embodied_mean}), "",
        "## By ground-truth distance (pooled)", "", report.distance_table(res.bins), "",
    ]
    if res.skipped:
        lines += ["## Skipped", ""] + [f"- {n} x {why}" for why, n in res.skipped.most_common()] + [""]
    if res.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in res.notes] + [""]
    for key, title in (("error_by_distance", "Error by distance"), ("pred_vs_true", "Predicted vs true"),
                       ("examples", "RGB | embodied | prediction | error")):
        if key in res.files:
            lines += [f"## {title}", "", f"![{title}]({Path(res.files[key]).name})", ""]
    (out / "summary.md").write_text("\n".join(lines))
    report.write_json(out / "summary.json", {
        "mean": res.mean, "pooled": res.pooled, "embodied_mean": res.embodied_mean, "latency": res.latency,
        "overhead": res.overhead, "frames": len(res.per_frame),
        "frames_without_depth": sum(1 for r in res.per_frame if r["note"]), "skipped": dict(res.skipped),
        "truncated": res.truncated, "notes": res.notes,
        "by_distance": {f"{lo:g}-{hi:g}": {"pixels": s.n, **s.metrics()} for (lo, hi), s in sorted(res.bins.items())},
    })
    res.files["summary_md"] = out / "summary.md"


def _keep_example(examples: dict, item: tuple, abs_rels: list) -> None:
    """Keep the best, the worst and the frame nearest the running median (bounded memory, one pass)."""
    a = item[0]
    if "best" not in examples or a < examples["best"][0]:
        examples["best"] = item
    if "worst" not in examples or a > examples["worst"][0]:
        examples["worst"] = item
    med = float(np.median(abs_rels))
    if "median" not in examples or abs(a - med) <= abs(examples["median"][0] - med):
        examples["median"] = item


def _lat(stats: dict) -> str:
    if not stats.get("n"):
        return "-"
    return f"median {stats['median_ms']:.1f} ms, p95 {stats['p95_ms']:.1f} ms over {stats['n']} frames"
