"""Training: a tiny real run (synthetic scenes, real text encoder), exact resume, NaN stop keeping the
last good checkpoint, no memory growth per step, config errors naming the key, geometry-consistent
augmentation, and the KITTI (Eigen split on the sample frames) and ROS 2 bag data paths."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edepth_ros.network import CheckpointError, load_checkpoint, read_checkpoint  # noqa: E402
from edepth_ros.training import TrainConfig, TrainConfigError, TrainingDiverged, make_datasets, train  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def text_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("text_cache"))


def tiny_dict(out, text_cache, text=None, **train_over) -> dict:
    tr = dict(epochs=0, max_steps=4, batch_size=2, lr=1e-3, lr_end=1e-4, log_every=1, checkpoint_every=2,
              schedule=dict(mode="step", p_text=0.0), seed=0, threads=1)
    tr.update(train_over)
    return dict(
        model=dict(arch="demo", input_size=[64, 192]),
        data=dict(kind="synthetic", train_seeds=[0, 1], val_seeds=[900], frames_per_seed=2, val_frames_per_seed=1,
                  render_scale=1.25, augment=dict(flip=0.5, scale=[0.8, 1.0], color=0.1)),
        text=dict(cache_dir=text_cache, **(text or {})), train=tr, output=dict(dir=str(out)))


def tiny(out, text_cache, text=None, **train_over) -> TrainConfig:
    return TrainConfig.from_dict(tiny_dict(out, text_cache, text, **train_over))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, text_cache):
    cfg = tiny(tmp_path_factory.mktemp("d"), text_cache)
    return make_datasets(cfg, progress=False)


def read_log(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("p_text", [0.0, 0.5])
def test_tiny_run_resume_is_exact(tmp_path, text_cache, tiny_data, p_text):
    """p_text 0.5 puts text steps (whose noise is random) after the resume point, at steps 3 and 4:
    a resumed run once drew other noise there and ended with other weights."""
    over = dict(schedule=dict(mode="step", p_text=p_text))
    straight = train(tiny(tmp_path / "a", text_cache, **over), progress=False, datasets=tiny_data)
    assert straight["steps"] == 4
    rows = read_log(tmp_path / "a" / "log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert (tmp_path / "a" / "val.csv").is_file() and (tmp_path / "a" / "model.pt").is_file()
    events = list((tmp_path / "a" / "tb").glob("events.out.tfevents.*"))  # TensorBoard logs beside the CSV
    assert events and events[0].stat().st_size > 0

    if p_text:
        assert [r["path"] for r in read_log(tmp_path / "a" / "log.csv")] == ["image", "text", "image", "text"]
    train(tiny(tmp_path / "b", text_cache, **over), progress=False, datasets=tiny_data, stop_after=2)
    assert read_checkpoint(tmp_path / "b" / "latest.pt")["step"] == 2
    resumed = train(tiny(tmp_path / "b", text_cache, **over), resume=True, progress=False, datasets=tiny_data)
    assert resumed["steps"] == 4
    assert [int(r["step"]) for r in read_log(tmp_path / "b" / "log.csv")] == [1, 2, 3, 4]
    a = torch.load(tmp_path / "a" / "latest.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "latest.pt", weights_only=True)
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, rtol=1e-4, atol=1e-5, msg=f"resumed run differs at {k}")
    net = load_checkpoint(tmp_path / "a" / "model.pt")
    assert net.cfg.input_size == (64, 192)


def test_resume_without_checkpoint_or_with_other_model(tmp_path, text_cache, tiny_data):
    with pytest.raises(CheckpointError, match="--resume"):
        train(tiny(tmp_path / "none", text_cache), resume=True, progress=False, datasets=tiny_data)
    train(tiny(tmp_path / "c", text_cache, max_steps=1), progress=False, datasets=tiny_data)
    cfg = tiny(tmp_path / "c", text_cache)
    cfg.model.latent_dim = 16
    with pytest.raises(CheckpointError, match=r"another model config \(model.latent_dim differ\)"):
        train(cfg, resume=True, progress=False, datasets=tiny_data)
    # the batch size decides which batches were done: a resume with another one skipped two epochs
    with pytest.raises(TrainConfigError, match=r"--resume: train.batch_size changed since"):
        train(tiny(tmp_path / "c", text_cache, batch_size=1), resume=True, progress=False, datasets=tiny_data)
    # a damaged optimizer moment is named at resume, not hit later as a "divergence" or a shape error
    good = torch.load(tmp_path / "c" / "latest.pt", weights_only=True)
    for damage, message in ((lambda t: t.fill_(float("nan")), "not finite"), (lambda t: t[:3].clone(), "shape")):
        bad = {**good, "optimizer": {**good["optimizer"], "state": dict(good["optimizer"]["state"])}}
        first = next(iter(bad["optimizer"]["state"]))
        moments = dict(bad["optimizer"]["state"][first])
        moments["exp_avg_sq"] = damage(moments["exp_avg_sq"].clone())
        bad["optimizer"]["state"][first] = moments
        (tmp_path / "d").mkdir(exist_ok=True)
        torch.save(bad, tmp_path / "d" / "latest.pt")
        with pytest.raises(CheckpointError, match=f"optimizer state 'exp_avg_sq' has .*{message}"):
            train(tiny(tmp_path / "d", text_cache, max_steps=2), resume=True, progress=False, datasets=tiny_data)
    other_data = tiny_dict(tmp_path / "c", text_cache)
    other_data["data"]["train_seeds"] = [0, 2]
    with pytest.raises(TrainConfigError, match=r"--resume: data changed since"):
        train(TrainConfig.from_dict(other_data), resume=True, progress=False, datasets=tiny_data)
    # training longer, with another validation set, is what resume is for
    longer = tiny_dict(tmp_path / "c", text_cache, max_steps=2)
    longer["data"]["val_seeds"] = [901]
    assert train(TrainConfig.from_dict(longer), resume=True, progress=False, datasets=tiny_data)["steps"] == 2


class PoisonAfter(torch.utils.data.Dataset):
    """Wraps a dataset; from the n-th sample on the embodied depth holds NaN (a broken sensor)."""

    def __init__(self, base, n):
        self.base, self.n, self.calls = base, n, 0

    def __len__(self):
        return len(self.base)

    def set_epoch(self, e):
        self.base.set_epoch(e)

    def __getitem__(self, i):
        s = dict(self.base[i])
        self.calls += 1
        if self.calls > self.n:
            s["embodied"] = np.full_like(s["embodied"], np.nan)
        return s


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, text_cache, tiny_data):
    train_set, val_set = tiny_data
    poisoned = PoisonAfter(train_set, n=2 * 2)  # steps 1-2 fine, step 3 gets NaN
    cfg = tiny(tmp_path / "nan", text_cache, max_steps=6, checkpoint_every=2)
    with pytest.raises(TrainingDiverged, match=r"step 2.*latest\.pt|latest\.pt.*step 2"):
        train(cfg, progress=False, datasets=(poisoned, val_set))
    good = load_checkpoint(tmp_path / "nan" / "latest.pt")  # intact and loadable
    assert good.checkpoint_meta["step"] == 2


def assert_latest_is_finite_step(path, step):
    payload = read_checkpoint(path)
    assert payload["step"] == step
    bad = [k for k, v in payload["model"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    assert not bad, f"non-finite weights in {path}: {bad[:3]}"
    assert load_checkpoint(path).checkpoint_meta["step"] == step


def test_nonfinite_gradient_with_finite_loss_stops_before_the_step(tmp_path, text_cache, tiny_data, monkeypatch):
    """A finite loss whose gradient overflows: stop before opt.step, or NaN weights reach latest.pt."""
    from edepth_ros.training import trainer

    build, backwards = trainer.build_model, [0]

    def inf_on_third_backward(grad):
        backwards[0] += 1
        return torch.full_like(grad, float("inf")) if backwards[0] == 3 else grad

    def build_poisoned(cfg):
        net = build(cfg)
        next(net.decoder.parameters()).register_hook(inf_on_third_backward)
        return net

    monkeypatch.setattr(trainer, "build_model", build_poisoned)
    cfg = tiny(tmp_path / "g", text_cache, max_steps=6, checkpoint_every=1)  # a checkpoint after every step
    with pytest.raises(TrainingDiverged, match=r"gradient.*step 2 .*Last good checkpoint: '.*latest\.pt' \(step 2\)"):
        train(cfg, progress=False, datasets=tiny_data)
    assert backwards[0] == 3
    assert_latest_is_finite_step(tmp_path / "g" / "latest.pt", 2)


def test_nonfinite_weights_are_never_checkpointed(tmp_path, text_cache, tiny_data):
    """The last guard: whatever made the weights NaN, latest.pt keeps the last finite ones."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    steps = [0]

    def nan_after_third_step(opt, args, kwargs):
        steps[0] += 1
        if steps[0] == 3:
            with torch.no_grad():
                opt.param_groups[0]["params"][0].fill_(float("nan"))

    handle = register_optimizer_step_post_hook(nan_after_third_step)
    try:
        with pytest.raises(TrainingDiverged, match=r"not finite.*Last good checkpoint: '.*latest\.pt' \(step 2\)"):
            train(tiny(tmp_path / "w", text_cache, max_steps=6, checkpoint_every=1), progress=False,
                  datasets=tiny_data)
    finally:
        handle.remove()
    assert_latest_is_finite_step(tmp_path / "w" / "latest.pt", 2)


