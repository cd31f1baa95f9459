"""`edepth export`: the real network to one fused ONNX graph, text latent baked in, checked, written atomically."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edepth_ros.model_io import INPUT_NAMES, OUTPUT_NAMES, read_sidecar, sha256_file

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edepth_ros.export import (ExportError, example_inputs, export_onnx, fp16_range_check,  # noqa: E402
                               latent_for_texts)
from edepth_ros.network import DeployNet, build_model, save_checkpoint  # noqa: E402

H, W = 96, 320
TEXT = "a road 10.5 m ahead; a car 12.4 m ahead, the 2nd closest object; buildings on both sides"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "demo.pt", build_model("demo"))


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "demo.onnx"
    report = export_onnx(checkpoint, H, W, TEXT, out)
    return out, report


def test_graph_contract_and_sidecar(exported, checkpoint):
    out, report = exported
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    ins = {i.name: i for i in model.graph.input}
    assert tuple(ins) == INPUT_NAMES and tuple(o.name for o in model.graph.output) == OUTPUT_NAMES
    assert ins["rgb"].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert ins["embodied"].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_value for d in ins["rgb"].type.tensor_type.shape.dim]
    assert dims == [1, H, W, 3]  # static by default
    # TensorRT takes UINT8 only as an input cast straight to float
    assert [n.op_type for n in model.graph.node if "rgb" in n.input] == ["Cast"]
    # the text encoder and the text VAE are not in the graph: only their result is
    assert not [i.name for i in model.graph.initializer if "text_vae" in i.name]
    spec = read_sidecar(out)
    assert (spec.height, spec.width, spec.max_depth) == (H, W, 80.0)
    assert spec.text == TEXT and len(spec.text_latent["mu"]) == 32
    # what embedded it: this checkpoint (saved outside the trainer) records no encoder, so the default
    assert spec.parity["text_encoder"] == {"encoder": "sentence-transformers", "model": None}
    assert spec.onnx_sha256 == sha256_file(out) == report.onnx_sha256
    assert spec.checkpoint_sha256 == sha256_file(checkpoint)
    assert spec.config["name"] == "demo" and spec.config["latent_dim"] == 32
    assert spec.normalisation["mean"][0] == pytest.approx(0.485 * 255)
    assert spec.parity["ok"] and spec.parity["fp16"]["ok"]
    simp = spec.parity["simplified"]  # static shape arithmetic folded away
    assert simp["nodes_after"] < simp["nodes_before"] and "Mod" not in spec.parity["ops"]
    assert not list(out.parent.glob(".*.tmp"))  # no temporary files left behind
    import os

    umask = os.umask(0)
    os.umask(umask)
    for f in (out, out.with_suffix(".json")):  # not mkstemp's 0600: the node may run as another user
        assert f.stat().st_mode & 0o777 == 0o666 & ~umask


def test_sidecar_keeps_the_nested_training_config():
    from edepth_ros.export import _jsonable

    meta = {"config": {"data": {"augment": {"scale": (0.67, 1.0), "flip": 0.5}}}, "state": torch.zeros(2)}
    assert _jsonable(meta) == {"config": {"data": {"augment": {"scale": [0.67, 1.0], "flip": 0.5}}}}


def test_model_folder_moves_whole(checkpoint, tmp_path):
    """The sidecar names its checkpoint relative to the model's folder: a committed or copied
    folder (models/demo/) still finds model.pt wherever the repository is cloned."""
    import shutil

    from edepth_ros.backends.torch_backend import TorchBackend

    src = tmp_path / "a" / "demo"
    src.mkdir(parents=True)
    shutil.copy(checkpoint, src / "model.pt")
    export_onnx(src / "model.pt", H, W, TEXT, src / "model.onnx", check_fp16=False)
    assert read_sidecar(src / "model.onnx").checkpoint == "model.pt"
    moved = tmp_path / "b" / "demo"
    shutil.copytree(src, moved)
    shutil.rmtree(src)
    backend = TorchBackend.from_file(moved / "model.onnx")
    rgb, emb = example_inputs(H, W)
    depth, conf = backend.infer(rgb[0], emb[0])
    assert depth.shape[-2:] == (H, W) and np.isfinite(depth).all()


def test_retrained_checkpoint_makes_the_export_stale(checkpoint, tmp_path, caplog):
    """Retraining rewrites model.pt but not model.onnx: the ONNX backend warns, the demo refuses."""
    import logging
    import shutil

    from edepth_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from edepth_ros.demo import DemoError, DemoOptions, _choose_model
    from edepth_ros.model_io import stale_export

    shutil.copy(checkpoint, tmp_path / "model.pt")
    out = tmp_path / "model.onnx"
    export_onnx(tmp_path / "model.pt", H, W, TEXT, out, check_fp16=False)
    assert stale_export(read_sidecar(out), out) is None
    assert _choose_model(DemoOptions(model=str(out)))[1] == str(out)
    torch.manual_seed(2)  # "retrained": another network under the same name
    save_checkpoint(tmp_path / "model.pt", build_model("demo"))
    msg = stale_export(read_sidecar(out), out)
    assert msg and "stale" in msg and "edepth export --checkpoint" in msg and f"--out {out}" in msg
    with caplog.at_level(logging.WARNING):
        OnnxRuntimeBackend(out, threads=1)
    assert any("stale" in r.getMessage() for r in caplog.records)
    with pytest.raises(DemoError, match="stale"):
        _choose_model(DemoOptions(model=str(out)))
    (tmp_path / "model.pt").unlink()  # an engine shipped without its checkpoint is not stale
    assert stale_export(read_sidecar(out), out) is None


def test_parity_and_fp16_figures(exported):
    _, report = exported
    p = report.parity
    assert p["depth_max_abs"] <= 1e-3 * 80.0 and p["confidence_max_abs"] < 1e-3
    assert 0 < report.fp16["max_abs"] < 65504 and report.fp16["tensors_checked"] > 100


def test_summary_says_when_the_fp16_check_was_skipped():
    """--no-fp16-check gives fp16 {"ok": None}: the summary must not report an overflow it never looked for."""
    from pathlib import Path

    from edepth_ros.export import ExportReport

    parity = {"depth_max_abs": 0.01, "depth_limit": 0.08, "depth_median_rel": 1e-5, "confidence_max_abs": 1e-4}
    skipped = ExportReport(Path("m.onnx"), Path("m.json"), parity, {"ok": None}).summary()
    assert "FP16 check skipped" in skipped and "OVERFLOW" not in skipped and "nan" not in skipped
    ok = ExportReport(Path("m.onnx"), Path("m.json"), parity, {"ok": True, "max_abs": 812.0}).summary()
    assert "FP16 largest activation 812 (ok)" in ok
    bad = ExportReport(Path("m.onnx"), Path("m.json"), parity, {"ok": False, "max_abs": 7e4}).summary()
    assert "OVERFLOW" in bad


def test_text_latent_is_baked_in(exported, checkpoint):
    """The graph's output equals DeployNet with the text's (mu, sigma), and differs from another text's."""
    from edepth_ros.backends.torch_backend import load_network

    out, _ = exported
    net, _ = load_network(checkpoint)
    mu, sigma = latent_for_texts(net, [TEXT])
    assert np.allclose(read_sidecar(out).text_latent["mu"], mu, atol=1e-6)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rgb, emb = example_inputs(H, W, seed=3)
    got = sess.run(None, {"rgb": rgb, "embodied": emb})[0]
    with torch.inference_mode():
        same = DeployNet(net, mu, sigma)(torch.from_numpy(rgb), torch.from_numpy(emb))[0].numpy()
        mu2, sigma2 = latent_for_texts(net, ["an empty parking lot at night, nothing within 50 m"])
        other = DeployNet(net, mu2, sigma2)(torch.from_numpy(rgb), torch.from_numpy(emb))[0].numpy()
    assert np.abs(got - same).max() <= 1e-3 * 80.0
    assert np.abs(other - same).max() > 10 * np.abs(got - same).max()


