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

from .camera import require_camera_model
from .described import described

_MAX_PIXELS = 2 ** 27  # as camera.py: more than any camera (and the model's input) has
_DEPTH_HINT = "convert it to metres (e.g. depth_mm.astype(np.float32) / 1000)"


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
        # whole numbers only (2.0 is 2, never 192.5 truncated); stored as int so windows are ints
        try:
            height, width = _pixels(self.height, "height"), _pixels(self.width, "width")
        except PreprocessError:
            raise PreprocessError(f"model_input: height/width must be positive whole numbers of pixels, "
                                  f"got height {self.height!r}, width {self.width!r}") from None
        object.__setattr__(self, "height", height)
        object.__setattr__(self, "width", width)
        if self.height * self.width > _MAX_PIXELS:
            raise PreprocessError(f"model_input: height/width {self.height}x{self.width} is more than "
                                  f"{_MAX_PIXELS / 1e6:.0f} megapixels; give the model's input size")
        if not isinstance(self.mode, str) or self.mode not in ("resize", "crop"):
            raise PreprocessError(f"model_input.mode: {self.mode!r} is not one of 'resize', 'crop'")

    @property
    def size(self) -> tuple[int, int]:
        return (int(self.height), int(self.width))

    def window(self, image_w: int, image_h: int) -> Window:
        image_w, image_h = _pixels(image_w, "image_w"), _pixels(image_h, "image_h")
        if self.mode == "resize":
            return Window(self.width, self.height, 0, 0, self.width, self.height)
        scale = max(self.width / image_w, self.height / image_h)
        sw = max(self.width, int(round(image_w * scale)))
        sh = max(self.height, int(round(image_h * scale)))
        if sw * sh > _MAX_PIXELS:
            raise PreprocessError(
                f"model_input.mode: 'crop' would scale the {image_w}x{image_h} image to {sw}x{sh} to cover "
                f"{self.width}x{self.height}; the aspect ratios are too far apart (use mode 'resize')"
            )
        return Window(sw, sh, (sw - self.width) // 2, sh - self.height, self.width, self.height)

    def is_identity(self, image_w: int, image_h: int) -> bool:
        return (image_w, image_h) == (self.width, self.height)

    # -- image -> model ----------------------------------------------------------------------

    def camera_to_model(self, camera):
        require_camera_model(camera, PreprocessError)
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
        if labels is not None:
            if not isinstance(labels, np.ndarray) or labels.shape != (h, w):
                raise PreprocessError(
                    f"labels: expected a numpy array (H, W) = {(h, w)} of ids matching rgb, got {described(labels)}"
                )
            _check_map_dtype(labels, "labels")
        cam_m = self.camera_to_model(camera)
        if self.is_identity(w, h):
            return np.ascontiguousarray(rgb), cam_m, labels
        win = self.window(w, h)
        interp = cv2.INTER_AREA if win.scaled_w < w else cv2.INTER_LINEAR  # AREA avoids aliasing when shrinking
        rgb_m = _crop(cv2.resize(rgb, (win.scaled_w, win.scaled_h), interpolation=interp), win)
        labels_m = None
        if labels is not None:
            labels_m = _crop(_resize_nearest(labels, win.scaled_w, win.scaled_h), win)
        return np.ascontiguousarray(rgb_m), cam_m, labels_m

    def depth_to_model(self, depth: np.ndarray) -> np.ndarray:
        """Depth (H, W) float32, NaN = none, to the model size (inverse-depth bilinear)."""
        depth = _float_map(depth, "depth", "depth in metres, NaN = none", _DEPTH_HINT)
        h, w = _map_size(depth, "depth", 2)
        if self.is_identity(w, h):
            return depth.astype(np.float32, copy=False)
        win = self.window(w, h)
        return _crop(_resize_depth(depth, win.scaled_w, win.scaled_h), win)

    def nearest_to_model(self, image: np.ndarray) -> np.ndarray:
        """Any per-pixel map (H, W) or (H, W, C) (confidence, region codes) to the model size by
        nearest neighbour; the dtype is kept."""
        image = _as_array(image, "image")
        _check_map_dtype(image, "image")
        h, w = _map_size(image, "image", 3)
        if self.is_identity(w, h):
            return image
        win = self.window(w, h)
        return _crop(_resize_nearest(image, win.scaled_w, win.scaled_h), win)

    # -- model -> image ----------------------------------------------------------------------

    def to_image(self, depth_m: np.ndarray, conf_m: np.ndarray, camera):
        """Depth and confidence (model size) to the image size of ``camera``.

        Outside the model's window (crop mode) depth is NaN and confidence 0.
        """
        depth_m = _float_map(depth_m, "depth_m", "depth in metres, NaN = none", _DEPTH_HINT)
        conf_m = _float_map(conf_m, "conf_m", "confidence in [0, 1]", "scale it (e.g. conf_u8 / 255.0)")
        depth_m, conf_m = depth_m.astype(np.float32, copy=False), conf_m.astype(np.float32, copy=False)
        require_camera_model(camera, PreprocessError)
        if depth_m.shape != self.size or conf_m.shape != self.size:
            raise PreprocessError(
                f"to_image: depth {depth_m.shape} / confidence {conf_m.shape} are not the model size {self.size}"
            )
        w, h = int(camera.width), int(camera.height)
        if self.is_identity(w, h):
            return depth_m, _confidence(conf_m, depth_m)
        win = self.window(w, h)
        if (win.scaled_w, win.scaled_h) != (win.width, win.height):
            canvas_d = np.full((win.scaled_h, win.scaled_w), np.nan, np.float32)
            canvas_c = np.zeros((win.scaled_h, win.scaled_w), np.float32)
            canvas_d[win.y:win.y + win.height, win.x:win.x + win.width] = depth_m
            canvas_c[win.y:win.y + win.height, win.x:win.x + win.width] = conf_m
            depth_m, conf_m = canvas_d, canvas_c
        depth = _resize_depth(depth_m, w, h)
        return depth, _confidence(cv2.resize(conf_m, (w, h), interpolation=cv2.INTER_LINEAR), depth)


def _confidence(conf: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Confidence in [0, 1], 0 where depth is none or the confidence itself is NaN."""
    return np.where(np.isfinite(depth) & (conf == conf), np.clip(conf, 0.0, 1.0), np.float32(0.0))


def _pixels(value, field: str) -> int:
    """A positive whole number of pixels (int, numpy integer, or a float such as 192.0)."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok and isinstance(value, (float, np.floating)) and float(value).is_integer():
        ok = True
    if not ok or int(value) <= 0:
        raise PreprocessError(f"{field}: must be a positive whole number of pixels, got {value!r}")
    return int(value)


def _as_array(value, field: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged lists
        raise PreprocessError(f"{field}: not an array ({exc})") from None
    if arr.dtype == object:
        raise PreprocessError(f"{field}: expected a numeric array, got {described(value)} of objects")
    return arr


def _float_map(value, field: str, what: str, hint: str) -> np.ndarray:
    """A floating-point array (lists accepted); integer and bool maps are refused, never taken as
    metres (uint16 depth is usually millimetres) or as a confidence of 0..255."""
    arr = _as_array(value, field)
    if arr.dtype.kind != "f":
        raise PreprocessError(f"{field}: expected a float array ({what}), got {arr.dtype}; {hint}")
    return arr


def _map_size(arr: np.ndarray, field: str, max_ndim: int) -> tuple[int, int]:
    if not 2 <= arr.ndim <= max_ndim or arr.shape[0] == 0 or arr.shape[1] == 0:
        shape = "(H, W)" if max_ndim == 2 else "(H, W) or (H, W, C)"
        raise PreprocessError(f"{field}: expected a non-empty {shape} array, got shape {arr.shape}")
    return arr.shape[0], arr.shape[1]


_CV_NEAREST = {np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32,
                                     np.float16, np.float32, np.float64)}


def _check_map_dtype(arr: np.ndarray, field: str) -> None:
    if arr.dtype.kind not in "biuf":
        raise PreprocessError(f"{field}: expected an integer, bool or float array, got {arr.dtype}")


def _resize_nearest(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize that keeps the dtype. cv2 does it for the types it holds; 64-bit
    ids (which cv2 would narrow to int32, wrapping large ones), uint32 and bool take the same
    source pixels, floor(x * src / dst), by indexing."""
    if image.dtype in _CV_NEAREST and (image.ndim == 2 or image.shape[2] <= 512):
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)
    h, w = image.shape[:2]
    cols = np.minimum(np.floor(np.arange(width) * (1.0 / (width / w))).astype(np.intp), w - 1)
    rows = np.minimum(np.floor(np.arange(height) * (1.0 / (height / h))).astype(np.intp), h - 1)
    return image[rows[:, None], cols]


def _check_image(rgb: np.ndarray, camera) -> tuple[int, int]:
    require_camera_model(camera, PreprocessError)
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise PreprocessError(
            f"rgb: expected a numpy array uint8 (H, W, 3), got {described(rgb)}"
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
