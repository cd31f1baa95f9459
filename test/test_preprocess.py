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


# -- wrong argument types and values: PreprocessError naming the argument, never a NumPy/OpenCV error

@pytest.mark.parametrize("mode", ["resize", "crop"])
@pytest.mark.parametrize("height", [192.5, "192", True, float("nan"), float("inf"), None, 0, -192, [192]])
def test_model_size_must_be_a_positive_whole_number(camera, rgb, mode, height):
    with pytest.raises(PreprocessError, match="model_input: height/width must be positive whole numbers of pixels"):
        ModelInput(height, 640, mode)
    with pytest.raises(PreprocessError, match="model_input: height/width"):
        ModelInput(192, height, mode)


def test_huge_model_size_is_refused_before_allocating():
    with pytest.raises(PreprocessError, match="model_input: height/width 1000000000x1000000000 is more than"):
        ModelInput(10 ** 9, 10 ** 9)


@pytest.mark.parametrize("height", [192.0, np.int64(192), np.float32(192)])
def test_whole_number_sizes_are_ints(camera, rgb, height):
    mi = ModelInput(height, 640, "crop")
    assert type(mi.height) is int and mi == ModelInput(192, 640, "crop")
    assert mi.to_model(rgb, camera)[0].shape == (192, 640, 3)


@pytest.mark.parametrize("args, match", [
    ((0, 375), "image_w: must be a positive whole number"),
    ((1242.5, 375), "image_w: must be a positive whole number"),
    (("1242", 375), "image_w"),
    ((1242, None), "image_h"),
    ((1, 100000), "aspect ratios are too far apart"),
])
def test_window_arguments_are_named(args, match):
    with pytest.raises(PreprocessError, match=match):
        ModelInput(192, 640, "crop").window(*args)


def _calls(camera, rgb):
    depth = np.full((375, 1242), 10.0, np.float32)
    dm = np.ones((192, 640), np.float32)
    u8 = np.zeros((375, 1242), np.uint8)
    return {
        "to_model camera None": (lambda mi: mi.to_model(rgb, None), "camera: expected the image's CameraModel"),
        "to_model camera info": (lambda mi: mi.to_model(rgb, {"width": 1242}), "camera: expected"),
        "camera_to_model None": (lambda mi: mi.camera_to_model(None), "camera: expected"),
        "to_image camera None": (lambda mi: mi.to_image(dm, dm, None), "camera: expected"),
        "to_model rgb list": (lambda mi: mi.to_model(rgb.tolist(), camera), "rgb: expected a numpy array uint8"),
        "to_model labels list": (lambda mi: mi.to_model(rgb, camera, u8.tolist()), r"labels: expected a numpy array \(H, W\)"),
        "to_model labels other size": (lambda mi: mi.to_model(rgb, camera, u8[:100]), r"labels: .*\(375, 1242\).*got ndarray uint8 \(100, 1242\)"),
        "to_model labels 3-D": (lambda mi: mi.to_model(rgb, camera, u8[..., None]), "labels: expected"),
        "to_model labels complex": (lambda mi: mi.to_model(rgb, camera, u8.astype(complex)), "labels: expected an integer"),
        "depth_to_model uint16": (lambda mi: mi.depth_to_model((depth * 1000).astype(np.uint16)), "depth: expected a float array.*metres"),
        "depth_to_model bool": (lambda mi: mi.depth_to_model(depth > 0), "depth: expected a float array"),
        "depth_to_model str": (lambda mi: mi.depth_to_model("depth.png"), "depth: expected a float array"),
        "depth_to_model 3-D": (lambda mi: mi.depth_to_model(depth[..., None]), r"depth: expected a non-empty \(H, W\)"),
        "depth_to_model 1-D": (lambda mi: mi.depth_to_model(depth[0]), r"depth: expected a non-empty \(H, W\)"),
        "depth_to_model empty": (lambda mi: mi.depth_to_model(np.zeros((0, 0), np.float32)), "depth: expected a non-empty"),
        "depth_to_model ragged": (lambda mi: mi.depth_to_model([[1.0, 2.0], [3.0]]), "depth: not an array"),
        "nearest_to_model 1-D": (lambda mi: mi.nearest_to_model(depth[0]), "image: expected a non-empty"),
        "nearest_to_model 4-D": (lambda mi: mi.nearest_to_model(depth[..., None, None]), "image: expected a non-empty"),
        "nearest_to_model empty": (lambda mi: mi.nearest_to_model(np.zeros((0, 5), np.float32)), "image: expected a non-empty"),
        "nearest_to_model complex": (lambda mi: mi.nearest_to_model(depth.astype(np.complex64)), "image: expected an integer"),
        "nearest_to_model objects": (lambda mi: mi.nearest_to_model(depth.astype(object)), "image: expected a numeric array"),
        "to_image depth str": (lambda mi: mi.to_image("x", dm, camera), "depth_m: expected a float array"),
        "to_image depth uint16": (lambda mi: mi.to_image(dm.astype(np.uint16), dm, camera), "depth_m: expected a float array"),
        "to_image depth bool": (lambda mi: mi.to_image(dm > 0, dm, camera), "depth_m: expected a float array"),
        "to_image depth objects": (lambda mi: mi.to_image(np.full((192, 640), None), dm, camera), "depth_m: expected a numeric"),
        "to_image conf uint8": (lambda mi: mi.to_image(dm, (dm * 255).astype(np.uint8), camera), r"conf_m: expected a float array \(confidence"),
    }


