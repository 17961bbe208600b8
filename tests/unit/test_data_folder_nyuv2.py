"""Folder layout (PNG depth in mm + RGB) and the extracted NYUv2 labelled layout."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.data.bags import FrameRecord
from dcl_arc_ros.data.errors import DatasetError
from dcl_arc_ros.data.folder import FolderFrames, write_folder_sample
from dcl_arc_ros.data.nyuv2 import (
    NYU_INTRINSICS,
    NYUv2Frames,
    export_labelled_arrays,
    extract_labelled_mat,
    write_splits,
)


def _record(seed: int, h: int = 12, w: int = 16) -> FrameRecord:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.3, 4.0, size=(h, w)).astype(np.float32)
    depth[rng.random((h, w)) < 0.2] = np.nan
    return FrameRecord(
        stamp_ns=0,
        intrinsics=Intrinsics(20.0, 21.0, 7.5, 5.5, w, h),
        rgb=rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8),
        depth=depth,
        depth_clean=np.nan_to_num(depth, nan=1.0),
    )


def test_folder_round_trip_keeps_depth_to_the_millimetre(tmp_path: Path) -> None:
    records = [_record(0), _record(1)]
    for i, rec in enumerate(records):
        write_folder_sample(tmp_path, f"frame_{i:03d}", rec)
    folder = FolderFrames(tmp_path)
    assert len(folder) == 2 and folder.names == ("frame_000", "frame_001")
    for rec, got in zip(records, folder, strict=True):
        assert got.intrinsics == rec.intrinsics
        np.testing.assert_array_equal(got.rgb, rec.rgb)
        np.testing.assert_array_equal(np.isnan(got.depth), np.isnan(rec.depth))
        np.testing.assert_allclose(got.depth, rec.depth, atol=0.0005 + 1e-6)
        np.testing.assert_allclose(got.depth_clean, rec.depth_clean, atol=0.0005 + 1e-6)


def test_folder_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no depth/ folder"):
        FolderFrames(tmp_path)
    write_folder_sample(tmp_path, "a", _record(0))
    write_folder_sample(tmp_path / "other", "a", _record(1, h=10))
    (tmp_path / "rgb" / "a.png").replace(tmp_path / "rgb" / "a.tmp")
    (tmp_path / "other" / "rgb" / "a.png").replace(tmp_path / "rgb" / "a.png")
    with pytest.raises(DatasetError, match=r"rgb of a is \(10, 16\)"):
        FolderFrames(tmp_path)[0]
    (tmp_path / "camera.json").write_text('{"fx": 1}')
    with pytest.raises(DatasetError, match=r"bad camera file .*camera\.json"):
        FolderFrames(tmp_path)


def _nyu_arrays(n: int, h: int = 24, w: int = 32) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Arrays laid out as h5py shows the MATLAB v7.3 file: axes reversed."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
    depth = rng.uniform(0.7, 9.0, size=(n, h, w)).astype(np.float32)
    raw = depth.copy()
    raw[:, :3, :] = 0.0  # holes
    arrays = {
        "images": rgb.transpose(0, 3, 2, 1),
        "depths": depth.transpose(0, 2, 1),
        "rawDepths": raw.transpose(0, 2, 1),
    }
    return arrays, rgb, depth


def test_nyuv2_export_and_read_restore_orientation_and_splits(tmp_path: Path) -> None:
    arrays, rgb, depth = _nyu_arrays(4)
    assert export_labelled_arrays(arrays, tmp_path) == 4
    write_splits(tmp_path, train=[1, 3, 4], test=[2])
    frames = NYUv2Frames(tmp_path)
    assert len(frames) == 4
    rec = frames[1]
    np.testing.assert_array_equal(rec.rgb, rgb[1])
    np.testing.assert_allclose(rec.depth_clean, depth[1], atol=0.0005 + 1e-6)
    assert np.isnan(rec.depth[:3]).all() and np.isfinite(rec.depth[3:]).all()
    assert rec.intrinsics == NYU_INTRINSICS.resize(32, 24)
    test = NYUv2Frames(tmp_path, split="test")
    assert len(test) == 1
    np.testing.assert_array_equal(test[0].rgb, rgb[1])
    assert len(NYUv2Frames(tmp_path, split="train")) == 3
    with pytest.raises(DatasetError, match="unknown NYUv2 split 'val'"):
        NYUv2Frames(tmp_path, split="val")


def test_nyuv2_intrinsics_are_the_toolbox_values_in_zero_based_pixels() -> None:
    assert NYU_INTRINSICS.fx == pytest.approx(518.857901, abs=1e-6)
    assert NYU_INTRINSICS.cx == pytest.approx(325.582449 - 1.0, abs=1e-6)
    assert (NYU_INTRINSICS.width, NYU_INTRINSICS.height) == (640, 480)


@pytest.mark.skipif(importlib.util.find_spec("h5py") is not None, reason="h5py is installed here")
def test_extracting_the_mat_file_without_h5py_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="needs h5py"):
        extract_labelled_mat(tmp_path / "nyu_depth_v2_labeled.mat", tmp_path / "out")
