"""DepthPipeline: Frame -> DepthResult on exact synthetic scenes, real KITTI frames and a real ONNX model."""

from __future__ import annotations

import numpy as np
import pytest

from edepth_ros.backends import EmbodiedOnlyBackend, create_backend
from edepth_ros.embodied import Region
from edepth_ros.frame import Frame
from edepth_ros.ground import GroundPlane
from edepth_ros.pipeline import DepthPipeline, PipelineError
from edepth_ros.preprocess import ModelInput

STAGES = {"embodied_ms", "preprocess_ms", "infer_ms", "postprocess_ms", "total_ms"}


@pytest.fixture(scope="module")
def scene():
    from edepth_ros.synthetic import SceneGenerator

    return SceneGenerator(3).frame(0)


@pytest.mark.parametrize("mode", ["resize", "crop"])
def test_embodied_only_road_depth_matches_truth(scene, mode):
    """Through model size and back, road depth still matches the ray-cast truth."""
    backend = EmbodiedOnlyBackend(input_size=(192, 640))
    pipe = DepthPipeline(backend, model_input=ModelInput(192, 640, mode))
    res = pipe.process(Frame(scene.rgb, scene.camera, scene.plane, scene.labels))
    assert res.depth.shape == res.confidence.shape == scene.labels.shape
    assert res.depth.dtype == np.float32 and res.confidence.dtype == np.float32
    assert STAGES <= set(res.timings) and all(v >= 0 for v in res.timings.values())
    road = (res.embodied.region == Region.ROAD) & np.isfinite(res.depth) & (scene.depth < 40)
    # keep off region borders, where a model pixel mixes road with what stands on it
    inner = road & np.roll(road, 3, 0) & np.roll(road, -3, 0) & np.roll(road, 3, 1) & np.roll(road, -3, 1)
    assert inner.sum() > 5000
    rel = np.abs(res.depth[inner] - scene.depth[inner]) / scene.depth[inner]
    assert np.median(rel) < 0.01, np.median(rel)
    assert np.nanmax(res.depth) <= backend.max_depth
    assert ((res.confidence >= 0) & (res.confidence <= 1)).all()
    assert (res.confidence[~np.isfinite(res.depth)] == 0).all()


def test_no_plane_gives_nan_with_reason(scene):
    pipe = DepthPipeline(EmbodiedOnlyBackend())
    res = pipe.process(Frame(scene.rgb, scene.camera, None, scene.labels))
    assert np.isnan(res.depth).all() and (res.confidence == 0).all()
    assert "no ground plane" in res.embodied.reason


def test_no_plane_uses_fallback(scene):
    fallback = GroundPlane.from_static(1.65)
    pipe = DepthPipeline(EmbodiedOnlyBackend(), fallback_plane=fallback)
    res = pipe.process(Frame(scene.rgb, scene.camera, None, scene.labels))
    assert np.isfinite(res.depth).mean() > 0.3


def test_segmenter_used_when_labels_missing(scene):
    calls = []

    class RoadBelowRow:  # the Segmenter protocol: labels from the image, camera and plane
        def segment(self, rgb, camera, plane):
            calls.append(rgb.shape)
            labels = np.full(rgb.shape[:2], 10, np.uint8)  # sky
            labels[250:] = 0  # road
            return labels

    pipe = DepthPipeline(EmbodiedOnlyBackend(), segmenter=RoadBelowRow())
    res = pipe.process(Frame(scene.rgb, scene.camera, scene.plane))
    assert calls == [scene.rgb.shape] and "segment_ms" in res.timings
    assert np.isfinite(res.depth[300]).all() and np.isnan(res.depth[50]).all()
    assert (res.labels[300] == 0).all()


def test_bad_frames_are_named(scene):
    pipe = DepthPipeline(EmbodiedOnlyBackend())
    with pytest.raises(PipelineError, match="frame.rgb"):
        pipe.process(Frame(scene.rgb.astype(np.float32), scene.camera, scene.plane, scene.labels))
    with pytest.raises(PipelineError, match="frame.camera"):
        pipe.process(Frame(scene.rgb[:300], scene.camera, scene.plane, scene.labels))
    with pytest.raises(PipelineError, match="frame.labels"):
        pipe.process(Frame(scene.rgb, scene.camera, scene.plane, scene.labels[:300]))
    for labels in (scene.labels.tolist(), scene.labels.astype(np.float32)):  # a list, floats
        with pytest.raises(PipelineError, match="frame.labels: (expected a numpy|dtype is float32)"):
            pipe.process(Frame(scene.rgb, scene.camera, scene.plane, labels))
    with pytest.raises(PipelineError, match="model_input"):
        DepthPipeline(EmbodiedOnlyBackend(input_size=(192, 640)), model_input=ModelInput(96, 320))