_CALL_NAMES = list(_calls(None, None))


@pytest.mark.parametrize("mode", ["resize", "crop"])
@pytest.mark.parametrize("name", _CALL_NAMES)
def test_bad_arguments_are_named(camera, rgb, mode, name):
    call, match = _calls(camera, rgb)[name]
    with pytest.raises(PreprocessError, match=match):
        call(ModelInput(192, 640, mode))


@pytest.mark.parametrize("name", ["to_model labels other size", "depth_to_model uint16", "nearest_to_model empty",
                                  "to_image conf uint8", "to_model camera None"])
def test_bad_arguments_are_named_at_the_identity_size(camera, rgb, name):
    call, match = _calls(camera, rgb)[name]
    mi = ModelInput(375, 1242) if not name.startswith("to_image") else ModelInput(192, 640)
    with pytest.raises(PreprocessError, match=match):
        call(mi)


@pytest.mark.parametrize("mode", ["resize", "crop"])
@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.uint32, bool, np.uint8, np.int32, np.float32])
def test_nearest_keeps_the_dtype_and_every_id(camera, rgb, mode, dtype):
    # cv2 narrows int64 to int32, so a large id wrapped (2**40 + 5 became 5)
    mi = ModelInput(192, 640, mode)
    small = ((np.arange(375 * 1242) * 7919) % 97).reshape(375, 1242)
    big = 2 ** 40 if np.dtype(dtype).itemsize == 8 else 0
    image = (small + big).astype(dtype) if dtype is not bool else small % 2 == 1
    expected = mi.nearest_to_model(small.astype(np.int32))  # the mapping cv2 gives
    for out in (mi.nearest_to_model(image), mi.to_model(rgb, camera, image)[2]):
        assert out.dtype == np.dtype(dtype) and out.shape == (192, 640)
        want = (expected.astype(np.int64) + big).astype(dtype) if dtype is not bool else expected % 2 == 1
        np.testing.assert_array_equal(out, want)


def test_lists_of_floats_are_accepted_where_arrays_are_converted(camera):
    mi = ModelInput(192, 640)
    depth = np.full((375, 1242), 10.0, np.float32)
    np.testing.assert_array_equal(mi.depth_to_model(depth.tolist()), mi.depth_to_model(depth))
    dm = np.full((192, 640), 5.0, np.float32)
    d_list, _ = mi.to_image(dm.tolist(), (dm / 10).tolist(), camera)
    np.testing.assert_array_equal(d_list, mi.to_image(dm, dm / 10, camera)[0])


@pytest.mark.parametrize("size", [(375, 1242), (96, 320)])
def test_to_image_confidence_is_zero_where_it_or_the_depth_is_nan_and_never_above_one(size):
    """At the image's own size the backend's confidence came back as given: NaN and 1.7 passed
    through (resized, NaN stayed NaN where depth was finite)."""
    camera = CameraModel.from_intrinsics(720.0, 720.0, 620.5, 187.0, 1242, 375)
    mi = ModelInput(*size)
    depth_m = np.full(mi.size, 10.0, np.float32)
    conf_m = np.full(mi.size, 0.5, np.float32)
    conf_m[:, : mi.size[1] // 2] = np.nan
    conf_m[:, -4:] = 1.7
    depth_m[0, :] = np.nan
    depth, conf = mi.to_image(depth_m, conf_m, camera)
    assert conf.dtype == np.float32 and np.isfinite(conf).all()
    assert conf.min() >= 0.0 and conf.max() <= 1.0
    assert (conf[:, :100] == 0).all() and (conf[~np.isfinite(depth)] == 0).all()
    assert (conf[depth.shape[0] // 2, 700:1100] == 0.5).all()