def test_yaml_date_in_config_trains_and_checkpoint_loads(tmp_path, text_cache, tiny_data):
    """YAML reads `description: 2024-01-01` as a datetime.date, which weights_only loading refuses."""
    import datetime

    import yaml

    path = tmp_path / "dated.yaml"
    path.write_text("description: 2024-01-01\n" + yaml.safe_dump(tiny_dict(tmp_path / "d", text_cache, max_steps=1)))
    cfg = TrainConfig.load(path)
    assert isinstance(cfg.raw["description"], datetime.date)
    train(cfg, progress=False, datasets=tiny_data)
    assert read_checkpoint(tmp_path / "d" / "latest.pt")["train_config"]["description"] == "2024-01-01"
    assert load_checkpoint(tmp_path / "d" / "model.pt").cfg.input_size == (64, 192)


def test_embodied_baseline_uses_the_model_max_depth():
    from edepth_ros.training.trainer import embodied_baseline

    class Frames:  # embodied depth 10 m everywhere; ground truth 10 m, and 50 m beyond max_depth
        max_depth = 20.0

        def __len__(self):
            return 1

        def __getitem__(self, i):
            gt = np.full((1, 8, 8), 10.0, np.float32)
            gt[:, :4] = 50.0
            return {"embodied": np.stack([np.full((8, 8), 10.0, np.float32), np.ones((8, 8), np.float32)]),
                    "depth": gt}

    assert embodied_baseline(Frames())["abs_rel"] == pytest.approx(0.0)  # the 50 m pixels are out of range


def test_publish_reexports_the_onnx_beside_the_weights(tmp_path, text_cache, tiny_data):
    """Retraining into a folder with an export re-exports it: `make demo` never runs stale weights."""
    pytest.importorskip("onnxruntime")
    from edepth_ros.export import export_onnx
    from edepth_ros.model_io import read_sidecar, sha256_file, stale_export

    pub = tmp_path / "pub"

    def run(seed):
        d = tiny_dict(tmp_path / f"run{seed}", text_cache, seed=seed)
        d["output"]["publish"] = str(pub)
        train(TrainConfig.from_dict(d), progress=False, datasets=tiny_data)

    run(0)
    export_onnx(pub / "model.pt", 64, 192, None, pub / "model.onnx", check_fp16=False)
    first = read_sidecar(pub / "model.onnx").onnx_sha256
    run(1)
    spec = read_sidecar(pub / "model.onnx")
    assert spec.checkpoint_sha256 == sha256_file(pub / "model.pt") and spec.onnx_sha256 != first
    assert stale_export(spec, pub / "model.onnx") is None and (spec.height, spec.width) == (64, 192)


def test_no_memory_growth_per_step(tmp_path, text_cache, tiny_data):
    train(tiny(tmp_path / "m", text_cache, max_steps=24, checkpoint_every=1000, schedule=dict(p_text=0.3)),
          progress=False, datasets=tiny_data)
    rss = [float(r["rss_mb"]) for r in read_log(tmp_path / "m" / "log.csv")]
    # after warm-up, a leak of one step's graph (tens of MB) would add up over 16 steps
    growth = max(rss[8:]) - rss[7]
    assert growth < 40, f"RSS grew {growth:.1f} MB over steps 8-24: {rss}"


@pytest.mark.parametrize("patch, key", [
    ({"train": {"lrr": 1}}, "train.lrr"),
    ({"train": {"batch_size": 0}}, "train.batch_size"),
    ({"train": {"schedule": {"mode": "sometimes"}}}, "train.schedule.mode"),
    ({"model": {"arch": "demo", "backbone": "resnet_9000"}}, "model.backbone"),
    ({"model": {"arch": "demo", "fusion_dim": 30}}, "model.fusion_dim"),
    ({"data": {"kind": "kitti", "raw_root": "/nonexistent/kitti_raw", "train_split": "x.txt"}}, "data.raw_root"),
    ({"data": {"kind": "bag", "bag": "/nonexistent/bag", "image_topic": "/i", "camera_info_topic": "/c",
               "depth_topic": "/d"}}, "data.bag"),
    ({"data": {"kind": "synthetic", "train_seeds": [1, 2], "val_seeds": [2]}}, "data.val_seeds"),
    ({"data": {"kind": "lidar"}}, "data.kind"),
    ({"output": {}}, "output.dir"),
])
def test_config_errors_name_the_key(tmp_path, patch, key):
    base = dict(model=dict(arch="demo"), data=dict(kind="synthetic", train_seeds=[0]),
                train=dict(max_steps=1), output=dict(dir=str(tmp_path)))
    base.update(patch)
    with pytest.raises(TrainConfigError, match=key.replace(".", r"\.")):
        TrainConfig.from_dict(base)


def test_text_dim_mismatch_fails_at_start(tmp_path, text_cache, monkeypatch):
    from edepth_ros.training import datasets

    def no_rendering(*args, **kw):
        raise AssertionError("scenes rendered before model.text_dim was checked against the text encoder")

    monkeypatch.setattr(datasets.SyntheticDataset, "__init__", no_rendering)
    cfg = tiny(tmp_path, text_cache)
    cfg.model.text_dim = 512
    with pytest.raises(TrainConfigError, match=r"model\.text_dim: 512 .*text\.encoder 'sentence-transformers' .*384"):
        make_datasets(cfg, progress=False)


