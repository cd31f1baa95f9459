"""Backends behind one interface: embodied-only, ONNX Runtime (real sessions) and PyTorch eager."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from edepth_ros.backends import BackendError, EmbodiedOnlyBackend, available_backends, create_backend
from edepth_ros.model_io import ModelFileError, ModelInputError, pack_embodied, sidecar_path

torch = pytest.importorskip("torch")
H, W = 96, 320


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The real network (demo config, random init) saved as a checkpoint and exported to ONNX."""
    from edepth_ros.export import export_onnx
    from edepth_ros.network import build_model, save_checkpoint

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("model")
    ckpt = save_checkpoint(d / "demo.pt", build_model("demo"))
    onnx_path = d / "demo.onnx"
    export_onnx(ckpt, H, W, None, onnx_path, check_fp16=False)
    return ckpt, onnx_path


def inputs(seed=0, h=H, w=W):
    from edepth_ros.export import example_inputs

    rgb, emb = example_inputs(h, w, seed=seed)
    return rgb[0], emb[0]


def test_embodied_only_returns_embodied():
    depth = np.full((4, 5), np.nan, np.float32)
    depth[2:] = [[3.0], [120.0]]
    conf = np.full((4, 5), 0.7, np.float32)
    backend = EmbodiedOnlyBackend(max_depth=80.0)
    d, c = backend.infer(np.zeros((4, 5, 3), np.uint8), pack_embodied(depth, conf))
    assert np.isnan(d[:2]).all() and (c[:2] == 0).all()  # no estimate: NaN, confidence 0
    assert np.allclose(d[2], 3.0) and np.allclose(c[2:], 0.7)
    assert np.allclose(d[3], 80.0)  # capped at max depth


def test_bad_tensors_are_named():
    backend = EmbodiedOnlyBackend(input_size=(4, 5))
    rgb, emb = np.zeros((4, 5, 3), np.uint8), np.zeros((2, 4, 5), np.float32)
    with pytest.raises(ModelInputError, match="'rgb'.*uint8"):
        backend.infer(rgb.astype(np.float32), emb)
    with pytest.raises(ModelInputError, match="'rgb'.*4x5"):
        backend.infer(np.zeros((8, 5, 3), np.uint8), np.zeros((2, 8, 5), np.float32))
    with pytest.raises(ModelInputError, match="'embodied'"):
        backend.infer(rgb, emb[:1])
    with pytest.raises(ModelInputError, match="'embodied'.*NaN"):
        backend.infer(rgb, np.full((2, 4, 5), np.nan, np.float32))


def test_create_backend_choices(exported, tmp_path):
    ckpt, onnx_path = exported
    assert isinstance(create_backend("auto", None), EmbodiedOnlyBackend)
    auto = create_backend("auto", str(onnx_path), threads=1)
    assert auto.name.startswith("onnxruntime") and auto.input_size == (H, W)
    assert create_backend("auto", str(ckpt), threads=1).name.startswith("torch")
    assert available_backends()["onnxruntime-cpu"] is True
    with pytest.raises(BackendError, match="not one of"):
        create_backend("openvino", str(onnx_path))
    with pytest.raises(BackendError, match="not found"):
        create_backend("auto", str(tmp_path / "missing.onnx"))
    with pytest.raises(BackendError, match="needs a model file"):
        create_backend("onnxruntime", None)


def test_onnxruntime_matches_torch(exported):
    """Same graph, two runtimes: depth within 1e-3 x max depth, confidence within 1e-3."""
    ckpt, onnx_path = exported
    ort_b = create_backend("onnxruntime-cpu", str(onnx_path), threads=1)
    torch_b = create_backend("torch", str(onnx_path), threads=1)  # rebuilt from the sidecar's checkpoint + latent
    for seed in (0, 5):
        rgb, emb = inputs(seed)
        d1, c1 = ort_b.infer(rgb, emb)
        d2, c2 = torch_b.infer(rgb, emb)
        assert d1.shape == (H, W) and d1.dtype == np.float32
        assert np.isfinite(d1).all() and (d1 > 0).all() and (d1 <= ort_b.max_depth).all()
        assert np.abs(d1 - d2).max() <= 1e-3 * ort_b.max_depth
        assert np.abs(c1 - c2).max() <= 1e-3
    # the output follows the input: a different embodied depth changes the prediction
    rgb, emb = inputs(0)
    d_a, _ = ort_b.infer(rgb, emb)
    d_b, _ = ort_b.infer(rgb, np.zeros_like(emb))
    assert np.abs(d_a - d_b).max() > 1e-4


