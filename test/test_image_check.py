"""The image check: every real KITTI frame (also darkened, brightened, blurred, JPEG-compressed,
halved) and synthetic scene is usable; blank, blinded and noise images are not, each saying why;
through the pipeline an unusable image gets no depth instead of road depth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edepth_ros.backends import EmbodiedOnlyBackend
from edepth_ros.frame import Frame
from edepth_ros.ground import GroundPlane
from edepth_ros.image_check import ImageCheckConfig, image_problem, image_stats
from edepth_ros.pipeline import DepthPipeline
from edepth_ros.synthetic import SceneGenerator

RNG = np.random.default_rng(0)
H, W = 375, 1242


def _real_frames(root):
    files = sorted({*root.glob("object/image_2/*.png"), *root.glob("road/image_2/*.png"),
                    *root.glob("annotated_depth/rgb/*.png"), *root.glob("stereo2015/image_[23]/*.png")})
    assert len(files) >= 8, f"expected the KITTI sample frames under {root}"
    return [(f.relative_to(root).as_posix(), cv2.imread(str(f))[:, :, ::-1].copy()) for f in files]


def _variants(rgb):
    """What a working camera also delivers: night, over-exposure, defocus, compression, binning."""
    yield "as taken", rgb
    yield "darkened 10x", (rgb * 0.1).astype(np.uint8)
    yield "darkened 10x + sensor noise", np.clip(rgb * 0.1 + RNG.normal(0, 3, rgb.shape), 0, 255).astype(np.uint8)
    yield "brightened 4x", np.clip(rgb.astype(np.int32) * 4, 0, 255).astype(np.uint8)
    yield "blurred", cv2.GaussianBlur(rgb, (0, 0), 8)
    yield "JPEG q30", cv2.imdecode(cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_COLOR)
    yield "half size", cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)


def test_real_frames_and_what_a_working_camera_does_to_them_are_usable(kitti_dir):
    checked = 0
    for name, rgb in _real_frames(kitti_dir):
        for variant, img in _variants(rgb):
            assert image_problem(img) == "", f"{name} {variant}: {image_stats(img)}"
            checked += 1
    assert checked >= 8 * 7


def test_synthetic_scenes_are_usable():
    gen = SceneGenerator(3)
    for i in range(3):
        rgb = gen.frame(i, lidar=False).rgb
        assert image_problem(rgb) == "", image_stats(rgb)
        small = cv2.resize(rgb, (320, 96), interpolation=cv2.INTER_AREA)
        assert image_problem(small) == "", image_stats(small)


def _sunlit(h, w):
    """Blinded by the sun: white but for a strip of scene at the left edge (1% of the columns)."""
    img = np.full((h, w, 3), 255, np.uint8)
    img[:, : w // 100] = RNG.integers(40, 200, (h, w // 100, 3), dtype=np.uint8)
    return img


UNUSABLE = {
    "black (lens cap)": (lambda: np.zeros((H, W, 3), np.uint8), "min_contrast"),
    "white": (lambda: np.full((H, W, 3), 255, np.uint8), "min_contrast"),
    "uniform grey (frozen output)": (lambda: np.full((H, W, 3), 128, np.uint8), "min_contrast"),
    "black with sensor noise (covered lens)": (
        lambda: np.clip(5 + RNG.normal(0, 3, (H, W, 3)), 0, 255).astype(np.uint8), "min_contrast"),
    "grey with gain noise": (
        lambda: np.clip(128 + RNG.normal(0, 8, (H, W, 3)), 0, 255).astype(np.uint8), "min_neighbour_correlation"),
    "random bytes": (lambda: RNG.integers(0, 256, (H, W, 3), dtype=np.uint8), "min_neighbour_correlation"),
    "blinded by the sun": (lambda: _sunlit(H, W), "max_clipped_fraction"),
}


@pytest.mark.parametrize("name", list(UNUSABLE))
def test_unusable_images_are_named_with_the_threshold_they_fail(name):
    make, threshold = UNUSABLE[name]
    problem = image_problem(make())
    assert problem.startswith("image unusable") and f"image_check.{threshold}" in problem, (name, problem)
    assert image_problem(make(), ImageCheckConfig(enabled=False)) == ""


def test_tiny_images_are_not_judged_and_bad_thresholds_are_named():
    assert image_problem(np.zeros((4, 5, 3), np.uint8)) == ""
    with pytest.raises(ValueError, match="ImageCheckConfig.max_clipped_fraction"):
        ImageCheckConfig(max_clipped_fraction=1.5)


def test_an_unusable_image_gets_no_depth_through_the_pipeline_and_a_good_one_does():
    """Without the check the weight-free segmenter calls much of a black frame road and the plane
    gives it depth: free road where the camera sees nothing."""
    scene = SceneGenerator(3, width=621, height=188).frame(0, lidar=False)
    plane = scene.plane
    black = np.zeros_like(scene.rgb)
    res = DepthPipeline(EmbodiedOnlyBackend()).process(Frame(black, scene.camera, plane))
    assert np.isnan(res.depth).all() and (res.confidence == 0).all() and np.isnan(res.embodied.depth).all()
    assert "image_check.min_contrast" in res.problem and res.problem == res.embodied.reason
    assert "image_check_ms" in res.timings
    unchecked = DepthPipeline(EmbodiedOnlyBackend(), image_check=ImageCheckConfig(enabled=False))
    assert np.isfinite(unchecked.process(Frame(black, scene.camera, plane)).depth).mean() > 0.2  # why it matters
    good = DepthPipeline(EmbodiedOnlyBackend()).process(Frame(scene.rgb, scene.camera, plane))
    assert good.problem == "" and np.isfinite(good.depth).mean() > 0.3


def test_no_plane_is_a_problem_too():
    scene = SceneGenerator(3, width=621, height=188).frame(0, lidar=False)
    res = DepthPipeline(EmbodiedOnlyBackend()).process(Frame(scene.rgb, scene.camera, None))
    assert "no ground plane" in res.problem and np.isnan(res.depth).all()
    fallback = DepthPipeline(EmbodiedOnlyBackend(), fallback_plane=GroundPlane.from_static(1.65))
    assert fallback.process(Frame(scene.rgb, scene.camera, None)).problem == ""