@pytest.mark.parametrize("plane, camera, word", [
    (np.eye(4), None, r"frame.plane: expected a GroundPlane or None, got ndarray float64 \(4, 4\).*from_transform"),
    (1.65, None, "frame.plane: expected a GroundPlane or None, got float.*from_static"),
    (None, np.eye(3), r"frame.camera: expected a CameraModel, got ndarray float64 \(3, 3\)"),
])
def test_frame_of_the_wrong_types_is_refused_naming_the_field(scene, plane, camera, word):
    with pytest.raises(PipelineError, match=word):
        Frame(scene.rgb, scene.camera if camera is None else camera, plane if plane is not None else scene.plane)
    assert Frame(scene.rgb, scene.camera, None).plane is None  # no pose: still allowed


def kitti_frame(kitti_dir):
    import cv2

    from edepth_ros.camera import CameraModel

    bgr = cv2.imread(str(kitti_dir / "annotated_depth" / "rgb" / "0000000005.png"))
    gt = cv2.imread(str(kitti_dir / "annotated_depth" / "depth" / "0000000005.png"), cv2.IMREAD_UNCHANGED)
    if bgr is None or gt is None:
        pytest.skip(f"KITTI annotated_depth frame 0000000005 missing under {kitti_dir}")
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    h, w = rgb.shape[:2]
    camera = CameraModel.from_intrinsics(721.5377, 721.5377, 609.5593, 172.854, w, h)
    gt_depth = np.where(gt > 0, gt.astype(np.float32) / 256.0, np.nan)
    # road labels from where the annotated LiDAR points lie on a plane: the lower image centre
    labels = np.full((h, w), 2, np.uint8)  # building: stands on the ground, gets its contact depth
    labels[int(0.62 * h):, int(0.25 * w):int(0.75 * w)] = 0
    labels[: int(0.3 * h)] = 10
    return rgb, camera, labels, gt_depth


def test_real_kitti_frame_embodied(kitti_dir):
    """A real KITTI frame with a static KITTI mounting: road depth within 15% of the annotated LiDAR."""
    rgb, camera, labels, gt = kitti_frame(kitti_dir)
    plane = GroundPlane.from_static(1.65)
    pipe = DepthPipeline(EmbodiedOnlyBackend(input_size=(192, 640)), model_input=ModelInput(192, 640, "crop"))
    res = pipe.process(Frame(rgb, camera, plane, labels))
    road = (res.embodied.region == Region.ROAD) & np.isfinite(res.depth) & np.isfinite(gt) & (gt < 30)
    assert road.sum() > 500
    rel = np.abs(res.depth[road] - gt[road]) / gt[road]
    assert np.median(rel) < 0.15, np.median(rel)


def test_real_onnx_model_on_kitti(kitti_dir, tmp_path):
    """The real network (demo config, random init) exported and run by ONNX Runtime inside the pipeline."""
    torch = pytest.importorskip("torch")
    from edepth_ros.export import export_onnx
    from edepth_ros.network import build_model

    torch.manual_seed(0)
    net = build_model("demo")
    out = tmp_path / "demo.onnx"
    export_onnx(None, 96, 320, None, out, net=net, check_fp16=False)
    backend = create_backend("onnxruntime-cpu", str(out), threads=1)
    rgb, camera, labels, _ = kitti_frame(kitti_dir)
    pipe = DepthPipeline(backend, embodied_config=None, segmenter=None, model_input=ModelInput(96, 320, "crop"),
                         fallback_plane=GroundPlane.from_static(1.65))
    res = pipe.process(Frame(rgb, camera, None, labels))
    seen = np.isfinite(res.depth)
    assert seen.mean() > 0.5  # the crop covers the lower part of the image
    assert (res.depth[seen] > 0).all() and (res.depth[seen] <= backend.max_depth).all()
    assert res.timings["infer_ms"] > 0


class _ConstantBackend(EmbodiedOnlyBackend):
    """A network stand-in that answers 7 m everywhere, sky included, as an untrained net may."""

    name = "constant"

    def _infer(self, rgb, embodied):
        shape = embodied.shape[1:]
        return np.full(shape, 7.0, np.float32), np.full(shape, 0.9, np.float32)


@pytest.mark.parametrize("mask_sky", [True, False])
def test_sky_keeps_no_depth_whatever_the_network_says(scene, mask_sky):
    pipe = DepthPipeline(_ConstantBackend(input_size=(192, 640)), mask_sky=mask_sky)
    res = pipe.process(Frame(scene.rgb, scene.camera, scene.plane, scene.labels))
    sky = res.embodied.region == Region.SKY
    assert sky.sum() > 1000
    if mask_sky:
        assert np.isnan(res.depth[sky]).all() and (res.confidence[sky] == 0).all()
    else:
        assert np.isfinite(res.depth[sky]).all()
    ground = res.embodied.region == Region.ROAD
    assert np.allclose(res.depth[ground], 7.0)
