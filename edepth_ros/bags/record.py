"""Record topics of a live graph into a ROS 2 bag: rclpy raw subscriptions, written by rosbags.

Each subscription is ``raw=True`` (the callback gets the CDR bytes, nothing is deserialized) and
its QoS follows the publishers it finds (reliable only when every publisher is reliable, so a
best-effort sensor topic is still recorded); the publishers' QoS is written to the bag as its
offered_qos_profiles (what ``edepth play`` and ``ros2 bag play`` offer again). Topics that do not
exist yet are subscribed as soon as they appear. Log time is the receive time on the recorder's
clock (ROS time, /clock with use_sim_time); message headers are untouched.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from . import io as bio

log = logging.getLogger(__name__)

READY_WAIT = 2.0  # seconds of discovery the ready file waits for topics not seen yet


@dataclass
class RecordStats:
    counts: dict = field(default_factory=dict)
    types: dict = field(default_factory=dict)
    missing: list = field(default_factory=list)
    wall_s: float = 0.0


class Recorder:
    """Subscribe to ``topics`` on ``node`` and write every message to the bag at ``out``."""

    def __init__(self, node, out, topics: list, storage: str = "mcap"):
        self.node = node
        self.topics = [t if t.startswith("/") else "/" + t for t in topics]
        self.writer = bio.BagWriter(out, storage).__enter__()
        self.stats = RecordStats(counts={t: 0 for t in self.topics})
        self._subs: dict = {}
        self.closed = False

    def poll_graph(self) -> None:
        """Subscribe to wanted topics that have appeared in the graph since the last call."""
        from .play import message_class

        wanted = [t for t in self.topics if t not in self._subs]
        if not wanted:
            return
        types = dict(self.node.get_topic_names_and_types())
        for topic in wanted:
            if topic not in types:
                continue
            msgtype = types[topic][0]
            try:
                cls = message_class(msgtype)
            except (ImportError, AttributeError):
                log.warning("cannot record %s: no Python package for %s", topic, msgtype)
                self._subs[topic] = None
                continue
            infos = self.node.get_publishers_info_by_topic(topic)  # once: the bag's offers and our QoS
            try:
                self.writer.add_topic(topic, msgtype, offered_qos_profiles=[offered_qos(i.qos_profile) for i in infos])
            except bio.BagError as exc:
                log.warning("cannot record %s: %s", topic, exc)
                self._subs[topic] = None
                continue
            self.stats.types[topic] = msgtype
            self._subs[topic] = self.node.create_subscription(
                cls, topic, lambda raw, t=topic: self._on_message(t, raw), self._qos_for(infos), raw=True)
            log.info("recording %s (%s)", topic, msgtype)

    def subscribed(self) -> list:
        return [t for t in self.topics if self._subs.get(t) is not None]

    def all_seen(self) -> bool:
        """Every wanted topic is subscribed (or known to be unrecordable)."""
        return all(t in self._subs for t in self.topics)

    @staticmethod
    def _qos_for(infos):
        """Our subscription's QoS from the topic's publishers (get_publishers_info_by_topic)."""
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        reliable = bool(infos) and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
        latched = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                          reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)

    def _on_message(self, topic: str, raw: bytes) -> None:
        if self.closed:
            return
        self.writer.write_raw(topic, self.node.get_clock().now().nanoseconds, raw)
        self.stats.counts[topic] += 1

    def close(self) -> RecordStats:
        if not self.closed:
            self.closed = True
            for sub in self._subs.values():
                if sub is not None:
                    self.node.destroy_subscription(sub)
            self.writer.__exit__(None, None, None)
            self.stats.missing = [t for t in self.topics if self._subs.get(t) is None]
        return self.stats


def record(out, topics: list, storage: str = "mcap", duration: Optional[float] = None,
           until_counts: Optional[dict] = None, idle_timeout: Optional[float] = None,
           should_stop: Callable[[], bool] = lambda: False, ready_file=None) -> RecordStats:
    """Record until ``duration`` seconds pass, every topic in ``until_counts`` reached its count,
    no message came for ``idle_timeout`` seconds after the first, or ``should_stop()``.

    ready_file: a path written once every wanted topic already in the graph is subscribed (after up
    to READY_WAIT s of discovery for those not seen yet): "ready", then the subscribed topics, one a
    line. A parent process waits for it before publishing.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException

    until_counts = {"/" + t.lstrip("/"): n for t, n in (until_counts or {}).items()}
    if not rclpy.ok():
        rclpy.init()
    node = rclpy.create_node("edepth_recorder")
    rec = Recorder(node, out, topics, storage)
    t0 = time.perf_counter()
    last_total, last_change = 0, None
    try:
        next_poll = 0.0
        while rclpy.ok() and not should_stop():
            now = time.perf_counter()
            if now >= next_poll:
                rec.poll_graph()
                next_poll = now + 0.25
                if ready_file and (rec.all_seen() or now - t0 >= READY_WAIT):
                    _write_ready(ready_file, rec.subscribed())  # after the subscriptions exist
                    ready_file = None
            rclpy.spin_once(node, timeout_sec=0.05)
            total = sum(rec.stats.counts.values())
            if total != last_total:
                last_total, last_change = total, time.perf_counter()
            if duration is not None and now - t0 >= duration:
                break
            if until_counts and all(rec.stats.counts.get(t, 0) >= n for t, n in until_counts.items()):
                break
            if idle_timeout is not None and last_change is not None and now - last_change > idle_timeout:
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C / SIGTERM (rclpy shut the context down): the bag is closed below, complete
    finally:
        stats = rec.close()
        stats.wall_s = time.perf_counter() - t0
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return stats


def _write_ready(path, subscribed: list) -> None:
    """Atomically (a parent polls for the file): "ready", then the subscribed topics."""
    tmp = Path(f"{path}.part")
    tmp.write_text("".join(f"{t}\n" for t in ["ready", *subscribed]))
    os.replace(tmp, path)


def offered_qos(profile):
    """rosbags ``Qos`` of an rclpy QoSProfile (a publisher's, from get_publishers_info_by_topic)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    def policy(cls, value):
        return cls.__members__.get(getattr(value, "name", ""), cls.UNKNOWN)  # same names in rclpy and rosbags

    def duration(d):
        return QosTime(*divmod(int(d.nanoseconds), 1_000_000_000))

    return Qos(history=policy(QosHistory, profile.history), depth=int(profile.depth),
               reliability=policy(QosReliability, profile.reliability),
               durability=policy(QosDurability, profile.durability), deadline=duration(profile.deadline),
               lifespan=duration(profile.lifespan), liveliness=policy(QosLiveliness, profile.liveliness),
               liveliness_lease_duration=duration(profile.liveliness_lease_duration),
               avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions))
