"""The first-run demo: a synthetic drive replayed over DDS into the real node, recorded, scored.

1. build the synthetic demo bag once (cached under .cache/demo, keyed by generator version + seed);
2. start ``edepth_node`` as its own process (the demo ONNX model, or the embodied-only backend when
   no model exists), a recorder process for its outputs, and replay the bag into the node over a
   real Fast DDS graph with /clock;
3. score the recorded depth against the bag's exact ground-truth depth, and write
   ``demo_out/report.md`` with the metrics, pictures and a PLY point cloud of the node's own output;
4. run ``edepth embodied-eval`` on ../shared/kitti/object when that folder exists.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import metrics as M
from .model_io import read_sidecar, sidecar_path, stale_export
from .bags import io as bio
from .bags import make_bag as mb
from .evaluation import report
from .ros_env import domain_id_problem, ros_environment

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_DOMAIN = 99
DEFAULT_SEED = 2025  # not among the demo model's training (0-59) or validation (1000-1007) scenes
NS = "/edepth"
OUTPUT_TOPICS = (f"{NS}/depth", f"{NS}/depth/embodied", f"{NS}/points", f"{NS}/edepth_node/timing")


class DemoError(RuntimeError):
    """A demo step failed; the message says which and where its log is."""


@dataclass
class DemoOptions:
    out: Path = Path("demo_out")
    frames: int = 16
    seed: int = DEFAULT_SEED
    rate: float = 0.25
    domain_id: int | None = None
    model: str | None = None
    backend: str = "auto"
    labels: str = "bag"  # bag: the scene's labels on /camera/semantic; segmenter: the node's built-in one
    cache_dir: Path | None = None
    kitti: Path | None = None
    embodied_eval: bool = True
    timeout: float = 120.0
    log: object = print


@dataclass
class DemoResult:
    report: Path
    files: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    frames_evaluated: int = 0
    frames_sent: int = 0


def cache_dir(opts: DemoOptions) -> Path:
    if opts.cache_dir:
        return Path(opts.cache_dir)
    if os.environ.get("EDEPTH_CACHE"):
        return Path(os.environ["EDEPTH_CACHE"]) / "demo"
    if (PROJECT / "setup.py").is_file():  # a checkout (or editable install): beside the project
        return PROJECT / ".cache" / "demo"
    # an installed package: never inside site-packages
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edepth_ros" / "demo"


def demo_bag(opts: DemoOptions) -> tuple[Path, bool]:
    """The cached synthetic bag for (generator version, seed, frames); built when absent."""
    key = f"synthetic_v{mb.generator_version()}_seed{opts.seed}_n{opts.frames}"
    path = cache_dir(opts) / key
    if (path / "metadata.yaml").is_file():
        return path, True
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(key + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    mb.make_synthetic_bag(tmp, frames=opts.frames, seed=opts.seed)
    tmp.rename(path)
    return path, False


def static_mounting(seed: int, frames: int) -> dict:
    """The sequence's mean camera height / pitch / roll: what a mounting calibration would give.

    The node has no tf2_ros here, so it runs on this static pose; the per-frame pitch and heave of
    the drive are what it cannot see.
    """
    from .synthetic import SceneGenerator

    gen = SceneGenerator(seed)
    poses = [gen.pose(i) for i in range(frames)]
    return {"camera_height": float(np.mean([p.height for p in poses])),
            "camera_pitch": float(np.mean([p.pitch for p in poses])),
            "camera_roll": float(np.mean([p.roll for p in poses]))}


def _yaml(v) -> str:
    """A parameter value as the YAML that `--ros-args -p name:=value` parses back to the same type."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


def _node_command() -> list[str]:
    script = Path(sys.executable).parent / "edepth_node"
    if script.is_file():
        return [str(script)]
    found = shutil.which("edepth_node")
    return [found] if found else [sys.executable, "-m", "edepth_ros.ros.node"]