def test_dynamic_batch(checkpoint, tmp_path):
    out = tmp_path / "dyn.onnx"
    report = export_onnx(checkpoint, H, W, None, out, dynamic_batch=True, check_fp16=False)
    assert report.parity["samples"] == 3  # includes a batch of 2
    assert read_sidecar(out).inputs["rgb"]["shape"][0] == "batch"
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rgb, emb = example_inputs(H, W, batch=3)
    depth, conf = sess.run(None, {"rgb": rgb, "embodied": emb})
    assert depth.shape == conf.shape == (3, 1, H, W)


def test_failed_check_leaves_nothing(checkpoint, tmp_path, monkeypatch):
    import edepth_ros.export as ex

    out = tmp_path / "bad.onnx"
    out.write_bytes(b"previous good model")
    monkeypatch.setattr(ex, "parity_check", lambda *a, **k: {"ok": False, "depth_max_abs": 9.0, "depth_limit": 0.08})
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx(checkpoint, H, W, None, out, check_fp16=False)
    assert out.read_bytes() == b"previous good model"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


def test_fp16_check_catches_overflow(tmp_path):
    class Overflowing(torch.nn.Module):
        def forward(self, x):
            return torch.exp(x * 4.0) + 1.0  # exp(4 * 255) overflows FP16 (and FP32)

    path = tmp_path / "exp.onnx"
    torch.onnx.export(Overflowing(), (torch.ones(1, 4),), str(path), input_names=["x"], dynamo=False)
    res = fp16_range_check(path, {"x": np.full((1, 4), 5.0, np.float32)})
    assert not res["ok"] and res["exp_overflow"] and res["overflow"][0]["max_abs"] > 65504