def test_augmentation_keeps_embodied_depth_consistent(tiny_data):
    """Crops/resizes change the intrinsics, flips flip everything: on road pixels the embodied depth
    (from the plane and the adjusted camera) must agree with the synthetic ground truth, to the
    nearest-neighbour resize of the ground truth (about 0.5% median on near road, see the docs)."""
    train_set, _ = tiny_data
    flipped_seen = unflipped_seen = False
    for epoch in range(4):
        train_set.set_epoch(epoch)
        for i in range(len(train_set)):
            s = train_set[i]
            emb, gt = s["embodied"], s["depth"][0]
            road = (emb[1] >= 0.99) & (gt > 0) & (gt < 20)  # confidence 1.0 = road plane depth; near rows
            assert road.sum() > 100
            rel = np.abs(emb[0][road] - gt[road]) / gt[road]
            assert np.median(rel) < 0.02, f"embodied/gt mismatch after augmentation (sample {i}, epoch {epoch})"
            flipped_seen |= s["text"] is train_set._text_memo.get((i, True))
            unflipped_seen |= s["text"] is train_set._text_memo.get((i, False))
    assert flipped_seen and unflipped_seen


def _kitti_sample_config(tmp_path, kitti_dir, text_cache, train: dict, out: str) -> TrainConfig:
    """A KITTI-layout config over the annotated sample frames (an Eigen-format split of them)."""
    ann = kitti_dir / "annotated_depth"
    names = sorted(p.name for p in (ann / "rgb").glob("*.png"))
    if not names:
        pytest.skip(f"no annotated_depth frames under {ann}")
    split = tmp_path / "eigen_sample.txt"
    split.write_text("".join(f"rgb/{n} depth/{n} 721.5377\n" for n in names))
    return TrainConfig.from_dict(dict(
        model=dict(arch="demo", input_size=[64, 224]),
        data=dict(kind="kitti", raw_root=str(ann), gt_root=str(ann), train_split=str(split), val_split=str(split),
                  calib_dir=str(kitti_dir / "raw_calib" / "2011_09_26"), plane_height=1.65),
        text=dict(cache_dir=text_cache), train=dict(batch_size=1, threads=1, **train),
        output=dict(dir=str(tmp_path / out))))


def test_kitti_eigen_split_path_on_sample_frames(tmp_path, kitti_dir, text_cache):
    cfg = _kitti_sample_config(tmp_path, kitti_dir, text_cache, dict(max_steps=2, log_every=1), "k")
    train_set, val_set = make_datasets(cfg, progress=False)
    s = val_set[0]
    assert s["rgb"].shape == (64, 224, 3) and s["embodied"].shape == (2, 64, 224)
    gt = s["depth"][0]
    assert 0.05 < (gt > 0).mean() < 0.6  # sparse LiDAR ground truth survives the KB crop + resize
    assert 1 < gt[gt > 0].min() and gt.max() < 90
    summary = train(cfg, progress=False, datasets=(train_set, val_set))
    assert summary["steps"] == 2 and np.isfinite(summary["val"]["abs_rel"])


def test_split_file_errors_name_the_file_and_its_line(tmp_path):
    from edepth_ros.training.datasets import DatasetError, KittiDataset, read_split_file

    bad = tmp_path / "bad_focal.txt"
    bad.write_text("\na.png b.png 721.5\nc.png d.png notanumber\n")
    with pytest.raises(DatasetError, match=f"{bad}:3: focal 'notanumber' is not a positive number"):
        read_split_file(bad)
    raw = tmp_path / "raw"
    _kitti_calib(raw / "2011_09_26", 721.5)
    split = tmp_path / "split.txt"  # entry 1 sits on file line 3, after a comment and a blank line
    split.write_text("# eigen test\n\n2011_09_26/missing.png None\n")
    assert read_split_file(split) == [("2011_09_26/missing.png", None, None)]
    # a missing file is found when the dataset is built, before training starts (was: when its batch came up)
    with pytest.raises(DatasetError, match=f"split '{split}' names files that do not exist: image '.*missing.png' "
                                           r"\(line 3\)"):
        KittiDataset(str(split), str(raw), None, (64, 192))
    split.write_text("# eigen test\n\n2011_10_03/x.png None\n")
    with pytest.raises(DatasetError, match=r"calibration '.*2011_10_03/calib_cam_to_cam.txt' \(line 3\)"):
        KittiDataset(str(split), str(raw), None, (64, 192))
    (raw / "2011_09_26" / "garbage.png").write_bytes(b"not a png")
    split.write_text("# eigen test\n\n2011_09_26/garbage.png None\n")
    ds = KittiDataset(str(split), str(raw), None, (64, 192))
    with pytest.raises(DatasetError, match=f"garbage.png' cannot be read \\({split}:3\\)"):
        ds.base(0)


class NoSegmenter:
    def segment(self, rgb, camera, plane):
        return np.zeros(rgb.shape[:2], np.uint8)


def _kitti_calib(folder, fx: float, size=(1242, 375)):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "calib_cam_to_cam.txt").write_text(
        f"S_rect_02: {size[0]:e} {size[1]:e}\n"
        f"P_rect_02: {fx:e} 0 6.0e+02 4.5e+01 0 {fx:e} 1.7e+02 0 0 0 1 0\n")
    return folder


def test_kitti_calibration_must_fit_the_image_and_the_date(tmp_path):
    import cv2

    from edepth_ros.training.datasets import DatasetError, KittiDataset

    raw = tmp_path / "raw"
    rows = []
    for date, name, (w, h) in (("2011_09_26", "a", (1242, 375)), ("2011_09_26", "b", (1224, 370)),
                               ("2011_10_03", "c", (1242, 375))):
        img = raw / date / f"{date}_drive_0001_sync" / "image_02" / "data" / f"{name}.png"
        img.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(img), np.full((h, w, 3), 90, np.uint8))
        rows.append(f"{img.relative_to(raw)} None 721.5377\n")
    calib = _kitti_calib(raw / "2011_09_26", 721.5377)
    split = tmp_path / "split.txt"
    split.write_text(rows[0] + rows[1])
    ds = KittiDataset(str(split), str(raw), None, (64, 192), segmenter=NoSegmenter())
    assert ds.base(0).camera.width == 1242
    # a resized (or other date's) image under this calibration: P_rect_02 does not describe it
    with pytest.raises(DatasetError, match=f"b.png' \\({split}:2\\) is 1224x370 but calibration "
                                           f"'{calib / 'calib_cam_to_cam.txt'}' is for 1242x375 images"):
        ds.base(1)
    # data.calib_dir holding one date's file cannot serve a split of two dates
    split.write_text(rows[0] + rows[2])
    with pytest.raises(DatasetError, match=r"data\.calib_dir: .* spans 2 dates \(2011_09_26, 2011_10_03\).*"
                                           r"missing: 2011_09_26, 2011_10_03\)"):
        KittiDataset(str(split), str(raw), None, (64, 192), calib_dir=str(calib))
    # ... but one folder per date under calib_dir is read per image
    per_date = tmp_path / "calib"
    _kitti_calib(per_date / "2011_09_26", 721.5377)
    _kitti_calib(per_date / "2011_10_03", 718.856)
    ds = KittiDataset(str(split), str(raw), None, (64, 192), calib_dir=str(per_date), segmenter=NoSegmenter())
    assert ds.base(0).camera.fx == pytest.approx(721.5377) and ds.base(1).camera.fx == pytest.approx(718.856)


