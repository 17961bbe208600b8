"""One parameter schema per node: name, type, default, description, range, in one place.

The schema is plain data, so the launch file, ``dcl-arc-perception --list-params`` and the README can list the
parameters without starting a node, and ``graph.py`` can check a config file before anything runs. Importing this
module does not import rclpy: only ``declare_parameters`` / ``read_parameters`` need it, and they import it lazily.

A node declares its schema with ``declare_parameters(node, schema)`` (every parameter gets a ParameterDescriptor with
its description and, for numbers, its range) and reads typed, validated values with ``read_parameters``. A bad value
raises ``ParameterError`` naming the node, the parameter and the value.

Later nodes add their schema to ``NODE_SCHEMAS`` next to ``DEPTH_CLEANER``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dcl_arc_ros.ros.errors import ParameterError

if TYPE_CHECKING:
    from rclpy.node import Node

ParamType = type  # one of bool, int, float, str, list (a list of strings)

_TYPE_NAMES: dict[type, str] = {bool: "bool", int: "int", float: "float", str: "string", list: "string list"}


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its type, default, a description for humans and, optionally, a range or a set of choices."""

    name: str
    type: ParamType
    default: Any
    description: str
    range: tuple[float, float] | None = None  # inclusive [low, high], for int and float
    choices: tuple[str, ...] | None = None  # allowed values, for str

    def __post_init__(self) -> None:
        if self.type not in _TYPE_NAMES:
            raise TypeError(f"ParamSpec {self.name!r}: unsupported type {self.type!r}; use one of {list(_TYPE_NAMES)}")
        if self.range is not None and self.type not in (int, float):
            raise TypeError(f"ParamSpec {self.name!r}: a range only applies to int and float, not {self.type!r}")
        if self.choices is not None and self.type is not str:
            raise TypeError(f"ParamSpec {self.name!r}: choices only apply to str, not {self.type!r}")
        validate_value(self, self.default, node="<schema>")

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[self.type]

    def describe(self) -> str:
        """The description plus its constraints, as shown by ``ros2 param describe`` and ``--list-params``."""
        extra = []
        if self.range is not None:
            extra.append(f"range [{self.range[0]}, {self.range[1]}]")
        if self.choices is not None:
            extra.append("one of: " + ", ".join(self.choices))
        return self.description + (f" ({'; '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class NodeSchema:
    """Every parameter of one node executable, plus the shipped model it falls back to when ``model`` is empty."""

    executable: str
    params: tuple[ParamSpec, ...]
    default_model_file: str | None = None  # a file name in the shipped models directory

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"NodeSchema {self.executable!r}: duplicate parameters {duplicates}")

    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def spec(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise ParameterError(
            f"node {self.executable!r} has no parameter {name!r}; its parameters are: {', '.join(self.names())}"
        )

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate(self, values: Mapping[str, Any], *, node: str | None = None) -> dict[str, Any]:
        """Check (and coerce int -> float) a mapping of overrides; unknown names and bad values raise."""
        who = node or self.executable
        return {name: validate_value(self.spec(name), value, node=who) for name, value in values.items()}

    def table(self) -> str:
        """A plain-text table: name, type, default, description (for --list-params and the README)."""
        rows = [(p.name, p.type_name, repr(p.default), p.describe()) for p in self.params]
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        return "\n".join(f"{a:<{width[0]}}  {b:<{width[1]}}  {c:<{width[2]}}  {d}" for a, b, c, d in rows)


def validate_value(spec: ParamSpec, value: Any, *, node: str) -> Any:
    """The value as ``spec.type`` (ints are accepted for floats), or ``ParameterError`` naming node, name and value."""
    where = f"parameter {node}.{spec.name}"
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if spec.type is list:
        if value is None:
            value = []
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ParameterError(f"{where} = {value!r}: expected a list of strings")
        return value
    if not isinstance(value, spec.type) or (spec.type is int and isinstance(value, bool)):
        raise ParameterError(f"{where} = {value!r}: expected a {spec.type_name}, got a {type(value).__name__}")
    if spec.type is float and value != value:  # NaN
        raise ParameterError(f"{where} = {value!r}: NaN is not allowed")
    if spec.range is not None and isinstance(value, int | float) and not (spec.range[0] <= value <= spec.range[1]):
        raise ParameterError(f"{where} = {value!r} is out of range [{spec.range[0]}, {spec.range[1]}]")
    if spec.choices is not None and value not in spec.choices:
        raise ParameterError(f"{where} = {value!r} is not one of: {', '.join(spec.choices)}")
    return value


# --- the schemas ---------------------------------------------------------------------------------------------------

QOS_CHOICES: tuple[str, ...] = ("sensor_data", "reliable", "best_effort")

COMMON_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "enabled",
        bool,
        True,
        "Whether the launch file and dcl-arc-perception start this node (read from the config; the node ignores it)",
    ),
    ParamSpec(
        "remappings",
        list,
        [],
        "Topic remappings 'from:=to' applied by the launch file and dcl-arc-perception (the node ignores it)",
    ),
    ParamSpec(
        "input_qos",
        str,
        "sensor_data",
        "QoS of the camera subscriptions: sensor_data (best effort, keep last 5, what camera drivers publish), "
        "reliable, or best_effort (keep last 1)",
        choices=QOS_CHOICES,
    ),
    ParamSpec(
        "output_qos",
        str,
        "reliable",
        "QoS of the published results; reliable also reaches best-effort subscribers",
        choices=QOS_CHOICES,
    ),
    ParamSpec(
        "sync_slop_s",
        float,
        0.02,
        "Largest stamp difference (s) between inputs that are matched as one frame (image, CameraInfo, RGB)",
        range=(0.0, 1.0),
    ),
    ParamSpec(
        "max_pending_frames",
        int,
        1,
        "Matched input frames that may wait while one is processed; when more arrive, the oldest is dropped. "
        "1 = always the newest frame (lowest latency); more absorbs short stalls at the cost of latency",
        range=(1, 30),
    ),
    ParamSpec(
        "no_input_warn_s",
        float,
        5.0,
        "Warn loudly when no input has arrived for this many seconds (0 disables)",
        range=(0.0, 3600.0),
    ),
    ParamSpec(
        "diagnostics_period_s",
        float,
        1.0,
        "Period (s) of the diagnostic_msgs/DiagnosticArray published on /diagnostics",
        range=(0.1, 60.0),
    ),
    ParamSpec(
        "log_stats_period_s",
        float,
        30.0,
        "Period (s) of the rate/latency/drop summary written to the log (0 disables)",
        range=(0.0, 3600.0),
    ),
)

