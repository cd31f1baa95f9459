"""Training of the vision-language depth network (PyTorch): datasets, augmentation, losses,
the alternating text/image schedule and the train loop (single process or DDP via torchrun)."""

from .config import TrainConfig, TrainConfigError
from .trainer import TrainingDiverged, TrainingInterrupted, evaluate, make_datasets, train

__all__ = ["TrainConfig", "TrainConfigError", "TrainingDiverged", "TrainingInterrupted", "evaluate", "make_datasets",
           "train"]
