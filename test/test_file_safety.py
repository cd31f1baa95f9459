"""Safety of loaded and written files.

- Checkpoints are loaded with ``torch.load(weights_only=True)`` (checked in the source of every
  module) and a pickle that would run code when unpickled is refused, its code never run.
- No pickle anywhere in the product (bags are CDR through rosbags; configs go through
  ``yaml.safe_load`` only); a YAML config with python tags is refused and nothing runs.
- Names from data or parameters joined under an output folder cannot climb out of it
  (``safe_paths.confined_path``); commands write only where they are told.
- A checkpoint being written when its process is killed (kill -9) never leaves a corrupt file
  under the final name.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edepth_ros.safe_paths import UnsafePathError, confined_path, safe_name

PROJECT = Path(__file__).resolve().parents[1]
PRODUCT = sorted(p for p in (PROJECT / "edepth_ros").rglob("*.py")) + sorted((PROJECT / "launch").glob("*.py"))


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _dotted(func) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _kw(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_source_loads_no_pickle_and_only_safe_yaml():
    """Scan the product's source (AST, not text): what would run code from a file is absent."""
    problems = []
    for path in PRODUCT:
        tree = ast.parse(path.read_text(), str(path))
        where = lambda n: f"{path.relative_to(PROJECT)}:{n.lineno}"  # noqa: E731
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                bad = [n for n in names if n and n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib", "shelve",
                                                                     "marshal", "cloudpickle")]
                if bad:
                    problems.append(f"{where(node)}: imports {bad}")
        for call in _calls(tree):
            name = _dotted(call.func)
            if name == "torch.load":
                wo = _kw(call, "weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    problems.append(f"{where(call)}: torch.load without weights_only=True")
            elif name in ("torch.jit.load", "torch.package.PackageImporter"):
                problems.append(f"{where(call)}: {name} runs code from the file")
            elif name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all"):
                problems.append(f"{where(call)}: {name} (use yaml.safe_load)")
            elif name in ("np.load", "numpy.load"):
                ap = _kw(call, "allow_pickle")
                if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                    problems.append(f"{where(call)}: np.load with allow_pickle")
            elif isinstance(call.func, ast.Name) and name in ("eval", "exec"):
                problems.append(f"{where(call)}: builtin {name}")
            elif name.startswith("subprocess.") and isinstance(_kw(call, "shell"), ast.Constant) \
                    and _kw(call, "shell").value is True:
                problems.append(f"{where(call)}: subprocess with shell=True")
    assert not problems, "\n".join(problems)
    assert len(PRODUCT) > 30  # the scan saw the package


class _RunsCode:
    """Unpickling this calls open(marker, 'w'): the file's existence proves code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    torch = pytest.importorskip("torch")
    from edepth_ros.network import CheckpointError, load_checkpoint

    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "edepth", "model": _RunsCode(marker), "config": {}}, evil)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(evil)
    assert not marker.exists(), "the checkpoint's pickled code ran"

    from edepth_ros.backends import create_backend
    from edepth_ros.model_io import ModelFileError

    with pytest.raises((ModelFileError, CheckpointError), match="evil.pt"):
        create_backend("torch", str(evil))
    assert not marker.exists()


def test_a_safetensors_file_is_not_a_way_around_the_check(tmp_path):
    """A plain safetensors file (tensors only) is not an edepth checkpoint: refused, named."""
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    from edepth_ros.network import CheckpointError, load_checkpoint

    path = tmp_path / "weights.pt"
    st.save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="weights.pt"):
        load_checkpoint(path)


EVIL_YAML = "!!python/object/apply:builtins.open ['{marker}', 'w']\n"


def test_yaml_with_python_tags_is_refused_and_nothing_runs(tmp_path):
    from edepth_ros.ros.params import ParameterError, read_params_file

    marker = tmp_path / "yaml_ran"
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    model: " + EVIL_YAML.format(marker=marker))
    with pytest.raises(ParameterError, match="params.yaml"):
        read_params_file(params)
    assert not marker.exists()

    top = tmp_path / "top.yaml"
    top.write_text(EVIL_YAML.format(marker=marker))
    with pytest.raises(ParameterError, match="top.yaml"):
        read_params_file(top)
    assert not marker.exists()

    pytest.importorskip("torch")
    import yaml

    from edepth_ros.network import build_model
    from edepth_ros.training import TrainConfig

    cfg = tmp_path / "train.yaml"
    cfg.write_text("model: " + EVIL_YAML.format(marker=marker))
    with pytest.raises((ValueError, yaml.YAMLError)):
        TrainConfig.load(cfg)
    with pytest.raises((ValueError, yaml.YAMLError)):
        build_model(str(cfg))
    assert not marker.exists()


# ------------------------------------------------------------------------ confined paths
def test_confined_path_keeps_names_inside_their_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert confined_path(out, "run1", "depth.png") == (out / "run1" / "depth.png").resolve()
    assert confined_path(out, "a/../b.png") == (out / "b.png").resolve()
    for bad in ("../escape.png", "/etc/passwd", "a/../../escape", "..", "x\x00y"):
        with pytest.raises(UnsafePathError, match="frame_id"):
            confined_path(out, bad, what="frame_id")
    (out / "link").symlink_to(tmp_path)  # a link inside that leads out
    with pytest.raises(UnsafePathError, match="outside"):
        confined_path(out, "link", "x.png")
    assert safe_name("/cam/image_raw") == "cam_image_raw"
    assert safe_name("../../etc/passwd") == "etc_passwd"
    with pytest.raises(UnsafePathError):
        safe_name("/../")


# ------------------------------------------------------------------------ output flags
# every output a command writes at the end of its run: FILE flags given a folder, DIR flags a file
OUTPUT_FLAGS = [
    ("edepth", ["embodied-eval", "--kitti-object", "K", "--json", "{dir}"], "--json"),
    ("edepth", ["embodied-eval", "--kitti-object", "K", "--plots", "{file}"], "--plots"),
    ("edepth", ["bench", "embodied", "--json", "{dir}"], "--json"),
    ("edepth", ["bench", "embodied", "--png", "{dir}"], "--png"),
    ("edepth", ["bench", "model", "--json", "{dir}"], "--json"),
    ("edepth", ["bench", "model", "--png", "{dir}"], "--png"),
    ("edepth", ["bench", "node", "--json", "{dir}"], "--json"),
    ("edepth", ["bench", "node", "--plot", "{dir}"], "--plot"),
    ("edepth", ["export", "--checkpoint", "c.pt", "--height", "64", "--width", "64", "--out", "{dir}"], "--out"),
    ("edepth", ["export", "--checkpoint", "c.pt", "--height", "64", "--width", "64", "--out", "{dir}/m.onnx",
                "--json", "{dir}"], "--json"),
    ("edepth", ["eval", "bag", "B", "--depth-topic", "/d", "--embodied-only", "--out", "{file}"], "--out"),
    ("edepth", ["train", "--config", "models/demo.yaml", "--output", "{file}"], "--output"),
    ("edepth", ["demo", "--out", "{file}"], "--out"),
    ("synthetic.bench", ["--json", "{dir}"], "--json"),
    ("synthetic.preview", ["--out", "{file}"], "--out"),
    ("training.report", ["curves", "--png", "{dir}"], "--png"),
    ("training.report", ["ablation", "--config", "c.yaml", "--out", "{file}"], "--out"),
]


@pytest.mark.parametrize("entry, argv, flag", OUTPUT_FLAGS,
                         ids=[f"{e}:{' '.join(a[:2])}:{f}" for e, a, f in OUTPUT_FLAGS])
def test_an_output_that_cannot_be_written_is_refused_before_the_run(tmp_path, capsys, entry, argv, flag):
    """An output the end of a (long) run could not write used to fail only there, after the work."""
    import importlib

    (tmp_path / "a_file").write_text("x")
    argv = [a.format(dir=tmp_path, file=tmp_path / "a_file") for a in argv]
    main = (importlib.import_module("edepth_ros.cli") if entry == "edepth"
            else importlib.import_module(f"edepth_ros.{entry}")).main
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument {flag}: " in err and ("a folder" in err or "not a folder" in err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_export_report_cannot_replace_the_model_sidecar(tmp_path, capsys):
    """`export --out m.onnx --json m.json` wrote the check report over the sidecar (exit 0): the model
    no longer loaded. Refused before the export; and `bench model --iters 0` was a numpy traceback."""
    from edepth_ros.cli import main

    rc = main(["export", "--checkpoint", str(tmp_path / "c.pt"), "--height", "64", "--width", "64",
               "--out", str(tmp_path / "m.onnx"), "--json", str(tmp_path / "m.json")])
    assert rc == 2 and "is the sidecar of --out" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    for flag, value in (("--iters", "0"), ("--iters", "-3"), ("--warmup", "-1")):
        with pytest.raises(SystemExit):
            main(["bench", "model", flag, value])
        assert f"argument {flag}: {value}: must be >=" in capsys.readouterr().err


def _tree(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*") if ".pytest_cache" not in p.parts
            and "__pycache__" not in p.parts and ".hypothesis" not in p.parts}


def _git_status() -> set:
    """Every file of the checkout (ignored ones too: eval_out/, runs/...) but the venv and caches."""
    skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", ".cache"}
    found = set()
    for root, dirs, files in os.walk(PROJECT):
        dirs[:] = [d for d in dirs if d not in skip]
        found.update(str(Path(root, f).relative_to(PROJECT)) for f in files)
    return found


def _run_confined(tmp_path, args, timeout=600):
    """Run `edepth ARGS` from an empty working directory; fail if it wrote into that directory or
    into the checkout (files other engineers are editing at the same time are not counted)."""
    work = tmp_path / "cwd"
    work.mkdir(exist_ok=True)
    before = _git_status()
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "OMP_NUM_THREADS": "1", "EDEPTH_TEXT_CACHE": str(tmp_path / "tc")}
    r = subprocess.run([sys.executable, "-m", "edepth_ros.cli", *map(str, args)], cwd=work, env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert _tree(work) == set(), f"wrote into the working directory: {_tree(work)}"
    new = {line for line in _git_status() - before if not line.endswith((".py", ".md", ".yaml", ".txt"))}
    assert not new, f"the command wrote into the checkout: {new}"
    return r


def test_embodied_eval_writes_only_where_it_is_told(tmp_path, kitti_dir):
    """`edepth embodied-eval --json --plots`: its files appear under the folders given, nowhere else."""
    out = tmp_path / "out"
    _run_confined(tmp_path, ["embodied-eval", "--kitti-object", kitti_dir / "object", "--plane", "static",
                             "--json", out / "r.json", "--plots", out / "plots"])
    assert (out / "r.json").is_file() and any((out / "plots").iterdir())


def test_make_bag_and_bag_eval_write_only_where_they_are_told(tmp_path):
    """`edepth make-bag synthetic OUT` then `edepth eval bag OUT --out REPORT` (engineer F's commands)."""
    bag, report = tmp_path / "bag", tmp_path / "report"
    _run_confined(tmp_path, ["make-bag", "synthetic", bag, "--frames", "3", "--width", "160", "--height", "48"])
    assert any(bag.iterdir())
    _run_confined(tmp_path, ["eval", "bag", bag, "--lidar-topic", "/lidar/points", "--embodied-only", "--out", report,
                             "--quiet"])
    assert any(report.iterdir())


# ------------------------------------------------------------------ kill -9 during a checkpoint
WRITER = r"""
import sys, torch
from edepth_ros.network import build_model, save_checkpoint
torch.set_num_threads(1)
net = build_model("demo")
i = 0
print("ready", flush=True)
while True:
    save_checkpoint(sys.argv[1], net, {"step": i})
    i += 1
"""


@pytest.mark.timeout(600)
def test_a_checkpoint_interrupted_by_kill_9_never_leaves_a_corrupt_file(tmp_path):
    """A process saving checkpoints in a loop is killed with SIGKILL at several moments: the file
    under the final name always loads (the previous complete checkpoint), never a partial one."""
    pytest.importorskip("torch")
    from edepth_ros.network import build_model, load_checkpoint, save_checkpoint

    latest = tmp_path / "latest.pt"
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "OMP_NUM_THREADS": "1"}
    steps = []
    for delay in (0.4, 1.3, 2.6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(latest)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        if latest.exists():
            net = load_checkpoint(latest)  # raises CheckpointError on a partial file
            steps.append(net.checkpoint_meta.get("step"))
    assert steps, "no checkpoint was ever completed"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "latest.pt"]
    print({"loaded_steps_after_kill": steps, "temporary_files_left": leftovers})
    # the killed writers' temporary files are cleared by the next save, so they never pile up
    save_checkpoint(latest, build_model("demo"), {"step": -1})
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]
