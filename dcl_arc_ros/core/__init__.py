"""The pure core: image codecs, cameras, depth, grasps, proposals, metrics, model sidecars, stamp sync and each
node's per-frame pipeline.

numpy and OpenCV only; it never imports rclpy or torch (``tests/unit/test_layering.py`` checks that).
"""
