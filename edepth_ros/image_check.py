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
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SAMPLES = 30_000  # luminance samples the statistics use (speed; the figures are stable well below this)
MIN_SIDE = 8  # smaller images are not judged (too few pixels to tell a scene from a blank)


@dataclass(frozen=True)
class ImageCheckConfig:
    """Thresholds of an unusable image. min_contrast: grey levels (0-255) of luminance standard
    deviation below which the image is blank. max_clipped_fraction: fraction of black or white
    pixels above which it is blinded or black. min_neighbour_correlation: correlation of adjacent
    pixels below which it is noise."""

    enabled: bool = True
    min_contrast: float = 2.0
    max_clipped_fraction: float = 0.98
    min_neighbour_correlation: float = 0.3

    def __post_init__(self):
        for name, lo, hi in (("min_contrast", 0.0, 255.0), ("max_clipped_fraction", 0.0, 1.0),
                             ("min_neighbour_correlation", -1.0, 1.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and lo <= value <= hi):
                raise ValueError(f"ImageCheckConfig.{name} = {value!r}: expected a number in [{lo}, {hi}]")


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


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma (OpenCV's RGB2GRAY) as float32."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
