"""Geometry-consistent augmentation: every crop or resize also changes the camera model, so the
embodied depth computed afterwards matches the image; a horizontal flip flips image, labels,
ground truth and embodied depth together (after the embodied depth is computed)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

KB_CROP = (352, 1216)  # KITTI benchmark crop (height, width): bottom rows, centred columns


class AugmentError(ValueError):
    pass


@dataclass
class AugmentConfig:
    flip: float = 0.5           # probability of a horizontal flip
    scale: tuple = (0.7, 1.0)   # crop side as a fraction of the largest crop of the model's aspect
    color: float = 0.2          # brightness / contrast / saturation jitter strength
    enabled: bool = True

    @classmethod
    def from_dict(cls, d: dict | None, prefix: str = "data.augment") -> "AugmentConfig":
        d = dict(d or {})
        known = {"flip", "scale", "color", "enabled"}
        for k in d:
            if k not in known:
                raise AugmentError(f"{prefix}.{k}: unknown key; valid keys: {sorted(known)}")
        cfg = cls(**d)
        cfg.scale = tuple(float(s) for s in cfg.scale)
        if not 0 <= cfg.flip <= 1:
            raise AugmentError(f"{prefix}.flip: {cfg.flip} must be a probability in [0, 1]")
        if len(cfg.scale) != 2 or not 0 < cfg.scale[0] <= cfg.scale[1] <= 1:
            raise AugmentError(f"{prefix}.scale: {list(cfg.scale)} must be [low, high] with 0 < low <= high <= 1")
        if cfg.color < 0:
            raise AugmentError(f"{prefix}.color: {cfg.color} must be >= 0")
        return cfg


def kb_crop_window(height: int, width: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the KITTI benchmark crop: 352 x 1216, bottom-aligned, centred."""
    ch, cw = min(KB_CROP[0], height), min(KB_CROP[1], width)
    return (width - cw) // 2, height - ch, cw, ch


def crop_window(height: int, width: int, out_hw: tuple, rng: np.random.Generator | None,
                scale: tuple = (1.0, 1.0)) -> tuple[int, int, int, int]:
    """A crop of the model's aspect ratio: random size/position with rng, else the largest, bottom-centred."""
    aspect = out_hw[1] / out_hw[0]
    full_w = min(width, int(round(height * aspect)))
    full_h = min(height, int(round(full_w / aspect)))
    s = 1.0 if rng is None else float(rng.uniform(*scale))
    cw, ch = max(8, int(round(full_w * s))), max(8, int(round(full_h * s)))
    if rng is None:  # deterministic: bottom-centred (the road, where the ground truth is)
        return (width - cw) // 2, height - ch, cw, ch
    return int(rng.integers(0, width - cw + 1)), int(rng.integers(0, height - ch + 1)), cw, ch


def resize_sparse_depth(depth: np.ndarray, out_hw: tuple) -> np.ndarray:
    """Resize a depth image keeping every measurement a real one (nearest for dense maps; for
    sparse LiDAR maps each valid pixel lands in its target pixel, the nearest return winning)."""
    h, w = depth.shape
    H, W = out_hw
    valid = np.isfinite(depth) & (depth > 0)
    if valid.mean() > 0.5:
        # nearest, not interpolation: blending across an object edge would invent depths; the price is
        # a value seen up to half a source pixel off the target centre (~0.5% median on near road)
        return cv2.resize(depth, (W, H), interpolation=cv2.INTER_NEAREST_EXACT)
    out = np.full((H, W), np.inf, np.float32)
    v, u = np.nonzero(valid)
    tu = np.clip(((u + 0.5) * W / w).astype(np.int64), 0, W - 1)
    tv = np.clip(((v + 0.5) * H / h).astype(np.int64), 0, H - 1)
    np.minimum.at(out, (tv, tu), depth[v, u].astype(np.float32))
    out[np.isinf(out)] = np.nan
    return out


def crop_resize(rgb: np.ndarray, labels: np.ndarray, depth: np.ndarray, camera, window, out_hw: tuple):
    """Crop (x, y, w, h) then resize to out_hw; the camera model follows exactly."""
    x, y, w, h = window
    H, W = out_hw
    size = rgb.shape[:2]
    if labels.shape[:2] != size or depth.shape[:2] != size or (camera.height, camera.width) != size:
        # one window on arrays of different sizes would pair pixels of different rays
        raise AugmentError(f"crop_resize: image {size[1]}x{size[0]}, labels {labels.shape[1]}x{labels.shape[0]}, "
                           f"depth {depth.shape[1]}x{depth.shape[0]} and camera {camera.width}x{camera.height} "
                           "must all be the same size; the dataset's base() gave misaligned arrays")
    sl = (slice(y, y + h), slice(x, x + w))
    rgb_c = cv2.resize(np.ascontiguousarray(rgb[sl]), (W, H), interpolation=cv2.INTER_AREA if w > W else cv2.INTER_LINEAR)
    lab_c = cv2.resize(np.ascontiguousarray(labels[sl]), (W, H), interpolation=cv2.INTER_NEAREST_EXACT)
    dep_c = resize_sparse_depth(np.ascontiguousarray(depth[sl], dtype=np.float32), out_hw)
    cam_c = camera.cropped(x, y, w, h).resized(W, H)
    return rgb_c, lab_c, dep_c, cam_c


def color_jitter(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    if strength <= 0:
        return rgb
    x = rgb.astype(np.float32)
    gray = x.mean(axis=2, keepdims=True)
    x = gray + (x - gray) * rng.uniform(1 - strength, 1 + strength)           # saturation
    x = (x - x.mean()) * rng.uniform(1 - strength, 1 + strength) + x.mean()  # contrast
    x = x * rng.uniform(1 - strength, 1 + strength)                          # brightness
    return np.clip(x, 0, 255).astype(np.uint8)


def flip_width(a: np.ndarray, channels_last: bool = False) -> np.ndarray:
    """Horizontal flip: axis 1 of (H, W, C) images when channels_last, else the last axis
    ((H, W) maps and (C, H, W) stacks)."""
    return np.ascontiguousarray(np.flip(a, axis=1 if channels_last else -1))
