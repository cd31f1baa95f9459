"""`edepth bench node`: edepth_node end to end, and PointCloud2 building, printed as JSON.

- latency: a 1242x375 rgb8 image published by this process -> its depth received back in this
  process, with edepth_node in its own process (Fast DDS, the package's profile, loopback). One
  frame in flight at a time, so queueing does not count.
- node overhead per frame: that latency minus the pipeline's own time for the same frame (the node
  reports it on ~/timing), i.e. transport both ways, conversion, pose lookup and publishing.
  Target (issue 6): <= 10 ms median.
- reference, same run: ``DepthPipeline.process`` on the same frame in this process;
  ratio = latency median / reference median.
- pointcloud: ``cloud_array`` + ``cloud_to_msg`` for the full organised 1242x375 cloud (466k
  points, x y z rgb) against a straightforward structured-array build; target <= 5 ms median.
Backend: ONNX Runtime CPU with the demo model when one exists (models/), else the embodied-only
backend; the JSON says which.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..commands.arg_types import domain_id, image_file, non_negative_int, positive_int
from ..safe_paths import output_file

TARGETS = {"node_overhead_ms_median": 10.0, "pointcloud_ms_median": 5.0}
FRAME_ID = "camera_optical_frame"
HEIGHT, PITCH, ROLL = 1.65, 0.0, 0.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=positive_int, default=30, help="timed frames end to end (default 30)")
    parser.add_argument("--warmup", type=non_negative_int, default=3, help="untimed frames first (default 3)")
    parser.add_argument("--repeat", type=positive_int, default=30, help="PointCloud2 builds timed (default 30)")
    parser.add_argument("--backend", default=None,
                        help="node backend (default: onnxruntime-cpu with the demo model, else embodied)")
    parser.add_argument("--model", default=None, help="model file (default: the demo model under models/)")
    parser.add_argument("--points", action="store_true", help="also subscribe to points (the node then builds them)")
    parser.add_argument("--domain-id", type=domain_id, default=60, help="ROS_DOMAIN_ID for the run, 0-232 (default 60)")
    parser.add_argument("--json", metavar="OUT", default=None, type=output_file, help="also write the JSON here")
    parser.add_argument("--plot", metavar="PNG", default=None, type=image_file,
                        help="also draw the distributions here (.png, .jpg, .svg or .pdf)")


def _stats(ms) -> dict:
    a = np.asarray(ms, np.float64)
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "min": float(a.min()), "n": int(a.size)}


# ----------------------------------------------------------------------------- point cloud


def _reference_cloud_msg(depth, camera, rgb, header):
    """The straightforward way: a structured array filled field by field, then bytes into the message."""
    import array

    from sensor_msgs.msg import PointCloud2, PointField

    xyz = camera.rays() * depth[..., None]
    rec = np.zeros(depth.shape, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
    rec["x"], rec["y"], rec["z"] = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    rec["rgb"] = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    bad = ~np.isfinite(depth)
    rec["x"][bad] = rec["y"][bad] = rec["z"][bad] = np.nan
    msg = PointCloud2(header=header, height=depth.shape[0], width=depth.shape[1], is_bigendian=False,
                      point_step=16, row_step=16 * depth.shape[1], is_dense=False)
    msg.fields = [PointField(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("x y z rgb".split())]
    msg.data = array.array("B", rec.tobytes())
    return msg


def bench_pointcloud(frame, depth, repeat: int) -> dict:
    from std_msgs.msg import Header

    from ..ros.convert import CloudMessageBuilder, cloud_msg

    header = Header(frame_id=FRAME_ID)
    builder = CloudMessageBuilder()  # what the node does: one reused buffer per publisher
    build = lambda: builder.build(depth, frame.camera, frame.rgb, organised=True, header=header)  # noqa: E731
    fresh = lambda: cloud_msg(depth, frame.camera, frame.rgb, organised=True, header=header)  # noqa: E731
    ref = lambda: _reference_cloud_msg(depth, frame.camera, frame.rgb, header)  # noqa: E731
    msg = build()
    n_points = msg.width * msg.height
    times, ref_times, fresh_times = [], [], []
    for _ in range(2):
        build(), ref(), fresh()
    for _ in range(repeat):
        for fn, acc in ((build, times), (ref, ref_times), (fresh, fresh_times)):
            t = time.perf_counter()
            fn()
            acc.append((time.perf_counter() - t) * 1e3)
    ours, theirs = _stats(times), _stats(ref_times)
    return {"_samples": {"build": times, "reference": ref_times},
            "points": int(n_points), "bytes": len(msg.data), "what": "CloudMessageBuilder.build (the node's path): organised x, y, z, rgb into a reused buffer",
            "build_ms": ours, "fresh_buffer_ms": _stats(fresh_times), "reference_ms": theirs,
            "reference": "structured numpy array filled per field, tobytes, array.array copy",
            "ratio": theirs["median"] / ours["median"]}


# --------------------------------------------------------------------------------- end to end


def _pick_backend(args) -> tuple[str, str, str]:
    from ..ros.params import default_model

    model = args.model or (str(default_model()) if default_model() else "")
    if args.backend:
        return args.backend, model if args.backend != "embodied" else "", "as asked"
    if model:
        return "onnxruntime-cpu", model, "the demo model with ONNX Runtime CPU"
    return "embodied", "", "no demo model under models/ (models/demo/model.onnx): embodied-only backend, no network"


def _start_node(domain: int, values: dict, log_path: Path) -> subprocess.Popen:
    import yaml

    from ..ros_env import ros_environment

    params = log_path.with_suffix(".yaml")
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}))
    env = ros_environment(domain_id=domain)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
    cmd = [sys.executable, "-m", "edepth_ros.ros.node", "--ros-args", "--params-file", str(params), "-r", "__ns:=/bench"]
    return subprocess.Popen(cmd, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)


def bench_end_to_end(frame, args, backend: str, model: str) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from std_msgs.msg import Header, String

    from ..ros.convert import camera_info_from_model, numpy_to_image, stamp_to_ns
    from ..ros_env import ros_environment

    for k, v in ros_environment(domain_id=args.domain_id).items():
        if k in ("RMW_IMPLEMENTATION", "FASTDDS_DEFAULT_PROFILES_FILE", "ROS_AUTOMATIC_DISCOVERY_RANGE"):
            os.environ[k] = v
    values = {"backend": backend, "model": model, "use_tf": False, "camera_height": HEIGHT, "camera_pitch": PITCH,
              "camera_roll": ROLL, "backend_threads": 1, "points.decimation": 1, "points.organised": True}
    log_path = Path(tempfile.mkdtemp(prefix="edepth_bench_")) / "node.log"
    proc = _start_node(args.domain_id, values, log_path)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=args.domain_id)
    node = rclpy.create_node("edepth_bench", namespace="/bench", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    got: dict = {}
    timing: dict = {}
    cond = threading.Condition()

    def on_depth(msg):
        with cond:
            got[stamp_to_ns(msg.header.stamp)] = time.perf_counter()
            cond.notify_all()

    def on_timing(msg):
        d = json.loads(msg.data)
        with cond:
            timing[d["stamp_ns"]] = d["timings"]
            cond.notify_all()

    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, "depth", on_depth, reliable)
    node.create_subscription(String, "edepth_node/timing", on_timing, 10)
    if args.points:
        node.create_subscription(PointCloud2, "points", lambda m: None, reliable)
    pub = node.create_publisher(Image, "image", qos_profile_sensor_data)
    pub_info = node.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
    spin = threading.Thread(target=lambda: _spin(ex), daemon=True)
    spin.start()
    latencies, overheads, pipeline, infer = [], [], [], []
    try:
        deadline = time.monotonic() + 60
        while (pub.get_subscription_count() < 1 or node.count_publishers("/bench/depth") < 1) and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"edepth_node exited ({proc.returncode}):\n{log_path.read_text()}")
            time.sleep(0.05)
        time.sleep(1.0)
        info = camera_info_from_model(frame.camera, Header(frame_id=FRAME_ID))
        for _ in range(3):
            pub_info.publish(info)
            time.sleep(0.05)
        from tqdm import tqdm

        for i in tqdm(range(args.warmup + args.frames), desc="bench node", unit="frame", file=sys.stderr):
            stamp = (1000 + i) * 1_000_000_000
            header = Header(frame_id=FRAME_ID)
            header.stamp.sec = 1000 + i
            msg = numpy_to_image(frame.rgb, "rgb8", header)
            if i % 10 == 0:
                pub_info.publish(info)
            t0 = time.perf_counter()
            pub.publish(msg)
            with cond:
                ok = cond.wait_for(lambda: stamp in got and stamp in timing, timeout=30)
            if not ok:
                raise RuntimeError(f"no depth for frame {i} within 30 s; node log:\n{log_path.read_text()[-3000:]}")
            if i < args.warmup:
                continue
            lat = (got[stamp] - t0) * 1e3
            t = timing[stamp]
            latencies.append(lat)
            pipeline.append(t["pipeline_ms"])
            infer.append(t.get("pipeline.infer_ms", float("nan")))
            overheads.append(lat - t["pipeline_ms"])
            time.sleep(0.02)
    finally:
        ex.shutdown(timeout_sec=2)
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"latency_ms": _stats(latencies), "node_overhead_ms": _stats(overheads),
            "node_pipeline_ms": _stats(pipeline), "node_infer_ms": _stats(infer), "node_log": str(log_path),
            "_samples": {"latency": latencies, "overhead": overheads, "pipeline": pipeline}}


def _spin(ex) -> None:
    try:
        ex.spin()
    except Exception:  # shut down by the main thread
        pass


def measure(args) -> dict:
    import cv2

    from ..backends import create_backend
    from ..frame import Frame
    from ..ground import GroundPlane
    from ..pipeline import DepthPipeline
    from ..synthetic import SceneGenerator

    cv2.setNumThreads(1)
    frame = SceneGenerator(0).frame(0, height=HEIGHT, pitch=PITCH, roll=ROLL, lidar=False)
    backend, model, why = _pick_backend(args)
    # reference in the same run: the pipeline alone, in this process, same frame and backend
    opts = {"threads": 1} if backend != "embodied" else {}
    pipeline = DepthPipeline(create_backend(backend, model or None, **opts))
    f = Frame(rgb=frame.rgb, camera=frame.camera, plane=GroundPlane.from_static(HEIGHT, PITCH, ROLL))
    for _ in range(2):
        result = pipeline.process(f)
    ref = []
    for _ in range(max(5, args.frames // 2)):
        t = time.perf_counter()
        result = pipeline.process(f)
        ref.append((time.perf_counter() - t) * 1e3)
    e2e = bench_end_to_end(frame, args, backend, model)
    pc = bench_pointcloud(frame, result.depth, args.repeat)
    ref_stats = _stats(ref)
    out = {
        "benchmark": "edepth bench node",
        "image": f"{frame.camera.width}x{frame.camera.height} rgb8",
        "backend": backend, "model": model or None, "backend_choice": why,
        "points_subscribed": bool(args.points),
        "cpu_count": os.cpu_count(),
        "end_to_end": e2e,
        "reference": {"what": "DepthPipeline.process on the same frame in the benchmark process",
                      "ms": ref_stats, "ratio_latency_to_reference": e2e["latency_ms"]["median"] / ref_stats["median"]},
        "pointcloud": pc,
        "targets": TARGETS,
        "meets_targets": {
            "node_overhead_ms_median": e2e["node_overhead_ms"]["median"] <= TARGETS["node_overhead_ms_median"],
            "pointcloud_ms_median": pc["build_ms"]["median"] <= TARGETS["pointcloud_ms_median"],
        },
    }
    return out


def plot(path, samples: dict, out: dict) -> None:
    """Per-frame latency split (pipeline vs node overhead) and PointCloud2 build times, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e2e, pc = samples["end_to_end"], samples["pointcloud"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    idx = np.arange(len(e2e["latency"]))
    a.bar(idx, e2e["pipeline"], label="pipeline (segment + embodied + inference)", color="#4c72b0")
    a.bar(idx, e2e["overhead"], bottom=e2e["pipeline"], label="node overhead (transport, convert, publish)",
          color="#dd8452")
    a.axhline(np.median(e2e["latency"]), color="k", lw=1, ls="--", label="latency median")
    a.set(xlabel="frame", ylabel="ms", title=f"image published -> depth received ({out['backend']} backend)")
    a.legend(fontsize=8)
    b.hist([pc["build"], pc["reference"]], bins=20, label=["CloudMessageBuilder", "structured-array reference"])
    b.axvline(TARGETS["pointcloud_ms_median"], color="r", ls=":", label="target 5 ms")
    b.set(xlabel="ms", ylabel="builds", title=f"PointCloud2, {out['pointcloud']['points']} points")
    b.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    out = measure(args)
    samples = {"end_to_end": out["end_to_end"].pop("_samples"), "pointcloud": out["pointcloud"].pop("_samples")}
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:  # before the plot: a plotting failure must not lose the measured results
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)
    if args.plot:
        plot(args.plot, samples, out)
    return 0
