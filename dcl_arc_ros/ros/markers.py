"""Result messages of the grasp and pose nodes: PoseArray, a Float32MultiArray info table and a MarkerArray.

Every builder takes the core results (:class:`~dcl_arc_ros.core.grasps.Grasp3D`,
:class:`~dcl_arc_ros.core.pose_pipeline.ObjectPose`) and the input's header, and returns one message; none of them
touches a node, so they are unit-tested without ROS running.

**Info tables** (``/dcl_arc/grasps/info``, ``/dcl_arc/poses/info``) are ``std_msgs/Float32MultiArray`` with N rows in
the order of the PoseArray published with them, row-major:

- ``layout.dim[0]``: label ``"grasps"`` or ``"poses"``, size N, stride N * C;
- ``layout.dim[1]``: label = the column names joined by ``","``, size C, stride C;
- grasps: C = 2, columns ``quality,width_m`` (smoothed GG-CNN quality; jaw opening in metres);
- poses: C = 2, columns ``class_id,confidence`` (catalogue class id, as a float; softmax probability).

Float32MultiArray has no header: pair a table with the PoseArray published just before it (same N, same order).
:func:`table_from_info` reads a table back.

**Markers.** Every MarkerArray starts with one ``DELETEALL`` marker, so markers of a previous frame with more
detections vanish, and a frame with nothing detected clears the display. Then, in the input's frame and stamp:

- grasps (namespace ``grasps``, id = rank): a parallel-jaw gripper as a LINE_LIST in the grasp frame (x = closing
  direction, z = approach along the optical axis): two fingers at +-width/2 whose tips reach a quarter finger length
  past the grasp centre, the palm joining them, and a wrist towards the camera; coloured from red (quality 0) to
  green (quality 1);
- poses (namespaces ``pose_boxes``, ``pose_axes``, ``pose_labels``, id = rank): the proposal's image box
  back-projected at the object's depth as a camera-aligned translucent CUBE (the depth extent, which a single view
  does not give, is drawn as the smaller of the two other sides), the object axes as a LINE_LIST (x red, y green,
  z blue) and a text label ``class <id> (<confidence>)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion, Vector3
from sensor_msgs.msg import Image
from std_msgs.msg import ColorRGBA, Float32MultiArray, Header, MultiArrayDimension, MultiArrayLayout
from visualization_msgs.msg import Marker, MarkerArray

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.grasp_pipeline import GraspDetection
from dcl_arc_ros.core.grasps import Grasp3D
from dcl_arc_ros.core.image_codec import array_to_image
from dcl_arc_ros.core.pose_pipeline import ObjectPose
from dcl_arc_ros.ros.conversions import copy_header, image_msg_from_fields
from dcl_arc_ros.ros.errors import BadInputError

GRASP_INFO_COLUMNS: Final[tuple[str, ...]] = ("quality", "width_m")
POSE_INFO_COLUMNS: Final[tuple[str, ...]] = ("class_id", "confidence")
GRASP_NAMESPACE: Final = "grasps"
POSE_BOX_NAMESPACE: Final = "pose_boxes"
POSE_AXES_NAMESPACE: Final = "pose_axes"
POSE_LABEL_NAMESPACE: Final = "pose_labels"

#: Distinct box colours, indexed by class id modulo their number (RGB).
CLASS_COLOURS: Final[tuple[tuple[float, float, float], ...]] = (
    (0.12, 0.47, 0.71),
    (1.00, 0.50, 0.05),
    (0.17, 0.63, 0.17),
    (0.84, 0.15, 0.16),
    (0.58, 0.40, 0.74),
    (0.55, 0.34, 0.29),
    (0.89, 0.47, 0.76),
    (0.50, 0.50, 0.50),
    (0.74, 0.74, 0.13),
    (0.09, 0.75, 0.81),
)
_AXIS_COLOURS: Final[tuple[tuple[float, float, float], ...]] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


@dataclass(frozen=True)
class GripperStyle:
    """How a grasp is drawn: finger length and line width in metres."""

    finger_length_m: float = 0.04
    line_width_m: float = 0.003


@dataclass(frozen=True)
class PoseStyle:
    """How an object pose is drawn: axis length, line width and label height in metres, box opacity."""

    axis_length_m: float = 0.05
    line_width_m: float = 0.004
    text_height_m: float = 0.02
    box_alpha: float = 0.35


# --- PoseArray -------------------------------------------------------------------------------------------------------


def _pose(position: np.ndarray, quaternion_xyzw: np.ndarray) -> Pose:
    p = np.asarray(position, dtype=np.float64).reshape(3)
    q = np.asarray(quaternion_xyzw, dtype=np.float64).reshape(4)
    return Pose(
        position=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])),
        orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )


def grasp_pose_array(grasps: Sequence[Grasp3D], header: Header) -> PoseArray:
    """One pose per grasp (centre + gripper orientation), in the given order (the pipeline's: best first)."""
    return PoseArray(header=copy_header(header), poses=[_pose(g.position, g.quaternion) for g in grasps])


def object_pose_array(poses: Sequence[ObjectPose], header: Header) -> PoseArray:
    """One pose per object (translation + rotation), in the given order."""
    return PoseArray(header=copy_header(header), poses=[_pose(p.translation, p.quaternion()) for p in poses])


# --- info tables -----------------------------------------------------------------------------------------------------


def info_table(rows: np.ndarray, columns: Sequence[str], row_label: str) -> Float32MultiArray:
    """An (N, C) table as a row-major Float32MultiArray with the layout documented in this module."""
    table = np.asarray(rows, dtype=np.float32).reshape(-1, len(columns))
    n, c = table.shape
    layout = MultiArrayLayout(
        dim=[
            MultiArrayDimension(label=row_label, size=n, stride=n * c),
            MultiArrayDimension(label=",".join(columns), size=c, stride=c),
        ],
        data_offset=0,
    )
    return Float32MultiArray(layout=layout, data=table.reshape(-1).tolist())


def table_from_info(msg: Float32MultiArray) -> tuple[tuple[str, ...], np.ndarray]:
    """The column names and the (N, C) float32 rows of an info table; ``BadInputError`` for another layout."""
    dims = list(msg.layout.dim)
    if len(dims) != 2:
        raise BadInputError(f"an info table has 2 layout dimensions, this one has {len(dims)}")
    n, c = int(dims[0].size), int(dims[1].size)
    columns = tuple(dims[1].label.split(",")) if dims[1].label else ()
    data = np.asarray(msg.data, dtype=np.float32)
    offset = int(msg.layout.data_offset)
    if len(columns) != c or data.size < offset + n * c:
        raise BadInputError(
            f"info table layout {n}x{c} (columns {columns}, offset {offset}) does not fit {data.size} values"
        )
    return columns, data[offset : offset + n * c].reshape(n, c)


def grasp_info(grasps: Sequence[Grasp3D]) -> Float32MultiArray:
    """Rows ``[quality, width_m]``, one per grasp, in the given order."""
    rows = np.array([[g.quality, g.width_m] for g in grasps], dtype=np.float32).reshape(-1, 2)
    return info_table(rows, GRASP_INFO_COLUMNS, "grasps")


def pose_info(poses: Sequence[ObjectPose]) -> Float32MultiArray:
    """Rows ``[class_id, confidence]``, one per object, in the given order."""
    rows = np.array([[p.class_id, p.confidence] for p in poses], dtype=np.float32).reshape(-1, 2)
    return info_table(rows, POSE_INFO_COLUMNS, "poses")


# --- markers ---------------------------------------------------------------------------------------------------------


def delete_all_marker(header: Header) -> Marker:
    """The marker that clears every marker of the display before the new ones are added."""
    return Marker(header=copy_header(header), action=Marker.DELETEALL)


def _colour(rgb: Sequence[float], alpha: float = 1.0) -> ColorRGBA:
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(alpha))


