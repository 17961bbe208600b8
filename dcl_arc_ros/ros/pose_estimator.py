"""``pose_estimator``: depth + CameraInfo in, the class and 6D pose of each object on the support plane out.

Topics (defaults, remappable):

- in  ``/camera/depth/image_rect_raw`` (sensor_msgs/Image, 16UC1 mm or 32FC1 m; remap to ``/dcl_arc/depth/cleaned``
  for the cleaned depth);
- in  ``/camera/depth/camera_info`` (sensor_msgs/CameraInfo), matched to the depth by stamp (``sync_slop_s``);
- out ``/dcl_arc/poses`` (geometry_msgs/PoseArray): one pose per object in the camera optical frame, the largest
  objects first (at most ``max_objects``);
- out ``/dcl_arc/poses/info`` (std_msgs/Float32MultiArray): rows ``[class_id, confidence]`` in the same order
  (layout documented in :mod:`dcl_arc_ros.ros.markers`);
- out ``/dcl_arc/poses/markers`` (visualization_msgs/MarkerArray): box, axes and label per object
  (``publish_markers``).

Every output carries the depth image's header. Bad input: until a CameraInfo matches, nothing is published and the
base node warns about the silent topic; depth with no valid pixel (or too few to fit the support plane) publishes an
empty result and a warning; a table with nothing on it publishes an empty PoseArray, which is not an error.

Parameters: ``dcl_arc_ros.ros.params.POSE_ESTIMATOR`` (``dcl-arc-perception --list-params`` prints them).
The maths is ``PosePipeline`` (object proposals, crops, network, rotation decoding) in the pure core.
"""

from __future__ import annotations

import sys
from typing import Any

from geometry_msgs.msg import PoseArray
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float32MultiArray, Header
from visualization_msgs.msg import MarkerArray

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.errors import CoreError, DepthError
from dcl_arc_ros.core.pose_pipeline import ObjectPose
from dcl_arc_ros.ros import markers
from dcl_arc_ros.ros.base_node import Frame, InputSpec, PerceptionNode, run_node
from dcl_arc_ros.ros.depth_input import read_depth_frame
from dcl_arc_ros.ros.errors import NodeStartupError
from dcl_arc_ros.ros.model_loading import load_node_model
from dcl_arc_ros.ros.node_pipelines import pose_pipeline
from dcl_arc_ros.ros.params import POSE_ESTIMATOR

DEPTH_TOPIC = "/camera/depth/image_rect_raw"
CAMERA_INFO_TOPIC = "/camera/depth/camera_info"
POSES_TOPIC = "/dcl_arc/poses"
INFO_TOPIC = "/dcl_arc/poses/info"
MARKERS_TOPIC = "/dcl_arc/poses/markers"


class PoseEstimatorNode(PerceptionNode):
    """Subscribes to depth + CameraInfo, publishes the object poses of ``PosePipeline``."""

    def __init__(self, node_name: str = "pose_estimator", **node_kwargs: Any) -> None:
        super().__init__(node_name, POSE_ESTIMATOR, **node_kwargs)
        p = self.params
        self.model_path, model = load_node_model(POSE_ESTIMATOR, p, self.get_name())
        self.provider = model.provider
        try:
            self.pipeline = pose_pipeline(model, p)
        except CoreError as exc:
            raise NodeStartupError(
                f"parameters of {self.get_name()} or the model {self.model_path} do not fit the pose pipeline: {exc}"
            ) from exc
        self.marker_style = markers.PoseStyle(axis_length_m=p["marker_axis_length_m"])
        self.poses_pub = self.create_output(PoseArray, POSES_TOPIC)
        self.info_pub = self.create_output(Float32MultiArray, INFO_TOPIC)
        self.markers_pub = self.create_output(MarkerArray, MARKERS_TOPIC) if p["publish_markers"] else None
        self.last_count = 0
        self.get_logger().info(
            f"model {self.model_path} ({model.sidecar.name} v{model.sidecar.model_version}, "
            f"{self.pipeline.crop.crop_size}px crops) on {self.provider}; publishing {self.poses_pub.topic_name}"
        )
        self.start_inputs(
            [InputSpec("depth", DEPTH_TOPIC, Image), InputSpec("camera_info", CAMERA_INFO_TOPIC, CameraInfo)]
        )

    def process(self, frame: Frame) -> None:
        depth = read_depth_frame(frame, self.report_input_problem)
        header, intrinsics = depth.msg.header, depth.intrinsics
        if not depth.reading.any_valid:  # free; counting the valid pixels would cost a full-frame pass
            self.report_input_problem(depth.no_valid_pixel("publishing no poses"))
            self._publish([], header, intrinsics)
            return
        try:
            poses = self.pipeline(depth.reading.depth_m, intrinsics)
        except DepthError as exc:  # the sizes were checked above: what is left is too little depth to find a plane
            self.report_input_problem(f"depth on {depth.topic}: {exc}: publishing no poses")
            poses = []
        self._publish(poses, header, intrinsics)

    def _publish(self, poses: list[ObjectPose], header: Header, intrinsics: Intrinsics) -> None:
        self.last_count = len(poses)
        self.poses_pub.publish(markers.object_pose_array(poses, header))
        self.info_pub.publish(markers.pose_info(poses))
        if self.markers_pub is not None:
            self.markers_pub.publish(markers.pose_markers(poses, header, intrinsics, self.marker_style))

    def diagnostic_values(self) -> list[tuple[str, str]]:
        return [
            ("model", str(self.model_path)),
            ("backend", self.params["backend"]),
            ("objects in the last frame", str(self.last_count)),
        ]


def create_node(**node_kwargs: Any) -> PoseEstimatorNode:
    """Factory used by ``dcl-arc-perception --single-process`` (``cli_args`` carries parameters and remappings)."""
    return PoseEstimatorNode(**node_kwargs)


def main(args: list[str] | None = None) -> int:
    return run_node(PoseEstimatorNode, prog="pose_estimator", args=args)


if __name__ == "__main__":
    sys.exit(main())