def test_static_batch_is_enforced(exported):
    _, onnx_path = exported
    b = create_backend("onnxruntime-cpu", str(onnx_path), threads=1)
    rgb, emb = inputs()
    with pytest.raises(ModelInputError, match="batch 1.*--dynamic-batch"):
        b.infer_batch(np.stack([rgb, rgb]), np.stack([emb, emb]))


@pytest.mark.parametrize("kind", ["onnxruntime-cpu", "torch"])
def test_infer_batch_checks_its_inputs_as_infer_does(exported, kind):
    """infer_batch skipped every check: NaN in a later frame or row gave an all-NaN depth map, a batch
    mismatch failed deep inside ONNX Runtime, torch took float64 silently."""
    _, onnx_path = exported
    b = create_backend(kind, str(onnx_path), threads=1)
    rgb, emb = inputs()
    bad = emb.copy()
    bad[:, H // 2:] = np.nan
    for args, match in (((rgb[None], bad[None]), "'embodied': contains NaN"),
                        ((rgb[None], emb[None].astype(np.float64)), "'embodied': expected float32"),
                        ((rgb[None].astype(np.float32), emb[None]), "'rgb': expected uint8"),
                        ((rgb, emb), "'rgb': infer_batch takes a batch"),
                        ((np.stack([rgb, rgb]), np.stack([emb, emb, emb])), "batch 2 and 3 differ")):
        with pytest.raises(ModelInputError, match=match):
            b.infer_batch(*args)
    depth, _ = b.infer_batch(rgb[None], emb[None])
    assert depth.shape == (1, 1, H, W) and np.isfinite(depth).all()


def test_corrupt_model_file_is_named(exported, tmp_path):
    _, onnx_path = exported
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(onnx_path.read_bytes()[:5000])  # truncated download
    shutil.copy(sidecar_path(onnx_path), sidecar_path(bad))
    with pytest.raises(ModelFileError, match="bad.onnx"):
        create_backend("onnxruntime-cpu", str(bad))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00" * 64)
    shutil.copy(sidecar_path(onnx_path), sidecar_path(garbage))
    with pytest.raises(ModelFileError, match="garbage.onnx"):
        create_backend("onnxruntime-cpu", str(garbage))


def test_sidecar_mismatch_and_absence(exported, tmp_path):
    _, onnx_path = exported
    model = tmp_path / "m.onnx"
    shutil.copy(onnx_path, model)
    with pytest.raises(ModelFileError, match="sidecar JSON.*not found"):
        create_backend("onnxruntime-cpu", str(model))
    side = json.loads(sidecar_path(onnx_path).read_text())
    other = json.loads(json.dumps(side))  # the sidecar of another export: 192 x 640 throughout
    other.update(height=192, width=640)
    other["inputs"]["rgb"]["shape"] = [1, 192, 640, 3]
    other["inputs"]["embodied"]["shape"] = [1, 2, 192, 640]
    sidecar_path(model).write_text(json.dumps(other))
    with pytest.raises(ModelFileError, match="'rgb'.*sidecar says"):
        create_backend("onnxruntime-cpu", str(model))
    side["inputs"] = {"image": side["inputs"]["rgb"], "embodied": side["inputs"]["embodied"]}
    sidecar_path(model).write_text(json.dumps(side))
    with pytest.raises(ModelFileError, match="field 'inputs' lacks tensor 'rgb'"):
        create_backend("onnxruntime-cpu", str(model))
    sidecar_path(model).write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        create_backend("onnxruntime-cpu", str(model))


@pytest.mark.parametrize("edit, message", [
    (dict(height=192, width=640), r"height x width 192 x 640 differs from inputs.rgb.shape"),
    (dict(max_depth=10.0), r"max_depth 10.0 differs from config.max_depth"),
])
def test_sidecar_that_disagrees_with_itself_is_refused(exported, tmp_path, edit, message):
    """An edited sidecar whose fields contradict each other is refused by every backend reading
    it, before a model runs at another size or caps all depth at a wrong range."""
    _, onnx_path = exported
    model = tmp_path / "m.onnx"
    shutil.copy(onnx_path, model)
    side = json.loads(sidecar_path(onnx_path).read_text())
    side.update(edit)
    sidecar_path(model).write_text(json.dumps(side))
    for backend in ("onnxruntime-cpu", "torch"):
        with pytest.raises(ModelFileError, match=message):
            create_backend(backend, str(model))


def test_corrupt_checkpoint_is_named(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match="broken.pt"):
        create_backend("torch", str(bad))


def test_torch_backend_from_checkpoint_with_text(exported):
    """A .pt with a deployment text: the text's latent replaces the training latent (different output)."""
    ckpt, _ = exported
    plain = create_backend("torch", str(ckpt), threads=1)
    texted = create_backend("torch", str(ckpt), threads=1, text="a truck 6.0 m ahead, the closest object")
    rgb, emb = inputs(2)
    d_plain, _ = plain.infer(rgb, emb)
    d_text, _ = texted.infer(rgb, emb)
    assert np.isfinite(d_text).all() and np.abs(d_plain - d_text).max() > 1e-4
    assert not torch.equal(plain.module.mu, texted.module.mu)


def test_bench_model_json(tmp_path):
    """`edepth bench model` measures ONNX Runtime and PyTorch in one run and writes the JSON report."""
    import argparse

    from edepth_ros.bench import model as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    out = tmp_path / "bench.json"
    args = parser.parse_args(["--config", "demo", "--height", "96", "--width", "320", "--iters", "2",
                              "--warmup", "1", "--backend", "embodied", "--no-peer-flops", "--json", str(out),
                              "--png", str(tmp_path / "bench.png")])
    assert bench.run(args) == 0
    report = json.loads(out.read_text())
    for kind in ("onnxruntime", "torch", "embodied"):
        r = report["results"][kind]
        assert 0 < r["median_ms"] <= r["p95_ms"] and r["peak_rss_mb"] > 0
    assert report["speedup_onnxruntime_vs_torch"] == pytest.approx(
        report["results"]["torch"]["median_ms"] / report["results"]["onnxruntime"]["median_ms"])
    assert report["gflops"] > 0.1 and report["parity"]["ok"]
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
    # threads 0 (default): both runtimes on the physical cores, as the node runs them by default
    from edepth_ros.backends.onnxruntime_backend import default_threads

    assert report["threads"] == default_threads()
    assert report["results"]["onnxruntime"]["backend"]["threads"] == default_threads()
    assert bench.run(parser.parse_args(["--threads", "-1", "--no-peer-flops"])) == 2


def test_torch_from_onnx_refuses_a_changed_checkpoint(exported, tmp_path):
    """The sidecar pins the checkpoint's sha256: PyTorch will not pass off other weights as this graph."""
    from edepth_ros.network import build_model, save_checkpoint

    ckpt, onnx_path = exported
    model = tmp_path / "m.onnx"
    shutil.copy(onnx_path, model)
    side = json.loads(sidecar_path(onnx_path).read_text())
    torch.manual_seed(7)
    side["checkpoint"] = str(save_checkpoint(tmp_path / "retrained.pt", build_model("demo")))
    sidecar_path(model).write_text(json.dumps(side))
    with pytest.raises(ModelFileError, match="exported from .*retrained.pt.*export is stale; re-export.*give PyTorch the checkpoint"):
        create_backend("torch", str(model))


def test_torch_from_onnx_runs_at_the_exported_size(exported, tmp_path):
    """An export at another size than training (README: --height 192 --width 640 on the 96x320 demo):
    PyTorch rebuilt from the sidecar takes the export's size, as ONNX Runtime does, and agrees with it."""
    ckpt, _ = exported
    from edepth_ros.export import export_onnx

    h, w = 64, 256  # the demo checkpoint was trained at 96x320
    onnx_path = tmp_path / "small.onnx"
    export_onnx(ckpt, h, w, None, onnx_path, check_fp16=False)
    ort_b = create_backend("onnxruntime-cpu", str(onnx_path), threads=1)
    torch_b = create_backend("torch", str(onnx_path), threads=1)
    assert ort_b.input_size == torch_b.input_size == (h, w)
    assert torch_b.describe()["input_size"] == (h, w)
    rgb, emb = inputs(1, h, w)
    d1, c1 = ort_b.infer(rgb, emb)
    d2, c2 = torch_b.infer(rgb, emb)
    assert d2.shape == (h, w) and np.abs(d1 - d2).max() <= 1e-3 * ort_b.max_depth
    with pytest.raises(ModelInputError, match="'rgb'"):
        torch_b.infer(*inputs(1))  # the training size is not this export's size
    with pytest.raises(BackendError, match="text.*latent"):
        create_backend("torch", str(onnx_path), text="a street")  # the .onnx has its latent baked in


def test_backend_options_are_validated(exported):
    """Bad option values and misspelt option names are BackendErrors naming the option."""
    ckpt, onnx_path = exported
    for kind, path in (("torch", onnx_path), ("onnxruntime-cpu", onnx_path)):
        for bad in (-1, 1.5, "2"):
            with pytest.raises(BackendError, match=f"threads={bad!r}"):
                create_backend(kind, str(path), threads=bad)
    with pytest.raises(BackendError, match="device='gpu'"):
        create_backend("torch", str(ckpt), device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="device='cuda'.*no CUDA GPU.*device='cpu'"):
            create_backend("torch", str(ckpt), device="cuda")
    with pytest.raises(BackendError, match="precision=.int8.*fp16.*fp32"):
        create_backend("onnxruntime-cpu", str(onnx_path), precision="int8")
    # one provider given as a string is that provider, not its characters
    b = create_backend("onnxruntime", str(onnx_path), providers="CPUExecutionProvider", threads=1)
    assert b.providers == ["CPUExecutionProvider"]
    # a misspelt option is refused, naming it and the valid ones
    with pytest.raises(BackendError, match=r"'thread'.*valid.*'threads'"):
        create_backend("onnxruntime-cpu", str(onnx_path), thread=1)
    with pytest.raises(BackendError, match=r"'thread'"):
        create_backend("auto", str(onnx_path), thread=1)
    with pytest.raises(BackendError, match=r"torch.*'precision'.*valid.*'device'"):
        create_backend("torch", str(ckpt), precision="fp16")  # an option of another backend
    with pytest.raises(BackendError, match=r"'max_dept'"):
        create_backend("embodied", None, max_dept=50.0)
    # what the node, `edepth eval` and the demo pass to any kind (threads, max_depth) stays valid
    for kind, path in (("auto", onnx_path), ("onnxruntime-cpu", onnx_path), ("torch", onnx_path),
                       ("torch", ckpt), ("embodied", None), ("auto", None)):
        b = create_backend(kind, None if path is None else str(path), threads=1, max_depth=80.0)
        assert b.max_depth == 80.0
    assert create_backend("embodied", None, threads=0, max_depth=50.0, input_size=(4, 5)).max_depth == 50.0
    # auto cannot know which runtime it picks: an option of another candidate is not an error
    assert create_backend("auto", str(ckpt), threads=1, engine_cache_dir="/tmp/x").name.startswith("torch")


# ---------------------------------------------------------------------------------------------
# 4 Dec review: models, options and inputs that broke the contract silently or with a raw traceback


def _fake_model(path, depth_add, conf_add, h=4, w=6, graph_hw=None):
    """An ONNX with edepth's tensor names (not edepth's network): depth = embodied depth + depth_add,
    confidence = embodied confidence + conf_add, at a (graph_hw) size; its sidecar says h x w."""
    pytest.importorskip("onnx")
    from contract_graph import save_contract_graph
    from onnx import helper, numpy_helper

    from edepth_ros.model_io import ModelSpec, write_sidecar

    gh, gw = graph_hw or (h, w)
    inits = [numpy_helper.from_array(np.asarray(depth_add, np.float32).reshape(1, 1, h, w), "dadd"),
             numpy_helper.from_array(np.asarray(conf_add, np.float32).reshape(1, 1, h, w), "cadd")]
    inits += [numpy_helper.from_array(np.array([i], np.int64), f"s{i}") for i in range(3)]
    nodes = [helper.make_node("Slice", ["embodied", "s0", "s1", "s1"], ["e0"]),
             helper.make_node("Slice", ["embodied", "s1", "s2", "s1"], ["e1"]),
             helper.make_node("Add", ["e0", "dadd"], ["depth"]), helper.make_node("Add", ["e1", "cadd"], ["confidence"])]
    save_contract_graph(path, nodes, inits, gh, gw)
    write_sidecar(path, ModelSpec.for_size(h, w, 80.0))
    return path


def test_model_outputs_outside_the_contract_become_no_estimate(tmp_path, caplog):
    """NaN / inf / negative / 0 depth (an FP16 engine overflowing, a foreign model) is NaN with
    confidence 0, depth above max_depth is capped, confidence clipped to [0, 1]: until 4 Dec they
    were returned as the runtime gave them (inf, -5 m, 205 m at max_depth 80, confidence NaN / 1.3)."""
    import logging

    pytest.importorskip("onnxruntime")
    dadd = np.zeros((4, 6), np.float32)
    dadd.flat[:6] = [np.nan, np.inf, -np.inf, -10.0, 200.0, -5.0]  # embodied depth is 5: -5 gives 0
    cadd = np.zeros((4, 6), np.float32)
    cadd.flat[6:9] = [np.nan, -0.9, 0.8]
    b = create_backend("onnxruntime-cpu", str(_fake_model(tmp_path / "fake.onnx", dadd, cadd)), threads=1)
    emb = np.stack([np.full((4, 6), 5.0, np.float32), np.full((4, 6), 0.5, np.float32)])
    with caplog.at_level(logging.WARNING):
        depth, conf = b.infer(np.zeros((4, 6, 3), np.uint8), emb)
        batch_depth, batch_conf = b.infer_batch(np.zeros((1, 4, 6, 3), np.uint8), emb[None])
    for d, c in ((depth, conf), (batch_depth[0, 0], batch_conf[0, 0])):
        assert d.dtype == c.dtype == np.float32
        assert np.isnan(d[0, [0, 1, 2, 3, 5]]).all() and (c[0, [0, 1, 2, 3, 5]] == 0).all()
        assert d[0, 4] == 80.0 and c[0, 4] == 0.5  # capped at the sidecar's max depth
        assert c[1, 0] == 0.0 and c[1, 1] == 0.0 and c[1, 2] == 1.0  # NaN, -0.4, 1.3
        np.testing.assert_array_equal(d[2:], 5.0)  # valid outputs unchanged
        np.testing.assert_array_equal(c[2:], 0.5)
    assert sum("NaN, inf or <= 0" in r.getMessage() for r in caplog.records) == 1  # warned once


def test_the_embodied_backend_does_not_warn_about_its_own_no_estimate(caplog):
    """NaN is the embodied depth's "none" (sky, nothing to anchor): the contract check must not
    warn "an FP16 overflow, or not an edepth model?" on every run of the embodied backend."""
    import logging

    depth = np.full((4, 6), 5.0, np.float32)
    depth[0] = 0.0  # none
    emb = np.stack([depth, np.full((4, 6), 0.5, np.float32)])
    with caplog.at_level(logging.WARNING):
        d, c = EmbodiedOnlyBackend().infer(np.zeros((4, 6, 3), np.uint8), emb)
    assert np.isnan(d[0]).all() and (c[0] == 0).all() and (d[1:] == 5.0).all()
    assert not [r for r in caplog.records if "NaN, inf or <= 0" in r.getMessage()]


def test_graph_of_dynamic_size_runs_at_its_sidecars_size(tmp_path):
    """A graph whose height/width are dynamic with a sidecar of 4 x 6: input_size was None, so any size
    was fed to it (a raw ONNX Runtime error here, a silent run at another size for a real network)."""
    pytest.importorskip("onnxruntime")
    path = _fake_model(tmp_path / "dyn.onnx", np.zeros((4, 6)), np.zeros((4, 6)), graph_hw=("h", "w"))
    b = create_backend("onnxruntime-cpu", str(path), threads=1)
    assert b.input_size == (4, 6)
    with pytest.raises(ModelInputError, match="'rgb': this model takes 4x6.*got 8x12"):
        b.infer(np.zeros((8, 12, 3), np.uint8), np.zeros((2, 8, 12), np.float32))
    depth, _ = b.infer(np.zeros((4, 6, 3), np.uint8), np.full((2, 4, 6), 0.5, np.float32))
    assert depth.shape == (4, 6)


@pytest.mark.parametrize("channel, value, match", [
    (0, -3.0, r"channel 0 \(depth, metres\) has negative values"),
    (1, 50.0, r"channel 1 \(confidence\) must lie in \[0, 1\]"),
    (1, -0.1, r"channel 1 \(confidence\) must lie in \[0, 1\]"),
])
def test_embodied_values_pack_embodied_never_makes_are_refused(exported, channel, value, match):
    """A negative embodied depth or a confidence outside [0, 1] is no code the graph knows: it ran
    and changed the depth by up to 33 m (negative depth) / 10 m (confidence 50) without a word."""
    _, onnx_path = exported
    rgb, emb = inputs()
    bad = emb.copy()
    bad[channel, H // 2:] = value
    for b in (create_backend("onnxruntime-cpu", str(onnx_path), threads=1), EmbodiedOnlyBackend()):
        with pytest.raises(ModelInputError, match=match):
            b.infer(rgb, bad)
    ort_b = create_backend("onnxruntime-cpu", str(onnx_path), threads=1)
    with pytest.raises(ModelInputError, match=match):
        ort_b.infer_batch(rgb[None], bad[None])
    assert np.isfinite(ort_b.infer(rgb, emb)[0]).all()  # pack_embodied's output still runs


@pytest.mark.parametrize("kind", ["onnxruntime-cpu", "torch"])
@pytest.mark.parametrize("threads", [10**5, 2**31, 2**40])
def test_threads_beyond_any_machine_are_refused(exported, kind, threads):
    """threads=100000 had ONNX Runtime starting threads for over 10 minutes (17 GB, never ready);
    2**31 and more were raw TypeError / ValueError from pybind11 and torch."""
    from edepth_ros.backends.base import max_threads

    _, onnx_path = exported
    with pytest.raises(BackendError, match=rf"{kind.split('-')[0]} option threads={threads}: more than "
                                           rf"{max_threads()}"):
        create_backend(kind, str(onnx_path), threads=threads)


@pytest.mark.parametrize("option, value", [
    ("max_depth", float("nan")), ("max_depth", 0), ("max_depth", -5.0), ("max_depth", "abc"),
    ("max_depth", float("inf")), ("input_size", "96x320"), ("input_size", (96,)), ("input_size", (0, 5)),
    ("input_size", (96.5, 320)), ("input_size", (-1, 4)),
])
def test_embodied_backend_options_are_validated(option, value):
    """NaN max_depth made every depth NaN, "96x320" a 9 x 6 input, 0 / -5 m capped all depth at a
    range no depth has; (96,) and "abc" were raw IndexError / ValueError."""
    with pytest.raises(BackendError, match=rf"embodied option {option}="):
        create_backend("embodied", None, **{option: value})
    ok = create_backend("embodied", None, max_depth=np.float64(50.0), input_size=[96.0, np.int64(320)])
    assert ok.max_depth == 50.0 and ok.input_size == (96, 320)


def test_model_path_that_is_not_a_file_says_what_it_is(tmp_path):
    """A folder, a loop of links or a dangling link was "model file ... not found"."""
    (tmp_path / "models.onnx").mkdir()
    (tmp_path / "a.onnx").symlink_to(tmp_path / "b.onnx")
    (tmp_path / "b.onnx").symlink_to(tmp_path / "a.onnx")
    (tmp_path / "gone.onnx").symlink_to(tmp_path / "deleted.onnx")
    for name, match in (("models.onnx", "is a folder, not a model file"), ("a.onnx", "is a symbolic link that is part of a loop of links"),
                        ("gone.onnx", "is a symbolic link that points to .*deleted.onnx.*which does not exist"),
                        ("missing.onnx", "not found")):
        for kind in ("auto", "onnxruntime-cpu", "torch"):
            with pytest.raises(BackendError, match=rf"{name} {match}"):
                create_backend(kind, str(tmp_path / name))


def test_closed_backend_says_so(exported):
    """infer after close() was AttributeError: 'NoneType' object has no attribute 'run'."""
    _, onnx_path = exported
    b = create_backend("onnxruntime-cpu", str(onnx_path), threads=1)
    b.close()
    b.close()  # idempotent
    with pytest.raises(BackendError, match="demo.onnx is closed; create a new one"):
        b.infer(*inputs())


@pytest.mark.parametrize("edit, shown", [({"max_depth": 40.0}, "max_depth 80.0 (checkpoint: 40.0)"),
                                         ({"latent_dim": 16}, "latent_dim 32 (checkpoint: 16)")])
def test_torch_from_onnx_refuses_a_checkpoint_of_another_config(exported, tmp_path, edit, shown):
    """A sidecar without checkpoint_sha256 (hand-made, older) naming a checkpoint of another config:
    PyTorch ran it as "the same graph" (max_depth 40 against the graph's 80: depth 19 m from ONNX
    Runtime's), or gave a raw ValueError from DeployNet (another latent size)."""
    from edepth_ros.network import build_model, model_config, save_checkpoint

    _, onnx_path = exported
    model = tmp_path / "m.onnx"
    shutil.copy(onnx_path, model)
    save_checkpoint(tmp_path / "other.pt", build_model({**model_config("demo").to_dict(), **edit}))
    side = json.loads(sidecar_path(onnx_path).read_text())
    side.update(checkpoint="other.pt", checkpoint_sha256=None)
    sidecar_path(model).write_text(json.dumps(side))
    with pytest.raises(ModelFileError, match=rf"m\.onnx was exported from a model config that .*other\.pt does not "
                                             rf"have: {re.escape(shown)}"):
        create_backend("torch", str(model))


def test_model_without_sidecar_is_held_to_the_graph_contract(exported, tmp_path):
    """require_sidecar=False checked only the tensor names: a float32 NCHW model reusing them loaded
    with input_size (3, 4) and failed on the first frame with ONNX Runtime's INVALID_ARGUMENT."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    _, onnx_path = exported
    g = helper.make_graph([helper.make_node("Identity", ["rgb"], ["depth"]),
                           helper.make_node("Identity", ["embodied"], ["confidence"])], "nchw",
                          [helper.make_tensor_value_info("rgb", TensorProto.FLOAT, [1, 3, 4, 6]),
                           helper.make_tensor_value_info("embodied", TensorProto.FLOAT, [1, 2, 4, 6])],
                          [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 3, 4, 6]),
                           helper.make_tensor_value_info("confidence", TensorProto.FLOAT, [1, 2, 4, 6])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "nchw.onnx"))
    with pytest.raises(ModelFileError, match=r"nchw\.onnx: tensor 'rgb' is float32 \[1, 3, 4, 6\], the edepth graph "
                                             r"contract is uint8 \(B, H, W, 3\)"):
        create_backend("onnxruntime-cpu", str(tmp_path / "nchw.onnx"), require_sidecar=False, threads=1)
    b = create_backend("onnxruntime-cpu", str(onnx_path), require_sidecar=False, threads=1)  # edepth's own
    assert b.input_size == (H, W) and np.isfinite(b.infer(*inputs())[0]).all()
