"""pointcloud.py: depth -> points in the optical frame, decimation, range, colours, PLY files."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edepth_ros.camera import CameraModel
from edepth_ros.pointcloud import (PointCloudError, cloud_array, count_valid, depth_to_points, pack_rgb,
                                   unpack_rgb, write_ply)

W, H = 64, 48


@pytest.fixture
def camera():
    return CameraModel.from_intrinsics(50.0, 52.0, 31.5, 20.0, W, H, frame_id="cam_optical")


def ramp_depth():
    d = np.linspace(2.0, 30.0, W * H, dtype=np.float32).reshape(H, W)
    d[5, 7] = np.nan
    d[10, :4] = 0.0
    return d


def test_points_back_project_through_the_intrinsics(camera):
    depth = ramp_depth()
    xyz, rgb = depth_to_points(depth, camera, organised=True)
    assert rgb is None and xyz.shape == (H, W, 3) and xyz.dtype == np.float32
    v, u = 33, 40
    z = depth[v, u]
    np.testing.assert_allclose(xyz[v, u], [(u - 31.5) / 50.0 * z, (v - 20.0) / 52.0 * z, z], rtol=1e-6)
    # projecting the points gives back their pixels
    pu, pv, pz = camera.project(xyz.reshape(-1, 3)[np.isfinite(xyz.reshape(-1, 3)).all(1)])
    uu, vv = np.meshgrid(np.arange(W), np.arange(H))
    keep = np.isfinite(depth) & (depth > 0)
    np.testing.assert_allclose(pu, uu[keep], atol=1e-3)
    np.testing.assert_allclose(pv, vv[keep], atol=1e-3)


def test_invalid_pixels_are_nan_when_organised_and_left_out_otherwise(camera):
    depth = ramp_depth()
    org = cloud_array(depth, camera, organised=True)
    assert np.isnan(org[5, 7]).all() and np.isnan(org[10, :4]).all()
    flat = cloud_array(depth, camera)
    assert len(flat) == H * W - 5 and np.isfinite(flat).all()


def test_max_range_and_decimation(camera):
    depth = ramp_depth()
    flat = cloud_array(depth, camera, max_range=10.0)
    assert flat[:, 2].max() <= 10.0
    expected = np.count_nonzero((depth > 0) & (depth <= 10.0))
    assert len(flat) == expected
    dec = cloud_array(depth, camera, decimation=4, organised=True)
    assert dec.shape == (H // 4, W // 4, 3)
    np.testing.assert_array_equal(dec[2, 3], cloud_array(depth, camera, organised=True)[8, 12])


def test_rgb_is_packed_as_0x00rrggbb(camera):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 7
    arr = cloud_array(np.full((H, W), 5.0, np.float32), camera, rgb=rgb)
    assert arr.shape == (H * W, 4)
    bits = arr[:, 3].view(np.uint32)
    assert np.all(bits == (200 << 16 | 100 << 8 | 7))
    xyz, packed = depth_to_points(np.full((H, W), 5.0, np.float32), camera, rgb=rgb)
    np.testing.assert_array_equal(unpack_rgb(packed), rgb.reshape(-1, 3))


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 5), st.integers(1, 5), st.just(3))))
def test_pack_unpack_round_trip(rgb):
    np.testing.assert_array_equal(unpack_rgb(pack_rgb(rgb)), rgb)


def test_bad_inputs_name_the_argument(camera):
    with pytest.raises(PointCloudError, match="depth: shape"):
        cloud_array(np.ones((H + 1, W), np.float32), camera)
    with pytest.raises(PointCloudError, match="depth: expected float32"):
        cloud_array(np.ones((H, W), np.float64), camera)
    with pytest.raises(PointCloudError, match="decimation"):
        cloud_array(np.ones((H, W), np.float32), camera, decimation=0)
    with pytest.raises(PointCloudError, match="rgb"):
        cloud_array(np.ones((H, W), np.float32), camera, rgb=np.zeros((H, W, 3), np.float32))


def _read_ply(path):
    raw = path.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode().splitlines()
    n = int(next(line for line in header if line.startswith("element vertex")).split()[-1])
    props = [line.split()[1:] for line in header if line.startswith("property")]
    dt = np.dtype([(name, "<f4" if kind == "float" else "u1") for kind, name in props])
    return header, np.frombuffer(raw[end:], dt, count=n)


def test_write_ply_round_trip(tmp_path, camera):
    depth = ramp_depth()
    rgb = (np.arange(H * W * 3) % 251).astype(np.uint8).reshape(H, W, 3)
    xyz, packed = depth_to_points(depth, camera, rgb=rgb, organised=True)
    n = write_ply(tmp_path / "cloud.ply", xyz, packed)
    header, rec = _read_ply(tmp_path / "cloud.ply")
    assert header[1] == "format binary_little_endian 1.0"
    keep = np.isfinite(xyz.reshape(-1, 3)).all(1)
    assert n == len(rec) == keep.sum()
    np.testing.assert_array_equal(rec["z"], xyz.reshape(-1, 3)[keep, 2])
    np.testing.assert_array_equal(np.stack([rec["red"], rec["green"], rec["blue"]], 1), rgb.reshape(-1, 3)[keep])
    # uint8 colours and no colours are accepted too
    assert write_ply(tmp_path / "plain.ply", xyz) == n
    assert "property uchar red" not in _read_ply(tmp_path / "plain.ply")[0]
    assert write_ply(tmp_path / "u8.ply", xyz.reshape(-1, 3), rgb.reshape(-1, 3)) == n


def test_infinite_max_range_keeps_far_points(camera):
    depth = np.full((H, W), 500.0, np.float32)
    assert len(cloud_array(depth, camera, max_range=math.inf)) == H * W
    assert len(cloud_array(depth, camera, max_range=100.0)) == 0


@pytest.mark.parametrize("decimation", [0, -1, 2.5, float("nan"), "2", True])
def test_decimation_must_be_a_positive_integer_never_truncated(camera, decimation):
    depth = np.ones((H, W), np.float32)
    with pytest.raises(PointCloudError, match="decimation: must be an integer >= 1"):
        cloud_array(depth, camera, decimation=decimation)
    with pytest.raises(PointCloudError, match="decimation"):
        count_valid(depth, decimation)


def test_infinite_depth_is_never_a_point(camera):
    # +inf is REP 118's "too far" (the synthetic sky): no point at infinity, even with max_range = inf
    depth = np.full((H, W), 5.0, np.float32)
    depth[0] = np.inf
    depth[1, :3] = -np.inf
    for max_range in (math.inf, 100.0):
        pts = cloud_array(depth, camera, max_range=max_range)
        assert len(pts) == count_valid(depth, max_range=max_range) == (H - 1) * W - 3
        assert np.isfinite(pts).all()
        grid = cloud_array(depth, camera, max_range=max_range, organised=True)
        assert np.isnan(grid[0, :, :3]).all() and np.isfinite(grid[2:]).all()


class _RaysOnly:
    """A duck-typed camera: rays() but no key(), so nothing that identifies its intrinsics."""

    def __init__(self, fx):
        self.model = CameraModel.from_intrinsics(fx, fx, 31.5, 23.5, W, H)

    def rays(self):
        return self.model.rays()


def test_a_camera_without_a_value_key_never_gets_another_cameras_rays():
    # keyed by id(), a camera allocated at a freed camera's address got that camera's cached rays
    depth = np.full((H, W), 5.0, np.float32)
    for i in range(20):
        fx = 50.0 + i
        cam = _RaysOnly(fx)
        with pytest.raises(TypeError, match=r"camera: expected an edepth_ros\.camera\.CameraModel, got _RaysOnly"):
            cloud_array(depth, cam, organised=True)
        del cam


@pytest.mark.parametrize("camera_arg", [None, "cam", {"fx": 50.0}, _RaysOnly(50.0)])
def test_camera_must_be_a_camera_model(camera_arg):
    for call in (lambda: cloud_array(np.ones((H, W), np.float32), camera_arg),
                 lambda: depth_to_points(np.ones((H, W), np.float32), camera_arg)):
        with pytest.raises(TypeError, match="camera: expected an edepth_ros.camera.CameraModel.*from_camera_info"):
            call()


def test_freed_and_reallocated_camera_models_get_their_own_rays():
    depth = np.full((H, W), 5.0, np.float32)
    for i in range(20):
        fx = 50.0 + i
        cam = CameraModel.from_intrinsics(fx, fx, 31.5, 23.5, W, H)
        pts = cloud_array(depth, cam, organised=True)
        assert pts[0, 0, 0] == pytest.approx((0 - 31.5) / fx * 5.0, rel=1e-6)
        del cam


@pytest.mark.parametrize("depth", [np.ones((H, W)), np.ones((H, W), np.float32).tolist(), np.ones(W, np.float32)])
def test_count_valid_checks_depth_as_cloud_array_does(depth):
    with pytest.raises(PointCloudError, match=r"depth: expected float32 \(H, W\)"):
        count_valid(depth)


@pytest.mark.parametrize("kwargs, match", [
    ({"min_depth": float("nan")}, "min_depth: must be a finite number >= 0"),
    ({"min_depth": -1.0}, "min_depth: must be a finite number >= 0"),
    ({"min_depth": "0.5"}, "min_depth: expected a number of metres"),
    ({"max_range": float("nan")}, "max_range: must be > min_depth"),
    ({"max_range": 0.0}, "max_range: must be > min_depth"),
    ({"min_depth": 5.0, "max_range": 2.0}, r"max_range: must be > min_depth \(5.0 m\)"),
    ({"max_range": None}, "max_range: expected a number of metres"),
])
def test_depth_limits_are_checked_by_cloud_array_and_count_valid(camera, kwargs, match):
    """NaN min_depth made cv2.inRange's bound NaN: every point silently dropped."""
    depth = np.full((H, W), 4.0, np.float32)
    with pytest.raises(PointCloudError, match=match):
        cloud_array(depth, camera, **kwargs)
    with pytest.raises(PointCloudError, match=match):
        count_valid(depth, **kwargs)