MODEL_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "backend",
        str,
        "onnxruntime",
        "Inference backend from the registry in dcl_arc_ros.inference.backends (onnxruntime, tensorrt)",
    ),
    ParamSpec(
        "device",
        str,
        "cpu",
        "Device for the onnxruntime backend: cpu, cuda or tensorrt (execution providers; a missing GPU provider "
        "falls back along the chain to CPU with a loud warning naming the provider used)",
    ),
    ParamSpec(
        "threads",
        int,
        1,
        "CPU threads for the model (ONNX Runtime intra-op threads, spinning off); 0 = the backend's default (one "
        "per core). 1 by default: the deploy-sized models gain nothing from more threads on a CPU shared with the "
        "camera driver (measured); raise it for heavy models on CPUs with cores to spare",
        range=(0, 256),
    ),
)

#: How the ``threads`` parameter reaches each backend's options (backends without an entry ignore it).
THREAD_OPTIONS: dict[str, str] = {"onnxruntime": "intra_op_num_threads"}


def backend_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``load_model(**options)`` implied by a node's model parameters (``backend``, ``threads``)."""
    option = THREAD_OPTIONS.get(params.get("backend", ""))
    threads = int(params.get("threads", 0))
    return {option: threads} if option is not None and threads > 0 else {}


DEPTH_CLEANER = NodeSchema(
    executable="depth_cleaner",
    default_model_file="depth_cleaner.onnx",
    params=(
        *COMMON_PARAMS,
        ParamSpec(
            "model",
            str,
            "",
            "Depth-to-depth ONNX model with its .json sidecar; empty = the shipped models/depth_cleaner.onnx",
        ),
        *MODEL_PARAMS,
        ParamSpec("fill_holes", bool, True, "Fill holes (NaN) in the cleaned depth"),
        ParamSpec(
            "max_fill_px",
            float,
            0.0,
            "Publish NaN where the nearest measured input pixel is farther than this (pixels): regions the sensor "
            "never saw stay unknown instead of taking made-up depth; 0 = keep every filled value",
            range=(0.0, 10_000.0),
        ),
        ParamSpec(
            "use_camera_info",
            bool,
            False,
            "Also subscribe to the depth CameraInfo, synchronise with it and reject frames whose size disagrees",
        ),
        ParamSpec(
            "publish_synthesized",
            bool,
            False,
            "Also publish /dcl_arc/depth/synthesized from synthesis_model (DCL: clean -> realistic depth)",
        ),
        ParamSpec(
            "synthesis_model",
            str,
            "",
            "Depth-to-depth ONNX model used when publish_synthesized is true (required then)",
        ),
    ),
)

