"""Camera resolution <-> model resolution, shared by every backend (numpy + OpenCV).

``resize``: the image is scaled to the model size (the aspect may change); the intrinsics follow
with ``CameraModel.resized`` so rays, and therefore the embodied depth, stay exact.
``crop``: the image is scaled uniformly until it covers the model size, then the bottom-centre
window is kept (the road is at the bottom; the sky rows carry least depth), intrinsics via
``CameraModel.resized`` then ``.cropped``. Pixels outside the window get no estimate (NaN).

Depth is resampled as inverse depth: over a plane (road, a wall facing the camera) 1/z is linear
in (u, v), so bilinear interpolation of 1/z reproduces the plane exactly, where interpolating z
would not. Labels and confidences of regions use nearest neighbour (ids must not blend).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np


class PreprocessError(ValueError):
    """A model input size or image given to ModelInput is unusable (the message names it)."""


@dataclass(frozen=True)
class Window:
    """Where the model's view sits in the image: scale to (scaled_w, scaled_h), then crop."""

    scaled_w: int
    scaled_h: int
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class ModelInput:
    height: int
    width: int
    mode: str = "resize"

    def __post_init__(self):
        if int(self.height) <= 0 or int(self.width) <= 0:
            raise PreprocessError(f"model_input: height/width must be positive, got {self.height}x{self.width}")
        if self.mode not in ("resize", "crop"):
            raise PreprocessError(f"model_input.mode: {self.mode!r} is not one of 'resize', 'crop'")

    @property
    def size(self) -> tuple[int, int]:
        return (int(self.height), int(self.width))

    def window(self, image_w: int, image_h: int) -> Window:
        if self.mode == "resize":
            return Window(self.width, self.height, 0, 0, self.width, self.height)
        scale = max(self.width / image_w, self.height / image_h)
        sw = max(self.width, int(round(image_w * scale)))
        sh = max(self.height, int(round(image_h * scale)))
        return Window(sw, sh, (sw - self.width) // 2, sh - self.height, self.width, self.height)

    def is_identity(self, image_w: int, image_h: int) -> bool:
        return (image_w, image_h) == (self.width, self.height)

    # -- image -> model ----------------------------------------------------------------------

    def camera_to_model(self, camera):
        if self.is_identity(camera.width, camera.height):
            return camera
        win = self.window(camera.width, camera.height)
        cam = camera.resized(win.scaled_w, win.scaled_h)
        if (win.scaled_w, win.scaled_h) != (win.width, win.height):
            cam = cam.cropped(win.x, win.y, win.width, win.height)
        return cam

    def to_model(self, rgb: np.ndarray, camera, labels: Optional[np.ndarray] = None):
        """(rgb_m, camera_m, labels_m) at the model size; labels_m None when labels is None."""
        h, w = _check_image(rgb, camera)
        cam_m = self.camera_to_model(camera)
        if self.is_identity(w, h):
            return np.ascontiguousarray(rgb), cam_m, labels
        win = self.window(w, h)
        interp = cv2.INTER_AREA if win.scaled_w < w else cv2.INTER_LINEAR  # AREA avoids aliasing when shrinking
        rgb_m = _crop(cv2.resize(rgb, (win.scaled_w, win.scaled_h), interpolation=interp), win)
        labels_m = None
        if labels is not None:
            labels_m = _crop(cv2.resize(labels, (win.scaled_w, win.scaled_h), interpolation=cv2.INTER_NEAREST), win)
        return np.ascontiguousarray(rgb_m), cam_m, labels_m

    def depth_to_model(self, depth: np.ndarray) -> np.ndarray:
        """Depth (H, W) float32, NaN = none, to the model size (inverse-depth bilinear)."""
        h, w = depth.shape
        if self.is_identity(w, h):
            return depth.astype(np.float32, copy=False)
        win = self.window(w, h)
        return _crop(_resize_depth(depth, win.scaled_w, win.scaled_h), win)

    def nearest_to_model(self, image: np.ndarray) -> np.ndarray:
        """Any per-pixel map (confidence, region codes) to the model size by nearest neighbour."""
        h, w = image.shape[:2]
        if self.is_identity(w, h):
            return image
        win = self.window(w, h)
        return _crop(cv2.resize(image, (win.scaled_w, win.scaled_h), interpolation=cv2.INTER_NEAREST), win)

    # -- model -> image ----------------------------------------------------------------------

    def to_image(self, depth_m: np.ndarray, conf_m: np.ndarray, camera):
        """Depth and confidence (model size) to the image size of ``camera``.

        Outside the model's window (crop mode) depth is NaN and confidence 0.
        """
        depth_m = np.asarray(depth_m, dtype=np.float32)
        conf_m = np.asarray(conf_m, dtype=np.float32)
        if depth_m.shape != self.size or conf_m.shape != self.size:
            raise PreprocessError(
                f"to_image: depth {depth_m.shape} / confidence {conf_m.shape} are not the model size {self.size}"
            )
        w, h = int(camera.width), int(camera.height)
        if self.is_identity(w, h):
            return depth_m, conf_m
        win = self.window(w, h)
        if (win.scaled_w, win.scaled_h) != (win.width, win.height):
            canvas_d = np.full((win.scaled_h, win.scaled_w), np.nan, np.float32)
            canvas_c = np.zeros((win.scaled_h, win.scaled_w), np.float32)
            canvas_d[win.y:win.y + win.height, win.x:win.x + win.width] = depth_m
            canvas_c[win.y:win.y + win.height, win.x:win.x + win.width] = conf_m
            depth_m, conf_m = canvas_d, canvas_c
        depth = _resize_depth(depth_m, w, h)
        conf = cv2.resize(conf_m, (w, h), interpolation=cv2.INTER_LINEAR)
        conf[~np.isfinite(depth)] = 0.0
        return depth, np.clip(conf, 0.0, 1.0)


def _check_image(rgb: np.ndarray, camera) -> tuple[int, int]:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise PreprocessError(
            f"rgb: expected uint8 (H, W, 3), got {getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}"
        )
    h, w = rgb.shape[:2]
    if (w, h) != (int(camera.width), int(camera.height)):
        raise PreprocessError(
            f"rgb: image is {w}x{h} but the camera model is {camera.width}x{camera.height}; "
            "the CameraInfo does not belong to this image (check binning/ROI)"
        )
    return h, w


def _crop(image: np.ndarray, win: Window) -> np.ndarray:
    if (win.scaled_w, win.scaled_h) == (win.width, win.height):
        return image
    return image[win.y:win.y + win.height, win.x:win.x + win.width]


def _resize_depth(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """NaN-aware resize of a depth map through inverse depth.

    Valid pixels are averaged with weights from a resized validity mask; a target pixel whose
    footprint is mostly empty (weight < 0.5) gets NaN, so holes do not shrink into fake depth.
    """
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    interp = cv2.INTER_AREA if width < depth.shape[1] and height <= depth.shape[0] else cv2.INTER_LINEAR
    if valid.all():
        return (1.0 / cv2.resize(1.0 / depth, (width, height), interpolation=interp)).astype(np.float32)
    inv = np.zeros_like(depth)
    np.divide(1.0, depth, out=inv, where=valid)
    weight = cv2.resize(valid.astype(np.float32), (width, height), interpolation=interp)
    inv_sum = cv2.resize(inv, (width, height), interpolation=interp)
    out = np.full((height, width), np.nan, np.float32)
    ok = (weight >= 0.5) & (inv_sum > 0)
    out[ok] = weight[ok] / inv_sum[ok]
    return out
