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
    # P's translation column takes the reference camera's frame to this one's, not part of the rays
    np.testing.assert_allclose(cam.stereo_offset, np.linalg.solve(np.reshape(P_KITTI2, (3, 4))[:, :3],
                                                                   np.reshape(P_KITTI2, (3, 4))[:, 3]))
    assert cam.stereo_offset[0] == pytest.approx(0.0599, abs=1e-3)


def test_stereo_right_camera_baseline():
    # ROS right camera: Tx = -fx * baseline
    p = [700, 0, 600, -700 * 0.54, 0, 700, 180, 0, 0, 0, 1, 0]
    cam = CameraModel.from_camera_info(width=1242, height=375, k=[700, 0, 600, 0, 700, 180, 0, 0, 1], p=p)
    np.testing.assert_allclose(cam.stereo_offset, [-0.54, 0, 0])
    # X_this = X_ref + stereo_offset: P projects a left-frame point as K does the shifted one, and the
    # right camera's centre sits at -stereo_offset (0.54 m to the right) in the left frame
    X_ref = np.array([[1.0, -0.5, 12.0]])
    uvw = np.reshape(p, (3, 4)) @ np.append(X_ref[0], 1.0)
    u, v, _ = cam.project(X_ref + cam.stereo_offset)
    assert (u[0], v[0]) == pytest.approx((uvw[0] / uvw[2], uvw[1] / uvw[2]), abs=1e-9)
    assert np.allclose(-cam.stereo_offset, [0.54, 0, 0])


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


# ----------------------------------------------------------------- projection of what the image cannot see
# a common 2-term calibration: its polynomial r (1 - 0.2 r^2) peaks at r = 1.29 and is back at 0 at r = 2.24
K_FOLD = [[600, 0, 320], [0, 600, 240], [0, 0, 1]]
D_FOLD = [-0.2, 0.0, 0, 0, 0]
DISTORTED = [
    ("plumb_bob", 640, 480, K_FOLD, D_FOLD),
    ("plumb_bob", 1392, 512, [960.0, 0, 696.0, 0, 957.0, 224.0, 0, 0, 1], [-0.37, 0.2, 0.002, 0.001, -0.07]),
    ("rational_polynomial", 1392, 512, [960.0, 0, 696.0, 0, 957.0, 224.0, 0, 0, 1],
     [-0.3, 0.1, 0.001, 0.0, 0.0, 0.05, 0.02, 0.0]),
    ("equidistant", 640, 480, [[300, 0, 322], [0, 301, 238], [0, 0, 1]], [0.05, -0.01, 0.002, 0.0]),
]


def _precise_rays(cam, pixels):
    """float64 rays of (N, 2) pixels, undistorted with OpenCV to well under 1e-6 px."""
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-15)
    pix = np.asarray(pixels, np.float64).reshape(-1, 1, 2)
    if cam.distortion_model == "equidistant":
        und = cv2.fisheye.undistortPoints(pix, cam.K, cam.D, criteria=crit)
    else:
        und = cv2.undistortPoints(pix, cam.K, cam.D, criteria=crit)
    und = und.reshape(-1, 2)
    return np.concatenate([und, np.ones((len(und), 1))], axis=1)


def _scan_360(rng_m=10.0):
    """A 360-degree scan: every direction from straight down to straight up, walls at rng_m."""
    az = np.radians(np.linspace(-180, 180, 2880, endpoint=False))
    el = np.radians(np.linspace(-85, 85, 341))
    A, E = np.meshgrid(az, el)
    return rng_m * np.stack([np.cos(E) * np.sin(A), np.sin(E), np.cos(E) * np.cos(A)], -1).reshape(-1, 3)


