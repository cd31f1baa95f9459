"""What flows through the pipeline: a camera frame in, a depth result out (numpy, no ROS types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:  # only for annotations: keeps this module free of import cycles
    from .camera import CameraModel
    from .embodied import EmbodiedResult
    from .ground import GroundPlane


@dataclass
class Frame:
    """One camera image with everything the pipeline needs to compute depth for it.

    rgb: uint8 (H, W, 3), RGB order. plane: the ground plane in this camera's optical frame, or
    None when no pose is known (the pipeline then uses its configured fallback). labels: uint8
    Cityscapes train ids (H, W), or None to let the pipeline's segmenter make them.
    """

    rgb: np.ndarray
    camera: "CameraModel"
    plane: Optional["GroundPlane"] = None
    labels: Optional[np.ndarray] = None
    stamp: float = 0.0
    frame_id: str = ""


@dataclass
class DepthResult:
    """Metric depth for one frame at the image's resolution.

    depth: float32 metres, NaN where there is no estimate. confidence: float32 in [0, 1].
    embodied: the embodied scene depth the network was given. timings: milliseconds per stage.
    problem: "" normally; when the frame has no estimate at all, why (an unusable image, no ground
    plane), the depth then all NaN and the confidence 0.
    """

    depth: np.ndarray
    confidence: np.ndarray
    embodied: "EmbodiedResult"
    labels: Optional[np.ndarray] = None
    timings: dict = field(default_factory=dict)
    problem: str = ""
