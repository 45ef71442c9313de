"""ROS 2 shell around the pure core: the node, message conversion, markers, diagnostics, parameters.

Everything here may import rclpy; nothing outside this package does.
"""