def test_bad_arguments(checkpoint, tmp_path):
    with pytest.raises(ExportError, match="multiples of 32"):
        export_onnx(checkpoint, 100, W, None, tmp_path / "m.onnx")
    with pytest.raises(ExportError, match=r"\.onnx"):
        export_onnx(checkpoint, H, W, None, tmp_path / "m.bin")
    from edepth_ros.model_io import ModelFileError

    missing = tmp_path / "nope.pt"
    with pytest.raises(ModelFileError, match="nope.pt"):
        export_onnx(missing, H, W, None, tmp_path / "m.onnx")
    for opset in (7, 13, 99):  # was a SymbolicValueError / RuntimeError traceback from torch.onnx
        with pytest.raises(ExportError, match=rf"--opset {opset}: .* at opsets 14-\d+"):
            export_onnx(checkpoint, H, W, None, tmp_path / "m.onnx", opset=opset)


def test_lowest_accepted_opset_exports(checkpoint, tmp_path):
    """Opset 14, the lowest the range check lets through, really exports and matches PyTorch."""
    from edepth_ros.export import MIN_OPSET

    report = export_onnx(checkpoint, H, W, None, tmp_path / "m14.onnx", opset=MIN_OPSET, check_fp16=False)
    assert report.parity["ok"] and read_sidecar(tmp_path / "m14.onnx").opset == MIN_OPSET == 14