def test_a_point_far_off_axis_of_a_distorted_camera_projects_to_nan():
    """The distortion polynomial folds back far off axis: a point 66 deg off the axis of this camera
    (whose image sees 31 deg) projected to pixel (308, 240), beside the centre, and became LiDAR
    ground truth at a wrong place. Points outside what the image sees now project to NaN."""
    cam = CameraModel(640, 480, K_FOLD, D_FOLD)
    deg = np.array([0.0, 20.0, 28.0, 35.0, 50.0, 63.0, 66.0, 70.0, 89.0])
    a = np.radians(deg)
    pts = np.stack([10 * np.sin(a), np.zeros_like(a), 10 * np.cos(a)], 1)
    u, v, z = cam.project(pts)
    np.testing.assert_allclose(z, pts[:, 2])
    seen = deg <= 28
    assert np.isfinite(u[seen]).all() and np.isfinite(v[seen]).all()
    assert np.isnan(u[~seen]).all() and np.isnan(v[~seen]).all(), dict(zip(deg[~seen], u[~seen]))
    # in view: exactly OpenCV's projection
    img, _ = cv2.projectPoints(pts[seen].reshape(-1, 1, 3), np.zeros(3), np.zeros(3), cam.K, cam.D)
    np.testing.assert_array_equal(np.stack([u[seen], v[seen]], 1), img.reshape(-1, 2))
    # a point a pixel beyond the image's corner still projects (just outside); one 10 px beyond does not
    near, far = _precise_rays(cam, [[640.5, 480.5], [650.0, 490.0]])
    u, v, _ = cam.project(np.stack([near, far]) * 5.0)
    assert (u[0], v[0]) == pytest.approx((640.5, 480.5), abs=1e-6) and np.isnan([u[1], v[1]]).all()
    # behind the camera: NaN, as before
    assert np.isnan(cam.project([[0.0, 0.0, -5.0]])[0]).all()


def test_fold_radius_is_where_the_radial_distortion_stops_growing():
    from edepth_ros.camera import _fold_radius

    # r (1 + k1 r^2) grows until 1 + 3 k1 r^2 = 0
    assert _fold_radius("plumb_bob", (-0.2, 0.0, 0.0, 0.0, 0.0)) == pytest.approx(math.sqrt(1 / 0.6), rel=2e-3)
    # theta (1 + k1 theta^2) grows until theta = sqrt(-1 / (3 k1)), 1.29 rad, at r = tan(theta)
    assert _fold_radius("equidistant", (-0.2, 0.0, 0.0, 0.0)) == pytest.approx(math.tan(math.sqrt(1 / 0.6)),
                                                                                rel=2e-3)
    # a denominator reaching zero ends it too: 1 - 0.25 r^2 at r = 2
    assert _fold_radius("rational_polynomial", (0, 0, 0, 0, 0, -0.25, 0, 0)) <= 2.0
    assert _fold_radius("plumb_bob", (0.1, 0.01, 0.0, 0.0, 0.0)) == math.inf
    # a point past the fold projects to NaN even where the view's box would hold it
    cam = CameraModel(640, 480, K_FOLD, D_FOLD)
    x_lo, x_hi, y_lo, y_hi, r_fold = cam._view_bounds()
    assert r_fold == _fold_radius("plumb_bob", tuple(D_FOLD)) and math.hypot(x_hi, y_hi) < r_fold


