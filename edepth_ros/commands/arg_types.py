"""argparse ``type=`` checks for numbers: a value that would hang, flood or divide by zero is
refused when the command line is read ("argument --clock-hz: 0: must be a finite number > 0")."""

from __future__ import annotations

import argparse
import math


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text}: must be a finite number > 0")
    return value


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{text}: must be >= {low}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def domain_id(text: str) -> int:
    """A ROS_DOMAIN_ID Fast DDS can open ports for (0-232)."""
    from ..ros_env import domain_id_problem

    problem = domain_id_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return int(text)


def scene_seed(text: str) -> int:
    """A synthetic scene seed: 32 bits (larger ones would repeat a scene of 0..2**32-1)."""
    from ..synthetic import SEED_MAX

    value = _int_at_least(text, 0)
    if value > SEED_MAX:
        raise argparse.ArgumentTypeError(f"{text}: must be <= {SEED_MAX} (scene seeds are 32-bit)")
    return value
