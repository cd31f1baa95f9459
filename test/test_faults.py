"""Faults while edepth_node runs: camera_info changing resolution mid-stream, the model file
corrupted or replaced under the node (detected by hash, refused, the previous model kept; a valid
new one loaded), the node killed and restarted under a 30 Hz camera, the clock jumping backwards
when a bag loops, tf disappearing and returning.

Real Fast DDS graphs over loopback (the node in its own process) where the fault is about the
graph; ROS_DOMAIN_IDs 102-106 (engineer G's range is 100-119). tf2_ros cannot be installed from
PyPI here, so tf disappearing is exercised through the tf adapter's own fallback logic with a
buffer that behaves like tf2_ros's (lookups raise while the transform is gone).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest

from ros_util import NodeProcess, image_msg, info_msg, make_header, reliable_qos, rig_fixture, ros_skip_reason

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180)]
if ros_skip_reason():
    pytest.skip(ros_skip_reason(), allow_module_level=True)


from edepth_ros.backends import create_backend  # noqa: E402
from edepth_ros.frame import Frame  # noqa: E402
from edepth_ros.ground import GroundPlane  # noqa: E402
from edepth_ros.model_io import ModelSpec, sha256_file, sidecar_path, write_sidecar  # noqa: E402
from edepth_ros.pipeline import DepthPipeline  # noqa: E402
from edepth_ros.ros import convert  # noqa: E402
from edepth_ros.synthetic import SceneGenerator  # noqa: E402

FRAME = "camera_optical_frame"
HEIGHT, PITCH = 1.65, 0.02
BASE = {"backend": "embodied", "use_tf": False, "camera_height": HEIGHT, "camera_pitch": PITCH, "camera_roll": 0.0,
        "warn_throttle": 0.0, "publish.points": False, "publish.colored": False, "diagnostics_period": 0.3}
SEC = 1_000_000_000
PLANE = GroundPlane.from_static(HEIGHT, PITCH, 0.0)


def scene(width=310, height=94, index=0):
    return SceneGenerator(3, width=width, height=height).frame(index, height=HEIGHT, pitch=PITCH, roll=0.0, lidar=False)


def offline(frame, backend=None, plane=PLANE):
    pipeline = DepthPipeline(backend or create_backend("embodied", None, max_depth=80.0))
    return pipeline.process(Frame(rgb=frame.rgb, camera=frame.camera, plane=plane)).depth


def depth_of(msg) -> np.ndarray:
    return np.array(convert.depth_image_to_numpy(msg))


@pytest.fixture
def rigs(tmp_path):
    yield from rig_fixture(tmp_path, BASE)


# ------------------------------------------------------------------ camera_info resolution change
def test_camera_info_changing_resolution_mid_stream(rigs):
    """A camera switching 310x94 -> 620x188 -> back: frames whose camera_info disagrees are skipped
    with the sizes named; each resolution is served with its own camera model, exactly."""
    small, big = scene(310, 94), scene(620, 188)
    rig = rigs(102, {})
    rig.ready()
    rig.send_info(small.camera)
    got = rig.serve(small.rgb, 1 * SEC)
    assert got is not None, rig.node.log()
    np.testing.assert_array_equal(depth_of(got), offline(small))

    rig.send_info(big.camera)  # the driver switched; a stale small image still arrives
    rig.send_image(small.rgb, 2 * SEC)
    assert rig.node.wait_log("camera_info is 620x188 but the image is 310x94"), rig.node.log()
    assert rig.depth.with_stamp(2 * SEC, 1.0) is None  # skipped, never published with the wrong model
    got = rig.serve(big.rgb, 3 * SEC)
    assert got is not None and (got.height, got.width) == (188, 620), rig.node.log()
    np.testing.assert_array_equal(depth_of(got), offline(big))

    rig.send_info(small.camera)
    got = rig.serve(small.rgb, 4 * SEC)
    assert got is not None, rig.node.log()
    np.testing.assert_array_equal(depth_of(got), offline(small))
    time.sleep(0.5)
    diag = rig.diagnostics()
    assert json.loads(diag["skipped_by_reason"]).get("camera_info_mismatch", 0) >= 1, diag
    assert rig.node.alive()


# ------------------------------------------------------------------- model replaced / corrupted
def tiny_model(path, scale: float, height=48, width=160, with_hash=True):
    """A real ONNX file following the network's tensor contract: depth = scale * embodied + 1 m,
    confidence = the embodied confidence; written with its sidecar (onnx_sha256 set)."""
    import onnx
    from onnx import TensorProto, helper

    def const(name, values, dtype=TensorProto.INT64):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, dtype, [len(values)], values))

    nodes = [const("s0", [0]), const("s1", [1]), const("s2", [2]), const("ax", [1]),
             const("scale", [scale], TensorProto.FLOAT), const("offset", [1.0], TensorProto.FLOAT),
             helper.make_node("Slice", ["embodied", "s0", "s1", "ax"], ["emb_depth"]),
             helper.make_node("Slice", ["embodied", "s1", "s2", "ax"], ["confidence"]),
             helper.make_node("Mul", ["emb_depth", "scale"], ["scaled"]),
             helper.make_node("Add", ["scaled", "offset"], ["depth"])]
    graph = helper.make_graph(
        nodes, "edepth_tiny",
        [helper.make_tensor_value_info("rgb", TensorProto.UINT8, [1, height, width, 3]),
         helper.make_tensor_value_info("embodied", TensorProto.FLOAT, [1, 2, height, width])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, height, width]),
         helper.make_tensor_value_info("confidence", TensorProto.FLOAT, [1, 1, height, width])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    write_sidecar(path, ModelSpec.for_size(height, width, 80.0, onnx_sha256=sha256_file(path) if with_hash else None))
    return path


def _install(src, dst):
    """Deploy a model the safe way: sidecar and model copied beside, then renamed into place."""
    for a, b in ((sidecar_path(src), sidecar_path(dst)), (src, dst)):
        tmp = b.with_name(b.name + ".part")
        shutil.copyfile(a, tmp)
        os.replace(tmp, b)


def test_model_file_corrupted_or_replaced_while_running(rigs, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    models = tmp_path / "models"
    models.mkdir()
    a = tiny_model(models / "a.onnx", 1.25)
    b = tiny_model(models / "b.onnx", 2.0)
    live = models / "live.onnx"
    _install(a, live)
    f = scene()
    ref_a = offline(f, create_backend("onnxruntime", str(a), threads=1))
    ref_b = offline(f, create_backend("onnxruntime", str(b), threads=1))
    assert not np.allclose(ref_a, ref_b, equal_nan=True)

    rig = rigs(103, {"backend": "onnxruntime", "model": str(live), "backend_threads": 1,
                     "model_check_period": 0.2})
    rig.ready()
    rig.send_info(f.camera)
    got = rig.serve(f.rgb, 1 * SEC)
    assert got is not None, rig.node.log()
    np.testing.assert_allclose(depth_of(got), ref_a, rtol=1e-6, equal_nan=True)

    # 1. the model file overwritten in place with garbage (a failed copy): refused by hash
    live.write_bytes(os.urandom(2000))
    assert rig.node.wait_log("was refused", timeout=15), rig.node.log()
    assert "differs from its sidecar's onnx_sha256" in rig.node.log()
    got = rig.serve(f.rgb, 2 * SEC)
    assert got is not None, rig.node.log()
    np.testing.assert_allclose(depth_of(got), ref_a, rtol=1e-6, equal_nan=True)  # still model A

    # 2. a valid ONNX file of another export under the old sidecar: the hash says it is not that export
    before = rig.node.log().count("was refused")
    shutil.copyfile(b, live)
    deadline = time.monotonic() + 15
    while rig.node.log().count("was refused") <= before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rig.node.log().count("was refused") > before, rig.node.log()
    got = rig.serve(f.rgb, 3 * SEC)
    np.testing.assert_allclose(depth_of(got), ref_a, rtol=1e-6, equal_nan=True)

    # 3. a sidecar without a hash over a truncated model: ONNX Runtime refuses to load it
    live.write_bytes(b.read_bytes()[:100])  # model first: B complete never meets a hash-less sidecar
    write_sidecar(live, ModelSpec.for_size(48, 160, 80.0))
    deadline = time.monotonic() + 15
    while "ONNX Runtime cannot load it" not in rig.node.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "ONNX Runtime cannot load it" in rig.node.log(), rig.node.log()
    got = rig.serve(f.rgb, 4 * SEC)
    np.testing.assert_allclose(depth_of(got), ref_a, rtol=1e-6, equal_nan=True)

    # 4. model B deployed properly (sidecar and model renamed into place): loaded between frames
    _install(b, live)
    assert rig.node.wait_log("reloaded (sha256", timeout=15), rig.node.log()
    got = rig.serve(f.rgb, 5 * SEC)
    np.testing.assert_allclose(depth_of(got), ref_b, rtol=1e-6, equal_nan=True)
    time.sleep(0.5)
    diag = rig.diagnostics()
    assert diag["model_sha256"] == sha256_file(b) and int(diag["model_reloads"]) == 1, diag
    assert int(diag["model_refused"]) >= 3, diag
    assert rig.node.alive()


# ------------------------------------------------------------------- restart under load
class Camera30Hz:
    """A camera thread publishing at 30 Hz until stopped (stamps 1/30 s apart)."""

    def __init__(self, rig, rgb, start_ns):
        self.rig, self.rgb, self.sent, self.start_ns = rig, rgb, 0, start_ns
        self.error = None
        self._stop = threading.Event()
        self._msg = image_msg(rgb, start_ns, FRAME)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stamp(self, i) -> int:
        return self.start_ns + i * (SEC // 30)

    def _run(self):
        t0 = time.monotonic()
        try:
            while not self._stop.is_set():
                self._msg.header = make_header(self.stamp(self.sent), FRAME)
                self.rig.pub_image.publish(self._msg)
                self.sent += 1
                if self.sent % 15 == 0:
                    self.rig.pub_info.publish(info_msg(self.rig.camera, 0, FRAME))
                time.sleep(max(0.0, t0 + self.sent / 30 - time.monotonic()))
        except Exception as exc:  # the test asserts there was none
            self.error = exc

    def stop(self):
        self._stop.set()
        self._thread.join(5)


def test_node_restarted_under_load(rigs, tmp_path):
    """The node killed (SIGKILL, as a crash would) while a 30 Hz camera keeps publishing, then
    started again: the camera side is unaffected and the new node serves depth within seconds,
    with every frame it received processed, dropped or skipped."""
    f = scene(620, 188)
    rig = rigs(104, {})
    rig.camera = f.camera
    rig.ready()
    cam = Camera30Hz(rig, f.rgb, 100 * SEC)
    try:
        assert rig.depth.wait_for(lambda m: True, 20) is not None, rig.node.log()
        rig.node.proc.send_signal(signal.SIGKILL)
        rig.node.proc.wait(10)
        sent_at_kill = cam.sent
        time.sleep(1.0)
        n_before = rig.depth.count
        t_start = time.monotonic()
        rig.node._log.close()
        restart_dir = tmp_path / "restart"
        restart_dir.mkdir()
        rig.node = NodeProcess(restart_dir, 104, rig.params)
        first = rig.depth.wait_for(lambda m: True, 40, after=n_before)
        restart_s = time.monotonic() - t_start
        assert first is not None, "the restarted node served nothing:\n" + rig.node.log()
        assert convert.stamp_to_ns(first.header.stamp) > cam.stamp(sent_at_kill)  # a new frame, not a stale one
        np.testing.assert_array_equal(depth_of(first), offline(f))
        time.sleep(2.0)
    finally:
        cam.stop()
    time.sleep(1.5)  # the camera stopped: the node finishes its frame in flight
    diag = rig.diagnostics()
    assert cam.error is None, cam.error
    received, processed, dropped, skipped = (int(diag[k]) for k in
                                             ("frames_received", "frames_processed", "frames_dropped", "frames_skipped"))
    assert processed + dropped + skipped == received, diag
    assert processed > 0
    print(json.dumps({"restart_to_first_depth_s": round(restart_s, 2), "camera_frames_sent": cam.sent,
                      "new_node": {"received": received, "processed": processed, "dropped": dropped}}))


# ------------------------------------------------------------------- clock jumps back (bag loop)
def test_clock_jumping_backwards_when_a_bag_loops(rigs):
    """use_sim_time with /clock and image stamps from a 'bag' that loops: after the jump back the
    node warns once, clears its tf / label buffers and serves the looped frames with their stamps."""
    from rosgraph_msgs.msg import Clock

    f = scene()
    rig = rigs(105, {"use_sim_time": True})
    rig.ready()
    clock = rig.graph.publisher(Clock, "/clock", reliable_qos(1))
    assert rig.graph.wait_matched(clock)
    rig.send_info(f.camera)
    bag0 = 1_300_000_000 * SEC
    ref = offline(f)

    def play(loop):
        for i in range(5):
            t = bag0 + i * SEC // 5
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(t, SEC)
            clock.publish(msg)
            got = rig.serve(f.rgb, t)
            assert got is not None, f"loop {loop} frame {i} not served:\n" + rig.node.log()
            np.testing.assert_array_equal(depth_of(got), ref)

    play(0)
    rig.depth.clear()
    play(1)  # the bag looped: clock and stamps back to the start
    log = rig.node.log()
    assert "image stamp went back by 0.800 s" in log and "tf and label buffers cleared" in log, log
    time.sleep(0.7)
    diag = rig.diagnostics()
    assert diag["frames_skipped"] == "0", diag
    assert rig.node.alive()


# ------------------------------------------------------------------- tf disappears and returns
class Tf2LikeBuffer:
    """tf2_ros.Buffer's behaviour for one transform (tf2_ros is not installable from PyPI here: the
    adapter's fallback logic is what is exercised): a lookup raises while no sample is held; at a
    stamp it gives the transform stamped at that time between the oldest and newest samples and
    raises past them (tf2 interpolates, never extrapolates); Time() gives the newest sample."""

    class TransformException(Exception):
        pass

    class LookupException(TransformException):
        pass

    class ExtrapolationException(TransformException):
        pass

    def __init__(self):
        self.samples = []
        self.cleared = 0

    @property
    def transform(self):
        return self.samples[-1] if self.samples else None

    @transform.setter
    def transform(self, msg):
        self.samples = [] if msg is None else [msg]

    def lookup_transform(self, target, source, time, timeout=None):
        import copy

        if not self.samples:
            raise self.LookupException(f'"{source}" passed to lookupTransform argument source_frame does not exist')
        stamps = [convert.stamp_to_ns(m.header.stamp) for m in self.samples]
        t = time.nanoseconds
        if t == 0:
            return self.samples[-1]
        if not stamps[0] <= t <= stamps[-1]:
            raise self.ExtrapolationException(
                f"Lookup would require extrapolation at time {t * 1e-9:.3f}, but only time "
                f"{stamps[0] * 1e-9:.3f} to {stamps[-1] * 1e-9:.3f} is in the buffer")
        msg = copy.deepcopy(self.samples[max(i for i, s in enumerate(stamps) if s <= t)])
        msg.header.stamp = time.to_msg()  # tf2 stamps the result with the time asked for
        return msg

    def clear(self):
        self.cleared += 1


def transform_msg(T: np.ndarray, stamp_ns: int):
    from geometry_msgs.msg import TransformStamped

    msg = TransformStamped()
    msg.header = make_header(stamp_ns, FRAME)
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = (float(v) for v in T[:3, 3])
    q = _quaternion(T[:3, :3])
    msg.transform.rotation.x, msg.transform.rotation.y, msg.transform.rotation.z, msg.transform.rotation.w = q
    return msg


def _quaternion(R: np.ndarray):
    w = np.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    x = np.copysign(np.sqrt(max(0.0, 1 + R[0, 0] - R[1, 1] - R[2, 2])) / 2, R[2, 1] - R[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] + R[1, 1] - R[2, 2])) / 2, R[0, 2] - R[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] - R[1, 1] + R[2, 2])) / 2, R[1, 0] - R[0, 1])
    return float(x), float(y), float(z), float(w)


def test_tf_disappearing_and_returning_through_the_node_frame_path():
    """The node's pose source on a tf2-like buffer: with the transform the depth follows tf's pose;
    when it disappears the static pose is used (warning names the transform) and depth matches
    the static mounting; when it returns, tf's pose is used again. No frame is lost."""
    import rclpy
    from rclpy.parameter import Parameter

    from edepth_ros.ros.node import EdepthNode
    from edepth_ros.ros.tf_source import StaticPose, TfPose
    from edepth_ros.ros_env import ros_environment

    for k, v in ros_environment(domain_id=106).items():
        if k in ("RMW_IMPLEMENTATION", "FASTDDS_DEFAULT_PROFILES_FILE", "ROS_AUTOMATIC_DISCOVERY_RANGE"):
            os.environ[k] = v
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=106)
    node = None
    try:
        overrides = {**{k: v for k, v in BASE.items() if k != "use_tf"}, "use_tf": True, "tf_max_age": 0.5}
        node = EdepthNode(context=ctx, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        buf = Tf2LikeBuffer()
        node.pose_source = TfPose(node, "base_footprint", 0.0, 0.5, StaticPose(HEIGHT, PITCH, 0.0), buffer=buf,
                                  errors=(Tf2LikeBuffer.TransformException,))
        results = []
        process = node.pipeline.process
        node.pipeline.process = lambda frame: results.append((frame, process(frame))) or results[-1][1]
        f = scene()
        node._latest_info = info_msg(f.camera, 0, FRAME)
        T_tf = GroundPlane.transform_from_static(1.3, pitch=0.06, roll=0.01)
        tf_plane = GroundPlane.from_transform(T_tf)
        warnings = []
        node._warn = lambda key, text: warnings.append((key, text))

        def frame_at(stamp_ns):
            results.clear()
            node._process(image_msg(f.rgb, stamp_ns, FRAME), time.monotonic())
            frame, result = results[-1]
            return frame.plane, result.depth

        def assert_plane(plane, want):
            np.testing.assert_allclose(plane.normal, want.normal, atol=1e-9)
            assert plane.height == pytest.approx(want.height)

        buf.transform = transform_msg(T_tf, 10 * SEC)
        plane, depth = frame_at(10 * SEC)
        assert_plane(plane, tf_plane)
        np.testing.assert_array_equal(depth, offline(f, plane=tf_plane))
        assert not warnings

        buf.transform = None  # the tf publisher died
        plane, depth = frame_at(11 * SEC)
        assert_plane(plane, PLANE)
        np.testing.assert_array_equal(depth, offline(f, plane=PLANE))
        assert warnings and warnings[-1][0] == "pose" and "no transform base_footprint -> camera_optical_frame" \
            in warnings[-1][1]

        buf.transform = transform_msg(T_tf, 10 * SEC)  # an old transform only: stale
        plane, _ = frame_at(12 * SEC)
        assert_plane(plane, PLANE)
        assert "2.00 s older than the image (tf_max_age 0.5 s)" in warnings[-1][1]

        # a 10 Hz tf and an image 0.3 s after its newest sample: tf2 will not extrapolate, the newest
        # transform is within tf_max_age (was: the static pose, so depth flipped between poses)
        warnings.clear()
        T_later = GroundPlane.transform_from_static(1.35, pitch=0.05, roll=0.0)
        buf.samples = [transform_msg(T_tf, 12 * SEC), transform_msg(T_later, 12 * SEC + SEC // 10)]
        plane, _ = frame_at(12 * SEC + SEC // 20)  # between the samples: looked up at the stamp (tf2 interpolates)
        assert_plane(plane, tf_plane)
        plane, _ = frame_at(12 * SEC + 4 * SEC // 10)
        assert_plane(plane, GroundPlane.from_transform(T_later))
        assert not warnings
        plane, _ = frame_at(12 * SEC + 7 * SEC // 10)  # 0.6 s after the newest: stale
        assert_plane(plane, PLANE)
        assert "0.60 s older than the image" in warnings[-1][1]

        warnings.clear()
        buf.transform = transform_msg(T_tf, 13 * SEC)  # it is back
        plane, depth = frame_at(13 * SEC)
        assert_plane(plane, tf_plane)
        np.testing.assert_array_equal(depth, offline(f, plane=tf_plane))
        assert not warnings

        frame_at(5 * SEC)  # the clock jumped back: the buffer is cleared before the lookup
        assert buf.cleared == 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.shutdown(context=ctx)
