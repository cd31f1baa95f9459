"""Frame -> DepthResult: segmentation, embodied depth, model-size I/O, inference, back to image size.

The ROS node, the evaluations and the demo all call ``DepthPipeline.process``, so what is
measured offline is what runs on the vehicle.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

import numpy as np

from .backends.base import Backend
from .frame import DepthResult, Frame
from .image_check import ImageCheckConfig, blind_mask, image_problem
from .labels import LabelError, validate_labels
from .model_io import pack_embodied
from .preprocess import ModelInput

log = logging.getLogger(__name__)

NO_PLANE_REASON = (
    "no ground plane for this frame (no tf/tracker pose and no fallback configured): "
    "depth is all NaN; configure a static mounting (height, pitch) or a plane tracker"
)


class PipelineError(ValueError):
    """A frame the pipeline cannot process (the message names the field)."""


class DepthPipeline:
    """Metric depth for a Frame with one backend.

    embodied_config: ``embodied.EmbodiedConfig`` (default config when None).
    segmenter: ``segmenter.Segmenter`` used when a frame has no labels (default GeometricSegmenter).
    model_input: ``preprocess.ModelInput``; default: the backend's input size (resize), or the
    image size when the backend takes any size.
    fallback_plane: ``ground.GroundPlane`` used for frames whose ``plane`` is None; with none,
    such frames return all-NaN depth with the reason in ``result.problem``.
    image_check: ``image_check.ImageCheckConfig`` (default thresholds when None); an image it finds
    unusable (blank, blinded, noise) gets all-NaN depth with the reason in ``result.problem``; a
    usable one's blind pixels (``image_check.blind_mask``) get NaN depth and confidence 0 unless
    they stand on ground the camera sees (``EmbodiedDepth.compute``), the share in
    ``result.blind_fraction`` and ``result.embodied.reason``.
    """

    def __init__(self, backend: Backend, embodied_config=None, segmenter=None,
                 model_input: Optional[ModelInput] = None, fallback_plane=None, mask_sky: bool = True,
                 image_check=None):
        from .embodied import EmbodiedConfig, EmbodiedDepth  # deferred: keeps pipeline importable alone

        self.backend = backend
        self.embodied = EmbodiedDepth(embodied_config if embodied_config is not None else EmbodiedConfig())
        self.segmenter = segmenter  # None: a GeometricSegmenter is made on the first unlabelled frame
        if model_input is None and backend.input_size is not None:
            model_input = ModelInput(*backend.input_size)
        if model_input is not None and backend.input_size is not None and model_input.size != tuple(backend.input_size):
            raise PipelineError(
                f"model_input {model_input.size} differs from backend {backend.name!r} input size "
                f"{tuple(backend.input_size)}; export the model at that size or drop model_input"
            )
        self.model_input = model_input
        self.fallback_plane = fallback_plane
        self.image_check = image_check if image_check is not None else ImageCheckConfig()
        # Sky has no depth (REP 118: NaN, or the configured cap): a network's guess there would put
        # phantom points into the cloud, so the embodied verdict wins on sky pixels.
        self.mask_sky = mask_sky

    def _model_input_for(self, frame: Frame) -> ModelInput:
        if self.model_input is not None:
            return self.model_input
        return ModelInput(int(frame.camera.height), int(frame.camera.width))

    def process(self, frame: Frame) -> DepthResult:
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        rgb, camera = frame.rgb, frame.camera
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise PipelineError(f"frame.rgb: expected uint8 (H, W, 3) RGB, got "
                                f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}")
        h, w = rgb.shape[:2]
        if (w, h) != (int(camera.width), int(camera.height)):
            raise PipelineError(f"frame.rgb is {w}x{h} but frame.camera is {camera.width}x{camera.height}")
        t = time.perf_counter()
        problem = image_problem(rgb, self.image_check)
        if problem:  # no depth rather than plane depth under a camera that sees nothing
            timings["image_check_ms"] = _ms(t)
            return self._no_depth_result(frame, problem, timings, t_start)
        blind = blind_mask(rgb, self.image_check)  # the same, for the parts of the image that see nothing
        timings["image_check_ms"] = _ms(t)
        plane = frame.plane if frame.plane is not None else self.fallback_plane
        if plane is None:
            return self._no_depth_result(frame, NO_PLANE_REASON, timings, t_start)

        t = time.perf_counter()
        labels = frame.labels
        if labels is None:
            if self.segmenter is None:
                from .segmenter import GeometricSegmenter

                self.segmenter = GeometricSegmenter()
            labels = self.segmenter.segment(rgb, camera, plane)
            timings["segment_ms"] = _ms(t)
        else:
            try:
                labels = validate_labels(labels, h, w, what="frame.labels")
            except LabelError as exc:  # one error type for a bad Frame, whichever field
                raise PipelineError(str(exc)) from None

        t = time.perf_counter()
        emb = self.embodied.compute(camera, plane, labels, blind)
        timings["embodied_ms"] = _ms(t)

        t = time.perf_counter()
        mi = self._model_input_for(frame)
        rgb_m, _camera_m, _ = mi.to_model(rgb, camera)
        packed = pack_embodied(mi.depth_to_model(emb.depth), mi.nearest_to_model(emb.confidence))
        timings["preprocess_ms"] = _ms(t)

        t = time.perf_counter()
        depth_m, conf_m = self.backend.infer(rgb_m, packed)
        timings["infer_ms"] = _ms(t)

        t = time.perf_counter()
        depth, conf = mi.to_image(depth_m, conf_m, camera)
        np.minimum(depth, self.backend.max_depth, out=depth, where=np.isfinite(depth))  # resampling rounding
        from .embodied import Region

        if self.mask_sky:
            sky = emb.region == Region.SKY
            depth[sky] = emb.depth[sky]
            conf[sky] = 0.0
        blind_fraction = 0.0
        if blind is not None:
            # the network guesses there too: what is blind and has no embodied depth has none
            unseen = blind & (emb.region == Region.NONE)
            depth[unseen] = np.nan
            conf[unseen] = 0.0
            blind_fraction = float(np.count_nonzero(unseen)) / unseen.size
        timings["postprocess_ms"] = _ms(t)
        timings["total_ms"] = _ms(t_start)
        return DepthResult(depth=depth, confidence=conf, embodied=emb, labels=labels, timings=timings,
                           blind_fraction=blind_fraction)

    def _no_depth_result(self, frame: Frame, reason: str, timings: dict, t_start: float) -> DepthResult:
        from .embodied import EmbodiedResult

        h, w = frame.rgb.shape[:2]
        emb = EmbodiedResult.empty(h, w, reason)
        timings["total_ms"] = _ms(t_start)
        return DepthResult(depth=emb.depth.copy(), confidence=np.zeros((h, w), np.float32), embodied=emb,
                           labels=frame.labels, timings=timings, problem=reason)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
