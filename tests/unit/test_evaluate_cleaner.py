"""The cleaner evaluation on a small generated bag, with a reference model whose output is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dcl_arc_ros.evaluation.depth_cleaner import evaluate_depth_cleaner
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
