"""``edepth train --config models/NAME.yaml [--resume]``: train the depth network.

Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m edepth_ros.cli train --config ...``.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..safe_paths import output_folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training config (YAML), e.g. models/demo.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from output.dir/latest.pt")
    parser.add_argument("--output", default=None, type=output_folder, help="override output.dir")
    parser.add_argument("--max-steps", type=int, default=None, help="override train.max_steps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still written)")


def run(args) -> int:
    from pathlib import Path

    from ..bags.io import BagError
    from ..camera import CameraModelError
    from ..embodied import EmbodiedConfigError
    from ..ground import GroundPoseError
    from ..network import CheckpointError, NetworkConfigError
    from ..network.text import TextError
    from ..ros.convert import ConversionError
    from ..training import TrainConfig, TrainConfigError, TrainingDiverged, TrainingInterrupted, train
    from ..training.augment import AugmentError
    from ..training.datasets import DatasetError

    # errors about the user's config, data or files: their messages name the key or file and say what
    # to do, so they are printed as one line; anything else is a bug and keeps its traceback
    user_errors = (TrainConfigError, DatasetError, CheckpointError, TrainingDiverged, NetworkConfigError,
                   AugmentError, EmbodiedConfigError, TextError, BagError,
                   # bad messages or poses in a bag: named by the readers (not a bug of edepth)
                   ConversionError, GroundPoseError, CameraModelError)

    try:
        cfg = TrainConfig.load(args.config)
        if args.output:
            cfg.output = Path(args.output).resolve()
        if args.max_steps is not None:
            if args.max_steps < 1:
                raise TrainConfigError(f"--max-steps: {args.max_steps} must be a positive number of steps")
            cfg.train["max_steps"] = int(args.max_steps)
        summary = train(cfg, resume=args.resume, progress=not args.no_progress)
    except user_errors as exc:
        print(f"edepth train: {exc}", file=sys.stderr)
        return 2
    except TrainingInterrupted as exc:  # Ctrl-C: the trainer saved latest.pt and says how to resume
        print(f"edepth train: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # while loading the config or building the datasets: nothing trained yet
        print("edepth train: interrupted before training started; nothing saved", file=sys.stderr)
        return 130
    print(json.dumps(summary, indent=1))
    return 0
