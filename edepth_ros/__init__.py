"""edepth_ros: metric monocular depth for ROS 2 from embodied scene geometry and a
vision-language network (CVPR 2025, "Vision-Language Embodiment for Monocular Depth Estimation").

Importing the package is cheap and needs no ROS installation and no torch: the ROS front end
lives in ``edepth_ros.ros`` and the network in ``edepth_ros.network``, imported only when used.
"""

__version__ = "0.1.0"
