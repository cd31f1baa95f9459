"""Helpers for tests with a real ROS 2 graph: edepth_node in its own process, this process
publishing and receiving over Fast DDS on loopback (the package's profile, own ROS_DOMAIN_ID).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import yaml

from edepth_ros.ros_env import ros_environment

PROJECT = Path(__file__).resolve().parents[1]


def ros_skip_reason() -> Optional[str]:
    try:
        import rclpy  # noqa: F401
        import sensor_msgs.msg  # noqa: F401
        import diagnostic_msgs.msg  # noqa: F401
    except ImportError as exc:
        return f"ROS 2 Python packages are not installed ({exc}); install the ros-* wheels of requirements.txt"
    return None


def write_params(path: Path, values: dict) -> Path:
    """A params file with ``values`` (dotted names) under ``/**: ros__parameters``."""
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": dict(values)}}, sort_keys=False))
    return path


def node_env(domain_id: int) -> dict:
    env = ros_environment(domain_id=domain_id)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT), env.get("PYTHONPATH", "")) if p)
    env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
    env["RCUTILS_COLORIZED_OUTPUT"] = "0"
    env["OMP_NUM_THREADS"] = "1"
    return env


class NodeProcess:
    """``python -m edepth_ros.ros.node --ros-args --params-file ... -r __ns:=...`` with its log in a file."""

    def __init__(self, tmp_path: Path, domain_id: int, params: dict, namespace: str = "/cam",
                 extra_args: tuple = ()):
        self.log_path = tmp_path / f"edepth_node_{domain_id}.log"
        params_file = write_params(tmp_path / f"params_{domain_id}.yaml", params)
        cmd = [sys.executable, "-m", "edepth_ros.ros.node", "--ros-args", "--params-file", str(params_file),
               "-r", f"__ns:={namespace}", *extra_args]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=PROJECT, env=node_env(domain_id), stdout=self._log,
                                     stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if not self.alive():
                return text in self.log()
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 10.0) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class Collector:
    """The most recent messages received on one topic (bounded: a soak at 30 Hz with 2 MB images
    must not grow the test process without limit), with a wait for a condition."""

    def __init__(self, keep: int = 64):
        self._items: deque = deque(maxlen=keep)  # (sequence number, message)
        self.count = 0  # messages received so far, including those no longer kept
        self._cond = threading.Condition()

    def __call__(self, msg) -> None:
        with self._cond:
            self._items.append((self.count, msg))
            self.count += 1
            self._cond.notify_all()

    @property
    def msgs(self) -> list:
        with self._cond:
            return [m for _, m in self._items]

    def clear(self) -> None:
        with self._cond:
            self._items.clear()

    def wait_for(self, predicate: Callable, timeout: float = 10.0, after: int = 0):
        """The first kept message, received as number ``after`` or later, for which predicate(msg) is
        true; None after timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for seq, m in self._items:
                    if seq >= after and predicate(m):
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def next(self, timeout: float = 10.0):
        """The next message received after this call."""
        return self.wait_for(lambda m: True, timeout, after=self.count)

    def with_stamp(self, stamp_ns: int, timeout: float = 10.0):
        from edepth_ros.ros.convert import stamp_to_ns

        return self.wait_for(lambda m: stamp_to_ns(m.header.stamp) == stamp_ns, timeout)


class Graph:
    """This process's side of the graph: its own rclpy context on ``domain_id``, spun in a thread."""

    def __init__(self, domain_id: int, namespace: str = "/cam"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        # Fast DDS reads the profile when its first participant is made: same env as the node
        for k, v in ros_environment(domain_id=domain_id).items():
            if k in ("RMW_IMPLEMENTATION", "FASTDDS_DEFAULT_PROFILES_FILE", "ROS_AUTOMATIC_DISCOVERY_RANGE"):
                os.environ[k] = v
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(f"edepth_test_{domain_id}", namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except (ExternalShutdownException, Exception):  # the context is shut down at close()
            pass

    def publisher(self, msg_type, topic: str, qos):
        return self.node.create_publisher(msg_type, topic, qos)

    def collect(self, msg_type, topic: str, qos, keep: int = 64) -> Collector:
        c = Collector(keep)
        self.node.create_subscription(msg_type, topic, c, qos)
        return c

    def wait_matched(self, publisher, count: int = 1, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if publisher.get_subscription_count() >= count:
                return True
            time.sleep(0.05)
        return False

    def wait_publishers(self, topic: str, count: int = 1, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.node.count_publishers(topic) >= count:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5.0)


def make_header(stamp_ns: int, frame_id: str):
    from std_msgs.msg import Header

    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return h


def image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "rgb8"):
    from edepth_ros.ros import convert

    data = rgb if encoding == "rgb8" else np.ascontiguousarray(rgb[..., ::-1])
    return convert.numpy_to_image(data, encoding, make_header(stamp_ns, frame_id))


def info_msg(camera, stamp_ns: int, frame_id: str):
    from edepth_ros.ros import convert

    return convert.camera_info_from_model(camera, make_header(stamp_ns, frame_id))


def sensor_qos(depth: int = 5):
    from rclpy.qos import qos_profile_sensor_data, QoSProfile

    q = QoSProfile(depth=depth)
    q.reliability, q.durability, q.history = (qos_profile_sensor_data.reliability, qos_profile_sensor_data.durability,
                                              qos_profile_sensor_data.history)
    return q


def reliable_qos(depth: int = 5, transient_local: bool = False):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if transient_local else DurabilityPolicy.VOLATILE)


class NodeRig:
    """edepth_node in its own process plus this process's publishers and output collectors.

    ``params`` is the node's whole parameter set (each test file merges its own defaults in).
    """

    def __init__(self, tmp_path: Path, domain: int, params: dict, image_qos=None, compressed: bool = False,
                 outputs_qos=None, frame_id: str = "camera_optical_frame"):
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

        self.frame_id, self.params = frame_id, params
        self.node = NodeProcess(tmp_path, domain, params)
        self.graph = g = Graph(domain)
        image_type, image_topic = (CompressedImage, "image/compressed") if compressed else (Image, "image")
        self.pub_image = g.publisher(image_type, image_topic, image_qos or sensor_qos())
        self.pub_info = g.publisher(CameraInfo, "camera_info", sensor_qos())
        self.pub_labels = g.publisher(Image, "semantic", sensor_qos())
        out = outputs_qos or reliable_qos()
        self.depth = g.collect(Image, "depth", out)
        self.info = g.collect(CameraInfo, "depth/camera_info", out)
        self.embodied = g.collect(Image, "depth/embodied", out)
        self.confidence = g.collect(Image, "depth/confidence", out)
        self.colored = g.collect(Image, "depth/colored", out)
        self.points = g.collect(PointCloud2, "points", out)
        self.diag = g.collect(DiagnosticArray, "/diagnostics", reliable_qos(10))

    def ready(self, timeout: float = 40.0) -> None:
        assert self.graph.wait_publishers("/cam/depth", timeout=timeout), "edepth_node did not come up:\n" + self.node.log()
        assert self.graph.wait_matched(self.pub_image, timeout=timeout), self.node.log()
        time.sleep(0.5)  # let the node see our subscriptions too (lazy outputs)

    def send_info(self, camera, stamp_ns: int = 0, frame_id: Optional[str] = None, repeat: int = 3) -> None:
        for _ in range(repeat):
            self.pub_info.publish(info_msg(camera, stamp_ns, frame_id or self.frame_id))
            time.sleep(0.05)

    def send_image(self, rgb: np.ndarray, stamp_ns: int, frame_id: Optional[str] = None, encoding: str = "rgb8") -> None:
        self.pub_image.publish(image_msg(rgb, stamp_ns, frame_id or self.frame_id, encoding))

    def serve(self, rgb: np.ndarray, stamp_ns: int, timeout: float = 20.0):
        """Send one image (again, if best-effort lost it) and wait for its depth."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send_image(rgb, stamp_ns)
            got = self.depth.with_stamp(stamp_ns, 3.0)
            if got is not None:
                return got
        return None

    def diagnostics(self, timeout: float = 5.0) -> dict:
        """The key/values of the next /diagnostics message (any, when none has arrived yet)."""
        msg = self.diag.next(timeout)
        assert msg is not None, "no /diagnostics:\n" + self.node.log()
        return {kv.key: kv.value for kv in msg.status[0].values}

    def close(self) -> int:
        self.graph.close()
        return self.node.stop()


def rig_fixture(tmp_path: Path, base_params: dict):
    """Generator for a pytest fixture: yields make(domain, params, **kw) -> NodeRig, then stops every
    node and checks it exited cleanly."""
    made = []

    def make(domain: int, params: dict, **kwargs) -> NodeRig:
        made.append(NodeRig(tmp_path, domain, {**base_params, **params}, **kwargs))
        return made[-1]

    yield make
    for rig in made:
        code = rig.close()
        assert code == 0, f"edepth_node exited with {code}:\n{rig.node.log()}"
