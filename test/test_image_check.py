"""The image check: every real KITTI frame (also darkened, brightened, blurred, JPEG-compressed,
halved) and synthetic scene is usable; blank, blinded and noise images are not, each saying why;
through the pipeline an unusable image gets no depth instead of road depth, and the road a usable
image's blind tiles (a hand over part of the lens, glare) hide gets none either."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edepth_ros.backends import EmbodiedOnlyBackend
from edepth_ros.frame import Frame
from edepth_ros.ground import GroundPlane
from edepth_ros.embodied import EmbodiedDepth, Region
from edepth_ros.evaluation.embodied_eval import load_frame, static_plane
from edepth_ros.image_check import ImageCheckConfig, blind_mask, image_problem, image_stats
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


# --------------------------------------------------------------------------- blind tiles

def test_real_frames_as_taken_have_almost_no_blind_pixels_below_their_middle(kitti_dir):
    """Blown-out sky (up to 15% of a frame) is blind, as it should be; below the middle row only
    road blown out to white in the sun (2.2% of object/000002) and the sunlit side of a white car
    (1.5% of stereo2015/000046) are: white there hides only what is white too."""
    for name, rgb in _real_frames(kitti_dir):
        mask = blind_mask(rgb)
        lower = 0.0 if mask is None else mask[rgb.shape[0] // 2:].mean()
        assert lower < 0.03, (name, lower)
    for i in range(3):
        assert blind_mask(SceneGenerator(3).frame(i, lidar=False).rgb) is None


def _kitti_scene(kitti_dir, stem="000000"):
    frame = load_frame(kitti_dir / "object", stem)
    return frame.rgb, frame.calib.camera, static_plane(frame.calib)


def _lower_left(H, W):
    return slice(H // 2, H), slice(0, W // 2)


def _lower_right(H, W):
    return slice(H // 2, H), slice(W // 2, W)


def _band_off_the_grid(H, W):  # 44 rows, 1.4 tiles, starting between two tiles
    return slice(H - 55, H - 11), slice(0, W)


COVERS = {  # (frame, where, value)
    "a hand over the lower left of the lens (black)": ("000000", _lower_left, 0),
    "sun glare over the lower left (white)": ("000000", _lower_left, 255),
    "a hand over the lower right (black), the segmenter calls it a building": ("000001", _lower_right, 0),
    "glare over the lower right (white)": ("000001", _lower_right, 255),
    "a black band of 44 rows across, off the tile grid": ("000001", _band_off_the_grid, 0),
}


@pytest.mark.parametrize("cover", list(COVERS))
def test_road_the_camera_cannot_see_gets_no_depth_and_the_rest_keeps_its_own(kitti_dir, cover):
    stem, where, value = COVERS[cover]
    rgb, camera, plane = _kitti_scene(kitti_dir, stem)
    H, W = rgb.shape[:2]
    covered = np.zeros((H, W), bool)
    covered[where(H, W)] = True
    img = rgb.copy()
    img[covered] = value
    assert image_problem(img) == ""  # most of the frame is a usable picture

    res = DepthPipeline(EmbodiedOnlyBackend()).process(Frame(img, camera, plane))
    assert blind_mask(img)[covered].all()
    road_like = np.isin(res.embodied.region, (Region.ROAD, Region.GROUND))
    assert not (road_like & covered).any(), "no pixel under the cover is road with plane depth"
    # nor inpainted from the road around it; what keeps depth there stands on ground the camera sees
    kept_under = covered & np.isfinite(res.depth)
    assert (res.embodied.region[kept_under] == Region.VERTICAL).all()
    assert kept_under.sum() < 0.05 * covered.sum(), cover
    assert (res.confidence[covered & np.isnan(res.depth)] == 0).all()
    assert "of the image is blind" in res.embodied.reason
    share = float(res.embodied.reason.split("% of the image is blind")[0].rsplit(" ", 1)[-1]) / 100
    assert share == pytest.approx(res.blind_fraction, abs=0.0006) and res.blind_fraction > 0.9 * covered.mean() - 0.05
    # the road the camera sees keeps its plane depth
    seen = DepthPipeline(EmbodiedOnlyBackend()).process(Frame(rgb, camera, plane))
    kept = ~blind_mask(img) & (seen.embodied.region == Region.ROAD)
    assert kept.sum() > 5000 and np.isfinite(res.depth[kept]).mean() > 0.9
    # what the mask prevents: without it the cover is road, or inpainted from the road, with depth
    off = DepthPipeline(EmbodiedOnlyBackend(), image_check=ImageCheckConfig(blind_tile_size=0))
    assert np.isfinite(off.process(Frame(img, camera, plane)).depth[covered]).mean() > 0.9


def test_blind_obstacles_keep_a_ground_contact_the_camera_sees_and_sky_stays_sky(kitti_dir):
    rgb, camera, plane = _kitti_scene(kitti_dir)
    rgb = np.clip(rgb, 10, 240)  # the frame's own black and white pixels out of the way of the edges
    H, W = rgb.shape[:2]
    labels = np.full((H, W), 13, np.uint8)  # car everywhere (vertical)...
    labels[H // 2:] = 0                      # ...over road
    labels[: H // 4] = 10                    # sky at the top
    unmasked = EmbodiedDepth().compute(camera, plane, labels)
    # a blown-out band from top to bottom, its edges off the 32-pixel grid: nothing stands on
    # ground the camera sees there, so nothing has depth (not the road around it, inpainted)
    img = rgb.copy()
    img[:, 300:700] = 255
    mask = blind_mask(img)
    assert mask[:, 300:700].all() and mask.sum() == H * 400
    emb = EmbodiedDepth().compute(camera, plane, labels, mask)
    band = np.zeros((H, W), bool)
    band[:, 300:700] = True
    assert (emb.region[band & (labels == 10)] == Region.SKY).all()
    assert np.isnan(emb.depth[band & (labels != 10)]).all() and (emb.confidence[band] == 0).all()
    assert (emb.region[band & (labels != 10)] == Region.NONE).all()
    outside = ~band & (unmasked.region == Region.ROAD) & (np.abs(np.arange(W) - 500) > 240)[None, :]
    assert outside.sum() > 20000 and (emb.region[outside] == Region.ROAD).all()
    np.testing.assert_array_equal(emb.depth[outside], unmasked.depth[outside])
    # the sunlit side of a car over road the camera sees: the car keeps its depth from that contact
    labels[H // 2:H // 2 + 40] = 13  # the car's lower part, clear of the horizon
    unmasked = EmbodiedDepth().compute(camera, plane, labels)
    img = rgb.copy()
    img[H // 4:H // 2 + 30, 300:700] = 255
    emb = EmbodiedDepth().compute(camera, plane, labels, blind_mask(img))
    side = np.zeros((H, W), bool)
    side[H // 4:H // 2 + 30, 300:700] = True
    assert (unmasked.region[side] == Region.VERTICAL).all()
    assert (emb.region[side] == Region.VERTICAL).all()
    np.testing.assert_array_equal(emb.depth[side], unmasked.depth[side])
    assert "of the image is blind" not in emb.reason
    # a car whose wheels stand in glare: the road there has no depth, the car keeps its own from
    # that contact (inpainting it from the road behind put it farther away than it is)
    img = rgb.copy()
    img[H // 2 + 40:H // 2 + 100, 300:700] = 255
    emb = EmbodiedDepth().compute(camera, plane, labels, blind_mask(img))
    glare = np.zeros((H, W), bool)
    glare[H // 2 + 40:H // 2 + 100, 300:700] = True
    car = np.zeros((H, W), bool)
    car[H // 4:H // 2 + 40, 300:700] = True
    assert np.isnan(emb.depth[glare]).all() and (emb.region[glare] == Region.NONE).all()
    assert (emb.region[car] == Region.VERTICAL).all()
    np.testing.assert_array_equal(emb.depth[car], unmasked.depth[car])
    # the side of that car blind too: it has no contact the camera sees, so no depth
    img[H // 4:H // 2 + 30, 300:700] = 255
    emb = EmbodiedDepth().compute(camera, plane, labels, blind_mask(img))
    assert np.isnan(emb.depth[side]).all() and (emb.region[side] == Region.NONE).all()
    assert (emb.region[car & ~side] == Region.VERTICAL).all()


def test_blind_arguments_and_tile_sizes_are_checked():
    rgb, cam = np.zeros((64, 64, 3), np.uint8), SceneGenerator(3, width=64, height=64).camera
    with pytest.raises(TypeError, match="blind must be a bool"):
        EmbodiedDepth().compute(cam, GroundPlane.from_static(1.65), np.zeros((64, 64), np.uint8),
                                np.zeros((64, 64), np.uint8))
    for bad in (4, 2.5, True, -1, 2000, "32"):
        with pytest.raises(ValueError, match="blind_tile_size"):
            ImageCheckConfig(blind_tile_size=bad)
    assert blind_mask(rgb, ImageCheckConfig(blind_tile_size=0)) is None
    assert blind_mask(rgb).all()  # all black: every tile blind (image_problem refuses it first)
