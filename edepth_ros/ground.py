"""The ground plane in the camera optical frame: {X : n . X + h = 0}.

n is the unit normal pointing up (away from the road, towards the camera side), h > 0 the camera's
height above the plane; a level camera has n = (0, -1, 0). Planes come from a tf transform, from
static mounting parameters, or from a robust fit to 3D points (LiDAR ground returns, or the
network's own road depth), and a `PlaneTracker` smooths fitted planes over time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .described import described

LEVEL_NORMAL = np.array([0.0, -1.0, 0.0])


def _finite_number(value) -> bool:
    """A real, finite number (a bool, a string, NaN and inf are not): every limit, pose and setting here."""
    return (not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
            and math.isfinite(value))

# optical frame axes expressed in a body frame x forward, y left, z up (REP 103): the columns
# are optical x (right), y (down), z (forward)
_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


class GroundPoseError(ValueError):
    """The ground pose is impossible or outside the configured limits; the message says why."""


def _numbers(value, what: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GroundPoseError(f"{what}: not numeric ({exc})") from None


@dataclass(frozen=True)
class PoseLimits:
    """Sanity limits on the camera pose relative to the ground.

    max_tilt: largest angle (radians) between the plane normal and the level normal (0, -1, 0),
    i.e. the combined pitch and roll of the camera against the road.
    """

    min_height: float = 0.05
    max_height: float = 10.0
    max_tilt: float = math.radians(35.0)

    def __post_init__(self):
        # a NaN limit compares False with everything, which would switch its check off
        for name in ("min_height", "max_height", "max_tilt"):
            value = getattr(self, name)
            if not _finite_number(value):
                raise GroundPoseError(f"PoseLimits.{name}: {value!r}; expected a finite number")
        if not 0 <= self.min_height < self.max_height:
            raise GroundPoseError(f"PoseLimits: min_height {self.min_height} m and max_height {self.max_height} m; "
                                  "need 0 <= min_height < max_height")
        if not 0 < self.max_tilt <= math.pi / 2:
            raise GroundPoseError(f"PoseLimits.max_tilt: {self.max_tilt!r} rad; expected an angle in (0, pi/2]")

    def check(self, plane: "GroundPlane", source: str = "ground plane") -> "GroundPlane":
        if plane.height < self.min_height:
            raise GroundPoseError(
                f"{source}: camera height {plane.height:.3f} m is below the minimum {self.min_height} m; "
                "check the ground frame -> camera transform (is the camera above the road?)"
            )
        if plane.height > self.max_height:
            raise GroundPoseError(
                f"{source}: camera height {plane.height:.3f} m is above the maximum {self.max_height} m; "
                "check the transform's units and the ground frame"
            )
        tilt = plane.tilt
        if tilt > self.max_tilt:
            raise GroundPoseError(
                f"{source}: the camera is tilted {math.degrees(tilt):.1f} deg against the road "
                f"(limit {math.degrees(self.max_tilt):.1f} deg); check the transform's rotation, or "
                "raise max_tilt for a camera mounted looking steeply down"
            )
        return plane


@dataclass(frozen=True)
class GroundPlane:
    """Ground plane {X : normal . X + height = 0} in a camera optical frame."""

    normal: np.ndarray
    height: float

    def __post_init__(self):
        n = _numbers(self.normal, "GroundPlane.normal").reshape(-1)
        if n.shape != (3,) or not np.all(np.abs(n) < 1e150):  # |n| must not overflow
            raise GroundPoseError(f"GroundPlane.normal: {self.normal!r}; expected 3 finite numbers")
        norm = float(np.linalg.norm(n))
        if norm < 1e-9:
            raise GroundPoseError("GroundPlane.normal: zero vector; the plane has no orientation")
        h = _numbers(self.height, "GroundPlane.height")
        if h.shape != () or not math.isfinite(float(h)):
            raise GroundPoseError(f"GroundPlane.height: {self.height!r}; expected a finite number")
        h = float(h)
        # n . X + h = 0 scaled by 1/|n|: a non-unit normal scales the height too
        n = n / norm
        h = h / norm
        if h <= 0:
            raise GroundPoseError(
                f"GroundPlane.height: {h:.3f} m; the camera is on or below the road plane (height must "
                "be > 0 with the normal pointing up towards the camera)"
            )
        n.setflags(write=False)
        object.__setattr__(self, "normal", n)
        object.__setattr__(self, "height", h)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_transform(cls, T_cam_from_ground, limits: Optional[PoseLimits] = PoseLimits()) -> "GroundPlane":
        """From the 4x4 transform with X_cam = T @ X_ground (tf's ground_frame -> camera_optical_frame).

        The ground frame has z up and its z = 0 plane on the road (REP 105 base_footprint).
        """
        T = _numbers(T_cam_from_ground, "T_cam_from_ground")
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise GroundPoseError(f"T_cam_from_ground: expected a finite 4x4 matrix, got shape {T.shape}")
        if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):  # a projective T is no rigid pose
            raise GroundPoseError(f"T_cam_from_ground: bottom row {T[3].tolist()}, expected [0, 0, 0, 1]; "
                                  "pass a homogeneous rigid transform")
        R, t = T[:3, :3], T[:3, 3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0:
            raise GroundPoseError("T_cam_from_ground: the rotation block is not a rotation matrix")
        n = R[:, 2]
        h = -float(n @ t)
        if h <= 0:
            raise GroundPoseError(
                f"T_cam_from_ground: puts the camera {h:.3f} m above the ground frame's z = 0 plane; "
                "the camera must be above the road (is the transform inverted, or the ground frame wrong?)"
            )
        plane = cls(n, h)
        return limits.check(plane, "T_cam_from_ground") if limits else plane

    @staticmethod
    def transform_from_static(height: float, pitch: float = 0.0, roll: float = 0.0,
                              yaw: float = 0.0) -> np.ndarray:
        """T_cam_from_ground for a camera `height` m above the road looking along ground x.

        pitch > 0 tilts the camera down, roll > 0 lowers its right side, yaw > 0 turns it left
        (REP 103 angles of the camera body x forward, y left, z up; radians).
        """
        cr, sr = math.cos(roll), math.sin(roll)
        cp, sp = math.cos(pitch), math.sin(pitch)
        cy, sy = math.cos(yaw), math.sin(yaw)
        Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
        Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
        Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
        R_ground_from_cam = Rz @ Ry @ Rx @ _BODY_FROM_OPTICAL
        C = np.array([0.0, 0.0, float(height)])
        T = np.eye(4)
        T[:3, :3] = R_ground_from_cam.T
        T[:3, 3] = -R_ground_from_cam.T @ C
        return T

    @classmethod
    def from_static(cls, height: float, pitch: float = 0.0, roll: float = 0.0, yaw: float = 0.0,
                    limits: Optional[PoseLimits] = PoseLimits()) -> "GroundPlane":
        """From static mounting parameters (metres, radians; see `transform_from_static`)."""
        for name, v in (("height", height), ("pitch", pitch), ("roll", roll), ("yaw", yaw)):
            if not _finite_number(v):
                raise GroundPoseError(f"static ground pose: {name} is {v!r}; expected a finite number "
                                      "(metres or radians)")
        if height <= 0:
            raise GroundPoseError(
                f"static ground pose: height {height} m; the camera must be above the road (height > 0)"
            )
        T = cls.transform_from_static(height, pitch, roll, yaw)
        plane = cls(T[:3, :3][:, 2], -float(T[:3, :3][:, 2] @ T[:3, 3]))
        return limits.check(plane, "static ground pose") if limits else plane

    @classmethod
    def fit(cls, points_cam, threshold: float = 0.08, iterations: int = 200,
            prior: Optional["GroundPlane"] = None, max_angle: float = math.radians(20.0),
            min_inliers: int = 30, seed: int = 0, limits: Optional[PoseLimits] = PoseLimits(),
            return_inliers: bool = False):
        """Robust plane fit: RANSAC on 3-point samples, then least squares on the inliers.

        points_cam: (N, 3) candidate ground points in the camera frame. Hypotheses whose normal is
        more than `max_angle` from `prior`'s (level by default) are discarded, so a wall or a car
        side cannot win. Returns the plane (and the inlier mask if `return_inliers`).
        """
        pts = _numbers(points_cam, "GroundPlane.fit points")
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise GroundPoseError(f"GroundPlane.fit: points of shape {pts.shape}; expected (N, 3) in the camera frame")
        if not (threshold > 0 and math.isfinite(threshold)) or int(iterations) < 1:
            raise GroundPoseError(f"GroundPlane.fit: threshold {threshold!r} m and iterations {iterations!r}; "
                                  "need a finite threshold > 0 and at least 1 iteration")
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        if len(pts) < max(3, min_inliers):
            raise GroundPoseError(
                f"GroundPlane.fit: {len(pts)} finite points, need at least {max(3, min_inliers)} "
                "ground points to fit a plane"
            )
        ref = LEVEL_NORMAL if prior is None else prior.normal
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(pts), size=(iterations, 3))
        a, b, c = pts[idx[:, 0]], pts[idx[:, 1]], pts[idx[:, 2]]
        normals = np.cross(b - a, c - a)
        norms = np.linalg.norm(normals, axis=1)
        ok = norms > 1e-9
        normals[ok] /= norms[ok, None]
        normals *= np.where(normals @ ref < 0, -1.0, 1.0)[:, None]  # orient towards the prior
        ok &= normals @ ref >= math.cos(max_angle)
        if not ok.any():
            raise GroundPoseError(
                "GroundPlane.fit: no plane hypothesis within max_angle of the expected ground "
                "orientation; the points are not ground (or the prior is wrong)"
            )
        normals, a = normals[ok], a[ok]
        offsets = -np.einsum("ij,ij->i", normals, a)
        # score on a subsample: enough to rank hypotheses, cheap for 100k LiDAR points
        sub = pts if len(pts) <= 4000 else pts[rng.choice(len(pts), 4000, replace=False)]
        dist = np.abs(sub @ normals.T + offsets[None, :])
        best = int(np.argmax((dist < threshold).sum(axis=0)))
        n, d = normals[best], offsets[best]
        # least-squares refinement on the inliers (SVD of centred points) until the inlier set
        # stops changing: a hypothesis from three nearby points can be tilted enough that its band
        # takes in far clutter, which a fixed few rounds do not always shed
        inliers = np.abs(pts @ n + d) < threshold
        for _ in range(20):
            if inliers.sum() < max(3, min_inliers):
                raise GroundPoseError(
                    f"GroundPlane.fit: only {int(inliers.sum())} points within {threshold} m of the best "
                    f"plane (need {min_inliers}); too few ground points or too much clutter"
                )
            P = pts[inliers]
            centroid = P.mean(axis=0)
            _, _, vt = np.linalg.svd(P - centroid, full_matrices=False)
            n_new = vt[2] * (1.0 if vt[2] @ ref >= 0 else -1.0)
            n, d = n_new, -float(n_new @ centroid)
            new_inliers = np.abs(pts @ n + d) < threshold
            if np.array_equal(new_inliers, inliers):
                break
            inliers = new_inliers
        if d <= 0:
            raise GroundPoseError(
                f"GroundPlane.fit: the fitted plane passes {d:.3f} m above the camera; the points are "
                "not the ground below the camera"
            )
        plane = cls(n, d)
        if limits:
            limits.check(plane, "fitted ground plane")
        return (plane, inliers) if return_inliers else plane

    # ------------------------------------------------------------------ queries
    @property
    def tilt(self) -> float:
        """Angle (radians) between the normal and the level normal (0, -1, 0)."""
        return float(math.acos(max(-1.0, min(1.0, -float(self.normal[1])))))

    @property
    def pitch(self) -> float:
        """Camera pitch against the road, radians, > 0 looking down (as in `from_static`)."""
        return float(math.asin(max(-1.0, min(1.0, -self.normal[2]))))

    @property
    def roll(self) -> float:
        """Camera roll against the road, radians, > 0 with the right side down (as in `from_static`)."""
        return float(math.atan2(-self.normal[0], -self.normal[1]))

    def distance(self, points_cam) -> np.ndarray:
        """Signed distance of (N, 3) points above the plane (positive on the camera's side)."""
        return np.asarray(points_cam, dtype=np.float64) @ self.normal + self.height

    def rotated(self, R) -> "GroundPlane":
        """The same plane in a frame rotated by R (X' = R X), e.g. a stereo rectified frame."""
        return GroundPlane(np.asarray(R, dtype=np.float64) @ self.normal, self.height)

    def key(self) -> tuple:
        return (self.normal.tobytes(), self.height)

    def __eq__(self, other) -> bool:
        return isinstance(other, GroundPlane) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return (f"GroundPlane(normal=({self.normal[0]:.5f}, {self.normal[1]:.5f}, {self.normal[2]:.5f}), "
                f"height={self.height:.4f} m, pitch={math.degrees(self.pitch):.2f} deg, "
                f"roll={math.degrees(self.roll):.2f} deg)")


@dataclass
class PlaneTracker:
    """Smooths per-frame plane fits over time, rejecting implausible jumps.

    update(fit, stamp): fit may be None (no fit this frame). A fit further than max_angle_jump /
    max_height_jump from the current estimate is an outlier; `confirm_frames` consecutive outliers
    that agree with each other re-initialise (the mounting really changed). Without fits for
    `timeout` seconds the estimate relaxes back to `prior` (the static mounting) if one is given,
    with time constant `relax_tau` seconds (the same at any frame rate). Smoothing is exponential
    with weight `alpha` for each new fit. A stamp before the last one (a bag looped, the clock
    reset) starts again from the prior.
    """

    prior: Optional[GroundPlane] = None
    alpha: float = 0.3
    max_angle_jump: float = math.radians(4.0)
    max_height_jump: float = 0.25
    confirm_frames: int = 5
    timeout: float = 2.0
    relax_tau: float = 1.0
    limits: Optional[PoseLimits] = field(default_factory=PoseLimits)
    _plane: Optional[GroundPlane] = field(default=None, init=False, repr=False)
    _last_fit_stamp: Optional[float] = field(default=None, init=False, repr=False)
    _last_stamp: Optional[float] = field(default=None, init=False, repr=False)
    _outliers: list = field(default_factory=list, init=False, repr=False)  # the last confirm_frames at most

    def __post_init__(self):
        # a NaN gate compares False with every jump (a wild fit adopted at once), and confirm_frames
        # below 1 confirmed any fit after one frame: both switched the outlier rejection off
        def number(name: str, ok, need: str) -> None:
            v = getattr(self, name)
            if not _finite_number(v) or not ok(v):
                raise ValueError(f"PlaneTracker.{name}: {v!r}; must be {need}")

        number("alpha", lambda v: 0.0 < v <= 1.0, "in (0, 1]")
        number("relax_tau", lambda v: v > 0, "a number of seconds > 0")
        number("max_angle_jump", lambda v: 0 < v <= math.pi, "an angle in (0, pi] radians")
        number("max_height_jump", lambda v: v > 0, "a number of metres > 0")
        number("timeout", lambda v: v >= 0, "a number of seconds >= 0")
        c = self.confirm_frames
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1:
            raise ValueError(f"PlaneTracker.confirm_frames: {c!r}; must be a whole number of frames >= 1")
        if self.prior is not None and not isinstance(self.prior, GroundPlane):
            raise ValueError(f"PlaneTracker.prior: {described(self.prior)}; expected a GroundPlane or None")
        self._plane = self.prior

    @property
    def plane(self) -> Optional[GroundPlane]:
        return self._plane

    def reset(self) -> None:
        self._plane, self._last_fit_stamp, self._last_stamp, self._outliers = self.prior, None, None, []

    @staticmethod
    def _differs(a: GroundPlane, b: GroundPlane) -> tuple[float, float]:
        angle = math.acos(max(-1.0, min(1.0, float(a.normal @ b.normal))))
        return angle, abs(a.height - b.height)

    def _blend(self, current: GroundPlane, new: GroundPlane, w: float) -> GroundPlane:
        n = (1 - w) * current.normal + w * new.normal
        n /= np.linalg.norm(n)
        return GroundPlane(n, (1 - w) * current.height + w * new.height)

    def update(self, fit: Optional[GroundPlane], stamp: float) -> Optional[GroundPlane]:
        if not _finite_number(stamp):  # a NaN stamp would poison every later interval
            raise ValueError(f"PlaneTracker.update: stamp {stamp!r}; expected a finite time in seconds")
        if fit is not None and not isinstance(fit, GroundPlane):
            raise ValueError(f"PlaneTracker.update: fit is {described(fit)}; expected a GroundPlane or None")
        if self._last_stamp is not None and stamp < self._last_stamp:
            self.reset()  # time went back: what was tracked belongs to another run
        dt = 0.0 if self._last_stamp is None else stamp - self._last_stamp
        self._last_stamp = stamp
        if fit is not None and self.limits is not None:
            try:
                self.limits.check(fit)
            except GroundPoseError:
                fit = None
        if fit is None:
            if (self.prior is not None and self._plane is not None and self._last_fit_stamp is not None
                    and stamp - self._last_fit_stamp > self.timeout):
                self._plane = self._blend(self._plane, self.prior, 1.0 - math.exp(-dt / self.relax_tau))
            return self._plane
        if self._plane is None:
            self._plane, self._last_fit_stamp = fit, stamp
            return self._plane
        angle, dh = self._differs(self._plane, fit)
        if angle > self.max_angle_jump or dh > self.max_height_jump:
            self._outliers = self._outliers[-(self.confirm_frames - 1):] if self.confirm_frames > 1 else []
            self._outliers.append(fit)
            recent = self._outliers
            if len(recent) >= self.confirm_frames and all(
                    a <= self.max_angle_jump and h <= self.max_height_jump
                    for a, h in (self._differs(recent[-1], p) for p in recent)):
                self._plane, self._outliers = recent[-1], []
                self._last_fit_stamp = stamp
            return self._plane
        self._outliers = []
        self._plane = self._blend(self._plane, fit, self.alpha)
        self._last_fit_stamp = stamp
        return self._plane
