"""Exact ray intersections with the primitives synthetic scenes are built from (vectorised numpy).

Every function takes one ray origin `O` (3,) and directions `D` (..., 3) in the world frame and
returns `(t, normals)`: the ray parameter of the first hit in front of the origin (inf where the
ray misses) and a function giving the outward unit normals (world frame, (k, 3) float32) at the
rays a boolean mask selects, so normals are computed only where a primitive is the nearest.
With directions whose camera-frame z component is 1, t is the depth along the optical axis.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def ray_box(O, D, center, half, yaw=0.0):
    """Oriented box (rotated by `yaw` about the world z axis), slab method.

    Rays starting inside the box see no hit (the camera is never inside an object).
    """
    o = np.asarray(O, np.float64) - center
    if yaw:
        c, s = np.cos(yaw), np.sin(yaw)
        ol = (c * o[0] + s * o[1], -s * o[0] + c * o[1], o[2])
        dl = (c * D[..., 0] + s * D[..., 1], -s * D[..., 0] + c * D[..., 1], D[..., 2])
    else:
        c, s = 1.0, 0.0
        ol, dl = o, (D[..., 0], D[..., 1], D[..., 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(3):
            inv = 1.0 / dl[k]
            t1 = (-half[k] - ol[k]) * inv
            t2 = (half[k] - ol[k]) * inv
            lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
            if k == 0:
                tn, tf, axis = lo, hi, np.zeros(lo.shape, np.int8)
            else:
                axis[lo > tn] = k
                np.maximum(tn, lo, out=tn)
                np.minimum(tf, hi, out=tf)
    hit = (tf >= tn) & (tn > EPS)
    t = np.where(hit, tn, np.inf)

    def normals(sel):
        ax = axis[sel]
        nl = np.zeros((len(ax), 3), np.float32)
        for k in range(3):
            m = ax == k
            nl[m, k] = -np.sign(dl[k][sel][m])  # the entry face faces the ray
        return np.stack([c * nl[:, 0] - s * nl[:, 1], s * nl[:, 0] + c * nl[:, 1], nl[:, 2]], axis=1)

    return t, normals


def ray_vertical_cylinder(O, D, center_xy, radius, z0, z1):
    """Vertical cylinder with its top cap (trunks and poles stand on the ground: no bottom cap)."""
    ox, oy = O[0] - center_xy[0], O[1] - center_xy[1]
    dx, dy, dz = D[..., 0], D[..., 1], D[..., 2]
    a = dx * dx + dy * dy
    b = ox * dx + oy * dy
    cc = ox * ox + oy * oy - radius * radius
    disc = b * b - a * cc
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
        z = O[2] + ts * dz
        side = (disc >= 0) & (a > 0) & (ts > EPS) & (z >= z0) & (z <= z1)
        t = np.where(side, ts, np.inf)
        tc = (z1 - O[2]) / dz
        px, py = ox + tc * dx, oy + tc * dy
        cap = (tc > EPS) & (px * px + py * py <= radius * radius) & (tc < t)
    t = np.where(cap, tc, t)

    def normals(sel):
        ts_, cap_ = ts[sel], cap[sel]
        n = np.zeros((len(ts_), 3), np.float32)
        n[:, 0] = np.where(cap_, 0.0, (ox + ts_ * dx[sel]) / radius)
        n[:, 1] = np.where(cap_, 0.0, (oy + ts_ * dy[sel]) / radius)
        n[:, 2] = cap_
        return n

    return t, normals


def ray_ellipsoid(O, D, center, radii):
    """Axis-aligned ellipsoid (tree crowns)."""
    r = np.asarray(radii, np.float64)
    o = (np.asarray(O, np.float64) - center) / r
    d0, d1, d2 = D[..., 0] / r[0], D[..., 1] / r[1], D[..., 2] / r[2]
    a = d0 * d0 + d1 * d1 + d2 * d2
    b = o[0] * d0 + o[1] * d1 + o[2] * d2
    cc = float(o @ o) - 1.0
    disc = b * b - a * cc
    with np.errstate(invalid="ignore"):
        ts = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    t = np.where((disc >= 0) & (ts > EPS), ts, np.inf)

    def normals(sel):
        tt = ts[sel]
        n = np.stack([(o[0] + tt * d0[sel]) / r[0], (o[1] + tt * d1[sel]) / r[1],
                      (o[2] + tt * d2[sel]) / r[2]], axis=-1)
        n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
        return n.astype(np.float32)

    return t, normals


def _up(sel):
    n = np.zeros((int(np.count_nonzero(sel)), 3), np.float32)
    n[:, 2] = 1.0
    return n


def ray_horizontal_plane(O, D, z):
    """The infinite plane at height z, seen from above (the road)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = (z - O[2]) / D[..., 2]
    return np.where(ts > EPS, ts, np.inf), _up


def ray_sidewalk(O, D, side, inner_y, curb_height):
    """A raised sidewalk: the half-space side * y >= inner_y topped at z = curb_height, its
    vertical curb face at side * y = inner_y (seen from the road)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        tt = (curb_height - O[2]) / D[..., 2]
        top = (tt > EPS) & (side * (O[1] + tt * D[..., 1]) >= inner_y)
        tf = (side * inner_y - O[1]) / D[..., 1]
        zf = O[2] + tf * D[..., 2]
        face = (tf > EPS) & (zf >= 0.0) & (zf <= curb_height) & (side * O[1] < inner_y)
    t = np.where(top, tt, np.inf)
    t = np.where(face & (tf < t), tf, t)
    is_face = face & (tf <= t)

    def normals(sel):
        f = is_face[sel]
        n = np.zeros((len(f), 3), np.float32)
        n[:, 1] = np.where(f, -side, 0.0)
        n[:, 2] = np.where(f, 0.0, 1.0)
        return n

    return t, normals
