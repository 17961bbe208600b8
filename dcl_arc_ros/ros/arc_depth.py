"""``arc_depth``: RGB + CameraInfo in, ARC monocular depth, removal mask and rescaled CameraInfo out.

Topics (defaults, remappable):

- in  ``/camera/color/image_raw`` (sensor_msgs/Image: rgb8 or bgr8; rgba8, bgra8 and mono8 are accepted too);
- in  ``/camera/color/camera_info`` (sensor_msgs/CameraInfo), matched to the image by stamp (``sync_slop_s``);
- out ``/dcl_arc/arc/depth`` (sensor_msgs/Image 32FC1): metres, NaN where the network gives no usable depth (REP 118);
- out ``/dcl_arc/arc/mask`` (sensor_msgs/Image mono8): 255 = removed by ARC's attention module (and completed by its
  inpainting module), 0 = kept;
- out ``/dcl_arc/arc/decluttered`` (sensor_msgs/Image rgb8): the translated, masked and completed image the depth
  network saw, only with ``publish_decluttered:=true``;
- out ``/dcl_arc/arc/camera_info`` (sensor_msgs/CameraInfo): the input's intrinsics rescaled to the outputs'
  resolution, with the input's distortion model and coefficients (they are in normalised coordinates, so a pure
  rescale leaves them unchanged).

The outputs are at the model's deploy resolution (its sidecar), which is usually smaller than the camera's; the
published CameraInfo describes exactly that grid, so depth can be deprojected with it. Every output carries the
colour image's header.

Bad input: a wrong encoding, an empty image or an image whose size disagrees with its CameraInfo is reported (log,
diagnostics, counter) and skipped, and the node keeps running; until a CameraInfo matches, nothing is published and
the base node warns about the silent topic.

Parameters: ``dcl_arc_ros.ros.params.ARC_DEPTH`` (``dcl-arc-perception --list-params`` prints them).
The maths is ``ARCDepthPipeline`` in the pure core; this node converts, calls it and publishes.
"""

from __future__ import annotations

import sys
from typing import Any

from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.errors import CoreError
from dcl_arc_ros.core.image_codec import array_to_image
from dcl_arc_ros.ros.base_node import Frame, InputSpec, PerceptionNode, run_node
from dcl_arc_ros.ros.conversions import (
    camera_info_from_intrinsics,
    depth_to_msg,
    image_msg_from_fields,
    intrinsics_from_camera_info,
    rgb_from_msg,
)
from dcl_arc_ros.ros.errors import BadInputError, NodeStartupError
from dcl_arc_ros.ros.model_loading import load_node_model
from dcl_arc_ros.ros.node_pipelines import arc_pipeline
from dcl_arc_ros.ros.params import ARC_DEPTH

RGB_TOPIC = "/camera/color/image_raw"
CAMERA_INFO_TOPIC = "/camera/color/camera_info"
DEPTH_TOPIC = "/dcl_arc/arc/depth"
MASK_TOPIC = "/dcl_arc/arc/mask"
DECLUTTERED_TOPIC = "/dcl_arc/arc/decluttered"
OUTPUT_CAMERA_INFO_TOPIC = "/dcl_arc/arc/camera_info"


def output_camera_info(intrinsics: Intrinsics, info: CameraInfo, header: Header) -> CameraInfo:
    """The CameraInfo of the outputs: their (rescaled) intrinsics, the input's distortion, the input's header."""
    msg = camera_info_from_intrinsics(intrinsics, header)
    if info.distortion_model:
        msg.distortion_model = info.distortion_model
        msg.d = [float(v) for v in info.d]
    return msg


class ARCDepthNode(PerceptionNode):
    """Subscribes to RGB + CameraInfo, publishes what ``ARCDepthPipeline`` computes."""

    def __init__(self, node_name: str = "arc_depth", **node_kwargs: Any) -> None:
        super().__init__(node_name, ARC_DEPTH, **node_kwargs)
        self.model_path, model = load_node_model(ARC_DEPTH, self.params, self.get_name())
        self.provider = model.provider
        try:
            self.pipeline = arc_pipeline(model, self.params)
        except CoreError as exc:
            raise NodeStartupError(f"the model {self.model_path} cannot drive the ARC pipeline: {exc}") from exc
        spec = self.pipeline.spec
        self.depth_pub = self.create_output(Image, DEPTH_TOPIC)
        self.mask_pub = self.create_output(Image, MASK_TOPIC)
        self.info_pub = self.create_output(CameraInfo, OUTPUT_CAMERA_INFO_TOPIC)
        self.decluttered_pub = (
            self.create_output(Image, DECLUTTERED_TOPIC) if self.params["publish_decluttered"] else None
        )
        self.last_removed_fraction = 0.0
        self.get_logger().info(
            f"model {self.model_path} ({model.sidecar.name} v{model.sidecar.model_version}, "
            f"{model.sidecar.extra.get('method', 'unknown method')}, network and outputs {spec.width}x{spec.height}) "
            f"on {self.provider}; publishing {self.depth_pub.topic_name}, {self.mask_pub.topic_name}, "
            f"{self.info_pub.topic_name}"
            + (f", {self.decluttered_pub.topic_name}" if self.decluttered_pub is not None else "")
        )
        self.start_inputs([InputSpec("rgb", RGB_TOPIC, Image), InputSpec("camera_info", CAMERA_INFO_TOPIC, CameraInfo)])

    def process(self, frame: Frame) -> None:
        msg: Image = frame.msgs["rgb"]
        info: CameraInfo = frame.msgs["camera_info"]
        if (info.width, info.height) != (msg.width, msg.height):
            raise BadInputError(
                f"colour image is {msg.width}x{msg.height} ({msg.encoding!r}) but its CameraInfo says "
                f"{info.width}x{info.height}"
            )
        rgb = rgb_from_msg(msg)  # BadInputError for an empty image or an unsupported encoding
        result = self.pipeline(rgb, intrinsics_from_camera_info(info))
        header = msg.header
        self.depth_pub.publish(depth_to_msg(result.depth_m, header))
        self.mask_pub.publish(image_msg_from_fields(array_to_image(result.mask, "mono8"), header))
        assert result.intrinsics is not None  # the pipeline rescales the intrinsics it is given
        self.info_pub.publish(output_camera_info(result.intrinsics, info, header))
        if self.decluttered_pub is not None:
            self.decluttered_pub.publish(image_msg_from_fields(array_to_image(result.decluttered, "rgb8"), header))
        self.last_removed_fraction = float((result.mask != 0).mean())

    def diagnostic_values(self) -> list[tuple[str, str]]:
        spec = self.pipeline.spec
        return [
            ("model", str(self.model_path)),
            ("backend", self.params["backend"]),
            ("output resolution", f"{spec.width}x{spec.height}"),
            ("removed fraction in the last frame", f"{self.last_removed_fraction:.3f}"),
        ]


def create_node(**node_kwargs: Any) -> ARCDepthNode:
    """Factory used by ``dcl-arc-perception --single-process`` (``cli_args`` carries parameters and remappings)."""
    return ARCDepthNode(**node_kwargs)


def main(args: list[str] | None = None) -> int:
    return run_node(ARCDepthNode, prog="arc_depth", args=args)


if __name__ == "__main__":
    sys.exit(main())
