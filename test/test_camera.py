"""CameraModel: CameraInfo fields, binning/ROI, resize/crop exactness, distortion, bad input."""

from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edepth_ros.camera import CameraModel, CameraModelError

K_KITTI = [721.5377, 0, 609.5593, 0, 721.5377, 172.854, 0, 0, 1]
P_KITTI2 = [721.5377, 0, 609.5593, 44.85728, 0, 721.5377, 172.854, 0.2163791, 0, 0, 1, 0.002745884]


def test_rays_are_inverse_of_projection():
    cam = CameraModel.from_intrinsics(700.0, 710.0, 600.0, 180.0, 1242, 375)
    rays = cam.rays()
    assert rays.shape == (375, 1242, 3) and rays.dtype == np.float32
    assert np.all(rays[..., 2] == 1)
    pts = rays[::37, ::41].reshape(-1, 3).astype(np.float64) * 12.5
    u, v, z = cam.project(pts)
    uu, vv = np.meshgrid(np.arange(0, 1242, 41), np.arange(0, 375, 37))
    np.testing.assert_allclose(u, uu.ravel(), atol=2e-3)
    np.testing.assert_allclose(v, vv.ravel(), atol=2e-3)
    np.testing.assert_allclose(z, 12.5)


def test_rays_are_cached_and_read_only():
    cam = CameraModel.from_intrinsics(700.0, 700.0, 600.0, 180.0, 640, 200)
    r1 = cam.rays()
    r2 = CameraModel.from_intrinsics(700.0, 700.0, 600.0, 180.0, 640, 200).rays()
    assert r1 is r2  # an equal camera model built again (a new CameraInfo) shares the cache
    with pytest.raises(ValueError):
        r1[0, 0, 0] = 1.0


def test_camera_info_message_duck_typed_uses_P_for_rectified():
    info = SimpleNamespace(width=1242, height=375, k=[700, 0, 600, 0, 700, 180, 0, 0, 1], d=[],
                           r=[1, 0, 0, 0, 1, 0, 0, 0, 1], p=P_KITTI2, distortion_model="plumb_bob",
                           binning_x=0, binning_y=0,
                           roi=SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0, do_rectify=False),
                           header=SimpleNamespace(frame_id="cam2_optical"))
    cam = CameraModel.from_camera_info(info)
    assert cam.rectified and cam.frame_id == "cam2_optical"
    assert cam.fx == pytest.approx(721.5377) and cam.cx == pytest.approx(609.5593)
    # P's translation column is the camera centre offset, not part of the rays
    np.testing.assert_allclose(cam.stereo_offset, np.linalg.solve(np.reshape(P_KITTI2, (3, 4))[:, :3],
                                                                   np.reshape(P_KITTI2, (3, 4))[:, 3]))
    assert cam.stereo_offset[0] == pytest.approx(0.0599, abs=1e-3)


def test_stereo_right_camera_baseline():
    # ROS right camera: Tx = -fx * baseline
    p = [700, 0, 600, -700 * 0.54, 0, 700, 180, 0, 0, 0, 1, 0]
    cam = CameraModel.from_camera_info(width=1242, height=375, k=[700, 0, 600, 0, 700, 180, 0, 0, 1], p=p)
    np.testing.assert_allclose(cam.stereo_offset, [-0.54, 0, 0])


def test_resized_maps_pixel_centres_exactly():
    cam = CameraModel.from_intrinsics(721.5377, 721.5377, 609.5593, 172.854, 1242, 375)
    small = cam.resized(621, 188)
    # a 3D point projects to u' + 0.5 = s (u + 0.5)
    X = np.array([[3.0, 1.2, 17.0], [-5.0, 0.4, 40.0]])
    u, v, _ = cam.project(X)
    us, vs, _ = small.project(X)
    np.testing.assert_allclose(us + 0.5, (u + 0.5) * 621 / 1242, atol=1e-9)
    np.testing.assert_allclose(vs + 0.5, (v + 0.5) * 188 / 375, atol=1e-9)


def test_cropped_and_roi_binning():
    cam = CameraModel.from_intrinsics(721.5377, 721.5377, 609.5593, 172.854, 1242, 375)
    crop = cam.cropped(10, 20, 1216, 352)
    assert (crop.width, crop.height) == (1216, 352)
    assert crop.cx == pytest.approx(609.5593 - 10) and crop.cy == pytest.approx(172.854 - 20)
    X = np.array([[1.0, 0.5, 10.0]])
    u, v, _ = cam.project(X)
    uc, vc, _ = crop.project(X)
    assert uc[0] == pytest.approx(u[0] - 10) and vc[0] == pytest.approx(v[0] - 20)
    # CameraInfo ROI then binning, as a camera driver publishes them
    binned = CameraModel.from_camera_info(width=1242, height=375, k=K_KITTI, binning_x=2, binning_y=2,
                                          roi=(10, 20, 1216, 352))
    assert (binned.width, binned.height) == (608, 176)
    ub, vb, _ = binned.project(X)
    assert ub[0] + 0.5 == pytest.approx((uc[0] + 0.5) / 2) and vb[0] + 0.5 == pytest.approx((vc[0] + 0.5) / 2)


