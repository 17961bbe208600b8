"""The cleaner evaluation on a small generated bag, with a reference model whose output is known."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from dcl_arc_ros.evaluation.depth_cleaner import FULL_FRAME_METHOD, centred_band, evaluate_depth_cleaner
from dcl_arc_ros.inference.reference_models import write_affine_depth_model
from dcl_arc_ros.sim.generate import main as generate


@pytest.fixture(scope="module")
def bag_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bags")
    code = generate(
        [
            "--out",
            str(out),
            "--scenes",
            "1",
            "--frames-per-scene",
            "3",
            "--sensor",
            "empirical",
            "--seed",
            "5",
            "--renderer",
            "toy",
            "--width",
            "80",
            "--height",
            "60",
            "--no-progress",
        ]
    )
    assert code == 0
    return out


def test_identity_cleaner_equals_nearest_fill_and_sensor_is_scored_on_its_readings(
    bag_dir: Path, tmp_path: Path
) -> None:
    model = tmp_path / "identity.onnx"
    range_0_4 = {"depth": {"kind": "range", "min_m": 0.0, "max_m": 4.0}}
    write_affine_depth_model(model, scale=1.0, offset=0.0, height=60, width=80, normalisation=range_0_4)
    result = evaluate_depth_cleaner(model, [bag_dir])
    assert result.frames == 3 and result.max_depth_m == 4.0
    cleaner, sensor, filled = (result.means[m] for m in ("cleaner", "sensor", "nearest_fill"))
    # An identity network behind the pipeline's own nearest fill is exactly the nearest-fill reference.
    for key in ("rmse", "mae", "psnr", "ssim"):
        assert cleaner[key] == pytest.approx(filled[key], rel=1e-4)
    assert cleaner["coverage"] == pytest.approx(1.0)
    assert 0.0 < sensor["coverage"] < 1.0  # the empirical sensor leaves holes, which are not scored
    assert np.isfinite(result.cleaner_ms_median) and len(result.per_frame) == 3
    json.dumps(result.summary())  # machine-readable as it stands


def test_a_worse_model_scores_worse(bag_dir: Path, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    write_affine_depth_model(good, scale=1.0, offset=0.0, height=60, width=80)
    write_affine_depth_model(bad, scale=1.0, offset=0.05, height=60, width=80)  # a 5 cm bias
    rmse_good = evaluate_depth_cleaner(good, [bag_dir]).means["cleaner"]["rmse"]
    rmse_bad = evaluate_depth_cleaner(bad, [bag_dir]).means["cleaner"]["rmse"]
    assert rmse_bad > rmse_good + 0.02


def test_centred_band_keeps_the_largest_window_of_the_aspect() -> None:
    assert centred_band(480, 640, 16 / 9) == (slice(60, 420), slice(0, 640))
    assert centred_band(480, 640, 1.0) == (slice(0, 480), slice(80, 560))
    assert centred_band(480, 640, 4 / 3) == (slice(0, 480), slice(0, 640))
    with pytest.raises(ValueError, match="aspect"):
        centred_band(480, 640, 0.0)


def test_a_band_is_cleaned_on_its_own_and_also_cut_from_the_full_frame(bag_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "identity.onnx"
    write_affine_depth_model(model, scale=1.0, offset=0.0, height=60, width=80)
    full = evaluate_depth_cleaner(model, [bag_dir])
    band = evaluate_depth_cleaner(model, [bag_dir], aspect=16 / 9)
    assert set(band.means) == {"cleaner", "sensor", "nearest_fill", FULL_FRAME_METHOD}
    assert FULL_FRAME_METHOD not in full.means
    assert band.examples[0]["truth"].shape == (45, 80)  # the 16:9 band of an 80x60 frame
    # The band is a different set of pixels from the full frame, and the stretch to the model's 80x60 input and
    # back changes the band's own result, while the full frame's output cut to the band does not see it.
    assert band.means["sensor"]["rmse"] != pytest.approx(full.means["sensor"]["rmse"], rel=1e-9)
    assert band.means["cleaner"]["rmse"] != pytest.approx(band.means[FULL_FRAME_METHOD]["rmse"], rel=1e-6)


def test_the_aspect_option_reads_w_colon_h_and_names_a_bad_value(load_script: Callable[[str], ModuleType]) -> None:
    script = load_script("training/evaluate_cleaner.py")
    assert script.parse_aspect("16:9") == pytest.approx(16 / 9)
    for bad in ("16x9", "0:9", "16:", "inf:9", "nan:1"):
        with pytest.raises(argparse.ArgumentTypeError, match=repr(bad)):
            script.parse_aspect(bad)
