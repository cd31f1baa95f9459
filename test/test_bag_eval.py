"""Bag evaluation: pairing, tf, LiDAR projection, the same pipeline as the node, bad bags."""

import argparse
import json
import os

import numpy as np
import pytest

from edepth_ros import metrics as M
from edepth_ros.bags import io as bio
from edepth_ros.bags import make_bag as mb
from edepth_ros.evaluation import bag_eval as be

W, H, SEED, N = 414, 125, 11, 3
TOPICS = dict(image_topic="/camera/image_raw", camera_info_topic="/camera/camera_info")


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bag_eval") / "syn"
    mb.make_synthetic_bag(path, frames=N, seed=SEED, width=W, height=H, progress=False)
    return path


@pytest.fixture(scope="module")
def pipeline():
    from edepth_ros.backends import EmbodiedOnlyBackend
    from edepth_ros.pipeline import DepthPipeline

    return DepthPipeline(EmbodiedOnlyBackend())


def _copy(src, dst, drop=(), keep_only=None):
    """A copy of a bag without some topics (a bag as a user might have recorded it)."""
    with bio.BagReader(src) as r, bio.BagWriter(dst) as w:
        for topic, mt, t, raw in r.messages():
            if topic in drop or (keep_only and topic not in keep_only):
                continue
            w.add_topic(topic, mt)
            w.write_raw(topic, t, raw)
    return dst


def test_depth_topic_metrics_equal_an_independent_run_on_the_generator(bag, pipeline, tmp_path):
    res = be.evaluate_bag(bag, pipeline, depth_topic="/ground_truth/depth", labels_topic="/camera/semantic",
                          out_dir=tmp_path / "r", progress=False, **TOPICS)
    assert len(res.per_frame) == N and not res.skipped and res.truncated is None
    # the same frame straight from the scene generator, pose from its own transform: same numbers
    from edepth_ros.frame import Frame
    from edepth_ros.ground import GroundPlane
    from edepth_ros.synthetic import SceneGenerator

    f = SceneGenerator(SEED, width=W, height=H).frame(1)
    out = pipeline.process(Frame(rgb=f.rgb, camera=f.camera, plane=GroundPlane.from_transform(f.T_cam_from_ground),
                                 labels=f.labels))
    gt = np.where(np.isfinite(f.depth), f.depth, np.nan)
    expect = M.depth_metrics(out.depth, gt, crop=None)
    for k in M.METRIC_NAMES:
        assert res.per_frame[1][k] == pytest.approx(expect[k], rel=1e-5, abs=1e-7), k
    assert "tf" in res.notes[-1]  # the ground plane came from the bag's /tf
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["frames"] == N and set(summary["by_distance"]) >= {"0-10", "10-20"}
    assert (tmp_path / "r" / "examples.png").is_file()


def test_lidar_via_tf_static_equals_lidar_via_given_extrinsics(bag, pipeline):
    a = be.evaluate_bag(bag, pipeline, lidar_topic="/lidar/points", labels_topic="/camera/semantic",
                        progress=False, **TOPICS)
    b = be.evaluate_bag(bag, pipeline, lidar_topic="/lidar/points", labels_topic="/camera/semantic",
                        extrinsics=mb.synthetic_lidar_extrinsics(), progress=False, **TOPICS)
    assert len(a.per_frame) == N and a.per_frame[0]["pixels"] > 1000
    assert a.mean == pytest.approx(b.mean)
    # a wrong extrinsic (LiDAR 0.5 m lower: along the road would not show) scores clearly worse
    T = mb.synthetic_lidar_extrinsics()
    T[1, 3] += 0.5
    c = be.evaluate_bag(bag, pipeline, lidar_topic="/lidar/points", labels_topic="/camera/semantic",
                        extrinsics=T, progress=False, **TOPICS)
    assert c.mean["abs_rel"] > 1.5 * a.mean["abs_rel"]


def test_lidar_without_transform_is_skipped_with_the_frame_names(bag, pipeline, tmp_path):
    nostatic = _copy(bag, tmp_path / "nostatic", drop=("/tf_static",))
    res = be.evaluate_bag(nostatic, pipeline, lidar_topic="/lidar/points", labels_topic="/camera/semantic",
                          progress=False, **TOPICS)
    assert res.per_frame == []
    (reason, count), = res.skipped.items()
    assert count == N and "'lidar_link'" in reason and "'camera_optical_frame'" in reason and "--extrinsics" in reason


def test_missing_topic_and_missing_camera_info(bag, pipeline, tmp_path):
    with pytest.raises(be.BagEvalError, match="no topic /velodyne_points"):
        be.evaluate_bag(bag, pipeline, lidar_topic="/velodyne_points", progress=False, **TOPICS)
    noinfo = tmp_path / "noinfo"
    _copy(bag, noinfo, drop=("/camera/camera_info",))
    with pytest.raises(be.BagEvalError, match="no topic /camera/camera_info"):
        be.evaluate_bag(noinfo, pipeline, depth_topic="/ground_truth/depth", progress=False, **TOPICS)
    with pytest.raises(be.BagEvalError, match="exactly one"):
        be.evaluate_bag(bag, pipeline, progress=False, **TOPICS)