@pytest.mark.slow
def test_cli(checkpoint, tmp_path, project_dir):
    texts = tmp_path / "texts.txt"
    texts.write_text("a car 8 m ahead\n# comment\na wall 20 m ahead\n")
    out = tmp_path / "cli.onnx"
    cmd = [sys.executable, "-m", "edepth_ros.cli", "export", "--checkpoint", str(checkpoint), "--height", str(H),
           "--width", str(W), "--text-from", str(texts), "--out", str(out), "--no-fp16-check",
           "--json", str(tmp_path / "report.json")]
    env = {"PYTHONPATH": str(project_dir), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "trtexec --onnx=" in res.stdout
    assert read_sidecar(out).text == "a car 8 m ahead | a wall 20 m ahead"
    assert json.loads((tmp_path / "report.json").read_text())["parity"]["ok"]
    bad = subprocess.run(cmd[:6] + ["--height", "100", "--width", str(W), "--out", str(tmp_path / "x.onnx")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "multiples of 32" in bad.stderr
    lone = subprocess.run(cmd[:10] + ["--text-model", str(tmp_path), "--out", str(tmp_path / "x.onnx")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert lone.returncode == 2 and "--text-encoder/--text-model: only used to embed --text" in lone.stderr


@pytest.mark.slow
def test_realtime_config_parity(tmp_path):
    """The vehicle model at 192 x 640 meets the parity target, and ONNX Runtime runs every conv and
    every upsampling of it in its blocked CPU layout (the 19-channel full-resolution conv did not)."""
    torch.manual_seed(0)
    out = tmp_path / "realtime.onnx"
    report = export_onnx(None, 192, 640, None, out, net=build_model("realtime"))
    assert report.parity["depth_max_abs"] <= 1e-3 * 80.0 and report.fp16["ok"]
    ops = _ort_optimized_ops(out, tmp_path)
    if not any(domain.endswith("nchwc") for domain, _ in ops):
        pytest.skip("this CPU has no blocked (NCHWc) kernels in ONNX Runtime (not x86-64 with AVX2)")
    assert ops.get(("", "Conv"), 0) == 0 and ops.get(("", "Resize"), 0) == 0, ops


def _ort_optimized_ops(path, tmp_path) -> dict:
    """(domain, op) -> count in the graph ONNX Runtime actually runs on this CPU (ORT_ENABLE_ALL)."""
    from collections import Counter

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.optimized_model_filepath = str(tmp_path / f"{path.stem}.ort.onnx")
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return dict(Counter((n.domain, n.op_type) for n in onnx.load(so.optimized_model_filepath).graph.node))


def test_cpu_rewrites_are_exact_and_keep_the_blocked_layout(checkpoint, exported, tmp_path):
    """onnx_passes: the rewritten graph gives the same outputs as the exporter's, and ONNX Runtime's
    CPU layout pass now takes its upsampling (blocked Upsample instead of the generic Resize)."""
    out, report = exported
    plain = tmp_path / "plain.onnx"
    export_onnx(checkpoint, H, W, TEXT, plain, check_fp16=False, cpu_rewrites=False)
    counts = read_sidecar(out).parity["cpu_rewrites"]
    assert counts["split_concat_convs"] == 1  # decoder head 8 + 3 embodied channels = 11
    assert counts["group_norm_affine_bn"] > 0 and counts["group_norm_affine_conv"] == 5
    assert counts["resize_scales"] == 5 and read_sidecar(plain).parity["cpu_rewrites"] is None
    assert counts["phase_split_convs"] == 1  # the 3-channel heads at full resolution
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "BatchNormalization" in ops and "BatchNormalization" not in {
        n.op_type for n in onnx.load(str(plain)).graph.node}
    a = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"])
    for seed in (3, 4):
        rgb, emb = example_inputs(H, W, seed=seed)
        (da, ca), (db, cb) = (s.run(None, {"rgb": rgb, "embodied": emb}) for s in (a, b))
        assert np.abs(da - db).max() <= 1e-5 * 80.0 and np.abs(ca - cb).max() < 1e-5
    optimized = _ort_optimized_ops(out, tmp_path)
    if any(domain.endswith("nchwc") for domain, _ in optimized):
        assert optimized.get(("com.microsoft.nchwc", "Upsample"), 0) == 5
        assert optimized.get(("", "Resize"), 0) == 0 and optimized.get(("", "Conv"), 0) == 0
        plain_ops = _ort_optimized_ops(plain, tmp_path)
        assert plain_ops.get(("", "Resize"), 0) == 5
        # the heads' Clip still fuses into their (phase) conv: no Clip left over that the plain graph fused
        assert optimized.get(("", "DepthToSpace"), 0) == 1 and plain_ops.get(("", "DepthToSpace"), 0) == 0
        assert optimized.get(("", "Clip"), 0) == plain_ops.get(("", "Clip"), 0)


def test_cpu_rewrite_rules(tmp_path):
    """The rewrites fire only where they are exact and useful: a concatenation used once whose channel
    count ONNX Runtime cannot block; whole-number resize ratios; GroupNorm's exported affine."""
    from onnx import TensorProto, helper, numpy_helper

    from edepth_ros.onnx_passes import optimize_for_cpu

    rng = np.random.default_rng(0)

    def model(cin_a, cin_b, extra_use=False):
        w = numpy_helper.from_array(rng.standard_normal((16, cin_a + cin_b, 3, 3)).astype(np.float32), "w")
        nodes = [helper.make_node("Concat", ["a", "b"], ["cat"], axis=1),
                 helper.make_node("Conv", ["cat", "w"], ["conv"], pads=[1, 1, 1, 1]),
                 helper.make_node("Resize", ["conv", "", "", "sizes"], ["y"], mode="linear",
                                  coordinate_transformation_mode="half_pixel")]
        outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 16, 24])]
        if extra_use:
            outs.append(helper.make_tensor_value_info("cat", TensorProto.FLOAT, [1, cin_a + cin_b, 8, 12]))
        g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, cin_a, 8, 12]),
                                          helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, cin_b, 8, 12])],
                              outs, [w, numpy_helper.from_array(np.array([1, 16, 16, 24], np.int64), "sizes")])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)

    feeds = lambda ca, cb: {"a": rng.standard_normal((1, ca, 8, 12)).astype(np.float32),  # noqa: E731
                            "b": rng.standard_normal((1, cb, 8, 12)).astype(np.float32)}
    for (ca, cb, extra), split in {(16, 3, False): 1, (16, 4, False): 0, (16, 3, True): 0, (13, 6, False): 0}.items():
        m = model(ca, cb, extra)
        before = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        counts = optimize_for_cpu(m)
        onnx.checker.check_model(m, full_check=True)
        assert counts["split_concat_convs"] == split and counts["resize_scales"] == 1, (ca, cb, extra, counts)
        assert counts["group_norm_affine_bn"] == counts["group_norm_affine_conv"] == 0
        after = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        f = feeds(ca, cb)
        assert np.allclose(before.run(["y"], f)[0], after.run(["y"], f)[0], rtol=1e-5, atol=1e-5)
        assert not [i.name for i in m.graph.initializer if i.name == "sizes"]  # dropped once unused


