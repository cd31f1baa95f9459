"""KITTI calibration parsing, Velodyne reading and LiDAR projection on the real sample frames."""

from __future__ import annotations

import numpy as np
import pytest

from edepth_ros.kitti import (KittiFormatError, lidar_to_camera, project_lidar, read_object_calib,
                              read_raw_calib, read_velodyne)


def _raw_matrices(path):
    vals = {}
    for line in open(path):
        k, _, v = line.partition(":")
        try:
            vals[k.strip()] = np.array([float(x) for x in v.split()])
        except ValueError:
            pass
    return vals


def test_object_calib_matches_kitti_projection(kitti_dir):
    path = kitti_dir / "object" / "calib" / "000001.txt"
    calib = read_object_calib(path)
    raw = _raw_matrices(path)
    P2 = raw["P2"].reshape(3, 4)
    R0 = np.eye(4)
    R0[:3, :3] = raw["R0_rect"].reshape(3, 3)
    Tr = np.eye(4)
    Tr[:3] = raw["Tr_velo_to_cam"].reshape(3, 4)
    cam = calib.camera
    assert cam.fx == pytest.approx(721.5377) and cam.cx == pytest.approx(609.5593)
    # P2 = K [I | t]: t = K^-1 P2[:, 3], camera 2 about 6 cm left of camera 0 (and 2.7 mm ahead)
    np.testing.assert_allclose(cam.stereo_offset, np.linalg.solve(P2[:, :3], P2[:, 3]))
    assert cam.stereo_offset[0] == pytest.approx(0.0598, abs=1e-3)
    pts = read_velodyne(kitti_dir / "object" / "velodyne" / "000001.bin")[::500]
    X = np.hstack([pts[:, :3].astype(np.float64), np.ones((len(pts), 1))])
    img = (P2 @ R0 @ Tr @ X.T).T
    front = img[:, 2] > 0.5
    u_ref, v_ref = img[front, 0] / img[front, 2], img[front, 1] / img[front, 2]
    u, v, z = cam.project(lidar_to_camera(pts[front], calib))
    np.testing.assert_allclose(u, u_ref, atol=1e-6)
    np.testing.assert_allclose(v, v_ref, atol=1e-6)
    # depth from camera 2's own centre: the rectified cam-0 depth plus P2's z offset (2.7 mm)
    np.testing.assert_allclose(z, img[front, 2], atol=1e-9)


def test_raw_calib_matches_object_calib_of_same_day(kitti_dir):
    raw = read_raw_calib(kitti_dir / "raw_calib" / "2011_09_26")
    obj = read_object_calib(kitti_dir / "object" / "calib" / "000001.txt")
    assert (raw.camera.width, raw.camera.height) == (1242, 375)
    np.testing.assert_allclose(raw.camera.K, obj.camera.K, rtol=1e-6)
    np.testing.assert_allclose(raw.T_cam_velo, obj.T_cam_velo, atol=1e-6)
    cam3 = read_raw_calib(kitti_dir / "raw_calib" / "2011_09_26", cam=3)
    # camera 3 sits about 0.47 m to the right of camera 0 (P_rect_03 Tx = -339.5)
    assert cam3.camera.stereo_offset[0] == pytest.approx(-0.4729, abs=1e-3)


