"""Replay a ROS 2 bag into a live graph with rclpy, at bag timing, with /clock (no rosbag2 needed).

Messages are published as the bag's raw CDR bytes (``Publisher.publish(bytes)``): nothing is
deserialized or re-serialized per message. Message types without a Python package in this
environment (tf2_msgs from PyPI, for one) are skipped with a note.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from . import io as bio

log = logging.getLogger(__name__)

STATIC_TOPICS = ("/tf_static",)


@dataclass
class PlayStats:
    published: dict = field(default_factory=dict)
    skipped_topics: dict = field(default_factory=dict)
    clock_messages: int = 0
    loops: int = 0
    wall_s: float = 0.0
    bag_s: float = 0.0
    max_lag_ms: float = 0.0
    truncated: Optional[str] = None


def message_class(msgtype: str):
    """The rclpy message class for 'pkg/msg/Name', or raise ImportError naming the package."""
    pkg, _, name = msgtype.split("/")
    module = importlib.import_module(f"{pkg}.msg")
    return getattr(module, name)


def _qos(topic: str, offers: list = ()):
    """As ``ros2 bag play``: reliability and durability from the recorded publishers' offers
    (rosbags ``Qos``; reliable / transient_local only when every offer is); without usable offers,
    reliable and volatile (transient_local for /tf_static)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    static = topic in STATIC_TOPICS
    reliable, latched = True, static
    known = [o for o in offers if o.reliability.name in ("RELIABLE", "BEST_EFFORT")
             and o.durability.name in ("VOLATILE", "TRANSIENT_LOCAL")]
    if known:
        reliable = all(o.reliability.name == "RELIABLE" for o in known)
        latched = all(o.durability.name == "TRANSIENT_LOCAL" for o in known)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1 if static else 10,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def _offers(reader, topic: str) -> list:
    """The offered QoS profiles recorded for ``topic`` (all its connections; [] when none)."""
    return [q for c in reader.connections([topic])
            for q in (getattr(getattr(c, "ext", None), "offered_qos_profiles", None) or [])]


