"""The first-run demo end to end: bag -> edepth_node process over Fast DDS -> recorder -> report."""

import subprocess
import sys

import numpy as np
import pytest

from edepth_ros.bags import io as bio
from edepth_ros.ros_env import ros_environment

pytestmark = [pytest.mark.slow, pytest.mark.ros]


def _demo(out, cache, *extra):
    return subprocess.run([sys.executable, "-m", "edepth_ros.cli", "demo", "--out", str(out), "--frames", "4",
                           "--cache-dir", str(cache), "--domain-id", "98", *extra],
                          env=ros_environment(98), capture_output=True, text=True, timeout=600)


def test_demo_runs_the_real_node_and_reports(tmp_path):
    out, cache = tmp_path / "demo_out", tmp_path / "cache"
    p = _demo(out, cache)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "built:" in p.stdout and "where everything is" in p.stdout
    report = (out / "report.md").read_text()
    assert "| node output (depth) |" in report and "edepth_node" in report
    # the node's own output, recorded from the graph: one depth image per replayed frame it processed
    with bio.BagReader(cache / next(c.name for c in cache.iterdir())) as r:
        sent = [bio.header_ns(r.deserialize(raw, mt).header) for _, mt, _, raw in r.messages(["/camera/image_raw"])]
    with bio.BagReader(out / "recorded") as r:
        got = [r.deserialize(raw, mt) for _, mt, _, raw in r.messages(["/edepth/depth"])]
    assert 1 <= len(got) <= len(sent) and {bio.header_ns(m.header) for m in got} <= set(sent)
    assert all(m.encoding == "32FC1" and m.header.frame_id == "camera_optical_frame" for m in got)
    d = bio.depth_to_metres(got[0])
    assert np.isfinite(d).mean() > 0.5
    rows = (out / "per_frame.csv").read_text().splitlines()
    assert len(rows) == len(got) + 1
    ply = (out / "pointcloud.ply").read_bytes()
    header = ply[: ply.index(b"end_header")].decode()
    n = int(header.split("element vertex ")[1].split()[0])
    assert n > 1000 and "property uchar red" in header
    # a second run reuses the cached bag
    p2 = _demo(tmp_path / "again", cache, "--no-embodied-eval")
    assert p2.returncode == 0, p2.stdout + p2.stderr
    assert "cached:" in p2.stdout


def test_the_bag_cache_stays_out_of_an_installed_package(tmp_path, monkeypatch):
    """From a checkout the cache is beside the project; installed (no setup.py beside the package) it
    goes to the user's cache folder, never into site-packages; EDEPTH_CACHE and --cache-dir win."""
    from edepth_ros import demo

    opts = demo.DemoOptions()
    monkeypatch.delenv("EDEPTH_CACHE", raising=False)
    assert demo.cache_dir(opts) == demo.PROJECT / ".cache" / "demo"
    monkeypatch.setattr(demo, "PROJECT", tmp_path / "site-packages")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert demo.cache_dir(opts) == tmp_path / "xdg" / "edepth_ros" / "demo"
    monkeypatch.setenv("EDEPTH_CACHE", str(tmp_path / "c"))
    assert demo.cache_dir(opts) == tmp_path / "c" / "demo"
    assert demo.cache_dir(demo.DemoOptions(cache_dir=str(tmp_path / "d"))) == tmp_path / "d"
