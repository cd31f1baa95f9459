"""Issue 3 target "exact on synthetic scenes": embodied road and ground depth within 0.1% of the
ray-cast ground truth on every valid pixel, for level, pitched (+-3 deg) and rolled cameras."""

from __future__ import annotations

import numpy as np
import pytest

from edepth_ros import labels as L
from edepth_ros.embodied import EmbodiedDepth, Region
from edepth_ros.synthetic import SceneGenerator
from edepth_ros.synthetic.motion import rot_z

DEG = np.pi / 180
POSES = {
    "level": dict(pitch=0.0, roll=0.0),
    "pitch_down_3deg": dict(pitch=3 * DEG, roll=0.0),
    "pitch_up_3deg": dict(pitch=-3 * DEG, roll=0.0),
    "roll_left_3deg": dict(pitch=0.0, roll=3 * DEG),
    "roll_right_3deg": dict(pitch=0.0, roll=-3 * DEG),
    "pitched_and_rolled": dict(pitch=-2 * DEG, roll=2.5 * DEG, height=1.45),
    "driving": dict(),  # the sequence's own pose: braking pitch, weaving roll, heave
}


@pytest.fixture(scope="module")
def embodied():
    return EmbodiedDepth()


def _check_exact(frame, result, ground_ids):
    gt = frame.depth
    for region, ids in ((Region.ROAD, (L.ROAD,)), (Region.GROUND, ground_ids)):
        valid = result.region == region
        assert valid.any(), f"no {region.name} pixels"
        assert np.all(np.isin(frame.labels[valid], ids))
        rel = np.abs(result.depth[valid] / gt[valid] - 1)
        assert rel.max() <= 1e-3, f"{region.name}: worst relative error {rel.max():.2e}"
        # and it is valid where it should be: every labelled pixel within range has plane depth
        within = np.isin(frame.labels, ids) & (gt < 0.9 * EmbodiedDepth().config.max_depth)
        assert np.mean(valid[within]) > 0.99, f"{region.name}: coverage {np.mean(valid[within]):.3f}"


@pytest.mark.parametrize("name", list(POSES))
def test_road_and_ground_depth_exact(embodied, name):
    gen = SceneGenerator(21, curb_height=0.0)  # flush sidewalks: all ground on the road plane
    frame = gen.frame(5, lidar=False, **POSES[name])
    result = embodied.compute(frame.camera, frame.plane, frame.labels)
    _check_exact(frame, result, (L.SIDEWALK, L.TERRAIN))


@pytest.mark.parametrize("seed", [0, 7])
def test_raised_sidewalks_are_off_by_exactly_the_curb(embodied, seed):
    """With 10-15 cm curbs the road stays exact and the pavement's plane depth is too far by
    exactly h / (h - curb): what the geometry predicts, not noise."""
    gen = SceneGenerator(seed, width=621, height=188)
    frame = gen.frame(12, lidar=False)
    result = embodied.compute(frame.camera, frame.plane, frame.labels)
    road = result.region == Region.ROAD
    assert np.abs(result.depth[road] / frame.depth[road] - 1).max() <= 1e-3
    ground = result.region == Region.GROUND
    h, hc = frame.plane.height, gen.layout.curb_height
    # which ground pixels are the curbs' vertical faces: world |y| at the road's edge
    pose = frame.pose
    X = frame.depth[ground][:, None] * frame.camera.rays()[ground]
    T_g_c = np.linalg.inv(frame.T_cam_from_ground)
    Xw = (X @ T_g_c[:3, :3].T + T_g_c[:3, 3]) @ rot_z(pose.yaw).T + np.array([pose.x, pose.y, 0.0])
    face = np.abs(np.abs(Xw[:, 1]) - gen.layout.half_width) < 1e-3
    assert face.any() and (~face).sum() > 1000
    ratio = result.depth[ground] / frame.depth[ground]
    np.testing.assert_allclose(ratio[~face], h / (h - hc), rtol=1e-3)
    assert hc / h > 0.05  # so the 0.1% test above tells the pavement from the road plane


def test_sequence_frames_exact(embodied):
    gen = SceneGenerator(33, width=414, height=125, curb_height=0.0)
    for frame in gen.sequence(4, start=10):
        result = embodied.compute(frame.camera, frame.plane, frame.labels)
        _check_exact(frame, result, (L.SIDEWALK, L.TERRAIN))
