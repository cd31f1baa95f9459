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


def int_range(low: int, high: int, why: str = ""):
    """``type=`` for a whole number in [low, high]; ``why`` says what the upper bound protects."""

    def parse(text: str) -> int:
        value = _int_at_least(text, low)
        if value > high:
            raise argparse.ArgumentTypeError(f"{text}: must be <= {high}{' (' + why + ')' if why else ''}")
        return value

    parse.__name__ = f"whole number {low}..{high}"
    return parse


def float_range(low: float, high: float, what: str = ""):
    """``type=`` for a finite number in [low, high]; ``what`` names the quantity for the message."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: not a number") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"{text}: must be a finite number in [{low:g}, {high:g}]"
                                             + (f" ({what})" if what else ""))
        return value

    parse.__name__ = f"number {low:g}..{high:g}"
    return parse


# Upper bounds on frame counts that are rendered before anything else happens: a typo of a few extra
# digits would otherwise start a job of hours to years (100000000 demo frames = hundreds of TB of bag).
DEMO_FRAMES_MAX = 3000  # 5 minutes of a 10 Hz drive; the node then takes ~20 min at the default --rate 0.25
SYNTHETIC_TEXTS_MAX = 1000  # --text-from synthetic:N describes N frames at ~0.1 s each (~2 min)

demo_frames = int_range(1, DEMO_FRAMES_MAX, "frames of a 10 Hz drive, rendered into a bag first")

# Suffixes matplotlib's Agg canvas writes (savefig picks the format from the suffix; any other fails after the run)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".pdf")


def image_file(text: str):
    """An output plot path: writable (as ``output_file``) and with a suffix matplotlib can write."""
    from pathlib import Path

    from ..safe_paths import output_file

    path = output_file(text)  # a folder, or a path under a file, is named as such first
    if Path(text).suffix.lower() not in IMAGE_SUFFIXES:
        raise argparse.ArgumentTypeError(f"{text}: give a file name ending in one of {', '.join(IMAGE_SUFFIXES)} "
                                         "(the image format is taken from it)")
    return path


def text_source(text: str) -> str:
    """--text-from: a file path, or synthetic[:N] with N in 1..SYNTHETIC_TEXTS_MAX (checked before any work)."""
    if text.startswith("synthetic:"):
        try:
            int_range(1, SYNTHETIC_TEXTS_MAX)(text.split(":", 1)[1])
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{text}: N {exc} (synthetic:N describes N generated frames)") from None
    return text