def test_labels_are_found_however_many_arrive_before_the_image_is_scored(bag, pipeline, tmp_path):
    """A fast camera: many label images arrive in the 2 s before a frame is scored (a 32-deep
    buffer once dropped the frame's own label there, silently falling back to the segmenter)."""
    import dataclasses

    flood = tmp_path / "flood"
    with bio.BagReader(bag) as r, bio.BagWriter(flood) as w:
        for topic, mt, t, raw in r.messages():
            w.add_topic(topic, mt)
            w.write_raw(topic, t, raw)
            if topic == "/camera/semantic":  # 40 more label images with other stamps, 1 ms apart
                msg = r.deserialize(raw, mt)
                for k in range(1, 41):
                    stamp = dataclasses.replace(msg.header.stamp, nanosec=(msg.header.stamp.nanosec + k * 10 ** 6) % 10 ** 9)
                    w.write(topic, t + k * 10 ** 6, dataclasses.replace(msg, header=dataclasses.replace(msg.header, stamp=stamp)))
    kw = dict(depth_topic="/ground_truth/depth", labels_topic="/camera/semantic", progress=False, **TOPICS)
    expect = be.evaluate_bag(bag, pipeline, **kw)
    got = be.evaluate_bag(flood, pipeline, **kw)
    assert [r["abs_rel"] for r in got.per_frame] == pytest.approx([r["abs_rel"] for r in expect.per_frame])
    no_labels = be.evaluate_bag(bag, pipeline, depth_topic="/ground_truth/depth", progress=False, **TOPICS)
    assert [r["abs_rel"] for r in no_labels.per_frame] != pytest.approx([r["abs_rel"] for r in expect.per_frame])


def test_topic_of_the_wrong_type_is_named_at_start(bag, pipeline, tmp_path):
    for kw, topic in ((dict(lidar_topic="/ground_truth/depth"), "/ground_truth/depth"),
                      (dict(depth_topic="/lidar/points"), "/lidar/points"),
                      (dict(depth_topic="/ground_truth/depth", image_topic="/lidar/points"), "/lidar/points")):
        args = {**TOPICS, **kw}
        with pytest.raises(be.BagEvalError, match=f"topic {topic} in .* holds sensor_msgs/msg/"):
            be.evaluate_bag(bag, pipeline, progress=False, **args)
    # an image topic of the right type but not depth: each frame skipped with the topic named
    res = be.evaluate_bag(bag, pipeline, depth_topic="/camera/semantic", progress=False, out_dir=tmp_path / "r",
                          plots=False, **TOPICS)
    (reason, count), = res.skipped.items()
    assert count == N and reason.startswith("/camera/semantic: ") and "mono8" in reason
    assert not list((tmp_path / "r").glob("*.png"))  # plots=False writes no picture


def test_images_without_a_near_ground_truth_are_counted(bag, pipeline):
    res = be.evaluate_bag(bag, pipeline, depth_topic="/ground_truth/depth", labels_topic="/camera/semantic",
                          max_dt=0.0, progress=False, **TOPICS)
    assert len(res.per_frame) == N  # same stamps: dt 0 is within 0
    later = be.evaluate_bag(bag, pipeline, depth_topic="/ground_truth/depth", labels_topic="/camera/semantic",
                            max_frames=2, progress=False, **TOPICS)
    assert len(later.per_frame) == 2


def test_truncated_compressed_bag_is_evaluated_up_to_the_cut(pipeline, tmp_path):
    path = tmp_path / "jpeg"
    mb.make_synthetic_bag(path, frames=4, seed=SEED, width=W, height=H, image_format="jpeg", progress=False)
    full = be.evaluate_bag(path, pipeline, image_topic="/camera/image_raw/compressed",
                           camera_info_topic="/camera/camera_info", depth_topic="/ground_truth/depth",
                           progress=False)
    assert len(full.per_frame) == 4
    mcap = next(path.glob("*.mcap"))
    os.truncate(mcap, int(mcap.stat().st_size * 0.7))
    (path / "metadata.yaml").unlink()
    cut = be.evaluate_bag(path, pipeline, image_topic="/camera/image_raw/compressed",
                          camera_info_topic="/camera/camera_info", depth_topic="/ground_truth/depth",
                          progress=False)
    assert 1 <= len(cut.per_frame) < 4 and cut.truncated
    assert any("ends early" in n for n in cut.notes)
    assert cut.per_frame[0]["abs_rel"] == pytest.approx(full.per_frame[0]["abs_rel"])


def test_cli(bag, tmp_path, capsys):
    from edepth_ros.commands import eval as cmd

    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    T = mb.synthetic_lidar_extrinsics()
    args = p.parse_args(["bag", str(bag), "--lidar-topic", "/lidar/points", "--labels-topic", "/camera/semantic",
                         "--embodied-only", "--out", str(tmp_path / "o"), "--quiet", "--no-plots",
                         "--extrinsics", " ".join(str(v) for v in T.ravel())])
    assert cmd.run(args) == 0
    assert f"{N} frames evaluated, 0 skipped" in capsys.readouterr().out
    assert cmd.parse_extrinsics("1 2 3 0 0 0 1")[:3, 3].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="16 .* or 7"):
        cmd.parse_extrinsics("1 2 3")
    args = p.parse_args(["bag", str(bag), "--lidar-topic", "/nope", "--embodied-only", "--out", str(tmp_path / "x")])
    assert cmd.run(args) == 2
    assert "no topic /nope" in capsys.readouterr().err


