"""The ROS 2 layer: thin nodes over the core pipelines, their parameter schemas, QoS and message conversions.

The only part of the package that imports rclpy and message types.
"""
