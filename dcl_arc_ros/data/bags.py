"""rosbag2 training bags, written and read with the pure-Python `rosbags` library (no rclpy, no ROS install).

The bag layout (topics, encodings, frames, stamps) is specified in docs/bag_format.md; :data:`TOPICS` below is its
machine-readable form. In short, every rendered frame becomes one message on each topic, all sharing the frame's
stamp as both header stamp and record (log) time, so the bag replays like a camera; frames are spaced at the camera
rate by the generator.

Writing goes through :class:`BagWriter` (one frame at a time) or :func:`write_bag` (atomic: the bag is written under
a temporary name and renamed only once complete, so an interrupted run never leaves a half-written bag under its
final name). Reading goes through :func:`read_frames` (sequential) or :func:`decode_frame` (used by the random-access
index in :mod:`dcl_arc_ros.data.bag_index`); both return :class:`FrameRecord`, which tolerates missing topics so the
same code reads bags users record from a real camera with ``ros2 bag record``.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np
import yaml
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.rosbag2.errors import ReaderError, WriterError
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.errors import CoreError
from dcl_arc_ros.core.grasps import robust_depth_at
from dcl_arc_ros.core.image_codec import (
    ImageFields,
    array_to_image,
    depth_from_image,
    depth_to_image,
    image_to_array,
    rgb_from_image,
)
from dcl_arc_ros.core.pose_pipeline import quaternion_to_matrix
from dcl_arc_ros.data.errors import BagError, BagFormatError
from dcl_arc_ros.data.frame import Frame

# ----------------------------------------------------------------------------------------------------------- layout

COLOR_IMAGE: Final = "/camera/color/image_raw"
COLOR_INFO: Final = "/camera/color/camera_info"
DEPTH_IMAGE: Final = "/camera/depth/image_rect_raw"
DEPTH_INFO: Final = "/camera/depth/camera_info"
GT_DEPTH: Final = "/ground_truth/depth"
GT_NORMALS: Final = "/ground_truth/normals"
GT_INSTANCES: Final = "/ground_truth/instances"
GT_POSES: Final = "/ground_truth/poses"
GT_POSES_INFO: Final = "/ground_truth/poses/info"
GT_GRASPS: Final = "/ground_truth/grasps"
GT_GRASPS_INFO: Final = "/ground_truth/grasps/info"
GT_GRASP_QUALITY: Final = "/ground_truth/grasps/quality"
GT_GRASP_COS2: Final = "/ground_truth/grasps/cos2"
GT_GRASP_SIN2: Final = "/ground_truth/grasps/sin2"
GT_GRASP_WIDTH: Final = "/ground_truth/grasps/width"
TF_STATIC: Final = "/tf_static"

IMAGE: Final = "sensor_msgs/msg/Image"
CAMERA_INFO: Final = "sensor_msgs/msg/CameraInfo"
POSE_ARRAY: Final = "geometry_msgs/msg/PoseArray"
FLOAT32_ARRAY: Final = "std_msgs/msg/Float32MultiArray"
TF_MESSAGE: Final = "tf2_msgs/msg/TFMessage"

#: Every topic a generated bag holds, with its message type, in the order they are written for each frame.
TOPICS: Final[dict[str, str]] = {
    COLOR_IMAGE: IMAGE,
    COLOR_INFO: CAMERA_INFO,
    DEPTH_IMAGE: IMAGE,
    DEPTH_INFO: CAMERA_INFO,
    GT_DEPTH: IMAGE,
    GT_NORMALS: IMAGE,
    GT_INSTANCES: IMAGE,
    GT_POSES: POSE_ARRAY,
    GT_POSES_INFO: FLOAT32_ARRAY,
    GT_GRASPS: POSE_ARRAY,
    GT_GRASPS_INFO: FLOAT32_ARRAY,
    GT_GRASP_QUALITY: IMAGE,
    GT_GRASP_COS2: IMAGE,
    GT_GRASP_SIN2: IMAGE,
    GT_GRASP_WIDTH: IMAGE,
    TF_STATIC: TF_MESSAGE,
}

#: The topics a real RGB-D camera driver publishes; `dcl-arc-play` replays these.
CAMERA_TOPICS: Final[tuple[str, ...]] = (COLOR_IMAGE, COLOR_INFO, DEPTH_IMAGE, DEPTH_INFO)

#: Encodings of the image topics.
ENCODINGS: Final[dict[str, str]] = {
    COLOR_IMAGE: "rgb8",
    DEPTH_IMAGE: "16UC1",
    GT_DEPTH: "32FC1",
    GT_NORMALS: "32FC3",
    GT_INSTANCES: "16UC1",
    GT_GRASP_QUALITY: "32FC1",
    GT_GRASP_COS2: "32FC1",
    GT_GRASP_SIN2: "32FC1",
    GT_GRASP_WIDTH: "32FC1",
}

POSE_INFO_COLUMNS: Final[tuple[str, ...]] = ("instance_id", "class_id", "novel", "visible_fraction")
GRASP_INFO_COLUMNS: Final[tuple[str, ...]] = ("cx", "cy", "angle", "width_px", "quality", "width_m", "instance_id")

WORLD_FRAME: Final = "world"
#: Colour and depth are rendered from one viewpoint, so every image is registered to the colour optical frame.
CAMERA_FRAME: Final = "camera_color_optical_frame"

#: Storage back-ends by name (`--storage`).
STORAGES: Final[dict[str, StoragePlugin]] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
#: Compression choices (`--compression`). ``zstd`` compresses MCAP chunks (any MCAP reader and ``ros2 bag`` read
#: them transparently) and, for sqlite3, each message (rosbag2 ``compression_mode: message``).
COMPRESSIONS: Final[tuple[str, ...]] = ("none", "zstd")
#: rosbag2 metadata version written (8 = Jazzy's; Jazzy, Kilted and newer read it).
BAG_VERSION: Final = 8
#: Prefix of the statistics stored in the bag's metadata.yaml custom_data.
STATS_PREFIX: Final = "dcl_arc_ros."

_NS_PER_S: Final = 1_000_000_000


@functools.cache
def typestore() -> Typestore:
    """The message definitions used for (de)serialisation (identical for these types from Humble to Kilted)."""
    return get_typestore(Stores.ROS2_KILTED)


# --------------------------------------------------------------------------------------------------- numpy helpers


def matrix_to_quaternion(rotations: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices -> (N, 4) unit quaternions (x, y, z, w), w >= 0 (Shepperd's method)."""
    r = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    trace = np.trace(r, axis1=1, axis2=2)
    diag = np.stack([r[:, 0, 0], r[:, 1, 1], r[:, 2, 2], trace], axis=1)
    choice = np.argmax(diag, axis=1)
    q = np.empty((r.shape[0], 4), dtype=np.float64)
    # Each branch computes from the largest of (w, x, y, z) for numerical stability; all are vectorised.
    for branch in range(4):
        m = choice == branch
        if not np.any(m):
            continue
        rb = r[m]
        if branch == 3:
            s = np.sqrt(1.0 + diag[m, 3]) * 2.0
            xyz = [(rb[:, 2, 1] - rb[:, 1, 2]) / s, (rb[:, 0, 2] - rb[:, 2, 0]) / s, (rb[:, 1, 0] - rb[:, 0, 1]) / s]
            q[m] = np.stack([*xyz, s / 4], axis=1)
            continue
        i, j, k = branch, (branch + 1) % 3, (branch + 2) % 3
        s = np.sqrt(1.0 + rb[:, i, i] - rb[:, j, j] - rb[:, k, k]) * 2.0
        qb = np.empty((rb.shape[0], 4), dtype=np.float64)
        qb[:, i] = s / 4
        qb[:, j] = (rb[:, j, i] + rb[:, i, j]) / s
        qb[:, k] = (rb[:, k, i] + rb[:, i, k]) / s
        qb[:, 3] = (rb[:, k, j] - rb[:, j, k]) / s
        q[m] = qb
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 3] < 0] *= -1.0
    return q


