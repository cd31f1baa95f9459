"""``edepth_node``: camera image + CameraInfo (+ tf, + labels) in; metric depth, point cloud out.

Threading: subscription callbacks only store messages (the newest image in a one-slot mailbox;
an image that is replaced before the worker took it is counted as dropped). One worker thread
converts, looks up the pose, runs ``DepthPipeline.process`` and publishes, so inference never
runs on the executor thread and callbacks never block.

Bad input (unsupported encoding, no / disagreeing / uncalibrated camera_info, label image of
another size, missing transform, stamps going backwards) gets a throttled warning naming the
problem; the frame is skipped or a fallback used, and the next good frame is processed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from collections import deque
from typing import Optional

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import String

from ..frame import Frame
from ..model_io import sha256_file, sidecar_path
from . import convert, params
from .tf_source import make_pose_source

NODE_NAME = params.NODE_NAME


def nearest_within(stamped, stamp_ns: int, tol_ns: int):
    """The message of (stamp, message) pairs nearest ``stamp_ns``, None when none is within ``tol_ns``
    (the nearest, not the newest: labels buffered ahead of the worker belong to later images)."""
    best = min(stamped, key=lambda sm: abs(sm[0] - stamp_ns), default=None)
    return best[1] if best is not None and abs(best[0] - stamp_ns) <= tol_ns else None


class NewestSlot:
    """A one-item mailbox: ``put`` replaces an item not yet taken (newest frame wins)."""

    def __init__(self):
        self._item = None
        self._cond = threading.Condition()

    def put(self, item) -> bool:
        """Store item; True when it replaced one that was never taken (a dropped frame)."""
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self._cond.notify()
        return replaced

    def take(self, timeout: float):
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
        return item

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class RateMeter:
    """Events per second over a sliding window (monotonic clock)."""

    def __init__(self, window: float = 5.0):
        self.window = window
        self._t: deque = deque()
        self._lock = threading.Lock()

    def tick(self, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._t.append(now)
            while self._t and now - self._t[0] > self.window:
                self._t.popleft()

    def rate(self) -> float:
        now = time.monotonic()
        with self._lock:
            while self._t and now - self._t[0] > self.window:
                self._t.popleft()
            n = len(self._t)
            span = self._t[-1] - self._t[0] if n > 1 else 0.0
        return (n - 1) / span if span > 0 else 0.0

    def reset(self) -> None:
        with self._lock:
            self._t.clear()


def _percentiles(values) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    a = np.asarray(values, np.float64)
    return float(np.median(a)), float(np.percentile(a, 95))


RECTIFIED = {"auto": None, "rectified": True, "raw": False}  # image_rectification -> CameraModel's rectified


class SkipFrame(Exception):
    """A frame that cannot be processed: ``key`` groups the warning, the text names the problem."""

    def __init__(self, key: str, text: str):
        super().__init__(text)
        self.key = key


class EdepthNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        # set first: destroy_node() may run on a half-built node (Ctrl-C or a bad parameter at start)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._slot = NewestSlot()
        self._worker: Optional[threading.Thread] = None
        self._cloud_builder = convert.CloudMessageBuilder()  # used by the worker thread only
        self.cfg = cfg = params.declare_all(self)
        # statistics (diagnostics, tests, benchmark)
        self.received = 0
        self.dropped = 0
        self.processed = 0
        self.skipped: dict[str, int] = {}
        self.in_rate, self.out_rate = RateMeter(), RateMeter()
        self.latency_ms: deque = deque(maxlen=300)
        self.pipeline_ms: deque = deque(maxlen=300)
        self.overhead_ms: deque = deque(maxlen=300)
        self.last_problem = ""
        # (monotonic time, text) of the latest frame skipped or published with no depth: the diagnostics level
        self._last_frame_problem: Optional[tuple[float, str]] = None
        self.no_depth = 0  # frames processed and published with no depth at all (unusable image)
        self.partly_blind = 0  # frames whose blind share with no depth exceeds image_check.blind_warn_fraction
        self.model_problem = ""  # why the model file on disk is not the one serving, until that is resolved
        self.pose_used = "none"  # where the last frame's ground plane came from: tf, static or none
        self._last_warn: dict[str, float] = {}
        self._last_image_time: Optional[float] = None
        self._start_time = time.monotonic()
        self._last_stamp_ns: Optional[int] = None
        self._camera_key = None
        self._camera = None
        self._latest_info: Optional[CameraInfo] = None
        self._labels: deque = deque(maxlen=cfg["semantic.buffer_size"])
        self._labels_cond = threading.Condition()

        self.pipeline, self.backend_name, self.model_path = self._make_pipeline()
        # model file watch (worker thread): stat signature, content hash, reload / refusal counts
        self.model_sha256, self._sidecar_sha256 = self._model_digests() if self.model_path else ("", "")
        self._model_sig = self._model_signature()
        self._next_model_check = time.monotonic() + cfg["model_check_period"]
        self.model_reloads = 0
        self.model_refused = 0
        self.pose_source, pose_note = make_pose_source(self, cfg)
        self._make_topics()

        log = self.get_logger()
        log.info(f"backend {self.backend_name}, model {self.model_path or '(none)'}")
        log.info(f"ground pose from {pose_note}")
        for topic, group in self._topic_groups:
            log.info(f"QoS {self.resolve_topic_name(topic)}: {params.describe_qos(cfg, group)}")
        self._worker = threading.Thread(target=self._work, name="edepth_worker", daemon=True)
        self._worker.start()
        # steady clock: with use_sim_time and no /clock (a bag not playing yet) the health checks
        # must still run; the diagnostics' stamp is the node's (sim) time
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(cfg["diagnostics_period"], self._publish_diagnostics, clock=steady)
        self.create_timer(1.0, self._watchdog, clock=steady)

    # ------------------------------------------------------------------------------ set-up
    def _make_pipeline(self, model: Optional[str] = None):
        from ..backends import create_backend
        from ..pipeline import DepthPipeline

        cfg = self.cfg
        kind = cfg["backend"]
        if model is None:
            model = cfg["model"]
            if not model and kind != "embodied":
                found = params.default_model()
                model = str(found) if found is not None else ""
        options = {"max_depth": cfg["max_depth"]}
        if cfg["backend_threads"]:
            options["threads"] = cfg["backend_threads"]
        backend = create_backend(kind, model or None, **options)
        if backend.name == "embodied":
            model = ""
        return DepthPipeline(backend, image_check=params.image_check_config(cfg)), backend.name, model

    def _make_topics(self):
        cfg = self.cfg
        qos = {g: params.qos_profile(cfg, g) for g in params.QOS_TOPICS}
        sub_events = lambda topic: SubscriptionEventCallbacks(  # noqa: E731
            incompatible_qos=lambda e, t=topic: self._qos_warning(t, "subscription", e))
        pub_events = lambda topic: PublisherEventCallbacks(  # noqa: E731
            incompatible_qos=lambda e, t=topic: self._qos_warning(t, "publisher", e))
        if cfg["image_transport"] == "compressed":
            self.image_topic = "image/compressed"
            self.create_subscription(CompressedImage, self.image_topic, self._on_image, qos["image"],
                                     event_callbacks=sub_events(self.image_topic))
        else:
            self.image_topic = "image"
            self.create_subscription(Image, self.image_topic, self._on_image, qos["image"],
                                     event_callbacks=sub_events(self.image_topic))
        self.create_subscription(CameraInfo, "camera_info", self._on_info, qos["camera_info"],
                                 event_callbacks=sub_events("camera_info"))
        self._topic_groups = [(self.image_topic, "image"), ("camera_info", "camera_info")]
        if cfg["semantic.enabled"]:
            self.create_subscription(Image, "semantic", self._on_labels, qos["semantic"],
                                     event_callbacks=sub_events("semantic"))
            self._topic_groups.append(("semantic", "semantic"))

        self._latched = set()

        def pub(msg_type, topic, group):
            self._topic_groups.append((topic, group))
            p = self.create_publisher(msg_type, topic, qos[group], event_callbacks=pub_events(topic))
            if cfg[f"qos.{group}.durability"] == "transient_local":
                self._latched.add(p)
            return p

        self.pub_depth = pub(Image, "depth", "depth")
        self.pub_info = pub(CameraInfo, "depth/camera_info", "depth")
        self.pub_embodied = pub(Image, "depth/embodied", "depth") if cfg["publish.embodied"] else None
        self.pub_conf = pub(Image, "depth/confidence", "depth") if cfg["publish.confidence"] else None
        self.pub_colored = pub(Image, "depth/colored", "depth") if cfg["publish.colored"] else None
        self.pub_points = pub(PointCloud2, "points", "points") if cfg["publish.points"] else None
        self.pub_timing = self.create_publisher(String, "~/timing", 10)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    # ------------------------------------------------------------------------- callbacks
    def _on_image(self, msg) -> None:
        now = time.monotonic()
        self._last_image_time = now
        self.in_rate.tick(now)
        with self._lock:
            self.received += 1
        if self._slot.put((msg, now)):
            with self._lock:
                self.dropped += 1

    def _on_info(self, msg: CameraInfo) -> None:
        self._latest_info = msg

    def _on_labels(self, msg: Image) -> None:
        with self._labels_cond:
            self._labels.append((convert.stamp_to_ns(msg.header.stamp), msg))
            self._labels_cond.notify_all()

    # ---------------------------------------------------------------------------- worker
    def _work(self) -> None:
        while not self._stop.is_set():
            self._check_model_file()
            item = self._slot.take(timeout=0.2)
            if item is None:
                continue
            msg, t_recv = item
            try:
                self._process(msg, t_recv)
            except SkipFrame as skip:
                self._skip(skip.key, f"frame skipped: {skip}")
            except Exception as exc:  # keep serving: one bad frame must not stop the node
                if self._stop.is_set() or not self.context.ok():
                    # Ctrl-C / SIGTERM: rclpy shut the context under the frame in flight (before
                    # destroy_node set _stop); the publish failed because we stop, not a bad frame
                    return
                self._skip("error", f"frame skipped: processing failed: {type(exc).__name__}: {exc}")
                self.get_logger().debug(traceback.format_exc())

    # ------------------------------------------------------------------- model file watch
    def _model_files(self) -> list:
        return [self.model_path, str(sidecar_path(self.model_path))]

    def _model_signature(self) -> Optional[tuple]:
        """(mtime, size, inode) of the model and its sidecar: cheap, so only a change is hashed."""
        if not self.model_path:
            return None
        sig = []
        for path in self._model_files():
            try:
                st = os.stat(path)
                sig.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                sig.append(None)
        return tuple(sig)

    def _model_digests(self) -> tuple[str, str]:
        """SHA-256 of the model and of its sidecar ('' when there is none): the sidecar is part of
        the model (max_depth, tensor shapes, the expected hash), so a change to either is a new model.
        OSError when the model itself cannot be read."""
        model = sha256_file(self.model_path)
        try:
            sidecar = sha256_file(sidecar_path(self.model_path))
        except OSError:
            sidecar = ""
        return model, sidecar

    def _refuse_model(self, text: str) -> None:
        """The file on disk cannot serve: count it, warn, and keep /diagnostics at WARN until it is resolved."""
        self.model_refused += 1
        self.model_problem = text
        self._warn("model", text)

    def _check_model_file(self) -> None:
        """Every model_check_period (worker thread, between frames): when the model file's or its
        sidecar's content changed, load and try the new pair; swap it in only when it works, else refuse it and keep
        the model already loaded (a half-copied or corrupt file never replaces a working one)."""
        period = self.cfg["model_check_period"]
        if not self.model_path or period <= 0 or time.monotonic() < self._next_model_check:
            return
        self._next_model_check = time.monotonic() + period
        sig = self._model_signature()
        if sig == self._model_sig:
            return
        self._model_sig = sig
        try:
            digests = self._model_digests()
        except OSError as exc:
            self._refuse_model(f"model file {self.model_path} is not readable ({exc}): keeping the loaded model "
                               f"(sha256 {self.model_sha256[:12]})")
            return
        if digests == (self.model_sha256, self._sidecar_sha256):
            if self.model_problem:  # back to the files that are loaded (restored, or a refused one undone)
                self.model_problem = ""
                self.get_logger().info(f"model file {self.model_path} and its sidecar are the loaded ones again")
            return
        digest, sidecar = digests
        if digest != self.model_sha256:
            change = f"model file {self.model_path} changed (sha256 {digest[:12]})"
        else:
            change = (f"model file {self.model_path}: its sidecar {sidecar_path(self.model_path)} "
                      f"{'changed' if sidecar else 'was removed'}")
        try:
            pipeline, name, _ = self._make_pipeline(self.model_path)
            backend = pipeline.backend
            h, w = backend.input_size or (8, 8)
            depth, _conf = backend.infer(np.zeros((h, w, 3), np.uint8), np.zeros((2, h, w), np.float32))
            if depth.shape != (h, w):
                raise RuntimeError(f"output depth is {depth.shape}, expected {(h, w)}")
            if self._model_digests() != digests:
                raise RuntimeError("the files changed again while they were loaded (still being copied?)")
        except Exception as exc:  # any failure: refuse, the running model stays
            self._refuse_model(f"{change} and was refused: {type(exc).__name__}: {exc}; keeping the previous "
                               f"model (sha256 {self.model_sha256[:12]})")
            return
        old = self.pipeline
        self.pipeline, self.backend_name = pipeline, name
        self.model_sha256, self._sidecar_sha256 = digests
        self.model_problem = ""
        self.model_reloads += 1
        old.backend.close()
        self.get_logger().info(f"{change}: reloaded (sha256 {digest[:12]}, backend {name})")

    def _process(self, msg, t_recv: float) -> None:
        cfg = self.cfg
        header = msg.header
        stamp_ns = convert.stamp_to_ns(header.stamp)
        timings = {}
        t0 = time.perf_counter()
        if self._last_stamp_ns is not None and stamp_ns < self._last_stamp_ns:
            self._warn("clock", f"image stamp went back by {(self._last_stamp_ns - stamp_ns) * 1e-9:.3f} s "
                                "(a bag looped or the clock was reset): tf and label buffers cleared")
            self.pose_source.reset()
            with self._labels_cond:
                self._labels.clear()
        self._last_stamp_ns = stamp_ns

        try:
            rgb = convert.compressed_to_rgb(msg) if isinstance(msg, CompressedImage) else convert.image_to_rgb(msg)
        except convert.ConversionError as exc:
            raise SkipFrame("encoding", f"{self.image_topic}: {exc}") from None
        h, w = rgb.shape[:2]

        info = self._latest_info
        if info is None:
            raise SkipFrame("no_camera_info", f"no camera_info received yet on {self.resolve_topic_name('camera_info')} "
                                              f"(QoS {params.describe_qos(cfg, 'camera_info')}); "
                                              "is the camera driver publishing it?")
        camera = self._camera_for(info, header.frame_id)
        problem = convert.info_image_mismatch(info, w, h, header.frame_id, camera)
        if problem:
            raise SkipFrame("camera_info_mismatch", problem)
        timings["convert_ms"] = (time.perf_counter() - t0) * 1e3

        t = time.perf_counter()
        pose = self.pose_source.lookup(header.frame_id, header.stamp)
        self.pose_used = pose.source
        if pose.problem:
            self._warn("pose", pose.problem)
        timings["pose_ms"] = (time.perf_counter() - t) * 1e3

        labels = self._labels_for(stamp_ns, h, w) if cfg["semantic.enabled"] else None
        frame = Frame(rgb=rgb, camera=camera, plane=pose.plane, labels=labels,
                      stamp=stamp_ns * 1e-9, frame_id=header.frame_id)
        t = time.perf_counter()
        result = self.pipeline.process(frame)
        pipeline_ms = (time.perf_counter() - t) * 1e3
        if result.problem:  # published all NaN: downstream sees "no estimate", not stale or free road
            with self._lock:
                self.no_depth += 1
            self._frame_problem("no_depth", f"no depth: {result.problem}")
        elif result.blind_fraction > cfg["image_check.blind_warn_fraction"]:
            with self._lock:
                self.partly_blind += 1
            self._frame_problem("blind", f"camera partly blind: {result.embodied.reason}")
        elif result.embodied.reason:
            self._warn("embodied", f"embodied depth: {result.embodied.reason}")

        t = time.perf_counter()
        self._publish(header, info, camera, rgb, result)
        timings["publish_ms"] = (time.perf_counter() - t) * 1e3
        done = time.monotonic()
        latency = (done - t_recv) * 1e3
        with self._lock:
            self.processed += 1
            self.latency_ms.append(latency)
            self.pipeline_ms.append(pipeline_ms)
            self.overhead_ms.append(latency - pipeline_ms)
        self.out_rate.tick(done)
        if self.pub_timing.get_subscription_count() > 0:
            timings.update({f"pipeline.{k}": v for k, v in result.timings.items()})
            timings.update(pipeline_ms=pipeline_ms, receive_to_publish_ms=latency)
            self.pub_timing.publish(String(data=json.dumps({"stamp_ns": stamp_ns, "timings": timings})))

    def _camera_for(self, info: CameraInfo, image_frame: str):
        key = convert.camera_info_key(info) + (image_frame,)
        if key != self._camera_key:
            try:
                camera = convert.camera_model_from_info(info, frame_id=image_frame, rectified=RECTIFIED[
                    self.cfg["image_rectification"]])
            except ValueError as exc:  # CameraModelError names the field
                self._camera_key = None
                raise SkipFrame("camera_info_invalid", f"camera_info is unusable: {exc}") from None
            self._camera, self._camera_key = camera, key
        return self._camera

    def _labels_for(self, stamp_ns: int, h: int, w: int) -> Optional[np.ndarray]:
        tol = int(self.cfg["semantic.stamp_tolerance"] * 1e9)
        deadline = time.monotonic() + self.cfg["semantic.wait"]
        with self._labels_cond:
            while True:
                match = nearest_within(self._labels, stamp_ns, tol)
                remaining = deadline - time.monotonic()
                if match is not None or remaining <= 0:
                    break
                self._labels_cond.wait(remaining)
        if match is None:
            self._warn("semantic", f"no label image on {self.resolve_topic_name('semantic')} matched the image stamp "
                                   f"within {self.cfg['semantic.wait']} s: using the built-in segmenter")
            return None
        try:
            labels = convert.label_image_to_numpy(match)
        except convert.ConversionError as exc:
            self._warn("semantic", f"{exc}: using the built-in segmenter")
            return None
        if labels.shape != (h, w):
            self._warn("semantic", f"label image is {labels.shape[1]}x{labels.shape[0]} but the image is {w}x{h}: "
                                   "using the built-in segmenter")
            return None
        return labels

    def _publish(self, header, info, camera, rgb, result) -> None:
        cfg = self.cfg

        def wanted(pub) -> bool:
            # lazy: build a message only for topics someone listens to, except transient_local ones,
            # whose last message must wait for late joiners
            return pub is not None and (pub in self._latched or pub.get_subscription_count() > 0)

        if wanted(self.pub_depth):
            self.pub_depth.publish(convert.depth_to_image(result.depth, header))
        if wanted(self.pub_info):
            self.pub_info.publish(convert.camera_info_with_header(info, header))
        if wanted(self.pub_embodied):
            self.pub_embodied.publish(convert.depth_to_image(result.embodied.depth, header))
        if wanted(self.pub_conf):
            self.pub_conf.publish(convert.depth_to_image(result.confidence, header))
        if wanted(self.pub_colored):
            col = convert.colorize_depth(result.depth, cfg["colored.min_depth"], cfg["colored.max_depth"],
                                         cfg["colored.colormap"])
            self.pub_colored.publish(convert.numpy_to_image(col, "rgb8", header))
        if wanted(self.pub_points):
            self.pub_points.publish(self._cloud_builder.build(
                result.depth, camera, rgb if cfg["points.color"] else None, decimation=cfg["points.decimation"],
                max_range=cfg["points.max_range"], organised=cfg["points.organised"], header=header))

    # ----------------------------------------------------------------------------- health
    def _skip(self, key: str, text: str) -> None:
        """A frame not processed: counted by reason, remembered for the diagnostics level, warned."""
        with self._lock:
            self.skipped[key] = self.skipped.get(key, 0) + 1
        self._frame_problem(key, text)

    def _frame_problem(self, key: str, text: str) -> None:
        """A frame skipped or published with no depth: warned, and /diagnostics WARN for a while."""
        self._last_frame_problem = (time.monotonic(), text)
        self._warn(key, text)

    def _warn(self, key: str, text: str) -> None:
        """A warning throttled per problem (not per call site), remembered for diagnostics."""
        self.last_problem = text
        now = time.monotonic()
        if now - self._last_warn.get(key, -1e18) >= self.cfg["warn_throttle"]:
            self._last_warn[key] = now
            self.get_logger().warning(text)

    def _qos_warning(self, topic: str, side: str, event) -> None:
        policy = getattr(event, "last_policy_kind", "")
        try:
            from rclpy.qos import QoSPolicyKind

            policy = QoSPolicyKind(int(policy)).name
        except (ValueError, TypeError):
            pass
        self._warn(f"qos:{topic}", f"incompatible QoS on {self.resolve_topic_name(topic)}: a "
                                   f"{'publisher' if side == 'subscription' else 'subscriber'} offers/requests "
                                   f"an incompatible {policy} policy; ours is "
                                   f"{params.describe_qos(self.cfg, self._group_of(topic))}")

    def _group_of(self, topic: str) -> str:
        return next((g for t, g in self._topic_groups if t == topic), "depth")

    def _watchdog(self) -> None:
        last = self._last_image_time if self._last_image_time is not None else self._start_time
        idle = time.monotonic() - last
        if idle < self.cfg["no_image_warn_after"]:
            return
        topic = self.resolve_topic_name(self.image_topic)
        n_pub = self.count_publishers(topic)
        qos = params.describe_qos(self.cfg, "image")
        why = ("no publisher on it: check the remapping / camera namespace" if n_pub == 0 else
               f"{n_pub} publisher(s) but nothing arrives: check that their QoS is compatible "
               "(`ros2 topic info -v`) and, for large images between processes, the Fast DDS profile "
               "(FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds.xml)")
        self._warn("no_image", f"no image received on {topic} for {idle:.0f} s (QoS {qos}): {why}")

    def stats(self) -> dict:
        with self._lock:
            lat_med, lat_p95 = _percentiles(self.latency_ms)
            pipe_med, _ = _percentiles(self.pipeline_ms)
            over_med, over_p95 = _percentiles(self.overhead_ms)
            return {
                "received": self.received, "processed": self.processed, "dropped": self.dropped,
                "no_depth": self.no_depth, "partly_blind": self.partly_blind,
                "skipped": sum(self.skipped.values()), "skipped_by_reason": dict(self.skipped),
                "input_rate_hz": self.in_rate.rate(), "output_rate_hz": self.out_rate.rate(),
                "latency_ms_median": lat_med, "latency_ms_p95": lat_p95, "pipeline_ms_median": pipe_med,
                "node_overhead_ms_median": over_med, "node_overhead_ms_p95": over_p95,
            }

    def _publish_diagnostics(self) -> None:
        s = self.stats()
        status = DiagnosticStatus(name=f"{self.get_name()}: depth", hardware_id=self.get_namespace())
        now = time.monotonic()
        no_input = self._last_image_time is None or now - self._last_image_time > self.cfg["no_image_warn_after"]
        # recent problems only: one skipped frame must not leave the node at WARN for good (the
        # counters keep the history); held 3 periods, or as long as its warning is throttled.
        # A refused or missing model file stays WARN until resolved.
        hold = max(3 * self.cfg["diagnostics_period"], self.cfg["warn_throttle"])
        recent = self._last_frame_problem
        if no_input:
            status.level, status.message = DiagnosticStatus.WARN, f"no image on {self.resolve_topic_name(self.image_topic)}"
        elif recent is not None and now - recent[0] <= hold:
            status.level, status.message = DiagnosticStatus.WARN, recent[1][:200]
        elif self.model_problem:
            status.level, status.message = DiagnosticStatus.WARN, self.model_problem[:200]
        else:
            status.level, status.message = DiagnosticStatus.OK, "ok"
        values = {
            "input_rate_hz": f"{s['input_rate_hz']:.2f}", "output_rate_hz": f"{s['output_rate_hz']:.2f}",
            "latency_ms_median": f"{s['latency_ms_median']:.1f}", "latency_ms_p95": f"{s['latency_ms_p95']:.1f}",
            "pipeline_ms_median": f"{s['pipeline_ms_median']:.1f}",
            "node_overhead_ms_median": f"{s['node_overhead_ms_median']:.2f}",
            "frames_received": str(s["received"]), "frames_processed": str(s["processed"]),
            "frames_dropped": str(s["dropped"]), "frames_skipped": str(s["skipped"]),
            "frames_no_depth": str(s["no_depth"]), "frames_partly_blind": str(s["partly_blind"]),
            "skipped_by_reason": json.dumps(s["skipped_by_reason"]),
            "backend": self.backend_name, "model": self.model_path or "(none)",
            "model_sha256": self.model_sha256, "model_reloads": str(self.model_reloads),
            "model_refused": str(self.model_refused),
            "pose_source": self.pose_used, "last_problem": self.last_problem,
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(arr)

    def destroy_node(self):
        self._stop.set()
        self._slot.wake()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(timeout=5.0)
        return super().destroy_node()


def _check_params_files(argv: list) -> None:
    """rcl reports a params file it cannot read as a traceback out of rclpy.init: check each
    ``--params-file`` first, naming the file and what is wrong with it."""
    for flag, path in zip(argv, argv[1:]):
        if flag == "--params-file" and not params.load_params_file(path):
            print(f"[{NODE_NAME}] note: params file {path} is empty; every parameter keeps its default",
                  file=sys.stderr, flush=True)


def main(args=None) -> int:
    try:
        _check_params_files(list(sys.argv if args is None else args))
        rclpy.init(args=args)
    except Exception as exc:  # ours (ParameterError), or rcl's for an unparsable -p NAME or params file
        text = str(exc).splitlines()[0] if str(exc) else repr(exc)
        print(f"[{NODE_NAME}] cannot start: {text}", file=sys.stderr, flush=True)
        return 2
    node = None
    code = 0
    try:
        node = EdepthNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (params.ParameterError, ValueError, RuntimeError, FileNotFoundError) as exc:
        if not rclpy.ok():
            # Ctrl-C / SIGTERM shut the context while spin set up its wait set (an RCLError): a stop
            return code
        # bad parameters, backend or model: say which, exit non-zero (launch shows it)
        print(f"[{NODE_NAME}] cannot start: {exc}", file=sys.stderr, flush=True)
        code = 2
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
