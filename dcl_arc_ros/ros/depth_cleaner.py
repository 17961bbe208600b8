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
from pathlib import Path
from typing import Any

from sensor_msgs.msg import CameraInfo, Image

from dcl_arc_ros.core.depth_cleaning import DepthCleaningPipeline
from dcl_arc_ros.core.errors import CoreError
from dcl_arc_ros.inference.backends import Model, load_model
from dcl_arc_ros.inference.errors import InferenceError
from dcl_arc_ros.paths import models_dir
from dcl_arc_ros.ros.base_node import Frame, InputSpec, PerceptionNode, run_node
from dcl_arc_ros.ros.conversions import depth_from_msg, depth_to_msg
from dcl_arc_ros.ros.errors import BadInputError, NodeStartupError
from dcl_arc_ros.ros.params import DEPTH_CLEANER, backend_options

DEPTH_TOPIC = "/camera/depth/image_rect_raw"
CAMERA_INFO_TOPIC = "/camera/depth/camera_info"
CLEANED_TOPIC = "/dcl_arc/depth/cleaned"
SYNTHESIZED_TOPIC = "/dcl_arc/depth/synthesized"


def resolve_model_path(value: str, default_file: str | None) -> Path:
    """The ``model`` parameter as a path; empty means the shipped default in the models directory."""
    if value:
        return Path(value).expanduser()
    if default_file is None:
        raise NodeStartupError("the model parameter is empty and this node has no shipped default model")
    return models_dir() / default_file


def _load(path: Path, params: dict[str, Any], role: str, parameter: str, node: str) -> Model:
    if not path.is_file():
        hint = (
            f"the shipped default is used because {node}.{parameter} is empty; set {node}.{parameter} to a model file"
            if not params[parameter]
            else f"check {node}.{parameter}"
        )
        raise NodeStartupError(f"the {role} model file {path} does not exist ({hint})")
    try:
        return load_model(path, params["backend"], device=params["device"], **backend_options(params))
    except (InferenceError, CoreError, OSError, ValueError) as exc:
        raise NodeStartupError(f"cannot load the {role} model {path}: {exc}") from exc


def _pipeline(model: Model, path: Path, role: str, **options: bool) -> DepthCleaningPipeline:
    try:
        return DepthCleaningPipeline(model, **options)
    except CoreError as exc:
        raise NodeStartupError(f"the {role} model {path} cannot drive the depth pipeline: {exc}") from exc


class DepthCleanerNode(PerceptionNode):
    """Subscribes to raw depth, publishes cleaned depth computed by ``DepthCleaningPipeline``."""

    def __init__(self, node_name: str = "depth_cleaner", **node_kwargs: Any) -> None:
        super().__init__(node_name, DEPTH_CLEANER, **node_kwargs)
        p = self.params
        self.model_path = resolve_model_path(p["model"], DEPTH_CLEANER.default_model_file)
        model = _load(self.model_path, p, "depth cleaner", "model", self.get_name())
        self.provider = model.provider
        self.pipeline = _pipeline(model, self.model_path, "depth cleaner", fill_holes=p["fill_holes"])
        self.synthesis: DepthCleaningPipeline | None = None
        self.synthesis_path: Path | None = None
        if p["publish_synthesized"]:
            if not p["synthesis_model"]:
                raise NodeStartupError(
                    f"parameter {self.get_name()}.publish_synthesized is true but {self.get_name()}.synthesis_model "
                    "is empty"
                )
            self.synthesis_path = Path(p["synthesis_model"]).expanduser()
            synthesis_model = _load(self.synthesis_path, p, "synthesis", "synthesis_model", self.get_name())
            # DCL generators output realistic depth WITH holes: no hole filling, raw output (holes stay holes).
            self.synthesis = _pipeline(
                synthesis_model, self.synthesis_path, "synthesis", fill_holes=False, raw_output=True
            )
        self.cleaned_pub = self.create_output(Image, CLEANED_TOPIC)
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
        reading = depth_from_msg(msg)
        if reading.valid == 0:
            raise BadInputError(
                f"depth image {msg.width}x{msg.height} {msg.encoding} has no valid pixel (all NaN, inf, <= 0 or 0 mm)"
            )
        for problem in reading.problems():
            self.report_input_problem(f"input on {topic}: {problem}")
        cleaned = self.pipeline(reading.depth_m)
        self.cleaned_pub.publish(depth_to_msg(cleaned, msg.header))
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
