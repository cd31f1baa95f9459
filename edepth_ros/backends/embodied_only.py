"""A backend with no weights: the depth is the embodied scene depth itself.

It lets the node and the evaluations run on the first frame with no model at all, and is the
baseline every learned model must beat.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .base import Backend


class EmbodiedOnlyBackend(Backend):
    name = "embodied"

    def __init__(self, input_size: Optional[tuple[int, int]] = None, max_depth: float = 80.0):
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self.max_depth = float(max_depth)

    def _infer(self, rgb: np.ndarray, embodied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depth = embodied[0].copy()
        valid = depth > 0
        depth[~valid] = np.nan  # 0 is the tensor's "none" code; the Python API uses NaN
        np.minimum(depth, self.max_depth, out=depth, where=valid)
        confidence = np.where(valid, np.clip(embodied[1], 0.0, 1.0), 0.0).astype(np.float32)
        return depth, confidence
