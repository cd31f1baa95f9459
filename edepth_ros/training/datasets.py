"""Training and evaluation datasets: synthetic scenes, KITTI (Eigen split files), ROS 2 bags.

Every dataset yields the network's tensor contract at the model size plus the ground truth and
the text embedding of the image:
    rgb uint8 (H, W, 3), embodied float32 (2, H, W), depth float32 (1, H, W) (0 = no ground truth),
    text float32 (text_dim,), index int.
A subclass supplies ``base(i)`` -> ``BaseFrame`` (image, labels, ground truth, camera, plane); the
shared ``__getitem__`` crops/resizes (camera follows), computes the embodied depth for the new
camera, flips everything together, and looks the text embedding up (cached per image and flip).
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..embodied import EmbodiedConfig, EmbodiedDepth
from ..image_check import blind_mask
from ..model_io import pack_embodied
from ..network.text import EmbeddingCache, default_cache_dir, describe_scene
from ..ros.params import SPECS as PARAM_SPECS
from .augment import AugmentConfig, color_jitter, crop_resize, crop_window, flip_width, kb_crop_window


log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A dataset setting or file is wrong; the message names the key or the file."""


@dataclass
class BaseFrame:
    rgb: np.ndarray          # uint8 (H, W, 3)
    labels: np.ndarray       # uint8 (H, W) Cityscapes train ids
    depth: np.ndarray        # float32 (H, W) metres, NaN / inf / <= 0 where none
    camera: object           # CameraModel at (H, W)
    plane: object            # GroundPlane in the camera frame


class TextSource:
    """Sentences of one image (caption + one per object, from labels and embodied depth) -> embedding."""

    def __init__(self, encoder: str = "sentence-transformers", model: Optional[str] = None,
                 cache_dir: Optional[str] = None, max_objects: int = 8, device: str = "cpu"):
        self.cache = EmbeddingCache(cache_dir or default_cache_dir(), encoder, model, device)
        self.max_objects = max_objects

    def sentences(self, rgb, labels, embodied_depth) -> list[str]:
        return describe_scene(labels, embodied_depth, rgb=rgb, max_objects=self.max_objects)

    def embed(self, rgb, labels, embodied_depth) -> np.ndarray:
        return self.cache.get(self.sentences(rgb, labels, embodied_depth))