def _kitti_frames(tmp_path, depths: dict):
    """raw/2011_09_26/<name>.png (1242x375) and gt/<name>.png per depth array; the split lists them in order."""
    import cv2

    raw, gt = tmp_path / "raw", tmp_path / "gt"
    _kitti_calib(raw / "2011_09_26", 721.5377)
    gt.mkdir(exist_ok=True)
    lines = []
    for name, depth in depths.items():
        cv2.imwrite(str(raw / "2011_09_26" / f"{name}.png"), np.full((375, 1242, 3), 90, np.uint8))
        if depth is None:
            lines.append(f"2011_09_26/{name}.png None 721.5377\n")
            continue
        cv2.imwrite(str(gt / f"{name}.png"), depth)
        lines.append(f"2011_09_26/{name}.png {name}.png 721.5377\n")
    split = tmp_path / "split.txt"
    split.write_text("".join(lines))
    return split, raw, gt


def test_kitti_frames_without_usable_ground_truth_are_skipped_and_counted(tmp_path):
    """Was: frames with no depth ('None', all 0) trained with loss 0 and grad 0, rc 0, model.pt written."""
    from edepth_ros.training.datasets import DatasetError, KittiDataset

    good = np.zeros((375, 1242), np.uint16)
    good[200:, ::4] = 20 * 256  # 20 m
    split, raw, gt = _kitti_frames(tmp_path, {"a": good, "b": np.zeros((375, 1242), np.uint16), "c": None,
                                              "d": np.full((375, 1242), 90 * 256, np.uint16)})  # beyond max_depth
    ds = KittiDataset(str(split), str(raw), str(gt), (64, 192), segmenter=NoSegmenter(), require_depth=True)
    assert len(ds) == 1 and ds.lines == [1] and ds.rows[0][0] == "2011_09_26/a.png"
    assert sum(ds.skipped.values()) == 3
    assert any(n.startswith("2 x depth map without a pixel in (0.1, model.max_depth 80) m (first: ") and
               f"{split}:2" in n for n in ds.notes)
    assert any(n.startswith("1 x no depth path on the split line") for n in ds.notes)
    # a split with none left is refused, naming it
    split.write_text("2011_09_26/b.png b.png\n2011_09_26/c.png None\n")
    with pytest.raises(DatasetError, match=f"split '{split}': no frame has usable ground truth"):
        KittiDataset(str(split), str(raw), str(gt), (64, 192), require_depth=True)


def test_make_datasets_refuses_a_kitti_split_without_ground_truth(tmp_path):
    from edepth_ros.training.datasets import DatasetError

    split, raw, gt = _kitti_frames(tmp_path, {"b": np.zeros((375, 1242), np.uint16)})
    cfg = TrainConfig.from_dict(dict(
        model=dict(arch="demo", input_size=[64, 192], text_vae=False),
        data=dict(kind="kitti", raw_root=str(raw), gt_root=str(gt), train_split=str(split)),
        train=dict(max_steps=1, batch_size=1, threads=1), output=dict(dir=str(tmp_path / "out"))))
    with pytest.raises(DatasetError, match="no frame has usable ground truth"):
        make_datasets(cfg, progress=False)


@pytest.mark.parametrize("kind", ["uint8", "3-channel"])
def test_kitti_depth_that_is_not_single_channel_uint16_is_refused(tmp_path, kind):
    """Was: an 8-bit PNG trained on depths of 0-1 m (value / 256) silently; a colour one hit a ValueError deep
    in the resize."""
    from edepth_ros.training.datasets import DatasetError, KittiDataset

    depth = np.full((375, 1242), 20, np.uint8) if kind == "uint8" else np.full((375, 1242, 3), 20 * 256, np.uint16)
    split, raw, gt = _kitti_frames(tmp_path, {"a": depth})
    message = f"KITTI depth '{gt / 'a.png'}' \\({split}:1\\) is .*expected a single-channel uint16 PNG \\(depth in metres x 256"
    with pytest.raises(DatasetError, match=message):  # when the dataset is built
        KittiDataset(str(split), str(raw), str(gt), (64, 192), require_depth=True)
    ds = KittiDataset(str(split), str(raw), str(gt), (64, 192), segmenter=NoSegmenter())
    with pytest.raises(DatasetError, match=message):  # and when a frame is read
        ds.base(0)


def test_resume_refuses_a_changed_text_section(tmp_path, text_cache, tiny_data):
    """The text section decides the sentences, so the embeddings trained on (was: accepted, and the checkpoint
    then recorded the new section for the whole run); where they are cached may move."""
    train(tiny(tmp_path / "t", text_cache, max_steps=1), progress=False, datasets=tiny_data)
    with pytest.raises(TrainConfigError, match=r"--resume: text\.max_objects changed since"):
        train(tiny(tmp_path / "t", text_cache, text={"max_objects": 1}, max_steps=2), resume=True, progress=False,
              datasets=tiny_data)
    moved = tiny_dict(tmp_path / "t", text_cache, max_steps=2)
    moved["text"]["cache_dir"] = str(tmp_path / "other_cache")
    assert train(TrainConfig.from_dict(moved), resume=True, progress=False, datasets=tiny_data)["steps"] == 2


def test_bag_maps_of_another_size_than_the_image_are_refused(tmp_path):
    import cv2

    from edepth_ros.bags import io as bio
    from edepth_ros.bags.make_bag import SYNTHETIC_T0_NS, TOPICS
    from edepth_ros.synthetic import SceneGenerator
    from edepth_ros.training.datasets import BagDataset, DatasetError

    f = SceneGenerator(3, width=320, height=96).frame(0, lidar=False)
    st = SYNTHETIC_T0_NS + int(round(f.stamp * 1e9))

    def bag(name, depth, labels):
        with bio.BagWriter(tmp_path / name) as w:
            tf = bio.transform_stamped(np.linalg.inv(f.T_cam_from_ground), st, bio.GROUND_FRAME, bio.CAMERA_FRAME)
            w.write("/tf", st, bio.tf_message([tf]))
            w.write(TOPICS["camera_info"], st, bio.camera_info_msg(f.camera, st, bio.CAMERA_FRAME))
            w.write(TOPICS["image"], st, bio.image_msg(f.rgb, st, bio.CAMERA_FRAME))
            w.write(TOPICS["depth"], st, bio.image_msg(depth, st, bio.CAMERA_FRAME))
            w.write(TOPICS["semantic"], st, bio.image_msg(labels, st, bio.CAMERA_FRAME, "mono8"))
        return BagDataset(str(tmp_path / name), (64, 192), image_topic=TOPICS["image"],
                          camera_info_topic=TOPICS["camera_info"], depth_topic=TOPICS["depth"],
                          labels_topic=TOPICS["semantic"])

    assert bag("ok", f.depth, f.labels).base(0).depth.shape == (96, 320)
    half = cv2.resize(f.depth, (160, 48), interpolation=cv2.INTER_NEAREST)  # an exact 1/2 scale: still refused
    with pytest.raises(DatasetError, match=f"data.depth_topic: '{TOPICS['depth']}' is 160x48 but image topic "
                                           f"'{TOPICS['image']}' is 320x96"):
        bag("half_depth", half, f.labels)
    with pytest.raises(DatasetError, match=f"data.labels_topic: '{TOPICS['semantic']}' is 320x48"):
        bag("short_labels", f.depth, np.ascontiguousarray(f.labels[:48]))