GRASP_DETECTOR = NodeSchema(
    executable="grasp_detector",
    default_model_file="grasp_detector.onnx",
    params=(
        *COMMON_PARAMS,
        ParamSpec(
            "model",
            str,
            "",
            "GG-CNN grasp-map ONNX model (task grasp_maps) with its .json sidecar; empty = the shipped "
            "models/grasp_detector.onnx",
        ),
        *MODEL_PARAMS,
        ParamSpec(
            "crop_size",
            int,
            300,
            "Side of the centre square the network sees, in pixels of a working_width-wide image (grown by the step "
            "width // working_width on wider images); smaller images use their shorter side",
            range=(16, 4096),
        ),
        ParamSpec(
            "working_width",
            int,
            640,  # core.camera.DEFAULT_WORKING_WIDTH
            "Image width crop_size is meant for: a 1280-wide image gets a 600-pixel crop, so the network sees the "
            "same field of view as at 640x480; 0 = crop_size is in full-image pixels",
            range=(0, 100_000),
        ),
        ParamSpec(
            "threshold",
            float,
            0.2,
            "Smallest smoothed grasp quality a peak needs to become a grasp",
            range=(0.0, 1.0),
        ),
        ParamSpec(
            "min_distance",
            int,
            20,
            "Smallest distance between two grasp peaks, in network pixels (image pixels when the crop is not resized)",
            range=(1, 1000),
        ),
        ParamSpec("max_grasps", int, 5, "Most grasps published per frame, best first", range=(1, 100)),
        ParamSpec(
            "quality_sigma",
            float,
            2.0,
            "Gaussian sigma (network pixels) of the quality map; 0 = none",
            range=(0.0, 50.0),
        ),
        ParamSpec(
            "angle_sigma", float, 2.0, "Gaussian sigma (network pixels) of the angle maps; 0 = none", range=(0.0, 50.0)
        ),
        ParamSpec(
            "width_sigma", float, 1.0, "Gaussian sigma (network pixels) of the width map; 0 = none", range=(0.0, 50.0)
        ),
        ParamSpec(
            "angle_smoothing",
            str,
            "angle",
            "angle: blur the angle map (as the reference GG-CNN); vector: blur cos/sin 2a first (correct across the "
            "+-90 degree wrap)",
            choices=("angle", "vector"),
        ),
        ParamSpec(
            "depth_half_window",
            int,
            2,
            "Half side (pixels) of the window whose median valid raw depth places each grasp in 3D",
            range=(0, 50),
        ),
        ParamSpec(
            "fill_method",
            str,
            "nearest",
            "Hole filling of the depth crop before the network",
            choices=("nearest", "inpaint"),
        ),
        ParamSpec(
            "publish_quality_map",
            bool,
            False,
            "Also publish /dcl_arc/grasps/quality: the smoothed quality map as a 32FC1 image of the input's size "
            "(NaN outside the crop)",
        ),
        ParamSpec("publish_markers", bool, True, "Publish /dcl_arc/grasps/markers (a gripper per grasp)"),
        ParamSpec(
            "marker_finger_length_m",
            float,
            0.04,
            "Finger length of the gripper drawn for each grasp (metres)",
            range=(0.001, 1.0),
        ),
    ),
)

