"""KITTI evaluation on the three real annotated frames (shared/kitti/annotated_depth) via a generated split."""

import argparse
import csv
import json

import numpy as np
import pytest

from edepth_ros import metrics as M
from edepth_ros.evaluation import kitti_eval as ke
from test_kitti import _raw_matrices  # the independent KITTI calibration reader of test_kitti.py

FRAMES = ("0000000005", "0000000050", "0000000100")


@pytest.fixture()
def split(tmp_path, kitti_dir):
    lines = [f"rgb/{f}.png depth/{f}.png 721.5377" for f in FRAMES]
    lines.insert(1, "rgb/0000000777.png depth/0000000777.png 721.5377")  # not on disk
    lines.append("this line is nonsense")
    path = tmp_path / "split.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cli(argv):
    from edepth_ros.commands import eval as cmd

    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    return cmd.run(p.parse_args(argv))


def test_parse_both_split_formats(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(
        "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png "
        "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png 721.5377\n"
        "2011_09_26/2011_09_26_drive_0002_sync 69 l\n"
        "2011_09_26/2011_09_26_drive_0002_sync 70 r\n"
        "# a comment\n\n"
        "img.png gt.png not-a-number\n")
    gt69 = tmp_path / "gt/2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png"
    gt69.parent.mkdir(parents=True)
    gt69.write_bytes(b"")  # a --gt-root that holds none of the split's ground truth is refused
    entries, bad = ke.parse_split(path, tmp_path, gt_root=tmp_path / "gt")
    assert [e.line_no for e in entries] == [1, 2, 3] and [b["line"] for b in bad] == [6]
    a, b, c = entries
    assert a.image == tmp_path / "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png"
    assert a.gt == tmp_path / "gt/2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png"
    assert a.focal == pytest.approx(721.5377) and a.calib_dir == tmp_path / "2011_09_26"
    assert b.image == a.image and b.gt == a.gt  # the Eigen line names the same frame
    assert b.velodyne == tmp_path / "2011_09_26/2011_09_26_drive_0002_sync/velodyne_points/data/0000000069.bin"
    assert c.cam == 3 and c.image.parts[-3] == "image_03"
    assert (b.name, c.name) == ("2011_09_26_drive_0002_sync/image_02/0000000069",
                                "2011_09_26_drive_0002_sync/image_03/0000000070")
    with pytest.raises(ke.KittiEvalError, match="split file .* not found"):
        ke.parse_split(tmp_path / "absent.txt", tmp_path)
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")  # an image given as the split
    with pytest.raises(ke.KittiEvalError, match="image.png is not a text file"):
        ke.parse_split(tmp_path / "image.png", tmp_path)


def test_summary_json_is_strict_json(tmp_path):
    """A run with no valid pixel has NaN metrics: they are written as null, not as bare NaN."""
    from edepth_ros.evaluation import report

    report.write_json(tmp_path / "s.json", {"mean": {"abs_rel": float("nan"), "d1": np.float32(np.inf)},
                                            "rows": [1.0, float("-inf")], "n": np.int64(3)})
    text = (tmp_path / "s.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert data == {"mean": {"abs_rel": None, "d1": None}, "rows": [1.0, None], "n": 3}


def test_real_frames_embodied_only_with_report(tmp_path, split, kitti_dir, capsys):
    out = tmp_path / "out"
    code = _cli(["kitti", "--root", str(kitti_dir / "annotated_depth"), "--split", str(split),
                 "--calib", str(kitti_dir / "raw_calib" / "2011_09_26"), "--embodied-only", "--out", str(out),
                 "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "3 frames evaluated, 2 skipped" in printed
    rows = list(csv.DictReader((out / "per_frame.csv").open()))
    assert [r["name"] for r in rows] == [f"rgb/{f}.png" for f in FRAMES]
    assert all(r["gt_source"] == "annotated" for r in rows)
    skipped = list(csv.DictReader((out / "skipped.csv").open()))
    assert {s["line"] for s in skipped} == {"2", "5"}
    assert any("0000000777.png is missing" in s["reason"] for s in skipped)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 3 and summary["ground"] == "nominal"
    md = (out / "summary.md").read_text()
    assert "BTS (published) | 0.061 | 0.261 | 2.834" in md and "VLE paper" in md
    assert "camera 1.65 m above a level road" in md
    for png in ("error_by_distance.png", "pred_vs_true.png", "examples.png"):
        assert (out / png).stat().st_size > 10_000

    # the CSV's numbers are the metrics of the embodied depth recomputed here, independently of the report
    from edepth_ros.backends import EmbodiedOnlyBackend
    from edepth_ros.pipeline import DepthPipeline

    entries, _ = ke.parse_split(split, kitti_dir / "annotated_depth", calib_dir=kitti_dir / "raw_calib" / "2011_09_26")
    frame, gt, _ = ke.frame_for(entries[0], "nominal", 1.65)
    depth = DepthPipeline(EmbodiedOnlyBackend()).process(frame).depth
    m = M.depth_metrics(depth, gt, crop="garg")
    assert float(rows[0]["abs_rel"]) == pytest.approx(m["abs_rel"], rel=1e-4)
    assert int(rows[0]["pixels"]) == int(M.valid_mask(depth, gt, crop="garg").sum()) > 10_000
    # real depth on real frames: the ground truth is what the PNG says
    raw_gt = ke.read_depth_png(kitti_dir / "annotated_depth" / "depth" / f"{FRAMES[0]}.png")
    assert np.nanmax(raw_gt) < 90 and 0.1 < np.isfinite(raw_gt).mean() < 0.4


def test_a_perfect_prediction_scores_perfectly(tmp_path, kitti_dir):
    """The protocol itself (crop, loading, averaging): an oracle backend that returns the ground truth."""

    class Oracle:
        backend = type("B", (), {"name": "oracle"})()

        def __init__(self):
            self.gt = None

        def process(self, frame):
            from types import SimpleNamespace

            d = np.where(np.isfinite(self.gt), self.gt, 10.0).astype(np.float32)
            return SimpleNamespace(depth=d, embodied=SimpleNamespace(depth=d), timings={"total_ms": 0.0})

    split = tmp_path / "s.txt"
    split.write_text(f"rgb/{FRAMES[1]}.png depth/{FRAMES[1]}.png 721.5377\n")
    entries, _ = ke.parse_split(split, kitti_dir / "annotated_depth", calib_dir=kitti_dir / "raw_calib" / "2011_09_26")
    oracle = Oracle()
    _, oracle.gt, _ = ke.frame_for(entries[0], "nominal", 1.65)
    res = ke.evaluate(entries, oracle, progress=False)
    assert res.mean["abs_rel"] == 0.0 and res.mean["d1"] == 1.0 and res.mean["rmse"] == 0.0


def test_frames_with_nothing_to_score_are_skipped_or_said(tmp_path, kitti_dir):
    """A ground truth with no pixel in range was 'evaluated' with NaN metrics (exit 0), and a frame the
    pipeline gave no depth for dropped silently out of the mean."""
    import shutil

    import cv2
    from edepth_ros.backends import EmbodiedOnlyBackend
    from edepth_ros.pipeline import DepthPipeline

    root = tmp_path / "root"
    shutil.copytree(kitti_dir / "annotated_depth", root)
    gt = cv2.imread(str(root / "depth" / f"{FRAMES[0]}.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(root / "depth" / "empty.png"), np.zeros_like(gt))  # no ground-truth pixel
    shutil.copy(root / "rgb" / f"{FRAMES[0]}.png", root / "rgb" / "empty.png")
    rgb = cv2.imread(str(root / "rgb" / f"{FRAMES[1]}.png"))
    cv2.imwrite(str(root / "rgb" / "black.png"), np.zeros_like(rgb))  # a lens cap: no depth at all
    shutil.copy(root / "depth" / f"{FRAMES[1]}.png", root / "depth" / "black.png")
    split = tmp_path / "s.txt"
    split.write_text("".join(f"rgb/{n}.png depth/{n}.png 721.5377\n" for n in (FRAMES[0], "empty", "black")))
    entries, _ = ke.parse_split(split, root, calib_dir=kitti_dir / "raw_calib" / "2011_09_26")
    res = ke.evaluate(entries, DepthPipeline(EmbodiedOnlyBackend()), out_dir=tmp_path / "out", progress=False,
                      plots=False)
    (skip,) = res.skipped
    assert skip["name"].endswith("empty.png")
    assert "no ground-truth pixel in 0.001-80 m inside the garg crop" in skip["reason"]
    assert [r["note"] != "" for r in res.per_frame] == [False, True]
    assert "unusable" in res.per_frame[1]["note"] or "no depth" in res.per_frame[1]["note"]
    assert res.mean["abs_rel"] == pytest.approx(res.per_frame[0]["abs_rel"])
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "frames with no depth at any ground-truth pixel (NaN metrics, left out of the means): 1" in summary
    # only frames with nothing to score: exit 1, not 0
    split.write_text("rgb/empty.png depth/empty.png 721.5377\n")
    rc = _cli(["kitti", "--embodied-only", "--root", str(root), "--split", str(split), "--calib",
               str(kitti_dir / "raw_calib" / "2011_09_26"), "--out", str(tmp_path / "out2"), "--no-plots", "--quiet"])
    assert rc == 1
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["frames_without_depth"] == 1
    # only frames given no depth: every mean is NaN, exit 1 too
    split.write_text("rgb/black.png depth/black.png 721.5377\n")
    rc = _cli(["kitti", "--embodied-only", "--root", str(root), "--split", str(split), "--calib",
               str(kitti_dir / "raw_calib" / "2011_09_26"), "--out", str(tmp_path / "out3"), "--no-plots", "--quiet"])
    assert rc == 1


def test_bad_split_sides_and_frame_counts_are_refused(tmp_path, capsys):
    """An unknown side letter ('R', 'x') meant the left camera; --max-frames 0 meant all, -1 all but one."""
    path = tmp_path / "s.txt"
    path.write_text("2011_09_26/2011_09_26_drive_0002_sync 69 R\n2011_09_26/2011_09_26_drive_0002_sync 70 r\n")
    entries, bad = ke.parse_split(path, tmp_path)
    assert [e.cam for e in entries] == [3] and bad[0]["line"] == 1 and "side 'R'" in bad[0]["reason"]
    for value in ("0", "-1"):
        with pytest.raises(SystemExit):
            _cli(["kitti", "--embodied-only", "--root", str(tmp_path), "--split", str(path), "--max-frames", value])
        assert "argument --max-frames" in capsys.readouterr().err


def test_missing_calibration_is_a_skip_with_the_reason(tmp_path, kitti_dir, split):
    entries, _ = ke.parse_split(split, kitti_dir / "annotated_depth")  # no --calib, no <date>/ folder
    from edepth_ros.backends import EmbodiedOnlyBackend
    from edepth_ros.pipeline import DepthPipeline

    res = ke.evaluate(entries, DepthPipeline(EmbodiedOnlyBackend()), progress=False)
    assert res.per_frame == [] and len(res.skipped) == 4
    assert all("calib" in s["reason"] or "missing" in s["reason"] for s in res.skipped)


@pytest.mark.slow
def test_shipped_demo_model_through_the_cli(tmp_path, split, kitti_dir):
    """The demo model (an exported .onnx, else the models/demo checkpoint) on two split lines."""
    from edepth_ros.demo import find_demo_model

    model = find_demo_model()
    if model is None:
        pytest.skip("no demo model under models/ yet (made by `edepth train --config models/demo.yaml`)")
    flag = "--onnx" if model.suffix == ".onnx" else "--checkpoint"
    out = tmp_path / "model"
    code = _cli(["kitti", "--root", str(kitti_dir / "annotated_depth"), "--split", str(split),
                 "--calib", str(kitti_dir / "raw_calib" / "2011_09_26"), flag, str(model),
                 "--out", str(out), "--quiet", "--no-plots", "--max-frames", "2"])
    assert code == 0
    rows = list(csv.DictReader((out / "per_frame.csv").open()))
    assert len(rows) == 1  # the first two split lines: one real frame, one missing
    assert float(rows[0]["coverage"]) == pytest.approx(1.0)  # the network predicts every pixel
    assert 0.0 < float(rows[0]["abs_rel"]) < 5.0 and float(rows[0]["infer_ms"]) > 0
    assert str(model) in (out / "summary.md").read_text()


def _constant_onnx(path, height=96, width=320, depth_m=10.0):
    """A real ONNX graph with the network's tensor contract that predicts ``depth_m`` everywhere."""
    from contract_graph import save_contract_graph
    from onnx import TensorProto, helper

    from edepth_ros.model_io import ModelSpec, write_sidecar

    nodes = [
        helper.make_node("Cast", ["rgb"], ["rgb_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["rgb_f"], ["rgb_mean"], keepdims=0),
        helper.make_node("Mul", ["rgb_mean", "zero"], ["rgb_zero"]),
        helper.make_node("Slice", ["embodied", "s0", "s1", "ax"], ["emb0"]),
        helper.make_node("Slice", ["embodied", "s1", "s2", "ax"], ["confidence"]),
        helper.make_node("Mul", ["emb0", "zero"], ["emb_zero"]),
        helper.make_node("Add", ["emb_zero", "rgb_zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "value"], ["depth"]),
    ]
    inits = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("value", TensorProto.FLOAT, [], [depth_m]),
             helper.make_tensor("s0", TensorProto.INT64, [1], [0]), helper.make_tensor("s1", TensorProto.INT64, [1], [1]),
             helper.make_tensor("s2", TensorProto.INT64, [1], [2]), helper.make_tensor("ax", TensorProto.INT64, [1], [1])]
    save_contract_graph(path, nodes, inits, height, width, name="constant_depth", check=True)
    write_sidecar(path, ModelSpec.for_size(height, width, 80.0))
    return path


def test_onnx_runtime_path_scores_what_the_graph_predicts(tmp_path, split, kitti_dir):
    """A real ONNX Runtime session (a constant-10 m graph) through the evaluation: the metrics are those of 10 m."""
    model = _constant_onnx(tmp_path / "const10.onnx")
    out = tmp_path / "o"
    code = _cli(["kitti", "--root", str(kitti_dir / "annotated_depth"), "--split", str(split),
                 "--calib", str(kitti_dir / "raw_calib" / "2011_09_26"), "--onnx", str(model), "--threads", "1",
                 "--out", str(out), "--quiet", "--no-plots"])
    assert code == 0
    rows = list(csv.DictReader((out / "per_frame.csv").open()))
    assert len(rows) == 3
    for r, f in zip(rows, FRAMES):
        gt = ke.read_depth_png(kitti_dir / "annotated_depth" / "depth" / f"{f}.png")
        expect = M.depth_metrics(np.full_like(gt, 10.0), gt, crop="garg")
        assert float(r["abs_rel"]) == pytest.approx(expect["abs_rel"], rel=1e-4)
        assert float(r["rmse"]) == pytest.approx(expect["rmse"], rel=1e-4)
        assert float(r["embodied_abs_rel"]) != pytest.approx(float(r["abs_rel"]))  # the embodied depth differs


DRIVE = "2011_09_26_drive_0002_sync"


def _eigen_tree(tmp_path, kitti_dir, frames=(5, 50)):
    """A KITTI raw layout: real images, real scans (the object benchmark's), the real 2011_09_26 calibration."""
    import shutil

    raw = tmp_path / "raw"
    drv = raw / "2011_09_26" / DRIVE
    for sub in ("image_02/data", "velodyne_points/data"):
        (drv / sub).mkdir(parents=True)
    for f in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt"):
        shutil.copy(kitti_dir / "raw_calib" / "2011_09_26" / f, raw / "2011_09_26" / f)
    for i in frames:
        shutil.copy(kitti_dir / "annotated_depth" / "rgb" / f"{i:010d}.png", drv / "image_02/data" / f"{i:010d}.png")
        shutil.copy(kitti_dir / "object/velodyne/000001.bin", drv / "velodyne_points/data" / f"{i:010d}.bin")
    split = tmp_path / "eigen.txt"
    split.write_text("".join(f"2011_09_26/{DRIVE} {i} l\n" for i in frames))
    return raw, split


def _annotate(gt_root, kitti_dir, i, cam=2, src=None):
    import shutil

    g = gt_root / DRIVE / "proj_depth" / "groundtruth" / f"image_0{cam}"
    g.mkdir(parents=True, exist_ok=True)
    shutil.copy(kitti_dir / "annotated_depth" / "depth" / f"{src or i:010d}.png", g / f"{i:010d}.png")


def test_gt_root_is_checked_and_the_ground_truth_source_is_reported(tmp_path, kitti_dir, capsys, caplog):
    """A mistyped --gt-root, or one of another layout, scored every Eigen line against raw LiDAR (exit 0);
    a split of both kinds averaged them into one mean; nothing in the report said which ground truth was used."""
    raw, split = _eigen_tree(tmp_path, kitti_dir)
    base = ["kitti", "--root", str(raw), "--split", str(split), "--embodied-only", "--no-plots", "--quiet"]
    # a typo: refused, naming the flag and the folder
    assert _cli(base + ["--gt-root", str(tmp_path / "gt_TYPO"), "--out", str(tmp_path / "o1")]) == 2
    assert f"--gt-root {tmp_path / 'gt_TYPO'} is not a folder" in capsys.readouterr().err
    # a folder of another layout (one level too high): refused, naming the layouts looked for
    _annotate(tmp_path / "kitti_depth" / "data_depth_annotated" / "train", kitti_dir, 5)
    assert _cli(base + ["--gt-root", str(tmp_path / "kitti_depth"), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "holds none of the split's 2 ground-truth files" in err and "<gt-root>/train/" in err
    # KITTI's own data_depth_annotated layout (train/<drive>, val/<drive>): found
    ann = tmp_path / "data_depth_annotated"
    _annotate(ann / "train", kitti_dir, 5)
    _annotate(ann / "val", kitti_dir, 50)
    assert _cli(base + ["--gt-root", str(ann), "--out", str(tmp_path / "o3")]) == 0
    rows = list(csv.DictReader((tmp_path / "o3" / "per_frame.csv").open()))
    assert [r["gt_source"] for r in rows] == ["annotated", "annotated"]
    summary = json.loads((tmp_path / "o3" / "summary.json").read_text())
    assert summary["gt_sources"] == {"annotated": 2, "velodyne": 0} and summary["gt_mixed"] is False
    assert "mixed ground truth" not in capsys.readouterr().out
    # annotated depth for one frame only: both sources counted, and the mix warned about everywhere
    part = tmp_path / "gt_part"
    _annotate(part, kitti_dir, 5)
    assert _cli(base + ["--gt-root", str(part), "--out", str(tmp_path / "o4")]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader((tmp_path / "o4" / "per_frame.csv").open()))
    assert [r["gt_source"] for r in rows] == ["annotated", "velodyne"]
    summary = json.loads((tmp_path / "o4" / "summary.json").read_text())
    assert summary["gt_sources"] == {"annotated": 1, "velodyne": 1} and summary["gt_mixed"] is True
    md = (tmp_path / "o4" / "summary.md").read_text()
    assert "1 frames KITTI annotated depth" in md and "1 frames raw LiDAR" in md and "mixed ground truth" in md
    assert "mixed ground truth" in captured.out  # stdout (the printed summary) and the log
    assert any("mixed ground truth: 1 frames annotated, 1 frames velodyne" in r.getMessage() for r in caplog.records)


def test_a_lidar_frame_with_nothing_to_score_names_the_scan(tmp_path, kitti_dir):
    """The skip reason named the annotated PNG that does not exist, not the .bin the ground truth came from."""
    from edepth_ros.backends import EmbodiedOnlyBackend
    from edepth_ros.pipeline import DepthPipeline

    raw, split = _eigen_tree(tmp_path, kitti_dir, frames=(5,))
    scan = raw / "2011_09_26" / DRIVE / "velodyne_points" / "data" / "0000000005.bin"
    np.array([[-5.0, 0.0, 0.0, 0.0]] * 10, np.float32).tofile(scan)  # every return behind the car
    entries, _ = ke.parse_split(split, raw)
    res = ke.evaluate(entries, DepthPipeline(EmbodiedOnlyBackend()), progress=False, plots=False)
    (skip,) = res.skipped
    assert skip["reason"].startswith(f"LiDAR scan {scan}: no ground-truth pixel")
    assert "proj_depth" not in skip["reason"]


def _peer_eigen_gt(velo, P, R0, Tr, width, height):
    """The peers' Eigen raw ground truth, from its description, point by point: depth = LiDAR x at pixel
    (round(u) - 1, round(v) - 1) of P @ R0 @ Tr @ X, for returns with x >= 0; the nearest return per pixel."""
    best = {}
    M4 = P @ np.vstack([np.hstack([R0, np.zeros((3, 1))]), [0, 0, 0, 1]]) @ np.vstack([Tr, [0, 0, 0, 1]])
    for x, y, z in np.asarray(velo[:, :3], np.float64):
        if not x >= 0:
            continue
        q = M4 @ np.array([x, y, z, 1.0])
        u, v = int(np.round(q[0] / q[2])) - 1, int(np.round(q[1] / q[2])) - 1
        if 0 <= u < width and 0 <= v < height:
            best[(v, u)] = min(best.get((v, u), np.inf), x)
    return {k: d for k, d in best.items() if d > 0}  # depth 0 is no ground truth


def test_raw_lidar_ground_truth_is_the_peers_eigen_protocol_on_real_scans(tmp_path, kitti_dir):
    """edepth scored raw-LiDAR frames against camera z at pixel round(u): one pixel down-right of, and 2-3% nearer
    than, the peers' Eigen ground truth (Monodepth2's export_gt_depth), so its Eigen figures were not comparable."""
    from edepth_ros import kitti

    # through the evaluation: an Eigen line without annotated depth is scored against exactly this ground truth
    raw, split = _eigen_tree(tmp_path, kitti_dir, frames=(5,))
    (entry,), _ = ke.parse_split(split, raw)
    _, gt, source = ke.frame_for(entry, "nominal", 1.65)
    assert source == "velodyne"
    # fit-gt still fits the road to metric camera-frame points (camera z at the true pixel): the KITTI mounting
    assert 1.55 < ke.frame_for(entry, "fit-gt", 1.65)[0].plane.height < 1.8
    c2c, v2c = _raw_matrices(raw / "2011_09_26" / "calib_cam_to_cam.txt"), _raw_matrices(raw / "2011_09_26" / "calib_velo_to_cam.txt")
    want = _peer_eigen_gt(kitti.read_velodyne(entry.velodyne), c2c["P_rect_02"].reshape(3, 4),
                          c2c["R_rect_00"].reshape(3, 3), np.hstack([v2c["R"].reshape(3, 3), v2c["T"].reshape(3, 1)]),
                          1242, 375)
    assert {(int(v), int(u)) for v, u in zip(*np.nonzero(np.isfinite(gt)))} == set(want)
    keys = sorted(want)
    assert np.allclose([gt[k] for k in keys], [want[k] for k in keys], rtol=0, atol=1e-5)

    # the ground truth itself, on both real scans with their own calibration
    for stem in ("000001", "000002"):
        velo = kitti.read_velodyne(kitti_dir / "object" / "velodyne" / f"{stem}.bin")
        calib = kitti.read_object_calib(kitti_dir / "object" / "calib" / f"{stem}.txt", 1242, 375)
        gt = ke.eigen_raw_depth(velo, calib, 1242, 375)
        c = _raw_matrices(kitti_dir / "object" / "calib" / f"{stem}.txt")
        want = _peer_eigen_gt(velo, c["P2"].reshape(3, 4), c["R0_rect"].reshape(3, 3),
                              c["Tr_velo_to_cam"].reshape(3, 4), 1242, 375)
        assert len(want) > 15_000
        got = {(int(v), int(u)) for v, u in zip(*np.nonzero(np.isfinite(gt)))}
        assert got == set(want)
        keys = sorted(want)
        assert np.allclose([gt[k] for k in keys], [want[k] for k in keys], rtol=0, atol=1e-5)
        # and it is not the geometric projection: camera z one pixel down-right, nearer by a few per cent
        ours, _ = kitti.project_lidar(velo, calib)
        shifted = np.full_like(ours, np.nan)
        shifted[:-1, :-1] = ours[1:, 1:]
        both = np.isfinite(gt) & np.isfinite(shifted)
        assert both.mean() > 0.5 * np.isfinite(gt).mean()
        assert 1.01 < np.median(gt[both] / shifted[both]) < 1.06


def test_left_and_right_lines_are_two_frames_and_the_examples_show_the_scored_one(tmp_path, kitti_dir, monkeypatch):
    """'... 5 l' and '... 5 r' had one name: per_frame.csv rows collided and the examples figure re-ran the
    other camera's image under the first one's AbsRel."""
    import shutil

    import cv2
    from edepth_ros.backends import EmbodiedOnlyBackend
    from edepth_ros.evaluation import report
    from edepth_ros.pipeline import DepthPipeline

    raw, _ = _eigen_tree(tmp_path, kitti_dir, frames=(5,))
    right = raw / "2011_09_26" / DRIVE / "image_03" / "data"
    right.mkdir(parents=True)
    shutil.copy(kitti_dir / "annotated_depth" / "rgb" / "0000000100.png", right / "0000000005.png")  # another picture
    _annotate(tmp_path / "gt", kitti_dir, 5)
    _annotate(tmp_path / "gt", kitti_dir, 5, cam=3, src=100)
    split = tmp_path / "lr.txt"
    split.write_text(f"2011_09_26/{DRIVE} 5 l\n2011_09_26/{DRIVE} 5 r\n")
    shown = []
    real_plot = report.plot_examples
    monkeypatch.setattr(report, "plot_examples", lambda rows, path: shown.extend(rows) or real_plot(rows, path))
    entries, _ = ke.parse_split(split, raw, tmp_path / "gt")
    res = ke.evaluate(entries, DepthPipeline(EmbodiedOnlyBackend()), out_dir=tmp_path / "out", progress=False)
    image = {1: kitti_dir / "annotated_depth" / "rgb" / "0000000005.png", 2: right / "0000000005.png"}  # by line
    by_abs_rel = {f"AbsRel {r['abs_rel']:.3f}": image[r["line"]] for r in res.per_frame}
    assert len(by_abs_rel) == 2 and shown
    for row in shown:
        (key,) = [k for k in by_abs_rel if k in row["title"]]
        want = cv2.cvtColor(cv2.imread(str(by_abs_rel[key])), cv2.COLOR_BGR2RGB)
        assert np.array_equal(row["rgb"], want), row["title"]
    rows = list(csv.DictReader((tmp_path / "out" / "per_frame.csv").open()))
    assert [r["name"] for r in rows] == [f"{DRIVE}/image_02/0000000005", f"{DRIVE}/image_03/0000000005"]


def test_the_depth_cap_used_is_the_one_reported(tmp_path, kitti_dir):
    """evaluate(max_depth=50) scored at 50 m while summary.md said 0.001-80 m and summary.json said nothing."""
    from edepth_ros.backends import EmbodiedOnlyBackend
    from edepth_ros.pipeline import DepthPipeline

    split = tmp_path / "s.txt"
    split.write_text(f"rgb/{FRAMES[0]}.png depth/{FRAMES[0]}.png 721.5377\n")
    entries, _ = ke.parse_split(split, kitti_dir / "annotated_depth", calib_dir=kitti_dir / "raw_calib" / "2011_09_26")
    pipe = DepthPipeline(EmbodiedOnlyBackend())
    pixels = {}
    for cap in (80.0, 50.0):
        res = ke.evaluate(entries, pipe, out_dir=tmp_path / f"o{cap:g}", max_depth=cap, min_depth=0.5, progress=False,
                          plots=False)
        pixels[cap] = res.per_frame[0]["pixels"]
        md = (tmp_path / f"o{cap:g}" / "summary.md").read_text()
        assert f"ground truth 0.5-{cap:g} m, predictions clamped" in md
        summary = json.loads((tmp_path / f"o{cap:g}" / "summary.json").read_text())
        assert (summary["min_depth"], summary["max_depth"]) == (0.5, cap)
    assert pixels[50.0] < pixels[80.0]