def test_bag_pairing_window_and_tf_age_come_from_the_config(tmp_path):
    # data.max_skew and data.tf_max_age reach BagDataset (they were fixed at 0.05 s and 1 s)
    from edepth_ros.bags import io as bio
    from edepth_ros.bags.make_bag import SYNTHETIC_T0_NS, TOPICS
    from edepth_ros.synthetic import SceneGenerator
    from edepth_ros.training import TrainConfig, TrainConfigError
    from edepth_ros.training.datasets import DatasetError
    from edepth_ros.training.trainer import make_datasets

    f = SceneGenerator(3, width=320, height=96).frame(0, lidar=False)
    st = SYNTHETIC_T0_NS + int(round(f.stamp * 1e9))
    late = st + 30_000_000  # the depth stamped 30 ms after its image, the ground pose 0.5 s before it
    with bio.BagWriter(tmp_path / "bag") as w:
        w.write("/tf", st, bio.tf_message([bio.transform_stamped(np.linalg.inv(f.T_cam_from_ground), st - 500_000_000,
                                                                 bio.GROUND_FRAME, bio.CAMERA_FRAME)]))
        w.write(TOPICS["camera_info"], st, bio.camera_info_msg(f.camera, st, bio.CAMERA_FRAME))
        w.write(TOPICS["image"], st, bio.image_msg(f.rgb, st, bio.CAMERA_FRAME))
        w.write(TOPICS["depth"], late, bio.image_msg(f.depth, late, bio.CAMERA_FRAME))
        w.write(TOPICS["semantic"], st, bio.image_msg(f.labels, st, bio.CAMERA_FRAME, "mono8"))

    def datasets(**data):
        cfg = TrainConfig.from_dict(dict(
            model=dict(arch="demo", text_vae=False), train=dict(max_steps=1), output=dict(dir=str(tmp_path / "out")),
            data=dict(kind="bag", bag=str(tmp_path / "bag"), image_topic=TOPICS["image"],
                      camera_info_topic=TOPICS["camera_info"], depth_topic=TOPICS["depth"],
                      labels_topic=TOPICS["semantic"], **data)))
        return make_datasets(cfg, progress=False)[0]

    assert len(datasets()) == 1
    with pytest.raises(DatasetError, match="data.max_skew 0.01 s"):
        datasets(max_skew=0.01)
    with pytest.raises(DatasetError, match="data.tf_max_age 0.2 s"):
        datasets(tf_max_age=0.2)
    for bad in (dict(max_skew=-1), dict(tf_max_age="1")):
        with pytest.raises(TrainConfigError, match=f"data.{next(iter(bad))}: expected"):
            datasets(**bad)


def test_crop_resize_refuses_misaligned_arrays():
    from edepth_ros.camera import CameraModel
    from edepth_ros.training.augment import AugmentError, crop_resize

    rgb, labels = np.zeros((48, 160, 3), np.uint8), np.zeros((48, 160), np.uint8)
    camera = CameraModel.from_intrinsics(100.0, 100.0, 79.5, 23.5, 160, 48)
    rgb_c, *_ = crop_resize(rgb, labels, np.ones((48, 160), np.float32), camera, (0, 0, 160, 48), (24, 80))
    assert rgb_c.shape == (24, 80, 3)
    with pytest.raises(AugmentError, match="image 160x48, labels 160x48, depth 80x24 and camera 160x48"):
        crop_resize(rgb, labels, np.ones((24, 80), np.float32), camera, (0, 0, 80, 24), (24, 80))


def test_bag_dataset_with_lidar_through_tf(tmp_path, text_cache):
    from edepth_ros.bags.make_bag import TOPICS, make_synthetic_bag
    from edepth_ros.training.datasets import BagDataset, TextSource

    bag = tmp_path / "syn_bag"
    make_synthetic_bag(bag, frames=2, seed=3, width=320, height=96, progress=False)
    ds = BagDataset(str(bag), (64, 192), image_topic=TOPICS["image"], camera_info_topic=TOPICS["camera_info"],
                    lidar_topic=TOPICS["lidar"], labels_topic=TOPICS["semantic"],
                    text=TextSource(cache_dir=text_cache))
    assert len(ds) == 2
    base = ds.base(0)
    lidar = base.depth
    assert 0.005 < np.isfinite(lidar).mean() < 0.5
    ds_depth = BagDataset(str(bag), (64, 192), image_topic=TOPICS["image"], camera_info_topic=TOPICS["camera_info"],
                          depth_topic=TOPICS["depth"], labels_topic=TOPICS["semantic"])
    dense = ds_depth.base(0).depth
    both = np.isfinite(lidar) & np.isfinite(dense) & (dense < 60)
    # LiDAR projected through the bag's tf lands where the rendered depth says it should
    assert np.median(np.abs(lidar[both] - dense[both]) / dense[both]) < 0.03
    s = ds[0]
    assert s["text"].shape == (384,) and s["embodied"].shape == (2, 64, 192)
    from edepth_ros.training.datasets import DatasetError

    with pytest.raises(DatasetError, match="data.bag: .*no topic /nope"):
        BagDataset(str(bag), (64, 192), image_topic="/nope", camera_info_topic=TOPICS["camera_info"],
                   depth_topic=TOPICS["depth"])
    # a topic of the wrong type is named before any message is decoded (was an AttributeError)
    for wrong in (dict(camera_info_topic=TOPICS["image"], depth_topic=TOPICS["depth"]),
                  dict(camera_info_topic=TOPICS["camera_info"], lidar_topic=TOPICS["image"]),
                  dict(camera_info_topic=TOPICS["camera_info"], depth_topic=TOPICS["lidar"])):
        with pytest.raises(DatasetError, match=r"data.bag: topic /\S+ in .* holds sensor_msgs/msg/\w+, not"):
            BagDataset(str(bag), (64, 192), image_topic=TOPICS["image"], **wrong)


def test_silog_is_scale_invariant_and_splits_over_ranks():
    from edepth_ros.training.losses import confidence_loss, silog_loss, valid_mask

    g = torch.Generator().manual_seed(0)
    gt = torch.rand(4, 1, 16, 16, generator=g) * 50 + 1
    gt[1, :, :8] = 0  # half an image without ground truth
    mask = valid_mask(gt, 0.1, 80)
    scaled = torch.log(gt.clamp_min(1e-3)) + torch.log(torch.tensor([2.0, 0.5, 3.0, 1.0])).view(4, 1, 1, 1)
    assert float(silog_loss(scaled, gt, mask, lambd=1.0)) < 0.05  # a per-image scale costs nothing
    assert float(silog_loss(scaled, gt, mask, lambd=0.85)) > 1.0  # lambda < 1 keeps some scale error
    noisy = torch.log(gt.clamp_min(1e-3)) + 0.3 * torch.randn(gt.shape, generator=g)
    whole = silog_loss(noisy, gt, mask)
    halves = (silog_loss(noisy[:2], gt[:2], mask[:2]) + silog_loss(noisy[2:], gt[2:], mask[2:])) / 2
    torch.testing.assert_close(whole, halves)  # what makes DDP equal to the doubled batch
    logits = torch.randn(gt.shape, generator=g)
    torch.testing.assert_close(confidence_loss(logits, noisy, gt, mask),
                               (confidence_loss(logits[:2], noisy[:2], gt[:2], mask[:2]) +
                                confidence_loss(logits[2:], noisy[2:], gt[2:], mask[2:])) / 2)
    empty = torch.zeros_like(mask)
    assert float(silog_loss(noisy, gt, empty)) == 0.0


