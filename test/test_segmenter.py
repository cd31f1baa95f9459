"""Segmenters: the weight-free geometric segmenter on real KITTI road frames (official masks) and
on synthetic scenes, the label pass-through, and what bad input gets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edepth_ros import labels as L
from edepth_ros.camera import CameraModel
from edepth_ros.ground import GroundPlane
from edepth_ros.labels import LabelError
from edepth_ros.segmenter import (GeometricConfig, GeometricSegmenter, LabelImageSegmenter, Segmenter,
                                  SegmenterError, road_iou)
from edepth_ros.synthetic import SceneGenerator

cv2 = pytest.importorskip("cv2")

# KITTI's nominal camera 2 (the road benchmark ships no calibration): 2011_09_26 P_rect_02,
# the camera 1.65 m above a level road
KITTI_FX, KITTI_CX, KITTI_CY, KITTI_HEIGHT = 721.5377, 609.5593, 172.854, 1.65


def kitti_camera(width, height):
    sx, sy = width / 1242, height / 375
    return CameraModel.from_intrinsics(KITTI_FX * sx, KITTI_FX * sy, (KITTI_CX + 0.5) * sx - 0.5,
                                       (KITTI_CY + 0.5) * sy - 0.5, width, height)


def load_road_frame(kitti_dir, stem):
    img = kitti_dir / "road" / "image_2" / f"um_{stem}.png"
    gt = kitti_dir / "road" / "gt_image_2" / f"um_road_{stem}.png"
    if not img.is_file() or not gt.is_file():
        pytest.skip(f"KITTI road frame {img} or its mask is missing from the samples folder")
    rgb = np.ascontiguousarray(cv2.imread(str(img))[:, :, ::-1])
    mask = cv2.imread(str(gt))[:, :, ::-1]
    road = (mask[..., 0] == 255) & (mask[..., 1] == 0) & (mask[..., 2] == 255)  # magenta = road
    return rgb, road


@pytest.fixture(scope="module")
def segmenter():
    return GeometricSegmenter()


@pytest.mark.parametrize("stem", ["000000", "000001"])
def test_kitti_road_iou(kitti_dir, segmenter, stem):
    rgb, road = load_road_frame(kitti_dir, stem)
    H, W = road.shape
    labels = segmenter.segment(rgb, kitti_camera(W, H), GroundPlane.from_static(KITTI_HEIGHT))
    iou = road_iou(labels, road)
    print(f"KITTI um_{stem}: road IoU {iou:.4f}")
    assert iou >= 0.80
    # the rest of the frame is labelled too: sky at the top, nothing but known ids
    assert np.mean(labels[:40] == L.SKY) > 0.2
    assert set(np.unique(labels)) <= {L.ROAD, L.SIDEWALK, L.BUILDING, L.VEGETATION, L.TERRAIN, L.SKY}


def test_kitti_road_without_a_plane_uses_the_default_mounting(kitti_dir, segmenter):
    rgb, road = load_road_frame(kitti_dir, "000001")
    labels = segmenter.segment(rgb, kitti_camera(*road.shape[::-1]), None)
    assert road_iou(labels, road) >= 0.80


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_synthetic_road_iou(segmenter, seed):
    frame = SceneGenerator(seed).frame(3 * seed, lidar=False)
    labels = segmenter.segment(frame.rgb, frame.camera, frame.plane)
    iou = road_iou(labels, frame.labels == L.ROAD)
    print(f"synthetic seed {seed}: road IoU {iou:.4f}")
    assert iou >= 0.80
    sky = frame.labels == L.SKY
    assert np.mean(labels[sky] == L.SKY) > 0.7


def test_low_resolution_and_full_resolution_work_scales():
    frame = SceneGenerator(4, width=640, height=192).frame(2, lidar=False)
    for scale in (1.0, 0.5):
        labels = GeometricSegmenter(GeometricConfig(work_scale=scale)).segment(frame.rgb, frame.camera, frame.plane)
        assert labels.shape == (192, 640) and labels.dtype == np.uint8
        assert road_iou(labels, frame.labels == L.ROAD) >= 0.75


def test_horizon_below_the_image_gives_no_road(segmenter):
    """Camera pitched far up: no pixel is below the horizon, so nothing can be road or ground."""
    cam = kitti_camera(320, 96)
    rgb = np.full((96, 320, 3), 120, np.uint8)
    labels = segmenter.segment(rgb, cam, GroundPlane.from_static(1.6, pitch=-0.5, limits=None))
    assert not np.isin(labels, (L.ROAD, L.SIDEWALK, L.TERRAIN)).any()


def test_protocol_and_pass_through():
    cam = kitti_camera(64, 32)
    rgb = np.zeros((32, 64, 3), np.uint8)
    given = np.full((32, 64), L.CAR, np.uint8)
    given[20:] = L.ROAD
    seg = LabelImageSegmenter()
    assert isinstance(seg, Segmenter) and isinstance(GeometricSegmenter(), Segmenter)
    with pytest.raises(SegmenterError, match="set_labels"):
        seg.segment(rgb, cam, None)
    seg.set_labels(given)
    np.testing.assert_array_equal(seg.segment(rgb, cam, None), given)
    # an external segmenter as a callable, with its ids remapped to train ids
    table = np.arange(256)
    table[7] = L.ROAD
    ext = LabelImageSegmenter(source=lambda im, c, p: np.full(im.shape[:2], 7, np.uint8), remap=table)
    assert np.all(ext.segment(rgb, cam, None) == L.ROAD)
    with pytest.raises(LabelError, match="shape"):
        LabelImageSegmenter(given[:10]).segment(rgb, cam, None)
    with pytest.raises(LabelError, match="dtype"):
        LabelImageSegmenter(given.astype(np.float32)).segment(rgb, cam, None)


@pytest.mark.parametrize("bad, word", [
    (np.zeros((32, 64, 3), np.float32), "dtype"),
    (np.zeros((32, 64), np.uint8), "shape"),
    (np.zeros((32, 64, 4), np.uint8), "shape"),
    (np.zeros((30, 64, 3), np.uint8), "does not match the camera"),
    ([[0, 0, 0]], "numpy"),
])
def test_bad_rgb_gives_a_clear_error(segmenter, bad, word):
    with pytest.raises(SegmenterError, match=word):
        segmenter.segment(bad, kitti_camera(64, 32), None)


@pytest.mark.parametrize("camera, plane, word", [
    (None, None, "camera: expected the image's CameraModel, got NoneType"),
    (np.eye(3), None, r"camera: expected the image's CameraModel, got ndarray float64 \(3, 3\)"),
    ("kitti", np.eye(4), r"plane: expected a GroundPlane or None, got ndarray float64 \(4, 4\).*from_transform"),
    ("kitti", 1.65, "plane: expected a GroundPlane or None, got float.*from_static"),
])
def test_bad_camera_or_plane_gives_a_clear_error(segmenter, camera, plane, word):
    cam = kitti_camera(64, 32) if isinstance(camera, str) else camera
    with pytest.raises(SegmenterError, match=word):
        segmenter.segment(np.zeros((32, 64, 3), np.uint8), cam, plane)


def test_bad_config_names_the_field():
    with pytest.raises(SegmenterError, match="work_scale"):
        GeometricConfig(work_scale=0.0)
    with pytest.raises(SegmenterError, match="edge_low"):
        GeometricConfig(edge_low=200.0, edge_high=100.0)
    for name in ("marking_width", "max_range", "color_threshold"):  # inf passes "> 0", then overflows
        with pytest.raises(SegmenterError, match=name):
            GeometricConfig(**{name: float("inf")})
    with pytest.raises(SegmenterError, match="growth_bands"):
        GeometricConfig(growth_bands=(15.0, float("inf")))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), fx=st.floats(30.0, 300.0), height=st.floats(0.3, 3.0),
       pitch=st.floats(-30.0, 30.0), roll=st.floats(-20.0, 20.0), kind=st.sampled_from(["noise", "flat", "split"]))
def test_property_any_image_and_pose_gives_valid_labels(seed, fx, height, pitch, roll, kind):
    rng = np.random.default_rng(seed)
    H, W = 48, 96
    if kind == "noise":
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    elif kind == "flat":  # an all-sky / all-road frame: one colour
        rgb = np.full((H, W, 3), rng.integers(0, 256, 3), np.uint8)
    else:
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[: H // 2] = (120, 170, 230)
        rgb[H // 2:] = (90, 90, 90)
    cam = CameraModel.from_intrinsics(fx, fx, W / 2, H / 2, W, H)
    plane = GroundPlane.from_static(height, pitch=np.deg2rad(pitch), roll=np.deg2rad(roll), limits=None)
    labels = GeometricSegmenter().segment(rgb, cam, plane)
    assert labels.shape == (H, W) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {L.ROAD, L.SIDEWALK, L.BUILDING, L.VEGETATION, L.TERRAIN, L.SKY}
    # road and ground only where the plane is: below the horizon
    below = (cam.rays().astype(np.float64) @ plane.normal) < 0
    assert not np.isin(labels[~below], (L.ROAD, L.SIDEWALK, L.TERRAIN)).any()


@pytest.mark.parametrize("kwargs, word", [
    (dict(work_scale="0.5"), "work_scale: '0.5'; expected a number"),
    (dict(growth_bands=15.0), r"growth_bands: 15.0; expected a list of plane depths"),
    (dict(growth_bands=(15, "x")), r"growth_bands: \(15, 'x'\); expected numbers"),
    (dict(edge_low=None), "edge_low: None; expected a number"),
    (dict(max_range=True), "max_range: True; expected a number"),  # a bool passed "> 0" as 1 m
])
def test_bad_config_types_name_the_field(kwargs, word):
    """Strings, None and bare numbers for the bands gave a TypeError naming no field."""
    with pytest.raises(SegmenterError, match=word):
        GeometricConfig(**kwargs)
    assert GeometricConfig(growth_bands=[10, 20.0], work_scale=1).growth_bands == [10, 20.0]


@pytest.mark.parametrize("groups, word", [
    ({"road": 0}, r"ClassGroups.road: 0; expected a list of label ids \(\[0\] for one id"),
    ({"sky": None}, "ClassGroups.sky: None; expected a list of label ids"),
    ({"road": "0"}, "ClassGroups.road: '0'"),  # would have split into characters
    ([0, 1], "expected a mapping of group name"),
])
def test_class_groups_of_the_wrong_type_name_the_group(groups, word):
    """A YAML `road: 0` or `sky:` (null) gave TypeError: 'int' object is not iterable."""
    from edepth_ros.labels import ClassGroups

    with pytest.raises(LabelError, match=word):
        ClassGroups.from_dict(groups)
    assert ClassGroups.from_dict({"road": [0], "sky": []}).sky == frozenset()
