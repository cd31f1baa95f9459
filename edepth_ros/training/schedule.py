"""Which path a training step takes: "text" (phase 1: VAE + decoder, KL + SILog, sampler frozen) or
"image" (phase 2: sampler + encoders + decoder, SILog, VAE frozen).

Modes (``train.schedule.mode``):
- ``step``: each step is a text step with probability ``p_text`` (WorDepth alternates this way);
- ``epoch``: every ``text_every``-th epoch (0, k, 2k, ...) is a text epoch;
- ``phases``: the first ``text_epochs`` epochs are text, the rest image.
The draw depends only on (seed, step), so every DDP rank takes the same path at the same step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MODES = ("step", "epoch", "phases")


class ScheduleError(ValueError):
    """A bad train.schedule value; the message names the key."""


@dataclass
class PathSchedule:
    mode: str = "step"
    p_text: float = 0.1
    text_every: int = 2
    text_epochs: int = 1
    seed: int = 0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ScheduleError(f"train.schedule.mode: '{self.mode}' is not one of {MODES}")
        if not 0.0 <= self.p_text <= 1.0:
            raise ScheduleError(f"train.schedule.p_text: {self.p_text} must be in [0, 1]")
        if self.text_every < 1:
            raise ScheduleError(f"train.schedule.text_every: {self.text_every} must be >= 1")
        if self.text_epochs < 0:
            raise ScheduleError(f"train.schedule.text_epochs: {self.text_epochs} must be >= 0")

    def check_trains_image(self, epochs: int) -> None:
        """Refuse a schedule that never takes an image step in `epochs` epochs: the image path is
        the one that is deployed, so such a run would publish an untrained model."""
        # epoch mode: epochs 0, k, 2k, ... are text epochs, so epoch 0 always is; with one epoch (or
        # text_every 1) no epoch is left for the image path
        never = {"step": self.p_text >= 1.0, "epoch": self.text_every == 1 or epochs <= 1,
                 "phases": self.text_epochs >= epochs}[self.mode]
        if never:
            what = {"step": f"p_text: {self.p_text} makes every step a text step",
                    "epoch": f"text_every: {self.text_every} with {epochs} epoch{'s' if epochs != 1 else ''} "
                             "makes every epoch a text epoch (epochs 0, text_every, 2 x text_every, ... are)",
                    "phases": f"text_epochs: {self.text_epochs} covers all {epochs} epochs"}[self.mode]
            raise ScheduleError(f"train.schedule.{what}, so the image path (the deployed one) is never "
                                "trained; lower it or train for more epochs")

    def path(self, step: int, epoch: int, has_text_vae: bool = True) -> str:
        if not has_text_vae:
            return "image"
        if self.mode == "step":
            return "text" if random.Random(self.seed * 1_000_003 + step).random() < self.p_text else "image"
        if self.mode == "epoch":
            return "text" if epoch % self.text_every == 0 else "image"
        return "text" if epoch < self.text_epochs else "image"
