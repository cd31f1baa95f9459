"""TensorRT backend.

1. Everywhere: the engine cache key, the trtexec line, and the control flow (engine cache, rebuild
   on a stale or corrupt engine, binding by tensor name, INT8 calibration) run against a stand-in
   module with the TensorRT 10 Python API surface the backend uses (Builder, OnnxParser, builder
   config, timing cache, Runtime, named I/O tensors, execute_async_v3), host memory in place of
   device memory and ONNX Runtime executing the parsed ONNX. That checks our logic, not TensorRT.
2. Where TensorRT and a GPU exist: real engines (skipped here, with the reason).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import numpy as np
import pytest

from edepth_ros.backends import BackendError, create_backend
from edepth_ros.model_io import ModelFileError, ModelInputError
from edepth_ros.backends.tensorrt_backend import (cuda_device_name, engine_cache_path, engine_key,
                                                  trtexec_command)


def test_engine_key_changes_with_everything_the_engine_depends_on():
    base = ("a" * 64, "10.3.0", "Orin", "fp16")
    keys = {engine_key(*base)}
    for i, other in enumerate(("b" * 64, "10.4.0", "NVIDIA H100", "fp32")):
        changed = list(base)
        changed[i] = other
        keys.add(engine_key(*changed))
    assert len(keys) == 5  # each of ONNX hash, TensorRT version, GPU, precision gives its own engine
    assert engine_key(*base) == engine_key(*base)
    with pytest.raises(BackendError, match="precision"):
        engine_key("a", "10", "gpu", "bf8")


def test_engine_cache_path_names_its_key(tmp_path):
    p = engine_cache_path(tmp_path, "models/realtime.onnx", "c" * 64, "10.3.0", "Orin (nvgpu)", "fp16")
    assert p.parent == tmp_path and p.suffix == ".engine"
    assert p.name.startswith("realtime.fp16.trt10.3.0.orin-nvgpu.")
    assert engine_key("c" * 64, "10.3.0", "Orin (nvgpu)", "fp16") in p.name


def test_trtexec_command():
    cmd = trtexec_command("m.onnx", "m.engine", "fp16", "timing.cache", 2048)
    assert cmd.split() == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine", "--memPoolSize=workspace:2048M",
                           "--fp16", "--timingCacheFile=timing.cache"]
    int8 = trtexec_command("m.onnx", "m.engine", "int8", calibration_cache="c.calib")
    assert "--int8" in int8 and "--fp16" in int8 and "--calib=c.calib" in int8
    assert "--fp16" not in trtexec_command("m.onnx", "m.engine", "fp32")


def _tensorrt_here() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (not installable on these machines: its wheels download from NVIDIA)"
    if cuda_device_name() is None:
        return "no CUDA GPU visible"
    return None


def test_clear_error_without_tensorrt(tmp_path):
    if _tensorrt_here() is None:
        pytest.skip("TensorRT and a GPU are present: the error path is not reachable")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    with pytest.raises(BackendError, match="tensorrt|GPU"):
        create_backend("tensorrt", str(model))


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    why = _tensorrt_here()
    if why:
        pytest.skip(why)
    torch = pytest.importorskip("torch")
    from edepth_ros.export import export_onnx
    from edepth_ros.network import build_model

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("trt") / "demo.onnx"
    export_onnx(None, 96, 320, None, out, net=build_model("demo"), check_fp16=True)
    return out


def test_engine_builds_caches_and_matches_onnxruntime(onnx_model, tmp_path):
    from edepth_ros.export import example_inputs

    cache = tmp_path / "engines"
    trt_b = create_backend("tensorrt", str(onnx_model), engine_cache_dir=str(cache), precision="fp16")
    engines = list(cache.glob("*.engine"))
    assert len(engines) == 1 and (cache / engines[0].name.replace(".engine", ".build.json")).is_file()
    assert list(cache.glob("timing.*.cache"))
    ort_b = create_backend("onnxruntime-cpu", str(onnx_model), threads=2)
    rgb, emb = example_inputs(96, 320)
    d_trt, c_trt = trt_b.infer(rgb[0], emb[0])
    d_ort, c_ort = ort_b.infer(rgb[0], emb[0])
    assert np.isfinite(d_trt).all()
    rel = np.abs(d_trt - d_ort) / d_ort
    assert np.median(rel) < 0.02  # FP16 engine vs FP32 reference
    # a second backend loads the cached engine instead of building
    mtime = engines[0].stat().st_mtime_ns
    create_backend("tensorrt", str(onnx_model), engine_cache_dir=str(cache))
    assert engines[0].stat().st_mtime_ns == mtime


def test_corrupt_cached_engine_is_rebuilt(onnx_model, tmp_path):
    cache = tmp_path / "engines"
    create_backend("tensorrt", str(onnx_model), engine_cache_dir=str(cache))
    engine = next(cache.glob("*.engine"))
    engine.write_bytes(b"not an engine from this TensorRT")
    b = create_backend("tensorrt", str(onnx_model), engine_cache_dir=str(cache))
    assert b.engine is not None and engine.stat().st_size > 1000


# ---------------------------------------------------------------------------------------------
# control flow against the TensorRT 10 API stand-in (runs everywhere)

H, W = 96, 320
torch_mod = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")



class HostMemory:
    """Device memory stand-in: numpy arrays addressed by their pointers."""

    handle = 0

    def __init__(self):
        self.by_ptr = {}

    def alloc(self, shape, dtype):
        arr = np.zeros(shape, dtype)
        self.by_ptr[arr.ctypes.data] = arr
        return arr, arr.ctypes.data

    def h2d(self, dev, host):
        np.copyto(dev, host)

    def d2h(self, dev, host):
        np.copyto(host, dev)

    def sync(self):
        pass

    def close(self):
        pass


def fake_tensorrt(memory: HostMemory, version: str = "10.99.0"):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.builds = []

    class Logger:
        WARNING = 2

        def __init__(self, severity):
            self.severity = severity

    class Enum:
        pass

    trt.Logger = Logger
    trt.init_libnvinfer_plugins = lambda logger, ns: True
    trt.MemoryPoolType = type("MemoryPoolType", (), {"WORKSPACE": "workspace"})
    trt.BuilderFlag = type("BuilderFlag", (), {"FP16": "fp16", "INT8": "int8"})
    trt.TensorIOMode = type("TensorIOMode", (), {"INPUT": "input", "OUTPUT": "output"})
    trt.nptype = lambda dt: dt

    class IInt8EntropyCalibrator2:
        def __init__(self):
            pass

    trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2

    class Network:
        onnx_path = None
        inputs, outputs = [], []

        @property
        def num_inputs(self):
            return len(self.inputs)

        @property
        def num_outputs(self):
            return len(self.outputs)

        def get_input(self, i):
            return self.inputs[i]

        def get_output(self, i):
            return self.outputs[i]

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, lo, opt, hi):
            self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

    class Cache:
        def __init__(self, blob):
            self.blob = bytes(blob)

        def serialize(self):
            return self.blob + b"+timing"

    class Config:
        def __init__(self):
            self.flags, self.pool, self.cache, self.int8_calibrator = set(), None, None, None
            self.profiles = []

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def set_calibration_profile(self, profile):
            assert profile in self.profiles
            self.calibration_profile = profile

        def set_memory_pool_limit(self, kind, size):
            self.pool = (kind, size)

        def set_flag(self, flag):
            self.flags.add(flag)

        def create_timing_cache(self, blob):
            return Cache(blob)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            self.network = network

        def parse_from_file(self, path):
            import onnx

            graph = onnx.load(path).graph

            def tensors(values):  # ITensor: name, shape (-1 where dynamic), dtype
                return [types.SimpleNamespace(
                    name=v.name, dtype=np.dtype(onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)),
                    shape=tuple(d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim))
                    for v in values]

            self.network.onnx_path = path
            self.network.inputs, self.network.outputs = tensors(graph.input), tensors(graph.output)
            return True

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            assert flags == 0  # TensorRT 10: explicit batch only
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            # TensorRT 10 refuses dynamic inputs without an optimization profile that covers each one
            for t in network.inputs:
                if -1 in t.shape:
                    shapes = [p.shapes.get(t.name) for p in config.profiles]
                    if not shapes or None in shapes:
                        return None  # "Network has dynamic or shape inputs, but no optimization profile"
                    for lo, opt, hi in shapes:
                        assert all(a <= b <= c and (d == -1 or a == d == c)
                                   for a, b, c, d in zip(lo, opt, hi, t.shape))
            calibrated = 0
            if config.int8_calibrator is not None:  # TensorRT pulls batches until None
                cal = config.int8_calibrator
                if cal.read_calibration_cache() is None:
                    while cal.get_batch(["rgb", "embodied"]) is not None:
                        calibrated += 1
                    cal.write_calibration_cache(b"calibration table")
            build = {"flags": sorted(config.flags), "calibrated": calibrated}
            if config.profiles:
                build["profiles"] = [p.shapes for p in config.profiles]
            trt.builds.append(build)
            return ("FAKEENGINE" + json.dumps({"onnx": network.onnx_path, "version": trt.__version__})).encode()

    class Context:
        def __init__(self, engine):
            self.engine, self.addr = engine, {}

        def set_input_shape(self, name, shape):
            pass

        def set_tensor_address(self, name, ptr):
            self.addr[name] = ptr

        def execute_async_v3(self, stream):
            feeds = {n: memory.by_ptr[self.addr[n]] for n in ("rgb", "embodied")}
            outs = self.engine.session.run(["depth", "confidence"], feeds)
            for n, v in zip(("depth", "confidence"), outs):
                np.copyto(memory.by_ptr[self.addr[n]], v)
            return True

    class Engine:
        def __init__(self, onnx_path):
            self.session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
            dims = lambda shape: tuple(d if isinstance(d, int) else -1 for d in shape)  # noqa: E731
            self.io = [(i.name, "input", dims(i.shape), np.dtype(np.uint8 if "uint8" in i.type else np.float32))
                       for i in self.session.get_inputs()]
            self.io += [(o.name, "output", dims(o.shape), np.dtype(np.float32)) for o in self.session.get_outputs()]
            self.num_io_tensors = len(self.io)

        def get_tensor_name(self, i):
            return self.io[i][0]

        def _find(self, name):
            return next(t for t in self.io if t[0] == name)

        def get_tensor_mode(self, name):
            return self._find(name)[1]

        def get_tensor_shape(self, name):
            return self._find(name)[2]

        def get_tensor_dtype(self, name):
            return self._find(name)[3]

        def create_execution_context(self):
            return Context(self)

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            data = bytes(data)
            if not data.startswith(b"FAKEENGINE"):
                return None  # corrupt
            meta = json.loads(data[len("FAKEENGINE"):])
            if meta["version"] != trt.__version__:
                return None  # "version tag does not match"
            return Engine(meta["onnx"])

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt


@pytest.fixture
def trt_env(monkeypatch):
    import edepth_ros.backends as backends_pkg
    import edepth_ros.backends.tensorrt_backend as tb

    memory = HostMemory()
    trt = fake_tensorrt(memory)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(tb, "cuda_device_name", lambda: "Fake Orin")
    monkeypatch.setattr(tb, "_cuda_memory", lambda: memory)
    monkeypatch.setattr(backends_pkg, "_tensorrt_usable", lambda: True)
    return trt


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory):
    from edepth_ros.export import export_onnx
    from edepth_ros.network import build_model

    torch_mod.manual_seed(0)
    out = tmp_path_factory.mktemp("flow") / "demo.onnx"
    export_onnx(None, H, W, None, out, net=build_model("demo"), check_fp16=False)
    return out


def sample(seed=0):
    from edepth_ros.export import example_inputs

    rgb, emb = example_inputs(H, W, seed=seed)
    return rgb[0], emb[0]


def test_build_cache_and_bindings(trt_env, demo_onnx, tmp_path, capsys):
    cache = tmp_path / "engines"
    b = create_backend("auto", str(demo_onnx), engine_cache_dir=str(cache))  # auto picks TensorRT first
    assert b.name == "tensorrt-fp16" and b.input_size == (H, W) and b.max_depth == 80.0
    assert trt_env.builds == [{"flags": ["fp16"], "calibrated": 0}]
    assert "trtexec --onnx=" in capsys.readouterr().out
    engine = next(cache.glob("*.engine"))
    assert ".fp16.trt10.99.0.fake-orin." in engine.name
    assert json.loads(engine.with_suffix(".build.json").read_text())["gpu"] == "Fake Orin"
    assert (cache / "timing.trt10.99.0.cache").read_bytes() == b"+timing"
    rgb, emb = sample()
    depth, conf = b.infer(rgb, emb)
    ref = ort.InferenceSession(str(demo_onnx), providers=["CPUExecutionProvider"])
    want_d, want_c = ref.run(None, {"rgb": rgb[None], "embodied": emb[None]})
    assert np.array_equal(depth, want_d[0, 0]) and np.array_equal(conf, want_c[0, 0])
    with pytest.raises(ModelInputError, match="'rgb'"):
        b.infer(rgb[:48], emb)
    # a second start loads the cached engine: no build, the timing cache grows from the saved one
    create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache))
    assert len(trt_env.builds) == 1


def test_stale_or_corrupt_engine_is_rebuilt(trt_env, demo_onnx, tmp_path):
    cache = tmp_path / "engines"
    create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache))
    engine = next(cache.glob("*.engine"))
    engine.write_bytes(b"\x00garbage")
    b = create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache))
    assert len(trt_env.builds) == 2 and engine.read_bytes().startswith(b"FAKEENGINE")
    assert np.isfinite(b.infer(*sample())[0]).all()
    # a TensorRT upgrade (new JetPack) keys a new engine instead of failing on the old one
    trt_env.__version__ = "10.100.0"
    create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache))
    assert len(trt_env.builds) == 3 and len(list(cache.glob("*.engine"))) == 2


def test_prebuilt_engine_from_another_version_names_the_cure(trt_env, demo_onnx, tmp_path):
    cache = tmp_path / "engines"
    create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache))
    engine = next(cache.glob("*.engine"))
    prebuilt = tmp_path / "shipped.engine"
    prebuilt.write_bytes(engine.read_bytes())
    assert create_backend("auto", str(prebuilt)).engine is not None  # same version: loads
    trt_env.__version__ = "11.0.0"
    with pytest.raises(ModelFileError, match="shipped.engine.*cannot load.*give the .onnx"):
        create_backend("tensorrt", str(prebuilt))


def test_prebuilt_engine_names_the_build_options_it_ignores(trt_env, demo_onnx, tmp_path, caplog):
    """What an engine was built with is inside it: max_batch, precision or calibration given with a
    .engine do nothing, and the backend says so instead of claiming a precision it cannot know."""
    cache = tmp_path / "engines"
    create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache))
    prebuilt = tmp_path / "shipped.engine"
    prebuilt.write_bytes(next(cache.glob("*.engine")).read_bytes())
    builds = len(trt_env.builds)
    with caplog.at_level("WARNING", logger="edepth_ros.backends.tensorrt_backend"):
        b = create_backend("tensorrt", str(prebuilt))
    assert b.name == "tensorrt-prebuilt" and b.describe()["precision"] == "prebuilt"
    assert "prebuilt engine" not in caplog.text  # defaults: nothing to warn about
    with caplog.at_level("WARNING", logger="edepth_ros.backends.tensorrt_backend"):
        create_backend("tensorrt", str(prebuilt), max_batch=4, precision="int8", rebuild=True)
    assert "shipped.engine is a prebuilt engine: option(s) precision, max_batch, rebuild" in caplog.text
    assert len(trt_env.builds) == builds  # nothing was built


def test_int8_calibration(trt_env, demo_onnx, tmp_path):
    cache = tmp_path / "engines"
    with pytest.raises(BackendError, match="calibration"):
        create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache), precision="int8")
    frames = [sample(s) for s in range(3)]
    b = create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache), precision="int8",
                       calibration_data=frames)
    assert b.name == "tensorrt-int8"
    assert trt_env.builds[-1] == {"flags": ["fp16", "int8"], "calibrated": 3}
    calib = cache / "demo.int8.calib"
    assert calib.read_bytes() == b"calibration table"
    # with the calibration cache, a rebuild needs no frames
    create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache), precision="int8", rebuild=True)
    assert trt_env.builds[-1]["calibrated"] == 0


@pytest.fixture(scope="module")
def dynamic_onnx(tmp_path_factory):
    from edepth_ros.export import export_onnx
    from edepth_ros.network import build_model

    torch_mod.manual_seed(0)
    out = tmp_path_factory.mktemp("dyn") / "dyn.onnx"
    export_onnx(None, H, W, None, out, net=build_model("demo"), dynamic_batch=True, check_fp16=False)
    return out


def test_dynamic_batch_export_builds_with_a_profile(trt_env, dynamic_onnx, demo_onnx, tmp_path, capsys):
    """TensorRT 10 needs an optimization profile for a --dynamic-batch export; max_batch sets its top."""
    cache = tmp_path / "engines"
    b = create_backend("tensorrt", str(dynamic_onnx), engine_cache_dir=str(cache), max_batch=4,
                       threads=2, max_depth=80.0)  # what the node passes to every backend
    rgb, emb = (H, W, 3), (2, H, W)
    assert trt_env.builds[-1]["profiles"] == [{"rgb": ((1, *rgb), (1, *rgb), (4, *rgb)),
                                               "embodied": ((1, *emb), (1, *emb), (4, *emb))}]
    out = capsys.readouterr().out
    assert f"--minShapes=rgb:1x{H}x{W}x3,embodied:1x2x{H}x{W}" in out
    assert f"--maxShapes=rgb:4x{H}x{W}x3,embodied:4x2x{H}x{W}" in out
    frame = sample()
    depth, _ = b.infer(*frame)
    want = ort.InferenceSession(str(dynamic_onnx), providers=["CPUExecutionProvider"]).run(
        ["depth"], {"rgb": frame[0][None], "embodied": frame[1][None]})[0]
    assert np.array_equal(depth, want[0, 0])
    # the default profile is batch 1 only; another max batch is another engine
    create_backend("tensorrt", str(dynamic_onnx), engine_cache_dir=str(cache))
    assert trt_env.builds[-1]["profiles"][0]["rgb"][2] == (1, *rgb)
    assert len(list(cache.glob("*.engine"))) == 2
    for bad in (0, -2, 1.5, "4"):
        with pytest.raises(BackendError, match=f"max_batch={bad!r}"):
            create_backend("tensorrt", str(dynamic_onnx), engine_cache_dir=str(cache), max_batch=bad)
    with pytest.raises(BackendError, match="max_batch=4.*static batch.*--dynamic-batch"):
        create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache), max_batch=4)


def test_onnx_and_engine_are_checked_against_the_sidecar(trt_env, demo_onnx, tmp_path):
    """As for ONNX Runtime: the ONNX's sha256 before any build, the tensors against the sidecar."""
    import shutil

    from edepth_ros.model_io import sidecar_path

    cache = tmp_path / "engines"
    model = tmp_path / "m.onnx"
    shutil.copy(demo_onnx, model)
    side = json.loads(sidecar_path(demo_onnx).read_text())
    sidecar_path(model).write_text(json.dumps({**side, "onnx_sha256": "0" * 64}))
    with pytest.raises(ModelFileError, match="m.onnx: sha256.*onnx_sha256"):
        create_backend("tensorrt", str(model), engine_cache_dir=str(cache))
    # the sidecar of another (192 x 640) export, consistent in itself
    wrong = {**side, "onnx_sha256": None, "height": 192, "width": 640,
             "inputs": {"rgb": {"shape": [1, 192, 640, 3], "dtype": "uint8"},
                        "embodied": {"shape": [1, 2, 192, 640], "dtype": "float32"}}}
    sidecar_path(model).write_text(json.dumps(wrong))
    with pytest.raises(ModelFileError, match="'rgb' has shape.*sidecar says"):
        create_backend("tensorrt", str(model), engine_cache_dir=str(cache))
    assert trt_env.builds == []  # both refused before minutes of engine build
    # a prebuilt engine shipped with the sidecar of another export
    create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache))
    shipped = tmp_path / "shipped.engine"
    shipped.write_bytes(next(cache.glob("*.engine")).read_bytes())
    sidecar_path(shipped).write_text(json.dumps(side))
    assert create_backend("tensorrt", str(shipped)).input_size == (H, W)
    sidecar_path(shipped).write_text(json.dumps(wrong))
    with pytest.raises(ModelFileError, match="shipped.engine: input tensor 'rgb'.*sidecar says"):
        create_backend("tensorrt", str(shipped))


