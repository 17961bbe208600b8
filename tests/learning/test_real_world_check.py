"""The real-world check: node parameters from the config, every node's numbers on a synthetic tabletop frame (whose
answer is known), and the script on the real SR300 frames when they are installed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.data.bags import FrameRecord
from dcl_arc_ros.data.real import castel_available, castel_dir
from dcl_arc_ros.evaluation.real_world import NODES, NodeModels, check_frame, node_parameters, summarise
from dcl_arc_ros.graph import GraphError
from dcl_arc_ros.ros.errors import ParameterError

MODELS = Path(__file__).resolve().parents[2] / "models"
needs_models = pytest.mark.skipif(
    not all((MODELS / f"{n}.onnx").is_file() for n in NODES), reason="the shipped models are not in models/"
)
K = Intrinsics(fx=600.0, fy=600.0, cx=319.5, cy=239.5, width=640, height=480)
BOX = (slice(200, 300), slice(260, 380))  # rows, columns of a box 6 cm tall


def tabletop() -> FrameRecord:
    """A tilted table 0.7 m away with one box on it and a band of holes, like a stereo camera's left edge."""
    normal = np.array([0.0, -0.5, -1.0]) / np.linalg.norm([0.0, -0.5, -1.0])
    v, u = np.mgrid[0 : K.height, 0 : K.width].astype(np.float64)
    rays = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u)], axis=-1)
    height = np.zeros((K.height, K.width))
    height[BOX] = 0.06
    depth = ((height - 0.7) / (rays @ normal)).astype(np.float32)
    depth[:, :40] = np.nan
    rgb = np.random.default_rng(0).integers(0, 255, (K.height, K.width, 3), dtype=np.uint8)
    return FrameRecord(stamp_ns=0, intrinsics=K, color_intrinsics=K, rgb=rgb, depth=depth, source="tabletop")


def test_node_parameters_are_the_schema_defaults_overlaid_with_the_config(tmp_path: Path) -> None:
    shipped = node_parameters("pose_estimator")
    assert shipped["max_objects"] == 5 and shipped["split_touching"] is True
    config = tmp_path / "graph.yaml"
    config.write_text("pose_estimator:\n  ros__parameters:\n    max_objects: 2\n    crease: 1\n")
    mine = node_parameters("pose_estimator", config)
    assert mine["max_objects"] == 2 and mine["crease"] == 1.0  # an int is fine for a float
    assert mine["min_pixels"] == shipped["min_pixels"]  # not in the file: the schema default
    config.write_text("pose_estimator:\n  ros__parameters:\n    max_objects: -3\n")
    with pytest.raises(ParameterError, match="max_objects"):
        node_parameters("pose_estimator", config)
    with pytest.raises(GraphError, match=r"nowhere\.yaml"):
        node_parameters("pose_estimator", tmp_path / "nowhere.yaml")


@needs_models
def test_every_node_on_a_tabletop_with_one_box() -> None:
    models = NodeModels.shipped()
    assert not models.missing and set(models.versions) == set(NODES)
    record = tabletop()
    row = check_frame(record, models, models.poses.proposals)  # type: ignore[union-attr]
    assert row["holes"] == pytest.approx(40 / 640)
    assert row["cleaned_holes"] == 0.0  # the shipped cleaner fills every hole (max_fill_px 0)
    assert 0.0 <= row["measured_moved_mm_median"] <= row["measured_moved_mm_p95"]
    assert 0 <= row["grasps_on_object"] <= row["grasps"]
    # The box is the only thing on the table: one proposal, one pose, centred on its top (6 cm up, minus the
    # median-depth surface point being on the top face, so between 1 and 7 cm).
    assert row["proposals"] == row["poses"] == 1
    assert 0.01 < row["pose_heights_m"][0] < 0.07
    x0, _, x1, _ = row["_arrays"]["poses"][0].box
    assert abs(x0 - BOX[1].start) <= 3 and abs(x1 - BOX[1].stop) <= 3
    for kind in ("arc_metric", "arc_median_scaled"):
        assert 0.0 <= row[kind]["delta1"] <= 1.0 and row[kind]["absrel"] >= 0.0
    summary = summarise([row, row], models)
    assert summary["frames"] == 2 and summary["pose_estimator"]["poses_per_frame"] == 1.0
    assert summary["grasp_detector"]["grasps_per_frame"] == row["grasps"]


@pytest.fixture(scope="module")
def script(load_script: Callable[[str], ModuleType]) -> ModuleType:
    return load_script("training/evaluate_real_world.py")


def test_missing_real_data_is_a_clear_error(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert script.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "rw"), "--no-progress"]) == 2
    assert "make real-data" in capsys.readouterr().err
    assert not (tmp_path / "rw.json").exists()


@needs_models
@pytest.mark.skipif(not castel_available(), reason=f"SR300 castel frames not installed under {castel_dir()}")
def test_the_script_on_two_real_frames(script: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "real_world"
    assert script.main(["--frames", "2", "--out", str(out), "--no-progress"]) == 0
    payload = json.loads(out.with_suffix(".json").read_text())
    assert payload["summary"]["frames"] == 2 and len(payload["frames"]) == 2
    assert 0.3 < payload["summary"]["sensor_holes"] < 0.6  # the SR300 frames have about 44 % holes
    assert "_arrays" not in payload["frames"][0]
    page = out.with_suffix(".md").read_text()
    assert "| depth_cleaner | holes left |" in page and "real_world.png" in page
    assert out.with_suffix(".png").stat().st_size > 10_000
