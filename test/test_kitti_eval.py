"""KITTI evaluation on the three real annotated frames (shared/kitti/annotated_depth) via a generated split."""

import argparse
import csv
import json

import numpy as np
import pytest

from edepth_ros import metrics as M
from edepth_ros.evaluation import kitti_eval as ke

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
    entries, bad = ke.parse_split(path, tmp_path, gt_root=tmp_path / "gt")
    assert [e.line_no for e in entries] == [1, 2, 3] and [b["line"] for b in bad] == [6]
    a, b, c = entries
    assert a.image == tmp_path / "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png"
    assert a.gt == tmp_path / "gt/2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png"
    assert a.focal == pytest.approx(721.5377) and a.calib_dir == tmp_path / "2011_09_26"
    assert b.image == a.image and b.gt == a.gt  # the Eigen line names the same frame
    assert b.velodyne == tmp_path / "2011_09_26/2011_09_26_drive_0002_sync/velodyne_points/data/0000000069.bin"
    assert c.cam == 3 and c.image.parts[-3] == "image_03"
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
