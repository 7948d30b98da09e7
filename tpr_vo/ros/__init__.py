"""ROS 2 face of tpr_vo: the `vo_node` and `kitti_player` nodes and message conversions.

The only package that imports rclpy and ROS messages; nothing here holds algorithm code."""