def quality_colour(quality: float) -> ColorRGBA:
    """Red (quality <= 0) through yellow to green (quality >= 1)."""
    q = float(np.clip(quality, 0.0, 1.0))
    return _colour((min(1.0, 2.0 * (1.0 - q)), min(1.0, 2.0 * q), 0.0))


def _points(xyz: np.ndarray) -> list[Point]:
    return [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in np.asarray(xyz, dtype=np.float64).reshape(-1, 3)]


def gripper_segments(width_m: float, finger_length_m: float) -> np.ndarray:
    """(8, 3) LINE_LIST vertices of a parallel-jaw gripper in the grasp frame (x closing, z approach), metres.

    Fingers at x = +-width/2 from z = -3/4 L (palm) to z = +L/4 (tips, past the grasp centre at the origin), the palm
    between them, and a wrist from the palm centre half a finger length towards the camera (-z).
    """
    half, length = 0.5 * float(width_m), float(finger_length_m)
    tip, palm, wrist = 0.25 * length, -0.75 * length, -1.25 * length
    return np.array(
        [
            [-half, 0.0, palm],
            [-half, 0.0, tip],  # one finger
            [half, 0.0, palm],
            [half, 0.0, tip],  # the other finger
            [-half, 0.0, palm],
            [half, 0.0, palm],  # palm
            [0.0, 0.0, palm],
            [0.0, 0.0, wrist],  # wrist
        ],
        dtype=np.float64,
    )