POSE_ESTIMATOR = NodeSchema(
    executable="pose_estimator",
    default_model_file="pose_estimator.onnx",
    params=(
        *COMMON_PARAMS,
        ParamSpec(
            "model",
            str,
            "",
            "Pose ONNX model (task pose) with its .json sidecar; empty = the shipped models/pose_estimator.onnx",
        ),
        *MODEL_PARAMS,
        ParamSpec("max_objects", int, 5, "Most objects per frame (the largest proposals first)", range=(1, 100)),
        ParamSpec(
            "depth_offset_m",
            float,
            0.0,
            "Added to each object's median surface depth along the optical axis (e.g. half an object's depth)",
            range=(-1.0, 1.0),
        ),
        ParamSpec(
            "working_width",
            int,
            640,  # core.camera.DEFAULT_WORKING_WIDTH
            "Frames wider than this are segmented and posed on every n-th pixel (n = width // working_width), so "
            "that the pixel-valued parameters below, tuned at 640x480, mean the same at 1280x720; 0 = full resolution",
            range=(0, 100_000),
        ),
        ParamSpec("ransac_iterations", int, 200, "Support-plane RANSAC hypotheses per frame", range=(1, 100_000)),
        ParamSpec(
            "ransac_inlier_m",
            float,
            0.008,
            "Point-to-plane distance (m) counted as on the support plane",
            range=(0.0001, 1.0),
        ),
        ParamSpec(
            "ransac_sample_stride",
            int,
            4,
            "The plane is fitted on every n-th pixel in each direction",
            range=(1, 64),
        ),
        ParamSpec(
            "min_height_m",
            float,
            0.012,
            "A pixel belongs to an object when it is at least this far above the plane (m)",
            range=(0.0, 10.0),
        ),
        ParamSpec(
            "max_height_m", float, 0.5, "Pixels higher than this above the plane (m) are ignored", range=(0.0, 10.0)
        ),
        ParamSpec(
            "opening_px",
            int,
            3,
            "Morphological opening (pixels) that cuts thin bridges between objects; 0 disables it",
            range=(0, 50),
        ),
        ParamSpec(
            "split_touching",
            bool,
            True,
            "Cut the above-plane region along depth jumps and concave creases, so that touching objects come apart",
        ),
        ParamSpec(
            "crease",
            float,
            0.6,
            "How sharply the surface must fold inwards to be cut (|n_q - n_p| along the step; 0.6 is about 35 deg)",
            range=(0.0, 2.0),
        ),
        ParamSpec(
            "merge_convex",
            bool,
            True,
            "Merge neighbouring pieces that meet across a continuous, flat or convex contact (pieces of one object)",
        ),
        ParamSpec(
            "merge_concavity",
            float,
            0.1,
            "Largest inward fold between two pieces' contact planes that still merges them (|n_a - n_b| along the "
            "step between their centroids)",
            range=(0.0, 2.0),
        ),
        ParamSpec(
            "min_top_height_m",
            float,
            0.025,
            "An object's top (95th percentile of its height above the plane) must reach this (m); 0 disables it",
            range=(0.0, 10.0),
        ),
        ParamSpec("min_pixels", int, 150, "Smallest object, in pixels", range=(1, 100_000_000)),
        ParamSpec("max_pixels", int, 80_000, "Largest object, in pixels", range=(1, 100_000_000)),
        ParamSpec(
            "min_extent_m",
            float,
            0.02,
            "Smallest object: the largest side of the 3D box of its visible points (m)",
            range=(0.0, 100.0),
        ),
        ParamSpec(
            "max_extent_m",
            float,
            0.4,
            "Largest object: the largest side of the 3D box of its visible points (m)",
            range=(0.0, 100.0),
        ),
        ParamSpec("publish_markers", bool, True, "Publish /dcl_arc/poses/markers (box, axes and label per object)"),
        ParamSpec("marker_axis_length_m", float, 0.05, "Length of the drawn object axes (metres)", range=(0.001, 10.0)),
    ),
)

