"""rosbags-based bag I/O: round trips (MCAP, sqlite3, compressed), transforms, bad bags, bag makers."""

import os

import numpy as np
import pytest

from edepth_ros.bags import io as bio
from edepth_ros.bags import make_bag as mb

W, H = 414, 125  # a third of KITTI's size keeps the scene generator fast


@pytest.fixture(scope="module")
def synthetic_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "syn"
    mb.make_synthetic_bag(path, frames=3, seed=5, width=W, height=H, progress=False)
    return path


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_images_depth_info_cloud(tmp_path, storage):
    from edepth_ros.camera import CameraModel

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (7, 11, 3), dtype=np.uint8)
    depth = rng.uniform(1, 50, (7, 11)).astype(np.float32)
    depth[0, 0] = np.nan
    cam = CameraModel.from_intrinsics(10.0, 11.0, 5.0, 3.0, 11, 7)
    xyz = rng.normal(size=(50, 3)).astype(np.float32)
    with bio.BagWriter(tmp_path / "b", storage) as w:
        w.write("/img", 5, bio.image_msg(rgb, 5, "cam"))
        w.write("/depth", 6, bio.image_msg(depth, 6, "cam"))
        w.write("/info", 7, bio.camera_info_msg(cam, 7, "cam"))
        w.write("/pts", 8, bio.pointcloud_msg(xyz, 8, "lidar", intensity=np.arange(50, dtype=np.float32)))
        w.write("/jpg", 9, bio.compressed_image_msg(rgb, 9, "cam", "png"))
    with bio.BagReader(tmp_path / "b") as r:
        assert {t: i.count for t, i in r.topics.items()} == {"/img": 1, "/depth": 1, "/info": 1, "/pts": 1, "/jpg": 1}
        got = {t: (r.deserialize(raw, mt), ts) for t, mt, ts, raw in r.messages()}
    assert np.array_equal(bio.image_to_rgb(got["/img"][0]), rgb)
    assert np.array_equal(bio.image_to_rgb(got["/jpg"][0]), rgb)  # png is lossless
    d = bio.depth_to_metres(got["/depth"][0])
    assert np.array_equal(np.isnan(d), np.isnan(depth)) and np.allclose(d[1:], depth[1:])
    cam2 = bio.camera_from_info(got["/info"][0])
    assert (cam2.fx, cam2.fy, cam2.cx, cam2.cy, cam2.width) == (10.0, 11.0, 5.0, 3.0, 11)
    assert np.array_equal(bio.pointcloud_xyz(got["/pts"][0]), xyz)
    assert bio.header_ns(got["/img"][0].header) == 5 and got["/img"][1] == 5