@pytest.mark.parametrize("model,D", [("plumb_bob", [-0.37, 0.2, 0.002, 0.001, -0.07]),
                                     ("rational_polynomial", [-0.3, 0.1, 0.001, 0.0, 0.0, 0.05, 0.02, 0.0]),
                                     ("equidistant", [0.05, -0.01, 0.002, 0.0])])
def test_distorted_rays_reproject_to_their_pixels(model, D):
    K = [960.0, 0, 696.0, 0, 957.0, 224.0, 0, 0, 1]
    cam = CameraModel(1392, 512, K, D, distortion_model=model)
    assert not cam.rectified
    rays = cam.rays()
    vs, us = np.mgrid[40:480:50, 60:1340:70]
    pts = rays[vs, us].reshape(-1, 3).astype(np.float64) * 8.0
    u, v, _ = cam.project(pts)
    np.testing.assert_allclose(u, us.ravel(), atol=0.05)
    np.testing.assert_allclose(v, vs.ravel(), atol=0.05)
    # and they are not the pinhole rays (distortion is really applied)
    pinhole = (us - 696.0) / 960.0
    assert np.max(np.abs(rays[vs, us, 0] - pinhole)) > 1e-3


@pytest.mark.parametrize("model,D", [("plumb_bob", [-0.9, 0.1, 0, 0, 0]),    # folds back inside the image
                                     ("plumb_bob", [0, 0, 0.5, 0.5, 0]),    # overflows to infinity
                                     ("rational_polynomial", [-0.5, 0.1, 0, 0, 0, 0, 0, 0]),
                                     ("equidistant", [2.0, -3.0, 1.0, 0.0])])
def test_uninvertible_distortion_is_refused(model, D):
    # OpenCV's undistortion then returns rays of other pixels: finite, wrong depth if accepted
    K = [721.5, 0, 609.6, 0, 721.5, 172.9, 0, 0, 1]
    with pytest.raises(CameraModelError, match=r"D: .* cannot be inverted over the 1242x375 image"):
        CameraModel.from_camera_info(width=1242, height=375, k=K, d=D, distortion_model=model)


def test_image_rect_with_distortion_in_camera_info_uses_P():
    cam = CameraModel.from_camera_info(width=1242, height=375, k=[900, 0, 620, 0, 900, 180, 0, 0, 1],
                                       d=[-0.3, 0.1, 0, 0, 0], p=P_KITTI2, rectified=True)
    assert cam.rectified and cam.fx == pytest.approx(721.5377)


@pytest.mark.parametrize("kwargs,field", [
    (dict(k=[0] * 9), "CameraInfo.K"),
    (dict(k=[0, 0, 600, 0, 700, 180, 0, 0, 1]), "fx"),
    (dict(k=[700, 0, 600, 0, float("nan"), 180, 0, 0, 1]), "NaN"),
    (dict(k=[700, 0, 600, 0, 700, 180]), "6 values"),
    (dict(width=0), "width"),
    (dict(width=320), "principal point"),  # calibration of another resolution
    (dict(p=[700, 0, 600, 0, 0, 700, 180, 0, 0, 0, 1]), "CameraInfo.P"),
    (dict(d=[0.1, 0.0, 0.0]), "D: 3 coefficients"),
    (dict(d=[0.1, 0, 0, 0, 0], distortion_model="fisheye_foo"), "distortion_model"),
    (dict(roi=(100, 0, 1242, 375)), "CameraInfo.roi"),
    (dict(roi="abcd"), "CameraInfo.roi"),
    (dict(roi={"width": 100}), "give both width and height"),
    (dict(d=["a", 0, 0, 0, 0]), "CameraInfo.D: not numeric"),
    (dict(d=[[0.1, 0], [0, 0]]), "CameraInfo.D: has shape"),
    (dict(p=["x"] * 12), "CameraInfo.P: not numeric"),
    (dict(binning_x=1.5), "CameraInfo.binning_x"),
    (dict(binning_y=5000), "CameraInfo.binning_y"),
    # K of the full 1242x375 sensor, width/height of the 2x2 binned image with binning left 0
    (dict(width=621, height=188), "width/height are likely of another resolution"),
    # sizes no camera has: refused before 12 bytes a pixel of rays are allocated
    (dict(width=2**20, height=2**20, k=[700, 0, 2**19, 0, 700, 2**19, 0, 0, 1]), "megapixels"),
    # an unset K with a valid P is only usable on a rectified image: undistorting needs K
    (dict(k=[0] * 9, p=P_KITTI2, d=[0.1, 0, 0, 0, 0]), "P cannot stand in for K"),
])
def test_bad_camera_info_names_the_field(kwargs, field):
    fields = dict(width=1242, height=375, k=[700, 0, 600, 0, 700, 180, 0, 0, 1])
    fields.update(kwargs)
    with pytest.raises(CameraModelError, match=field.replace("(", r"\(")):
        CameraModel.from_camera_info(**fields)