def grasp_markers(grasps: Sequence[Grasp3D], header: Header, style: GripperStyle | None = None) -> MarkerArray:
    """DELETEALL, then one gripper LINE_LIST per grasp (id = rank) in the input's frame."""
    s = style or GripperStyle()
    markers = [delete_all_marker(header)]
    for rank, g in enumerate(grasps):
        markers.append(
            Marker(
                header=copy_header(header),
                ns=GRASP_NAMESPACE,
                id=rank,
                type=Marker.LINE_LIST,
                action=Marker.ADD,
                pose=_pose(g.position, g.quaternion),
                scale=Vector3(x=s.line_width_m, y=0.0, z=0.0),
                color=quality_colour(g.quality),
                points=_points(gripper_segments(g.width_m, s.finger_length_m)),
                lifetime=Duration(sec=0, nanosec=0),
            )
        )
    return MarkerArray(markers=markers)


def box_extent_m(box: tuple[int, int, int, int], depth_m: float, intrinsics: Intrinsics) -> np.ndarray:
    """(3,) sides (x, y, z) in metres of an image box (x0, y0, x1, y1) back-projected at ``depth_m``.

    One view does not give the depth extent: z is drawn as the smaller of the other two sides.
    """
    x0, y0, x1, y1 = box
    sx = max(x1 - x0, 1) * float(depth_m) / intrinsics.fx
    sy = max(y1 - y0, 1) * float(depth_m) / intrinsics.fy
    return np.array([sx, sy, min(sx, sy)], dtype=np.float64)


def pose_markers(
    poses: Sequence[ObjectPose], header: Header, intrinsics: Intrinsics, style: PoseStyle | None = None
) -> MarkerArray:
    """DELETEALL, then per object (id = rank): a camera-aligned box, its axes and a text label."""
    s = style or PoseStyle()
    markers = [delete_all_marker(header)]
    identity = np.array([0.0, 0.0, 0.0, 1.0])
    axes = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]], dtype=np.float64)
    axis_colours = [_colour(_AXIS_COLOURS[i // 2]) for i in range(6)]
    for rank, p in enumerate(poses):
        t = np.asarray(p.translation, dtype=np.float64)
        x0, y0, x1, y1 = p.box
        extent = box_extent_m(p.box, t[2], intrinsics)
        centre = intrinsics.deproject(0.5 * (x0 + x1 - 1), 0.5 * (y0 + y1 - 1), t[2] + 0.5 * extent[2])
        rgb = CLASS_COLOURS[p.class_id % len(CLASS_COLOURS)]
        common = {"header": copy_header(header), "id": rank, "action": Marker.ADD}
        markers.append(
            Marker(
                ns=POSE_BOX_NAMESPACE,
                type=Marker.CUBE,
                pose=_pose(np.asarray(centre).reshape(3), identity),
                scale=Vector3(x=float(extent[0]), y=float(extent[1]), z=float(extent[2])),
                color=_colour(rgb, s.box_alpha),
                **common,
            )
        )
        markers.append(
            Marker(
                ns=POSE_AXES_NAMESPACE,
                type=Marker.LINE_LIST,
                pose=_pose(t, p.quaternion()),
                scale=Vector3(x=s.line_width_m, y=0.0, z=0.0),
                color=_colour((1.0, 1.0, 1.0)),
                points=_points(axes * s.axis_length_m),
                colors=axis_colours,
                **common,
            )
        )
        label_at = t - np.array([0.0, 0.5 * extent[1] + s.text_height_m, 0.0])  # above the box in the image (-y)
        markers.append(
            Marker(
                ns=POSE_LABEL_NAMESPACE,
                type=Marker.TEXT_VIEW_FACING,
                pose=_pose(label_at, identity),
                scale=Vector3(x=0.0, y=0.0, z=s.text_height_m),
                color=_colour(rgb),
                text=f"class {p.class_id} ({p.confidence:.2f})",
                **common,
            )
        )
    return MarkerArray(markers=markers)


# --- quality map image ---------------------------------------------------------------------------------------------


def quality_map_image(detection: GraspDetection | None, height: int, width: int) -> np.ndarray:
    """The smoothed quality map placed back over the input image: (height, width) float32, NaN outside the crop.

    The network's map covers ``detection.window``; it is resized to the window's side (the same half-pixel
    convention as the crop's resize) and pasted there. All NaN without a detection or when the frame had no valid
    depth in the crop.
    """
    out = np.full((height, width), np.nan, dtype=np.float32)
    if detection is None or detection.maps is None:
        return out
    w = detection.window
    quality: np.ndarray = np.asarray(detection.maps.quality, dtype=np.float32)
    if quality.shape != (w.side, w.side):
        interp = cv2.INTER_LINEAR if w.side >= quality.shape[0] else cv2.INTER_AREA
        quality = cv2.resize(quality, (w.side, w.side), interpolation=interp)
    out[w.y0 : w.y0 + w.side, w.x0 : w.x0 + w.side] = quality
    return out


def quality_map_msg(detection: GraspDetection | None, header: Header, height: int, width: int) -> Image:
    """:func:`quality_map_image` as a 32FC1 Image under a copy of ``header``."""
    return image_msg_from_fields(array_to_image(quality_map_image(detection, height, width), "32FC1"), header)