# ---------------------------------------------------------------- stamps, tf age, frame ids, unusable GT

S = 10 ** 9


def _rewrite(src, dst, fn, declare=None):
    """A copy of a bag with each message passed through ``fn(topic, t, msg)``, which returns the
    [(topic, t, msg)] to write instead (a bag as a driver or a user got it wrong); ``declare``:
    {topic: type} recorded even with no message."""
    out = []
    with bio.BagReader(src) as r:
        for topic, mt, t, raw in r.messages():
            out += fn(topic, t, r.deserialize(raw, mt))
    with bio.BagWriter(dst) as w:  # each topic of its first message's type
        for topic, mt in (declare or {}).items():
            w.add_topic(topic, mt)
        for topic, t, msg in sorted(out, key=lambda m: m[1]):
            w.write(topic, t, msg)
    return dst


def _header(msg, stamp=None, frame_id=None):
    import dataclasses

    h = msg.header
    return dataclasses.replace(msg, header=bio.header(bio.header_ns(h) if stamp is None else stamp,
                                                      h.frame_id if frame_id is None else frame_id))


def _image_stamps(bag):
    with bio.BagReader(bag) as r:
        return [t for _, _, t, _ in r.messages([TOPICS["image_topic"]])]


def test_stale_tf_skips_lidar_frames_and_the_ground_pose_falls_back_as_the_node(bag, pipeline, tmp_path):
    """A /tf that stopped 60 s before the images was used as if current (a LiDAR extrinsic, a ground
    pose): beyond tf_max_age (the node's 1 s) the LiDAR frame is skipped and the ground pose is the
    static mounting, as the node does; --tf-max-age widens it."""
    from edepth_ros.ground import GroundPlane

    first = _image_stamps(bag)[0]
    T_cl = mb.synthetic_lidar_extrinsics()
    ext = [("/tf", first - 60 * S, bio.tf_message([bio.transform_stamped(T_cl, first - 60 * S, bio.CAMERA_FRAME,
                                                                           bio.LIDAR_FRAME)]))]
    stale = _rewrite(bag, tmp_path / "stale_lidar",
                     lambda tp, t, m: ext if tp == "/tf_static" else [(tp, t, m)])
    kw = dict(lidar_topic="/lidar/points", labels_topic="/camera/semantic", progress=False, **TOPICS)
    res = be.evaluate_bag(stale, pipeline, **kw)
    assert res.per_frame == []
    (reason, count), = res.skipped.items()
    assert count == N and "/tf camera_optical_frame -> lidar_link" in reason and "tf_max_age 1 s" in reason
    assert any("60.00 s older" in n for n in res.notes)
    wide = be.evaluate_bag(stale, pipeline, tf_max_age=120.0, **kw)
    assert wide.mean == pytest.approx(be.evaluate_bag(bag, pipeline, **kw).mean)

    # the ground pose on /tf only 30 s before the images: the static mounting, said in the notes
    old = first - 30 * S
    with bio.BagReader(bag) as r:
        pose = next(r.deserialize(raw, mt) for _, mt, _, raw in r.messages(["/tf"]))
    pose = bio.tf_message([_header(pose.transforms[0], old)])
    stale_pose = _rewrite(bag, tmp_path / "stale_pose",
                          lambda tp, t, m: ([("/tf", old, pose)] if t == first else []) if tp == "/tf"
                          else [(tp, t, m)])
    static = GroundPlane.from_static(1.65, 0.0)
    kw = dict(depth_topic="/ground_truth/depth", labels_topic="/camera/semantic", static_plane=static,
              progress=False, **TOPICS)
    got = be.evaluate_bag(stale_pose, pipeline, **kw)
    expect = be.evaluate_bag(bag, pipeline, **{**kw, "ground_frame": None})  # the static mounting throughout
    assert [r["abs_rel"] for r in got.per_frame] == pytest.approx([r["abs_rel"] for r in expect.per_frame])
    assert got.notes[-1] == "ground plane: {'static': 3}"
    assert any(n.startswith(f"ground plane from the static mounting for {N} frames: /tf base_footprint -> "
                            "camera_optical_frame has no transform within tf_max_age 1 s") and "30.00 s older" in n
               for n in got.notes)
    with pytest.raises(be.BagEvalError, match="--tf-max-age -1"):
        be.evaluate_bag(bag, pipeline, tf_max_age=-1, **kw)