@pytest.mark.parametrize("name", ["demo.yaml", "realtime.yaml", "paper.yaml"])
def test_shipped_configs_parse(project_dir, name):
    import yaml

    from edepth_ros.network import model_config

    path = project_dir / "models" / name
    data = yaml.safe_load(path.read_text())
    cfg = model_config(path)
    assert cfg.input_size[0] % 32 == 0 and cfg.max_depth == 80.0
    if data["data"]["kind"] == "kitti" and not (project_dir / data["data"]["raw_root"]).exists():
        with pytest.raises(TrainConfigError, match=r"data\.raw_root"):  # KITTI not here: named at start
            TrainConfig.load(path)
    else:
        TrainConfig.load(path)


def test_schedule_modes():
    from edepth_ros.training.schedule import PathSchedule

    step = PathSchedule(mode="step", p_text=0.25, seed=3)
    paths = [step.path(s, 0) for s in range(2000)]
    assert 0.2 < paths.count("text") / 2000 < 0.3
    assert paths == [PathSchedule(mode="step", p_text=0.25, seed=3).path(s, 0) for s in range(2000)]
    assert [PathSchedule(mode="epoch", text_every=3).path(0, e) for e in range(6)] == \
        ["text", "image", "image", "text", "image", "image"]
    assert [PathSchedule(mode="phases", text_epochs=2).path(0, e) for e in range(4)] == ["text", "text", "image", "image"]
    assert step.path(0, 0, has_text_vae=False) == "image"


def test_ablation_trains_each_variant_per_seed_and_reports_the_spread(tmp_path, text_cache):
    import json

    from edepth_ros.training.report import ablation

    with pytest.raises(ValueError, match="no_such_variant"):  # named before any data is built
        ablation(tiny(tmp_path / "x", text_cache), 2, tmp_path / "x", ["full", "no_such_variant"])
    out = tmp_path / "abl"
    res = ablation(tiny(tmp_path / "unused", text_cache), 2, out, ["full", "no_text_vae"], seeds=[0, 1])
    saved = json.loads((out / "ablation.json").read_text())
    assert (out / "ablation.png").stat().st_size > 0
    assert saved["seeds"] == [0, 1] and set(saved["metrics"]) == {"embodied_only", "full", "no_text_vae"}
    for name in ("full", "no_text_vae"):
        runs = saved["runs"][name]
        assert [r["seed"] for r in runs] == [0, 1]
        assert all((out / name / f"seed{r['seed']}" / "model.pt").is_file() for r in runs)
        # another seed is another run (weights, batch order), not a copy of the first
        assert runs[0]["metrics"]["abs_rel"] != runs[1]["metrics"]["abs_rel"]
        vals = [r["metrics"]["abs_rel"] for r in runs]
        assert saved["metrics"][name]["abs_rel"] == pytest.approx(np.mean(vals))
        assert saved["metrics_std_over_seeds"][name]["abs_rel"] == pytest.approx(np.std(vals))
    # only a model with a text VAE can be scored with each frame's own description latent
    assert set(saved["metrics_per_image_text"]) == {"full"}
    assert "metrics_per_image_text" in saved["runs"]["full"][0]
    assert res["metrics"] == saved["metrics"]


def test_clip_text_encoder_trains_and_its_dimension_is_checked(tmp_path, tiny_clip):
    """text.encoder: clip with a local folder, both paths (p_text 0.5 draws text and image steps)."""
    cfg = tiny(tmp_path / "run", str(tmp_path / "cache"), text=dict(encoder="clip", model=str(tiny_clip)),
               max_steps=3, schedule=dict(mode="step", p_text=0.5))
    cfg.data["train_seeds"], cfg.data["val_seeds"], cfg.data["frames_per_seed"] = [0], [], 2
    with pytest.raises(TrainConfigError, match=r"model\.text_dim: 384 .*'clip' gives 24-d"):
        make_datasets(cfg, progress=False)
    cfg.model.text_dim = 24
    result = train(cfg, progress=False)
    assert result["steps"] == 3
    rows = read_log(tmp_path / "run" / "log.csv")
    assert {r["path"] for r in rows} == {"text", "image"} and all(np.isfinite(float(r["loss"])) for r in rows)
    assert load_checkpoint(tmp_path / "run" / "model.pt").cfg.text_dim == 24
    _check_text_is_embedded_with_the_trained_encoder(tmp_path, tmp_path / "run" / "model.pt", tiny_clip)


def _check_text_is_embedded_with_the_trained_encoder(tmp_path, ckpt, clip_dir):
    """A deployment text (export --text, the torch backend's text) is embedded with the encoder the
    checkpoint was trained with: once always with MiniLM, so a 384-d CLIP model took a latent from
    embeddings its VAE had never seen, without a word."""
    import shutil

    from edepth_ros.backends.base import BackendError
    from edepth_ros.backends.torch_backend import TorchBackend
    from edepth_ros.export import ExportError, export_onnx, latent_for_texts
    from edepth_ros.network import text_latent
    from edepth_ros.network.text import make_encoder

    text = "a car 12 m ahead, the closest object"
    net = load_checkpoint(ckpt)
    assert net.checkpoint_meta["text_encoder"] == {"encoder": "clip", "model": str(clip_dir.resolve())}
    want = [t.detach().numpy() for t in text_latent(net, make_encoder("clip", str(clip_dir)).encode([text]))]
    got = latent_for_texts(net, [text])
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    backend = TorchBackend.from_file(ckpt, text=text, device="cpu")
    np.testing.assert_allclose(backend.module.mu.numpy().ravel(), want[0].ravel(), rtol=1e-5, atol=1e-6)
    # another kind is refused, naming both; so is a --text-encoder or --text-model with no text
    with pytest.raises(ExportError, match=r"--text-encoder sentence-transformers: .*trained with the clip"):
        export_onnx(ckpt, 64, 64, text, tmp_path / "x.onnx", text_encoder="sentence-transformers")
    with pytest.raises(ExportError, match=r"only used to embed --text"):
        export_onnx(ckpt, 64, 64, None, tmp_path / "x.onnx", text_model=str(clip_dir))
    assert not (tmp_path / "x.onnx").exists()
    # the encoder's folder has moved: named, and found again with text_model / --text-model
    moved = tmp_path / "moved-clip"
    shutil.move(str(clip_dir), moved)
    try:
        with pytest.raises(ExportError, match=r"text encoder: '.*tiny-clip' \(clip.*--text-model DIR"):
            latent_for_texts(net, [text])
        with pytest.raises(BackendError, match=r"torch option text: .*tiny-clip.*text_model option"):
            TorchBackend.from_file(ckpt, text=text, device="cpu")
        for w, g in zip(want, latent_for_texts(net, [text], encoder_model=str(moved))):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
        moved_backend = TorchBackend.from_file(ckpt, text=text, text_model=str(moved), device="cpu")
        np.testing.assert_allclose(moved_backend.module.mu.numpy().ravel(), want[0].ravel(), rtol=1e-5, atol=1e-6)
    finally:
        shutil.move(str(moved), clip_dir)
    with pytest.raises(BackendError, match=r"text_model: only used to embed the text option"):
        TorchBackend.from_file(ckpt, text_model=str(clip_dir), device="cpu")
    # a checkpoint from before the record: the stored training config names the encoder
    del net.checkpoint_meta["text_encoder"]
    for w, g in zip(want, latent_for_texts(net, [text])):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- training reliability (4 Dec)