class DepthDataset(Dataset):
    """Shared sample pipeline; subclasses implement ``__len__`` and ``base(i)``."""

    def __init__(self, input_size: Sequence[int], augment: Optional[AugmentConfig] = None,
                 embodied: Optional[EmbodiedConfig] = None, text: Optional[TextSource] = None,
                 seed: int = 0, pre_crop: Optional[str] = None, max_depth: float = 80.0):
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.augment = augment if augment is not None and augment.enabled else None
        self.embodied = EmbodiedDepth(embodied or EmbodiedConfig())
        self.text = text
        self.seed = int(seed)
        self.pre_crop = pre_crop
        self.max_depth = float(max_depth)
        self.epoch = 0
        self._text_memo: dict[tuple[int, bool], np.ndarray] = {}

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws depend on (seed, epoch, index): reproducible, different every epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def base(self, i: int) -> BaseFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def _pre_window(self, frame: BaseFrame):
        h, w = frame.labels.shape
        if self.pre_crop == "kb":
            return kb_crop_window(h, w)
        return 0, 0, w, h

    def text_embedding(self, i: int, frame: BaseFrame, flipped: bool) -> np.ndarray:
        """Per image (and flip): from the full base frame, so augmentation does not re-encode."""
        key = (i, flipped)
        if key not in self._text_memo:
            res = self.embodied.compute(frame.camera, frame.plane, frame.labels, blind_mask(frame.rgb))
            rgb, labels, depth = frame.rgb, frame.labels, res.depth
            if flipped:
                rgb, labels, depth = flip_width(rgb, True), flip_width(labels), flip_width(depth)
            self._text_memo[key] = self.text.embed(rgb, labels, depth)
        return self._text_memo[key]

    def prepare_text(self, progress: bool = True) -> None:
        """Describe every image (and its flip) and encode all sentences in a few large batches."""
        if self.text is None:
            return
        from tqdm import tqdm

        keys, texts = [], []
        flips = (False, True) if self.augment and self.augment.flip > 0 else (False,)
        for i in tqdm(range(len(self)), desc="describing scenes", disable=not progress, leave=False):
            frame = self.base(i)
            res = self.embodied.compute(frame.camera, frame.plane, frame.labels, blind_mask(frame.rgb))
            for flipped in flips:
                rgb, labels, depth = frame.rgb, frame.labels, res.depth
                if flipped:
                    rgb, labels, depth = flip_width(rgb, True), flip_width(labels), flip_width(depth)
                keys.append((i, flipped))
                texts.append(self.text.sentences(rgb, labels, depth))
        for key, vec in zip(keys, self.text.cache.get_many(texts)):
            self._text_memo[key] = vec

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(i)
        frame = self.base(i)
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.augment else None
        x0, y0, w0, h0 = self._pre_window(frame)
        win = crop_window(h0, w0, self.input_size, rng, self.augment.scale if self.augment else (1.0, 1.0))
        win = (win[0] + x0, win[1] + y0, win[2], win[3])
        rgb, labels, depth, camera = crop_resize(frame.rgb, frame.labels, frame.depth, frame.camera, win,
                                                 self.input_size)
        # the node's embodied depth: blind road (a covered lens, glare) gets none there either
        res = self.embodied.compute(camera, frame.plane, labels, blind_mask(rgb))
        embodied = pack_embodied(res)
        flipped = bool(self.augment and rng.random() < self.augment.flip)
        if self.augment:
            rgb = color_jitter(rgb, self.augment.color, rng)
        if flipped:
            rgb, labels, depth, embodied = (flip_width(rgb, True), flip_width(labels), flip_width(depth),
                                            flip_width(embodied))
        gt = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)[None]
        sample = dict(rgb=np.ascontiguousarray(rgb), embodied=embodied, depth=gt, index=i)
        if self.text is not None:
            sample["text"] = self.text_embedding(i, frame, flipped)
        return sample


# ---------------------------------------------------------------------------- synthetic
class SyntheticDataset(DepthDataset):
    """Frames of the scene generator: ``frames_per_seed`` frames of each seed, rendered once at
    ``render_scale`` times the model size (room for crops) and kept in memory."""

    def __init__(self, seeds: Sequence[int], frames_per_seed: int, input_size, render_scale: float = 1.5,
                 frame_stride: int = 7, progress: bool = True, **kw):
        super().__init__(input_size, **kw)
        from ..synthetic import SceneGenerator

        if not seeds:
            raise DatasetError("data.seeds: give at least one scene seed")
        if frames_per_seed < 1:
            raise DatasetError(f"data.frames_per_seed: {frames_per_seed} must be >= 1")
        rh, rw = (int(round(s * render_scale)) for s in self.input_size)
        self.items = [(int(s), j * frame_stride) for s in seeds for j in range(frames_per_seed)]
        self._frames: list[BaseFrame] = []
        from tqdm import tqdm

        first = SceneGenerator(int(seeds[0]), width=rw, height=rh)
        last = (frames_per_seed - 1) * frame_stride
        if last > first.max_index:  # named here, before any rendering, not as a generator index
            raise DatasetError(f"data.frames_per_seed {frames_per_seed} x data.frame_stride {frame_stride}: the "
                               f"last frame index {last} is past the scene generator's {first.max_index} (2 h of "
                               "driving); use fewer frames per seed (and more seeds) or a shorter stride")
        gens = {int(seeds[0]): first}
        for seed, index in tqdm(self.items, desc="rendering synthetic scenes", disable=not progress, leave=False):
            gen = gens.setdefault(seed, SceneGenerator(seed, width=rw, height=rh))
            f = gen.frame(index, lidar=False)
            self._frames.append(BaseFrame(f.rgb, f.labels, f.depth.astype(np.float32), f.camera, f.plane))

    def __len__(self) -> int:
        return len(self._frames)

    def base(self, i: int) -> BaseFrame:
        return self._frames[i]