@pytest.mark.parametrize("organised", [False, True])
def test_points_of_a_stereo_rectified_camera_lie_on_the_road_in_the_optical_frame(organised):
    """CameraInfo R (a stereo pair's rectification) puts the rays and the depth in the rectified frame;
    the cloud is stamped with the optical frame tf names. Was: points left in the rectified frame, so
    a level road 1.65 m below the camera came out as a slope (y 0.25-1.32 m with R 4 deg)."""
    from edepth_ros.embodied import EmbodiedConfig, EmbodiedDepth, Region
    from edepth_ros.ground import GroundPlane

    a = math.radians(4.0)
    R = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    K = [300.0, 0, 160.0, 0, 300.0, 60.0, 0, 0, 1]
    cam = CameraModel(320, 120, K, R=R, P=[300.0, 0, 160.0, 0, 0, 300.0, 60.0, 0, 0, 0, 1, 0])
    plane = GroundPlane.from_static(1.65)  # optical frame: y down, the road at y = 1.65
    res = EmbodiedDepth(EmbodiedConfig(max_depth=200.0)).compute(cam, plane, np.zeros((120, 320), np.uint8))
    depth = np.where(res.region == Region.ROAD, res.depth, np.nan).astype(np.float32)
    assert np.isfinite(depth).sum() > 5000
    xyz = cloud_array(depth, cam, organised=organised).reshape(-1, 3)
    xyz = xyz[np.isfinite(xyz).all(axis=1)]
    assert len(xyz) == np.isfinite(depth).sum()
    np.testing.assert_allclose(xyz[:, 1], 1.65, rtol=1e-4)
    # each point still projects to its pixel through P after R (the ROS camera model)
    rect = xyz.astype(np.float64) @ R.T
    u = 300.0 * rect[:, 0] / rect[:, 2] + 160.0
    v = 300.0 * rect[:, 1] / rect[:, 2] + 60.0
    vs, us = np.nonzero(np.isfinite(depth))
    np.testing.assert_allclose(u, us, atol=1e-3)
    np.testing.assert_allclose(v, vs, atol=1e-3)
    np.testing.assert_allclose(rect[:, 2], depth[vs, us], rtol=1e-5)  # the depth image is rectified-frame z