def test_pointcloud_with_mixed_fields_and_padding():
    """A Velodyne-driver layout: x y z float32, intensity float32, ring uint16, 2 bytes padding."""
    PointField = bio.msg_class("sensor_msgs/msg/PointField")
    rec = np.zeros(4, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("i", "<f4"), ("ring", "<u2"), ("pad", "V2")])
    rec["x"], rec["y"], rec["z"] = [1, 2, np.nan, 4], [5, 6, 7, 8], [9, 10, 11, 12]
    msg = bio.msg_class(bio.POINTCLOUD2)(
        header=bio.header(0, "velo"), height=1, width=4, is_bigendian=False, point_step=20, row_step=80,
        fields=[PointField(name=n, offset=o, datatype=t, count=1) for n, o, t in
                (("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("intensity", 12, 7), ("ring", 16, 4))],
        data=rec.view(np.uint8).reshape(-1), is_dense=False)
    xyz = bio.pointcloud_xyz(msg)
    assert xyz.tolist() == [[1, 5, 9], [2, 6, 10], [4, 8, 12]]  # the NaN point is dropped
    bad = bio.msg_class(bio.POINTCLOUD2)(header=bio.header(0, "v"), height=1, width=1, is_bigendian=False,
                                         point_step=4, row_step=4, data=np.zeros(4, np.uint8), is_dense=True,
                                         fields=[PointField(name="x", offset=0, datatype=7, count=1)])
    with pytest.raises(bio.BagError, match=r"no field\(s\) \['y', 'z'\]"):
        bio.pointcloud_xyz(bad)


def test_quaternions_and_tf_tree_chains():
    rng = np.random.default_rng(1)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        R = bio.quaternion_to_matrix(*q)
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.allclose(bio.quaternion_to_matrix(*bio.matrix_to_quaternion(R)), R, atol=1e-9)

    def T(R, t):
        M = np.eye(4)
        M[:3, :3], M[:3, 3] = R, t
        return M

    T_a_b = T(bio.quaternion_to_matrix(0.1, 0.2, 0.3, 0.9), [1, 2, 3])
    T_b_c = T(bio.quaternion_to_matrix(-0.3, 0.1, 0.0, 0.95), [0.5, -1, 0])
    T_a_d = T(np.eye(3), [0, 0, 7])
    tree = bio.TfTree()
    tree.add_message(bio.tf_message([bio.transform_stamped(T_a_b, 0, "a", "b"),
                                     bio.transform_stamped(T_b_c, 0, "b", "c")]), static=True)
    tree.add_message(bio.tf_message([bio.transform_stamped(T_a_d, 10, "a", "d")]), static=False)
    assert np.allclose(tree.lookup("a", "c"), T_a_b @ T_b_c, atol=1e-9)
    assert np.allclose(tree.lookup("c", "a"), np.linalg.inv(T_a_b @ T_b_c), atol=1e-9)
    assert np.allclose(tree.lookup("d", "c", 10), np.linalg.inv(T_a_d) @ T_a_b @ T_b_c, atol=1e-9)
    assert tree.lookup("a", "nowhere") is None


def test_synthetic_bag_topics_and_lidar_lands_on_the_depth_image(synthetic_bag):
    from edepth_ros.evaluation.bag_eval import lidar_to_depth

    with bio.BagReader(synthetic_bag) as r:
        counts = {t: i.count for t, i in r.topics.items()}
        assert counts == {"/tf_static": 1, "/tf": 3, "/camera/camera_info": 3, "/camera/image_raw": 3,
                          "/camera/semantic": 3, "/ground_truth/depth": 3, "/lidar/points": 3}
        tree = bio.TfTree()
        msgs = {}
        for topic, mt, _, raw in r.messages():
            m = r.deserialize(raw, mt)
            if topic in ("/tf", "/tf_static"):
                tree.add_message(m, topic == "/tf_static")
            else:
                msgs.setdefault(topic, m)  # first frame of each
    cam = bio.camera_from_info(msgs["/camera/camera_info"])
    assert (cam.width, cam.height) == (W, H)
    stamp = bio.header_ns(msgs["/camera/image_raw"].header)
    # LiDAR -> camera through /tf_static, projected: the same depths as the exact depth image
    T = tree.lookup("camera_optical_frame", msgs["/lidar/points"].header.frame_id)
    pts = bio.pointcloud_xyz(msgs["/lidar/points"])
    sparse = lidar_to_depth(pts @ T[:3, :3].T + T[:3, 3], cam)
    dense = bio.depth_to_metres(msgs["/ground_truth/depth"])
    both = np.isfinite(sparse) & np.isfinite(dense) & (sparse < 60)
    assert both.sum() > 500
    rel = np.abs(sparse[both] - dense[both]) / dense[both]
    assert np.median(rel) < 0.01 and np.mean(rel < 0.05) > 0.9
    # /tf gives the ground plane: the road pixels' depth (label 0) matches the plane's
    from edepth_ros.ground import GroundPlane

    plane = GroundPlane.from_transform(tree.lookup("camera_optical_frame", "base_footprint", stamp))
    rays = cam.rays()
    z_plane = -plane.height / (rays @ plane.normal)
    road = bio.labels_array(msgs["/camera/semantic"]) == 0
    assert road.sum() > 1000
    assert np.median(np.abs(z_plane[road] - dense[road]) / dense[road]) < 0.01


def test_missing_topic_and_unreadable_bags_say_what(tmp_path, synthetic_bag):
    with bio.BagReader(synthetic_bag) as r:
        with pytest.raises(bio.BagError, match=r"no topic /nope.*/camera/image_raw"):
            r.require_topics(["/camera/image_raw", "/nope"])
    with pytest.raises(bio.BagError, match="does not exist"):
        bio.BagReader(tmp_path / "absent")
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not a bag at all")
    with pytest.raises(bio.BagError, match="cannot be opened"):
        bio.BagReader(junk)
    with pytest.raises(bio.BagError, match="exists already"):
        bio.BagWriter(synthetic_bag)


def test_truncated_mcap_is_read_up_to_the_cut(tmp_path):
    path = tmp_path / "cut"
    mb.make_synthetic_bag(path, frames=4, seed=2, width=W, height=H, progress=False)
    with bio.BagReader(path) as r:
        full = [(t, ts) for t, _, ts, _ in r.messages()]
    mcap = next(path.glob("*.mcap"))
    os.truncate(mcap, int(mcap.stat().st_size * 0.6))
    (path / "metadata.yaml").unlink()  # as when the recorder was killed
    with bio.BagReader(path) as r:
        assert r.truncated and "cut short" in r.truncated
        got = [(t, ts) for t, _, ts, _ in r.messages()]
        assert "/camera/image_raw" in r.topics
    assert 0 < len(got) < len(full)
    assert got == full[: len(got)]  # the readable front, in order, unchanged


def _raw_drive(tmp_path, kitti_dir, stems):
    """A KITTI raw-drive layout of symlinks: the shared object frames `stems` and the 2011_09_26 calibration."""
    drive = tmp_path / "2011_09_26" / "2011_09_26_drive_0001_sync"
    (drive / "image_02" / "data").mkdir(parents=True)
    (drive / "velodyne_points" / "data").mkdir(parents=True)
    for f in (kitti_dir / "raw_calib" / "2011_09_26").glob("*.txt"):
        (drive.parent / f.name).symlink_to(f)
    for i, stem in enumerate(stems):
        (drive / "image_02" / "data" / f"{i:010d}.png").symlink_to(kitti_dir / "object" / "image_2" / f"{stem}.png")
        (drive / "velodyne_points" / "data" / f"{i:010d}.bin").symlink_to(kitti_dir / "object" / "velodyne" / f"{stem}.bin")
    return drive


def test_kitti_raw_drive_to_bag(tmp_path, kitti_dir):
    """A raw-drive layout built from symlinks to the shared object frames and the 2011_09_26 calibration."""
    drive = _raw_drive(tmp_path, kitti_dir, ("000001", "000002"))
    (drive / "image_02" / "timestamps.txt").write_text("2011-09-26 13:02:25.964389445\n2011-09-26 13:02:26.067700000\n")
    out = tmp_path / "kitti_bag"
    summary = mb.make_kitti_bag(out, drive, progress=False)
    assert summary.frames == 2
    assert summary.topics == {"/tf_static": 1, "/camera/camera_info": 2, "/camera/image_raw": 2, "/lidar/points": 2}
    assert any("velodyne_points/timestamps.txt not found" in n and "LiDAR stamped with the images' times" in n
               for n in summary.notes)
    with bio.BagReader(out) as r:
        stamps = [ts for t, _, ts, _ in r.messages(["/camera/image_raw"])]
        assert stamps == [1317042145964389445, 1317042146067700000]
        # the LiDAR on the images' clock (was 2024-01-01 against 2011 images: `eval bag` paired nothing)
        assert [(t, bio.cdr_header_ns(raw)) for _, _, t, raw in r.messages(["/lidar/points"])] == [
            (s, s) for s in stamps]
        for t, mt, _, raw in r.messages(["/lidar/points"]):
            n = len(bio.pointcloud_xyz(r.deserialize(raw, mt)))
            from edepth_ros import kitti

            assert n == len(kitti.read_velodyne(kitti_dir / "object" / "velodyne" / "000001.bin"))
            break
    with pytest.raises(mb.MakeBagError, match="image_02/data"):
        mb.make_kitti_bag(tmp_path / "x", tmp_path)


def test_make_bag_command(tmp_path, capsys):
    from edepth_ros.commands import make_bag as cmd
    import argparse

    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    args = p.parse_args(["synthetic", str(tmp_path / "c"), "--frames", "1", "--seed", "3", "--width", "207",
                         "--height", "63", "--image-format", "jpeg", "--storage", "sqlite3"])
    assert cmd.run(args) == 0
    assert "/camera/image_raw/compressed: 1" in capsys.readouterr().out
    assert cmd.run(args) == 2  # the folder exists now: refused, with the reason
    assert "exists already" in capsys.readouterr().err


def test_dynamic_transforms_are_looked_up_at_the_stamp():
    tree = bio.TfTree()

    def at(z):
        T = np.eye(4)
        T[2, 3] = z
        return T

    # out of order on purpose: /tf from several publishers is not sorted
    for stamp, z in ((20, 2.0), (30, 3.0), (10, 1.0)):
        tree.add_message(bio.tf_message([bio.transform_stamped(at(z), stamp, "odom", "base")]), static=False)
    assert [tree.lookup("odom", "base", t)[2, 3] for t in (5, 10, 15, 25, 99)] == [1.0, 1.0, 1.0, 2.0, 3.0]
    assert tree.lookup("odom", "base")[2, 3] == 3.0 and tree.frames() == {"odom", "base"}


def test_bag_and_evaluation_modules_import_without_rclpy_or_torch():
    import subprocess
    import sys

    code = ("import sys, edepth_ros.metrics, edepth_ros.bags.io, edepth_ros.bags.make_bag, edepth_ros.bags.play, "
            "edepth_ros.bags.record, edepth_ros.evaluation.kitti_eval, edepth_ros.evaluation.bag_eval, "
            "edepth_ros.evaluation.report, edepth_ros.demo, edepth_ros.commands.eval, edepth_ros.commands.play, "
            "edepth_ros.commands.record, edepth_ros.commands.make_bag, edepth_ros.commands.demo; "
            "print(sorted(m for m in ('rclpy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tf_max_age_refuses_stale_and_future_transforms_on_the_chain_only():
    """As the node's tf_max_age: a /tf edge must have a transform that close to the stamp (the latest
    at or before it, else the next after it); a static one or one stamped 0 is never stale."""
    tree = bio.TfTree()

    def at(z):
        T = np.eye(4)
        T[2, 3] = z
        return T

    s = 10 ** 9
    for stamp, z in ((100 * s, 1.0), (101 * s, 2.0)):
        tree.add_message(bio.tf_message([bio.transform_stamped(at(z), stamp, "odom", "base")]), static=False)
    tree.add_message(bio.tf_message([bio.transform_stamped(at(5.0), 0, "base", "cam")]), static=False)  # stamp 0
    tree.add_message(bio.tf_message([bio.transform_stamped(at(7.0), 0, "cam", "lidar")]), static=True)
    tree.add_message(bio.tf_message([bio.transform_stamped(at(9.0), 3 * s, "odom", "gps")]), static=False)
    assert tree.lookup("odom", "lidar", int(100.5 * s), max_age_ns=s)[2, 3] == 13.0
    assert tree.lookup("odom", "base", int(99.5 * s), max_age_ns=s)[2, 3] == 1.0  # the next, 0.5 s newer
    assert tree.lookup("odom", "base", int(101.9 * s), max_age_ns=s)[2, 3] == 2.0
    with pytest.raises(bio.TfStaleError, match=r"odom -> base nearest to t = 160\.000 s is 59\.00 s older than it "
                                               r"\(tf_max_age 1 s\)") as exc:
        tree.lookup("lidar", "odom", 160 * s, max_age_ns=s)
    assert (exc.value.parent, exc.value.child) == ("odom", "base") and isinstance(exc.value, bio.BagError)
    with pytest.raises(bio.TfStaleError, match="100.00 s newer"):
        tree.lookup("odom", "base", 0, max_age_ns=s)
    assert tree.lookup("odom", "base", 160 * s)[2, 3] == 2.0  # without a limit: as before
    # odom -> gps is 97 s stale at t = 100 s but not on the chain asked for: it does not matter
    assert tree.lookup("base", "odom", 100 * s, max_age_ns=s)[2, 3] == -1.0


def test_pointclouds_numpy_cannot_view_are_a_bag_error_naming_the_field():
    """Was a KeyError (datatype 0) or numpy's ValueError (a field beyond point_step): a traceback."""
    import dataclasses

    good = bio.pointcloud_msg(np.arange(12, dtype=np.float32).reshape(4, 3), 0, "lidar")
    assert bio.pointcloud_xyz(good).shape == (4, 3)
    bad_type = dataclasses.replace(good, fields=[dataclasses.replace(f, datatype=0) for f in good.fields])
    with pytest.raises(bio.BagError, match="field 'x' has datatype 0, not a PointField type"):
        bio.pointcloud_xyz(bad_type)
    with pytest.raises(bio.BagError, match=r"field 'z' \(offset 8, 4 bytes, count 1\) does not fit in point_step 8"):
        bio.pointcloud_xyz(dataclasses.replace(good, point_step=8, row_step=32))
    rows = dataclasses.replace(good, height=2, width=2, row_step=16)
    with pytest.raises(bio.BagError, match="row_step 16 is shorter than width 2 x point_step 12"):
        bio.pointcloud_xyz(rows)
    padded = dataclasses.replace(good, height=2, width=1, row_step=24)  # each row padded to 24 bytes
    assert bio.pointcloud_xyz(padded).tolist() == [[0, 1, 2], [6, 7, 8]]
    empty = dataclasses.replace(good, width=0, row_step=0, data=np.zeros(0, np.uint8))
    assert bio.pointcloud_xyz(empty).shape == (0, 3)


def test_tf_topic_of_another_type_is_named_before_reading(tmp_path):
    """/tf holding TransformStamped (not TFMessage) was an AttributeError on `.transforms`."""
    from edepth_ros.camera import CameraModel

    cam = CameraModel.from_intrinsics(10.0, 10.0, 5.0, 3.0, 11, 7)
    with bio.BagWriter(tmp_path / "b") as w:
        w.write("/img", 1, bio.image_msg(np.zeros((7, 11, 3), np.uint8), 1, "cam"))
        w.write("/info", 1, bio.camera_info_msg(cam, 1, "cam"))
        w.write("/depth", 1, bio.image_msg(np.ones((7, 11), np.float32), 1, "cam"))
        w.write("/tf", 1, bio.transform_stamped(np.eye(4), 1, "base_footprint", "cam"))
    with bio.BagReader(tmp_path / "b") as r:
        with pytest.raises(bio.BagError, match=r"topic /tf in .* holds geometry_msgs/msg/TransformStamped, not "
                                               r"tf2_msgs/msg/TFMessage"):
            r.require_depth_sources("/img", "/info", depth_topic="/depth")


def test_header_stamps_read_from_cdr_and_unusable_stamps_are_named():
    msg = bio.image_msg(np.zeros((2, 3, 3), np.uint8), 1_704_067_200_123_456_789, "cam")
    for kind in ("little", "big"):
        raw = (bio.typestore().serialize_cdr(msg, bio.IMAGE, little_endian=kind == "little"))
        assert bio.cdr_header_ns(raw) == 1_704_067_200_123_456_789
    assert bio.cdr_header_ns(b"\x00\x01") is None
    ok = {"/img": [1, 2, 3, 4], "/depth": [1, 2, 2, 3]}  # one repeat is jitter, not a broken driver
    assert bio.header_stamps_problem(ok) is None
    assert bio.header_stamps_problem({"/img": [0, 0, 0], "/depth": [1, 2, 3]}) == "/img: all 3 header stamps are 0"
    assert bio.header_stamps_problem({"/img": [5, 5, 5, 6]}) == "/img: 2 of 3 consecutive header stamps do not increase"


def test_kitti_sensors_share_one_time_base_whichever_timestamps_txt_is_missing(tmp_path, kitti_dir):
    """A sensor without its timestamps.txt was stamped from 2024-01-01 while the other kept its 2011 stamps."""
    drive = _raw_drive(tmp_path, kitti_dir, ("000001",))

    def stamps(out):
        with bio.BagReader(out) as r:
            return {topic: bio.cdr_header_ns(raw) for topic, _, _, raw in r.messages(["/camera/image_raw",
                                                                                      "/lidar/points"])}

    (drive / "velodyne_points" / "timestamps.txt").write_text("2011-09-26 13:02:25.950000000\n")
    summary = mb.make_kitti_bag(tmp_path / "velo_only", drive, progress=False)
    assert stamps(tmp_path / "velo_only") == {"/camera/image_raw": 1317042145950000000,
                                              "/lidar/points": 1317042145950000000}
    assert any("image_02/timestamps.txt not found" in n and "the LiDAR's times" in n for n in summary.notes)
    (drive / "velodyne_points" / "timestamps.txt").unlink()
    summary = mb.make_kitti_bag(tmp_path / "neither", drive, progress=False)
    t0 = mb.SYNTHETIC_T0_NS
    assert stamps(tmp_path / "neither") == {"/camera/image_raw": t0, "/lidar/points": t0}
    assert any("both stamped at 10 Hz from 2024-01-01" in n for n in summary.notes)


def test_tf_stamped_0_is_placed_at_its_log_time_and_log_time_pairing_looks_tf_up_by_log_time():
    """Every frame got the bag's LAST /tf pose where /tf was stamped 0, or where the frames were paired by
    log time (lookups at log times against header stamps). /tf_static stamped 0 stays valid at all times."""
    s = 10 ** 9

    def at(z):
        T = np.eye(4)
        T[2, 3] = z
        return T

    tree = bio.TfTree()
    tree.add_message(bio.tf_message([bio.transform_stamped(at(7.0), 0, "cam", "lidar")]), static=True, log_t=100 * s)
    for log_t, z in ((100 * s, 1.0), (101 * s, 2.0), (102 * s, 3.0)):  # a publisher that leaves stamps 0
        tree.add_message(bio.tf_message([bio.transform_stamped(at(z), 0, "odom", "cam")]), static=False, log_t=log_t)
    assert [tree.lookup("odom", "cam", t)[2, 3] for t in (99 * s, 100 * s, int(101.5 * s), 200 * s)] == [
        1.0, 1.0, 2.0, 3.0]
    # still never stale (a static transform published on /tf), and /tf_static valid before its log time
    assert tree.lookup("odom", "lidar", 500 * s, max_age_ns=s)[2, 3] == 10.0
    assert tree.lookup("odom", "lidar", 0, max_age_ns=s)[2, 3] == 8.0
    # header stamps on another clock (a recorder's log time is what pairs the frames): looked up by log time
    tree = bio.TfTree()
    for log_t, z in ((100 * s, 1.0), (101 * s, 2.0)):
        tree.add_message(bio.tf_message([bio.transform_stamped(at(z), log_t - 50 * s, "odom", "cam")]), static=False,
                         log_t=log_t)
    assert tree.lookup("odom", "cam", 100 * s)[2, 3] == 2.0  # header clock: both are older than t
    tree.log_time = True
    assert [tree.lookup("odom", "cam", t, max_age_ns=s)[2, 3] for t in (100 * s, int(101.2 * s))] == [1.0, 2.0]
    with pytest.raises(bio.TfStaleError):
        tree.lookup("odom", "cam", 60 * s, max_age_ns=s)


def test_one_topic_given_for_two_roles_is_refused_naming_both(synthetic_bag):
    """The type check was a dict keyed by topic: an image topic equal to the ground-truth (or camera_info)
    topic kept only the last role's check, and every frame was then skipped with a misleading reason."""
    flags = {"image": "--image-topic", "lidar": "--lidar-topic", "depth": "--depth-topic", "labels": "--labels-topic"}
    with bio.BagReader(synthetic_bag) as r:
        with pytest.raises(bio.BagError, match="topic /lidar/points in .* holds sensor_msgs/msg/PointCloud2, not "
                                               "sensor_msgs/msg/Image.*; --image-topic and --lidar-topic are both "
                                               "/lidar/points"):
            r.require_depth_sources("/lidar/points", "/camera/camera_info", lidar_topic="/lidar/points", flags=flags)
        with pytest.raises(bio.BagError, match="--image-topic and --depth-topic are both /ground_truth/depth"):
            r.require_depth_sources("/ground_truth/depth", "/camera/camera_info", depth_topic="/ground_truth/depth",
                                    flags=flags)
        with pytest.raises(bio.BagError, match="--image-topic and --labels-topic are both /camera/semantic"):
            r.require_depth_sources("/camera/semantic", "/camera/camera_info", depth_topic="/ground_truth/depth",
                                    labels_topic="/camera/semantic", flags=flags)
        with pytest.raises(bio.BagError, match="the depth topic and the labels topic are both /camera/semantic"):
            r.require_depth_sources("/camera/image_raw", "/camera/camera_info", depth_topic="/camera/semantic",
                                    labels_topic="/camera/semantic")
        # a camera_info topic given as the image topic: both roles' types are checked
        with pytest.raises(bio.BagError, match="topic /camera/camera_info in .* holds sensor_msgs/msg/CameraInfo, "
                                               "not sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage"):
            r.require_depth_sources("/camera/camera_info", "/camera/camera_info", depth_topic="/ground_truth/depth")
        r.require_depth_sources("/camera/image_raw", "/camera/camera_info", depth_topic="/ground_truth/depth",
                                labels_topic="/camera/semantic", flags=flags)