def test_unset_k_with_p_is_accepted_on_rectified_images_only():
    cam = CameraModel.from_camera_info(width=1242, height=375, k=[0] * 9, p=P_KITTI2)
    assert cam.rectified and cam.fx == pytest.approx(721.5377)
    cam = CameraModel.from_camera_info(width=1242, height=375, k=[0] * 9, p=P_KITTI2,
                                       d=[0.1, 0, 0, 0, 0], rectified=True)
    assert cam.rectified and cam.D.size == 0


@pytest.mark.parametrize("make", [
    lambda: CameraModel(320, 375, [[721.5, 0, 609.6], [0, 721.5, 172.9], [0, 0, 1]]),
    lambda: CameraModel.from_intrinsics(700, 700, 600, 400, 1242, 375),
    lambda: CameraModel(320, 375, np.eye(3), P=np.array(P_KITTI2).reshape(3, 4)),
    lambda: CameraModel(320, 375, [[721.5, 0, 609.6], [0, 721.5, 172.9], [0, 0, 1]], D=[0.1, 0, 0, 0, 0]),
])
def test_constructor_refuses_principal_point_outside_image(make):
    with pytest.raises(CameraModelError, match="principal point"):
        make()


def test_check_image_size():
    cam = CameraModel.from_intrinsics(700, 700, 600, 180, 1242, 375)
    cam.check_image_size(375, 1242)
    with pytest.raises(CameraModelError, match="1224x370 does not match"):
        cam.check_image_size(370, 1224, "image")


@settings(max_examples=40, deadline=None)
@given(f=st.floats(200, 2000), cxr=st.floats(0.3, 0.7), cyr=st.floats(0.3, 0.7),
       w=st.integers(64, 800), h=st.integers(48, 400), s=st.floats(0.25, 2.0))
def test_resize_then_rays_match_scaled_projection(f, cxr, cyr, w, h, s):
    cam = CameraModel.from_intrinsics(f, f * 1.01, cxr * w, cyr * h, w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cam.resized(nw, nh)
    # the ray of a resized pixel points at the same place as the original sub-pixel position
    r = small.rays()[nh // 2, nw // 3]
    u, v, _ = cam.project(r[None].astype(np.float64))
    assert math.isclose(u[0] + 0.5, (nw // 3 + 0.5) * w / nw, abs_tol=2e-3)  # rays are float32
    assert math.isclose(v[0] + 0.5, (nh // 2 + 0.5) * h / nh, abs_tol=2e-3)  # rays are float32


def test_opencv_single_thread_is_fine():
    cv2.setNumThreads(1)
    cam = CameraModel(320, 240, [300, 0, 160, 0, 300, 120, 0, 0, 1], [-0.2, 0.05, 0, 0, 0])
    assert np.isfinite(cam.rays()).all()


def test_a_model_cannot_be_reassigned_after_its_rays_are_cached():
    """Reassigning K (or the size) of a built model left its cached rays those of the old K: the
    key changed, the rays did not (silently wrong depth). Derived models still build."""
    cam = CameraModel.from_intrinsics(700, 700, 320, 240, 640, 480)
    cam.rays()
    for name, value in (("K", np.eye(3)), ("width", 320), ("D", np.zeros(5)), ("rectified", False)):
        with pytest.raises(AttributeError, match=f"CameraModel.{name}: a camera model cannot change"):
            setattr(cam, name, value)
    small = cam.resized(320, 240)
    assert small.width == 320 and small.fx == pytest.approx(350.0) and cam.width == 640
    assert small.rays().shape == (240, 320, 3)
    with pytest.raises(AttributeError):
        small.K = np.eye(3)


def test_a_model_does_not_change_when_the_callers_arrays_do():
    """K, D, R were views of the caller's float64 arrays: a reused buffer edited afterwards changed
    the model's key but not its cached rays, so a fresh model with the new calibration hit the
    stale rays (up to 19.5 m of road depth off)."""
    K = np.array([[700.0, 0, 320], [0, 700, 240], [0, 0, 1]])
    D = np.array([-0.1, 0.01, 0, 0, 0])
    R = np.eye(3)
    cam = CameraModel(640, 480, K, D, R)
    key, rays = cam.key(), cam.rays().copy()
    K[0, 0] = 900.0
    D[0] = -0.3
    R[:] = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    assert cam.key() == key and cam.fx == 700.0 and cam.D[0] == -0.1
    assert np.array_equal(cam.rays(), rays)
    for arr in (cam.K, cam.D, cam.R, cam.resized(320, 240).K, cam.cropped(0, 0, 320, 240).K):
        with pytest.raises(ValueError):
            arr[0] = 1.0
