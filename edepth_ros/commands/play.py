"""`edepth play BAG [--rate R] [--loop]`: replay a bag into a live ROS 2 graph with /clock (raw CDR bytes)."""

from __future__ import annotations

import argparse
import sys

from .arg_types import domain_id, positive_float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="bag folder or .mcap/.db3 file")
    parser.add_argument("--rate", type=positive_float, default=1.0, help="playback speed factor (0.5: half speed)")
    parser.add_argument("--loop", action="store_true", help="start again at the end (until Ctrl-C)")
    parser.add_argument("--topics", nargs="+", default=None, help="only these topics (default: all)")
    parser.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="publish FROM under TO")
    parser.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    parser.add_argument("--clock-hz", type=positive_float, default=100.0, help="/clock rate in bag time")
    parser.add_argument("--wait-for", nargs="+", default=[], metavar="TOPIC",
                        help="wait until these (published) topics have a subscriber before starting")
    parser.add_argument("--wait-timeout", type=positive_float, default=30.0,
                        help="seconds to wait for --wait-for subscribers")
    parser.add_argument("--domain-id", type=domain_id, default=None,
                        help="ROS_DOMAIN_ID, 0-232 (default: the environment's)")


def run(args: argparse.Namespace) -> int:
    from ..ros_env import enter_ros_environment

    if not enter_ros_environment(args.domain_id, "edepth play"):  # before rclpy is imported
        return 2
    from ..bags import io as bio
    from ..bags.play import play

    remap = {}
    for r in args.remap:
        if ":=" not in r:
            print(f"edepth play: --remap {r!r}: expected FROM:=TO", file=sys.stderr)
            return 2
        a, b = r.split(":=", 1)
        remap[a] = b
    try:
        stats = play(args.bag, rate=args.rate, loop=args.loop, topics=args.topics, remap=remap,
                     clock=not args.no_clock, clock_period=1.0 / args.clock_hz, wait_for=args.wait_for,
                     wait_timeout=args.wait_timeout)
    except (bio.BagError, ValueError, TimeoutError, OSError) as exc:
        print(f"edepth play: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    for topic, n in sorted(stats.published.items()):
        print(f"  {topic}: {n} messages")
    for topic, why in stats.skipped_topics.items():
        print(f"  {topic}: not replayed ({why})")
    print(f"played {stats.bag_s:.2f} s of bag in {stats.wall_s:.2f} s ({stats.loops} loop(s)), "
          f"{stats.clock_messages} /clock messages, max lag {stats.max_lag_ms:.1f} ms")
    if stats.truncated:
        print(f"  note: the bag ends early ({stats.truncated})")
    if not stats.published:  # every topic asked for lacks its message package here (a stop signal is not this)
        print(f"edepth play: no topic of {args.bag} could be replayed, so no message was", file=sys.stderr)
        return 1
    if not sum(stats.published.values()):  # publishers made, but not one message went out: nothing replayed
        print(f"edepth play: no message of {args.bag} was replayed (do its topics hold none? `ros2 bag info` "
              "counts them)", file=sys.stderr)
        return 1
    return 0
