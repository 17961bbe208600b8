"""The pure ARC deployment pipeline: sidecar-driven pre-processing, output decoding, intrinsics (no torch, no ROS)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from dcl_arc_ros.core.arc_pipeline import (
    MASK_KEPT,
    MASK_REMOVED,
    ARCDepthPipeline,
    ARCModelSpec,
    ARCNormalisation,
    decode_depth,
    decode_image,
    decode_mask,
    preprocess_rgb,
)
from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.errors import PipelineError, SidecarError
from dcl_arc_ros.core.sidecar import ModelSidecar, TensorSpec

H, W = 6, 8


def make_sidecar(
    *, outputs: tuple[TensorSpec, ...] | None = None, normalisation: dict[str, Any] | None = None
) -> ModelSidecar:
    default_outputs = (
        TensorSpec("depth", (1, 1, H, W), "float32", "depth", "normalised"),
        TensorSpec("mask", (1, 1, H, W), "float32", "keep_mask"),
        TensorSpec("decluttered", (1, 3, H, W), "float32", "rgb", "normalised"),
    )
    data = ModelSidecar(
        name="arc_test",
        task="rgb_to_depth",
        model_version="1.0.0",
        inputs=(TensorSpec("rgb", (1, 3, H, W), "float32", "rgb", "normalised"),),
        outputs=outputs or default_outputs,
        deploy_resolution=(H, W),
        normalisation=normalisation or ARCNormalisation(depth_max_m=10.0).to_sidecar(),
        training_config_sha256="0" * 64,
    ).to_dict()
    return ModelSidecar.from_dict(data, "arc_test.json")  # the core validator accepts what we write


class FakeARCModel:
    """depth = mean of the input channels, mask keeps pixels whose red input is >= 0, decluttered = input."""

    provider = "fake"

    def __init__(self, sidecar: ModelSidecar) -> None:
        self.sidecar = sidecar
        self.last_input: np.ndarray | None = None

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["rgb"]
        self.last_input = x
        return {
            "depth": x.mean(axis=1, keepdims=True),
            "mask": (x[:, :1] >= 0).astype(np.float32),
            "decluttered": x.copy(),
        }


def test_preprocess_scales_uint8_to_minus_one_one_and_resizes_to_the_deploy_size() -> None:
    spec = ARCModelSpec.from_sidecar(make_sidecar())
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 1] = 255
    x = preprocess_rgb(rgb, spec)
    assert x.shape == (1, 3, H, W) and x.dtype == np.float32 and x.flags.c_contiguous
    assert np.all(x[0, 0] == -1.0) and np.all(x[0, 1] == 1.0)
    big = np.full((H * 4, W * 4, 3), 128, np.uint8)
    assert preprocess_rgb(big, spec).shape == (1, 3, H, W)
    assert np.allclose(preprocess_rgb(big, spec), 128 * 2 / 255 - 1, atol=1e-6)
    with pytest.raises(PipelineError, match="uint8 RGB"):
        preprocess_rgb(np.zeros((H, W), np.uint8), spec)
    with pytest.raises(PipelineError, match="float32"):
        preprocess_rgb(np.zeros((H, W, 3), np.float32), spec)


def test_depth_decoding_uses_the_sidecar_range_and_marks_no_estimate_as_nan() -> None:
    spec = ARCModelSpec.from_sidecar(make_sidecar(normalisation=ARCNormalisation(0.0, 8.0).to_sidecar()))
    unit = np.array([[-1.0, -0.5, 0.0, 1.0, 3.0, np.nan]], np.float32).reshape(1, 1, 1, 6)
    depth = decode_depth(unit, spec)
    assert depth.dtype == np.float32 and depth.shape == (1, 6)
    np.testing.assert_allclose(depth[0, 1:5], [2.0, 4.0, 8.0, 8.0])  # clipped at max_m
    assert np.isnan(depth[0, 0]) and np.isnan(depth[0, 5])  # 0 m is "no reading" (REP 118), NaN stays NaN
    offset = ARCModelSpec(H, W, ARCNormalisation(1.0, 9.0))
    assert decode_depth(np.zeros((H, W), np.float32), offset)[0, 0] == pytest.approx(5.0)


def test_mask_convention_255_removed_0_kept() -> None:
    keep = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32).reshape(1, 1, 2, 2)
    mono8 = decode_mask(keep)
    assert mono8.dtype == np.uint8
    assert mono8.tolist() == [[MASK_KEPT, MASK_REMOVED], [MASK_REMOVED, MASK_KEPT]] == [[0, 255], [255, 0]]
    with pytest.raises(PipelineError, match="mask"):
        decode_mask(np.zeros((1, 2, 2, 2), np.float32))


def test_image_decoding_inverts_preprocessing_exactly() -> None:
    spec = ARCModelSpec.from_sidecar(make_sidecar())
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    assert np.array_equal(decode_image(preprocess_rgb(rgb, spec), spec), rgb)
    out_of_range = np.full((1, 3, H, W), 2.0, np.float32)
    assert np.all(decode_image(out_of_range, spec) == 255)


def test_pipeline_runs_a_model_and_rescales_the_intrinsics() -> None:
    sidecar = make_sidecar()
    model = FakeARCModel(sidecar)
    pipeline = ARCDepthPipeline(model)
    rgb = np.random.default_rng(1).integers(0, 256, (H * 2, W * 2, 3), dtype=np.uint8)
    camera = Intrinsics(fx=200.0, fy=210.0, cx=7.5, cy=5.5, width=W * 2, height=H * 2)
    result = pipeline(rgb, camera)
    x = model.last_input
    assert x is not None and x.shape == (1, 3, H, W)
    expected_depth = (x.mean(axis=1)[0] + 1.0) * 5.0
    expected_depth[expected_depth <= 0] = np.nan
    np.testing.assert_allclose(result.depth_m, expected_depth, rtol=1e-6)
    assert np.array_equal(result.mask == MASK_REMOVED, x[0, 0] < 0)
    assert np.array_equal(result.decluttered, decode_image(x, pipeline.spec))
    assert result.intrinsics == camera.resize(W, H)
    assert result.intrinsics.fx == pytest.approx(100.0) and result.intrinsics.width == W
    assert pipeline(rgb).intrinsics is None


def test_pipeline_finds_outputs_by_semantic_so_models_may_rename_them() -> None:
    outputs = (
        TensorSpec("pred_depth", (1, 1, H, W), "float32", "depth"),
        TensorSpec("keep", (1, 1, H, W), "float32", "keep_mask"),
        TensorSpec("clean_rgb", (1, 3, H, W), "float32", "rgb"),
    )
    spec = ARCModelSpec.from_sidecar(make_sidecar(outputs=outputs))
    assert (spec.depth_name, spec.mask_name, spec.image_name) == ("pred_depth", "keep", "clean_rgb")

    class Renamed(FakeARCModel):
        def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            out = super().run(inputs)
            return {"pred_depth": out["depth"], "keep": out["mask"], "clean_rgb": out["decluttered"]}

    result = ARCDepthPipeline(Renamed(make_sidecar(outputs=outputs)))(np.zeros((H, W, 3), np.uint8))
    assert result.depth_m.shape == (H, W)


def test_sidecar_errors_name_the_model_and_the_field() -> None:
    no_mask = (
        TensorSpec("depth", (1, 1, H, W), "float32", "depth"),
        TensorSpec("decluttered", (1, 3, H, W), "float32", "rgb"),
    )
    with pytest.raises(SidecarError, match=r"arc_test.*keep_mask"):
        ARCModelSpec.from_sidecar(make_sidecar(outputs=no_mask))
    wrong_rgb = {
        "rgb": {"kind": "mean_std", "mean": 0.5, "std": 0.5},
        "depth": {"kind": "range", "min_m": 0.0, "max_m": 10.0},
    }
    with pytest.raises(SidecarError, match=r"arc_test.*normalisation\.rgb"):
        ARCModelSpec.from_sidecar(make_sidecar(normalisation=wrong_rgb))
    no_depth = {"rgb": {"kind": "affine", "scale": 2 / 255, "offset": -1.0}}
    with pytest.raises(SidecarError, match=r"normalisation\.depth"):
        ARCModelSpec.from_sidecar(make_sidecar(normalisation=no_depth))


def test_pipeline_reports_a_model_that_misses_an_output() -> None:
    class Broken(FakeARCModel):
        def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            out = super().run(inputs)
            del out["mask"]
            return out

    with pytest.raises(PipelineError, match=r"missing.*mask"):
        ARCDepthPipeline(Broken(make_sidecar()))(np.zeros((H, W, 3), np.uint8))


def test_normalisation_validates_its_ranges() -> None:
    with pytest.raises(PipelineError, match="depth range"):
        ARCNormalisation(depth_min_m=5.0, depth_max_m=5.0)
    with pytest.raises(PipelineError, match="scale"):
        ARCNormalisation(rgb_scale=0.0)
