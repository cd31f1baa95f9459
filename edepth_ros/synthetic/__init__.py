"""Synthetic driving scenes, ray-cast exactly: RGB, depth, labels, camera pose and LiDAR.

`SceneGenerator(seed)` renders frames of a vehicle driving down a straight street: a road plane
with lane markings, raised sidewalks with curbs, terrain, two rows of buildings, cars (boxes),
poles and signs, pedestrians, trees (cylinder trunk + ellipsoid crown), sky. Every pixel's ray is intersected
analytically with every primitive that can cover it (vectorised numpy, culled by each
primitive's projected bounding box), so depth, labels and the ground plane are exact, not
estimated. The vehicle speeds up and brakes (pitch), weaves in its lane (roll, yaw) and rides
over a rough road (heave); the camera height and mounting angles vary by seed.

Deterministic by seed: the same (seed, index, size) gives identical arrays on every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .. import labels as L
from . import raycast, shading
from . import world as W
from .motion import R_BODY_FROM_OPTICAL, CameraPose, Motion, ground_from_camera, rot_z

__all__ = ["SceneGenerator", "SyntheticFrame", "SyntheticSequence", "CameraPose", "SyntheticError",
           "KITTI_INTRINSICS"]

# KITTI's rectified camera 2 (2011_09_26 P_rect_02) at 1242 x 375
KITTI_INTRINSICS = {"fx": 721.5377, "fy": 721.5377, "cx": 609.5593, "cy": 172.854,
                    "width": 1242, "height": 375}

VIEW_AHEAD = 250.0   # metres of world rendered ahead of the camera (beyond: road, terrain, sky)
VIEW_BEHIND = 30.0
LIDAR_RANGE = 120.0
SEED_MAX = 2 ** 32 - 1  # scene seeds are 32-bit (world._rng)
FPS_RANGE = (0.1, 1000.0)  # Hz: beyond it the drive is one pose (inf) or hours between frames
# frames are indexed over 2 h of driving (< 131 km at the top speed of 18 m/s): farther, float32
# shading of world positions loses centimetres, and past ~1e15 frames the float64 poses stop moving
MAX_DRIVE_S = 7200.0


class SyntheticError(ValueError):
    """Bad arguments to the scene generator; the message names the argument."""


@dataclass
class SyntheticFrame:
    """One rendered frame with its exact ground truth.

    rgb: uint8 (H, W, 3). depth: float32 (H, W) metres along the optical axis (a stereo-rectified
    camera's: along its rectified axis, the rays' z), +inf where the ray escapes to the sky
    (REP 118 "too far"). labels: uint8 (H, W) Cityscapes train ids.
    camera: the CameraModel. plane: GroundPlane of the road (z = 0) in the camera frame.
    T_cam_from_ground: 4x4, the base_footprint frame under the camera (x along the heading,
    z up) into the camera optical frame. lidar_points_cam: float32 (N, 3) exact LiDAR returns
    in the camera frame (64 beams by default), lidar_labels their train ids. stamp: seconds.
    pose: the CameraPose (world x, y, yaw; height, pitch, roll against the road).
    """

    rgb: np.ndarray
    depth: np.ndarray
    labels: np.ndarray
    camera: object
    plane: object
    T_cam_from_ground: np.ndarray
    lidar_points_cam: np.ndarray
    stamp: float
    lidar_labels: Optional[np.ndarray] = None
    index: int = 0
    pose: Optional[CameraPose] = None


class SyntheticSequence:
    """A lazy sequence of frames: len(), indexing and iteration render on demand."""

    def __init__(self, generator: "SceneGenerator", n: int, start: int = 0):
        self.generator, self.n, self.start = generator, n, start  # checked by SceneGenerator.sequence

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> SyntheticFrame:
        if not -self.n <= i < self.n:
            raise IndexError(f"frame {i} of a {self.n}-frame sequence")
        return self.generator.frame(self.start + (i % self.n))

    def __iter__(self):
        for i in range(self.n):
            yield self.generator.frame(self.start + i)


def _real(value, name: str, lo: float, hi: float, expected: str) -> float:
    """A finite number in lo..hi (a string, a list or a complex is refused here, naming `name`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not lo <= float(value) <= hi:
        raise SyntheticError(f"SceneGenerator{name}: {value!r}; expected {expected}")
    return float(value)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise SyntheticError(f"SceneGenerator {name}: {value!r}; expected a positive integer")
    return int(value)


class SceneGenerator:
    """Renders deterministic synthetic driving frames.

    seed: 0..2**32-1 (the whole world and the motion follow from it). width/height: image size
    with KITTI's intrinsics scaled to it, used when `camera` is None; a given `camera`
    (edepth_ros.camera.CameraModel, any intrinsics, distortion included) sets the size itself.
    fps: frame rate of sequences (0.1-1000 Hz). curb_height: metres (default: random 0.10-0.15 by seed;
    0 gives flush sidewalks, every ground pixel on the road plane). lidar_rows: LiDAR beams.
    Frame indices run 0..max_index (MAX_DRIVE_S of driving at fps).
    """

    def __init__(self, seed: int, width: int = 1242, height: int = 375, camera=None, *,
                 fps: float = 10.0, curb_height: Optional[float] = None, lidar_rows: int = 64):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise SyntheticError(f"SceneGenerator seed: {seed!r}; expected an integer")
        if not 0 <= seed <= SEED_MAX:  # the generator's streams take 32 bits: others would repeat a scene
            raise SyntheticError(f"SceneGenerator seed: {seed}; expected 0..{SEED_MAX} (2**32 - 1)")
        if curb_height is not None:
            _real(curb_height, " curb_height", 0.0, 0.3, "a number of metres, 0..0.3")
        if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) \
                or not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
            raise SyntheticError(f"SceneGenerator fps: {fps!r}; expected a frame rate of "
                                 f"{FPS_RANGE[0]:g}..{FPS_RANGE[1]:g} Hz")
        self.seed = int(seed)
        if camera is None:
            from ..camera import CameraModel

            width, height = _positive_int(width, "width"), _positive_int(height, "height")
            sx, sy = width / KITTI_INTRINSICS["width"], height / KITTI_INTRINSICS["height"]
            camera = CameraModel.from_intrinsics(
                KITTI_INTRINSICS["fx"] * sx, KITTI_INTRINSICS["fy"] * sy,
                (KITTI_INTRINSICS["cx"] + 0.5) * sx - 0.5, (KITTI_INTRINSICS["cy"] + 0.5) * sy - 0.5,
                width, height)
        elif not hasattr(camera, "rays"):
            raise SyntheticError(f"SceneGenerator camera: {type(camera).__name__} is not a CameraModel")
        self.camera = camera
        self.width, self.height = camera.width, camera.height
        self.fps = float(fps)
        self.lidar_rows = _positive_int(lidar_rows, "lidar_rows")
        self.cull = True  # test each primitive only in its projected bounding box (False: everywhere)
        self.layout = W.make_layout(self.seed, curb_height)
        self.world = W.World(self.seed, self.layout)
        self.motion = Motion(W._rng(self.seed, 5), self.layout.lane_center(self.layout.ego_lane), self.fps)
        r = W._rng(self.seed, 6)
        self.texture = shading.noise_texture(r)
        el, az = np.deg2rad(r.uniform(25, 65)), r.uniform(0, 2 * np.pi)
        self.sun = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], np.float32)
        self.sky_top = np.array([r.uniform(50, 90), r.uniform(110, 150), r.uniform(190, 235)], np.float32)
        self.sky_horizon = np.array([r.uniform(180, 215), r.uniform(200, 225), r.uniform(220, 245)], np.float32)
        # a car ahead in the ego lane, its gap changing as the traffic flows
        self.lead = None
        if r.random() < 0.75:
            self.lead = {"gap": r.uniform(12, 35), "swing": r.uniform(0, 6), "w": 2 * np.pi / r.uniform(8, 20),
                         "p": r.uniform(0, 2 * np.pi), "rng_key": int(r.integers(1 << 30))}

    # ----------------------------------------------------------------- poses
    @property
    def max_index(self) -> int:
        """The last frame index: MAX_DRIVE_S of driving at this generator's fps."""
        return int(MAX_DRIVE_S * self.fps)

    def _index(self, index, name: str) -> int:
        """The check shared by frame(), pose() and sequence(): an integer 0..max_index."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index <= self.max_index:
            raise SyntheticError(f"SceneGenerator.{name}: {index!r}; expected an integer 0..{self.max_index} "
                                 f"({MAX_DRIVE_S / 3600:g} h of driving at {self.fps:g} Hz; farther, positions lose "
                                 "precision)")
        return int(index)

    def pose(self, index: int) -> CameraPose:
        return self.motion.pose(self._index(index, "pose index"))

    def sequence(self, n: int, start: int = 0) -> SyntheticSequence:
        start = self._index(start, "sequence start")
        n = _positive_int(n, "sequence n")
        if n > self.max_index - start + 1:
            raise SyntheticError(f"SceneGenerator.sequence n: {n}; from start {start} at most "
                                 f"{self.max_index - start + 1} frames (the last index is {self.max_index})")
        return SyntheticSequence(self, n, start)

    # ----------------------------------------------------------------- rendering
    def frame(self, index: int = 0, *, height: Optional[float] = None, pitch: Optional[float] = None,
              roll: Optional[float] = None, lidar: bool = True) -> SyntheticFrame:
        """Frame `index` of this seed's sequence. height (m), pitch, roll (radians; positive
        pitch tilts the camera down, positive roll raises its left side) override the pose's."""
        index = self._index(index, "frame index")
        pose = self.pose(index)
        over = {}
        if height is not None:
            over["height"] = _real(height, ".frame height", 0.2, 10.0, "a number of metres, 0.2..10")
        for name, val in (("pitch", pitch), ("roll", roll)):
            if val is not None:
                over[name] = _real(val, f".frame {name}", -np.deg2rad(30), np.deg2rad(30),
                                    f"a number of radians, |{name}| <= 30 deg (0.5236)")
        if over:
            pose = CameraPose(**{**pose.__dict__, **over})
        self._check_tilt(pose)

        T_g_c = ground_from_camera(pose)
        R_wc = rot_z(pose.yaw) @ T_g_c[:3, :3]
        C = np.array([pose.x, pose.y, pose.height])
        prims = self._primitives(pose, index)

        rays = np.asarray(self.camera.rays(), np.float64)
        # a stereo-rectified camera's rays are in its rectified frame (rect_from_optical = R): the
        # world sees them as R^T r; the pose, plane and LiDAR stay in the optical frame
        R_ro = self._rect_from_optical()
        R_wr = R_wc if R_ro is None else R_wc @ R_ro.T  # world from the rays' frame
        dirs = rays @ R_wr.T
        full = (0, self.height, 0, self.width)
        rect_of = (lambda p: self._rect(p, C, R_wr)) if self.cull else (lambda p: full)
        t, pid, normal = self._cast(C, dirs, prims, rect_of)

        sky = pid < 0
        lab_table = np.array([p.label for p in prims] + [L.SKY], np.uint8)
        labels = lab_table[pid]  # pid -1 picks the sky entry
        hit_p = C + dirs * np.where(sky, 0.0, t)[..., None]
        mat_table = np.array([p.material for p in prims], np.int16)
        self._label_ground(labels, hit_p, normal, mat_table[np.maximum(pid, 0)], sky)

        win = np.array([p.params.get("window", (1.0, 0.0, 1.0)) for p in prims], np.float32)
        color = np.array([p.color for p in prims], np.float32)
        noise_rng = W._rng(self.seed, 4, int(index))
        rgb = shading.shade(hit_p.reshape(-1, 3), normal.reshape(-1, 3), mat_table, color, win,
                            pid.reshape(-1), sky.reshape(-1), dirs.reshape(-1, 3), t.reshape(-1),
                            self.texture, self.layout, self.sun, self.sky_top, self.sky_horizon,
                            noise_rng).reshape(self.height, self.width, 3)

        depth = np.where(sky, np.inf, t).astype(np.float32)
        T_c_g = np.linalg.inv(T_g_c)
        if lidar:
            pts, plab = self._lidar(pose, prims, T_g_c, R_wc, C, R_ro)
        else:
            pts, plab = np.zeros((0, 3), np.float32), np.zeros(0, np.uint8)
        return SyntheticFrame(rgb=np.ascontiguousarray(rgb), depth=depth, labels=labels,
                              camera=self.camera, plane=_plane_from(T_g_c), T_cam_from_ground=T_c_g,
                              lidar_points_cam=pts, stamp=index / self.fps, lidar_labels=plab,
                              index=int(index), pose=pose)

    @staticmethod
    def _check_tilt(pose: CameraPose) -> None:
        """Pitch and roll together tilt the camera more than either: past PoseLimits' max_tilt the
        frame's own T_cam_from_ground would be refused by GroundPlane.from_transform."""
        from ..ground import PoseLimits

        n = ground_from_camera(pose)[:3, :3].T @ np.array([0.0, 0.0, 1.0])
        tilt, limit = np.arccos(np.clip(-n[1], -1.0, 1.0)), PoseLimits().max_tilt
        if tilt > limit:
            raise SyntheticError(f"SceneGenerator.frame pitch {pose.pitch!r} and roll {pose.roll!r} rad: together they "
                                 f"tilt the camera {np.rad2deg(tilt):.1f} deg against the road, past the "
                                 f"{np.rad2deg(limit):.1f} deg PoseLimits.max_tilt the package accepts; "
                                 "give smaller angles")

    def _primitives(self, pose: CameraPose, index: int) -> list:
        prims = W.ground_primitives(self.layout, pose.x)
        prims += self.world.primitives(pose.x - VIEW_BEHIND, pose.x + VIEW_AHEAD)
        if self.lead is not None:
            ld = self.lead
            t = index / self.fps
            gap = ld["gap"] + ld["swing"] * np.sin(ld["w"] * t + ld["p"])
            lane_y = self.layout.lane_center(self.layout.ego_lane)
            prims += W.car(pose.x + gap, lane_y, 0.0, W._rng(self.seed, 7, ld["rng_key"]))
        return prims

    def _rect_from_optical(self) -> Optional[np.ndarray]:
        """The camera's rect_from_optical, None when it is the identity (rays in the optical frame)."""
        R = getattr(self.camera, "rect_from_optical", None)
        if R is None or np.array_equal(R, np.eye(3)):
            return None
        return np.asarray(R, np.float64)

    def _rect(self, prim, C, R_wc):
        """Pixel rectangle (v0, v1, u0, u1) that can see the primitive, None if none can.
        R_wc: world from the frame the camera's rays are in."""
        H, Wd = self.height, self.width
        if not np.all(np.isfinite(prim.lo)) or not np.all(np.isfinite(prim.hi)):
            return 0, H, 0, Wd
        corners = np.array([[x, y, z] for x in (prim.lo[0], prim.hi[0]) for y in (prim.lo[1], prim.hi[1])
                            for z in (prim.lo[2], prim.hi[2])])
        pc = (corners - C) @ R_wc  # world -> camera (rays' frame): R_wc^T (p - C)
        z = pc[:, 2]
        if np.all(z <= 1e-3):
            return None
        if np.any(z <= 1e-3) or not self.camera.rectified:
            return 0, H, 0, Wd
        u = self.camera.fx * pc[:, 0] / z + self.camera.cx + self.camera.K[0, 1] * pc[:, 1] / z
        v = self.camera.fy * pc[:, 1] / z + self.camera.cy
        u0, u1 = max(int(np.floor(u.min())) - 1, 0), min(int(np.ceil(u.max())) + 2, Wd)
        v0, v1 = max(int(np.floor(v.min())) - 1, 0), min(int(np.ceil(v.max())) + 2, H)
        if u0 >= u1 or v0 >= v1:
            return None
        return v0, v1, u0, u1

    @staticmethod
    def _intersect(prim, C, D):
        p = prim.params
        if prim.kind == "box":
            return raycast.ray_box(C, D, p["center"], p["half"], p["yaw"])
        if prim.kind == "cylinder":
            return raycast.ray_vertical_cylinder(C, D, p["center"], p["radius"], p["z0"], p["z1"])
        if prim.kind == "ellipsoid":
            return raycast.ray_ellipsoid(C, D, p["center"], p["radii"])
        if prim.kind == "sidewalk":
            return raycast.ray_sidewalk(C, D, p["side"], p["inner_y"], p["curb_height"])
        return raycast.ray_horizontal_plane(C, D, p["z"])

    def _cast(self, C, dirs, prims, rect_of):
        """Nearest hit of every ray: t (inf = none), primitive index (-1 = none), normal."""
        shape = dirs.shape[:-1]
        t_best = np.full(shape, np.inf)
        pid = np.full(shape, -1, np.int32)
        normal = np.zeros(shape + (3,), np.float32)
        for i, prim in enumerate(prims):
            rect = rect_of(prim)
            if rect is None:
                continue
            v0, v1, u0, u1 = rect
            t, normals = self._intersect(prim, C, dirs[v0:v1, u0:u1])
            tb = t_best[v0:v1, u0:u1]
            closer = t < tb
            if not closer.any():
                continue
            tb[closer] = t[closer]
            pid[v0:v1, u0:u1][closer] = i
            normal[v0:v1, u0:u1][closer] = normals(closer)
        return t_best, pid, normal

    def _label_ground(self, labels, hit_p, normal, mat, sky):
        """Road / sidewalk / terrain by where a ray lands on the ground surfaces; curb faces are
        sidewalk (the Cityscapes convention)."""
        lay = self.layout
        ground = ((mat == W.M_ROAD) | (mat == W.M_SIDEWALK)) & ~sky
        y = np.abs(hit_p[..., 1])
        walk = np.where(hit_p[..., 1] > 0, lay.sidewalk_left, lay.sidewalk_right)
        up = normal[..., 2] > 0.5
        labels[ground & up & (y < lay.half_width)] = L.ROAD
        labels[ground & up & (y >= lay.half_width) & (y < lay.half_width + walk)] = L.SIDEWALK
        labels[ground & up & (y >= lay.half_width + walk)] = L.TERRAIN
        labels[ground & ~up] = L.SIDEWALK

    def _lidar(self, pose, prims, T_g_c, R_wc, C, R_ro=None):
        """A 64-beam spinning LiDAR (HDL-64E-like: +2 to -24.8 deg, 0.18 deg steps) on the roof,
        0.27 m behind and 0.08 m above the camera, rigid with the body; returns within the
        camera's horizontal field of view (+5 deg), exact, in the camera frame."""
        R_body = R_wc @ R_BODY_FROM_OPTICAL.T  # the vehicle body's orientation in the world
        origin = C + R_body @ np.array([-0.27, 0.0, 0.08])
        half_fov = np.arctan(max(self.camera.cx + 0.5, self.width - 0.5 - self.camera.cx) / self.camera.fx) + np.deg2rad(5)
        if R_ro is not None:  # the rectified view is turned from the optical axis by up to R's angle
            half_fov += np.arccos(np.clip((np.trace(R_ro) - 1) / 2, -1.0, 1.0))
        az = np.arange(-half_fov, half_fov, np.deg2rad(0.18))
        el = np.deg2rad(np.linspace(2.0, -24.8, self.lidar_rows))
        d_l = np.stack([np.cos(el)[:, None] * np.cos(az)[None, :], np.cos(el)[:, None] * np.sin(az)[None, :],
                        np.sin(el)[:, None] * np.ones_like(az)[None, :]], axis=-1)
        dirs = d_l @ R_body.T
        t, pid, normal = self._cast(origin, dirs, prims, lambda p: _angular_rect(p, origin, R_body, az, el))
        ok = (pid >= 0) & (t <= LIDAR_RANGE)
        pw = origin + dirs[ok] * t[ok][:, None]
        pc = (pw - C) @ R_wc  # world -> camera frame
        plab = np.array([p.label for p in prims], np.uint8)[pid[ok]]
        mat = np.array([p.material for p in prims], np.int16)[pid[ok]]
        self._label_ground(plab, pw, normal[ok], mat, np.zeros(len(pw), bool))
        return pc.astype(np.float32), plab