def _choose_model(opts: DemoOptions) -> tuple[str, str]:
    """(backend kind, model path or '') and the sentence that says so in the report."""
    if opts.backend == "embodied":
        return "embodied", ""
    found = Path(opts.model).resolve() if opts.model else find_demo_model()
    if found is None:
        return "embodied", ""
    if found.suffix == ".onnx" and sidecar_path(found).is_file():
        # a retrained model.pt beside an old export would silently demo the old network
        stale = stale_export(read_sidecar(found), found)
        if stale:
            raise DemoError(stale)
    return opts.backend, str(found)


def find_demo_model() -> Path | None:
    """The model the demo runs: the node's default (an .onnx under models/), else an exported
    models/demo/*.onnx, else the models/demo/model.pt checkpoint (PyTorch backend), else None."""
    from .ros.params import default_model

    found = default_model()
    if found is not None:
        return Path(found)
    demo = PROJECT / "models" / "demo"
    onnx = sorted(demo.glob("*.onnx")) if demo.is_dir() else []
    if onnx:
        return onnx[0]
    pt = demo / "model.pt"
    return pt if pt.is_file() else None


def _start(cmd: list, env: dict, log_path: Path) -> subprocess.Popen:
    f = open(log_path, "w")
    return subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=str(PROJECT),
                            start_new_session=True)


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return proc.returncode


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def run_demo(opts: DemoOptions) -> DemoResult:
    say = opts.log
    t_start = time.perf_counter()
    for name in ("rate", "timeout"):  # before any work, not after the bag is built and the node started
        value = getattr(opts, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise DemoError(f"--{name} {value}: must be a finite number > 0")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    domain = opts.domain_id if opts.domain_id is not None else os.environ.get("ROS_DOMAIN_ID") or DEFAULT_DOMAIN
    problem = domain_id_problem(domain)
    if problem:  # before any work: Fast DDS would end the node from C with a port error
        raise DemoError(f"{'--domain-id' if opts.domain_id is not None else 'ROS_DOMAIN_ID'} {problem}")
    domain = int(domain)
    env = ros_environment(domain)
    os.environ.update(env)  # this process replays the bag: same middleware settings as the children

    kind, model = _choose_model(opts)  # first: a stale export fails before any work
    say(f"[1/5] synthetic demo bag (seed {opts.seed}, {opts.frames} frames)")
    bag, cached = demo_bag(opts)
    say(f"      {'cached' if cached else 'built'}: {bag}")

    mounting = static_mounting(opts.seed, opts.frames)
    threads = demo_threads()
    node_params = {"backend": kind, "model": model, "use_sim_time": True, "backend_threads": threads,
                   "semantic.enabled": opts.labels == "bag", "semantic.wait": 1.0,
                   "publish.colored": False, "publish.confidence": False, **mounting}
    cmd = _node_command() + ["--ros-args", "-r", f"__ns:={NS}", "-r", "image:=/camera/image_raw",
                             "-r", "camera_info:=/camera/camera_info", "-r", "semantic:=/camera/semantic"]
    for k, v in node_params.items():
        cmd += ["-p", f"{k}:={_yaml(v)}"]
    what = f"model {model}" if model else "no model: embodied depth only"
    say(f"[2/5] node: {cmd[0]} (backend {kind}, {what}), ROS_DOMAIN_ID {domain}")
    rec_bag = out / "recorded"
    shutil.rmtree(rec_bag, ignore_errors=True)
    ready = logs / "recorder.ready"
    ready.unlink(missing_ok=True)
    node = _start(cmd, env, logs / "node.log")
    recorder = _start([sys.executable, "-m", "edepth_ros.cli", "record", str(rec_bag), "--topics", *OUTPUT_TOPICS,
                       "--idle-timeout", "5", "--ready-file", str(ready)], env, logs / "recorder.log")
    stats = None
    try:
        import rclpy

        rclpy.init()
        player = rclpy.create_node("edepth_demo_player")
        deadline = time.monotonic() + opts.timeout
        # the node subscribes to the image, the recorder to the node's depth: both before playing
        while time.monotonic() < deadline:
            if node.poll() is not None:
                raise DemoError(f"the node exited with code {node.returncode} before the replay:\n"
                                f"{_tail(logs / 'node.log')}\n(full log: {logs / 'node.log'})")
            if recorder.poll() is not None:
                raise DemoError(f"the recorder exited early:\n{_tail(logs / 'recorder.log')}")
            if (player.count_subscribers("/camera/image_raw") > 0 and
                    player.count_subscribers(f"{NS}/depth") > 0):
                break
            time.sleep(0.1)
        else:
            raise DemoError(f"the node or the recorder did not join the graph in {opts.timeout:.0f} s "
                            f"(logs: {logs})")
        say(f"[3/5] replaying {bag.name} at {opts.rate}x bag speed into the node over Fast DDS (with /clock)")
        from .bags.play import play

        stats = play(bag, rate=opts.rate, node=player, start_delay=0.5,
                     topics=["/camera/image_raw", "/camera/camera_info", "/camera/semantic"])
        # the recorder stops by itself when the node has been quiet for its idle timeout
        try:
            recorder.wait(timeout=max(10.0, opts.timeout - (time.perf_counter() - t_start)))
        except subprocess.TimeoutExpired:
            _stop(recorder)
    finally:
        _stop(recorder)
        _stop(node)
        import rclpy

        if rclpy.ok():
            rclpy.shutdown()  # also destroys the player node
    if not (rec_bag / "metadata.yaml").is_file():
        raise DemoError(f"no recording was written: recorder log:\n{_tail(logs / 'recorder.log')}")

    say("[4/5] scoring the node's recorded depth against the exact ground truth")
    result = score_recording(bag, rec_bag, out, frames_sent=stats.published.get("/camera/image_raw", 0),
                             context={"backend": kind, "model": model, "mounting": mounting,
                                      "labels": opts.labels, "rate": opts.rate, "domain": domain, "threads": threads,
                                      "seed": opts.seed, "bag": str(bag), "node_log": str(logs / "node.log")})

    say("      and the same bag offline through `edepth eval bag`'s code with the node's pipeline")
    offline_vs_node(bag, out, kind, model, mounting, opts.labels, result, threads)

    kitti = opts.kitti if opts.kitti is not None else PROJECT.parent / "shared" / "kitti"
    kitti_obj = Path(os.environ.get("EDEPTH_KITTI_SAMPLES", kitti)) / "object"
    if opts.embodied_eval and kitti_obj.is_dir():
        say(f"[5/5] embodied-depth evaluation on the KITTI object frames in {kitti_obj}")
        ee_json, ee_plots = out / "embodied_eval.json", out / "embodied_eval"
        proc = subprocess.run([sys.executable, "-m", "edepth_ros.cli", "embodied-eval", "--kitti-object",
                               str(kitti_obj), "--json", str(ee_json), "--plots", str(ee_plots)],
                              cwd=str(PROJECT), capture_output=True, text=True, timeout=300)
        (logs / "embodied_eval.log").write_text(proc.stdout + proc.stderr)
        _append_embodied_eval(result, proc.returncode, ee_json, ee_plots, logs / "embodied_eval.log")
    else:
        say(f"[5/5] no KITTI object frames at {kitti_obj}: embodied-depth evaluation skipped")
        with result.report.open("a") as f:
            f.write(f"\n## KITTI embodied-depth evaluation\n\nSkipped: {kitti_obj} does not exist "
                    "(set EDEPTH_KITTI_SAMPLES to the KITTI samples folder).\n")
    say(f"done in {time.perf_counter() - t_start:.0f} s")
    return result


def demo_threads() -> int:
    """Backend threads for the node and the offline pass: 1 on a machine of 2 cores or fewer.

    Measured here (2 shared cores): PyTorch with 2 intra-op threads ran the demo network in 2.5 s a
    frame on the main thread against 30 ms with 1 (every parallel region waits for a busy core).
    0 = the runtime's default elsewhere.
    """
    return 1 if (os.cpu_count() or 1) <= 2 else 0


def offline_vs_node(bag: Path, out: Path, kind: str, model: str, mounting: dict, labels: str,
                    result: DemoResult, threads: int = 0) -> None:
    """The bag through evaluate_bag with the pipeline the node builds (same backend, static pose,
    labels): its metrics should match the live node's, and its time per frame is compared with the
    node's receive-to-publish time."""
    from .backends import create_backend
    from .evaluation.bag_eval import evaluate_bag
    from .ground import GroundPlane
    from .pipeline import DepthPipeline

    options = {"max_depth": 80.0, **({"threads": threads} if threads else {})}
    pipeline = DepthPipeline(create_backend(kind, model or None, **options))
    plane = GroundPlane.from_static(mounting["camera_height"], mounting["camera_pitch"], mounting["camera_roll"])
    res = evaluate_bag(bag, pipeline, mb.TOPICS["image"], mb.TOPICS["camera_info"], depth_topic=mb.TOPICS["depth"],
                       labels_topic=mb.TOPICS["semantic"] if labels == "bag" else None, ground_frame=None,
                       static_plane=plane, out_dir=out / "offline_eval", progress=False, plots=False)
    summary = json.loads((out / "summary.json").read_text())
    node = summary.get("node_receive_to_publish_ms", {})
    offline_ms = res.overhead["frame_wall_ms_median"]  # steady state, as the node's figure is
    ratio = offline_ms / node["median_ms"] if node.get("median_ms") else float("nan")
    summary["offline_eval"] = {"metrics": res.mean, "frames": len(res.per_frame),
                               "frame_wall_median_ms": offline_ms,
                               "frame_wall_p95_ms": res.overhead["frame_wall_ms_p95"],
                               "pipeline_ms_per_frame": res.overhead["pipeline_ms_per_frame"],
                               "node_receive_to_publish_median_ms": node.get("median_ms"),
                               "node_receive_to_publish_p95_ms": node.get("p95_ms"),
                               "offline_over_node_ratio": ratio}
    report.write_json(out / "summary.json", summary)
    lines = ["", "## The same bag offline (`edepth eval bag`, the node's pipeline, same pose and labels)", "",
             report.metrics_table({"live node (above)": result.metrics, "offline evaluation": res.mean}), "",
             f"Offline: median {offline_ms:.0f} ms from one frame to the next (bag reading, decoding, pipeline, "
             f"scoring against the dense ground truth), of which pipeline {res.overhead['pipeline_ms_per_frame']:.0f} ms; "
             f"the node: receive to publish median "
             f"{node.get('median_ms', float('nan')):.0f} ms a frame; ratio offline / node {ratio:.2f}. "
             "Both were measured in this run on this machine. Full report: `offline_eval/summary.md`.", ""]
    with result.report.open("a") as f:
        f.write("\n".join(lines))
    result.files["offline_eval"] = out / "offline_eval" / "summary.md"


def _append_embodied_eval(result: DemoResult, code: int, json_path: Path, plots: Path, log_path: Path) -> None:
    lines = ["", "## KITTI embodied-depth evaluation (real frames, LiDAR ground truth)", ""]
    if code != 0 or not json_path.is_file():
        lines.append(f"`edepth embodied-eval` failed (exit {code}); see {log_path.name}:\n\n```\n{_tail(log_path)}\n```")
    else:
        data = json.loads(json_path.read_text())
        lines.append(f"Frames: {data.get('frames')}, plane: {data.get('plane')}, segmentation: {data.get('seg')}. "
                     "Pixels within 5% / 10% of the LiDAR depth (paper's figures beside ours):")
        lines += ["", "| region | ours within 5% | ours within 10% | paper 5% | paper 10% |", "|---|---:|---:|---:|---:|"]
        paper = data.get("paper", {}) or {}  # {"within_5": {"road": ...}, "within_10": {...}}
        for region in ("road", "ground", "scene"):
            ours = data.get(region) or {}
            pp = {k: (paper.get(k) or {}).get(region) for k in ("within_5", "within_10")}
            lines.append(f"| {region} | {_pct(ours, 'within_5')} | {_pct(ours, 'within_10')} | "
                         f"{_pct(pp, 'within_5')} | {_pct(pp, 'within_10')} |")
        lines += ["", f"Full results: `{json_path.name}`; per-frame pictures in `{plots.name}/`."]
        result.files["embodied_eval"] = json_path
    with result.report.open("a") as f:
        f.write("\n".join(lines) + "\n")


def _pct(d: dict, key: str) -> str:
    v = d.get(key) if isinstance(d, dict) else None
    return f"{v * 100:.1f}%" if isinstance(v, (int, float)) else "-"


def score_recording(gt_bag: Path, rec_bag: Path, out: Path, frames_sent: int = 0, context: dict | None = None) -> DemoResult:
    """Pair the node's recorded depth with the bag's ground truth by header stamp and write the report."""
    from .pointcloud import write_ply

    context = context or {}
    gt, rgbs, emb_out, pts, timings = {}, {}, {}, {}, []
    with bio.BagReader(gt_bag) as r:
        for topic, mt, _, raw in r.messages([mb.TOPICS["depth"], mb.TOPICS["image"]]):
            msg = r.deserialize(raw, mt)
            key = bio.header_ns(msg.header)
            if topic == mb.TOPICS["depth"]:
                d = bio.depth_to_metres(msg).copy()
                d[~np.isfinite(d)] = np.nan  # sky (+inf, REP 118 "too far") is not scored
                gt[key] = d
            else:
                rgbs[key] = bio.image_to_rgb(msg).copy()
    preds = {}
    with bio.BagReader(rec_bag) as r:
        have = r.topics
        for topic, mt, _, raw in r.messages([t for t in OUTPUT_TOPICS if t in have]):
            msg = r.deserialize(raw, mt)
            if topic.endswith("/timing"):
                timings.append(json.loads(msg.data))
                continue
            key = bio.header_ns(msg.header)
            if topic == f"{NS}/depth":
                preds[key] = bio.depth_to_metres(msg).copy()
            elif topic == f"{NS}/depth/embodied":
                emb_out[key] = bio.depth_to_metres(msg).copy()
            elif topic == f"{NS}/points":
                pts[key] = msg
    per_frame, bins, pvt = [], {}, report.PredVsTrue()
    for key in sorted(preds):
        if key not in gt:
            continue
        p, g = preds[key], gt[key]
        score = M.score_frame(p, g, crop=None)
        m = score.metrics
        e = M.score_frame(emb_out[key], g, crop=None, bins=None).metrics if key in emb_out else {}
        M.merge_bins(bins, score.bins)
        pvt.add(score.pred, score.gt)
        per_frame.append({"stamp_ns": key, **m,
                          **{f"embodied_{k}": e.get(k, float("nan")) for k in ("abs_rel", "rmse", "d1")}})
    out.mkdir(parents=True, exist_ok=True)
    res = DemoResult(report=out / "report.md", frames_evaluated=len(per_frame), frames_sent=frames_sent)
    res.metrics = M.mean_metrics(per_frame)
    emb_mean = M.mean_metrics([{k.replace("embodied_", ""): v for k, v in r.items() if k.startswith("embodied_")}
                               for r in per_frame])
    report.write_csv(out / "per_frame.csv", per_frame or [{"stamp_ns": "", "note": "no frame recorded"}])
    pics = []
    if per_frame:
        res.files["error_by_distance"] = report.plot_error_by_distance(bins, out / "error_by_distance.png")
        res.files["pred_vs_true"] = pvt.plot(out / "pred_vs_true.png")
        rows = []
        for label, i in report.pick_best_median_worst(per_frame):
            k = per_frame[i]["stamp_ns"]
            rows.append({"title": f"{label}\nAbsRel {per_frame[i]['abs_rel']:.3f}", "rgb": rgbs[k],
                         "embodied": emb_out.get(k, np.full_like(gt[k], np.nan)), "pred": preds[k], "gt": gt[k]})
        res.files["examples"] = report.plot_examples(rows, out / "examples.png")
        pics = [("Error by distance", "error_by_distance.png"), ("Predicted vs true", "pred_vs_true.png"),
                ("RGB | embodied | prediction | error (best, median, worst frame)", "examples.png")]
        # the point cloud the node itself published for the median frame
        med_key = per_frame[report.pick_best_median_worst(per_frame)[min(1, len(per_frame) - 1)][1]]["stamp_ns"]
        cloud = pts.get(med_key) or (next(iter(pts.values())) if pts else None)
        if cloud is not None:
            from .ros import convert

            arr = convert.cloud_from_msg(cloud)
            names = [f.name for f in cloud.fields]
            xyz = arr[:, :3]
            rgb = arr[:, names.index("rgb")] if "rgb" in names else None
            n = write_ply(out / "pointcloud.ply", xyz, rgb)
            res.files["pointcloud"] = out / "pointcloud.ply"
            res.files["pointcloud_points"] = n
    node_ms = [t["timings"].get("pipeline_ms") for t in timings if "timings" in t]
    e2e_ms = [t["timings"].get("receive_to_publish_ms") for t in timings if "timings" in t]
    lat, e2e = report.latency_stats(node_ms), report.latency_stats(e2e_ms)
    report.write_json(out / "summary.json", {"metrics": res.metrics, "embodied": emb_mean, "frames_sent": frames_sent,
                                             "frames_evaluated": len(per_frame), "node_pipeline_ms": lat,
                                             "node_receive_to_publish_ms": e2e, "context": context})
    c = context
    model = c.get("model") or ""
    if model.endswith(".onnx"):
        model_line = f"ONNX model `{model}` (backend {c.get('backend')}: ONNX Runtime on this machine)"
    elif model:
        model_line = (f"checkpoint `{model}` through the PyTorch backend (no exported .onnx found under models/; "
                      "`edepth export` makes one)")
    else:
        model_line = "no model file found: the embodied-only backend (depth = embodied scene depth, no network)"
    lines = [
        "# edepth_ros demo", "",
        "A synthetic drive (exact ground truth) replayed over a real Fast DDS graph into `edepth_node`, "
        "its outputs recorded and scored. Nothing here is a shortcut around the node.", "",
        f"- bag: `{c.get('bag', gt_bag)}` (scene generator seed {c.get('seed')}, not a training scene)",
        f"- node: {model_line}",
        f"- ground pose: static mounting (height {c.get('mounting', {}).get('camera_height', float('nan')):.3f} m, "
        f"pitch {c.get('mounting', {}).get('camera_pitch', float('nan')):.4f} rad, roll "
        f"{c.get('mounting', {}).get('camera_roll', float('nan')):.4f} rad: the drive's mean pose; "
        "tf2_ros is not installed here, so the per-frame pitch and heave are not seen)",
        "- semantic labels: " + ("the scene generator's labels on /camera/semantic (a perfect segmenter)"
                                 if c.get("labels") == "bag" else "the node's built-in geometric segmenter"),
        f"- replay: {c.get('rate')}x bag speed, ROS_DOMAIN_ID {c.get('domain')}; frames sent {frames_sent}, "
        f"depth images recorded and scored {len(per_frame)} (the node keeps only the newest frame when busy)",
        f"- node latency (its own ~/timing): pipeline {_lat(lat)}; receive to publish {_lat(e2e)}; "
        f"backend threads {c.get('threads') or 'runtime default'}",
        "", "## Metrics (all pixels with ground truth in 1e-3-80 m, no crop, mean over frames)", "",
        report.metrics_table({"node output (depth)": res.metrics, "embodied depth (depth/embodied)": emb_mean}), "",
        "## By ground-truth distance (pooled over pixels)", "", report.distance_table(bins), "",
    ]
    for title, name in pics:
        lines += [f"## {title}", "", f"![{title}]({name})", ""]
    if "pointcloud" in res.files:
        lines += ["## Point cloud", "", f"`pointcloud.ply`: {res.files['pointcloud_points']} points of the node's "
                  "`points` output for the median frame (binary PLY with colour; opens in MeshLab, CloudCompare, "
                  "Open3D, Blender).", ""]
    res.report.write_text("\n".join(lines))
    res.files["report"] = res.report
    return res


def _lat(stats: dict) -> str:
    if not stats.get("n"):
        return "-"
    return f"median {stats['median_ms']:.0f} ms, p95 {stats['p95_ms']:.0f} ms ({stats['n']} frames)"