# ---------------------------------------------------------------------------- KITTI
def read_split_file(path: str | os.PathLike) -> list[tuple[str, Optional[str], Optional[float]]]:
    """BTS-style split lines: ``rgb_path depth_path_or_None focal`` (focal optional)."""
    return [row[1:] for row in _read_split_lines(path)]


def _read_split_lines(path: str | os.PathLike) -> list[tuple[int, str, Optional[str], Optional[float]]]:
    """(file line number, rgb, depth, focal) per entry: errors later can point at the real line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"data.split: split file '{path}' does not exist")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):  # blank and comment lines, as the evaluator reads them
            continue
        if len(parts) < 2:
            raise DatasetError(f"{path}:{n}: expected 'rgb_path depth_path [focal]', got '{line}'")
        depth = None if parts[1] == "None" else parts[1]
        focal = None
        if len(parts) > 2:
            try:
                focal = float(parts[2])
            except ValueError:
                focal = math.nan
            if not (math.isfinite(focal) and focal > 0):
                raise DatasetError(f"{path}:{n}: focal '{parts[2]}' is not a positive number; expected "
                                   f"'rgb_path depth_path [focal]', got '{line}'")
        rows.append((n, parts[0], depth, focal))
    if not rows:
        raise DatasetError(f"{path}: split file has no entries")
    return rows


def read_p_rect(calib_file: str | os.PathLike, cam: int = 2) -> np.ndarray:
    """P_rect_0{cam} (3 x 4) from a KITTI raw calib_cam_to_cam.txt (small private reader)."""
    return _read_calib_line(calib_file, f"P_rect_0{cam}", 12).reshape(3, 4)


def read_s_rect(calib_file: str | os.PathLike, cam: int = 2) -> tuple[int, int]:
    """(width, height) of the rectified images the calibration is for (S_rect_0{cam})."""
    w, h = _read_calib_line(calib_file, f"S_rect_0{cam}", 2)
    return int(round(w)), int(round(h))


def _read_calib_line(calib_file: str | os.PathLike, key: str, n: int) -> np.ndarray:
    calib_file = Path(calib_file)
    if not calib_file.is_file():
        raise DatasetError(f"KITTI calibration '{calib_file}' does not exist (data.calib_dir / raw_root/<date>/)")
    for line in calib_file.read_text().splitlines():
        if line.startswith(key + ":"):
            try:
                vals = np.array([float(v) for v in line[len(key) + 1:].split()])
            except ValueError:
                vals = np.array([])
            if vals.size != n or not np.isfinite(vals).all():
                raise DatasetError(f"{calib_file}: '{key}' needs {n} numbers, got '{line.strip()}'")
            return vals
    raise DatasetError(f"{calib_file}: no '{key}' line")


KITTI_DATE = re.compile(r"\d{4}_\d{2}_\d{2}$")
CAM_TO_CAM = "calib_cam_to_cam.txt"


class KittiDataset(DepthDataset):
    """KITTI raw images + annotated depth, listed by an Eigen-split file.

    raw_root/<rgb path> and gt_root/<depth path> (uint16 PNG, metres = value / 256, 0 = none).
    Calibration: calib_dir/<date>/calib_cam_to_cam.txt, else calib_dir/calib_cam_to_cam.txt (one date:
    refused for a split of several dates), else raw_root/<date>/calib_cam_to_cam.txt. Every image must
    have the calibration's rectified size (S_rect_02).
    Labels come from the segmenter; the ground plane is the nominal mounting (config: plane).
    """

    def __init__(self, split: str, raw_root: str, gt_root: Optional[str], input_size, calib_dir: Optional[str] = None,
                 plane_height: float = 1.65, plane_pitch: float = 0.0, segmenter=None, require_depth: bool = False,
                 **kw):
        kw.setdefault("pre_crop", "kb")
        super().__init__(input_size, **kw)
        for key, p in (("data.raw_root", raw_root), ("data.gt_root", gt_root)):
            if p is not None and not Path(p).is_dir():
                raise DatasetError(f"{key}: folder '{p}' does not exist")
        self.split = Path(split)
        lines = _read_split_lines(split)
        self.lines = [n for n, *_ in lines]  # file line of each entry, for error messages
        self.rows = [row[1:] for row in lines]
        self.raw_root, self.gt_root = Path(raw_root), Path(gt_root) if gt_root else None
        self.calib_dir = Path(calib_dir) if calib_dir else None
        if self.calib_dir:
            # KITTI's cameras differ per date: one calib_cam_to_cam.txt cannot serve several dates
            dates = sorted({d for d in (r[0].split("/")[0] for r in self.rows) if KITTI_DATE.match(d)})
            missing = [d for d in dates if not (self.calib_dir / d / CAM_TO_CAM).is_file()]
            if len(dates) > 1 and missing:
                raise DatasetError(
                    f"data.calib_dir: '{self.calib_dir}' holds one date's {CAM_TO_CAM} but split '{split}' spans "
                    f"{len(dates)} dates ({', '.join(dates)}); put each date's file in calib_dir/<date>/ "
                    f"(missing: {', '.join(missing)}) or leave data.calib_dir unset to read raw_root/<date>/")
        self._require_files(split)
        self.skipped: Counter = Counter()
        self.notes: list[str] = []
        if require_depth:
            self._drop_frames_without_depth(split)
        from ..ground import GroundPlane

        self.plane = GroundPlane.from_static(plane_height, pitch=plane_pitch)
        self.segmenter = segmenter
        self._cams: dict[str, object] = {}

    def _require_files(self, split: str) -> None:
        """Every image, depth map and calibration the split names exists, checked at start: a
        missing one would otherwise stop training when its batch comes up, hours in."""
        missing = []
        for line, (rgb_rel, depth_rel, _) in zip(self.lines, self.rows):
            wanted = [("image", self.raw_root / rgb_rel), ("calibration", self._calib_file(rgb_rel))]
            if depth_rel is not None and self.gt_root is not None:
                wanted.append(("depth", self.gt_root / depth_rel))
            missing += [f"{what} '{path}' (line {line})" for what, path in wanted if not path.is_file()]
            if len(missing) >= 5:
                break
        if missing:
            raise DatasetError(f"split '{split}' names files that do not exist: {'; '.join(missing[:5])}"
                               f"{' ...' if len(missing) >= 5 else ''}; fix the split, data.raw_root / "
                               "data.gt_root, or drop those lines")

    def _drop_frames_without_depth(self, split: str) -> None:
        """Skip (and count in ``skipped`` / ``notes``, as BagDataset does) the frames without a pixel the
        loss can use (LOSS_MIN_DEPTH < gt < max_depth): they would train, or be scored on, nothing.
        A split with none left is refused."""
        from .config import LOSS_MIN_DEPTH

        keep, first_case = [], {}
        for j, (line, (rgb_rel, depth_rel, _)) in enumerate(zip(self.lines, self.rows)):
            where = f"{split}:{line}"
            if depth_rel is None or self.gt_root is None:
                reason = "no depth path on the split line ('None')"
            else:
                depth = self._read_depth(self.gt_root / depth_rel, where)
                if np.any((depth > LOSS_MIN_DEPTH) & (depth < self.max_depth)):
                    keep.append(j)
                    continue
                reason = f"depth map without a pixel in ({LOSS_MIN_DEPTH:g}, model.max_depth {self.max_depth:g}) m"
            self.skipped[reason] += 1
            first_case.setdefault(reason, where)
        self.notes += [f"{n} x {reason} (first: {first_case[reason]})" for reason, n in self.skipped.most_common()]
        if not keep:
            raise DatasetError(f"split '{split}': no frame has usable ground truth: {'; '.join(self.notes)}; give "
                               "the annotated depth paths (data.gt_root) or another split")
        if self.skipped:
            log.warning("split %s: %d of %d frames skipped: %s", split, sum(self.skipped.values()), len(self.rows),
                        "; ".join(self.notes))
        self.lines = [self.lines[j] for j in keep]
        self.rows = [self.rows[j] for j in keep]

    @staticmethod
    def _read_depth(dpath: Path, where: str, size: Optional[tuple[int, int]] = None) -> np.ndarray:
        """KITTI annotated depth: a single-channel uint16 PNG, metres x 256 (0 = none) -> metres, NaN = none."""
        raw = cv2.imread(str(dpath), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise DatasetError(f"KITTI depth '{dpath}' ({where}) cannot be read")
        if raw.dtype != np.uint16 or raw.ndim != 2:
            what = f"{raw.dtype}" + (f", {raw.shape[2]}-channel" if raw.ndim == 3 else "")
            raise DatasetError(f"KITTI depth '{dpath}' ({where}) is {what}; expected a single-channel uint16 PNG "
                               "(depth in metres x 256, 0 = none), as KITTI's annotated depth; check the split's "
                               "depth path and data.gt_root")
        if size is not None and raw.shape != size:
            raise DatasetError(f"KITTI depth '{dpath}' ({where}) is {raw.shape[1]}x{raw.shape[0]}, another size "
                               f"than its image ({size[1]}x{size[0]})")
        return np.where(raw > 0, raw.astype(np.float32) / 256.0, np.nan).astype(np.float32)

    def __len__(self) -> int:
        return len(self.rows)

    def _calib_file(self, rgb_rel: str) -> Path:
        date = rgb_rel.split("/")[0]
        if self.calib_dir is None:
            return self.raw_root / date / CAM_TO_CAM
        per_date = self.calib_dir / date / CAM_TO_CAM
        return per_date if KITTI_DATE.match(date) and per_date.is_file() else self.calib_dir / CAM_TO_CAM

    def _camera(self, rgb_rel: str, width: int, height: int, where: str):
        from ..camera import CameraModel

        calib = self._calib_file(rgb_rel)
        if calib not in self._cams:
            P = read_p_rect(calib)
            w, h = read_s_rect(calib)
            self._cams[calib] = CameraModel(w, h, P[:, :3], P=P)
        camera = self._cams[calib]
        if (camera.width, camera.height) != (width, height):  # P_rect holds only for its rectified size
            raise DatasetError(f"KITTI image '{self.raw_root / rgb_rel}' ({where}) is {width}x{height} but "
                               f"calibration '{calib}' is for {camera.width}x{camera.height} images (S_rect_02); "
                               "give that date's calibration (data.calib_dir) and the unresized image")
        return camera

    def base(self, i: int) -> BaseFrame:
        rgb_rel, depth_rel, _ = self.rows[i]
        where = f"{self.split}:{self.lines[i]}"
        path = self.raw_root / rgb_rel
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DatasetError(f"KITTI image '{path}' cannot be read ({where})")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        depth = np.full((h, w), np.nan, np.float32)
        if depth_rel is not None and self.gt_root is not None:
            depth = self._read_depth(self.gt_root / depth_rel, where, (h, w))
        camera = self._camera(rgb_rel, w, h, where)
        labels = _segment(self.segmenter, rgb, camera, self.plane)
        return BaseFrame(rgb, labels, depth, camera, self.plane)


def _segment(segmenter, rgb, camera, plane) -> np.ndarray:
    if segmenter is None:
        try:
            from ..segmenter import GeometricSegmenter
        except ImportError as exc:
            raise DatasetError("labels: this dataset has no label images and edepth_ros.segmenter is "
                               "not available; give data.labels_topic or install the segmenter") from exc
        segmenter = GeometricSegmenter()
    return np.asarray(segmenter.segment(rgb, camera, plane), dtype=np.uint8)


# ---------------------------------------------------------------------------- ROS 2 bags
NODE_TF_MAX_AGE = float(PARAM_SPECS["tf_max_age"].default)  # the node's and the evaluation's: one rule for tf


class BagDataset(DepthDataset):
    """Frames from a ROS 2 bag: an image topic, its CameraInfo, and ground truth from a depth image
    topic (32FC1 / 16UC1) or a LiDAR PointCloud2 projected into the camera through the bag's tf.

    Paired as ``edepth eval bag`` pairs them: by header stamp (by log time where the stamps are
    unusable), the camera_info in force at each image, tf at the stamp within ``tf_max_age``.
    The ground plane comes from tf (ground_frame -> camera frame) or from a static mounting.
    Labels from a label topic (mono8 train ids) when given, else from the segmenter. Frames that
    cannot be used (no ground truth near, stale tf, no ground-truth pixel in range) are skipped and
    counted in ``skipped``; a bag with none left is refused with the reasons.
    """

    def __init__(self, bag: str, input_size, image_topic: str, camera_info_topic: str,
                 depth_topic: Optional[str] = None, lidar_topic: Optional[str] = None,
                 labels_topic: Optional[str] = None, ground_frame: str = "base_footprint",
                 plane_height: Optional[float] = None, plane_pitch: float = 0.0, max_frames: int = 0,
                 max_skew: float = 0.05, tf_max_age: Optional[float] = NODE_TF_MAX_AGE, segmenter=None, **kw):
        super().__init__(input_size, **kw)
        from ..bags import io as bio
        from ..ground import GroundPlane, GroundPoseError

        if (depth_topic is None) == (lidar_topic is None):
            raise DatasetError("data.depth_topic / data.lidar_topic: give exactly one source of ground truth")
        if not Path(bag).exists():
            raise DatasetError(f"data.bag: '{bag}' does not exist")
        if tf_max_age is not None and not (math.isfinite(tf_max_age) and tf_max_age >= 0):
            raise DatasetError(f"data.tf_max_age: {tf_max_age} must be a number of seconds >= 0")
        max_age_ns = None if tf_max_age is None else int(round(tf_max_age * 1e9))
        topics = [t for t in (image_topic, camera_info_topic, depth_topic, lidar_topic, labels_topic) if t]
        gt_topic = depth_topic or lidar_topic
        self.skipped: Counter = Counter()
        self.notes: list[str] = []
        with bio.BagReader(bag) as reader:
            try:
                reader.require_depth_sources(image_topic, camera_info_topic, lidar_topic, depth_topic, labels_topic)
            except bio.BagError as exc:
                raise DatasetError(f"data.bag: {exc}") from None
            tf = bio.TfTree()
            streams: dict[str, list] = {t: [] for t in topics}  # (log time, header stamp, msgtype, raw)
            for topic, msgtype, t_ns, raw in reader.messages(topics + ["/tf", "/tf_static"]):
                if topic in ("/tf", "/tf_static"):
                    tf.add_message(reader.deserialize(raw, msgtype), static=topic == "/tf_static", log_t=t_ns)
                else:
                    streams[topic].append((t_ns, bio.cdr_header_ns(raw) or 0, msgtype, raw))
            if not streams[image_topic]:
                raise DatasetError(f"data.image_topic: '{image_topic}' has no messages in {bag}")
            if not streams[camera_info_topic]:
                raise DatasetError(f"data.camera_info_topic: '{camera_info_topic}' has no messages in {bag}; record "
                                   "the camera's camera_info with its images")
            # the same clock as the evaluation: header stamps, or log time where they are unusable
            problem = bio.header_stamps_problem({t: [it[1] for it in streams[t]] for t in (image_topic, gt_topic)})
            clock = 0 if problem else 1
            tf.log_time = bool(problem)  # transforms on the frames' clock too
            if problem:
                self.notes.append(f"header stamps unusable ({problem}): paired by bag log time instead")
                log.warning("data.bag %s: %s", bag, self.notes[-1])
            infos = bio.CameraInfos.of(((it[0], reader.deserialize(it[3], it[2])) for it in streams[camera_info_topic]),
                                       log_time=bool(problem))
            index = {t: _StampIndex(streams[t], clock) for t in (gt_topic, labels_topic) if t}
            first_case: dict = {}

            def skip(reason: str, detail: str) -> None:
                self.skipped[reason] += 1
                first_case.setdefault(reason, detail)

            self._frames: list[BaseFrame] = []
            images = streams[image_topic][: max_frames or None]
            for item in images:
                stamp = item[clock]
                where = f"t = {stamp * 1e-9:.3f} s in {bag}"
                near, dt = index[gt_topic].nearest(stamp, max_skew)
                if near is None:
                    skip(f"no {gt_topic} message within data.max_skew {max_skew:g} s of the image stamp",
                         f"{where}, the nearest {dt * 1e-9:.3f} s away" if dt is not None else where)
                    continue
                msg = reader.deserialize(item[3], item[2])
                try:
                    rgb = bio.image_to_rgb(msg)
                except ValueError as exc:  # ConversionError: an encoding the node does not take either
                    raise DatasetError(f"data.image_topic: '{image_topic}' ({where}): {exc}") from None
                try:
                    info, camera = infos.info_at(stamp)
                except ValueError as exc:  # CameraModelError naming the field
                    raise DatasetError(f"data.camera_info_topic: '{camera_info_topic}' ({where}): {exc}") from None
                frame_id = msg.header.frame_id or camera.frame_id or bio.CAMERA_FRAME  # as the evaluation
                _same_size("data.camera_info_topic", camera_info_topic, (camera.height, camera.width), rgb,
                           image_topic, bag, stamp)
                _same_frame("data.camera_info_topic", camera_info_topic, info.header.frame_id, msg.header.frame_id,
                            image_topic, where, "give the camera_info of this camera")
                gmsg = reader.deserialize(near[3], near[2])
                if depth_topic:
                    try:
                        depth = bio.depth_to_metres(gmsg)
                    except ValueError as exc:
                        raise DatasetError(f"data.depth_topic: '{depth_topic}' ({where}): {exc}") from None
                    _same_size("data.depth_topic", depth_topic, depth.shape, rgb, image_topic, bag, stamp)
                    _same_frame("data.depth_topic", depth_topic, gmsg.header.frame_id, msg.header.frame_id,
                                image_topic, where, "record the depth registered to the camera image")
                else:
                    try:
                        T = tf.lookup(frame_id, gmsg.header.frame_id, near[clock], max_age_ns)
                    except bio.TfStaleError as exc:
                        skip(f"LiDAR -> camera: /tf {exc.parent} -> {exc.child} has no transform within "
                             f"data.tf_max_age {tf_max_age:g} s of the LiDAR stamp", f"{where}: {exc}")
                        continue
                    if T is None:
                        raise DatasetError(f"data.lidar_topic: no tf from '{gmsg.header.frame_id}' to the camera "
                                           f"frame '{frame_id}' in {bag}")
                    try:
                        xyz = bio.pointcloud_xyz(gmsg)
                    except bio.BagError as exc:
                        raise DatasetError(f"data.lidar_topic: '{lidar_topic}' ({where}): {exc}") from None
                    depth = _project_points(xyz, T, camera)
                # a frame without a pixel the loss can use (0.1 < gt < max_depth) would train nothing
                usable = np.isfinite(depth) & (depth > 0.1) & (depth < self.max_depth)
                if not usable.any():
                    values = depth[np.isfinite(depth) & (depth > 0)]
                    skip(bio.no_ground_truth_reason(gt_topic, depth, gmsg, 0.1, self.max_depth),
                         f"{where}, median value {np.median(values):.4g}" if values.size else where)
                    continue
                if plane_height is not None:
                    plane = GroundPlane.from_static(plane_height, pitch=plane_pitch)
                else:
                    try:
                        T = tf.lookup(frame_id, ground_frame, stamp, max_age_ns)
                    except bio.TfStaleError as exc:
                        skip(f"ground pose: /tf {exc.parent} -> {exc.child} has no transform within "
                             f"data.tf_max_age {tf_max_age:g} s of the image stamp (or set data.plane_height)",
                             f"{where}: {exc}")
                        continue
                    if T is None:
                        raise DatasetError(f"data.ground_frame: no tf from '{ground_frame}' to '{frame_id}' in {bag};"
                                           " set data.plane_height for a static mounting")
                    try:
                        plane = GroundPlane.from_transform(T)
                    except GroundPoseError as exc:
                        raise DatasetError(f"data.ground_frame: tf {ground_frame} -> {frame_id} ({where}): {exc}; "
                                           "fix the transform or set data.plane_height for a static mounting") from None
                if labels_topic:
                    ln, _ = index[labels_topic].nearest(stamp, max_skew)
                    if ln is None:
                        skip(f"no {labels_topic} message within data.max_skew {max_skew:g} s of the image stamp",
                             where)
                        continue
                    try:
                        labels = bio.labels_array(reader.deserialize(ln[3], ln[2]))
                    except ValueError as exc:  # ConversionError: not mono8 train ids
                        raise DatasetError(f"data.labels_topic: '{labels_topic}' ({where}): {exc}") from None
                    _same_size("data.labels_topic", labels_topic, labels.shape, rgb, image_topic, bag, stamp)
                else:
                    labels = _segment(segmenter, rgb, camera, plane)
                self._frames.append(BaseFrame(rgb, labels, depth.astype(np.float32), camera, plane))
        self.notes += [f"{n} x {reason} (first: {first_case[reason]})" for reason, n in self.skipped.most_common()]
        if not self._frames:
            raise DatasetError(f"data.bag: no image of {bag} can be used: {'; '.join(self.notes)}")
        if self.skipped:
            log.warning("data.bag %s: %d of %d images skipped: %s", bag, sum(self.skipped.values()), len(images),
                        "; ".join(self.notes))

    def __len__(self) -> int:
        return len(self._frames)

    def base(self, i: int) -> BaseFrame:
        return self._frames[i]


class _StampIndex:
    """The messages of one topic sorted by stamp (field ``clock`` of each item), nearest found by bisection."""

    def __init__(self, items: list, clock: int):
        self.items = sorted(items, key=lambda it: it[clock])
        self.stamps = [it[clock] for it in self.items]

    def nearest(self, stamp: int, max_skew: float):
        """(item, |dt| ns) of the nearest message, item None where it is farther than max_skew s."""
        i = bisect.bisect_left(self.stamps, stamp)
        near = [j for j in (i - 1, i) if 0 <= j < len(self.items)]
        if not near:
            return None, None
        j = min(near, key=lambda k: abs(self.stamps[k] - stamp))
        dt = abs(self.stamps[j] - stamp)
        return (self.items[j] if dt <= max_skew * 1e9 else None), dt


def _same_frame(key: str, topic: str, frame: str, image_frame: str, image_topic: str, where: str, fix: str) -> None:
    """Refuse a map or camera_info of another frame than the image (another sensor's): an empty frame_id
    is accepted, as the node does (many drivers leave it empty)."""
    if frame and image_frame and frame != image_frame:
        raise DatasetError(f"{key}: '{topic}' has frame_id '{frame}' but image topic '{image_topic}' has "
                           f"'{image_frame}' ({where}); {fix} (the same frame_id)")


def _same_size(key: str, topic: str, hw, rgb: np.ndarray, image_topic: str, bag, t_ns: int) -> None:
    """Refuse, not resample: a map of another size is not pixel-aligned with the image (its camera
    model is unknown here), and resampling depth or labels would move values off their pixels."""
    if tuple(hw[:2]) != rgb.shape[:2]:
        raise DatasetError(f"{key}: '{topic}' is {hw[1]}x{hw[0]} but image topic '{image_topic}' is "
                           f"{rgb.shape[1]}x{rgb.shape[0]} (t = {t_ns * 1e-9:.3f} s in {bag}); record it "
                           "registered to the camera image at the image's size")


def _project_points(xyz: np.ndarray, T_cam_src: np.ndarray, camera) -> np.ndarray:
    """Sparse depth image (NaN = none) of points given in a source frame, nearest return per pixel."""
    pts = xyz @ T_cam_src[:3, :3].T + T_cam_src[:3, 3]
    u, v, z = camera.project(pts)
    ok = np.isfinite(u) & np.isfinite(v) & (z > 0.1)
    ui, vi = np.round(u[ok]).astype(np.int64), np.round(v[ok]).astype(np.int64)
    inside = (ui >= 0) & (ui < camera.width) & (vi >= 0) & (vi < camera.height)
    out = np.full((camera.height, camera.width), np.inf, np.float32)
    np.minimum.at(out, (vi[inside], ui[inside]), z[ok][inside].astype(np.float32))
    out[np.isinf(out)] = np.nan
    return out


def collate(batch: list[dict]) -> dict:
    out = {}
    for key in batch[0]:
        vals = [b[key] for b in batch]
        out[key] = torch.as_tensor(np.stack(vals)) if isinstance(vals[0], np.ndarray) else torch.tensor(vals)
    return out