def test_int8_engine_key_follows_the_calibration(trt_env, demo_onnx, tmp_path):
    """Other calibration frames (or another calibration cache) give another INT8 engine, not the cached one."""
    base = ("a" * 64, "10.3.0", "Orin", "int8")
    assert engine_key(*base, calibration="frames:1") not in (engine_key(*base), engine_key(*base, calibration="x"))
    assert engine_key(*base, max_batch=4) != engine_key(*base)
    cache = tmp_path / "engines"
    create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache), precision="int8",
                   calibration_data=[sample(s) for s in range(3)])
    create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache), precision="int8",
                   calibration_data=[sample(s) for s in range(3)])
    assert len(trt_env.builds) == 1  # same frames: the cached engine
    create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache), precision="int8",
                   calibration_data=[sample(s) for s in range(5, 7)])
    assert len(trt_env.builds) == 2 and trt_env.builds[-1]["calibrated"] == 2  # calibrated on the new frames
    assert len(list(cache.glob("*.engine"))) == 2
    # no frames: the calibration cache is the identity; a changed cache is a new engine
    create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache), precision="int8")
    assert len(trt_env.builds) == 3 and trt_env.builds[-1]["calibrated"] == 0
    create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache), precision="int8")
    assert len(trt_env.builds) == 3
    (cache / "demo.int8.calib").write_bytes(b"another calibration table")
    create_backend("tensorrt", str(demo_onnx), engine_cache_dir=str(cache), precision="int8")
    assert len(trt_env.builds) == 4
