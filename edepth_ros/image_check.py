"""Is a camera image a picture of a scene at all? (numpy/OpenCV)

A covered or failed camera still yields depth: the ground plane gives road depth whatever the
pixels say and the weight-free segmenter calls about half of a black, white or noise image road.
Depth and points of free road where the camera sees nothing is the one output a planner must never
get, so the pipeline checks every image first and gives an unusable one no depth (NaN) with the
reason. Three cheap statistics on a subsample of the luminance (0.3 ms at 1242x375):

- contrast: the standard deviation of luminance (grey levels). A lens cap, a black or white frame or
  a frozen uniform output has none.
- clipped: the fraction of pixels at black (<= 2) or white (>= 253). A camera blinded by the sun or
  under-exposed to black, with a few features left, has nearly all of them clipped.
- neighbour correlation: of horizontally adjacent pixels. Optics and demosaicing make it 0.90-1.00 on
  real frames; sensor noise (a covered lens at high gain) or garbage bytes give about 0.

Measured on every real frame in ../shared/kitti (and those frames darkened 10x with and without
sensor noise, brightened 4x, blurred, JPEG-compressed, halved) and on synthetic scenes, the
thresholds below leave a wide margin (docs/reliability.md, test/test_image_check.py).

A usable image can still be blind in part: a hand or a cap over half the lens, the sun blowing out
the road ahead. The segmenter calls such pixels road as readily as the whole blank frame, so
``blind_mask`` finds the windows (``blind_tile_size``) that are nearly all black or white (the same
clipped fraction) and the pixels there get no depth. Only clipping marks a window: flatness does
not, since JPEG compression and defocus flatten real road tiles to a standard deviation of 0; so a
cover that is dark but not black (values above 2 with noise), or one smaller than 1.25 tiles, is
not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

SAMPLES = 30_000  # luminance samples the statistics use (speed; the figures are stable well below this)
MIN_SIDE = 8  # smaller images are not judged (too few pixels to tell a scene from a blank)
MAX_TILE = 1024  # blind windows larger than this would say nothing short of a whole frame


@dataclass(frozen=True)
class ImageCheckConfig:
    """Thresholds of an unusable image. min_contrast: grey levels (0-255) of luminance standard
    deviation below which the image is blank. max_clipped_fraction: fraction of black or white
    pixels above which it is blinded or black (the whole image, or one window of it for the blind
    mask). min_neighbour_correlation: correlation of adjacent pixels below which it is noise.
    blind_tile_size: side in pixels of the windows the blind mask judges; 0 turns the mask off."""

    enabled: bool = True
    min_contrast: float = 2.0
    max_clipped_fraction: float = 0.98
    min_neighbour_correlation: float = 0.3
    blind_tile_size: int = 32

    def __post_init__(self):
        for name, lo, hi in (("min_contrast", 0.0, 255.0), ("max_clipped_fraction", 0.0, 1.0),
                             ("min_neighbour_correlation", -1.0, 1.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and lo <= value <= hi):
                raise ValueError(f"ImageCheckConfig.{name} = {value!r}: expected a number in [{lo}, {hi}]")
        tile = self.blind_tile_size
        if isinstance(tile, bool) or not isinstance(tile, int) or not (tile == 0 or MIN_SIDE <= tile <= MAX_TILE):
            raise ValueError(f"ImageCheckConfig.blind_tile_size = {tile!r}: expected 0 (no blind mask) or "
                             f"whole pixels in [{MIN_SIDE}, {MAX_TILE}]")


@dataclass(frozen=True)
class ImageStats:
    contrast: float
    clipped_fraction: float
    neighbour_correlation: float


def image_stats(rgb: np.ndarray) -> ImageStats:
    """The three statistics of a uint8 (H, W, 3) RGB image, on every step-th row and column."""
    h, w = rgb.shape[:2]
    step = max(1, int(np.sqrt(h * w / SAMPLES)))
    gray = _luminance(rgb[::step])  # whole rows: contiguous, so the conversion is cheap
    # each sampled pixel and its right-hand neighbour (adjacent, whatever the step)
    left, right = gray[:, 0:w - 1:step], gray[:, 1:w:step]
    contrast = float(left.std())
    clipped = float(np.mean((left <= 2.0) | (left >= 253.0)))
    a, b = left - left.mean(), right - right.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    corr = float((a * b).sum() / denom) if denom > 0 else 0.0
    return ImageStats(contrast, clipped, corr)


def image_problem(rgb: np.ndarray, config: ImageCheckConfig = ImageCheckConfig()) -> str:
    """Why ``rgb`` is not a usable picture of a scene, or "" when it is (or is too small to judge)."""
    if not config.enabled or min(rgb.shape[:2]) < MIN_SIDE:
        return ""
    s = image_stats(rgb)
    hint = "(lens covered, camera failed, or exposure wrong?): no depth for this frame"
    if s.contrast < config.min_contrast:
        return (f"image unusable: luminance std {s.contrast:.1f} grey levels < image_check.min_contrast "
                f"{config.min_contrast:g}, a blank frame {hint}")
    if s.clipped_fraction > config.max_clipped_fraction:
        return (f"image unusable: {100 * s.clipped_fraction:.1f}% of pixels black or white > "
                f"image_check.max_clipped_fraction {config.max_clipped_fraction:g} {hint}")
    if s.neighbour_correlation < config.min_neighbour_correlation:
        return (f"image unusable: adjacent pixels correlate {s.neighbour_correlation:.2f} < "
                f"image_check.min_neighbour_correlation {config.min_neighbour_correlation:g}, noise, "
                f"not a scene {hint}")
    return ""


def blind_mask(rgb: np.ndarray, config: ImageCheckConfig = ImageCheckConfig()) -> Optional[np.ndarray]:
    """Pixels of ``rgb`` the camera does not see through: bool (H, W), or None when there are none.

    A window of ``blind_tile_size`` pixels is blind when more than ``max_clipped_fraction`` of its
    pixels are black (<= 2) or white (>= 253). Windows start every quarter tile, so a cover at least
    1.25 tiles across (40 px) is found wherever it lies, not only on a grid; the clipped pixels
    within a tile of a blind window are blind too, so its edges are not lost either.
    """
    tile = config.blind_tile_size
    h, w = rgb.shape[:2]
    if not config.enabled or tile == 0 or min(h, w) < MIN_SIDE:
        return None
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    clipped = cv2.inRange(gray, 3, 252)  # 255 where not clipped
    cv2.bitwise_not(clipped, dst=clipped)
    th, tw = min(tile, h), min(tile, w)
    stride = max(1, tile // 4)
    y0 = np.unique(np.append(np.arange(0, h - th + 1, stride), h - th))
    x0 = np.unique(np.append(np.arange(0, w - tw + 1, stride), w - tw))
    # clipped pixels per window from the integral image: four lookups a window
    integral = cv2.integral(clipped, sdepth=cv2.CV_64F)
    counts = (integral[np.ix_(y0 + th, x0 + tw)] - integral[np.ix_(y0, x0 + tw)]
              - integral[np.ix_(y0 + th, x0)] + integral[np.ix_(y0, x0)])
    rows, cols = np.nonzero(counts > 255.0 * config.max_clipped_fraction * th * tw)
    if rows.size == 0:
        return None
    # the union of the blind windows: their origins dilated by a window (anchored at its far
    # corner), then the clipped pixels within a tile of it
    origins = np.zeros((h, w), np.uint8)
    origins[y0[rows], x0[cols]] = 1
    core = cv2.dilate(origins, np.ones((th, tw), np.uint8), anchor=(tw - 1, th - 1),
                      borderType=cv2.BORDER_CONSTANT, borderValue=0)
    near = cv2.dilate(core, np.ones((2 * tile + 1, 2 * tile + 1), np.uint8),
                      borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (core > 0) | ((near > 0) & (clipped > 0))


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma (OpenCV's RGB2GRAY) as float32."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
