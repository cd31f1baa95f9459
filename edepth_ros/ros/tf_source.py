"""Where the ground plane of each image comes from: tf (tf2_ros) where installed, else static
mounting parameters.

The tf adapter is thin: a tf2_ros ``Buffer`` + ``TransformListener`` and one
``lookup_transform(image frame, ground frame, image stamp, timeout)``; the transform becomes
``GroundPlane.from_transform``. tf2 interpolates but never extrapolates: an image newer than the
newest transform (tf slower than the camera) takes the newest one when it is within ``tf_max_age``.
A missing, stale or impossible transform falls back to the static pose and says why, so the node
keeps producing depth. Both sources hold their poses to the ``pose.*`` limits. tf2_ros is imported
only when tf is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..ground import GroundPlane, GroundPoseError, PoseLimits
from .convert import stamp_to_ns
from .params import pose_limits


@dataclass
class PoseLookup:
    """The plane for one image, where it came from ('tf' or 'static'), and the problem if the
    preferred source failed (None when all went well)."""

    plane: GroundPlane
    source: str
    problem: Optional[str] = None


def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    q = np.array([w, x, y, z], np.float64)
    n = float(q @ q)
    if not np.isfinite(n) or n < 1e-12:
        raise GroundPoseError(f"transform rotation: quaternion ({x}, {y}, {z}, {w}) is not a rotation")
    w, x, y, z = q / np.sqrt(n)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def transform_to_matrix(transform) -> np.ndarray:
    """4x4 from a geometry_msgs/Transform (duck-typed: .translation.x.., .rotation.x..w)."""
    t, r = transform.translation, transform.rotation
    T = np.eye(4)
    T[:3, :3] = quaternion_matrix(r.x, r.y, r.z, r.w)
    T[:3, 3] = (t.x, t.y, t.z)
    return T


class StaticPose:
    """The ground plane from static mounting parameters (height m, pitch and roll radians)."""

    source = "static"  # preferred source; PoseLookup.source says what each frame got

    def __init__(self, height: float, pitch: float = 0.0, roll: float = 0.0, limits: PoseLimits = PoseLimits()):
        self.limits = limits
        self.plane = GroundPlane.from_static(height, pitch, roll, limits=limits)

    def lookup(self, frame_id: str, stamp) -> PoseLookup:
        return PoseLookup(self.plane, "static")

    def reset(self) -> None:
        pass


class TfPose:
    """ground_frame -> image frame from tf at the image stamp, with a timeout and a staleness limit."""

    source = "tf"  # preferred source, with a static fallback per frame: PoseLookup.source says which

    def __init__(self, node, ground_frame: str, timeout: float, max_age: float, fallback: StaticPose,
                 buffer=None, errors: tuple = ()):
        """buffer: a tf2_ros.Buffer (made here, with its TransformListener, when None); errors: the
        exceptions a failed lookup raises (tf2_ros.TransformException when the buffer is made here)."""
        from rclpy.duration import Duration

        self.ground_frame = ground_frame
        self.timeout = Duration(seconds=float(timeout))
        self.max_age_ns = int(float(max_age) * 1e9)
        self.fallback = fallback
        if buffer is None:
            import tf2_ros  # ImportError tells make_pose_source to use the static pose

            buffer = tf2_ros.Buffer(node=node)
            self._listener = tf2_ros.TransformListener(buffer, node, spin_thread=True)
            errors = (tf2_ros.TransformException,)
        self.buffer = buffer
        self._errors = tuple(errors) or (Exception,)

    def lookup(self, frame_id: str, stamp) -> PoseLookup:
        from rclpy.time import Time

        if not frame_id:
            return PoseLookup(self.fallback.plane, "static", "the image has no header.frame_id: cannot look up tf")
        try:
            tf = self.buffer.lookup_transform(frame_id, self.ground_frame, Time.from_msg(stamp), timeout=self.timeout)
        except self._errors as exc:
            # tf2 raises for a stamp past its newest sample (a 10 Hz tf, an image 30 ms after it):
            # the newest transform (Time() = latest) is the pose to use if tf_max_age allows it
            try:
                tf = self.buffer.lookup_transform(frame_id, self.ground_frame, Time())
            except self._errors:
                return PoseLookup(self.fallback.plane, "static",
                                  f"no transform {self.ground_frame} -> {frame_id} at the image stamp "
                                  f"({type(exc).__name__}: {exc}); using the static pose parameters")
        tf_ns = stamp_to_ns(tf.header.stamp)
        age_ns = stamp_to_ns(stamp) - tf_ns
        if tf_ns != 0 and abs(age_ns) > self.max_age_ns:  # stamp 0: a static transform, never stale
            return PoseLookup(self.fallback.plane, "static",
                              f"transform {self.ground_frame} -> {frame_id} is {abs(age_ns) * 1e-9:.2f} s "
                              f"{'older' if age_ns > 0 else 'newer'} than the image (tf_max_age "
                              f"{self.max_age_ns * 1e-9:g} s); using the static pose")
        try:
            plane = GroundPlane.from_transform(transform_to_matrix(tf.transform), limits=self.fallback.limits)
        except GroundPoseError as exc:
            return PoseLookup(self.fallback.plane, "static", f"tf {self.ground_frame} -> {frame_id}: {exc} "
                              "(limits: parameters pose.max_height, pose.max_tilt)")
        return PoseLookup(plane, "tf")

    def reset(self) -> None:
        """Forget buffered transforms (the clock jumped back: a bag looped)."""
        self.buffer.clear()


def make_pose_source(node, cfg: dict):
    """(source, note): TfPose when cfg['use_tf'] and tf2_ros imports, else StaticPose; the note
    says which and why, for the start-up log."""
    static = StaticPose(cfg["camera_height"], cfg["camera_pitch"], cfg["camera_roll"], pose_limits(cfg))
    desc = (f"static pose: height {cfg['camera_height']} m, pitch {cfg['camera_pitch']} rad, "
            f"roll {cfg['camera_roll']} rad")
    if not cfg["use_tf"]:
        return static, f"use_tf is false: {desc}"
    try:
        src = TfPose(node, cfg["ground_frame"], cfg["tf_timeout"], cfg["tf_max_age"], static)
    except ImportError as exc:
        return static, f"tf2_ros is not installed ({exc}): {desc}"
    return src, (f"tf: {cfg['ground_frame']} -> image frame at each image stamp (timeout {cfg['tf_timeout']} s, "
                 f"max age {cfg['tf_max_age']} s); fallback {desc}")
