"""Result messages of the grasp and pose nodes, built from core results without a running node."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from std_msgs.msg import Float32MultiArray, Header, MultiArrayDimension, MultiArrayLayout
from visualization_msgs.msg import Marker

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.grasp_pipeline import CropWindow, GraspDetection
from dcl_arc_ros.core.grasps import Grasp3D, GraspMaps, grasps_to_3d
from dcl_arc_ros.core.image_codec import image_to_array
from dcl_arc_ros.core.pose_pipeline import ObjectPose, rotation_to_quaternion
from dcl_arc_ros.ros import markers
from dcl_arc_ros.ros.conversions import fields_from_image_msg
from dcl_arc_ros.ros.errors import BadInputError

K = Intrinsics(fx=500.0, fy=520.0, cx=31.5, cy=23.5, width=64, height=48)
HEADER = Header(stamp=Time(sec=12, nanosec=345), frame_id="camera_depth_optical_frame")


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def some_grasps() -> list[Grasp3D]:
    depth = np.full((K.height, K.width), 0.6, np.float32)
    depth[20:30, 30:40] = 0.55
    rects = np.array(
        [
            # cx, cy, angle, width_px, length_px, quality
            [34.0, 25.0, 0.4, 20.0, 10.0, 0.9],
            [12.0, 10.0, -1.2, 14.0, 7.0, 0.5],
            [50.0, 40.0, 0.0, 8.0, 4.0, 0.25],
        ]
    )
    grasps = grasps_to_3d(rects, depth, K)
    assert len(grasps) == 3
    return grasps


def some_poses() -> list[ObjectPose]:
    yaw = 0.7
    c, s = np.cos(yaw), np.sin(yaw)
    r1 = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    r2 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    return [
        ObjectPose(3, 0.8, r1, np.array([0.05, -0.02, 0.5]), (10, 8, 30, 18)),
        ObjectPose(1, 0.4, r2, np.array([-0.04, 0.03, 0.6]), (40, 30, 50, 45)),
    ]


def test_grasp_pose_array_keeps_order_header_and_geometry() -> None:
    grasps = some_grasps()
    msg = markers.grasp_pose_array(grasps, HEADER)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (12, 345, HEADER.frame_id)
    assert msg.header is not HEADER
    assert len(msg.poses) == len(grasps)
    for pose, g in zip(msg.poses, grasps, strict=True):
        np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z], g.position)
        o = pose.orientation
        np.testing.assert_allclose([o.x, o.y, o.z, o.w], g.quaternion)


def test_object_pose_array_orientation_is_the_rotation() -> None:
    poses = some_poses()
    msg = markers.object_pose_array(poses, HEADER)
    for pose, p in zip(msg.poses, poses, strict=True):
        o = pose.orientation
        np.testing.assert_allclose(quat_to_matrix(np.array([o.x, o.y, o.z, o.w])), p.rotation, atol=1e-12)
        np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z], p.translation)


def test_info_tables_have_the_documented_layout_and_round_trip() -> None:
    grasps = some_grasps()
    columns, rows = markers.table_from_info(markers.grasp_info(grasps))
    assert columns == ("quality", "width_m")
    np.testing.assert_allclose(rows, [[g.quality, g.width_m] for g in grasps], rtol=1e-6)
    msg = markers.pose_info(some_poses())
    assert msg.layout.dim[0].label == "poses" and msg.layout.dim[0].size == 2 and msg.layout.dim[0].stride == 4
    assert msg.layout.dim[1].label == "class_id,confidence" and msg.layout.dim[1].stride == 2
    np.testing.assert_allclose(markers.table_from_info(msg)[1], [[3, 0.8], [1, 0.4]], rtol=1e-6)
    columns, rows = markers.table_from_info(markers.grasp_info([]))
    assert columns == ("quality", "width_m") and rows.shape == (0, 2)


def test_a_table_that_does_not_fit_its_layout_is_rejected() -> None:
    layout = MultiArrayLayout(
        dim=[MultiArrayDimension(label="grasps", size=3, stride=6), MultiArrayDimension(label="a,b", size=2, stride=2)]
    )
    with pytest.raises(BadInputError, match="3x2"):
        markers.table_from_info(Float32MultiArray(layout=layout, data=[1.0, 2.0]))


def test_gripper_fingers_straddle_the_jaw_tips_of_each_grasp() -> None:
    grasps = some_grasps()
    style = markers.GripperStyle(finger_length_m=0.05)
    array = markers.grasp_markers(grasps, HEADER, style)
    first, *drawn = array.markers
    assert first.action == Marker.DELETEALL
    assert [m.id for m in drawn] == [0, 1, 2]
    for m, g in zip(drawn, grasps, strict=True):
        assert m.type == Marker.LINE_LIST and m.ns == markers.GRASP_NAMESPACE and m.action == Marker.ADD
        assert m.header.frame_id == HEADER.frame_id and m.header.stamp.sec == 12
        assert len(m.points) % 2 == 0
        rot = quat_to_matrix(
            np.array([m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w])
        )
        origin = np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z])
        local = np.array([[p.x, p.y, p.z] for p in m.points])
        world = local @ rot.T + origin
        # The jaw tips, deprojected independently from the image rectangle at the grasp depth.
        r = g.rect
        du, dv = 0.5 * r.width_px * np.cos(r.angle), 0.5 * r.width_px * np.sin(r.angle)
        z = g.position[2]
        tips = np.stack([K.deproject(r.cx - du, r.cy - dv, z), K.deproject(r.cx + du, r.cy + dv, z)]).reshape(2, 3)
        for finger, tip in zip((world[0:2], world[2:4]), tips, strict=True):
            # The finger segment passes through the jaw tip (the point of the finger at the grasp's depth).
            a, b = finger
            t = (tip[2] - a[2]) / (b[2] - a[2])
            assert 0.0 < t < 1.0
            np.testing.assert_allclose(a + t * (b - a), tip, atol=1e-6)
        assert np.linalg.norm(world[0] - world[2]) == pytest.approx(g.width_m, rel=1e-9)
        assert abs(local[:, 2].min()) == pytest.approx(1.25 * style.finger_length_m)  # wrist towards the camera


def test_quality_colours_run_from_red_to_green() -> None:
    low, high = markers.quality_colour(0.0), markers.quality_colour(1.0)
    assert (low.r, low.g) == (1.0, 0.0) and (high.r, high.g) == (0.0, 1.0)
    assert markers.quality_colour(7.0) == high


def test_an_empty_result_only_clears_the_display() -> None:
    for array in (markers.grasp_markers([], HEADER), markers.pose_markers([], HEADER, K)):
        assert len(array.markers) == 1 and array.markers[0].action == Marker.DELETEALL
        assert array.markers[0].header.frame_id == HEADER.frame_id


def test_pose_markers_draw_box_axes_and_label_per_object() -> None:
    poses = some_poses()
    style = markers.PoseStyle(axis_length_m=0.1)
    array = markers.pose_markers(poses, HEADER, K, style)
    assert array.markers[0].action == Marker.DELETEALL
    by_ns: dict[str, list[Marker]] = {}
    for m in array.markers[1:]:
        by_ns.setdefault(m.ns, []).append(m)
    assert {ns: [m.id for m in ms] for ns, ms in by_ns.items()} == {
        markers.POSE_BOX_NAMESPACE: [0, 1],
        markers.POSE_AXES_NAMESPACE: [0, 1],
        markers.POSE_LABEL_NAMESPACE: [0, 1],
    }
    for p, box, axes, label in zip(poses, *by_ns.values(), strict=True):
        x0, y0, x1, y1 = p.box
        assert box.type == Marker.CUBE
        assert box.scale.x == pytest.approx((x1 - x0) * p.translation[2] / K.fx)
        assert box.scale.y == pytest.approx((y1 - y0) * p.translation[2] / K.fy)
        # The box centre projects to the centre of the image box.
        u, v, _ = K.project(np.array([box.pose.position.x, box.pose.position.y, box.pose.position.z]))
        assert float(u) == pytest.approx(0.5 * (x0 + x1 - 1)) and float(v) == pytest.approx(0.5 * (y0 + y1 - 1))
        # Axis i of the drawn frame, rotated into the camera frame, is column i of the object's rotation.
        q = axes.pose.orientation
        rot = quat_to_matrix(np.array([q.x, q.y, q.z, q.w]))
        pts = np.array([[pt.x, pt.y, pt.z] for pt in axes.points]).reshape(3, 2, 3)
        for i in range(3):
            np.testing.assert_allclose(rot @ (pts[i, 1] - pts[i, 0]), 0.1 * p.rotation[:, i], atol=1e-9)
        assert [(c.r, c.g, c.b) for c in axes.colors[::2]] == [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
        assert label.type == Marker.TEXT_VIEW_FACING and f"class {p.class_id}" in label.text
    np.testing.assert_allclose(rotation_to_quaternion(poses[0].rotation), poses[0].quaternion())


def test_quality_map_is_pasted_into_the_crop_window() -> None:
    quality = np.tile(np.linspace(0.0, 1.0, 10, dtype=np.float32), (10, 1))
    maps = GraspMaps(quality=quality, angle=np.zeros_like(quality), width_px=np.zeros_like(quality))
    window = CropWindow(x0=12, y0=4, side=20, net_width=10, net_height=10)
    detection = GraspDetection([], np.zeros((0, 6)), maps, window)
    image = markers.quality_map_image(detection, 48, 64)
    assert image.shape == (48, 64) and image.dtype == np.float32
    inside = np.zeros_like(image, dtype=bool)
    inside[4:24, 12:32] = True
    assert np.isfinite(image[inside]).all() and np.isnan(image[~inside]).all()
    row = image[10, 12:32]
    assert np.all(np.diff(row) >= 0) and row[0] == pytest.approx(0.0, abs=1e-6) and row[-1] == pytest.approx(1.0)
    msg = markers.quality_map_msg(detection, HEADER, 48, 64)
    assert msg.encoding == "32FC1" and msg.header.stamp.nanosec == 345
    np.testing.assert_array_equal(image_to_array(fields_from_image_msg(msg)), image)
    assert np.isnan(markers.quality_map_image(None, 48, 64)).all()