def play(bag, rate: float = 1.0, loop: bool = False, topics: Optional[list] = None, remap: Optional[dict] = None,
         clock: bool = True, clock_period: float = 0.01, wait_for: Optional[list] = None,
         wait_timeout: float = 30.0, start_delay: float = 0.0, node=None,
         should_stop: Callable[[], bool] = lambda: False, max_loops: Optional[int] = None) -> PlayStats:
    """Publish a bag's messages at bag timing divided by ``rate``.

    topics: only these (default all). remap: {bag topic: published topic}. clock: publish
    rosgraph_msgs/Clock on /clock every ``clock_period`` seconds of bag time (and before each
    message). wait_for: published topics that must have a subscriber before playing starts (a
    node that starts late would otherwise miss the first frames). node: an existing rclpy node
    (rclpy already initialised); otherwise one is created and destroyed here. Publishers offer the
    QoS recorded in the bag where it has one (``_qos``). When rclpy's context is shut down (Ctrl-C,
    SIGTERM) playing stops and the stats so far are returned.
    """
    import rclpy
    from rosgraph_msgs.msg import Clock

    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"--rate {rate}: must be a finite number > 0")
    if not (math.isfinite(clock_period) and clock_period > 0):  # 0 or less would publish /clock in a busy loop
        raise ValueError(f"clock_period {clock_period}: must be a finite number of seconds > 0 (--clock-hz)")
    remap = dict(remap or {})
    stats = PlayStats()
    own = node is None
    if own:
        if not rclpy.ok():
            rclpy.init()
        node = rclpy.create_node("edepth_player")

    def stopping() -> bool:
        return should_stop() or not node.context.ok()

    t_play0 = None
    try:
        reader = bio.BagReader(bag)
        with reader:
            if topics:
                reader.require_topics(topics)
            pubs = {}
            for conn in reader.connections(topics):
                if conn.topic in pubs or conn.topic in stats.skipped_topics:
                    continue
                try:
                    cls = message_class(conn.msgtype)
                except (ImportError, AttributeError, ValueError):
                    stats.skipped_topics[conn.topic] = (f"{conn.msgtype}: no Python message package here "
                                                        "(install its interface package to replay it)")
                    log.warning("not replaying %s: %s", conn.topic, stats.skipped_topics[conn.topic])
                    continue
                out_topic = remap.get(conn.topic, conn.topic)
                qos = _qos(conn.topic, _offers(reader, conn.topic))
                pubs[conn.topic] = node.create_publisher(cls, out_topic, qos)
                stats.published[out_topic] = 0
            clock_pub = node.create_publisher(Clock, "/clock", 10) if clock else None
            _wait_for_subscribers(node, pubs, remap, wait_for or [], wait_timeout)
            if start_delay:
                time.sleep(start_delay)
            t_play0 = time.perf_counter()
            period_ns = int(clock_period * 1e9)
            while True:
                bag_t0 = None
                wall_t0 = time.perf_counter()
                last_clock = None
                for topic, _msgtype, t, raw in reader.messages(list(pubs)):
                    if stopping():
                        break
                    if bag_t0 is None:
                        bag_t0 = t
                    due = wall_t0 + (t - bag_t0) * 1e-9 / rate
                    # /clock follows bag time every clock_period while waiting, and reaches t before the message
                    while True:
                        now = time.perf_counter()
                        if clock_pub is not None:
                            cur = min(t, bag_t0 + int((now - wall_t0) * rate * 1e9))
                            if last_clock is None or cur - last_clock >= period_ns or (now >= due and cur > last_clock):
                                clock_pub.publish(_clock(Clock, cur))
                                stats.clock_messages += 1
                                last_clock = cur
                        if now >= due:
                            break
                        time.sleep(max(0.0, min(due - now, clock_period / rate, 0.05)))
                    stats.max_lag_ms = max(stats.max_lag_ms, (time.perf_counter() - due) * 1e3)
                    pubs[topic].publish(raw if isinstance(raw, bytes) else bytes(raw))
                    stats.published[remap.get(topic, topic)] += 1
                    if bag_t0 is not None:
                        stats.bag_s = max(stats.bag_s, (t - bag_t0) * 1e-9)
                stats.loops += 1
                stats.truncated = reader.truncated
                if bag_t0 is None and not stopping():  # a pass with no message: --loop would spin a core forever
                    break
                if not loop or stopping() or (max_loops is not None and stats.loops >= max_loops):
                    break
            stats.wall_s = time.perf_counter() - t_play0
            time.sleep(0.2)  # let reliable writers hand the last messages over before the node goes
    except Exception:
        if node.context.ok():
            raise
        # SIGTERM / Ctrl-C: rclpy shut the context down between our check and a publish: we stop
        if t_play0 is not None:
            stats.wall_s = time.perf_counter() - t_play0
    finally:
        if own:
            node.destroy_node()
            if rclpy.ok():
                rclpy.shutdown()
    return stats


def _clock(Clock, t_ns: int):
    from builtin_interfaces.msg import Time

    return Clock(clock=Time(sec=int(t_ns // 1_000_000_000), nanosec=int(t_ns % 1_000_000_000)))


def _wait_for_subscribers(node, pubs: dict, remap: dict, wait_for: list, timeout: float) -> None:
    if not wait_for:
        return
    by_out = {remap.get(t, t): p for t, p in pubs.items()}
    missing = [t for t in wait_for if t not in by_out]
    if missing:
        raise bio.BagError(f"--wait-for {', '.join(missing)}: not a replayed topic (replayed: {', '.join(by_out)})")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(by_out[t].get_subscription_count() > 0 for t in wait_for):
            time.sleep(0.3)  # discovery is two-way: give the subscriber's side a moment too
            return
        time.sleep(0.05)
    idle = [t for t in wait_for if by_out[t].get_subscription_count() == 0]
    raise TimeoutError(f"no subscriber on {', '.join(idle)} after {timeout:.0f} s (ROS_DOMAIN_ID "
                       f"{os.environ.get('ROS_DOMAIN_ID', '0')}); is the node running in the same domain?")
