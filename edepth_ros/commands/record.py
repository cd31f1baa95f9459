"""`edepth record OUT --topics T [T ...]`: record a live graph's topics into a bag (raw CDR, rosbags)."""

from __future__ import annotations

import argparse
import sys

from .arg_types import domain_id, positive_float, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output bag folder (must not exist)")
    parser.add_argument("--topics", nargs="+", required=True, help="topics to record (subscribed when they appear)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--duration", type=positive_float, default=None, help="stop after this many seconds")
    parser.add_argument("--count", type=positive_int, default=None, help="stop when every topic has this many messages")
    parser.add_argument("--idle-timeout", type=positive_float, default=None,
                        help="stop when nothing arrived for this many seconds (after the first message)")
    parser.add_argument("--ready-file", default=None, help="write this file once the topics already in the graph are subscribed "
                             "(lines: ready, then those topics)")
    parser.add_argument("--domain-id", type=domain_id, default=None,
                        help="ROS_DOMAIN_ID, 0-232 (default: the environment's)")


def run(args: argparse.Namespace) -> int:
    from ..ros_env import enter_ros_environment

    if not enter_ros_environment(args.domain_id, "edepth record"):  # before rclpy is imported
        return 2
    from ..bags import io as bio
    from ..bags.record import record

    try:
        stats = record(args.out, args.topics, storage=args.storage, duration=args.duration,
                       until_counts={t: args.count for t in args.topics} if args.count is not None else None,
                       idle_timeout=args.idle_timeout, ready_file=args.ready_file)
    except (bio.BagError, OSError) as exc:
        print(f"edepth record: {exc}", file=sys.stderr)
        return 2
    for topic, n in sorted(stats.counts.items()):
        print(f"  {topic}: {n} messages ({stats.types.get(topic, 'never seen')})")
    print(f"wrote {args.out} in {stats.wall_s:.1f} s")
    if stats.missing:
        print(f"edepth record: never seen in the graph: {', '.join(stats.missing)} (check the names with "
              "`ros2 topic list`, and --domain-id)", file=sys.stderr)
    if not any(stats.counts.values()):
        print(f"edepth record: nothing was recorded; {args.out} holds no message", file=sys.stderr)
        return 1
    return 0
