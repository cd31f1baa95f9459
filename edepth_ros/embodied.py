"""Embodied scene depth: metric depth from the camera model, the ground pose and semantic labels.

No learning: road and other ground pixels get the depth where their ray meets the ground plane;
a pixel of something standing on the ground (car, building, pole, tree) takes the depth of the
vertical plane through its segment's ground-contact point in its column; sky gets none (or a
configured cap); the remaining holes are filled by Telea inpainting at reduced resolution.
See ../shared/DESIGN.md section 4 for the maths.
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Mapping, Optional

import numpy as np

from .camera import CameraModel
from .described import described
from .ground import GroundPlane
from .labels import ClassGroups, unknown_ids_message, validate_labels


class Region(IntEnum):
    """How each pixel's embodied depth was obtained (uint8 codes in `EmbodiedResult.region`)."""

    NONE = 0
    ROAD = 1
    GROUND = 2
    VERTICAL = 3
    INPAINTED = 4
    SKY = 5


_GROUP_CODES = {"road": Region.ROAD, "ground": Region.GROUND, "vertical": Region.VERTICAL,
                "sky": Region.SKY}


# inverse depth is inpainted in units of 1e-6 / m (see EmbodiedDepth._inpaint)
_INV_SCALE = 1.0e6


class EmbodiedConfigError(ValueError):
    """An EmbodiedConfig value is out of range; the message names the field."""