def test_zero_header_stamps_pair_by_log_time_with_a_note(bag, pipeline, tmp_path):
    """Every header stamp 0 (a driver that never sets it) paired every image with the first ground
    truth; now the bag's log time pairs them, and the result says so."""
    zero = _rewrite(bag, tmp_path / "zero", lambda tp, t, m: [(tp, t, _header(m, stamp=0) if tp in (
        TOPICS["image_topic"], TOPICS["camera_info_topic"], "/ground_truth/depth", "/camera/semantic") else m)])
    kw = dict(depth_topic="/ground_truth/depth", labels_topic="/camera/semantic", progress=False, **TOPICS)
    expect = be.evaluate_bag(bag, pipeline, **kw)
    got = be.evaluate_bag(zero, pipeline, **kw)
    assert [r["abs_rel"] for r in got.per_frame] == pytest.approx([r["abs_rel"] for r in expect.per_frame])
    assert [r["pixels"] for r in got.per_frame] == [r["pixels"] for r in expect.per_frame]
    assert any(n.startswith("header stamps unusable (/camera/image_raw: all 3 header stamps are 0; "
                            "/ground_truth/depth: all 3 header stamps are 0)") and "log time" in n for n in got.notes)
    assert not any("header stamps" in n for n in expect.notes)


def test_frame_id_mismatches_are_skipped_with_both_frames_named(bag, pipeline, tmp_path):
    kw = dict(depth_topic="/ground_truth/depth", progress=False, **TOPICS)
    for topic, frame, words in ((TOPICS["camera_info_topic"], "right_camera_optical_frame",
                                 "camera_info frame_id 'right_camera_optical_frame' differs from the image's "
                                 "'camera_optical_frame'"),
                                ("/ground_truth/depth", "depth_optical_frame",
                                 "/ground_truth/depth frame_id 'depth_optical_frame' differs from the image's "
                                 "'camera_optical_frame': the depth is not registered")):
        other = _rewrite(bag, tmp_path / frame, lambda tp, t, m: [(tp, t, _header(m, frame_id=frame) if tp == topic
                                                                   else m)])
        res = be.evaluate_bag(other, pipeline, **kw)
        (reason, count), = res.skipped.items()
        assert res.per_frame == [] and count == N and reason.startswith(words)
    # an empty frame_id is accepted, as the node accepts it (many drivers leave it empty)
    empty = _rewrite(bag, tmp_path / "empty", lambda tp, t, m: [(tp, t, _header(m, frame_id="") if tp in (
        "/ground_truth/depth", TOPICS["camera_info_topic"]) else m)])
    assert len(be.evaluate_bag(empty, pipeline, **kw).per_frame) == N


def test_frames_without_a_ground_truth_pixel_are_not_evaluated(bag, pipeline, tmp_path, capsys):
    """A 32FC1 depth in millimetres (every value beyond 80 m) and an empty cloud were 'evaluated'
    frames with NaN metrics, exit code 0."""
    from edepth_ros.commands import eval as cmd

    def mm(tp, t, m):
        if tp != "/ground_truth/depth":
            return [(tp, t, m)]
        d = bio.depth_to_metres(m) * 1000.0
        return [(tp, t, bio.image_msg(d.astype(np.float32), bio.header_ns(m.header), m.header.frame_id))]

    mm_bag = _rewrite(bag, tmp_path / "mm", mm)
    res = be.evaluate_bag(mm_bag, pipeline, depth_topic="/ground_truth/depth", progress=False, **TOPICS)
    (reason, count), = res.skipped.items()
    assert res.per_frame == [] and count == N
    assert reason.startswith("'/ground_truth/depth': no ground-truth pixel in 0.001-80 m") and "millimetres" in reason
    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    args = p.parse_args(["bag", str(mm_bag), "--depth-topic", "/ground_truth/depth", "--embodied-only", "--quiet",
                         "--no-plots", "--out", str(tmp_path / "o")])
    assert cmd.run(args) == 1
    assert "no frame could be scored (3 skipped" in capsys.readouterr().err

    def empty(tp, t, m):
        if tp != "/lidar/points":
            return [(tp, t, m)]
        return [(tp, t, bio.pointcloud_msg(np.zeros((0, 3), np.float32), bio.header_ns(m.header), m.header.frame_id))]

    res = be.evaluate_bag(_rewrite(bag, tmp_path / "empty_cloud", empty), pipeline, lidar_topic="/lidar/points",
                          progress=False, **TOPICS)
    (reason, count), = res.skipped.items()
    assert res.per_frame == [] and count == N and "no point of the cloud lands in the image" in reason


def test_bad_pointclouds_and_tf_of_another_type_are_named(bag, pipeline, tmp_path):
    """A PointCloud2 datatype 0 was a KeyError traceback, a cloud without z stopped the run; a /tf of
    TransformStamped was an AttributeError."""
    import dataclasses

    for name, fix, words in (
            ("dtype0", lambda m: dataclasses.replace(m, fields=[dataclasses.replace(f, datatype=0) for f in m.fields]),
             "/lidar/points: PointCloud2 field 'x' has datatype 0"),
            ("noz", lambda m: dataclasses.replace(m, fields=[f for f in m.fields if f.name != "z"]),
             "/lidar/points: PointCloud2 has no field(s) ['z']")):
        bad = _rewrite(bag, tmp_path / name, lambda tp, t, m: [(tp, t, fix(m) if tp == "/lidar/points" else m)])
        res = be.evaluate_bag(bad, pipeline, lidar_topic="/lidar/points", progress=False, **TOPICS)
        (reason, count), = res.skipped.items()
        assert res.per_frame == [] and count == N and reason.startswith(words)
    wrong_tf = _rewrite(bag, tmp_path / "tf_type", lambda tp, t, m: [(tp, t, m.transforms[0] if tp == "/tf" else m)])
    with pytest.raises(be.BagEvalError, match="topic /tf in .* holds geometry_msgs/msg/TransformStamped, not "
                                              "tf2_msgs/msg/TFMessage"):
        be.evaluate_bag(wrong_tf, pipeline, depth_topic="/ground_truth/depth", progress=False, **TOPICS)


