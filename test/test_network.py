"""The depth network: every registered config builds, runs both paths forward and backward with
finite values and bounded outputs; DeployNet is the image path with the latent baked in;
checkpoints round-trip and refuse corrupt or mismatched files; config errors name the key."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edepth_ros.network import (MODEL_CONFIGS, CheckpointError, DeployNet, DepthNet, NetworkConfigError,  # noqa: E402
                                build_model, load_checkpoint, model_config, save_checkpoint, text_latent)

torch.set_num_threads(1)
SMALL = (64, 192)  # every config is exercised at a small input: shapes follow the input


def inputs(b: int, h: int, w: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (b, h, w, 3), dtype=torch.uint8, generator=g)
    depth = torch.rand(b, h, w, generator=g) * 60 + 1
    depth[:, : h // 3] = 0  # the sky: no embodied depth ("none" code 0)
    conf = torch.where(depth > 0, torch.full_like(depth, 0.8), torch.zeros_like(depth))
    return rgb, torch.stack([depth, conf], 1), torch.randn(b, 384, generator=g)


def config_params():
    return [pytest.param(name, marks=pytest.mark.slow) if name == "paper" else name for name in MODEL_CONFIGS]


@pytest.mark.parametrize("name", config_params())
@pytest.mark.parametrize("path", ["image", "text"])
def test_forward_backward_bounds(name, path):
    torch.manual_seed(0)
    net = build_model(name).train()
    rgb, emb, text = inputs(2, *SMALL)
    out = net(rgb, emb, text, path=path)
    depth, conf = out["depth"], out["confidence"]
    assert depth.shape == (2, 1, *SMALL) and conf.shape == (2, 1, *SMALL)
    assert torch.isfinite(depth).all() and torch.isfinite(conf).all()
    assert depth.min() > 0 and depth.max() <= net.cfg.max_depth
    assert conf.min() >= 0 and conf.max() <= 1
    loss = out["log_depth"].mean() + out["kl_text"] + out["kl_eps"] + out["conf_logit"].mean()
    loss.backward()
    grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    assert all(torch.isfinite(g).all() for g in grads.values())
    used = {n.split(".")[0] for n in grads}
    if path == "text":  # phase 1: only the VAE and the decoder learn; the sampler and encoders do not
        assert used == {"text_vae", "decoder"}
    else:  # phase 2: the VAE is frozen (mu, sigma detached), everything else learns
        assert "text_vae" not in used and {"rgb_encoder", "depth_encoder", "fusion", "sampler", "decoder"} <= used


@pytest.mark.parametrize("name", ["demo"])
def test_at_config_resolution_and_text_changes_output(name):
    net = build_model(name).eval()
    h, w = net.cfg.input_size
    rgb, emb, text = inputs(1, h, w)
    with torch.no_grad():
        a = net(rgb, emb, text, path="image")["depth"]
        b = net(rgb, emb, -text, path="image")["depth"]
        c = net(rgb, emb * torch.tensor([2.0, 1.0]).view(1, 2, 1, 1), text, path="image")["depth"]
    assert a.shape == (1, 1, h, w)
    assert not torch.allclose(a, b), "the text latent must condition the image path"
    assert not torch.allclose(a, c), "the embodied depth must condition the image path"


@pytest.mark.parametrize("ablation", [{"depth_branch": False, "embodied_residual": False}, {"text_vae": False},
                                      {"depth_branch": False, "text_vae": False, "embodied_residual": False},
                                      {"embodied_residual": False}, {"norm": "batch", "act": "relu"}])
def test_ablations_build_and_run(ablation):
    net = build_model({"arch": "demo", **ablation}).train()
    rgb, emb, text = inputs(2, *SMALL)
    out = net(rgb, emb, text, path="image")
    out["log_depth"].mean().backward()
    assert torch.isfinite(out["depth"]).all()
    if not ablation.get("depth_branch", True):
        assert net.depth_encoder is None and len(net.fusion) == 0
    if not ablation.get("text_vae", True):
        assert net.text_vae is None and net.sampler is None
        with pytest.raises(ValueError, match="text"):
            net(rgb, emb, text, path="text")


def test_batch_norm_running_stats_move_with_the_image_path_only():
    """model.norm: batch (the real-time model): the text path's zero skips must not pull the
    decoder's running statistics, which the deployed image path normalises with."""
    torch.manual_seed(0)
    net = build_model({"arch": "demo", "norm": "batch"}).train()
    bns = [m for m in net.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(isinstance(m, torch.nn.GroupNorm) for m in net.decoder.modules())
    rgb, emb, text = inputs(2, *SMALL)

    def stats():
        return torch.cat([torch.cat([m.running_mean, m.running_var]) for m in bns]).clone()

    before = stats()
    net(rgb, emb, text, path="text")["log_depth"].mean().backward()
    assert torch.equal(stats(), before)
    assert all(m.momentum == 0.1 for m in bns)  # restored after the text step
    net(rgb, emb, text, path="image")["log_depth"].mean().backward()
    assert not torch.allclose(stats(), before)


def test_deploynet_is_the_image_path_with_baked_latent():
    torch.manual_seed(1)
    net = build_model("demo").eval()
    rgb, emb, text = inputs(2, *SMALL)
    mu, sigma = text_latent(net, text)
    deploy = DeployNet(net, mu, sigma).eval()
    with torch.no_grad():
        d, c = deploy(rgb, emb)
        ref = net(rgb, emb, path="image", mu=mu, sigma=sigma)
        other = DeployNet(net, mu + 1.0, sigma)(rgb, emb)[0]
    assert torch.equal(d, ref["depth"].clamp(max=net.cfg.max_depth)) and torch.equal(c, ref["confidence"])
    assert not torch.allclose(d, other)
    assert d.dtype == torch.float32 and d.shape == (2, 1, *SMALL)
    with pytest.raises(ValueError, match="sigma"):
        DeployNet(net, mu, -sigma)
    with pytest.raises(ValueError, match="latent_dim"):
        DeployNet(net, mu[:3], sigma)


def test_deploynet_exports_to_onnx_and_matches(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = build_model("demo").eval()
    deploy = DeployNet(net).eval()
    rgb, emb, _ = inputs(1, *SMALL)
    path = tmp_path / "m.onnx"
    torch.onnx.export(deploy, (rgb, emb), str(path), input_names=["rgb", "embodied"],
                      output_names=["depth", "confidence"], opset_version=17, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    d, c = sess.run(None, {"rgb": rgb.numpy(), "embodied": emb.numpy()})
    with torch.no_grad():
        rd, rc = deploy(rgb, emb)
    np.testing.assert_allclose(d, rd.numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(c, rc.numpy(), atol=1e-4)


def test_checkpoint_roundtrip_and_errors(tmp_path):
    torch.manual_seed(2)
    net = build_model("demo").eval()
    path = save_checkpoint(tmp_path / "a.pt", net, {"step": 7})
    raw = torch.load(path, weights_only=True)  # loadable with weights_only: no pickled code
    assert raw["step"] == 7
    loaded = load_checkpoint(path)
    assert isinstance(loaded, DepthNet) and not loaded.training and loaded.checkpoint_meta["step"] == 7
    rgb, emb, _ = inputs(1, *SMALL)
    with torch.no_grad():
        assert torch.equal(net(rgb, emb)["depth"], loaded(rgb, emb)["depth"])

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[: 4000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(corrupt)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(tmp_path / "other.pt")

    # a checkpoint of another shape: clear error, and the target model is left untouched
    from edepth_ros.network.checkpoint import load_state_strict, read_checkpoint

    other = build_model({"arch": "demo", "latent_dim": 16})
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError, match="does not fit"):
        load_state_strict(other, read_checkpoint(path)["model"])
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())
    with pytest.raises(CheckpointError, match="another model config"):
        load_checkpoint(path, config=other.cfg)


def test_checkpoint_with_nan_weights_is_refused(tmp_path):
    net = build_model("demo")
    with torch.no_grad():
        next(net.decoder.parameters()).fill_(float("nan"))
    path = save_checkpoint(tmp_path / "nan.pt", net)
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(path)


@pytest.mark.parametrize("override, key", [
    ({"backbone": "no_such_net_xyz"}, "model.backbone"),
    ({"fusion_dim": 30, "fusion_heads": 4}, "model.fusion_dim"),
    ({"input_size": [100, 320]}, "model.input_size"),
    ({"decoder_channels": [1, 2]}, "model.decoder_channels"),
    ({"colour": 3}, "model.colour"),
    ({"pretrained_path": "/nonexistent/w.safetensors"}, "model.pretrained_path"),
    ({"pretrained": True}, "model.pretrained"),
    ({"embodied_residual": True, "depth_branch": False}, "model.embodied_residual"),
    ({"norm": "layer"}, "model.norm"),
    # wrong types (once bare TypeErrors) and out-of-range sizes (once accepted)
    ({"fusion_dim": "64"}, "model.fusion_dim: expected a positive integer, got '64'"),
    ({"latent_dim": "a"}, "model.latent_dim: expected a positive integer"),
    ({"max_depth": "80"}, "model.max_depth: expected a positive number"),
    ({"input_size": 192}, "model.input_size: expected \\[height, width\\]"),
    ({"head_channels": 0}, "model.head_channels: expected a positive integer, got 0"),
    ({"text_hidden": [0]}, "model.text_hidden: expected a list of positive integers"),
    ({"depth_branch": "no"}, "model.depth_branch: expected true or false"),
])
def test_config_errors_name_the_key(override, key):
    with pytest.raises(NetworkConfigError, match=key.replace(".", r"\.")):
        build_model({"arch": "demo", **override})


def test_unknown_arch_and_registry_are_consistent():
    with pytest.raises(NetworkConfigError, match="model.arch"):
        model_config({"arch": "nope"})
    for name, cfg in MODEL_CONFIGS.items():
        assert cfg.name == name
        assert dataclasses.replace(cfg).validate() is not None


@pytest.fixture
def demo_backbone_weights(tmp_path):
    """A local weights file for the demo backbone (regnetx_002), its stem set to 0.123."""
    import timm
    from safetensors.torch import save_file

    src = timm.create_model("regnetx_002", pretrained=False)
    torch.nn.init.constant_(src.stem.conv.weight, 0.123)
    path = tmp_path / "weights" / "w.safetensors"
    path.parent.mkdir()
    save_file(src.state_dict(), str(path))
    return path


def test_pretrained_weights_from_local_file(demo_backbone_weights):
    """Backbone weights from a local file are loaded (nothing downloads)."""
    net = build_model({"arch": "demo", "pretrained_path": str(demo_backbone_weights)})
    assert torch.allclose(net.rgb_encoder.body.stem.conv.weight, torch.tensor(0.123))


@pytest.mark.parametrize("pretrained", [{}, {"pretrained": True}])
def test_checkpoint_of_pretrained_model_loads_without_the_weights_file(tmp_path, demo_backbone_weights, pretrained):
    """A checkpoint holds every weight: the backbone's initial weights file may be moved or deleted."""
    torch.manual_seed(3)
    net = build_model({"arch": "demo", "pretrained_path": str(demo_backbone_weights), **pretrained}).eval()
    path = save_checkpoint(tmp_path / "p.pt", net)
    demo_backbone_weights.unlink()
    loaded = load_checkpoint(path)
    loaded_again = load_checkpoint(path, config=net.cfg)  # the config it was trained with still matches
    assert loaded.checkpoint_meta["config"]["pretrained_path"] == str(demo_backbone_weights)  # provenance kept
    rgb, emb, _ = inputs(1, *SMALL)
    with torch.no_grad():
        assert torch.equal(net(rgb, emb)["depth"], loaded(rgb, emb)["depth"])
        assert torch.equal(net(rgb, emb)["depth"], loaded_again(rgb, emb)["depth"])


@pytest.mark.parametrize("damage", ["empty file", "flipped bytes", "string entry", "model not a dict"])
def test_damaged_checkpoint_is_a_checkpoint_error_naming_the_file(tmp_path, damage):
    from edepth_ros.network.checkpoint import load_state_strict

    net = build_model("demo")
    path = save_checkpoint(tmp_path / "a.pt", net)
    payload = torch.load(path, weights_only=True)
    if damage == "empty file":
        path.write_bytes(b"")
    elif damage == "flipped bytes":  # inside a weight's data: the zip still reads, the digest does not match
        data = bytearray(path.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
        path.write_bytes(bytes(data))
    elif damage == "string entry":
        payload["model"]["decoder.depth_head.bias"] = "x"
        torch.save(payload, path)
    else:
        payload["model"] = ["not", "a", "state dict"]
        torch.save(payload, path)
    with pytest.raises(CheckpointError, match=re.escape(f"checkpoint '{path}'") + ".*previous checkpoint"):
        load_checkpoint(path)
    if damage in ("string entry", "model not a dict"):  # and nothing of it is copied into a model
        before = {k: v.clone() for k, v in net.state_dict().items()}
        with pytest.raises(CheckpointError):
            load_state_strict(net, payload["model"])
        assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_committed_demo_checkpoint_runs_and_is_trained(project_dir):
    """models/demo/model.pt loads (weights_only), deploys, and beats an untrained net on a held-out scene."""
    path = project_dir / "models" / "demo" / "model.pt"
    if not path.is_file():
        pytest.skip(f"{path} not trained yet (edepth train --config models/demo.yaml)")
    assert path.stat().st_size < 20 * 2 ** 20
    from edepth_ros.embodied import EmbodiedDepth
    from edepth_ros.metrics import depth_metrics
    from edepth_ros.model_io import pack_embodied
    from edepth_ros.synthetic import SceneGenerator

    net = load_checkpoint(path)
    h, w = net.cfg.input_size
    f = SceneGenerator(4242, width=w, height=h).frame(3, lidar=False)  # a seed never used in training
    emb = pack_embodied(EmbodiedDepth().compute(f.camera, f.plane, f.labels))
    rgb_t, emb_t = torch.as_tensor(f.rgb)[None], torch.as_tensor(emb)[None]
    gt = np.where(np.isfinite(f.depth), f.depth, np.nan)
    with torch.no_grad():
        trained = DeployNet(net)(rgb_t, emb_t)[0][0, 0].numpy()
        untrained = DeployNet(build_model(net.cfg).eval())(rgb_t, emb_t)[0][0, 0].numpy()
    good, bad = depth_metrics(trained, gt, crop=None), depth_metrics(untrained, gt, crop=None)
    assert good["abs_rel"] < 0.35 and good["abs_rel"] < 0.5 * bad["abs_rel"], (good, bad)


def test_embodied_residual_gate_blends_with_embodied_depth():
    net = build_model({"arch": "demo", "embodied_residual": True}).eval()
    rgb, emb, _ = inputs(1, *SMALL)
    valid = emb[:, 0:1] > 0
    with torch.no_grad():
        net.decoder.gate_head.weight.zero_()
        net.decoder.gate_head.bias.fill_(20.0)  # gate fully open: the embodied depth passes through
        d_open = net(rgb, emb)["depth"]
        net.decoder.gate_head.bias.fill_(-20.0)  # gate shut: the decoder's own depth
        d_shut = net(rgb, emb)["depth"]
    torch.testing.assert_close(d_open[valid], emb[:, 0:1][valid], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(d_shut[valid], emb[:, 0:1][valid], rtol=1e-2)
    torch.testing.assert_close(d_open[~valid], d_shut[~valid])  # no embodied depth: no blend
