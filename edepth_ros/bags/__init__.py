"""ROS 2 bags without ROS: rosbags-based reading/writing (io), bag makers (make_bag), rclpy replay
with /clock (play) and a raw-bytes recorder (record). Only ``play`` and ``record`` import rclpy."""