def test_notes_give_the_nearest_ground_truth_and_a_ground_frame_tf_does_not_reach(bag, pipeline, tmp_path):
    late = _rewrite(bag, tmp_path / "late", lambda tp, t, m: [(tp, t, _header(
        m, stamp=bio.header_ns(m.header) + 37 * S // 100) if tp == "/ground_truth/depth" else m)])
    res = be.evaluate_bag(late, pipeline, depth_topic="/ground_truth/depth", progress=False, **TOPICS)
    assert res.skipped == {"no /ground_truth/depth message within 50 ms of the image": N}
    assert any("nearest /ground_truth/depth message" in n and "170-370 ms away" in n for n in res.notes)
    res = be.evaluate_bag(bag, pipeline, depth_topic="/ground_truth/depth", ground_frame="base_link",
                          progress=False, **TOPICS)
    assert len(res.per_frame) == N
    assert f"ground plane from the pipeline's fallback for {N} frames: no transform base_link -> " \
           "camera_optical_frame in /tf_static or /tf" in res.notes


# ---------------------------------------------------------------- training's BagDataset reads bags as the evaluation

DS = dict(image_topic=TOPICS["image_topic"], camera_info_topic=TOPICS["camera_info_topic"],
          labels_topic="/camera/semantic")


def _dataset(path, **kw):
    from edepth_ros.training.datasets import BagDataset

    return BagDataset(str(path), (64, 192), **{**DS, **kw})


def test_bag_dataset_pairs_by_header_stamp_with_the_camera_info_in_force(bag, tmp_path):
    """BagDataset paired image and ground truth and looked tf up by LOG time (the evaluation: header
    stamps), and used the first camera_info for every image."""
    import dataclasses

    ref = _dataset(bag, depth_topic="/ground_truth/depth")
    assert len(ref) == N and not ref.skipped
    # the depth logged 100 ms after its image (receive latency), same header stamps: its own frame's depth
    late = _rewrite(bag, tmp_path / "late",
                    lambda tp, t, m: [(tp, t + S // 10 if tp == "/ground_truth/depth" else t, m)])
    ds = _dataset(late, depth_topic="/ground_truth/depth")
    assert len(ds) == N
    for i in range(N):
        assert np.array_equal(ds.base(i).depth, ref.base(i).depth, equal_nan=True)
    # re-recorded a day later (log time = the recorder's clock, headers untouched): the poses of each frame
    relog = _rewrite(bag, tmp_path / "relog", lambda tp, t, m: [(tp, t + 86400 * S, m)])
    ds = _dataset(relog, depth_topic="/ground_truth/depth")
    assert [ds.base(i).plane.height for i in range(N)] == [ref.base(i).plane.height for i in range(N)]
    assert len({ref.base(i).plane.height for i in range(N)}) == N
    # intrinsics that change after the first frame (re-calibration, zoom): each image gets its own
    seen = []

    def zoom(tp, t, m):
        if tp == TOPICS["camera_info_topic"]:
            seen.append(t)
            if len(seen) > 1:
                k, p = np.array(m.k, np.float64), np.array(m.p, np.float64)
                k[[0, 4]] *= 1.5
                p[[0, 5]] *= 1.5
                m = dataclasses.replace(m, k=k, p=p)
        return [(tp, t, m)]

    ds = _dataset(_rewrite(bag, tmp_path / "zoom", zoom), depth_topic="/ground_truth/depth")
    fx = ref.base(0).camera.fx
    assert [ds.base(i).camera.fx for i in range(N)] == pytest.approx([fx, 1.5 * fx, 1.5 * fx])
    # header stamps all 0: paired by log time, as the evaluation, with a note
    zero = _rewrite(bag, tmp_path / "zero", lambda tp, t, m: [(tp, t, _header(m, stamp=0) if tp in (
        TOPICS["image_topic"], "/ground_truth/depth", "/camera/semantic") else m)])
    ds = _dataset(zero, depth_topic="/ground_truth/depth")
    assert len(ds) == N and "header stamps unusable" in ds.notes[0]
    for i in range(N):
        assert np.array_equal(ds.base(i).depth, ref.base(i).depth, equal_nan=True)


def test_bag_dataset_refuses_or_skips_what_the_evaluation_skips(bag, tmp_path):
    from edepth_ros.training.datasets import DatasetError

    first = _image_stamps(bag)[0]
    # a camera_info topic recorded without messages (was an IndexError)
    noinfo = _rewrite(bag, tmp_path / "noinfo",
                      lambda tp, t, m: [] if tp == TOPICS["camera_info_topic"] else [(tp, t, m)],
                      declare={TOPICS["camera_info_topic"]: bio.CAMERA_INFO})
    with pytest.raises(DatasetError, match="data.camera_info_topic: '/camera/camera_info' has no messages"):
        _dataset(noinfo, depth_topic="/ground_truth/depth")
    # the LiDAR extrinsic only on a /tf that stopped 60 s before: skipped (was used, silently)
    T_cl = mb.synthetic_lidar_extrinsics()
    ext = [("/tf", first - 60 * S, bio.tf_message([bio.transform_stamped(T_cl, first - 60 * S, bio.CAMERA_FRAME,
                                                                           bio.LIDAR_FRAME)]))]
    stale = _rewrite(bag, tmp_path / "stale", lambda tp, t, m: ext if tp == "/tf_static" else [(tp, t, m)])
    with pytest.raises(DatasetError, match=r"no image of .* can be used: 3 x LiDAR -> camera: /tf "
                                           r"camera_optical_frame -> lidar_link has no transform within "
                                           r"data.tf_max_age 1 s .*60.00 s older"):
        _dataset(stale, lidar_topic="/lidar/points")
    assert len(_dataset(stale, lidar_topic="/lidar/points", tf_max_age=120.0)) == N
    # the ground pose only on a /tf 30 s old, no static mounting: skipped, named
    with bio.BagReader(bag) as r:
        pose = next(r.deserialize(raw, mt) for _, mt, _, raw in r.messages(["/tf"]))
    pose = bio.tf_message([_header(pose.transforms[0], first - 30 * S)])
    old_pose = _rewrite(bag, tmp_path / "old_pose", lambda tp, t, m: (
        ([("/tf", first - 30 * S, pose)] if t == first else []) if tp == "/tf" else [(tp, t, m)]))
    with pytest.raises(DatasetError, match=r"3 x ground pose: /tf base_footprint -> camera_optical_frame has no "
                                           r"transform within data.tf_max_age 1 s .*set data.plane_height"):
        _dataset(old_pose, depth_topic="/ground_truth/depth")
    assert len(_dataset(old_pose, depth_topic="/ground_truth/depth", plane_height=1.65)) == N

    # a 32FC1 depth in millimetres: no pixel the loss can use (was accepted: zero supervision)
    def mm(tp, t, m):
        if tp != "/ground_truth/depth":
            return [(tp, t, m)]
        d = bio.depth_to_metres(m) * 1000.0
        return [(tp, t, bio.image_msg(d.astype(np.float32), bio.header_ns(m.header), m.header.frame_id))]

    with pytest.raises(DatasetError, match=r"3 x '/ground_truth/depth': no ground-truth pixel in 0.1-80 m; every "
                                           r"value is beyond 80 m: is this 32FC1 depth in millimetres\?"):
        _dataset(_rewrite(bag, tmp_path / "mm", mm), depth_topic="/ground_truth/depth")
    # camera_info of another camera; a cloud whose datatype is 0 (was a KeyError)
    other = _rewrite(bag, tmp_path / "other", lambda tp, t, m: [(tp, t, _header(m, frame_id="right_optical_frame") if
                                                                tp == TOPICS["camera_info_topic"] else m)])
    with pytest.raises(DatasetError, match="data.camera_info_topic: '/camera/camera_info' has frame_id "
                                           "'right_optical_frame' but image topic '/camera/image_raw' has "
                                           "'camera_optical_frame'"):
        _dataset(other, depth_topic="/ground_truth/depth")
    import dataclasses

    dtype0 = _rewrite(bag, tmp_path / "dtype0", lambda tp, t, m: [(tp, t, dataclasses.replace(
        m, fields=[dataclasses.replace(f, datatype=0) for f in m.fields]) if tp == "/lidar/points" else m)])
    with pytest.raises(DatasetError, match=r"data.lidar_topic: '/lidar/points' \(t = .*\): PointCloud2 field 'x' has "
                                           "datatype 0"):
        _dataset(dtype0, lidar_topic="/lidar/points")


@pytest.mark.parametrize("error", ["ConversionError", "GroundPoseError", "CameraModelError"])
def test_train_prints_bad_message_and_pose_errors_as_one_line(error, monkeypatch, capsys):
    """They name the message field or the pose and say what to do: `edepth train` printed a traceback."""
    from edepth_ros.camera import CameraModelError
    from edepth_ros.commands import train as cmd
    from edepth_ros.ground import GroundPoseError
    from edepth_ros.ros.convert import ConversionError
    from edepth_ros.training import TrainConfig

    cls = {"ConversionError": ConversionError, "GroundPoseError": GroundPoseError,
           "CameraModelError": CameraModelError}[error]

    def load(path):
        raise cls("Image.encoding 'bayer_rggb8' is not a colour encoding this node takes")

    monkeypatch.setattr(TrainConfig, "load", staticmethod(load))
    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    assert cmd.run(p.parse_args(["--config", "x.yaml"])) == 2
    err = capsys.readouterr().err
    assert err == "edepth train: Image.encoding 'bayer_rggb8' is not a colour encoding this node takes\n"


def test_unusable_label_images_fall_back_to_the_segmenter_as_the_node(bag, pipeline, tmp_path):
    # the node uses its built-in segmenter for a label image it cannot use; so does the evaluation,
    # counted in the notes (it stopped the whole run with a ConversionError)
    import dataclasses

    def relabel(tp, t, m):
        if tp != "/camera/semantic":
            return [(tp, t, m)]
        return [(tp, t, dataclasses.replace(m, encoding="rgb8", step=m.step * 3,
                                            data=np.repeat(np.asarray(m.data, np.uint8), 3)))]

    kw = dict(depth_topic="/ground_truth/depth", labels_topic="/camera/semantic", progress=False, **TOPICS)
    res = be.evaluate_bag(_rewrite(bag, tmp_path / "rgb_labels", relabel), pipeline, **kw)
    assert len(res.per_frame) == N and not res.skipped
    note, = [n for n in res.notes if n.startswith("built-in segmenter")]
    assert note.startswith(f"built-in segmenter for {N} frames: /camera/semantic: ") and "rgb8" in note
    # with the label images as recorded, nothing falls back
    assert not [n for n in be.evaluate_bag(bag, pipeline, **kw).notes if n.startswith("built-in segmenter")]


def test_frames_given_no_depth_are_said_not_silently_left_out_of_the_mean(bag, pipeline, tmp_path):
    """A frame the pipeline gives no depth for (a lens cap) has NaN metrics: it dropped out of the
    mean with nothing in the row, the summary or the notes to say so."""

    def capped(at):
        def cap(tp, t, m):
            if tp != TOPICS["image_topic"] or t not in at:
                return [(tp, t, m)]
            rgb = bio.image_to_rgb(m)
            return [(tp, t, bio.image_msg(np.zeros_like(rgb), bio.header_ns(m.header), m.header.frame_id))]
        return cap

    stamps = _image_stamps(bag)
    res = be.evaluate_bag(_rewrite(bag, tmp_path / "cap", capped(stamps[1:2])), pipeline,
                          depth_topic="/ground_truth/depth", progress=False, out_dir=tmp_path / "out", plots=False,
                          **TOPICS)
    assert len(res.per_frame) == N
    notes = [r["note"] for r in res.per_frame]
    assert [n != "" for n in notes] == [False, True, False]
    assert "unusable" in notes[1] or "no depth" in notes[1]
    finite = [r["abs_rel"] for r in res.per_frame if r["note"] == ""]
    assert res.mean["abs_rel"] == pytest.approx(np.mean(finite))
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "frames with no depth at any ground-truth pixel (NaN metrics, left out of the means): 1" in summary
    assert any("no depth at any ground-truth pixel" in n and "1 frame" in n for n in res.notes)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["frames_without_depth"] == 1
    # every frame without depth: exit 1, not 0 with NaN means
    from edepth_ros.commands import eval as cmd

    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    args = p.parse_args(["bag", str(_rewrite(bag, tmp_path / "caps", capped(stamps))),
                         "--depth-topic", "/ground_truth/depth", "--embodied-only", "--quiet", "--no-plots", "--out", str(tmp_path / "o")])
    assert cmd.run(args) == 1


def test_ground_truth_logged_seconds_after_its_image_is_still_paired(bag, pipeline, tmp_path):
    """A ground truth recorded 3 s after its image (a slow LiDAR pipeline; same header stamp) was
    never paired: the image had stopped waiting after 2 s of the bag."""
    def late(tp, t, m):
        return [(tp, t + (3_000_000_000 if tp == "/ground_truth/depth" else 0), m)]

    lagged = _rewrite(bag, tmp_path / "late", late)
    res = be.evaluate_bag(lagged, pipeline, depth_topic="/ground_truth/depth", progress=False, **TOPICS)
    ref = be.evaluate_bag(bag, pipeline, depth_topic="/ground_truth/depth", progress=False, **TOPICS)
    assert not res.skipped and len(res.per_frame) == N
    assert res.mean["abs_rel"] == pytest.approx(ref.mean["abs_rel"])
    assert any("logged up to 3.0 s apart" in n for n in res.notes)
    assert not any("logged up to" in n for n in ref.notes)


def test_tf_stamped_0_or_paired_by_log_time_gives_each_frame_the_pose_logged_then(bag, pipeline, tmp_path):
    """/tf stamped 0 (a publisher that leaves it unset), or a bag paired by log time (header stamps all 0):
    every frame got the bag's LAST /tf pose, in the evaluation and in training's BagDataset alike. Now a
    transform stamped 0 is placed at its log time, and log-time pairing looks tf up by log time."""
    import dataclasses

    def moved(tp, t, m, zero_tf=False, zero_all=False):
        if tp == "/tf":  # the camera 1.5 m higher from the second frame on (a pose that changes mid-bag)
            first = t == _image_stamps(bag)[0]
            m = bio.tf_message([dataclasses.replace(
                _header(ts, stamp=0) if zero_tf or zero_all else ts,
                transform=ts.transform if first else dataclasses.replace(
                    ts.transform, translation=dataclasses.replace(ts.transform.translation,
                                                                  z=ts.transform.translation.z + 1.5)))
                for ts in m.transforms])
        elif zero_all and tp != "/tf_static":
            m = _header(m, stamp=0)
        return [(tp, t, m)]

    ref = _rewrite(bag, tmp_path / "moved", moved)
    zero_tf = _rewrite(bag, tmp_path / "zero_tf", lambda tp, t, m: moved(tp, t, m, zero_tf=True))
    zero_all = _rewrite(bag, tmp_path / "zero_all", lambda tp, t, m: moved(tp, t, m, zero_all=True))
    kw = dict(depth_topic="/ground_truth/depth", labels_topic="/camera/semantic", progress=False, **TOPICS)
    expect = [r["abs_rel"] for r in be.evaluate_bag(ref, pipeline, **kw).per_frame]
    assert len(expect) == N and expect[0] != pytest.approx(expect[1], rel=0.05)  # the two poses score apart
    for path in (zero_tf, zero_all):
        res = be.evaluate_bag(path, pipeline, **kw)
        assert [r["abs_rel"] for r in res.per_frame] == pytest.approx(expect), path.name
        assert res.notes[-1] == f"ground plane: {{'tf': {N}}}"
    assert any("paired by bag log time" in n for n in be.evaluate_bag(zero_all, pipeline, **kw).notes)
    heights = [_dataset(ref, depth_topic="/ground_truth/depth").base(i).plane.height for i in range(N)]
    assert heights[1] == pytest.approx(heights[0] + 1.5, abs=0.05)
    for path in (zero_tf, zero_all):
        ds = _dataset(path, depth_topic="/ground_truth/depth")
        assert [ds.base(i).plane.height for i in range(N)] == pytest.approx(heights), path.name


def test_one_topic_for_the_image_and_the_ground_truth_is_refused_naming_both_flags(bag, pipeline, capsys, tmp_path):
    """--image-topic equal to --lidar-topic / --depth-topic / --labels-topic passed the start-up type check
    (a dict keyed by topic kept one role's check), then every frame was skipped for 'no ground truth near'."""
    for kw, flags, topic in ((dict(image_topic="/lidar/points", lidar_topic="/lidar/points"),
                              "--image-topic and --lidar-topic", "/lidar/points"),
                             (dict(image_topic="/ground_truth/depth", depth_topic="/ground_truth/depth"),
                              "--image-topic and --depth-topic", "/ground_truth/depth"),
                             (dict(image_topic="/camera/semantic", depth_topic="/ground_truth/depth",
                                   labels_topic="/camera/semantic"), "--image-topic and --labels-topic",
                              "/camera/semantic")):
        with pytest.raises(be.BagEvalError, match=f"{flags} are both {topic}: give each its own topic"):
            be.evaluate_bag(bag, pipeline, camera_info_topic=TOPICS["camera_info_topic"], progress=False, **kw)
    from edepth_ros.commands import eval as cmd

    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    args = p.parse_args(["bag", str(bag), "--image-topic", "/lidar/points", "--lidar-topic", "/lidar/points",
                         "--embodied-only", "--quiet", "--out", str(tmp_path / "o")])
    assert cmd.run(args) == 2
    assert "--image-topic and --lidar-topic are both /lidar/points" in capsys.readouterr().err


def test_extrinsics_that_are_not_a_rigid_transform_are_refused(bag, capsys, tmp_path):
    """16 numbers with a scaled rotation, or a last row other than 0 0 0 1, were accepted (the last row
    ignored, the scaled rotation moving every LiDAR point): wrong ground truth, exit 0."""
    from edepth_ros.commands import eval as cmd

    good = "0 -1 0 0  0 0 -1 -0.3  1 0 0 -0.2  0 0 0 1"
    assert np.allclose(cmd.parse_extrinsics(good)[:3, :3] @ cmd.parse_extrinsics(good)[:3, :3].T, np.eye(3))
    for text, words in (("0 -2 0 0  0 0 -2 -0.3  2 0 0 -0.2  0 0 0 1", "is not a rotation matrix"),
                        ("0 -1 0 0  0 0 -1 -0.3  1 0 0 -0.2  0 0 0 5",
                         "the last row is [0.0, 0.0, 0.0, 5.0], not 0 0 0 1"),
                        ("0 -1 0 0  0 0 -1 -0.3  1 0 0 -0.2  0.3 0.1 0 1", "not 0 0 0 1"),
                        ("0 1 0 0  0 0 -1 -0.3  1 0 0 -0.2  0 0 0 1", "det R = +1"),  # a reflection
                        ("0 0 0 nan 0 0 1", "must be finite"), ("0 0 0 0 0 0 0", "zero quaternion")):
        with pytest.raises(ValueError, match="--extrinsics") as exc:
            cmd.parse_extrinsics(text)
        assert words in str(exc.value), text
    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    args = p.parse_args(["bag", str(bag), "--lidar-topic", "/lidar/points", "--embodied-only", "--quiet",
                         "--out", str(tmp_path / "o"), "--extrinsics", "0 -2 0 0  0 0 -2 -0.3  2 0 0 -0.2  0 0 0 1"])
    assert cmd.run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("edepth eval bag: --extrinsics (rotation part") and "not a rotation matrix" in err
