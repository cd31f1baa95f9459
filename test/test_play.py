"""`edepth play` and `edepth record` as separate processes on a real Fast DDS graph (loopback)."""

import subprocess
import sys
import time

import pytest

from edepth_ros.bags import io as bio
from edepth_ros.bags import make_bag as mb
from edepth_ros.ros_env import ros_environment

pytestmark = pytest.mark.ros
N = 3


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("play") / "syn"
    mb.make_synthetic_bag(path, frames=N, seed=4, width=414, height=125, progress=False)
    return path


def _cli(args, domain, **kw):
    return subprocess.Popen([sys.executable, "-m", "edepth_ros.cli", *args], env=ros_environment(domain),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _wait_file(path, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"recorder exited early:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            pytest.fail("recorder did not start")
        time.sleep(0.1)


def _messages(path, topic):
    with bio.BagReader(path) as r:
        return [(bytes(raw), r.deserialize(raw, mt)) for _, mt, _, raw in r.messages([topic])]


def test_replay_publishes_the_bag_bytes_with_clock(bag, tmp_path):
    domain = 72
    out = tmp_path / "rec"
    ready = tmp_path / "ready"
    rec = _cli(["record", str(out), "--topics", "/camera/image_raw", "/camera/camera_info", "/clock",
                "--idle-timeout", "4", "--ready-file", str(ready)], domain)
    _wait_file(ready, rec)
    play = _cli(["play", str(bag), "--rate", "2", "--wait-for", "/camera/image_raw", "/camera/camera_info"], domain)
    play_out, _ = play.communicate(timeout=120)
    assert play.returncode == 0, play_out
    rec_out, _ = rec.communicate(timeout=120)
    assert rec.returncode == 0, rec_out
    assert "/tf: not replayed (tf2_msgs/msg/TFMessage" in play_out  # said, not silently dropped
    # the exact CDR bytes of the bag arrive, in order
    sent = _messages(bag, "/camera/image_raw")
    got = _messages(out, "/camera/image_raw")
    assert [b for b, _ in got] == [b for b, _ in sent]
    assert len(_messages(out, "/camera/camera_info")) == N
    # /clock follows bag time: monotonic, from the first message's stamp to the last's
    clock = [m.clock.sec * 1_000_000_000 + m.clock.nanosec for _, m in _messages(out, "/clock")]
    stamps = [bio.header_ns(m.header) for _, m in sent]
    assert clock == sorted(clock) and len(clock) > N
    assert clock[0] == stamps[0] and clock[-1] == stamps[-1]


def test_loop_and_remap(bag, tmp_path):
    domain = 73
    out = tmp_path / "rec"
    ready = tmp_path / "ready"
    rec = _cli(["record", str(out), "--topics", "/cam/img", "--count", str(2 * N), "--duration", "90",
                "--ready-file", str(ready)], domain)
    _wait_file(ready, rec)
    play = _cli(["play", str(bag), "--loop", "--rate", "4", "--topics", "/camera/image_raw", "--no-clock",
                 "--remap", "/camera/image_raw:=/cam/img", "--wait-for", "/cam/img"], domain)
    try:
        rec_out, _ = rec.communicate(timeout=120)
    finally:
        play.send_signal(2)  # Ctrl-C ends a looping replay
        play.communicate(timeout=30)
    assert rec.returncode == 0, rec_out
    got = [b for b, _ in _messages(out, "/cam/img")]
    assert len(got) >= 2 * N
    assert got[N:2 * N] == got[:N]  # the second loop replays the same messages


def test_bad_input_is_named(bag, tmp_path):
    p = _cli(["play", str(tmp_path / "nope")], 74)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 2 and "does not exist" in out
    p = _cli(["play", str(bag), "--wait-for", "/not_in_bag"], 74)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 2 and "--wait-for /not_in_bag: not a replayed topic" in out
