"""The ROS 2 front end: message conversion, parameters, tf adapter and ``edepth_node``.

Only ``node`` and ``tf_source`` need rclpy at import time; ``convert`` and ``params`` import
message classes / rclpy lazily so bag tools and tests can use their pure parts without ROS.
"""
