"""Semantic labels for embodied depth: a segmenter interface, a weight-free geometric segmenter,
and a pass-through for label images made elsewhere (a learned or external segmenter).

Every segmenter maps `(rgb, camera, plane)` to a uint8 (H, W) image of Cityscapes train ids
(edepth_ros.labels), the convention EmbodiedDepth reads.

GeometricSegmenter needs no weights. It reasons as a driver does on the first frame:
- the ground plane says where the horizon is and how far away each pixel below it would be on
  the road; the patch of road just ahead of the vehicle (a few metres ahead, a lane wide) is
  assumed free and shows what this road looks like (colour in Lab, local texture);
- road = the pixels below the horizon that look like that patch, connected to it without
  crossing a strong image edge (curbs, lane-side borders), grown near to far, lane markings
  bridged, then cleaned morphologically (markings and small holes closed);
- other ground (sidewalk, terrain) = smooth, grey or grassy regions next to the road, below
  the horizon, within a pavement's width of it, with only ground below them in their column;
- sky = bright, smooth, blue or near-white regions above the horizon connected to the top of
  the image;
- everything else stands on the ground: vegetation where green, building otherwise.
It works at reduced resolution (`work_scale`) and returns labels at the image's size.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional, Protocol, runtime_checkable

import numpy as np

from . import labels as L
from .described import described


class SegmenterError(ValueError):
    """Bad input to a segmenter; the message names the argument and what to do."""


@runtime_checkable
class Segmenter(Protocol):
    """Anything that turns an image into Cityscapes train-id labels."""

    def segment(self, rgb: np.ndarray, camera, plane) -> np.ndarray:
        """rgb uint8 (H, W, 3) RGB; camera: CameraModel of this image; plane: GroundPlane in its
        optical frame or None. Returns uint8 (H, W) Cityscapes train ids."""
        ...


def check_rgb(rgb, camera=None, what: str = "rgb") -> np.ndarray:
    """The image as a C-contiguous uint8 (H, W, 3) array, or SegmenterError saying what is wrong."""
    if not isinstance(rgb, np.ndarray):
        raise SegmenterError(f"{what}: expected a numpy uint8 (H, W, 3) RGB image, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise SegmenterError(
            f"{what}: dtype is {rgb.dtype}, expected uint8 (H, W, 3) RGB; convert float images in "
            "[0, 1] with (img * 255).round().astype(np.uint8)"
        )
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise SegmenterError(
            f"{what}: shape is {rgb.shape}, expected (H, W, 3) RGB (mono or RGBA images: convert "
            "with cv2.cvtColor first)"
        )
    if camera is not None and (rgb.shape[0], rgb.shape[1]) != (camera.height, camera.width):
        raise SegmenterError(
            f"{what}: {rgb.shape[1]}x{rgb.shape[0]} does not match the camera model's "
            f"{camera.width}x{camera.height}; pass the CameraInfo of this image (or resize the model)"
        )
    return np.ascontiguousarray(rgb)


class LabelImageSegmenter:
    """Pass-through for labels made elsewhere: `set_labels(labels)` before each `segment`, or
    construct with a callable `source(rgb, camera, plane) -> labels` (e.g. a learned network).

    Labels are validated (uint8, the image's size); a `remap` table (256 entries) converts
    another convention's ids to Cityscapes train ids.
    """

    def __init__(self, labels: Optional[np.ndarray] = None, source=None, remap=None):
        self._labels = labels
        self._source = source
        self._remap = None if remap is None else _remap_table(remap)

    def set_labels(self, labels: np.ndarray) -> None:
        self._labels = labels

    def segment(self, rgb, camera, plane=None) -> np.ndarray:
        rgb = check_rgb(rgb, camera)
        if self._source is not None:
            labels = self._source(rgb, camera, plane)
        elif self._labels is not None:
            labels = self._labels
        else:
            raise SegmenterError(
                "LabelImageSegmenter: no labels given; call set_labels(labels) for this frame or "
                "construct it with source=callable"
            )
        labels = L.validate_labels(labels, rgb.shape[0], rgb.shape[1], "segmenter labels")
        return self._remap[labels] if self._remap is not None else labels


def _remap_table(remap) -> np.ndarray:
    table = np.asarray(remap)
    if table.shape != (256,) or not np.issubdtype(table.dtype, np.integer) or table.min() < 0 or table.max() > 255:
        raise SegmenterError("LabelImageSegmenter remap: expected 256 integer entries in 0..255 (old id -> train id)")
    return table.astype(np.uint8)


@dataclass(frozen=True)
class GeometricConfig:
    """Settings of the weight-free segmenter (defaults chosen on synthetic scenes and KITTI
    road frames; see docs/synthetic_and_segmenter.md).

    work_scale: resolution factor the segmenter works at. seed_depth: range of plane depths
    (metres past the nearest visible road row) and seed_half_width (metres either side of the
    camera) of the road patch assumed free ahead. color_threshold: robust Mahalanobis distance
    in Lab to the patch, lightness weighted by lightness_weight where darker than the patch (so
    shadows stay road) and by brighter_weight where brighter (pavements, curbs).
    texture_threshold: local lightness std (Lab units) above which a pixel is not road.
    edge_low/edge_high: Canny thresholds of the barriers region growing does not cross.
    max_range: metres; plane depths beyond this are treated as the horizon.
    default_height: camera height (m) of the level plane assumed when no plane is given.
    sky_min_lightness: Lab lightness (0-100) below which nothing is sky.
    max_ground_width: metres beside the road (on the plane) that can be sidewalk or terrain.
    marking_width: pixels (full resolution) wider than any lane marking; marking_contrast: how
    much brighter (grey levels) than the road beside it a marking is; marking_side_tolerance:
    largest lightness difference (Lab L) between the two sides of a line bridged as a marking.
    growth_bands: plane depths (m) at which region growing pauses: road grows near to far.
    """

    work_scale: float = 0.5
    seed_depth: float = 7.0
    seed_half_width: float = 0.6
    color_threshold: float = 3.0
    lightness_weight: float = 0.35
    brighter_weight: float = 0.6
    texture_threshold: float = 6.0
    edge_low: float = 40.0
    edge_high: float = 90.0
    max_range: float = 80.0
    default_height: float = 1.65
    sky_min_lightness: float = 60.0
    max_ground_width: float = 6.0
    marking_width: float = 24.0
    marking_contrast: float = 25.0
    marking_side_tolerance: float = 6.0
    growth_bands: tuple = (15.0, 25.0, 40.0)

    def __post_init__(self):
        # types first: a string or a bare number for the bands would fail in the comparisons below
        # with a TypeError that names nothing; a bool is not a measure
        real = (int, float, np.integer, np.floating)
        for f in fields(self):
            value = getattr(self, f.name)
            items = value if f.name == "growth_bands" else (value,)
            if f.name == "growth_bands" and not isinstance(value, (tuple, list)):
                raise SegmenterError(f"GeometricConfig.growth_bands: {value!r}; expected a list of plane depths "
                                     "in metres, increasing (e.g. [15, 25, 40])")
            if any(isinstance(v, bool) or not isinstance(v, real) for v in items):
                raise SegmenterError(f"GeometricConfig.{f.name}: {value!r}; expected "
                                     f"{'numbers' if f.name == 'growth_bands' else 'a number'}")
        checks = {
            "work_scale": 0.05 <= self.work_scale <= 1.0,
            "seed_depth": self.seed_depth > 0,
            "seed_half_width": self.seed_half_width > 0,
            "color_threshold": self.color_threshold > 0,
            "lightness_weight": 0 <= self.lightness_weight <= 1,
            "brighter_weight": 0 <= self.brighter_weight <= 1,
            "texture_threshold": self.texture_threshold > 0,
            "edge_low": 0 < self.edge_low <= self.edge_high,
            "max_range": self.max_range > 0,
            "default_height": self.default_height > 0,
            "sky_min_lightness": 0 <= self.sky_min_lightness <= 100,
            "max_ground_width": self.max_ground_width >= 0,
            "marking_width": self.marking_width >= 2,
            "marking_contrast": self.marking_contrast > 0,
            "marking_side_tolerance": self.marking_side_tolerance >= 0,
            "growth_bands": all(b > 0 for b in self.growth_bands) and list(self.growth_bands) == sorted(self.growth_bands),
        }
        for name, ok in checks.items():
            values = np.ravel(getattr(self, name))
            if not ok or not np.all(np.isfinite(values)):  # infinity passes "> 0" and then overflows
                raise SegmenterError(f"GeometricConfig.{name}: {getattr(self, name)!r} is out of range")


class GeometricSegmenter:
    """Road, ground, vertical and sky from the ground plane and the image itself; no weights."""

    def __init__(self, config: Optional[GeometricConfig] = None, debug: bool = False):
        self.config = config or GeometricConfig()
        self._geo_cache: dict = {}
        self.debug = debug  # keep the intermediate maps of the last call in last_debug
        self.last_debug: dict = {}

    # ------------------------------------------------------------------ geometry
    def _geometry(self, camera, plane):
        """At work resolution: the work camera, inverse plane depth and the ground point's lateral
        offset (metres) for every pixel; cached per (camera, plane)."""
        key = (camera.key(), plane.key())
        geo = self._geo_cache.get(key)
        if geo is None:
            s = self.config.work_scale
            w, h = max(8, int(round(camera.width * s))), max(8, int(round(camera.height * s)))
            cam = camera.resized(w, h)
            rays = cam.rays().astype(np.float64)
            R = camera.rect_from_optical
            n = plane.normal if np.allclose(R, np.eye(3)) else R @ plane.normal
            inv = -(rays @ n) / plane.height  # 1 / plane depth; <= 0 above the horizon
            # 1/0 and 0 * inf only where the plane is out of range; np.where discards them
            with np.errstate(divide="ignore", invalid="ignore"):
                depth = np.where(inv > 1.0 / self.config.max_range, 1.0 / inv, np.inf)
                # lateral offset in the plane: the ray's x scaled to the ground point
                lateral = np.where(np.isfinite(depth), rays[..., 0] * depth, np.inf)
            # at full resolution: which pixels the plane can be seen at (n . r < 0), so that
            # upsampled ground labels never cross the horizon
            if camera.separable:
                x, y = camera.ray_axes()
                nr_full = n[0] * x[None, :] + (n[1] * y + n[2])[:, None]
            else:
                nr_full = camera.rays().astype(np.float64) @ n
            below_full = nr_full < -plane.height / self.config.max_range
            geo = (cam, inv.astype(np.float32), depth.astype(np.float32), lateral.astype(np.float32), below_full)
            if len(self._geo_cache) > 8:
                self._geo_cache.clear()
            self._geo_cache[key] = geo
        return geo

    def _plane(self, plane):
        from .ground import GroundPlane

        if plane is None:
            return GroundPlane.from_static(self.config.default_height)
        if not isinstance(plane, GroundPlane):
            raise SegmenterError(
                f"plane: expected a GroundPlane or None, got {described(plane)}; build it with "
                "GroundPlane.from_transform(T_cam_from_ground) or GroundPlane.from_static(height, pitch, roll)"
            )
        return plane

    # ------------------------------------------------------------------ segmentation
    def segment(self, rgb, camera, plane=None) -> np.ndarray:
        import cv2

        from .camera import require_camera_model

        require_camera_model(camera, SegmenterError)
        plane = self._plane(plane)
        rgb = check_rgb(rgb, camera)
        cfg = self.config
        H, W = rgb.shape[:2]
        cam, inv, depth, lateral, below_full = self._geometry(camera, plane)
        h, w = cam.height, cam.width
        small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2Lab).astype(np.float32)
        lab[..., 0] *= 100.0 / 255.0  # L in 0..100, a and b offset by 128
        Lc = lab[..., 0]
        # local texture: std of lightness in a 5x5 window
        mean = cv2.blur(Lc, (5, 5))
        sq = cv2.blur(Lc * Lc, (5, 5))
        texture = np.sqrt(np.maximum(sq - mean * mean, 0.0))
        below = np.isfinite(depth)

        labels = np.full((h, w), L.BUILDING, np.uint8)
        road = self._road(lab, texture, depth, lateral, below, small)
        sky = self._sky(lab, texture, inv, road)
        ground = self._ground(lab, texture, below, road, sky, lateral)
        green = (lab[..., 1] < 128 - 4) & (lab[..., 2] > 128 + 2)
        labels[green] = L.VEGETATION
        labels[ground] = L.SIDEWALK
        labels[ground & green] = L.TERRAIN
        labels[sky] = L.SKY
        labels[road] = L.ROAD
        if (h, w) == (H, W):
            out = labels
        else:
            # upsample: the road mask smoothly (sharp, sub-pixel boundaries), the rest nearest
            out = cv2.resize(labels, (W, H), interpolation=cv2.INTER_NEAREST)
            road_up = cv2.resize(road.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR) >= 0.5
            lost = (out == L.ROAD) & ~road_up
            ground_up = cv2.resize(ground.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST) > 0
            out[lost] = np.where(ground_up[lost], L.SIDEWALK, L.BUILDING)
            out[road_up] = L.ROAD
        # road and ground only where the plane is in front of the camera within range
        out[~below_full & ((out == L.ROAD) | (out == L.SIDEWALK) | (out == L.TERRAIN))] = L.BUILDING
        return out

    def _seed(self, depth, lateral, below):
        cfg = self.config
        if not below.any():
            return np.zeros_like(below)
        nearest = float(np.min(depth[below]))
        return below & (depth <= nearest + cfg.seed_depth) & (np.abs(lateral) <= cfg.seed_half_width)

    def _road(self, lab, texture, depth, lateral, below, small):
        import cv2

        cfg = self.config
        seed = self._seed(depth, lateral, below)
        self.last_debug = {}
        if seed.sum() < 10:
            return np.zeros_like(below)
        px = lab[seed]
        # robust colour statistics of the patch: drop markings and dark spots by lightness
        lo, hi = np.percentile(px[:, 0], [10, 90])
        core = px[(px[:, 0] >= lo) & (px[:, 0] <= hi)]
        med = np.median(core, axis=0)
        mad = np.median(np.abs(core - med), axis=0) * 1.4826
        sig = np.maximum(mad, np.array([5.0, 1.5, 1.5], np.float32))
        # distances on a smoothed image: asphalt grain must not break the region into speckle
        dl = (cv2.GaussianBlur(lab, (5, 5), 0) - med) / sig
        # shadows darken the road but rarely brighten it; pavements and curbs are brighter than
        # asphalt: lightness counts more above the road's (brighter_weight) than below it
        wl = np.where(dl[..., 0] > 0, cfg.brighter_weight, cfg.lightness_weight).astype(np.float32)
        dist = np.sqrt(wl * dl[..., 0] ** 2 + dl[..., 1] ** 2 + dl[..., 2] ** 2)
        tex_seed = float(np.median(texture[seed]))
        smooth = texture <= max(cfg.texture_threshold, 2.0 * tex_seed)
        gray = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), (5, 5), 0)
        # Canny on a mirrored border: lines run on to the image's edge instead of stopping a few
        # pixels short of it and leaving a gap the region could leak through
        pad = 4
        padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REFLECT)
        edges = cv2.Canny(padded, cfg.edge_low, cfg.edge_high)[pad:-pad, pad:-pad] > 0
        cand = below & (dist <= cfg.color_threshold) & smooth & ~edges
        # lane markings: thin, bright, unsaturated lines on the road. They are road (Cityscapes),
        # and a solid line must not cut the carriageway in two, so they are bridged: a marking
        # pixel joins the candidates where the pixels just left and right of the line are both
        # road-coloured and equally bright (a curb, also thin and bright, has road on one side
        # and a differently lit pavement on the other)
        kw = max(3, int(round(cfg.marking_width * cfg.work_scale)) | 1)
        off = kw // 2 + 1
        chroma = np.hypot(lab[..., 1] - 128, lab[..., 2] - 128)
        roadlike = below & (dist <= cfg.color_threshold) & smooth
        light = cv2.GaussianBlur(lab[..., 0], (5, 5), 0)
        markings = np.zeros_like(below)
        for axis in (1, 0):  # lines steep in the image (checked across x), flat ones (across y)
            kshape = (kw, 1) if axis == 1 else (1, kw)
            tophat = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_RECT, kshape))
            marking = below & (tophat >= cfg.marking_contrast) & (chroma < 12)
            marking = cv2.dilate(marking.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            both = np.zeros_like(marking)
            r, lt = np.moveaxis(roadlike, axis, 0), np.moveaxis(light, axis, 0)
            np.moveaxis(both, axis, 0)[off:-off] = (
                r[:-2 * off] & r[2 * off:] & (np.abs(lt[:-2 * off] - lt[2 * off:]) <= cfg.marking_side_tolerance))
            # the whole width of a bridged line (its edge pixels see the line itself on one side)
            bridge = cv2.dilate((marking & both).astype(np.uint8), np.ones(kshape[::-1], np.uint8)) > 0
            cand |= marking & bridge
            markings |= marking
        # the patch may graze a lane edge line: start from its largest road-coloured piece only
        n, comp, stats, _ = cv2.connectedComponentsWithStats((seed & cand).astype(np.uint8), connectivity=4)
        if n > 1:
            seed = comp == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        road = _grow_by_range(cand, seed, depth, cfg.growth_bands)
        # close lane markings, edge pixels and small holes inside the road
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        road = cv2.morphologyEx(road.astype(np.uint8), cv2.MORPH_CLOSE, k) > 0
        road = _fill_holes(road, max_area=int(0.005 * road.size)) & below
        road = cv2.morphologyEx(road.astype(np.uint8), cv2.MORPH_OPEN, k) > 0
        # grow back over the edge pixels the barrier removed at the border (geodesic dilation
        # into road-coloured pixels: the road reaches the curb, not one edge width short of it)
        # the same over the edge lines along the road's border (paint on the road; only the
        # lines between lanes were bridged above), and the strip of asphalt beyond them
        grow = below & (((dist <= cfg.color_threshold) & smooth) | markings)
        k3 = np.ones((3, 3), np.uint8)
        for _ in range(3):
            road |= (cv2.dilate(road.astype(np.uint8), k3) > 0) & grow
        if self.debug:
            self.last_debug = dict(seed=seed, dist=dist, edges=edges, cand=cand, texture=texture)
        return road

    def _sky(self, lab, texture, inv, road):
        import cv2

        cfg = self.config
        above = inv <= 0
        # sky: bright and smooth, and blue or (overcast) nearly white; a pale facade is neither
        bluish = lab[..., 2] <= 128 - 4
        white = (lab[..., 0] >= 85) & (np.hypot(lab[..., 1] - 128, lab[..., 2] - 128) < 8)
        bright = (lab[..., 0] >= cfg.sky_min_lightness) & (bluish | white)
        cand = above & bright & (texture <= cfg.texture_threshold) & ~road
        n, comp = cv2.connectedComponents(cand.astype(np.uint8), connectivity=4)
        top = np.unique(comp[0][cand[0]])
        top = top[top > 0]
        return np.isin(comp, top)

    def _ground(self, lab, texture, below, road, sky, lateral):
        """Smooth, unsaturated or grassy regions below the horizon that touch the road and lie
        within max_ground_width metres (on the plane) beside it: sidewalks, verges."""
        import cv2

        cfg = self.config
        chroma = np.hypot(lab[..., 1] - 128, lab[..., 2] - 128)
        grassy = (lab[..., 1] < 128 - 4) & (lab[..., 2] > 128 + 2)
        cand = below & ~road & ~sky & (texture <= 2.0 * cfg.texture_threshold) & ((chroma < 25) | grassy)
        # per row: the road's lateral extent on the plane, widened by a sidewalk's width
        lat_road = np.where(road, lateral, np.nan)
        rows = road.any(axis=1)
        lo = np.full(road.shape[0], np.inf)
        hi = np.full(road.shape[0], -np.inf)
        if rows.any():
            lo[rows] = np.nanmin(lat_road[rows], axis=1) - cfg.max_ground_width
            hi[rows] = np.nanmax(lat_road[rows], axis=1) + cfg.max_ground_width
        cand &= (lateral >= lo[:, None]) & (lateral <= hi[:, None])
        n, comp = cv2.connectedComponents(cand.astype(np.uint8), connectivity=4)
        # a curb between road and pavement is an edge a few pixels wide: adjacency spans it
        near_road = cv2.dilate(road.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        keep = np.unique(comp[near_road & cand])
        keep = keep[keep > 0]
        ground = np.isin(comp, keep)
        # ground lies under nothing: in its column, everything between it and the image bottom is
        # ground or road. A pale car body beside the road has its wheels and shadow below it.
        # (gaps a few pixels tall, rails or speckle, do not count: closed first)
        gap = max(3, int(round(16 * cfg.work_scale)) | 1)
        flat = cv2.morphologyEx((ground | road).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((gap, 3), np.uint8))
        supported = np.flipud(np.cumprod(np.flipud(flat), axis=0)) > 0
        return ground & supported


def _grow_by_range(cand: np.ndarray, seed: np.ndarray, depth: np.ndarray, bands) -> np.ndarray:
    """Pixels of `cand` connected (4-neighbours) to the seed, grown outwards in range bands.

    Band k keeps only the candidate regions inside it that touch the road found in bands < k.
    Far away a curb is thinner than a pixel and its edge vanishes, so road and sidewalk touch
    there; growing near-to-far keeps such a far-field leak from flowing back to near range.
    """
    import cv2

    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    road = seed & cand
    lo = 0.0
    for hi in list(bands) + [np.inf]:
        band = cand & (depth >= lo) & (depth < hi) if np.isfinite(hi) else cand & (depth >= lo)
        inside = band | road
        n, comp = cv2.connectedComponents(inside.astype(np.uint8), connectivity=4)
        touch = (cv2.dilate(road.astype(np.uint8), cross) > 0) & inside
        keep = np.unique(comp[touch])
        keep = keep[keep > 0]
        road = np.isin(comp, keep)
        lo = hi
    return road


def _fill_holes(mask: np.ndarray, max_area: int) -> np.ndarray:
    """Fill small regions of ~mask not connected to the image's top or sides (lane markings,
    stains inside the road); large enclosed regions (a car ahead) stay out."""
    import cv2

    inv = (~mask).astype(np.uint8)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    border = np.zeros(n, bool)
    # the bottom edge does not count: the road runs under the vehicle, so a marking cut by
    # the bottom of the image is still inside it
    border[np.unique(np.concatenate([comp[0], comp[:, 0], comp[:, -1]]))] = True
    small = (stats[:, cv2.CC_STAT_AREA] <= max_area) & ~border
    small[0] = False
    return mask | small[comp]


def road_iou(pred_labels: np.ndarray, road_mask: np.ndarray, road_ids=(L.ROAD,)) -> float:
    """Intersection over union of the predicted road (ids in road_ids) and a boolean road mask."""
    pred = np.isin(pred_labels, list(road_ids))
    gt = np.asarray(road_mask, bool)
    union = np.count_nonzero(pred | gt)
    return float(np.count_nonzero(pred & gt) / union) if union else 1.0