def test_phase_split_conv_rule():
    """phase_split_convs: a stride-1 conv with few output channels on an even-sized input becomes the
    stride-2 conv of its four output phases + DepthToSpace, with the same outputs; its activation moves
    before the DepthToSpace. Not for many output channels, odd sizes, strides, or a shared output."""
    from onnx import TensorProto, helper, numpy_helper

    from edepth_ros.onnx_passes import optimize_for_cpu

    rng = np.random.default_rng(0)

    def model(cout, h, w, stride=1, clip=True, shared=False, kernel=3):
        pad = (kernel - 1) // 2
        oh, ow = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
        inits = [numpy_helper.from_array(rng.standard_normal((cout, 16, kernel, kernel)).astype(np.float32), "w"),
                 numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), "b"),
                 numpy_helper.from_array(np.array(-0.5, np.float32), "lo"),
                 numpy_helper.from_array(np.array(0.5, np.float32), "hi")]
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["conv"], pads=[pad] * 4, strides=[stride] * 2)]
        nodes.append(helper.make_node("Clip", ["conv", "lo", "hi"], ["y"]) if clip else
                     helper.make_node("Identity", ["conv"], ["y"]))
        outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, oh, ow])]
        if shared:
            outs.append(helper.make_tensor_value_info("conv", TensorProto.FLOAT, [1, cout, oh, ow]))
        g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, h, w])],
                              outs, inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)

    cases = {(3, 8, 12, 1, True, False, 3): 1, (1, 8, 12, 1, False, False, 3): 1, (3, 8, 12, 1, True, True, 3): 1,
             (16, 8, 12, 1, True, False, 3): 0, (3, 7, 12, 1, True, False, 3): 0, (3, 8, 12, 2, True, False, 3): 0,
             (3, 8, 12, 1, True, False, 1): 0}
    for args, fired in cases.items():
        m = model(*args)
        before = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        counts = optimize_for_cpu(m)
        onnx.checker.check_model(m, full_check=True)
        assert counts["phase_split_convs"] == fired, (args, counts)
        ops = [n.op_type for n in m.graph.node]
        assert ("DepthToSpace" in ops) == bool(fired), (args, ops)
        if fired and args[4] and not args[5]:  # the Clip now runs on the phases, before the DepthToSpace
            assert ops == ["Conv", "Clip", "DepthToSpace"], ops
        after = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        x = {"x": rng.standard_normal((1, 16, args[1], args[2])).astype(np.float32)}
        names = [o.name for o in m.graph.output]
        for a, b in zip(before.run(names, x), after.run(names, x)):
            assert a.shape == b.shape and np.allclose(a, b, rtol=1e-5, atol=1e-5), args


