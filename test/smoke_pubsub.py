"""Two-process ROS 2 smoke test helper: `pub` sends N 1242x375 rgb8 images, `sub` counts intact ones.

Run as separate processes by test_ros_smoke.py so the images cross a real Fast DDS graph.
"""

import sys
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

W, H = 1242, 375


def pattern(i: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = (np.arange(W)[None, :] + i) % 256
    img[..., 1] = (np.arange(H)[:, None] * 3 + i) % 256
    img[..., 2] = i % 256
    return img


def pub(count: int) -> None:
    rclpy.init()
    node = rclpy.create_node("smoke_pub")
    p = node.create_publisher(Image, "smoke_image", qos_profile_sensor_data)
    deadline = time.monotonic() + 20
    while p.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let discovery settle in both directions
    for i in range(count):
        msg = Image(height=H, width=W, encoding="rgb8", step=W * 3)
        msg.header.frame_id = f"frame_{i}"
        msg.data = pattern(i).tobytes()
        p.publish(msg)
        time.sleep(0.1)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()


def sub(count: int, timeout: float) -> None:
    rclpy.init()
    node = rclpy.create_node("smoke_sub")
    got = {"ok": 0, "bad": 0}

    def on_image(msg: Image) -> None:
        i = int(msg.header.frame_id.split("_")[1])
        arr = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
        got["ok" if np.array_equal(arr, pattern(i)) else "bad"] += 1

    node.create_subscription(Image, "smoke_image", on_image, qos_profile_sensor_data)
    print("READY", flush=True)
    deadline = time.monotonic() + timeout
    while got["ok"] + got["bad"] < count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(f"RESULT ok={got['ok']} bad={got['bad']}", flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    role, n = sys.argv[1], int(sys.argv[2])
    pub(n) if role == "pub" else sub(n, float(sys.argv[3]))