ARC_DEPTH = NodeSchema(
    executable="arc_depth",
    default_model_file="arc_depth.onnx",
    params=(
        *COMMON_PARAMS,
        ParamSpec(
            "model",
            str,
            "",
            "ARC whole-path ONNX model (task rgb_to_depth: translate, attend, remove, complete, predict depth) with "
            "its .json sidecar; empty = the shipped models/arc_depth.onnx",
        ),
        *MODEL_PARAMS,
        ParamSpec(
            "publish_decluttered",
            bool,
            False,
            "Also publish /dcl_arc/arc/decluttered (rgb8): the translated, masked and completed image the depth "
            "network saw, at the model's resolution",
        ),
    ),
)

NODE_SCHEMAS: dict[str, NodeSchema] = {
    DEPTH_CLEANER.executable: DEPTH_CLEANER,
    GRASP_DETECTOR.executable: GRASP_DETECTOR,
    POSE_ESTIMATOR.executable: POSE_ESTIMATOR,
    ARC_DEPTH.executable: ARC_DEPTH,
}


def schema_for(executable: str) -> NodeSchema:
    try:
        return NODE_SCHEMAS[executable]
    except KeyError:
        raise ParameterError(
            f"no parameter schema for node executable {executable!r}; known: {', '.join(sorted(NODE_SCHEMAS))}"
        ) from None


# --- rclpy glue ----------------------------------------------------------------------------------------------------


def _ros_type(spec: ParamSpec) -> int:
    from rcl_interfaces.msg import ParameterType

    return {
        bool: ParameterType.PARAMETER_BOOL,
        int: ParameterType.PARAMETER_INTEGER,
        float: ParameterType.PARAMETER_DOUBLE,
        str: ParameterType.PARAMETER_STRING,
        list: ParameterType.PARAMETER_STRING_ARRAY,
    }[spec.type]


def descriptor_for(spec: ParamSpec) -> Any:
    """The rcl_interfaces/ParameterDescriptor of one spec (description, type, range; read-only after start-up)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    descriptor = ParameterDescriptor(
        name=spec.name,
        type=_ros_type(spec),
        description=spec.describe(),
        read_only=True,
        # Dynamic typing lets "-p no_input_warn_s:=5" (an int) reach our own validation, which accepts it for a
        # float and otherwise names the parameter and the value, instead of rclpy's bare type exception.
        dynamic_typing=True,
    )
    if spec.range is not None and spec.type is float:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(spec.range[0]), to_value=float(spec.range[1]), step=0.0)
        ]
    if spec.range is not None and spec.type is int:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]), step=0)]
    return descriptor


def declare_parameters(node: Node, schema: NodeSchema | Sequence[ParamSpec]) -> dict[str, Any]:
    """Declare every parameter of ``schema`` on ``node`` and return the validated values (overrides applied)."""
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    specs = schema.params if isinstance(schema, NodeSchema) else tuple(schema)
    for spec in specs:
        default: Any = spec.default
        if spec.type is list and not spec.default:
            default = None  # an empty list has no ROS type of its own: declare it unset, read it back as []
        try:
            node.declare_parameter(spec.name, default, descriptor_for(spec))
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            raise ParameterError(f"parameter {node.get_name()}.{spec.name}: {exc}") from exc
    return read_parameters(node, specs)


def read_parameters(node: Node, schema: NodeSchema | Sequence[ParamSpec]) -> dict[str, Any]:
    """The current, validated value of every parameter of ``schema``."""
    specs = schema.params if isinstance(schema, NodeSchema) else tuple(schema)
    values: dict[str, Any] = {}
    for spec in specs:
        value = node.get_parameter(spec.name).value
        if value is not None and spec.type is list:
            value = list(value)
        values[spec.name] = validate_value(spec, value, node=node.get_name())
    return values
