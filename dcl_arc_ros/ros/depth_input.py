"""Depth + CameraInfo input shared by the depth-driven nodes (``grasp_detector``, ``pose_estimator``).

Both nodes check the pair the same way before any maths: the image and its CameraInfo must agree on the size, the
depth is decoded to metres (REP 118) and whatever the decoder had to discard is reported as an input problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sensor_msgs.msg import CameraInfo, Image

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.ros.base_node import Frame
from dcl_arc_ros.ros.conversions import DepthReading, depth_from_msg, intrinsics_from_camera_info
from dcl_arc_ros.ros.errors import BadInputError


@dataclass(frozen=True)
class DepthFrame:
    """One decoded depth image with the intrinsics of its matched CameraInfo."""

    msg: Image
    info: CameraInfo
    topic: str  # resolved name of the depth topic, for messages
    intrinsics: Intrinsics
    reading: DepthReading

    def no_valid_pixel(self, outcome: str) -> str:
        """The input-problem text for a frame without one valid pixel; ``outcome`` says what the node publishes."""
        msg = self.msg
        return f"depth on {self.topic} ({msg.width}x{msg.height} {msg.encoding}) has no valid pixel: {outcome}"


def read_depth_frame(
    frame: Frame, report: Callable[[str], None], *, depth_key: str = "depth", info_key: str = "camera_info"
) -> DepthFrame:
    """Decode ``frame``'s depth and CameraInfo; ``report`` receives each problem the decoder found.

    Raises ``BadInputError`` when the image and its CameraInfo disagree on the size, or for an unusable encoding.
    """
    msg: Image = frame.msgs[depth_key]
    info: CameraInfo = frame.msgs[info_key]
    topic = frame.topics[depth_key]
    if (info.width, info.height) != (msg.width, msg.height):
        raise BadInputError(
            f"depth image is {msg.width}x{msg.height} but its CameraInfo says {info.width}x{info.height}"
        )
    intrinsics = intrinsics_from_camera_info(info)
    reading = depth_from_msg(msg)
    for problem in reading.problems():
        report(f"input on {topic}: {problem}")
    return DepthFrame(msg=msg, info=info, topic=topic, intrinsics=intrinsics, reading=reading)