def test_text_from_synthetic_frames(checkpoint):
    """--text-from synthetic:N: training-style descriptions of generated frames, pooled per frame."""
    from edepth_ros.backends.torch_backend import load_network
    from edepth_ros.export import read_texts

    texts = read_texts("synthetic:2")
    assert len(texts) == 2 and all(isinstance(t, list) and " m " in " ".join(t) for t in texts)
    net, _ = load_network(checkpoint)
    mu, sigma = latent_for_texts(net, texts)
    assert mu.shape == sigma.shape == (32,) and np.isfinite(mu).all() and (sigma > 0).all()
    with pytest.raises(ExportError, match="synthetic"):
        read_texts("kitti-nonexistent")


@pytest.mark.slow
def test_dynamo_exporter(checkpoint, tmp_path):
    """torch.export-based exporter: same contract, one file (no external data), parity met."""
    out = tmp_path / "dynamo.onnx"
    report = export_onnx(checkpoint, H, W, None, out, exporter="dynamo", check_fp16=False)
    assert report.parity["ok"] and read_sidecar(out).opset >= 18
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dynamo.json", "dynamo.onnx"]


def test_out_whose_sidecar_is_a_folder_is_refused_before_the_export(checkpoint, tmp_path):
    """models/m.json a folder: the whole export and its checks ran, then IsADirectoryError (exit 1)."""
    (tmp_path / "m.json").mkdir()
    with pytest.raises(ExportError, match=r"sidecar .*m\.json is a folder"):
        export_onnx(checkpoint, H, W, None, tmp_path / "m.onnx", check_fp16=False)
    (tmp_path / "d.onnx").mkdir()
    with pytest.raises(ExportError, match=r"--out .*d\.onnx: a folder"):
        export_onnx(checkpoint, H, W, None, tmp_path / "d.onnx", check_fp16=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.onnx", "m.json"]  # nothing written


def test_cli_refuses_json_report_over_the_model(checkpoint, tmp_path, capsys):
    """`--json` = `--out` wrote the report over the model just exported: exit 0, a model no backend loads."""
    import argparse

    from edepth_ros.commands import export as cmd

    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    out = tmp_path / "m.onnx"
    for json_arg in (str(out), str(tmp_path / "." / "m.onnx")):
        args = parser.parse_args(["--checkpoint", str(checkpoint), "--height", str(H), "--width", str(W),
                                  "--out", str(out), "--json", json_arg, "--no-fp16-check"])
        assert cmd.run(args) == 2
        assert "is the --out model file itself" in capsys.readouterr().err
    assert not out.exists()
