"""GroundPlane from tf / static parameters / robust fit, pose limits, PlaneTracker."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edepth_ros.camera import CameraModel
from edepth_ros.ground import GroundPlane, GroundPoseError, PlaneTracker, PoseLimits

rad = math.radians


def test_level_camera():
    p = GroundPlane.from_static(1.65)
    np.testing.assert_allclose(p.normal, [0, -1, 0], atol=1e-12)
    assert p.height == pytest.approx(1.65)
    # a point on the road 10 m ahead: y = +1.65 (y down)
    assert p.distance([[0.0, 1.65, 10.0]])[0] == pytest.approx(0.0, abs=1e-12)


def test_pitch_down_sees_road_at_image_centre():
    p = GroundPlane.from_static(1.5, pitch=rad(5))
    # the optical axis (0, 0, 1) meets the road at z = h / sin(pitch)
    assert -p.height / (p.normal @ [0, 0, 1]) == pytest.approx(1.5 / math.sin(rad(5)))
    assert p.pitch == pytest.approx(rad(5)) and p.roll == pytest.approx(0, abs=1e-12)


def test_roll_right_side_down():
    p = GroundPlane.from_static(1.5, roll=rad(4))
    # right side down: points on the right (x > 0) are closer to the road than those on the left
    assert p.distance([[2.0, 0, 10]])[0] < p.distance([[-2.0, 0, 10]])[0]
    assert p.roll == pytest.approx(rad(4))


@settings(max_examples=60, deadline=None)
@given(h=st.floats(0.3, 4.0), pitch=st.floats(-0.3, 0.3), roll=st.floats(-0.3, 0.3), yaw=st.floats(-3, 3))
def test_transform_and_static_agree(h, pitch, roll, yaw):
    T = GroundPlane.transform_from_static(h, pitch, roll, yaw)
    a = GroundPlane.from_transform(T)
    b = GroundPlane.from_static(h, pitch, roll, yaw)
    np.testing.assert_allclose(a.normal, b.normal, atol=1e-12)
    assert a.height == pytest.approx(h)
    # ground-frame road points map onto the plane
    pts_g = np.array([[5.0, 1.0, 0, 1], [20.0, -3.0, 0, 1], [-4.0, 7.0, 0, 1]])
    pts_c = (T @ pts_g.T).T[:, :3]
    np.testing.assert_allclose(a.distance(pts_c), 0, atol=1e-9)
    assert a.pitch == pytest.approx(pitch, abs=1e-9) and a.roll == pytest.approx(roll, abs=1e-9)


def test_camera_below_road_and_limits():
    with pytest.raises(GroundPoseError, match="above the road"):
        GroundPlane.from_static(-1.0)
    T = GroundPlane.transform_from_static(1.5)
    with pytest.raises(GroundPoseError, match="must be above the road"):
        GroundPlane.from_transform(_flip_height(T))
    with pytest.raises(GroundPoseError, match="tilted"):
        GroundPlane.from_static(1.5, pitch=rad(60))
    assert GroundPlane.from_static(1.5, pitch=rad(60), limits=PoseLimits(max_tilt=rad(70))).tilt == pytest.approx(rad(60))
    with pytest.raises(GroundPoseError, match="maximum"):
        GroundPlane.from_static(25.0)
    with pytest.raises(GroundPoseError, match="on or below the road"):
        GroundPlane([0, -1, 0], -0.5)
    with pytest.raises(GroundPoseError, match="zero vector"):
        GroundPlane([0, 0, 0], 1.0)
    with pytest.raises(GroundPoseError, match="finite"):
        GroundPlane([0, float("nan"), 0], 1.0)
    with pytest.raises(GroundPoseError, match="rotation"):
        GroundPlane.from_transform(np.diag([2.0, 1, 1, 1]))
    with pytest.raises(GroundPoseError, match="4x4"):
        GroundPlane.from_transform(np.eye(3))
    # a projective bottom row would be dropped silently: the plane must come from a rigid pose
    projective = T.copy()
    projective[3] = [0.1, 0.2, 0.3, 5.0]
    with pytest.raises(GroundPoseError, match="bottom row"):
        GroundPlane.from_transform(projective)
    # values of the wrong type are named, not a TypeError from inside the maths
    for make, field in ((lambda: GroundPlane.from_static("1.65"), "height"),
                        (lambda: GroundPlane.from_static(1.65, pitch="0.1"), "pitch"),
                        (lambda: GroundPlane.from_transform([["a"] * 4] * 4), "T_cam_from_ground"),
                        (lambda: GroundPlane([0, -1, 0], "abc"), "GroundPlane.height"),
                        (lambda: GroundPlane(["a", -1, 0], 1.0), "GroundPlane.normal"),
                        (lambda: GroundPlane([0, -1e308, 1e308], 1.0), "GroundPlane.normal")):
        with pytest.raises(GroundPoseError, match=field):
            make()
    # a NaN limit compares false with everything, which would switch its check off
    for limits in (dict(min_height=float("nan")), dict(max_tilt=float("nan")), dict(min_height=5, max_height=1),
                   dict(max_tilt=0.0)):
        with pytest.raises(GroundPoseError, match="PoseLimits"):
            PoseLimits(**limits)


def _flip_height(T):
    # the camera 1.5 m *below* the road: translate the ground frame up by 3 m
    up = np.eye(4)
    up[2, 3] = 3.0
    return T @ up


def test_non_unit_normal_is_normalised_with_its_height():
    p = GroundPlane([0, -2, 0], 3.0)
    np.testing.assert_allclose(p.normal, [0, -1, 0])
    assert p.height == pytest.approx(1.5)


def _road_points(plane: GroundPlane, n: int, rng, noise=0.02):
    cam = CameraModel.from_intrinsics(721.5, 721.5, 609.5, 172.8, 1242, 375)
    u = rng.uniform(0, 1242, n)
    v = rng.uniform(200, 375, n)
    rays = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones(n)], 1)
    z = -plane.height / (rays @ plane.normal)
    pts = rays * z[:, None]
    return pts[(z > 0) & (z < 60)] + rng.normal(0, noise, (int(np.sum((z > 0) & (z < 60))), 3))


@settings(max_examples=25, deadline=None)
@given(h=st.floats(0.8, 3.0), pitch=st.floats(-0.1, 0.1), roll=st.floats(-0.1, 0.1), seed=st.integers(0, 10_000))
# found by hypothesis in a full run: a low, steep camera (road seen to 7 m only, the wall's base
# in the band out to 30 m): three least-squares rounds stopped 0.55 deg off before the inlier set
# had settled; refined until it settles, 0.09 deg
@example(h=0.80078125, pitch=0.06640625, roll=0.046875, seed=95)
def test_fit_recovers_plane_despite_clutter(h, pitch, roll, seed):
    rng = np.random.default_rng(seed)
    truth = GroundPlane.from_static(h, pitch, roll)
    road = _road_points(truth, 3000, rng)
    # clutter: a wall (vertical plane) and random points above the road
    wall = np.stack([np.full(800, 4.0), rng.uniform(-2, 1, 800), rng.uniform(5, 30, 800)], 1)
    junk = rng.uniform([-10, -3, 2], [10, 0.5, 40], (800, 3))
    # clutter stands clear of the road (>= 0.3 m above it); nearer than that it is the road's own roughness
    junk = junk[junk @ truth.normal + truth.height > 0.3]
    fit, inliers = GroundPlane.fit(np.vstack([road, wall, junk]), return_inliers=True, seed=seed)
    angle = math.acos(min(1.0, float(fit.normal @ truth.normal)))
    assert angle < rad(0.5)  # 2 cm noise; a low, steep camera sees only a few metres of road
    assert fit.height == pytest.approx(h, abs=0.03)
    assert inliers[: len(road)].mean() > 0.95


def test_fit_errors():
    with pytest.raises(GroundPoseError, match="finite points"):
        GroundPlane.fit(np.zeros((5, 3)))
    rng = np.random.default_rng(0)
    wall = np.stack([np.full(500, 4.0), rng.uniform(-2, 1, 500), rng.uniform(5, 30, 500)], 1)
    with pytest.raises(GroundPoseError, match="max_angle"):
        GroundPlane.fit(wall)
    with pytest.raises(GroundPoseError, match=r"shape \(100, 2\)"):
        GroundPlane.fit(np.ones((100, 2)))
    with pytest.raises(GroundPoseError, match="not numeric"):
        GroundPlane.fit([["a", "b", "c"]] * 40)
    for kwargs in (dict(threshold=float("nan")), dict(threshold=-1.0), dict(iterations=0)):
        with pytest.raises(GroundPoseError, match="threshold"):
            GroundPlane.fit(wall, **kwargs)


def test_tracker_smooths_rejects_and_reinitialises():
    base = GroundPlane.from_static(1.6, pitch=rad(1))
    tr = PlaneTracker(prior=GroundPlane.from_static(1.6), alpha=0.5, confirm_frames=3)
    assert tr.plane == tr.prior
    p1 = tr.update(base, 0.0)
    # blended half way from the prior to the fit
    assert p1.pitch == pytest.approx(rad(0.5), abs=rad(0.01))
    for t in range(1, 10):
        p = tr.update(base, 0.1 * t)
    assert p.pitch == pytest.approx(rad(1), abs=rad(0.01))
    # a single wild fit is ignored
    wild = GroundPlane.from_static(1.6, pitch=rad(12))
    assert tr.update(wild, 1.1).pitch == pytest.approx(rad(1), abs=rad(0.01))
    # a fit outside the pose limits is ignored too
    assert tr.update(GroundPlane([0, -1, 0], 50.0), 1.15).height == pytest.approx(1.6, abs=1e-6)
    # but a consistent new mounting is adopted after confirm_frames
    new = GroundPlane.from_static(2.2, pitch=rad(1))
    for k in range(3):
        p = tr.update(new, 1.2 + 0.1 * k)
    assert p.height == pytest.approx(2.2)
    # no fits for longer than the timeout: relaxes towards the prior
    for k in range(20):
        p = tr.update(None, 10.0 + k)
    assert p.height == pytest.approx(1.6, abs=0.01)
    tr.reset()
    assert tr.plane == tr.prior
    with pytest.raises(ValueError, match="alpha"):
        PlaneTracker(alpha=0)


def test_tracker_relaxes_by_time_restarts_when_time_goes_back_and_keeps_few_outliers():
    """The relaxation was a step per call (2.5 s without fits: 0.22 deg left at 10 Hz, 0.00 at
    100 Hz); after a bag loop (stamps 100 s -> 0) the old pitch stayed; every rejected fit was kept
    (51 MB after 200,000)."""
    pitched = GroundPlane.from_static(1.6, pitch=rad(3))

    def relaxed_at(hz):
        tr = PlaneTracker(prior=GroundPlane.from_static(1.6), alpha=1.0, timeout=0.5)
        tr.update(pitched, 0.0)
        for k in range(1, int(2.5 * hz) + 1):
            p = tr.update(None, k / hz)
        return math.degrees(p.pitch)

    assert relaxed_at(10) == pytest.approx(relaxed_at(100), abs=0.02)
    assert 0.01 < relaxed_at(10) < 3.0
    tr = PlaneTracker(prior=GroundPlane.from_static(1.6), alpha=1.0)
    tr.update(pitched, 100.0)
    assert tr.update(None, 0.0) == tr.prior
    tr = PlaneTracker(prior=GroundPlane.from_static(1.6), alpha=1.0, confirm_frames=3)
    for k in range(1000):  # fits that keep jumping, never agreeing
        tr.update(GroundPlane.from_static(1.6, pitch=rad(8 if k % 2 else -8)), 0.1 * k)
    assert len(tr._outliers) <= 3
    with pytest.raises(ValueError, match="relax_tau"):
        PlaneTracker(relax_tau=0)


@pytest.mark.parametrize("setting, value", [
    ("max_angle_jump", float("nan")), ("max_angle_jump", 0.0), ("max_height_jump", float("nan")),
    ("max_height_jump", -1.0), ("confirm_frames", 0), ("confirm_frames", -2), ("confirm_frames", 2.5),
    ("timeout", float("nan")), ("timeout", -1.0), ("alpha", float("nan")), ("relax_tau", float("inf")),
])
def test_tracker_settings_that_would_switch_the_gate_off_are_refused(setting, value):
    """Was: max_angle_jump NaN adopted a fit 24 deg off at once, confirm_frames 0 or -2 after one frame."""
    with pytest.raises(ValueError, match=rf"PlaneTracker\.{setting}: "):
        PlaneTracker(prior=GroundPlane.from_static(1.6), **{setting: value})


def test_tracker_refuses_a_nan_stamp_and_a_fit_that_is_not_a_plane():
    """Was: update(None, nan) accepted; the next update raised about 'GroundPlane.normal' (NaN), naming
    the wrong thing. The gate still holds with the defaults: one wild fit changes nothing."""
    tr = PlaneTracker(prior=GroundPlane.from_static(1.6, pitch=rad(1)))
    assert tr.update(GroundPlane.from_static(1.6, pitch=rad(25)), 0.0).pitch == pytest.approx(rad(1))
    for stamp in (float("nan"), float("inf"), "1.0", None):
        with pytest.raises(ValueError, match="PlaneTracker.update: stamp"):
            tr.update(None, stamp)
    with pytest.raises(ValueError, match="PlaneTracker.update: fit is ndarray"):
        tr.update(np.array([0.0, -1.0, 0.0, 1.6]), 0.1)
    assert tr.update(None, 5.0).pitch == pytest.approx(rad(1))
