"""Command-line values refused when the command line is read (exit 2, the flag named), before any work;
and what `edepth bench embodied|node` write (JSON before the plot, the exact plot path, real thread counts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edepth_ros import cli

ROOT = Path(__file__).resolve().parents[1]


def _refused(argv: list[str], capsys, flag: str) -> str:
    """``edepth ARGV`` exits 2 from argparse with a message naming ``flag``; returns the message."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert f"argument {flag}" in err, err
    return err


def _must_not_start(monkeypatch, what: str, targets) -> None:
    """Each (module, function) in targets fails the test when called: the bad value is refused first."""
    def started(*a, **k):
        raise AssertionError(f"the {what} started; the bad value should have been refused first")

    for module, name in targets:
        monkeypatch.setattr(module, name, started)


@pytest.fixture
def no_bench_work(monkeypatch):
    """Any benchmark body that starts fails the test: a bad value must be refused before the run."""
    from edepth_ros.bench import embodied, node

    _must_not_start(monkeypatch, "benchmark", [(embodied, "measure"), (node, "measure")])


@pytest.fixture
def no_long_work(monkeypatch):
    """Rendering a demo bag or describing synthetic frames fails the test (refused first, or hours of work)."""
    from edepth_ros import demo, export

    _must_not_start(monkeypatch, "long job", [(demo, "run_demo"), (export, "_synthetic_texts")])


# ------------------------------------------------------------------------------------- bench node


@pytest.mark.parametrize("args, flag", [
    (["--warmup", "-5", "--frames", "2"], "--warmup"),
    (["--warmup", "-2"], "--warmup"),
    (["--frames", "0"], "--frames"),
    (["--frames", "nan"], "--frames"),
    (["--repeat", "0"], "--repeat"),
    (["--plot", "PLOT/node_plot.jpgx"], "--plot"),
    (["--plot", "PLOT/plot_noext"], "--plot"),
])
def test_bench_node_bad_numbers_and_plot_suffix_exit_2_before_the_run(args, flag, tmp_path, capsys, no_bench_work):
    args = [a.replace("PLOT", str(tmp_path)) for a in args]
    err = _refused(["bench", "node", *args], capsys, flag)
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_bench_node_writes_json_before_the_plot(tmp_path, monkeypatch, capsys):
    # a plot that fails (disk full, a matplotlib error) must not lose the measured results
    from edepth_ros.bench import node

    measured = {"backend": "embodied", "end_to_end": {"latency_ms": {"median": 12.5}, "_samples": {}},
                "pointcloud": {"points": 1, "_samples": {}}}
    monkeypatch.setattr(node, "measure", lambda args: json.loads(json.dumps(measured)))

    def failing_plot(path, samples, out):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(node, "plot", failing_plot)
    out_json, png = tmp_path / "node.json", tmp_path / "node.png"
    with pytest.raises(OSError):
        cli.main(["bench", "node", "--json", str(out_json), "--plot", str(png)])
    assert json.loads(out_json.read_text())["end_to_end"]["latency_ms"]["median"] == 12.5


# --------------------------------------------------------------------------------- bench embodied


@pytest.mark.parametrize("args, flag", [
    (["--seed", "-1"], "--seed"),
    (["--seed", "4294967296"], "--seed"),
    (["--repeat", "0"], "--repeat"),
    (["--warmup", "-7", "--repeat", "1"], "--warmup"),
    (["--png", "PLOT/plot.jpgx"], "--png"),
    (["--png", "PLOT/plot_noext"], "--png"),
])
def test_bench_embodied_bad_values_exit_2_before_the_run(args, flag, tmp_path, capsys, no_bench_work):
    args = [a.replace("PLOT", str(tmp_path)) for a in args]
    err = _refused(["bench", "embodied", *args], capsys, flag)
    assert "Traceback" not in err and "SyntheticError" not in err
    assert list(tmp_path.iterdir()) == []


def _bench_embodied(tmp_path, *extra: str) -> dict:
    """`edepth bench embodied --repeat 2 --warmup 0 --json ...` in a fresh process; its JSON.

    OMP_NUM_THREADS=2 as the Makefile sets it: it must be set before numpy loads, hence the subprocess.
    """
    out_json = tmp_path / "e.json"
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-m", "edepth_ros.cli", "bench", "embodied", "--repeat", "2",
                           "--warmup", "0", "--json", str(out_json), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout) == json.loads(out_json.read_text())
    return json.loads(out_json.read_text())