def grasp_poses_from_rects(rects: np.ndarray, depth_m: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """3D grasp poses (N, 4, 4) in the camera optical frame from image rectangles and metric depth.

    The position is the deprojected rectangle centre at the clean depth there (median of the valid pixels in a 5x5
    window, NaN when none is valid). The orientation has +z along the camera's optical axis (the approach direction
    of a top-down grasp seen by this camera) and +x along the jaw-closing direction in the image, i.e. a rotation
    about the optical axis by the rectangle angle.
    """
    rects = np.asarray(rects, dtype=np.float64).reshape(-1, 5)
    n = rects.shape[0]
    poses = np.tile(np.eye(4), (n, 1, 1))
    if n == 0:
        return poses
    z = robust_depth_at(depth_m, rects[:, 0], rects[:, 1], half_window=2)
    poses[:, :3, 3] = intrinsics.deproject(rects[:, 0], rects[:, 1], z)
    cos_a, sin_a = np.cos(rects[:, 2]), np.sin(rects[:, 2])
    poses[:, 0, 0], poses[:, 0, 1] = cos_a, -sin_a
    poses[:, 1, 0], poses[:, 1, 1] = sin_a, cos_a
    return poses


# ------------------------------------------------------------------------------------------------- message builders


def _split_stamp(stamp_ns: int) -> tuple[int, int]:
    return int(stamp_ns) // _NS_PER_S, int(stamp_ns) % _NS_PER_S


def _header(stamp_ns: int, frame_id: str) -> Any:
    types = typestore().types
    sec, nanosec = _split_stamp(stamp_ns)
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
    )


