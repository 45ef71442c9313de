"""Offline rosbag2 tools without a ROS install: read/write bags with ``rosbags``, evaluate, replay.

``eval-bag`` runs the same PoseEstimator and the same pure pairing/decoding code
(v2v_ros.core.stream, v2v_ros.core.depth_decode) as the live node, so offline and
live numbers are comparable. ``play`` needs rclpy and lives in v2v_ros.ros.play.
"""
