"""Write ROS 2 bags (MCAP by default) from the synthetic scene generator or a KITTI raw drive.

Topics of both (the names the node and `edepth eval bag` default to):

| topic | type | frame |
|---|---|---|
| /camera/image_raw (or /camera/image_raw/compressed) | sensor_msgs/Image rgb8 (CompressedImage) | camera_optical_frame |
| /camera/camera_info | sensor_msgs/CameraInfo | camera_optical_frame |
| /lidar/points | sensor_msgs/PointCloud2 (x, y, z[, intensity]) | lidar_link |
| /tf_static | tf2_msgs/TFMessage: camera_optical_frame -> lidar_link | |
| /tf | tf2_msgs/TFMessage: base_footprint -> camera_optical_frame, per frame | |
| /ground_truth/depth (synthetic) | sensor_msgs/Image 32FC1, +inf for sky (REP 118) | camera_optical_frame |
| /camera/semantic (synthetic) | sensor_msgs/Image mono8, Cityscapes train ids | camera_optical_frame |
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import io as bio

log = logging.getLogger(__name__)

TOPICS = {
    "image": "/camera/image_raw",
    "compressed": "/camera/image_raw/compressed",
    "camera_info": "/camera/camera_info",
    "lidar": "/lidar/points",
    "depth": "/ground_truth/depth",
    "semantic": "/camera/semantic",
}
# Synthetic bags start at this wall-clock time (2024-01-01 00:00:00 UTC), so stamps look like a vehicle's.
SYNTHETIC_T0_NS = 1_704_067_200 * 1_000_000_000
# LiDAR mounted 0.3 m above and 0.2 m behind the camera, x forward, y left, z up (REP 103 body axes).
R_CAM_FROM_LIDAR = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
LIDAR_IN_CAMERA = np.array([0.0, -0.3, -0.2])


class MakeBagError(ValueError):
    """The input folder or arguments cannot make a bag (the message names the file)."""


def synthetic_lidar_extrinsics() -> np.ndarray:
    """T_camera_lidar of the synthetic bags (maps LiDAR points into the camera optical frame)."""
    T = np.eye(4)
    T[:3, :3] = R_CAM_FROM_LIDAR
    T[:3, 3] = LIDAR_IN_CAMERA
    return T


def generator_version() -> str:
    """A short hash of the scene generator's source: cached demo bags are rebuilt when it changes."""
    from .. import synthetic

    h = hashlib.sha256()
    for p in sorted(Path(synthetic.__file__).parent.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


@dataclass
class BagSummary:
    path: Path
    frames: int
    topics: dict
    notes: list


def _image_writer(w: bio.BagWriter, image_format: str):
    if image_format == "raw":
        return lambda rgb, stamp: w.write(TOPICS["image"], stamp, bio.image_msg(rgb, stamp, bio.CAMERA_FRAME))
    if image_format not in ("jpeg", "png"):
        raise MakeBagError(f"image format {image_format!r}: use raw, jpeg or png")
    return lambda rgb, stamp: w.write(TOPICS["compressed"], stamp,
                                      bio.compressed_image_msg(rgb, stamp, bio.CAMERA_FRAME, image_format))


def make_synthetic_bag(out, frames: int = 20, seed: int = 0, width: int = 1242, height: int = 375,
                       storage: str = "mcap", image_format: str = "raw", progress: bool = True,
                       start: int = 0) -> BagSummary:
    """Render ``frames`` frames of ``SceneGenerator(seed)`` into a bag at ``out`` (a new folder)."""
    from tqdm import tqdm

    from ..synthetic import SceneGenerator

    if frames <= 0:
        raise MakeBagError(f"--frames {frames}: must be at least 1")
    gen = SceneGenerator(seed, width=width, height=height)
    T_cam_lidar = synthetic_lidar_extrinsics()
    T_lidar_cam = np.linalg.inv(T_cam_lidar)
    with bio.BagWriter(out, storage) as w:
        write_image = _image_writer(w, image_format)
        t0 = SYNTHETIC_T0_NS + int(start / gen.fps * 1e9)
        w.write("/tf_static", t0, bio.tf_message([bio.transform_stamped(T_cam_lidar, t0, bio.CAMERA_FRAME,
                                                                          bio.LIDAR_FRAME)]))
        for i in tqdm(range(start, start + frames), desc=f"synthetic bag (seed {seed})", unit="frame",
                      disable=not progress):
            f = gen.frame(i)
            stamp = SYNTHETIC_T0_NS + int(round(f.stamp * 1e9))
            T_ground_cam = np.linalg.inv(f.T_cam_from_ground)  # pose of the camera in base_footprint
            w.write("/tf", stamp, bio.tf_message([bio.transform_stamped(T_ground_cam, stamp, bio.GROUND_FRAME,
                                                                          bio.CAMERA_FRAME)]))
            w.write(TOPICS["camera_info"], stamp, bio.camera_info_msg(f.camera, stamp, bio.CAMERA_FRAME))
            write_image(f.rgb, stamp)
            w.write(TOPICS["semantic"], stamp, bio.image_msg(f.labels, stamp, bio.CAMERA_FRAME, "mono8"))
            w.write(TOPICS["depth"], stamp, bio.image_msg(f.depth.astype(np.float32), stamp, bio.CAMERA_FRAME))
            pts_lidar = f.lidar_points_cam @ T_lidar_cam[:3, :3].T + T_lidar_cam[:3, 3]
            w.write(TOPICS["lidar"], stamp, bio.pointcloud_msg(pts_lidar, stamp, bio.LIDAR_FRAME))
    with bio.BagReader(out) as r:
        topics = {t: i.count for t, i in r.topics.items()}
    return BagSummary(Path(out), frames, topics, [f"scene generator seed {seed}, version {generator_version()}"])


# ------------------------------------------------------------------------------ KITTI raw

def parse_kitti_timestamps(path: Path) -> list[int]:
    """KITTI raw timestamps.txt ('2011-09-26 13:02:25.964389445' per line) -> ns since the epoch (UTC)."""
    out = []
    for no, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            day, clock = line.split(" ")
            hms, _, frac = clock.partition(".")
            base = datetime.strptime(f"{day} {hms}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
            out.append(int(base.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9]))
        except ValueError:
            raise MakeBagError(f"{path} line {no}: {line!r} is not a KITTI timestamp 'YYYY-MM-DD HH:MM:SS.fffffffff'") from None
    return out


def make_kitti_bag(out, drive, calib_dir=None, storage: str = "mcap", image_format: str = "raw",
                   camera_height: float = 1.65, max_frames: int | None = None, progress: bool = True) -> BagSummary:
    """A KITTI raw drive folder (image_02/data, velodyne_points/data, timestamps, calibration) to a bag.

    Calibration: ``calib_dir`` or the drive's parent folder (calib_cam_to_cam.txt, calib_velo_to_cam.txt).
    The camera's ground pose is the nominal mounting (``camera_height`` above a level road) as a
    static base_footprint -> camera_optical_frame transform: the raw drive's OXTS pose is not used.
    """
    import cv2
    from tqdm import tqdm

    from .. import kitti

    drive = Path(drive)
    calib_dir = Path(calib_dir) if calib_dir else drive.parent
    img_dir, velo_dir = drive / "image_02" / "data", drive / "velodyne_points" / "data"
    if not img_dir.is_dir():
        raise MakeBagError(f"{img_dir} not found: --drive must be a KITTI raw drive folder "
                           "(<date>/<date>_drive_NNNN_sync with image_02/data)")
    if not (calib_dir / "calib_cam_to_cam.txt").is_file():
        raise MakeBagError(f"{calib_dir / 'calib_cam_to_cam.txt'} not found: pass --calib with the date folder")
    calib = kitti.read_raw_calib(calib_dir, cam=2)
    images = sorted(img_dir.glob("*.png"))
    if not images:
        raise MakeBagError(f"{img_dir} holds no .png images")
    if max_frames:
        images = images[:max_frames]
    notes = []
    cam_times, velo_times = _sensor_times(drive / "image_02" / "timestamps.txt",
                                          drive / "velodyne_points" / "timestamps.txt", len(images), notes)
    if not velo_dir.is_dir():
        notes.append(f"{velo_dir} not found: the bag has no LiDAR")
    # rosbags' camera_info from the calibrated model; P keeps KITTI's stereo column for this camera
    T_cam_velo = np.asarray(calib.T_cam_velo, dtype=np.float64)
    from ..ground import GroundPlane

    T_ground_cam = np.linalg.inv(GroundPlane.transform_from_static(camera_height))
    skipped = 0
    with bio.BagWriter(out, storage) as w:
        write_image = _image_writer(w, image_format)
        t0 = cam_times[0]
        w.write("/tf_static", t0, bio.tf_message([
            bio.transform_stamped(T_cam_velo, t0, bio.CAMERA_FRAME, bio.LIDAR_FRAME),
            bio.transform_stamped(T_ground_cam, t0, bio.GROUND_FRAME, bio.CAMERA_FRAME)]))
        for i, img_path in enumerate(tqdm(images, desc=f"KITTI bag {drive.name}", unit="frame", disable=not progress)):
            bgr = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
            if bgr is None:
                log.warning("%s is unreadable: skipped", img_path)
                skipped += 1
                continue
            stamp = cam_times[i]
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if rgb.shape[:2] != (calib.camera.height, calib.camera.width):
                raise MakeBagError(f"{img_path} is {rgb.shape[1]}x{rgb.shape[0]} but the calibration in {calib_dir} "
                                   f"is {calib.camera.width}x{calib.camera.height}")
            w.write(TOPICS["camera_info"], stamp, bio.camera_info_msg(calib.camera, stamp, bio.CAMERA_FRAME))
            write_image(rgb, stamp)
            velo = velo_dir / (img_path.stem + ".bin")
            if velo.is_file():
                pts = kitti.read_velodyne(velo)
                vt = velo_times[i]
                w.write(TOPICS["lidar"], vt, bio.pointcloud_msg(pts[:, :3], vt, bio.LIDAR_FRAME, intensity=pts[:, 3]))
    if skipped:
        notes.append(f"{skipped} unreadable image(s) skipped")
    with bio.BagReader(out) as r:
        topics = {t: i.count for t, i in r.topics.items()}
    return BagSummary(Path(out), len(images) - skipped, topics, notes)


def _sensor_times(cam_path: Path, velo_path: Path, n: int, notes: list) -> tuple[list[int], list[int]]:
    """(camera, LiDAR) stamps of n frames on ONE time base: a sensor without its timestamps.txt takes the
    other's stamps (KITTI's sync drives pair them frame by frame); neither: both from SYNTHETIC_T0_NS.
    Two bases (2011 images, 2024 LiDAR) would pair nothing in `edepth eval bag`."""
    cam, velo = _times(cam_path, n, notes), _times(velo_path, n, notes)
    if cam is None and velo is None:
        notes.append(f"{cam_path} and {velo_path} not found (or empty): both stamped at 10 Hz from "
                     f"{datetime.fromtimestamp(SYNTHETIC_T0_NS / 1e9, timezone.utc):%Y-%m-%d}")
        cam = velo = [SYNTHETIC_T0_NS + k * 100_000_000 for k in range(n)]
    elif cam is None:
        notes.append(f"{cam_path} not found (or empty): images stamped with the LiDAR's times ({velo_path})")
        cam = velo
    elif velo is None:
        notes.append(f"{velo_path} not found (or empty): LiDAR stamped with the images' times ({cam_path})")
        velo = cam
    return cam, velo


def _times(path: Path, n: int, notes: list) -> list[int] | None:
    """n stamps from a timestamps.txt (extended at 10 Hz where short); None without the file or a stamp."""
    times = parse_kitti_timestamps(path) if path.is_file() else []
    if not times:
        return None
    if len(times) >= n:
        return times[:n]
    notes.append(f"{path} has {len(times)} stamps for {n} frames: the rest at 10 Hz")
    return times + [times[-1] + (k + 1) * 100_000_000 for k in range(n - len(times))]