def _image_msg(fields: ImageFields, header: Any) -> Any:
    return typestore().types[IMAGE](
        header=header,
        height=fields.height,
        width=fields.width,
        encoding=fields.encoding,
        is_bigendian=int(fields.is_bigendian),
        step=fields.step,
        data=np.frombuffer(fields.data, dtype=np.uint8),
    )


def _float3_fields(arr: np.ndarray) -> ImageFields:
    """(H, W, 3) floats -> little-endian 32FC3 fields (an encoding core.image_codec does not cover)."""
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise BagFormatError(f"32FC3 needs an (H, W, 3) array, got shape {arr.shape}")
    data = np.ascontiguousarray(arr, dtype="<f4")
    return ImageFields(arr.shape[0], arr.shape[1], "32FC3", False, arr.shape[1] * 12, data.tobytes())


def _camera_info_msg(intrinsics: Intrinsics, header: Any) -> Any:
    types = typestore().types
    k = intrinsics.k_matrix()
    p = np.zeros((3, 4))
    p[:, :3] = k
    return types[CAMERA_INFO](
        header=header,
        height=intrinsics.height,
        width=intrinsics.width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=k.reshape(-1),
        r=np.eye(3).reshape(-1),
        p=p.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def _pose_array_msg(poses: np.ndarray, header: Any) -> Any:
    types = typestore().types
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    quats = matrix_to_quaternion(poses[:, :3, :3]) if len(poses) else np.zeros((0, 4))
    point, quaternion, pose = (types[f"geometry_msgs/msg/{n}"] for n in ("Point", "Quaternion", "Pose"))
    items = [
        pose(
            position=point(x=float(t[0]), y=float(t[1]), z=float(t[2])),
            orientation=quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
        )
        for t, q in zip(poses[:, :3, 3], quats, strict=True)
    ]
    return types[POSE_ARRAY](header=header, poses=items)


def _table_msg(rows: np.ndarray, row_label: str, columns: Sequence[str]) -> Any:
    types = typestore().types
    rows = np.asarray(rows, dtype=np.float32).reshape(-1, len(columns))
    dim = types["std_msgs/msg/MultiArrayDimension"]
    layout = types["std_msgs/msg/MultiArrayLayout"](
        dim=[
            dim(label=row_label, size=rows.shape[0], stride=rows.size),
            dim(label=",".join(columns), size=len(columns), stride=len(columns)),
        ],
        data_offset=0,
    )
    return types[FLOAT32_ARRAY](layout=layout, data=np.ascontiguousarray(rows).reshape(-1))


def _tf_msg(world_T_cam: np.ndarray, stamp_ns: int) -> Any:
    types = typestore().types
    q = matrix_to_quaternion(world_T_cam[None, :3, :3])[0]
    t = world_T_cam[:3, 3]
    transform = types["geometry_msgs/msg/Transform"](
        translation=types["geometry_msgs/msg/Vector3"](x=float(t[0]), y=float(t[1]), z=float(t[2])),
        rotation=types["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )
    stamped = types["geometry_msgs/msg/TransformStamped"](
        header=_header(stamp_ns, WORLD_FRAME), child_frame_id=CAMERA_FRAME, transform=transform
    )
    return types[TF_MESSAGE](transforms=[stamped])


def frame_messages(frame: Frame) -> dict[str, Any]:
    """All messages (rosbags message objects) of one frame, keyed by topic, in :data:`TOPICS` order."""
    stamp = int(frame.stamp_ns)
    header = _header(stamp, CAMERA_FRAME)
    instances = np.asarray(frame.instances)
    if instances.size and (instances.min() < 0 or instances.max() > np.iinfo(np.uint16).max):
        raise BagFormatError(
            f"instance ids must lie in [0, 65535] to be stored as 16UC1, got [{instances.min()}, {instances.max()}]"
        )
    objects = frame.objects
    object_rows = np.array(
        [(o.instance_id, o.class_id, float(o.novel), o.visible_fraction) for o in objects], dtype=np.float32
    ).reshape(-1, len(POSE_INFO_COLUMNS))
    grasps = frame.grasps
    rects = np.asarray(grasps.rects, dtype=np.float32).reshape(-1, 5)
    grasp_rows = np.concatenate(
        [
            rects,
            np.asarray(grasps.width_m, np.float32).reshape(-1, 1),
            np.asarray(grasps.instance_ids, np.float32).reshape(-1, 1),
        ],
        axis=1,
    )
    try:
        depth_sensor = depth_to_image(np.asarray(frame.depth_sensor, dtype=np.float32), ENCODINGS[DEPTH_IMAGE])
        images = {
            COLOR_IMAGE: array_to_image(np.asarray(frame.rgb, dtype=np.uint8), "rgb8"),
            DEPTH_IMAGE: depth_sensor,
            GT_DEPTH: depth_to_image(np.asarray(frame.depth_clean, dtype=np.float32), "32FC1"),
            GT_NORMALS: _float3_fields(np.asarray(frame.normals, dtype=np.float32)),
            GT_INSTANCES: array_to_image(instances.astype(np.uint16), "16UC1"),
            GT_GRASP_QUALITY: array_to_image(np.asarray(grasps.quality_map, np.float32), "32FC1"),
            GT_GRASP_COS2: array_to_image(np.asarray(grasps.cos2_map, np.float32), "32FC1"),
            GT_GRASP_SIN2: array_to_image(np.asarray(grasps.sin2_map, np.float32), "32FC1"),
            GT_GRASP_WIDTH: array_to_image(np.asarray(grasps.width_map, np.float32), "32FC1"),
        }
    except CoreError as exc:
        raise BagFormatError(f"frame at stamp {stamp} ns cannot be encoded: {exc}") from exc
    expected = (frame.intrinsics.height, frame.intrinsics.width)
    for topic, fields in images.items():
        if (fields.height, fields.width) != expected:
            raise BagFormatError(
                f"{topic} image is {fields.height}x{fields.width} (HxW) but the intrinsics say {expected[0]}x"
                f"{expected[1]} at stamp {stamp} ns"
            )
    info = _camera_info_msg(frame.intrinsics, header)
    grasp_poses = grasp_poses_from_rects(rects, np.asarray(frame.depth_clean), frame.intrinsics)
    messages: dict[str, Any] = {
        COLOR_IMAGE: _image_msg(images[COLOR_IMAGE], header),
        COLOR_INFO: info,
        DEPTH_IMAGE: _image_msg(images[DEPTH_IMAGE], header),
        DEPTH_INFO: info,
        GT_DEPTH: _image_msg(images[GT_DEPTH], header),
        GT_NORMALS: _image_msg(images[GT_NORMALS], header),
        GT_INSTANCES: _image_msg(images[GT_INSTANCES], header),
        GT_POSES: _pose_array_msg(np.array([o.cam_T_obj for o in objects]).reshape(-1, 4, 4), header),
        GT_POSES_INFO: _table_msg(object_rows, "objects", POSE_INFO_COLUMNS),
        GT_GRASPS: _pose_array_msg(grasp_poses, header),
        GT_GRASPS_INFO: _table_msg(grasp_rows, "grasps", GRASP_INFO_COLUMNS),
        GT_GRASP_QUALITY: _image_msg(images[GT_GRASP_QUALITY], header),
        GT_GRASP_COS2: _image_msg(images[GT_GRASP_COS2], header),
        GT_GRASP_SIN2: _image_msg(images[GT_GRASP_SIN2], header),
        GT_GRASP_WIDTH: _image_msg(images[GT_GRASP_WIDTH], header),
        TF_STATIC: _tf_msg(np.asarray(frame.world_T_cam, dtype=np.float64), stamp),
    }
    return messages


# ------------------------------------------------------------------------------------------------------------ write


@dataclass(frozen=True)
class BagStats:
    """What a written bag holds; also stored in its metadata.yaml custom_data under ``dcl_arc_ros.*``."""

    frames: int
    objects: int
    grasps: int

    def as_custom_data(self) -> dict[str, str]:
        return {
            f"{STATS_PREFIX}{k}": str(v)
            for k, v in (("frames", self.frames), ("objects", self.objects), ("grasps", self.grasps))
        }


def storage_plugin(storage: str) -> StoragePlugin:
    """The rosbags storage plugin for a storage name in :data:`STORAGES`."""
    try:
        return STORAGES[storage]
    except KeyError:
        raise BagError(f"unknown bag storage {storage!r}; expected one of {', '.join(STORAGES)}") from None


class BagWriter:
    """Writes Frames to a new rosbag2 directory. Use as a context manager; frames must come in stamp order."""

    def __init__(
        self,
        path: str | Path,
        *,
        storage: str = "mcap",
        compression: str = "zstd",
        custom_data: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        plugin = storage_plugin(storage)
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        if compression not in COMPRESSIONS:
            raise BagError(f"unknown bag compression {compression!r}; expected one of {', '.join(COMPRESSIONS)}")
        if compression == "zstd":
            mode = CompressionMode.STORAGE if plugin == StoragePlugin.MCAP else CompressionMode.MESSAGE
            self._writer.set_compression(mode, CompressionFormat.ZSTD)
        self._custom = dict(custom_data or {})
        self._connections: dict[str, Connection] = {}
        self._last_stamp = -1
        self.frames = 0
        self.objects = 0
        self.grasps = 0

    def __enter__(self) -> BagWriter:
        try:
            self._writer.open()
        except WriterError as exc:
            raise BagError(f"cannot create bag {self.path}: {exc}") from exc
        store = typestore()
        self._connections = {
            topic: self._writer.add_connection(topic, msgtype, typestore=store) for topic, msgtype in TOPICS.items()
        }
        return self

    def write_frame(self, frame: Frame) -> None:
        """Serialise every topic of ``frame`` at its stamp (header stamp = record time)."""
        stamp = int(frame.stamp_ns)
        if stamp <= self._last_stamp:
            raise BagFormatError(
                f"frame stamps must increase: {stamp} ns follows {self._last_stamp} ns in bag {self.path}"
            )
        store = typestore()
        for topic, msg in frame_messages(frame).items():
            self._writer.write(self._connections[topic], stamp, store.serialize_cdr(msg, TOPICS[topic]))
        self._last_stamp = stamp
        self.frames += 1
        self.objects += len(frame.objects)
        self.grasps += int(np.asarray(frame.grasps.rects).reshape(-1, 5).shape[0])

    @property
    def stats(self) -> BagStats:
        return BagStats(frames=self.frames, objects=self.objects, grasps=self.grasps)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None):
        if exc_type is not None:
            self._writer.abort()
            return
        for key, value in {**self._custom, **self.stats.as_custom_data()}.items():
            self._writer.set_custom_data(key, value)
        self._writer.close()


def partial_path(final_path: Path) -> Path:
    """Where :func:`write_bag` builds ``final_path`` before renaming it: ``<parent>/.partial/<name>``."""
    return final_path.parent / ".partial" / final_path.name


def write_bag(
    path: str | Path,
    frames: Iterable[Frame],
    *,
    storage: str = "mcap",
    compression: str = "zstd",
    custom_data: Mapping[str, str] | None = None,
) -> BagStats:
    """Write ``frames`` to a new bag at ``path`` atomically.

    The bag is built under :func:`partial_path` and renamed to ``path`` only after it is closed, so an interruption
    (exception, Ctrl-C, kill) never leaves a bag under ``path``. A stale partial bag from an earlier run is removed.
    """
    final = Path(path)
    if final.exists():
        raise BagError(f"bag {final} exists already; not overwriting")
    tmp = partial_path(final)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with BagWriter(tmp, storage=storage, compression=compression, custom_data=custom_data) as writer:
        for frame in frames:
            writer.write_frame(frame)
    tmp.rename(final)
    with contextlib.suppress(OSError):
        tmp.parent.rmdir()  # only succeeds when no other partial bag is being written next to it
    return writer.stats


def read_bag_stats(path: str | Path) -> BagStats | None:
    """The statistics a generated bag stores in its metadata.yaml, or None for a bag without them (a recording)."""
    meta_path = Path(path) / "metadata.yaml"
    try:
        meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BagError(f"cannot read bag metadata {meta_path}: {exc}") from exc
    info = meta.get("rosbag2_bagfile_information", {}) if isinstance(meta, dict) else {}
    data = info.get("custom_data") or {}
    try:
        return BagStats(**{k: int(data[f"{STATS_PREFIX}{k}"]) for k in ("frames", "objects", "grasps")})
    except (KeyError, ValueError, TypeError):
        return None


# ------------------------------------------------------------------------------------------------------------- read


@dataclass(frozen=True)
class FrameRecord:
    """The decoded contents of one frame of a bag (or of another data source). Missing topics are None.

    Arrays follow the :class:`dcl_arc_ros.data.frame.Frame` conventions: depths are float32 metres with NaN where
    there is no value, normals are (H, W, 3) float32 in the camera optical frame, instances are int32.
    """

    stamp_ns: int
    intrinsics: Intrinsics | None = None  # of the depth image (registered to colour in generated bags)
    color_intrinsics: Intrinsics | None = None
    rgb: np.ndarray | None = None  # (H, W, 3) uint8
    depth: np.ndarray | None = None  # (H, W) float32 metres from the sensor, NaN = no reading
    depth_clean: np.ndarray | None = None  # (H, W) float32 metres, ground truth
    normals: np.ndarray | None = None
    instances: np.ndarray | None = None
    object_poses: np.ndarray | None = None  # (N, 4, 4) float64 cam_T_obj
    object_info: np.ndarray | None = None  # (N, 4) float32 rows of POSE_INFO_COLUMNS
    grasp_poses: np.ndarray | None = None  # (M, 4, 4) float64
    grasp_info: np.ndarray | None = None  # (M, 7) float32 rows of GRASP_INFO_COLUMNS
    grasp_quality: np.ndarray | None = None
    grasp_cos2: np.ndarray | None = None
    grasp_sin2: np.ndarray | None = None
    grasp_width: np.ndarray | None = None
    world_T_cam: np.ndarray | None = None  # (4, 4) float64
    source: str = ""  # where it came from (bag path, file name), for error messages


@contextlib.contextmanager
def open_bag(path: str | Path) -> Iterator[Reader]:
    """An opened rosbags Reader, closed on exit. Raises BagError naming the path."""
    bag = Path(path)
    if not (bag / "metadata.yaml").is_file():
        raise BagError(f"{bag} is not a rosbag2 directory (no metadata.yaml)")
    reader = Reader(bag)
    try:
        reader.open()
    except ReaderError as exc:
        raise BagError(f"cannot open bag {bag}: {exc}") from exc
    try:
        yield reader
    finally:
        reader.close()


def _image_fields(msg: Any) -> ImageFields:
    return ImageFields.of_message(msg, np.ascontiguousarray(msg.data, dtype=np.uint8).tobytes())


def _float3_array(fields: ImageFields) -> np.ndarray:
    if fields.encoding != "32FC3":
        raise BagFormatError(f"expected a 32FC3 image, got encoding {fields.encoding!r}")
    raw = np.frombuffer(fields.data, dtype=np.uint8)
    if fields.step < fields.width * 12 or raw.size != fields.step * fields.height:
        raise BagFormatError(
            f"32FC3 image of {fields.height}x{fields.width} has step {fields.step} and {raw.size} bytes"
        )
    rows = raw.reshape(fields.height, fields.step)[:, : fields.width * 12]
    dtype = ">f4" if fields.is_bigendian else "<f4"
    return np.ascontiguousarray(rows).view(dtype).reshape(fields.height, fields.width, 3).astype(np.float32)


def _intrinsics(msg: Any) -> Intrinsics:
    return Intrinsics.from_k([float(v) for v in msg.k], int(msg.width), int(msg.height))


def _poses(msg: Any) -> np.ndarray:
    n = len(msg.poses)
    out = np.tile(np.eye(4), (n, 1, 1))
    if n:
        out[:, :3, 3] = [(p.position.x, p.position.y, p.position.z) for p in msg.poses]
        quats = np.array([(p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w) for p in msg.poses])
        out[:, :3, :3] = quaternion_to_matrix(quats)
    return out


def _table(msg: Any, columns: int, topic: str) -> np.ndarray:
    data = np.asarray(msg.data, dtype=np.float32)
    if data.size % columns:
        raise BagFormatError(f"{topic} holds {data.size} floats, not a multiple of its {columns} columns")
    return data.reshape(-1, columns)


def _transform(msg: Any) -> np.ndarray:
    if not msg.transforms:
        raise BagFormatError("/tf_static message holds no transform")
    tf = msg.transforms[0].transform
    out = np.eye(4)
    out[:3, :3] = quaternion_to_matrix(np.array([[tf.rotation.x, tf.rotation.y, tf.rotation.z, tf.rotation.w]]))[0]
    out[:3, 3] = (tf.translation.x, tf.translation.y, tf.translation.z)
    return out


def _scalar_map(msg: Any) -> np.ndarray:
    return np.asarray(image_to_array(_image_fields(msg)), dtype=np.float32)


_DECODERS: Final[dict[str, tuple[str, Any]]] = {
    # topic -> (FrameRecord field, decoder of the deserialised message)
    COLOR_IMAGE: ("rgb", lambda m: rgb_from_image(_image_fields(m))),
    COLOR_INFO: ("color_intrinsics", _intrinsics),
    DEPTH_IMAGE: ("depth", lambda m: depth_from_image(_image_fields(m))),
    DEPTH_INFO: ("intrinsics", _intrinsics),
    GT_DEPTH: ("depth_clean", lambda m: depth_from_image(_image_fields(m))),
    GT_NORMALS: ("normals", lambda m: _float3_array(_image_fields(m))),
    GT_INSTANCES: ("instances", lambda m: image_to_array(_image_fields(m)).astype(np.int32)),
    GT_POSES: ("object_poses", _poses),
    GT_POSES_INFO: ("object_info", lambda m: _table(m, len(POSE_INFO_COLUMNS), GT_POSES_INFO)),
    GT_GRASPS: ("grasp_poses", _poses),
    GT_GRASPS_INFO: ("grasp_info", lambda m: _table(m, len(GRASP_INFO_COLUMNS), GT_GRASPS_INFO)),
    GT_GRASP_QUALITY: ("grasp_quality", _scalar_map),
    GT_GRASP_COS2: ("grasp_cos2", _scalar_map),
    GT_GRASP_SIN2: ("grasp_sin2", _scalar_map),
    GT_GRASP_WIDTH: ("grasp_width", _scalar_map),
    TF_STATIC: ("world_T_cam", _transform),
}


def decode_frame(stamp_ns: int, raw: Mapping[str, tuple[str, bytes | memoryview]], *, source: str = "") -> FrameRecord:
    """Build a FrameRecord from raw CDR messages keyed by topic: ``{topic: (msgtype, data)}``. Unknown topics are
    ignored; a message that does not decode raises BagFormatError naming the topic and ``source``."""
    store = typestore()
    fields: dict[str, Any] = {}
    for topic, (msgtype, data) in raw.items():
        if topic not in _DECODERS:
            continue
        name, decoder = _DECODERS[topic]
        try:
            fields[name] = decoder(store.deserialize_cdr(bytes(data), msgtype))
        except (CoreError, BagFormatError, ValueError, AttributeError) as exc:
            raise BagFormatError(f"{topic} at stamp {stamp_ns} ns in {source or 'bag'} does not decode: {exc}") from exc
    return FrameRecord(stamp_ns=int(stamp_ns), source=source, **fields)


_HEADER_FIRST: Final[frozenset[str]] = frozenset({IMAGE, CAMERA_INFO, POSE_ARRAY, "sensor_msgs/msg/CompressedImage"})
_STAMP = struct.Struct("<iI")


def message_key(msgtype: str, data: bytes | memoryview, log_time_ns: int) -> int:
    """The stamp that groups a message into a frame, read from the raw CDR without deserialising.

    Messages whose first field is a std_msgs/Header use the header stamp; /tf_static uses its first transform's
    stamp; headerless messages (the Float32MultiArray tables) use their record time, which the writer sets to the
    frame stamp.
    """
    buf = memoryview(data)
    little = len(buf) >= 2 and buf[1] in (1, 3)  # CDR_LE / PL_CDR_LE encapsulation
    fmt = _STAMP if little else struct.Struct(">iI")
    if msgtype in _HEADER_FIRST and len(buf) >= 12:
        sec, nsec = fmt.unpack_from(buf, 4)
        return sec * _NS_PER_S + nsec
    if msgtype == TF_MESSAGE and len(buf) >= 16:
        (count,) = struct.unpack_from("<I" if little else ">I", buf, 4)
        if count:
            sec, nsec = fmt.unpack_from(buf, 8)
            return sec * _NS_PER_S + nsec
    return int(log_time_ns)


def bag_topics(path: str | Path) -> dict[str, tuple[str, int]]:
    """``{topic: (msgtype, message count)}`` of a bag."""
    with open_bag(path) as reader:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}


def read_frames(
    path: str | Path, *, topics: Sequence[str] | None = None, remap: Mapping[str, str] | None = None
) -> Iterator[FrameRecord]:
    """Read a bag frame by frame, grouping messages that share a stamp (see :func:`message_key`).

    This suits bags where every topic of a frame carries the same stamp (generated bags, aligned RealSense
    recordings). For recordings with unsynchronised topics use :class:`dcl_arc_ros.data.bag_index.BagIndex`, which
    pairs topics by nearest stamp. ``remap`` maps the bag's topic names onto the canonical ones of :data:`TOPICS`.
    """
    rename = dict(remap or {})
    wanted = set(topics) if topics is not None else set(TOPICS)
    source = str(path)
    with open_bag(path) as reader:
        shadowed = set(rename.values()) - set(rename)  # a remapped topic replaces a bag topic of the same name
        connections = [
            c
            for c in reader.connections
            if rename.get(c.topic, c.topic) in wanted and not (c.topic in shadowed and c.topic not in rename)
        ]
        group: dict[str, tuple[str, bytes]] = {}
        key: int | None = None
        for connection, log_time, data in reader.messages(connections=connections):
            msg_key = message_key(connection.msgtype, data, log_time)
            if key is not None and msg_key != key:
                yield decode_frame(key, group, source=source)
                group = {}
            key = msg_key
            group[rename.get(connection.topic, connection.topic)] = (connection.msgtype, data)
        if key is not None:
            yield decode_frame(key, group, source=source)
