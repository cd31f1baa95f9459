"""`edepth play` and `edepth record` as separate processes on a real Fast DDS graph (loopback).
ROS_DOMAIN_IDs 72-79."""

import signal
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
    # values that divided by zero, flooded /clock (a period <= 0) or overflowed: refused, named
    for flag, value in (("--clock-hz", "0"), ("--clock-hz", "-10"), ("--clock-hz", "inf"), ("--clock-hz", "nan"),
                        ("--rate", "inf"), ("--wait-timeout", "-1")):
        p = _cli(["play", str(bag), flag, value], 74)
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 2 and f"argument {flag}: {value}: must be a finite number > 0" in out, out
    # nothing replayed (tf2_msgs is not installed here) is a failure, not "played 0.00 s" and exit 0
    p = _cli(["play", str(bag), "--topics", "/tf", "--no-clock"], 74)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 1 and "/tf: not replayed" in out and "no topic of" in out and "could be replayed" in out, out


def test_a_bag_whose_topics_hold_no_message_replays_nothing_and_fails(tmp_path):
    """Topics recorded without a message: 'played 0.00 s', exit 0 (the check was on the topics, not the messages)."""
    empty = tmp_path / "empty"
    with bio.BagWriter(empty) as w:
        for topic, msgtype in (("/camera/image_raw", bio.IMAGE), ("/camera/camera_info", bio.CAMERA_INFO)):
            w.add_topic(topic, msgtype)
    for extra in ([], ["--loop"]):  # --loop: a pass without a message is not repeated (it spun a core forever)
        p = _cli(["play", str(empty), "--no-clock"] + extra, 74)
        try:
            out, _ = p.communicate(timeout=60)
        finally:
            p.kill()
        assert p.returncode == 1 and "/camera/image_raw: 0 messages" in out, (extra, out)
        assert f"no message of {empty} was replayed" in out, out


def test_record_refuses_meaningless_limits_and_fails_when_nothing_arrives(tmp_path):
    """--count 0 meant "no limit", --duration -1 stopped at once, and an empty bag was exit 0."""
    for flag, value, message in (("--duration", "-1", "must be a finite number > 0"), ("--count", "0", "must be >= 1"),
                                 ("--count", "-1", "must be >= 1"),
                                 ("--idle-timeout", "0", "must be a finite number > 0")):
        p = _cli(["record", str(tmp_path / f"r{flag}{value}"), "--topics", "/x", flag, value], 79)
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 2 and f"argument {flag}: {value}: {message}" in out, out
        assert not (tmp_path / f"r{flag}{value}").exists()
    p = _cli(["record", str(tmp_path / "empty"), "--topics", "/no/such/topic", "--duration", "1"], 79)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 1, out
    assert "never seen in the graph: /no/such/topic" in out and "nothing was recorded" in out, out


@pytest.mark.parametrize("command", ["play", "record", "demo"])
def test_a_domain_id_fast_dds_cannot_use_is_named_before_any_work(command, bag, tmp_path, monkeypatch, capsys):
    """--domain-id 300 (or ROS_DOMAIN_ID=300) ended the process inside Fast DDS ("[RTPS Error]
    Calculated port number is too high", exit 1) after the demo had built its bag; demo --rate 0 and
    --timeout -1 were refused only after the bag was built and the node started."""
    from edepth_ros.cli import main

    args = {"play": ["play", str(bag)], "record": ["record", str(tmp_path / "rec"), "--topics", "/x"],
            "demo": ["demo", "--out", str(tmp_path / "demo"), "--cache-dir", str(tmp_path / "cache")]}[command]
    bad = [("--domain-id", "300", "300: must be 0-232"), ("--domain-id", "-1", "-1: must be 0-232"),
           ("--domain-id", "x", "'x': not a whole number")]
    if command == "demo":
        bad += [("--rate", "0", "0: must be a finite number > 0"), ("--timeout", "-1", "-1: must be a finite number > 0"),
                ("--timeout", "nan", "nan: must be a finite number > 0"),
                ("--seed", "4294967296", "4294967296: must be <= 4294967295")]
    for flag, value, message in bad:
        with pytest.raises(SystemExit) as exc:
            main(args + [flag, value])
        assert exc.value.code == 2 and f"argument {flag}: {message}" in capsys.readouterr().err
    monkeypatch.setenv("ROS_DOMAIN_ID", "300")
    assert main(args) == 2
    assert "ROS_DOMAIN_ID 300: must be 0-232" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "rec").exists()


def _offers(path):
    """topic -> [(reliability, durability)] of the offered QoS profiles recorded in the bag."""
    with bio.BagReader(path) as r:
        return {c.topic: [(q.reliability.name, q.durability.name) for q in c.ext.offered_qos_profiles]
                for c in r.connections()}


