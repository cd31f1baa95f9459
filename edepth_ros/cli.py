"""The ``edepth`` command: one entry point, one module per sub-command.

Each command module in ``edepth_ros.commands`` defines ``add_arguments(parser)`` and
``run(args) -> int``; it is imported only when its command runs, so ``edepth --help`` stays fast
and a command that needs torch does not make the others need it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> (module under edepth_ros.commands, one-line help)
COMMANDS = {
    "embodied-eval": ("embodied_eval", "score embodied depth against LiDAR on KITTI object frames"),
    "bench": ("bench", "benchmarks printing JSON (embodied | model | node)"),
    "train": ("train", "train the vision-language depth network from a model config"),
    "export": ("export", "export a checkpoint to one fused ONNX graph with the text latent baked in"),
    "eval": ("eval", "evaluate on KITTI (Eigen split) or a ROS 2 bag"),
    "make-bag": ("make_bag", "write a ROS 2 bag from the scene generator or a KITTI raw drive"),
    "play": ("play", "replay a ROS 2 bag into a live graph with /clock"),
    "record": ("record", "record topics of a live graph into a ROS 2 bag"),
    "demo": ("demo", "the first-run demo: node + bag replay + evaluation + report"),
}

ENV_HINT = (
    "edepth: a dependency is missing ({missing}). The project's environment is not set up or is "
    "broken: run `make venv` (or `make test` / `make demo`) in the edepth_ros checkout, then use "
    "the tools from .venv/bin."
)


def _load(module: str):
    try:
        return importlib.import_module(f"edepth_ros.commands.{module}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("edepth_ros"):
            raise
        sys.exit(ENV_HINT.format(missing=exc.name))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="edepth", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _load(module).add_arguments(p)
    args = parser.parse_args(argv)
    return int(_load(COMMANDS[args.command][0]).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
