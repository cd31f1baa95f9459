#!/usr/bin/env python3
"""Embodied scene depth benchmark (same code as `edepth bench embodied`): prints JSON.

Run from the project root: PYTHONPATH=. .venv/bin/python bench/bench_embodied.py [--json OUT]
"""

import argparse
import sys

from edepth_ros.bench import embodied

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=embodied.__doc__.splitlines()[0])
    embodied.add_arguments(parser)
    sys.exit(embodied.run(parser.parse_args()))
