"""Evaluations: embodied depth vs KITTI LiDAR (`embodied_eval`), the network on the KITTI Eigen
split (`kitti_eval`), and against LiDAR in ROS 2 bags (`bag_eval`). Import the submodule you need."""
