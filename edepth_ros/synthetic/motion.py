"""How the ego vehicle moves: speed changes (braking pitches the nose down), weaving in its lane
(lateral acceleration rolls the body), road roughness (heave, small pitch/roll oscillations).

All closed-form in time, so frame i is computed on its own (random access, deterministic).
Angles in radians; REP 103 body frame (x forward, y left, z up): positive pitch = nose down,
positive roll = left side up (rotation about +x), positive yaw = to the left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_TILT = np.deg2rad(3.0)


@dataclass(frozen=True)
class CameraPose:
    """The camera's pose on the road at one instant.

    x, y: position of the camera over the road (world frame), yaw: heading (radians, 0 = along
    the road); height: camera centre above the road (metres); pitch/roll: the camera's total
    tilt against the road (mounting plus body motion), radians, |angle| <= 3 deg.
    """

    x: float
    y: float
    yaw: float
    height: float
    pitch: float
    roll: float


class Motion:
    def __init__(self, rng: np.random.Generator, lane_y: float, fps: float):
        self.fps = float(fps)
        self.lane_y = float(lane_y)
        self.v0 = rng.uniform(6.0, 14.0)            # m/s
        self.dv = rng.uniform(1.0, 4.0)             # speed swing: accelerate / brake
        self.wb = 2 * np.pi / rng.uniform(6.0, 14.0)
        self.pb = rng.uniform(0, 2 * np.pi)
        self.weave = rng.uniform(0.1, 0.4)          # metres of wander within the lane
        self.wl = 2 * np.pi / rng.uniform(4.0, 10.0)
        self.pl = rng.uniform(0, 2 * np.pi)
        self.k_pitch = rng.uniform(0.004, 0.009)    # rad per m/s^2 of deceleration
        self.k_roll = rng.uniform(0.008, 0.02)      # rad per m/s^2 of lateral acceleration
        self.mount_height = rng.uniform(1.40, 1.90)
        self.mount_pitch = np.deg2rad(rng.uniform(-1.2, 1.2))
        self.mount_roll = np.deg2rad(rng.uniform(-0.4, 0.4))
        # road roughness: two sinusoids each for heave, pitch and roll
        self.rough = [(rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)) for _ in range(6)]
        self.heave_amp = rng.uniform(0.005, 0.03)
        self.rough_pitch = np.deg2rad(rng.uniform(0.05, 0.4))
        self.rough_roll = np.deg2rad(rng.uniform(0.05, 0.3))

    def _osc(self, t, i):
        f, p = self.rough[i]
        return np.sin(2 * np.pi * f * t + p)

    def pose(self, index: int) -> CameraPose:
        t = index / self.fps
        x = self.v0 * t - self.dv / self.wb * (np.cos(self.wb * t + self.pb) - np.cos(self.pb))
        v = self.v0 + self.dv * np.sin(self.wb * t + self.pb)
        a_long = self.dv * self.wb * np.cos(self.wb * t + self.pb)
        y = self.lane_y + self.weave * np.sin(self.wl * t + self.pl)
        vy = self.weave * self.wl * np.cos(self.wl * t + self.pl)
        a_lat = -self.weave * self.wl ** 2 * np.sin(self.wl * t + self.pl)
        yaw = np.arctan2(vy, v)
        rough = lambda i, j: 0.5 * (self._osc(t, i) + self._osc(t, j))  # noqa: E731
        pitch = self.mount_pitch - self.k_pitch * a_long + self.rough_pitch * rough(0, 1)
        roll = self.mount_roll + self.k_roll * a_lat + self.rough_roll * rough(2, 3)
        height = self.mount_height + self.heave_amp * rough(4, 5)
        return CameraPose(float(x), float(y), float(yaw), float(height),
                          float(np.clip(pitch, -MAX_TILT, MAX_TILT)), float(np.clip(roll, -MAX_TILT, MAX_TILT)))

    def speed(self, index: int) -> float:
        t = index / self.fps
        return float(self.v0 + self.dv * np.sin(self.wb * t + self.pb))


def rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


# optical (x right, y down, z forward) -> body (x forward, y left, z up)
R_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def ground_from_camera(pose: CameraPose) -> np.ndarray:
    """4x4 T_ground_from_cam: ground frame = base_footprint under the camera, x along the heading."""
    T = np.eye(4)
    T[:3, :3] = rot_y(pose.pitch) @ rot_x(pose.roll) @ R_BODY_FROM_OPTICAL
    T[:3, 3] = (0.0, 0.0, pose.height)
    return T
