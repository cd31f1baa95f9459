"""The static world a synthetic sequence drives through, generated lazily by seed.

World frame: x along the road (the direction of travel), y to the left, z up, the road surface at
z = 0. The road is straight and infinite; everything beside it is generated per 60 m segment from
(seed, segment index), so any frame of any sequence is reproducible on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import labels as L

SEGMENT = 60.0  # metres of world generated together

# materials: how a primitive is textured (see shading.py)
M_ROAD, M_SIDEWALK, M_BUILDING, M_CAR_BODY, M_CAR_CABIN, M_WHEEL, M_POLE, M_SIGN, M_TRUNK, \
    M_CROWN, M_PERSON = range(11)


@dataclass
class Primitive:
    kind: str  # "box" | "cylinder" | "ellipsoid" | "plane" | "sidewalk"
    params: dict
    label: int
    material: int
    color: tuple
    lo: np.ndarray  # world axis-aligned bounds, for culling
    hi: np.ndarray


@dataclass
class Layout:
    """Road cross-section: the same along the whole road."""

    lanes: int
    lane_width: float
    sidewalk_left: float
    sidewalk_right: float
    curb_height: float
    ego_lane: int  # 0 = rightmost
    marking_phase: float

    @property
    def half_width(self) -> float:
        return self.lanes * self.lane_width / 2.0

    def lane_center(self, i: int) -> float:
        return -self.half_width + self.lane_width * (i + 0.5)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *[int(k) & 0xFFFFFFFF for k in keys]]))


def make_layout(seed: int, curb_height=None) -> Layout:
    r = _rng(seed, 1)
    lanes = int(r.integers(2, 5))
    lay = Layout(
        lanes=lanes,
        lane_width=float(r.uniform(3.1, 3.75)),
        sidewalk_left=float(r.uniform(1.8, 4.5)),
        sidewalk_right=float(r.uniform(1.8, 4.5)),
        curb_height=float(r.uniform(0.10, 0.15)) if curb_height is None else float(curb_height),
        ego_lane=int(r.integers(0, max(1, lanes // 2))),  # right-hand traffic: a right-half lane
        marking_phase=float(r.uniform(0, 12)),
    )
    return lay


def _box(center, size, yaw, label, material, color) -> Primitive:
    center = np.asarray(center, np.float64)
    half = np.asarray(size, np.float64) / 2.0
    c, s = abs(np.cos(yaw)), abs(np.sin(yaw))
    ext = np.array([c * half[0] + s * half[1], s * half[0] + c * half[1], half[2]])
    return Primitive("box", {"center": center, "half": half, "yaw": float(yaw)}, label, material,
                     tuple(color), center - ext, center + ext)


def car(x, y, yaw, rng, color=None) -> list[Primitive]:
    """A car as boxes standing on the road: body, cabin, four wheels (all labelled car)."""
    length, width = rng.uniform(3.8, 4.9), rng.uniform(1.65, 1.9)
    body_h, cabin_h = rng.uniform(0.55, 0.75), rng.uniform(0.45, 0.6)
    if color is None:
        palette = [(180, 20, 25), (30, 40, 120), (200, 200, 205), (25, 25, 28), (90, 95, 100),
                   (230, 230, 225), (30, 90, 50), (150, 110, 40)]
        color = palette[int(rng.integers(len(palette)))]
    c, s = np.cos(yaw), np.sin(yaw)

    def at(dx, dy, z):
        return (x + c * dx - s * dy, y + s * dx + c * dy, z)

    z_body = 0.3
    prims = [
        _box(at(0, 0, z_body + body_h / 2), (length, width, body_h), yaw, L.CAR, M_CAR_BODY, color),
        _box(at(-0.1 * length, 0, z_body + body_h + cabin_h / 2),
             (0.55 * length, 0.92 * width, cabin_h), yaw, L.CAR, M_CAR_CABIN, color),
    ]
    for fx in (0.32, -0.32):
        for fy in (0.42, -0.42):
            prims.append(_box(at(fx * length, fy * width, 0.31), (0.62, 0.22, 0.62), yaw, L.CAR,
                              M_WHEEL, (25, 25, 25)))
    return prims


def _tree(x, y, base_z, rng, reach: float) -> list[Primitive]:
    """A street tree: its crown starts 2.6-4 m up (trimmed clear of traffic, and above any
    camera), overhanging the road by at most a metre."""
    trunk_r = rng.uniform(0.12, 0.25)
    crown_h = rng.uniform(1.6, 3.4)
    bottom = base_z + rng.uniform(2.6, 4.0)
    crown_r = rng.uniform(1.4, 2.8)
    c = np.array([x, y, bottom + crown_h])
    top = c[2]
    trunk = Primitive("cylinder", {"center": (x, y), "radius": trunk_r, "z0": base_z - 0.01, "z1": top},
                      L.VEGETATION, M_TRUNK, (85, 62, 40),
                      np.array([x - trunk_r, y - trunk_r, base_z]), np.array([x + trunk_r, y + trunk_r, top]))
    green = (int(rng.integers(35, 70)), int(rng.integers(80, 120)), int(rng.integers(30, 55)))
    rad = np.array([crown_r, min(crown_r, reach), crown_h])  # reach: to 1 m past the curb
    crown = Primitive("ellipsoid", {"center": c, "radii": rad}, L.VEGETATION, M_CROWN, green, c - rad, c + rad)
    return [trunk, crown]


def _pole(x, y, base_z, rng) -> list[Primitive]:
    r, h = rng.uniform(0.07, 0.14), rng.uniform(4.5, 9.0)
    prims = [Primitive("cylinder", {"center": (x, y), "radius": r, "z0": base_z - 0.01, "z1": base_z + h},
                       L.POLE, M_POLE, (125, 125, 130), np.array([x - r, y - r, base_z]),
                       np.array([x + r, y + r, base_z + h]))]
    if rng.random() < 0.4:  # a traffic sign facing the traffic
        side = 1.0 if y > 0 else -1.0
        color = [(200, 30, 30), (30, 70, 170), (230, 200, 30)][int(rng.integers(3))]
        prims.append(_box((x - r - 0.03, y - side * 0.1, base_z + 2.3), (0.04, 0.7, 0.7), 0.0,
                          L.TRAFFIC_SIGN, M_SIGN, color))
    return prims


def _person(x, y, base_z, rng) -> list[Primitive]:
    """A pedestrian: legs and torso as a vertical cylinder, the head an ellipsoid."""
    h = rng.uniform(1.55, 1.95)
    r = rng.uniform(0.17, 0.24)
    color = [(40, 40, 60), (150, 30, 30), (200, 190, 170), (30, 80, 140), (90, 90, 90)][int(rng.integers(5))]
    body = Primitive("cylinder", {"center": (x, y), "radius": r, "z0": base_z - 0.01, "z1": base_z + 0.86 * h},
                     L.PERSON, M_PERSON, color, np.array([x - r, y - r, base_z]),
                     np.array([x + r, y + r, base_z + 0.86 * h]))
    c = np.array([x, y, base_z + 0.93 * h])
    rad = np.array([0.1, 0.1, 0.07 * h + 0.01])
    head = Primitive("ellipsoid", {"center": c, "radii": rad}, L.PERSON, M_PERSON, (200, 160, 130), c - rad, c + rad)
    return [body, head]


@dataclass
class World:
    seed: int
    layout: Layout
    _segments: dict = field(default_factory=dict)

    def segment(self, k: int) -> list[Primitive]:
        if k not in self._segments:
            if len(self._segments) > 64:
                self._segments.clear()
            self._segments[k] = self._make_segment(k)
        return self._segments[k]

    def primitives(self, x_from: float, x_to: float) -> list[Primitive]:
        out = []
        for k in range(int(np.floor(x_from / SEGMENT)), int(np.floor(x_to / SEGMENT)) + 1):
            out.extend(p for p in self.segment(k) if p.hi[0] >= x_from and p.lo[0] <= x_to)
        return out

    def _make_segment(self, k: int) -> list[Primitive]:
        r = _rng(self.seed, 2, k)
        lay = self.layout
        x0, x1 = k * SEGMENT, (k + 1) * SEGMENT
        hw, hc = lay.half_width, lay.curb_height
        prims: list[Primitive] = []
        for side, walk in ((1.0, lay.sidewalk_left), (-1.0, lay.sidewalk_right)):
            edge = hw + walk  # outer edge of the sidewalk
            # two rows of buildings: the street front (with gaps) and a row behind it
            for row, (setback, depth_rng) in enumerate(((r.uniform(0.0, 4.0), (8, 16)), (r.uniform(20, 35), (10, 20)))):
                x = x0 + r.uniform(-4, 4)
                while x < x1:
                    width = r.uniform(8, 26)
                    if r.random() < (0.25 if row == 0 else 0.1):
                        x += r.uniform(4, 14)  # a gap: terrain, trees, the row behind
                        continue
                    height = r.uniform(5, 24) if row == 0 else r.uniform(10, 30)
                    depth = r.uniform(*depth_rng)
                    yc = side * (edge + setback + depth / 2)
                    shade = r.uniform(0.55, 1.0)
                    base = [(170, 150, 120), (190, 185, 170), (150, 90, 70), (200, 190, 150),
                            (120, 120, 125), (215, 205, 190)][int(r.integers(6))]
                    color = tuple(int(c * shade) for c in base)
                    b = _box((x + width / 2, yc, hc + height / 2 - 0.02), (width, depth, height + 0.04), 0.0,
                             L.BUILDING, M_BUILDING, color)
                    b.params["window"] = (r.uniform(2.2, 3.5), r.uniform(0, 3), r.uniform(2.8, 3.4))
                    prims.append(b)
                    x += width + r.uniform(0, 2.0)
            for _ in range(int(r.integers(0, 4))):
                d = r.uniform(0.8, max(0.9, walk - 0.6))  # from the curb
                prims += _tree(r.uniform(x0, x1), side * (hw + d), hc, r, reach=d + 1.0)
            for _ in range(int(r.integers(1, 3))):
                prims += _pole(r.uniform(x0, x1), side * (hw + r.uniform(0.35, 0.7)), hc, r)
            for _ in range(int(r.integers(0, 3))):  # people walking on the pavement
                prims += _person(r.uniform(x0, x1), side * (hw + r.uniform(0.6, max(0.7, walk - 0.4))), hc, r)
        # cars in the lanes other than the ego lane (parked, stopped or slow traffic frozen in time)
        for _ in range(int(r.integers(1, 5))):
            lane = int(r.integers(lay.lanes))
            if lane == lay.ego_lane:
                continue
            oncoming = lane >= (lay.lanes + 1) // 2  # right-hand traffic: the left half comes towards us
            yaw = r.uniform(-0.06, 0.06) + (np.pi if oncoming else 0.0)
            prims += car(r.uniform(x0, x1), lay.lane_center(lane) + r.uniform(-0.4, 0.4), yaw, r)
        return prims


def ground_primitives(layout: Layout, x_center: float) -> list[Primitive]:
    """The road plane and the two sidewalk slabs (raised by the curb height, endless sideways)."""
    hw, hc = layout.half_width, layout.curb_height
    inf_lo, inf_hi = np.array([-np.inf] * 3), np.array([np.inf] * 3)
    road = Primitive("plane", {"z": 0.0}, L.ROAD, M_ROAD, (100, 100, 100), inf_lo, inf_hi)
    prims = [road]
    if hc <= 0:  # flush sidewalks: the road plane carries them, labelled by where rays land
        return prims
    for side in (1.0, -1.0):
        prims.append(Primitive("sidewalk", {"side": side, "inner_y": hw, "curb_height": hc}, L.SIDEWALK,
                               M_SIDEWALK, (160, 155, 148), inf_lo, inf_hi))
    return prims