@pytest.mark.parametrize("sig, domain", [(signal.SIGINT, 75), (signal.SIGTERM, 76)])
def test_record_keeps_the_offered_qos_and_stops_cleanly_on_a_signal(tmp_path, sig, domain):
    """Topics published before the recorder starts are subscribed when the ready file appears (it
    lists them); the publishers' QoS goes into the bag; Ctrl-C and SIGTERM both close the bag
    complete and exit 0."""
    from std_msgs.msg import String

    from ros_util import Graph, reliable_qos, sensor_qos

    graph = Graph(domain, namespace="/")
    try:
        latched = graph.publisher(String, "/latched", reliable_qos(1, transient_local=True))
        sensor = graph.publisher(String, "/sensor", sensor_qos(5))
        latched.publish(String(data="latched-1"))
        out, ready = tmp_path / "rec", tmp_path / "ready"
        rec = _cli(["record", str(out), "--topics", "/latched", "/sensor", "--ready-file", str(ready)], domain)
        _wait_file(ready, rec)
        assert ready.read_text().split() == ["ready", "/latched", "/sensor"]
        assert graph.wait_matched(sensor)
        time.sleep(1.0)  # discovery is two-way: let the recorder's side match our best-effort writer too
        for i in range(20):
            sensor.publish(String(data=f"s{i}"))
            time.sleep(0.02)
        time.sleep(0.5)
        rec.send_signal(sig)
        text, _ = rec.communicate(timeout=30)
    finally:
        graph.close()
    assert rec.returncode == 0 and "Traceback" not in text, text
    assert (out / "metadata.yaml").is_file()
    with bio.BagReader(out) as r:
        counts = {t: i.count for t, i in r.topics.items()}
        assert r.truncated is None
    assert counts["/latched"] == 1 and counts["/sensor"] >= 10, counts  # best effort on loopback: most arrive
    offers = _offers(out)
    assert offers["/latched"] == [("RELIABLE", "TRANSIENT_LOCAL")], offers
    assert offers["/sensor"] == [("BEST_EFFORT", "VOLATILE")], offers


@pytest.mark.parametrize("sig, domain", [(signal.SIGINT, 77), (signal.SIGTERM, 78)])
def test_play_offers_the_recorded_qos_and_stops_cleanly_on_a_signal(tmp_path, sig, domain):
    """A bag with recorded offers (a latched topic, a best-effort one) is replayed with them: a
    transient_local late joiner gets the latched message, /sensor is offered best effort; without
    offers the defaults stay. Ctrl-C and SIGTERM end a looping replay with exit 0."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
    from std_msgs.msg import String

    from ros_util import Collector, Graph, reliable_qos

    def offer(reliability, durability):
        t = QosTime(0, 0)
        return Qos(QosHistory.KEEP_LAST, 1, reliability, durability, t, t, QosLiveliness.AUTOMATIC, t, False)

    bag = tmp_path / "qos"
    String_ = bio.msg_class("std_msgs/msg/String")
    with bio.BagWriter(bag) as w:
        w.add_topic("/latched", "std_msgs/msg/String",
                    offered_qos_profiles=[offer(QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL)])
        w.add_topic("/sensor", "std_msgs/msg/String",
                    offered_qos_profiles=[offer(QosReliability.BEST_EFFORT, QosDurability.VOLATILE)])
        w.add_topic("/plain", "std_msgs/msg/String")
        w.write("/latched", 1, String_(data="latched-1"))
        for i in range(10):
            w.write("/sensor", 2 + i * 100_000_000, String_(data=f"s{i}"))
            w.write("/plain", 3 + i * 100_000_000, String_(data=f"p{i}"))

    graph = Graph(domain, namespace="/")
    play = _cli(["play", str(bag), "--loop", "--no-clock"], domain)
    try:
        assert graph.wait_publishers("/latched") and graph.wait_publishers("/sensor"), play
        time.sleep(1.0)  # the latched message has been published: a subscriber now is a late joiner
        late = Collector()
        graph.node.create_subscription(String, "/latched", late, reliable_qos(1, transient_local=True))
        assert late.wait_for(lambda m: m.data == "latched-1", 10) is not None, "the late joiner got nothing"
        info = {t: graph.node.get_publishers_info_by_topic(t)[0].qos_profile for t in ("/latched", "/sensor", "/plain")}
        assert info["/latched"].durability == DurabilityPolicy.TRANSIENT_LOCAL
        assert info["/sensor"].reliability == ReliabilityPolicy.BEST_EFFORT
        assert (info["/plain"].reliability, info["/plain"].durability) == (ReliabilityPolicy.RELIABLE,
                                                                           DurabilityPolicy.VOLATILE)
    finally:
        play.send_signal(sig)
        text, _ = play.communicate(timeout=30)
        graph.close()
    assert play.returncode == 0 and "Traceback" not in text, text
