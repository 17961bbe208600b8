"""``grasp_detector``: depth + CameraInfo in, GG-CNN parallel-jaw grasps out, ranked by quality.

Topics (defaults, remappable):

- in  ``/camera/depth/image_rect_raw`` (sensor_msgs/Image, 16UC1 mm or 32FC1 m); to use the cleaned depth of
  ``depth_cleaner`` instead, remap it: ``/camera/depth/image_rect_raw:=/dcl_arc/depth/cleaned`` (the cleaner copies
  the input header, so the stamps still match the CameraInfo);
- in  ``/camera/depth/camera_info`` (sensor_msgs/CameraInfo), matched to the depth by stamp (``sync_slop_s``);
- out ``/dcl_arc/grasps`` (geometry_msgs/PoseArray): best grasp first; each pose is the grasp centre in the camera
  optical frame, oriented with x along the jaw-closing direction and z along the optical axis (the approach);
- out ``/dcl_arc/grasps/info`` (std_msgs/Float32MultiArray): rows ``[quality, width_m]`` in the same order
  (layout documented in :mod:`dcl_arc_ros.ros.markers`);
- out ``/dcl_arc/grasps/markers`` (visualization_msgs/MarkerArray): a gripper per grasp (``publish_markers``);
- out ``/dcl_arc/grasps/quality`` (sensor_msgs/Image 32FC1, the input's size, NaN outside the crop), only with
  ``publish_quality_map:=true``.

Every output carries the depth image's header. Bad input: until a CameraInfo matches, nothing is published and the
base node warns about the silent topic; depth with no valid pixel publishes an empty result and a warning.

Parameters: ``dcl_arc_ros.ros.params.GRASP_DETECTOR`` (``dcl-arc-perception --list-params`` prints them).
The maths is ``GraspPipeline`` in the pure core; this node converts, calls it and publishes.
"""

from __future__ import annotations

import sys
from typing import Any

from geometry_msgs.msg import PoseArray
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float32MultiArray, Header
from visualization_msgs.msg import MarkerArray

from dcl_arc_ros.core.errors import CoreError
from dcl_arc_ros.core.grasp_pipeline import GraspDetection
from dcl_arc_ros.core.grasps import Grasp3D
from dcl_arc_ros.ros import markers
from dcl_arc_ros.ros.base_node import Frame, InputSpec, PerceptionNode, run_node
from dcl_arc_ros.ros.depth_input import read_depth_frame
from dcl_arc_ros.ros.errors import NodeStartupError
from dcl_arc_ros.ros.model_loading import load_node_model
from dcl_arc_ros.ros.node_pipelines import grasp_pipeline
from dcl_arc_ros.ros.params import GRASP_DETECTOR

DEPTH_TOPIC = "/camera/depth/image_rect_raw"
CAMERA_INFO_TOPIC = "/camera/depth/camera_info"
GRASPS_TOPIC = "/dcl_arc/grasps"
INFO_TOPIC = "/dcl_arc/grasps/info"
MARKERS_TOPIC = "/dcl_arc/grasps/markers"
QUALITY_TOPIC = "/dcl_arc/grasps/quality"


class GraspDetectorNode(PerceptionNode):
    """Subscribes to depth + CameraInfo, publishes the grasps of ``GraspPipeline``."""

    def __init__(self, node_name: str = "grasp_detector", **node_kwargs: Any) -> None:
        super().__init__(node_name, GRASP_DETECTOR, **node_kwargs)
        p = self.params
        self.model_path, model = load_node_model(GRASP_DETECTOR, p, self.get_name())
        self.provider = model.provider
        try:
            self.pipeline = grasp_pipeline(model, p)
        except CoreError as exc:
            raise NodeStartupError(f"the model {self.model_path} cannot drive the grasp pipeline: {exc}") from exc
        self.marker_style = markers.GripperStyle(finger_length_m=p["marker_finger_length_m"])
        self.grasps_pub = self.create_output(PoseArray, GRASPS_TOPIC)
        self.info_pub = self.create_output(Float32MultiArray, INFO_TOPIC)
        self.markers_pub = self.create_output(MarkerArray, MARKERS_TOPIC) if p["publish_markers"] else None
        self.quality_pub = self.create_output(Image, QUALITY_TOPIC) if p["publish_quality_map"] else None
        self.last_count = 0
        self.get_logger().info(
            f"model {self.model_path} ({model.sidecar.name} v{model.sidecar.model_version}, network input "
            f"{self.pipeline.net_hw[1]}x{self.pipeline.net_hw[0]}) on {self.provider}; publishing "
            f"{self.grasps_pub.topic_name}"
        )
        self.start_inputs(
            [InputSpec("depth", DEPTH_TOPIC, Image), InputSpec("camera_info", CAMERA_INFO_TOPIC, CameraInfo)]
        )

    def process(self, frame: Frame) -> None:
        depth = read_depth_frame(frame, self.report_input_problem)
        msg = depth.msg
        if not depth.reading.any_valid:  # free; counting the valid pixels would cost a full-frame pass
            self.report_input_problem(depth.no_valid_pixel("publishing no grasps"))
            self._publish([], msg.header, None, msg)
            return
        detection = self.pipeline.detect(depth.reading.depth_m, depth.intrinsics)
        for note in detection.notes:
            self.report_input_problem(f"input on {depth.topic}: {note}")
        self._publish(detection.grasps, msg.header, detection, msg)

    def _publish(self, grasps: list[Grasp3D], header: Header, detection: GraspDetection | None, msg: Image) -> None:
        self.last_count = len(grasps)
        self.grasps_pub.publish(markers.grasp_pose_array(grasps, header))
        self.info_pub.publish(markers.grasp_info(grasps))
        if self.markers_pub is not None:
            self.markers_pub.publish(markers.grasp_markers(grasps, header, self.marker_style))
        if self.quality_pub is not None:
            self.quality_pub.publish(markers.quality_map_msg(detection, header, msg.height, msg.width))

    def diagnostic_values(self) -> list[tuple[str, str]]:
        return [
            ("model", str(self.model_path)),
            ("backend", self.params["backend"]),
            ("grasps in the last frame", str(self.last_count)),
        ]


def create_node(**node_kwargs: Any) -> GraspDetectorNode:
    """Factory used by ``dcl-arc-perception --single-process`` (``cli_args`` carries parameters and remappings)."""
    return GraspDetectorNode(**node_kwargs)


def main(args: list[str] | None = None) -> int:
    return run_node(GraspDetectorNode, prog="grasp_detector", args=args)


if __name__ == "__main__":
    sys.exit(main())