def test_calib_errors_name_file_and_key(tmp_path, kitti_dir):
    text = (kitti_dir / "object" / "calib" / "000001.txt").read_text()
    broken = tmp_path / "000001.txt"
    broken.write_text("\n".join(line for line in text.splitlines() if not line.startswith("R0_rect")))
    with pytest.raises(KittiFormatError, match=r"000001\.txt: key 'R0_rect' is missing"):
        read_object_calib(broken)
    short = tmp_path / "short.txt"
    short.write_text(text.replace("Tr_velo_to_cam: 7.533745000000e-03", "Tr_velo_to_cam:"))
    with pytest.raises(KittiFormatError, match="'Tr_velo_to_cam' has 11 values"):
        read_object_calib(short)
    with pytest.raises(KittiFormatError, match="no such calibration file"):
        read_object_calib(tmp_path / "nope.txt")
    (tmp_path / "calib_cam_to_cam.txt").write_text("P_rect_02: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    (tmp_path / "calib_velo_to_cam.txt").write_text("R: 1 0 0 0 1 0 0 0 1\nT: 0 0 0\n")
    with pytest.raises(KittiFormatError, match="calib_cam_to_cam.txt: key 'R_rect_00' is missing"):
        read_raw_calib(tmp_path)
    # numbers that are not a rotation would move every LiDAR point: refused, naming the key
    for key, scaled in (("R0_rect", "R0_rect: 2 0 0 0 2 0 0 0 2"),
                        ("Tr_velo_to_cam", "Tr_velo_to_cam: 1 0 0 0 0.5 1 0 0 0 0 1 0")):
        edited = tmp_path / f"{key}.txt"
        edited.write_text("\n".join(scaled if line.startswith(key + ":") else line for line in text.splitlines()))
        with pytest.raises(KittiFormatError, match=rf"{key}.txt: key '{key}': .* is not a rotation matrix"):
            read_object_calib(edited)
    (tmp_path / "calib_cam_to_cam.txt").write_text(
        "P_rect_02: 1 0 0 0 0 1 0 0 0 0 1 0\nR_rect_00: 1 0 0 0 1 0 0 0 1\nS_rect_02: 1 1\n")
    (tmp_path / "calib_velo_to_cam.txt").write_text("R: 3 0 0 0 1 0 0 0 1\nT: 0 0 0\n")
    with pytest.raises(KittiFormatError, match=r"calib_velo_to_cam\.txt: key 'R': .* is not a rotation matrix"):
        read_raw_calib(tmp_path)
    # an image size that is not whole pixels (used to be rounded without a word) or not positive
    (tmp_path / "calib_velo_to_cam.txt").write_text("R: 1 0 0 0 1 0 0 0 1\nT: 0 0 0\n")
    for size in ("1242.6 375", "0 375", "-1242 375"):
        (tmp_path / "calib_cam_to_cam.txt").write_text(
            f"P_rect_02: 700 0 600 0 0 700 180 0 0 0 1 0\nR_rect_00: 1 0 0 0 1 0 0 0 1\nS_rect_02: {size}\n")
        with pytest.raises(KittiFormatError, match=r"calib_cam_to_cam\.txt: key 'S_rect_02' is .* not a whole"):
            read_raw_calib(tmp_path)
    (tmp_path / "calib_cam_to_cam.txt").write_text(
        "P_rect_02: 700 0 600 0 0 700 180 0 0 0 1 0\nR_rect_00: 1 0 0 0 1 0 0 0 1\nS_rect_02: 1.242000e+03 3.75e2\n")
    assert read_raw_calib(tmp_path).camera.width == 1242
    # a non-numeric value, a repeated key and a folder are each called what they are
    word = tmp_path / "word.txt"
    word.write_text(text.replace("R0_rect: ", "R0_rect: x"))
    with pytest.raises(KittiFormatError, match="key 'R0_rect' is not numeric"):
        read_object_calib(word)
    twice = tmp_path / "twice.txt"
    twice.write_text(text + "\nP2: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    with pytest.raises(KittiFormatError, match="key 'P2' appears twice"):
        read_object_calib(twice)
    (tmp_path / "folder.txt").mkdir()
    with pytest.raises(KittiFormatError, match="a folder, not a calibration file"):
        read_object_calib(tmp_path / "folder.txt")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 20)
    with pytest.raises(KittiFormatError, match="20 bytes"):
        read_velodyne(bad)


def test_project_lidar_nearest_point_wins(kitti_dir):
    calib = read_object_calib(kitti_dir / "object" / "calib" / "000002.txt")
    pts = read_velodyne(kitti_dir / "object" / "velodyne" / "000002.bin")
    assert pts.dtype == np.float32 and pts.shape[1] == 4 and len(pts) > 100_000
    depth, pixel = project_lidar(pts, calib)
    assert depth.shape == (375, 1242)
    inside = pixel >= 0
    assert 0.1 < inside.mean() < 0.3  # the camera sees the LiDAR's forward sector only
    z = lidar_to_camera(pts, calib)[:, 2]
    flat = depth.ravel()
    # every pixel holds the nearest of the points that land on it
    order = np.lexsort((z[inside], pixel[inside]))
    first = np.r_[True, np.diff(pixel[inside][order]) != 0]
    np.testing.assert_allclose(flat[pixel[inside][order][first]], z[inside][order][first], rtol=1e-6)
    assert np.nanmin(depth) > 0.1 and np.isnan(depth).mean() > 0.8
