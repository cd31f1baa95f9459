"""What flows through the pipeline: a camera frame in, a depth result out (numpy, no ROS types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

from .described import described

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

    def __post_init__(self):
        # isinstance only (every frame passes here): a 4x4 T_cam_from_ground, a camera height or a
        # K matrix would otherwise fail as an AttributeError deep in the segmenter
        from .camera import CameraModel
        from .ground import GroundPlane

        if self.plane is not None and not isinstance(self.plane, GroundPlane):
            from .pipeline import PipelineError

            raise PipelineError(
                f"frame.plane: expected a GroundPlane or None, got {described(self.plane)}; build it with "
                "GroundPlane.from_transform(T_cam_from_ground) from a 4x4 pose or "
                "GroundPlane.from_static(height, pitch, roll) from a mounting height"
            )
        if not isinstance(self.camera, CameraModel):
            from .pipeline import PipelineError

            raise PipelineError(
                f"frame.camera: expected a CameraModel, got {described(self.camera)}; build it with "
                "CameraModel.from_intrinsics(fx, fy, cx, cy, width, height) or CameraModel.from_camera_info(info)"
            )


@dataclass
class DepthResult:
    """Metric depth for one frame at the image's resolution.

    depth: float32 metres, NaN where there is no estimate. confidence: float32 in [0, 1].
    embodied: the embodied scene depth the network was given. timings: milliseconds per stage.
    problem: "" normally; when the frame has no estimate at all, why (an unusable image, no ground
    plane), the depth then all NaN and the confidence 0. blind_fraction: the share of the image's
    pixels that are blind (``image_check.blind_mask``) and were given no depth.
    """

    depth: np.ndarray
    confidence: np.ndarray
    embodied: "EmbodiedResult"
    labels: Optional[np.ndarray] = None
    timings: dict = field(default_factory=dict)
    problem: str = ""
    blind_fraction: float = 0.0
