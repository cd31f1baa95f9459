"""A backend with no weights: the depth is the embodied scene depth itself.

It lets the node and the evaluations run on the first frame with no model at all, and is the
baseline every learned model must beat.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .base import Backend, BackendError


def _positive_int(v) -> bool:
    return (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0) or \
        (isinstance(v, (float, np.floating)) and v > 0 and float(v).is_integer())


class EmbodiedOnlyBackend(Backend):
    name = "embodied"
    nan_is_none = True  # the embodied depth has none on sky and where nothing anchors it

    def __init__(self, input_size: Optional[tuple[int, int]] = None, max_depth: float = 80.0):
        # checked here: a NaN max_depth made every depth NaN, "96x320" became a 9 x 6 input, 0 or -5 m
        # capped every depth at a range no depth has
        if input_size is not None:
            if isinstance(input_size, (str, bytes)) or not hasattr(input_size, "__len__") or \
                    len(input_size) != 2 or not all(_positive_int(v) for v in input_size):
                raise BackendError(f"embodied option input_size={input_size!r}: must be (height, width) in whole "
                                   "pixels > 0, or None for any size")
        ok = isinstance(max_depth, (int, float, np.integer, np.floating)) and not isinstance(max_depth, bool) \
            and bool(np.isfinite(max_depth)) and max_depth > 0
        if not ok:
            raise BackendError(f"embodied option max_depth={max_depth!r}: must be a finite number of metres > 0 "
                               "(default 80)")
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self.max_depth = float(max_depth)

    def _infer(self, rgb: np.ndarray, embodied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depth = embodied[0].copy()
        valid = depth > 0
        depth[~valid] = np.nan  # 0 is the tensor's "none" code; the Python API uses NaN
        np.minimum(depth, self.max_depth, out=depth, where=valid)
        confidence = np.where(valid, np.clip(embodied[1], 0.0, 1.0), 0.0).astype(np.float32)
        return depth, confidence