def _angular_rect(prim, origin, R_body, az, el):
    """Rows/columns of a (elevation x azimuth) beam grid that can see the primitive."""
    if not np.all(np.isfinite(prim.lo)) or not np.all(np.isfinite(prim.hi)):
        return 0, len(el), 0, len(az)
    corners = np.array([[x, y, z] for x in (prim.lo[0], prim.hi[0]) for y in (prim.lo[1], prim.hi[1])
                        for z in (prim.lo[2], prim.hi[2])])
    pb = (corners - origin) @ R_body  # into the LiDAR (body) frame
    if np.any(pb[:, 0] <= 0.5):  # behind or beside the sensor: no cheap bound
        return 0, len(el), 0, len(az)
    # the azimuth extent of a convex body in front of the sensor is that of its corners
    a = np.arctan2(pb[:, 1], pb[:, 0])
    u0, u1 = np.searchsorted(az, a.min()) - 1, np.searchsorted(az, a.max()) + 1
    # elevation: bound with the nearest and farthest horizontal distances of the body
    gx = max(pb[:, 0].min(), 0.0)
    gy = 0.0 if pb[:, 1].min() <= 0 <= pb[:, 1].max() else np.abs(pb[:, 1]).min()
    near, far = np.hypot(gx, gy), np.hypot(pb[:, 0], pb[:, 1]).max()
    ztop, zbot = pb[:, 2].max(), pb[:, 2].min()
    e_hi = np.arctan2(ztop, near if ztop > 0 else far)
    e_lo = np.arctan2(zbot, near if zbot < 0 else far)
    # elevations decrease with the row index
    v0 = len(el) - np.searchsorted(el[::-1], e_hi) - 1
    v1 = len(el) - np.searchsorted(el[::-1], e_lo) + 1
    u0, u1, v0, v1 = max(u0, 0), min(u1, len(az)), max(v0, 0), min(v1, len(el))
    if u0 >= u1 or v0 >= v1:
        return None
    return v0, v1, u0, u1


def _plane_from(T_ground_from_cam: np.ndarray):
    """The road plane (ground z = 0) in the camera frame: n = R^T e_z, h = camera height."""
    from ..ground import GroundPlane

    n = T_ground_from_cam[:3, :3].T @ np.array([0.0, 0.0, 1.0])
    h = float(T_ground_from_cam[2, 3])
    return GroundPlane(n, h)
