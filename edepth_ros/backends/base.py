"""The one interface every inference backend implements (numpy in, numpy out)."""

from __future__ import annotations

import abc
from typing import Optional

import numpy as np

from ..model_io import check_inputs


class BackendError(RuntimeError):
    """A backend cannot be created or run here (the message says which and what to do)."""


class Backend(abc.ABC):
    """``infer(rgb (H, W, 3) uint8, embodied (2, H, W) float32) -> (depth, confidence)`` at the model size.

    ``input_size`` is (H, W) for a model with a fixed input, or None when the backend takes any
    size (the embodied-only backend). depth: float32 metres in (0, max_depth], NaN only where a
    backend has no estimate; confidence: float32 in [0, 1].
    """

    name: str = "backend"
    input_size: Optional[tuple[int, int]] = None
    max_depth: float = 80.0

    def infer(self, rgb: np.ndarray, embodied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_inputs(rgb, embodied, self.input_size)
        return self._infer(rgb, embodied)

    @abc.abstractmethod
    def _infer(self, rgb: np.ndarray, embodied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inputs already validated by ``infer``."""

    def describe(self) -> dict:
        """What a log line or a benchmark JSON should say about this backend."""
        return {"name": self.name, "input_size": self.input_size, "max_depth": self.max_depth}

    def close(self) -> None:
        """Release sessions / device memory (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
