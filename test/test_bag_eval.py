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