class NoGroundTruthAt(PoisonAfter):
    """Wraps a dataset; the samples numbered in ``depths`` (1-based, in loading order) get ground truth
    that the loss cannot use: every pixel that depth (0 = none, or beyond model.max_depth)."""

    def __init__(self, base, depths: dict):
        super().__init__(base, n=0)
        self.depths = depths

    def __getitem__(self, i):
        s = dict(self.base[i])
        self.calls += 1
        if self.calls in self.depths:
            s["depth"] = np.full_like(s["depth"], self.depths[self.calls])
        return s


def test_batch_without_ground_truth_is_skipped_not_a_step_nor_a_divergence(tmp_path, text_cache, tiny_data):
    """Was: the step trained on the KL / decay terms alone, logged as a loss of ~0, and under fp16
    autocast the "zero" loss (an fp16 sum of the batch, inf, times 0) was NaN: "training stopped"."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from edepth_ros.training.losses import confidence_loss, silog_loss, valid_mask

    half = torch.full((2, 1, 96, 320), 3.0, dtype=torch.float16, requires_grad=True)
    none = valid_mask(torch.zeros(2, 1, 96, 320), 0.1, 80.0)
    assert float(silog_loss(half, torch.zeros(2, 1, 96, 320), none).detach()) == 0.0
    assert float(confidence_loss(half, half, torch.zeros(2, 1, 96, 320), none).detach()) == 0.0

    train_set, val_set = tiny_data
    steps = [0]
    handle = register_optimizer_step_post_hook(lambda opt, args, kwargs: steps.__setitem__(0, steps[0] + 1))
    try:  # batch 2: one frame without depth, one all beyond max_depth (80 m)
        summary = train(tiny(tmp_path / "s", text_cache, max_steps=4, checkpoint_every=1), progress=False,
                        datasets=(NoGroundTruthAt(train_set, {3: 0.0, 4: 500.0}), val_set))
    finally:
        handle.remove()
    assert summary["steps"] == 4 and summary["skipped_steps"] == 1 and summary["skipped_first"] == [2]
    assert steps[0] == 3  # no optimiser step for the batch without ground truth
    rows = read_log(tmp_path / "s" / "log.csv")
    assert [r["path"] for r in rows] == ["image", "skipped", "image", "image"] and rows[1]["loss"] == ""
    assert_latest_is_finite_step(tmp_path / "s" / "latest.pt", 4)
    assert read_checkpoint(tmp_path / "s" / "latest.pt")["skipped_steps"] == 1  # a resume keeps the count


def test_fresh_run_sets_aside_an_earlier_runs_checkpoints(tmp_path, text_cache, tiny_data, capsys):
    """Was: a fresh run without validation left the earlier run's best.pt beside its own files."""
    out = tmp_path / "o"
    train(tiny(out, text_cache, max_steps=2), progress=False, datasets=tiny_data)  # validated: best.pt
    assert (out / "best.pt").is_file()
    capsys.readouterr()
    train(tiny(out, text_cache, max_steps=1, seed=1), progress=False, datasets=(tiny_data[0], None))
    err = capsys.readouterr().err
    assert f"output.dir '{out}' held an earlier run (latest.pt, best.pt, model.pt)" in err and "--resume" in err
    assert not (out / "best.pt").exists()
    assert read_checkpoint(out / "latest.pt")["step"] == read_checkpoint(out / "model.pt")["step"] == 1
    assert read_checkpoint(out / "previous_run" / "best.pt")["step"] == 2  # kept, out of the way
    assert [int(r["step"]) for r in read_log(out / "previous_run" / "log.csv")] == [1, 2]
    assert [int(r["step"]) for r in read_log(out / "log.csv")] == [1]


def _write_config(path, d) -> str:
    import yaml

    path.write_text(yaml.safe_dump(d))
    return str(path)


@pytest.mark.parametrize("case, args, message", [
    ("no_val", [], r"data\.val_seeds: .* has no held-out set.*give data\.val_seeds"),
    ("steps0", ["--steps", "0"], r"--steps: 0 must be a positive number of training steps"),
    ("seeds", ["--seeds", "0", "0"], r"--seeds: 0 given twice.*give distinct seeds"),
    ("variants", ["--variants", "full", "full"], r"--variants: full given twice"),
    ("neg_seed", ["--seeds", "-1"], r"--seeds: -1: expected an integer in \[0, 2\*\*31 - 1\]"),
])
def test_ablation_refuses_a_bad_request_before_training(tmp_path, text_cache, monkeypatch, capsys, case, args,
                                                        message):
    """Was: a TypeError (no val_seeds) or a TrainConfigError traceback (--steps 0) once the data was
    built, or two identical runs counted as two seeds (spread 0)."""
    import re

    from edepth_ros.training import report, trainer

    def no_data(*a, **kw):
        raise AssertionError("data built before the ablation request was checked")

    monkeypatch.setattr(trainer, "make_datasets", no_data)
    d = tiny_dict(tmp_path / "unused", text_cache)
    if case == "no_val":
        d["data"]["val_seeds"] = []
    config = _write_config(tmp_path / "c.yaml", d)
    argv = ["ablation", "--config", config, "--out", str(tmp_path / "abl")] + (
        args if "--variants" in args else args + ["--variants", "full"])
    assert report.main((argv + ["--steps", "2"]) if "--steps" not in args else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("report ablation: ") and "Traceback" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "abl").exists()


def test_ablation_on_a_kitti_config(tmp_path, kitti_dir, text_cache):
    """Was: a KeyError ('val_seeds') after every variant had trained: the held-out set is data.val_split."""
    import json

    from edepth_ros.training.report import ablation

    cfg = _kitti_sample_config(tmp_path, kitti_dir, text_cache, dict(max_steps=1), "unused")
    ablation(cfg, 1, tmp_path / "abl", ["no_text_vae"])
    saved = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert saved["heldout"] == {"data.val_split": str(tmp_path / "eigen_sample.txt")} and saved["heldout_seeds"] is None
    assert set(saved["metrics"]) == {"embodied_only", "no_text_vae"}


