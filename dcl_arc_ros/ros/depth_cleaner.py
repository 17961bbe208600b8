"""``depth_cleaner``: raw depth in, cleaned 32FC1 depth out, through any depth-to-depth ONNX model with a sidecar.

Topics (defaults, remappable):

- in  ``/camera/depth/image_rect_raw`` (sensor_msgs/Image, 16UC1 mm or 32FC1 m);
- in  ``/camera/depth/camera_info`` (sensor_msgs/CameraInfo; only with ``use_camera_info:=true``);
- out ``/dcl_arc/depth/cleaned`` (sensor_msgs/Image, 32FC1 metres, NaN = unknown, the input's header);
- out ``/dcl_arc/depth/synthesized`` (same form; only with ``publish_synthesized:=true`` and a ``synthesis_model``).

Parameters: ``dcl_arc_ros.ros.params.DEPTH_CLEANER`` (``dcl-arc-perception --list-params`` prints them).
The maths is ``DepthCleaningPipeline`` in the pure core; this node converts, calls it and publishes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sensor_msgs.msg import CameraInfo, Image

from dcl_arc_ros.core.depth_cleaning import DepthCleaningPipeline
from dcl_arc_ros.core.errors import CoreError
from dcl_arc_ros.ros.base_node import Frame, InputSpec, PerceptionNode, run_node
from dcl_arc_ros.ros.conversions import DepthImageBuffer, depth_from_msg, depth_to_msg
from dcl_arc_ros.ros.errors import BadInputError, NodeStartupError
from dcl_arc_ros.ros.model_loading import load_model_file, load_node_model
from dcl_arc_ros.ros.node_pipelines import cleaner_pipeline
from dcl_arc_ros.ros.params import DEPTH_CLEANER

DEPTH_TOPIC = "/camera/depth/image_rect_raw"
CAMERA_INFO_TOPIC = "/camera/depth/camera_info"
CLEANED_TOPIC = "/dcl_arc/depth/cleaned"
SYNTHESIZED_TOPIC = "/dcl_arc/depth/synthesized"


def _pipeline(build: Callable[[], DepthCleaningPipeline], path: Path, role: str) -> DepthCleaningPipeline:
    try:
        return build()
    except CoreError as exc:
        raise NodeStartupError(f"the {role} model {path} cannot drive the depth pipeline: {exc}") from exc


class DepthCleanerNode(PerceptionNode):
    """Subscribes to raw depth, publishes cleaned depth computed by ``DepthCleaningPipeline``."""

    def __init__(self, node_name: str = "depth_cleaner", **node_kwargs: Any) -> None:
        super().__init__(node_name, DEPTH_CLEANER, **node_kwargs)
        p = self.params
        self.model_path, model = load_node_model(DEPTH_CLEANER, p, self.get_name())
        self.provider = model.provider
        self.pipeline = _pipeline(lambda: cleaner_pipeline(model, p), self.model_path, "depth cleaner")
        self.synthesis: DepthCleaningPipeline | None = None
        self.synthesis_path: Path | None = None
        if p["publish_synthesized"]:
            if not p["synthesis_model"]:
                raise NodeStartupError(
                    f"parameter {self.get_name()}.publish_synthesized is true but {self.get_name()}.synthesis_model "
                    "is empty"
                )
            self.synthesis_path = Path(p["synthesis_model"]).expanduser()
            synthesis_model = load_model_file(
                self.synthesis_path, p, node=self.get_name(), parameter="synthesis_model", role="synthesis"
            )
            # DCL generators output realistic depth WITH holes: no hole filling, raw output (holes stay holes).
            self.synthesis = _pipeline(
                lambda: DepthCleaningPipeline(synthesis_model, fill_holes=False, raw_output=True),
                self.synthesis_path,
                "synthesis",
            )
        self.cleaned_pub = self.create_output(Image, CLEANED_TOPIC)
        # The cleaned depth is written straight into the outgoing message's bytes, reused frame after frame.
        self._cleaned = DepthImageBuffer()
        self.synthesized_pub = self.create_output(Image, SYNTHESIZED_TOPIC) if self.synthesis else None
        inputs = [InputSpec("depth", DEPTH_TOPIC, Image)]
        if p["use_camera_info"]:
            inputs.append(InputSpec("camera_info", CAMERA_INFO_TOPIC, CameraInfo))
        self.get_logger().info(
            f"model {self.model_path} ({model.sidecar.name} v{model.sidecar.model_version}) on {self.provider}; "
            f"publishing {self.cleaned_pub.topic_name}"
            + (f" and {self.synthesized_pub.topic_name}" if self.synthesized_pub else "")
        )
        self.start_inputs(inputs)

    def process(self, frame: Frame) -> None:
        msg: Image = frame.msgs["depth"]
        topic = frame.topics["depth"]
        info: CameraInfo | None = frame.msgs.get("camera_info")
        if info is not None and (info.width, info.height) != (msg.width, msg.height):
            raise BadInputError(
                f"depth image is {msg.width}x{msg.height} but its CameraInfo says {info.width}x{info.height}"
            )
        # A view of msg.data where the frame allows (no copy), and 16UC1 holes left at 0 m: the pipelines only read
        # the depth, msg outlives them, and they read <= 0 as no reading (the output is NaN = unknown either way).
        reading = depth_from_msg(msg, copy=False, nan_holes=False)
        if not reading.any_valid:
            raise BadInputError(
                f"depth image {msg.width}x{msg.height} {msg.encoding} has no valid pixel (all NaN, inf, <= 0 or 0 mm)"
            )
        for problem in reading.problems():
            self.report_input_problem(f"input on {topic}: {problem}")
        self.pipeline(reading.depth_m, out=self._cleaned.array(reading.depth_m.shape))
        self.cleaned_pub.publish(self._cleaned.message(msg.header))
        if self.synthesis is not None and self.synthesized_pub is not None:
            self.synthesized_pub.publish(depth_to_msg(self.synthesis(reading.depth_m), msg.header))

    def diagnostic_values(self) -> list[tuple[str, str]]:
        values = [("model", str(self.model_path)), ("backend", self.params["backend"])]
        if self.synthesis_path is not None:
            values.append(("synthesis model", str(self.synthesis_path)))
        return values


def create_node(**node_kwargs: Any) -> DepthCleanerNode:
    """Factory used by ``dcl-arc-perception --single-process`` (``cli_args`` carries parameters and remappings)."""
    return DepthCleanerNode(**node_kwargs)


def main(args: list[str] | None = None) -> int:
    return run_node(DepthCleanerNode, prog="depth_cleaner", args=args)


if __name__ == "__main__":
    sys.exit(main())