def test_bench_embodied_ratio_is_reference_median_over_embodied_median(tmp_path):
    out = _bench_embodied(tmp_path)
    assert out["ratio"] == pytest.approx(out["reference_ms"]["median"] / out["embodied_ms"]["median"], rel=1e-12)
    assert out["ratio_cpu"] == pytest.approx(out["reference_ms"]["cpu_median"] / out["embodied_ms"]["cpu_median"],
                                             rel=1e-12)
    assert out["meets_targets"]["ratio"] == (out["ratio"] >= out["targets"]["ratio"])


def test_bench_embodied_reports_threads_used_and_writes_exact_png_path(tmp_path):
    svg = tmp_path / "plot.svg"
    out = _bench_embodied(tmp_path, "--png", str(svg))
    pools = out["frame"]["thread_pools"]
    assert pools["opencv"] == 1
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:  # without it the pools cannot be limited or read: the JSON says so
        assert "threadpoolctl" in str(pools.get("blas"))
    else:
        blas = {k: v for k, v in pools.items() if k.startswith("blas:")}
        assert blas and all(v == 1 for v in blas.values()), pools
        assert out["frame"]["threads"] == 1
    # exactly the path given: an SVG file at plot.svg, nothing else beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.json", "plot.svg"]
    assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))


# ------------------------------------------------------------------------------------------- demo


@pytest.mark.parametrize("frames", ["100000000", "0", "-3", "x"])
def test_demo_frames_out_of_range_exit_2_before_the_out_folder(frames, tmp_path, capsys, no_long_work):
    out = tmp_path / "demo_out"
    _refused(["demo", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--frames", frames],
             capsys, "--frames")
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_demo_cache_dir_that_is_a_file_exit_2_naming_the_flag(tmp_path, capsys, no_long_work):
    a_file = tmp_path / "passwd"
    a_file.write_text("root:x:0:0\n")
    out = tmp_path / "demo_out"
    err = _refused(["demo", "--out", str(out), "--cache-dir", str(a_file)], capsys, "--cache-dir")
    assert "not a folder" in err and "Errno" not in err
    assert not out.exists()


# ----------------------------------------------------------------------------------------- export


@pytest.mark.parametrize("source", ["synthetic:x", "synthetic:100000000", "synthetic:0", "synthetic:"])
def test_export_text_from_synthetic_n_checked_when_read(source, tmp_path, capsys, no_long_work):
    err = _refused(["export", "--checkpoint", str(tmp_path / "m.pt"), "--height", "96", "--width", "320",
                    "--out", str(tmp_path / "m.onnx"), "--text-from", source], capsys, "--text-from")
    assert "invalid literal" not in err
    assert list(tmp_path.iterdir()) == []


def test_read_texts_synthetic_n_errors_name_text_from(monkeypatch):
    from edepth_ros import export

    def started(n):
        raise AssertionError(f"started describing {n} frames")

    monkeypatch.setattr(export, "_synthetic_texts", started)
    for source in ("synthetic:x", "synthetic:100000000", "synthetic:0"):
        with pytest.raises(export.ExportError, match="--text-from"):
            export.read_texts(source)


# ---------------------------------------------------------------------------------- embodied-eval


@pytest.mark.parametrize("args, flag", [
    (["--sidewalk-height", "5"], "--sidewalk-height"),
    (["--sidewalk-height", "1e300"], "--sidewalk-height"),
    (["--sidewalk-height", "nan"], "--sidewalk-height"),
    (["--inpaint-scale", "5"], "--inpaint-scale"),
    (["--inpaint-scale", "-0.1"], "--inpaint-scale"),
    (["--ground-threshold", "inf"], "--ground-threshold"),
    (["--ground-threshold", "-1"], "--ground-threshold"),
])
def test_embodied_eval_config_values_name_the_flag(args, flag, tmp_path, capsys):
    err = _refused(["embodied-eval", "--kitti-object", str(tmp_path), *args], capsys, flag)
    assert "EmbodiedConfig." not in err


def test_embodied_eval_in_range_values_still_parse():
    import argparse

    from edepth_ros.commands import embodied_eval

    p = argparse.ArgumentParser()
    embodied_eval.add_arguments(p)
    a = p.parse_args(["--kitti-object", "K", "--sidewalk-height", "0.15", "--inpaint-scale", "1"])
    assert (a.sidewalk_height, a.inpaint_scale, a.ground_threshold) == (0.15, 1.0, 0.10)