@pytest.mark.parametrize("section, key, value, message", [
    ("model", "arch", ["demo"], r"model\.arch: expected a non-empty string, got \['demo'\]"),
    ("text", "model", 5, r"text\.model: expected a string .* or null, got 5"),
    ("text", "cache_dir", ["a"], r"text\.cache_dir: expected a string"),
    ("model", "max_depth", 1e300, r"model\.max_depth: expected a positive number, at most 1000 \(metres"),
    ("model", "max_depth", [80], r"model\.max_depth: expected a positive number"),
    ("model", "input_size", [2 ** 20, 2 ** 20], r"model\.input_size: .* has an entry above 8192"),
    ("train", "workers", 10 ** 5, r"train\.workers: expected an integer >= 0, at most 256"),
    ("train", "lr", 1e300, r"train\.lr: expected a positive number, at most 10"),
    ("train", "batch_size", True, r"train\.batch_size: expected a positive integer"),
    ("data", "render_scale", 1e9, r"data\.render_scale: .*at most 8"),
    ("data", "frames_per_seed", 10 ** 9, r"data\.frames_per_seed: .*at most 100000"),
    ("output", "dir", ["runs/x"], r"output\.dir: expected a non-empty string"),
])
def test_config_values_of_the_wrong_type_or_size_name_the_key(tmp_path, text_cache, section, key, value, message):
    """Was: a TypeError from the model registry (a list arch), from pathlib (text.model: 5), a RuntimeError
    from torch (max_depth 1e300 overflows float32), or accepted (100000 worker processes, a folder "['a']")."""
    d = tiny_dict(tmp_path / "o", text_cache)
    d[section][key] = value
    with pytest.raises(TrainConfigError, match=message):
        TrainConfig.from_dict(d)


def _train_command(config, resume=False):
    import argparse

    from edepth_ros.commands import train as train_command

    try:
        return train_command.run(argparse.Namespace(config=config, resume=resume, output=None, max_steps=None,
                                                    no_progress=True))
    except KeyboardInterrupt:  # escaping, it would stop the whole test session, not fail this test
        pytest.fail("KeyboardInterrupt escaped `edepth train` (a traceback, exit status 130 from Python itself)")


@pytest.mark.parametrize("at_call, saved", [(2, True), (1, False)])
def test_ctrl_c_saves_latest_and_exits_130(tmp_path, text_cache, tiny_data, monkeypatch, capsys, at_call, saved):
    """Was: a KeyboardInterrupt traceback, and the steps since the last checkpoint lost."""
    from edepth_ros.training import trainer

    compute, calls = trainer.compute_losses, [0]

    def interrupted(*a, **kw):
        calls[0] += 1
        if calls[0] == at_call:
            raise KeyboardInterrupt
        return compute(*a, **kw)

    monkeypatch.setattr(trainer, "compute_losses", interrupted)
    monkeypatch.setattr(trainer, "make_datasets", lambda cfg, progress=True: tiny_data)
    out = tmp_path / "i"
    config = _write_config(tmp_path / "c.yaml", tiny_dict(out, text_cache, max_steps=4, checkpoint_every=100))
    assert _train_command(config) == 130
    err = capsys.readouterr().err.strip().splitlines()
    if not saved:
        assert err == [f"edepth train: interrupted before the first step; nothing saved in '{out}'"]
        assert not (out / "latest.pt").exists()
        return
    assert err == [f"edepth train: interrupted at step 1; '{out / 'latest.pt'}' saved; resume with --resume"]
    assert_latest_is_finite_step(out / "latest.pt", 1)
    monkeypatch.setattr(trainer, "compute_losses", compute)
    assert _train_command(config, resume=True) == 0
    assert read_checkpoint(out / "latest.pt")["step"] == 4
    assert [int(r["step"]) for r in read_log(out / "log.csv")] == [1, 2, 3, 4]


def test_ctrl_c_during_the_optimiser_step_saves_a_whole_step(tmp_path, text_cache, tiny_data, monkeypatch, capsys):
    """Was: Ctrl-C inside (or just after) AdamW's update saved step 2's weights as step 1, so --resume
    repeated step 2 and ended with other weights than an uninterrupted run."""
    import signal

    over = dict(max_steps=4, checkpoint_every=100)
    train(tiny(tmp_path / "straight", text_cache, **over), progress=False, datasets=tiny_data)
    step, calls = torch.optim.AdamW.step, [0]

    def interrupted_step(self, *a, **kw):
        calls[0] += 1
        out = step(self, *a, **kw)
        if calls[0] == 2:  # the weights have moved; the interrupt lands before the trainer counts it
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", interrupted_step)
    monkeypatch.setattr(trainer_module(), "make_datasets", lambda cfg, progress=True: tiny_data)
    out = tmp_path / "i"
    config = _write_config(tmp_path / "c.yaml", tiny_dict(out, text_cache, **over))
    assert _train_command(config) == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        f"edepth train: interrupted at step 2; '{out / 'latest.pt'}' saved; resume with --resume"]
    assert_latest_is_finite_step(out / "latest.pt", 2)
    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    assert _train_command(config, resume=True) == 0
    assert [int(r["step"]) for r in read_log(out / "log.csv")] == [1, 2, 3, 4]
    a = read_checkpoint(tmp_path / "straight" / "latest.pt")["model"]
    b = read_checkpoint(out / "latest.pt")["model"]
    for k, v in a.items():
        torch.testing.assert_close(b[k], v, rtol=1e-4, atol=1e-5, msg=f"resumed run differs at {k}")


def trainer_module():
    from edepth_ros.training import trainer

    return trainer


def test_training_gets_the_nodes_embodied_depth_on_a_partly_covered_image():
    """A real camera's training frames can be partly covered or glared: the embodied depth the
    network learns from must be the one the node gives it (blind road has none), not plane depth."""
    from edepth_ros.backends import EmbodiedOnlyBackend
    from edepth_ros.frame import Frame
    from edepth_ros.model_io import pack_embodied
    from edepth_ros.pipeline import DepthPipeline
    from edepth_ros.synthetic import SceneGenerator
    from edepth_ros.training.datasets import BaseFrame, DepthDataset

    scene = SceneGenerator(5, width=320, height=96).frame(0, lidar=False)
    rgb = scene.rgb.copy()
    rgb[48:, :160] = 0  # a hand over the lower left of the lens

    class OneFrame(DepthDataset):
        def __len__(self):
            return 1

        def base(self, i):
            return BaseFrame(rgb, scene.labels, scene.depth.astype(np.float32), scene.camera, scene.plane)

    sample = OneFrame((96, 320))[0]
    node = DepthPipeline(EmbodiedOnlyBackend()).process(Frame(rgb, scene.camera, scene.plane, labels=scene.labels))
    assert np.array_equal(sample["embodied"], pack_embodied(node.embodied))
    road = scene.labels[48:, :160] == 0
    assert road.mean() > 0.3 and (sample["embodied"][:, 48:, :160][:, road] == 0).all()


def test_synthetic_frames_past_the_generators_last_index_are_named_by_the_config_keys():
    """Was: a SyntheticError about 'SceneGenerator.frame index' from the renderer, naming no config key."""
    from edepth_ros.training.datasets import DatasetError, SyntheticDataset

    with pytest.raises(DatasetError, match=r"data.frames_per_seed 2 x data.frame_stride 80000: the last frame index "
                                           r"80000 is past the scene generator's 72000"):
        SyntheticDataset([0], 2, (16, 48), frame_stride=80000, progress=False)
    assert len(SyntheticDataset([0], 2, (16, 48), frame_stride=72000, progress=False)) == 2
