"""Camera resolution <-> model resolution keeps the embodied geometry exact."""

from __future__ import annotations

import numpy as np
import pytest

from edepth_ros.camera import CameraModel
from edepth_ros.preprocess import ModelInput, PreprocessError

KITTI_CAM = dict(fx=721.5377, fy=721.5377, cx=609.5593, cy=172.854, width=1242, height=375)


def plane_depth(camera: CameraModel, height: float = 1.65, pitch: float = 0.02) -> np.ndarray:
    """z = -h / (n . r) for a camera pitched down by `pitch` above a flat road (NaN above horizon)."""
    n = np.array([0.0, -np.cos(pitch), np.sin(pitch)])  # rotate the level normal (0, -1, 0) about x
    nr = camera.rays().astype(np.float64) @ n
    with np.errstate(divide="ignore"):
        z = np.where(nr < -1e-3, -height / nr, np.nan)
    z[z > 200] = np.nan
    return z.astype(np.float32)


@pytest.fixture
def camera():
    return CameraModel.from_intrinsics(**KITTI_CAM)


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (375, 1242, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["resize", "crop"])
def test_shapes_and_intrinsics(camera, rgb, mode):
    mi = ModelInput(192, 640, mode)
    labels = np.zeros((375, 1242), np.uint8)
    labels[200:] = 13
    rgb_m, cam_m, labels_m = mi.to_model(rgb, camera, labels)
    assert rgb_m.shape == (192, 640, 3) and rgb_m.dtype == np.uint8 and rgb_m.flags.c_contiguous
    assert labels_m.shape == (192, 640) and set(np.unique(labels_m)) <= {0, 13}  # nearest: no blended ids
    assert (cam_m.width, cam_m.height) == (640, 192)
    if mode == "resize":
        assert cam_m.fx == pytest.approx(camera.fx * 640 / 1242)
        assert cam_m.fy == pytest.approx(camera.fy * 192 / 375)
    else:  # uniform scale up to the rounding of the scaled size: the aspect ratio is kept
        assert cam_m.fx == pytest.approx(cam_m.fy, rel=5e-3)


@pytest.mark.parametrize("mode", ["resize", "crop"])
def test_embodied_depth_stays_exact(camera, mode):
    """Plane depth resampled to the model size equals the plane depth of the model's camera."""
    mi = ModelInput(192, 640, mode)
    resampled = mi.depth_to_model(plane_depth(camera))
    exact = plane_depth(mi.camera_to_model(camera))
    both = np.isfinite(resampled) & np.isfinite(exact) & (exact < 60)
    assert both.sum() > 0.3 * both.size
    rel = np.abs(resampled[both] - exact[both]) / exact[both]
    assert np.median(rel) < 1e-4 and np.percentile(rel, 99) < 2e-3, (np.median(rel), rel.max())
    # the horizon stays where it is: no depth invented above it
    assert np.isnan(resampled[:5]).all() == np.isnan(exact[:5]).all()


def test_crop_window_is_bottom_centre(camera):
    mi = ModelInput(192, 640, "crop")
    win = mi.window(1242, 375)
    assert win.y + win.height == win.scaled_h  # bottom rows kept
    assert abs(win.x - (win.scaled_w - win.x - win.width)) <= 1  # centred horizontally
    cam_m = mi.camera_to_model(camera)
    s = win.scaled_w / 1242
    # pixel (u_m, v_m) of the model sees the same ray as image pixel ((u_m + x + 0.5) / s - 0.5, ...)
    u_m, v_m = 100, 150
    u = (u_m + win.x + 0.5) / s - 0.5
    v = (v_m + win.y + 0.5) / (win.scaled_h / 375) - 0.5
    ray_m = cam_m.rays()[v_m, u_m]
    assert ray_m[0] == pytest.approx((u - camera.cx) / camera.fx, abs=1e-5)
    assert ray_m[1] == pytest.approx((v - camera.cy) / camera.fy, abs=1e-5)


@pytest.mark.parametrize("mode", ["resize", "crop"])
def test_back_to_image(camera, mode):
    mi = ModelInput(192, 640, mode)
    cam_m = mi.camera_to_model(camera)
    depth_m = plane_depth(cam_m)
    conf_m = np.where(np.isfinite(depth_m), 0.9, 0.0).astype(np.float32)
    depth, conf = mi.to_image(depth_m, conf_m, camera)
    assert depth.shape == conf.shape == (375, 1242) and depth.dtype == np.float32
    exact = plane_depth(camera)
    both = np.isfinite(depth) & np.isfinite(exact) & (exact < 40)
    assert both.sum() > 0.3 * both.size
    rel = np.abs(depth[both] - exact[both]) / exact[both]
    assert np.median(rel) < 1e-3
    assert np.all(conf[~np.isfinite(depth)] == 0) and conf.max() <= 1.0
    if mode == "crop":
        win = mi.window(1242, 375)
        top_rows = int(win.y / (win.scaled_h / 375)) - 1
        if top_rows > 0:  # rows the model never saw get no estimate
            assert np.isnan(depth[:top_rows]).all()


def test_holes_stay_holes(camera):
    depth = np.full((375, 1242), 10.0, np.float32)
    depth[100:200, 300:600] = np.nan
    out = ModelInput(192, 640).depth_to_model(depth)
    assert np.isnan(out[60:95, 160:300]).all()  # inside the hole
    finite = out[np.isfinite(out)]
    assert np.allclose(finite, 10.0, rtol=1e-5)  # no zeros or half values leaking from the hole edge


def test_identity_is_free(camera, rgb):
    mi = ModelInput(375, 1242)
    rgb_m, cam_m, _ = mi.to_model(rgb, camera)
    assert cam_m is camera and np.shares_memory(rgb_m, rgb)


def test_bad_input_is_named(camera, rgb):
    with pytest.raises(PreprocessError, match="mode"):
        ModelInput(192, 640, "stretch")
    with pytest.raises(PreprocessError, match="height/width"):
        ModelInput(0, 640)
    with pytest.raises(PreprocessError, match="camera model is 1242x375"):
        ModelInput(192, 640).to_model(rgb[:, :1000], camera)
    with pytest.raises(PreprocessError, match="rgb"):
        ModelInput(192, 640).to_model(rgb.astype(np.float32), camera)
    with pytest.raises(PreprocessError, match="model size"):
        ModelInput(192, 640).to_image(np.zeros((10, 10), np.float32), np.zeros((10, 10), np.float32), camera)