@pytest.mark.parametrize("model,w,h,K,D", DISTORTED)
def test_in_view_points_of_distorted_cameras_round_trip_exactly(model, w, h, K, D):
    """Pixel -> ray -> project within 1e-6 px everywhere in the image, its corners and outer edges
    included, also for resized and cropped models: the view check keeps nothing the image sees out."""
    cam = CameraModel(w, h, K, D, distortion_model=model)
    for c in (cam, cam.resized(w // 2, h // 2), cam.cropped(w // 4, h // 5, w // 2, h // 2)):
        W, H = c.width, c.height
        vs, us = np.mgrid[0:H:max(1, H // 23), 0:W:max(1, W // 31)]
        edges = [(-0.5, -0.5), (W - 0.5, -0.5), (-0.5, H - 0.5), (W - 0.5, H - 0.5), (0, 0), (W - 1, 0),
                 (0, H - 1), (W - 1, H - 1), (-0.5, H / 2), (W - 0.5, H / 2), (W / 2, -0.5), (W / 2, H - 0.5)]
        pixels = np.concatenate([np.stack([us.ravel(), vs.ravel()], 1), np.array(edges, np.float64)])
        depth = np.linspace(0.5, 80.0, len(pixels))[:, None]
        u, v, z = c.project(_precise_rays(c, pixels) * depth)
        np.testing.assert_allclose(z, depth[:, 0])
        assert np.isfinite(u).all() and np.isfinite(v).all()
        err = np.hypot(u - pixels[:, 0], v - pixels[:, 1])
        assert err.max() < 1e-6, (c, pixels[np.argmax(err)], err.max())


@pytest.mark.parametrize("model,w,h,K,D", DISTORTED)
def test_a_360_degree_scan_lands_only_where_the_image_sees_it(model, w, h, K, D):
    """Every point of a 360-degree scan that projects into the image lies along its pixel's ray (a
    folded point landed at a pixel whose ray points tens of degrees away), and every point that
    the image sees does project."""
    cam = CameraModel(w, h, K, D, distortion_model=model)
    pts = _scan_360()
    u, v, _ = cam.project(pts)
    ui, vi = np.floor(u + 0.5), np.floor(v + 0.5)
    inside = np.isfinite(ui) & np.isfinite(vi) & (ui >= 0) & (vi >= 0) & (ui < w) & (vi < h)
    assert inside.sum() > 1000
    rays = cam.rays().astype(np.float64)
    ray = rays[vi[inside].astype(np.int64), ui[inside].astype(np.int64)]
    d = pts[inside]
    cos = np.einsum("ij,ij->i", ray, d) / np.linalg.norm(ray, axis=1) / np.linalg.norm(d, axis=1)
    angle = np.arccos(np.clip(cos, -1.0, 1.0))
    # a pixel's rays and its neighbour's: no point may be farther off its pixel's ray than that
    step = np.arccos(np.clip(np.einsum("ijk,ijk->ij", rays[1:, 1:], rays[:-1, :-1])
                             / np.linalg.norm(rays[1:, 1:], axis=2) / np.linalg.norm(rays[:-1, :-1], axis=2), -1, 1))
    assert np.degrees(angle.max()) <= np.degrees(step.max()), \
        f"{np.count_nonzero(angle > step.max())} points land at pixels whose rays point up to " \
        f"{np.degrees(angle.max()):.1f} deg away"
    # the scan's points inside the view the image's pixels cover all project
    und = np.stack([pts[:, 0] / pts[:, 2], pts[:, 1] / pts[:, 2]], 1)
    xr, yr = rays[..., 0], rays[..., 1]
    covered = (pts[:, 2] > 0) & (und[:, 0] > xr[:, 0].max()) & (und[:, 0] < xr[:, -1].min()) \
        & (und[:, 1] > yr[0].max()) & (und[:, 1] < yr[-1].min())
    assert covered.sum() > 500 and inside[covered].all()


@pytest.mark.parametrize("make", [
    lambda: CameraModel.from_intrinsics(721.5377, 721.5377, 609.5593, 172.854, 1242, 375),
    lambda: CameraModel(640, 480, [[600, 3.5, 320], [0, 610, 240], [0, 0, 1]]),
    lambda: CameraModel.from_camera_info(width=1242, height=375, k=K_KITTI, p=P_KITTI2),
    lambda: CameraModel.from_camera_info(width=1242, height=375, k=[900, 0, 620, 0, 900, 180, 0, 0, 1],
                                         d=[-0.3, 0.1, 0, 0, 0], p=P_KITTI2, rectified=True),
])
def test_rectified_cameras_project_exactly_as_before(make):
    """D = 0 (or image_rect): no view check, the pinhole formula bit for bit, also far off axis."""
    cam = make()
    assert cam.rectified
    rng = np.random.default_rng(3)
    pts = np.concatenate([_scan_360()[::7], rng.normal(0, 20, (2000, 3)), [[50.0, -30.0, 0.5], [1.0, 1.0, 0.0]]])
    u, v, z = cam.project(pts)
    front = pts[:, 2] > 0
    xn, yn = pts[front, 0] / pts[front, 2], pts[front, 1] / pts[front, 2]
    np.testing.assert_array_equal(u[front], cam.K[0, 0] * xn + cam.K[0, 1] * yn + cam.K[0, 2])
    np.testing.assert_array_equal(v[front], cam.K[1, 1] * yn + cam.K[1, 2])
    assert np.isnan(u[~front]).all() and np.isnan(v[~front]).all()
    np.testing.assert_array_equal(z, pts[:, 2])