@dataclass(frozen=True)
class EmbodiedConfig:
    """Settings of the embodied depth computation.

    sky_depth: None leaves sky NaN; a number (metres) gives sky that depth (a "max range" cap).
    max_depth: plane depths beyond this are not trusted (left for inpainting); vertical and
    inpainted depths are capped at it.
    inpaint_scale: resolution factor at which Telea inpainting runs (1.0 = full resolution;
    0 disables inpainting, leaving holes NaN); when the holes are so large that more than
    `inpaint_max_pixels` would be inpainted at that scale, the scale drops further (Telea's cost
    grows with the masked area; large holes carry little detail). vertical_runs_by_class: a
    vertical segment is one class (a building above a car does not take the car's ground
    contact; it is inpainted from the building beside it) rather than any vertical class.
    ground_heights: (label id, metres) pairs (or a dict) for ground classes that are not at road
    level, e.g. {SIDEWALK: 0.12} where sidewalks stand on curbs: their depth is the plane's scaled
    by (h - height) / h, and so is the contact of anything standing on them. Empty by default:
    with the weight-free segmenter's "sidewalk" (verges, rail beds too) it cost KITTI accuracy.
    Confidences: per region, in [0, 1].
    """

    groups: ClassGroups = field(default_factory=ClassGroups)
    sky_depth: Optional[float] = None
    max_depth: float = 150.0
    inpaint_scale: float = 0.2
    inpaint_max_pixels: int = 4000
    inpaint_radius: float = 3.0
    vertical_runs_by_class: bool = True
    ground_heights: tuple = ()
    confidence_road: float = 1.0
    confidence_ground: float = 0.8
    confidence_vertical: float = 0.6
    confidence_inpainted: float = 0.3
    confidence_sky: float = 0.0

    def __post_init__(self):
        if not isinstance(self.groups, ClassGroups):
            if not isinstance(self.groups, Mapping):
                raise EmbodiedConfigError(f"EmbodiedConfig.groups: {self.groups!r}; expected ClassGroups or "
                                          "a mapping {road: [ids], ground: [ids], vertical: [ids], sky: [ids]}")
            object.__setattr__(self, "groups", ClassGroups.from_dict(self.groups))
        pairs = self.ground_heights.items() if isinstance(self.ground_heights, Mapping) else self.ground_heights
        try:
            pairs = tuple(sorted((int(k), float(v)) for k, v in pairs))
        except (TypeError, ValueError):
            raise EmbodiedConfigError(
                f"EmbodiedConfig.ground_heights: {self.ground_heights!r}; expected {{label id: metres}}") from None
        for k, v in pairs:
            if not 0 <= k <= 255 or not (math.isfinite(v) and abs(v) <= 1.0):
                raise EmbodiedConfigError(
                    f"EmbodiedConfig.ground_heights: label {k} at {v} m; ids are 0..255 and heights within "
                    "+-1 m of the road")
        object.__setattr__(self, "ground_heights", pairs)
        numeric = ["max_depth", "inpaint_scale", "inpaint_max_pixels", "inpaint_radius"] + \
            [f"confidence_{n}" for n in ("road", "ground", "vertical", "inpainted", "sky")]
        for name in numeric + (["sky_depth"] if self.sky_depth is not None else []):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real):  # a '0.2' from YAML quotes, say
                raise EmbodiedConfigError(f"EmbodiedConfig.{name}: expected a number, got {v!r}")
        if self.sky_depth is not None and not (math.isfinite(self.sky_depth) and self.sky_depth > 0):
            raise EmbodiedConfigError(f"EmbodiedConfig.sky_depth: {self.sky_depth}; use None or a depth > 0")
        if not (math.isfinite(self.max_depth) and self.max_depth > 0):
            raise EmbodiedConfigError(f"EmbodiedConfig.max_depth: {self.max_depth}; must be > 0")
        if not 0 <= self.inpaint_scale <= 1:
            raise EmbodiedConfigError(
                f"EmbodiedConfig.inpaint_scale: {self.inpaint_scale}; must be in [0, 1] (0 = no inpainting)")
        if not (self.inpaint_max_pixels >= 100 and math.isfinite(self.inpaint_max_pixels)):
            raise EmbodiedConfigError(
                f"EmbodiedConfig.inpaint_max_pixels: {self.inpaint_max_pixels}; must be a finite number >= 100")
        if not 0 < self.inpaint_radius <= 50:  # Telea's cost grows with the radius squared
            raise EmbodiedConfigError(f"EmbodiedConfig.inpaint_radius: {self.inpaint_radius}; must be in (0, 50] "
                                      "pixels")
        for name in ("road", "ground", "vertical", "inpainted", "sky"):
            v = getattr(self, f"confidence_{name}")
            if not 0 <= v <= 1:
                raise EmbodiedConfigError(f"EmbodiedConfig.confidence_{name}: {v}; must be in [0, 1]")

    @classmethod
    def from_dict(cls, values: dict) -> "EmbodiedConfig":
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise EmbodiedConfigError(f"EmbodiedConfig: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        values = dict(values)
        if "groups" in values and not isinstance(values["groups"], ClassGroups):
            values["groups"] = ClassGroups.from_dict(values["groups"])
        return cls(**values)

    def confidence_lut(self) -> np.ndarray:
        lut = np.zeros(256, np.float32)
        lut[Region.ROAD] = self.confidence_road
        lut[Region.GROUND] = self.confidence_ground
        lut[Region.VERTICAL] = self.confidence_vertical
        lut[Region.INPAINTED] = self.confidence_inpainted
        lut[Region.SKY] = self.confidence_sky
        return lut


@dataclass
class EmbodiedResult:
    """depth float32 (H, W) metres, NaN = none; region uint8 Region codes; confidence float32 [0, 1].

    reason: empty when all went normally, else why (part of) the result is NaN.
    """

    depth: np.ndarray
    region: np.ndarray
    confidence: np.ndarray
    reason: str = ""

    @classmethod
    def empty(cls, height: int, width: int, reason: str) -> "EmbodiedResult":
        return cls(np.full((height, width), np.nan, np.float32), np.zeros((height, width), np.uint8),
                   np.zeros((height, width), np.float32), reason)


@dataclass
class _PlaneGeometry:
    """Cached per (camera, plane): plane depth, inverse depth and the plane in the ray frame."""

    depth: np.ndarray     # float32 (H, W), NaN above the horizon or beyond max_depth
    inv: np.ndarray       # float32 (H, W), -(n . r) / h: inverse plane depth, <= 0 above the horizon
    valid: np.ndarray     # bool (H, W), depth is a number
    above_horizon: np.ndarray  # bool (H, W), the ray never meets the plane (inv <= 0)
    normal: np.ndarray    # (3,) normal in the frame of the camera's rays
    height: float
    visible: bool = True  # any pixel sees the plane within max_depth


class EmbodiedDepth:
    """Computes embodied scene depth; caches plane geometry per (camera, plane)."""

    def __init__(self, config: Optional[EmbodiedConfig] = None, cache_size: int = 4):
        self.config = config or EmbodiedConfig()
        self._group_lut = self.config.groups.group_lut(_GROUP_CODES, default=Region.NONE)
        self._conf_lut = self.config.confidence_lut()
        self._unknown_lut = self.config.groups.unknown_lut()
        self._cache: "OrderedDict[tuple, _PlaneGeometry]" = OrderedDict()
        self._cache_size = cache_size

    # ------------------------------------------------------------------ plane depth
    def _geometry(self, camera: CameraModel, plane: GroundPlane) -> _PlaneGeometry:
        key = (camera.key(), plane.key())
        geo = self._cache.get(key)
        if geo is not None:
            self._cache.move_to_end(key)
            return geo
        geo = self._plane_geometry(camera, plane)
        self._cache[key] = geo
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return geo

    def _plane_geometry(self, camera: CameraModel, plane: GroundPlane) -> _PlaneGeometry:
        R = camera.rect_from_optical
        n = plane.normal if np.allclose(R, np.eye(3)) else R @ plane.normal
        h = plane.height
        if camera.separable:
            # n . r = n_x x(u) + n_y y(v) + n_z: an outer sum, no per-pixel ray array needed
            x, y = camera.ray_axes()
            col = (-n[0] / h * x).astype(np.float32)
            row = (-(n[1] * y + n[2]) / h).astype(np.float32)
            inv = row[:, None] + col[None, :]
        else:
            inv = camera.rays() @ (-n / h).astype(np.float32)
        valid = inv > np.float32(1.0 / self.config.max_depth)
        above = inv <= 0
        depth = np.full(inv.shape, np.nan, np.float32)
        np.divide(np.float32(1.0), inv, out=depth, where=valid)
        for a in (depth, inv, valid, above):
            a.setflags(write=False)
        return _PlaneGeometry(depth, inv, valid, above, n, h, bool(valid.any()))

    def plane_depth(self, camera: CameraModel, plane: GroundPlane) -> np.ndarray:
        """Depth of the ground plane at every pixel (float32, NaN above the horizon), cached, read-only."""
        return self._geometry(camera, plane).depth

    # ------------------------------------------------------------------ full computation
    def compute(self, camera: CameraModel, plane: Optional[GroundPlane], labels: np.ndarray,
                blind: Optional[np.ndarray] = None) -> EmbodiedResult:
        """Embodied depth for one frame: `labels` uint8 (H, W) Cityscapes train ids at the camera's size.

        blind: optional bool (H, W), pixels the camera does not see through (``image_check.blind_mask``).
        None of them is inpainted (that would copy the road around them in); those labelled road or
        ground get no depth (the plane would make them free road) but still ground the visible
        pixels standing on them. Blind vertical pixels take depth only from a ground contact the
        camera sees; sky stays sky. The rest stays region NONE, NaN, confidence 0, its share in
        ``reason``.
        """
        if not isinstance(camera, CameraModel) or not (plane is None or isinstance(plane, GroundPlane)):
            raise TypeError(f"EmbodiedDepth.compute: camera must be a CameraModel and plane a GroundPlane "
                            f"or None, got {type(camera).__name__} and {type(plane).__name__}")
        H, W = camera.height, camera.width
        labels = validate_labels(labels, H, W)
        if blind is not None and not (isinstance(blind, np.ndarray) and blind.dtype == bool
                                      and blind.shape == (H, W)):
            raise TypeError(f"EmbodiedDepth.compute: blind must be a bool ({H}, {W}) array or None, got "
                            f"{described(blind)}")
        if plane is None:
            return self._finish(EmbodiedResult.empty(H, W, "no ground plane: no pose from tf, parameters "
                                                     "or tracker"), self._group_lut[labels] == Region.SKY)
        cfg = self.config
        geo = self._geometry(camera, plane)
        import cv2

        group = cv2.LUT(labels, self._group_lut)  # SIMD table lookup, ~10x numpy's take
        reasons = []
        if blind is not None and not blind.any():
            blind = None
        unknown = cv2.LUT(labels, self._unknown_lut)
        if cv2.countNonZero(unknown):  # another label convention would give finite, wrong depth
            reasons.append(unknown_ids_message(labels, unknown))
        if not geo.visible:
            if geo.above_horizon.all():
                reasons.append("ground plane not visible: the horizon lies below the image (camera looking up?)")
            else:
                reasons.append(f"every pixel that sees the ground plane sees it beyond max_depth "
                               f"{cfg.max_depth:g} m (raise EmbodiedConfig.max_depth)")
        # ROAD (1) and GROUND (2) in one comparison through uint8 wrap-around
        is_ground = (group - np.uint8(1)) <= np.uint8(1)
        on_plane = is_ground & geo.valid
        # ground labelled at or above the horizon contradicts the pose: no depth, and not inpainted
        contradicted = is_ground & geo.above_horizon
        n_contradicted = int(np.count_nonzero(contradicted))
        if n_contradicted:
            reasons.append(f"{n_contradicted} road/ground pixels lie at or above the horizon of the ground "
                           "pose, where the plane cannot be: the labels or the pose are wrong there; left NaN")
        sky = group == Region.SKY
        if not on_plane.any():
            if sky.all():
                reasons.append("all sky: nothing in the frame to anchor depth")
            elif geo.visible:
                reasons.append("no road or ground pixels below the horizon: nothing anchors depth")
            return self._finish(EmbodiedResult.empty(H, W, "; ".join(reasons)), sky)
        depth = np.where(on_plane, geo.depth, np.float32(np.nan))
        inv_scale = None
        if cfg.ground_heights:
            # raised ground classes (a sidewalk on its curb): camera height above them is h - dh
            scale = np.ones(256, np.float32)
            for label, dh in cfg.ground_heights:
                scale[label] = (geo.height - dh) / geo.height if dh < geo.height - 0.01 else np.nan
            depth *= cv2.LUT(labels, scale)
            inv_scale = 1.0 / scale
            on_plane &= depth == depth  # a "ground" class above the camera has no depth
        region = group * on_plane  # ROAD / GROUND where on the plane, NONE (0) elsewhere
        self._vertical(camera, geo, group, on_plane, depth, region, labels, inv_scale)
        if blind is not None:
            # Blind road and ground have no depth: the plane would make them free road whatever
            # hides there. They still ground what the camera sees standing on them (a car whose
            # wheels are in glare): a contact nearer than the truth at worst, where inpainting would
            # put the road behind the car. Blind vertical pixels (the sunlit side of a white car) take
            # depth only from a contact the camera sees; sky stays sky; nothing blind is inpainted.
            blind_vertical = blind & (group == Region.VERTICAL)
            if blind_vertical.any():
                seen_depth, seen_region = depth.copy(), region.copy()
                self._vertical(camera, geo, group, on_plane & ~blind, seen_depth, seen_region, labels, inv_scale)
                depth[blind_vertical] = seen_depth[blind_vertical]
                region[blind_vertical] = np.where(np.isnan(depth[blind_vertical]), np.uint8(Region.NONE),
                                                  np.uint8(Region.VERTICAL))
            blind_ground = blind & on_plane
            depth[blind_ground] = np.nan
            region[blind_ground] = Region.NONE
        np.copyto(region, np.uint8(Region.SKY), where=sky)

        if cfg.inpaint_scale > 0:
            holes = region == Region.NONE
            if n_contradicted:
                holes &= ~contradicted
            if blind is not None:
                holes &= ~blind
            if holes.any():
                if self._inpaint(depth, holes, sky):
                    np.copyto(region, np.uint8(Region.INPAINTED), where=holes)
                else:
                    reasons.append("no pixel with depth on the inpainting grid: the holes stay NaN "
                                   "(raise inpaint_scale)")
        if blind is not None:
            n_unseen = int(np.count_nonzero(blind & (region == Region.NONE)))
            if n_unseen:
                reasons.append(f"{100 * n_unseen / blind.size:.1f}% of the image is blind (nearly all black or "
                               "white: a covered lens, glare) and has no depth: the ground plane would make it "
                               "free road whatever is hidden there")
        if cfg.sky_depth is not None:
            depth[sky] = cfg.sky_depth
        confidence = cv2.LUT(region, self._conf_lut)
        return EmbodiedResult(depth, region, confidence, "; ".join(reasons))

    def _finish(self, result: EmbodiedResult, sky: np.ndarray) -> EmbodiedResult:
        result.region[sky] = Region.SKY
        if self.config.sky_depth is not None:
            result.depth[sky] = self.config.sky_depth
        result.confidence = self._conf_lut.take(result.region)
        return result

    def _vertical(self, camera: CameraModel, geo: _PlaneGeometry, group: np.ndarray,
                  on_plane: np.ndarray, depth: np.ndarray, region: np.ndarray,
                  labels: Optional[np.ndarray] = None, inv_scale: Optional[np.ndarray] = None) -> None:
        """Depth of vertical pixels from the vertical plane through their column's ground contact.

        Vertical pixels form runs in each column. A run's contact is its bottom pixel, provided
        the pixel right below is ground with a plane depth. The contact point X_c lies on the
        ground at the boundary between those two pixels; the vertical plane through it faces the
        camera (its normal w is the horizontal part of the contact ray r_c), so a pixel with ray r
        gets inverse depth inv_c (w . r) / (w . r_c), inv_c the plane's inverse depth at X_c.
        That is linear in the pixel's ray: one coefficient vector per run (a few thousand per
        frame). The work runs on the transposed (column-major) image, where each column's runs
        are consecutive: the image is filled by np.repeat over runs and the gaps between them,
        with no scatter, then transposed back.
        """
        import cv2

        H, W = group.shape
        N = H * W
        vt = cv2.transpose(group).ravel() == Region.VERTICAL
        if not vt.any():
            return
        above = np.zeros(N, bool)   # the pixel above (same column) is vertical, of the same run
        above[1:] = vt[:-1]
        above.reshape(W, H)[:, 0] = False
        below = np.zeros(N, bool)
        below[:-1] = vt[1:]
        below.reshape(W, H)[:, -1] = False
        if labels is not None and self.config.vertical_runs_by_class:
            # a run is one class: a building above a car does not stand on the car's contact
            lt = cv2.transpose(labels).ravel()
            same = lt[1:] == lt[:-1]
            above[1:] &= same
            below[:-1] &= same
        starts = np.flatnonzero(vt & ~above)   # column-major order: starts and ends pair up
        ends = np.flatnonzero(vt & ~below)
        su, sv = np.divmod(starts, H)
        ev = ends - su * H
        g_t = np.minimum(ends + 1, N - 1)      # the pixel below each run, column-major
        ok = (ev < H - 1) & cv2.transpose(on_plane.view(np.uint8)).ravel().take(g_t).view(bool)
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return
        cu, cv_ = su[idx], ev[idx]             # column and last row of runs with a contact
        n = geo.normal
        separable = camera.separable
        if separable:
            x, y = camera.ray_axes()
            # contact at the boundary below the run's last pixel: row ev + 0.5 (y is linear in v)
            rc = np.stack([x[cu], (cv_ + 0.5 - camera.cy) / camera.fy, np.ones(idx.size)], axis=1)
            inv_c = -(rc @ n) / geo.height
        else:
            rays = camera.rays()
            rc = 0.5 * (rays[cv_, cu].astype(np.float64) + rays[cv_ + 1, cu])
            inv_c = 0.5 * (geo.inv[cv_, cu].astype(np.float64) + geo.inv[cv_ + 1, cu])
        if inv_scale is not None and labels is not None:
            inv_c = inv_c * inv_scale[labels[cv_ + 1, cu]]
        with np.errstate(invalid="ignore"):
            keep = inv_c > 0  # the contact is on the visible ground (below the horizon); NaN fails
        idx, rc, inv_c, cu = idx[keep], rc[keep], inv_c[keep], cu[keep]
        if idx.size == 0:
            return
        w = rc - (rc @ n)[:, None] * n[None, :]
        coef = (inv_c / np.einsum("ij,ij->i", w, rc))[:, None] * w  # inverse depth = coef . r
        # segments in column-major order: gap, run 0, gap, run 1, ..., gap (empty gaps allowed)
        R = starts.size
        bounds = np.empty(2 * R + 1, np.int64)
        bounds[0] = 0
        bounds[1::2] = starts
        bounds[2::2] = ends + 1
        lengths = np.diff(np.append(bounds, N))
        if separable:
            # coef . (x_u, (v - cy) / fy, 1) = a + c v, v the pixel's row
            a = np.full(2 * R + 1, np.nan, np.float32)
            c = np.zeros(2 * R + 1, np.float32)
            a[2 * idx + 1] = coef[:, 0] * x[cu] - coef[:, 1] * camera.cy / camera.fy + coef[:, 2]
            c[2 * idx + 1] = coef[:, 1] / camera.fy
            invd = np.repeat(a, lengths)
            invd += np.repeat(c, lengths) * self._row_index(H, W)
        else:
            cf = np.full((2 * R + 1, 3), np.nan, np.float32)
            cf[2 * idx + 1] = coef
            rays_t = self._rays_transposed(camera)
            invd = np.einsum("ij,ij->i", np.repeat(cf, lengths, axis=0), rays_t)
        # beyond max_depth (or a ray missing the facade, w . r <= 0) is capped at max_depth; NaN stays
        np.maximum(invd, np.float32(1.0 / self.config.max_depth), out=invd)
        np.divide(np.float32(1.0), invd, out=invd)
        vertical_depth = cv2.transpose(invd.reshape(W, H))
        vertical = group == Region.VERTICAL
        np.copyto(depth, vertical_depth, where=vertical)
        np.copyto(region, np.uint8(Region.VERTICAL), where=vertical & (vertical_depth == vertical_depth))

    def _rays_transposed(self, camera: CameraModel) -> np.ndarray:
        """(W * H, 3) float32 rays in column-major pixel order, cached for the last camera."""
        cached = getattr(self, "_rays_t_cache", None)
        if cached is None or cached[0] != camera.key():
            rays_t = np.ascontiguousarray(camera.rays().transpose(1, 0, 2)).reshape(-1, 3)
            rays_t.setflags(write=False)
            self._rays_t_cache = cached = (camera.key(), rays_t)
        return cached[1]

    def _row_index(self, H: int, W: int) -> np.ndarray:
        """float32 (W * H,): each pixel's row in the transposed image, cached per size."""
        cached = getattr(self, "_rows_cache", None)
        if cached is None or cached[0] != (H, W):
            rows = np.tile(np.arange(H, dtype=np.float32), W)
            rows.setflags(write=False)
            self._rows_cache = cached = ((H, W), rows)
        return cached[1]

    def _inpaint(self, depth: np.ndarray, holes: np.ndarray, sky: np.ndarray) -> bool:
        """Fill `holes` of `depth` in place by Telea inpainting at `inpaint_scale` resolution.

        Returns False (holes left NaN) when no pixel on the subsampled grid has depth; else every
        hole gets a depth, capped at max_depth where Telea's border value is that far or nothing.

        Telea extrapolates to first order from the known border, so it runs on inverse depth,
        which is linear in the image over any plane (the road, a facade): holes in planes fill
        almost exactly. Sky pixels are never sources: they are NaN here, so they join the mask and
        are overwritten afterwards. Below full resolution the image is subsampled by a stride (no
        full-resolution pass) and only the holes' bounding box (plus a margin) is inpainted, so a
        large sky costs nothing; the result comes back by bilinear resizing, used at holes only.

        OpenCV's Telea adds a gradient-direction term of magnitude ~1 (plus 0.5 rounding) to every
        filled value, harmless on 8-bit images but metres of error on float depth; values are
        therefore scaled to ~1e4..1e6 (micro-dioptres) before inpainting.
        """
        import cv2

        H, W = depth.shape
        k = max(1, int(round(1.0 / self.config.inpaint_scale)))
        n_holes = int(np.count_nonzero(holes))
        if n_holes > self.config.inpaint_max_pixels * k * k and self.config.inpaint_scale < 1:
            k = int(np.ceil(np.sqrt(n_holes / self.config.inpaint_max_pixels)))
        small = depth[k // 2::k, k // 2::k] if k > 1 else depth
        unknown = small != small
        if unknown.all():
            return False
        h, w = small.shape
        rows = np.flatnonzero(holes.any(axis=1))
        cols = np.flatnonzero(holes.any(axis=0))
        margin = int(np.ceil(self.config.inpaint_radius)) + 2
        r0 = max(0, rows[0] // k - margin)
        r1 = min(h, rows[-1] // k + margin + 1)
        c0 = max(0, cols[0] // k - margin)
        c1 = min(w, cols[-1] // k + margin + 1)
        inv = np.zeros((h, w), np.float32)
        np.divide(np.float32(_INV_SCALE), small, out=inv, where=~unknown)
        crop_unknown = unknown[r0:r1, c0:c1]
        if crop_unknown.all():  # nothing known near the holes: widen to the whole image
            r0, r1, c0, c1 = 0, h, 0, w
            crop_unknown = unknown
        inv[r0:r1, c0:c1] = cv2.inpaint(inv[r0:r1, c0:c1], crop_unknown.view(np.uint8),
                                        self.config.inpaint_radius, cv2.INPAINT_TELEA)
        if k > 1:
            inv = cv2.resize(inv, (W, H), interpolation=cv2.INTER_LINEAR)
        # inverse depth below 1 / max_depth (or 0 where nothing reached) caps at max_depth
        np.maximum(inv, np.float32(_INV_SCALE / self.config.max_depth), out=inv)
        np.divide(np.float32(_INV_SCALE), inv, out=depth, where=holes)
        return True

