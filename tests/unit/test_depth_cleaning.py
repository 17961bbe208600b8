"""DepthCleaningPipeline with real ONNX Runtime sessions on reference models whose function is known."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import pytest

from dcl_arc_ros.core.depth import downscale_valid_mean, fill_holes, normalise_range, sanitize_depth
from dcl_arc_ros.core.depth_cleaning import DepthCleaningPipeline
from dcl_arc_ros.core.errors import DepthError, PipelineError
from dcl_arc_ros.core.sidecar import ModelSidecar
from dcl_arc_ros.inference.backends import Model, load_model
from dcl_arc_ros.inference.reference_models import write_affine_depth_model

RANGE_0_4 = {"depth": {"kind": "range", "min_m": 0.0, "max_m": 4.0}}


def affine(tmp_path: Path, **kwargs: object) -> Model:
    path = tmp_path / "affine.onnx"
    write_affine_depth_model(path, **kwargs)  # type: ignore[arg-type]
    return load_model(path, intra_op_num_threads=1)


def scene(shape: tuple[int, int] = (48, 64), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vv, uu = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    depth = 1.0 + 0.02 * uu + 0.01 * vv + rng.normal(0, 0.01, shape).astype(np.float32)
    depth[5:12, 7:20] = np.nan
    depth[shape[0] - 2, shape[1] - 3] = 0.0
    depth[shape[0] - 1, shape[1] - 2] = np.inf
    return depth


def test_identity_same_resolution_fills_holes(tmp_path: Path) -> None:
    pipeline = DepthCleaningPipeline(affine(tmp_path, height=48, width=64))
    depth = scene()
    before = depth.copy()
    out = pipeline(depth)
    np.testing.assert_array_equal(depth, before, err_msg="input modified")
    assert out.dtype == np.float32 and out.shape == depth.shape
    np.testing.assert_allclose(out, fill_holes(depth), rtol=1e-6)
    assert np.isfinite(out).all()


def test_identity_without_filling_keeps_holes_as_nan(tmp_path: Path) -> None:
    pipeline = DepthCleaningPipeline(affine(tmp_path, height=48, width=64), fill_holes=False)
    depth = scene()
    out = pipeline(depth)
    holes = ~(np.isfinite(depth) & (depth > 0))
    np.testing.assert_array_equal(np.isnan(out), holes)
    np.testing.assert_allclose(out[~holes], depth[~holes], rtol=1e-6)


def test_range_model_at_a_smaller_deploy_resolution(tmp_path: Path) -> None:
    pipeline = DepthCleaningPipeline(affine(tmp_path, height=24, width=32, normalisation=RANGE_0_4))
    depth = scene() * 1.5  # up to ~4.1 m: some pixels beyond max_m get clipped to 4 m
    assert np.nanmax(depth[np.isfinite(depth)]) > 4.0
    out = pipeline(depth)
    # Shrink (valid pixels only), fill, clip to the range (normalisation), then grow back.
    small = np.minimum(fill_holes(downscale_valid_mean(sanitize_depth(depth)[0], (32, 24))), 4.0)
    expected = cv2.resize(small, (64, 48), interpolation=cv2.INTER_LINEAR)
    assert out.shape == (48, 64)
    np.testing.assert_allclose(out, expected, atol=2e-5)


def test_range_model_output_outside_the_range_is_nan(tmp_path: Path) -> None:
    # In normalised space y = x - 0.5 is "1 m closer": outputs at or below 0 m are invalid.
    pipeline = DepthCleaningPipeline(affine(tmp_path, offset=-0.5, height=48, width=64, normalisation=RANGE_0_4))
    depth = np.full((48, 64), 2.0, np.float32)
    depth[:, :20] = 0.8
    out = pipeline(depth)
    assert np.isnan(out[:, :20]).all()
    np.testing.assert_allclose(out[:, 20:], 1.0, atol=1e-6)


def test_metres_model_upper_bound(tmp_path: Path) -> None:
    norm = {"depth": {"kind": "metres", "min_m": 0.0, "max_m": 3.0}}
    pipeline = DepthCleaningPipeline(affine(tmp_path, scale=2.0, height=4, width=4, normalisation=norm))
    depth = np.array([[1.0, 1.5, 1.6, 0.2]] * 4, np.float32)
    out = pipeline(depth)
    np.testing.assert_allclose(out[:, [0, 1, 3]], [[2.0, 3.0, 0.4]] * 4, rtol=1e-6)
    assert np.isnan(out[:, 2]).all()


def test_valid_mask_input_marks_measured_pixels(tmp_path: Path) -> None:
    model = affine(tmp_path, height=48, width=64, with_valid_mask=True)
    depth = scene()
    measured = np.isfinite(depth) & (depth > 0)
    # The model outputs depth * mask: filled holes still get mask 0, so they come back as 0 m -> NaN.
    out = DepthCleaningPipeline(model, fill_holes=True)(depth)
    np.testing.assert_array_equal(np.isnan(out), ~measured)
    np.testing.assert_allclose(out[measured], depth[measured], rtol=1e-6)


def test_raw_output_keeps_holes_sharp(tmp_path: Path) -> None:
    # A "synthesis" model that subtracts 0.5 m: inputs at or below 0.5 m come out as holes.
    model = affine(tmp_path, offset=-0.5, height=24, width=32)
    depth = np.full((48, 64), 2.0, np.float32)
    depth[:, :16] = 0.4
    depth[:, 16:32] = 9.0
    pipeline = DepthCleaningPipeline(model, raw_output=True)
    out = pipeline(depth)
    assert out.shape == (48, 64)
    assert np.isnan(out[:, :16]).all()
    np.testing.assert_allclose(out[:, 16:32], 8.5)  # no upper clip in raw mode
    np.testing.assert_allclose(out[:, 32:], 1.5)  # nearest resize: no blended values at the hole edge
    np.testing.assert_array_equal(DepthCleaningPipeline(model).raw(depth), out)


def test_results_are_fresh_arrays(tmp_path: Path) -> None:
    pipeline = DepthCleaningPipeline(affine(tmp_path, height=8, width=8))
    first = pipeline(np.full((8, 8), 1.0, np.float32))
    kept = first.copy()
    pipeline(np.full((8, 8), 2.0, np.float32))
    np.testing.assert_array_equal(first, kept)
    resized = pipeline(np.full((16, 12), 3.0, np.float32))  # another input size reuses nothing stale
    np.testing.assert_allclose(resized, 3.0)


def test_bad_input_shapes(tmp_path: Path) -> None:
    pipeline = DepthCleaningPipeline(affine(tmp_path, height=8, width=8))
    for bad in (np.ones(5, np.float32), np.ones((0, 4), np.float32), np.ones((2, 2, 2), np.float32)):
        with pytest.raises(DepthError):
            pipeline(bad)


def test_all_invalid_input_gives_all_nan(tmp_path: Path) -> None:
    out = DepthCleaningPipeline(affine(tmp_path, height=8, width=8, normalisation=RANGE_0_4))(
        np.full((8, 8), np.nan, np.float32)
    )
    assert np.isnan(out).all()


class FakeModel:
    def __init__(self, sidecar: ModelSidecar, outputs: Mapping[str, np.ndarray] | None = None) -> None:
        self.sidecar = sidecar
        self.outputs = outputs
        self.seen: list[dict[str, np.ndarray]] = []

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.seen.append({k: np.array(v) for k, v in inputs.items()})
        return dict(self.outputs) if self.outputs is not None else {"depth_out": inputs["depth"]}


def test_network_input_is_normalised_per_sidecar(tmp_path: Path) -> None:
    sidecar = write_affine_depth_model(tmp_path / "m.onnx", height=6, width=8, normalisation=RANGE_0_4)
    fake = FakeModel(sidecar)
    depth = np.random.default_rng(3).uniform(0.5, 3.5, (6, 8)).astype(np.float32)
    depth[2, 3] = np.nan
    DepthCleaningPipeline(fake, fill_holes=False)(depth)
    fed = fake.seen[0]["depth"]
    assert fed.shape == (1, 1, 6, 8) and fed.dtype == np.float32
    expected = normalise_range(depth, 0.0, 4.0)
    expected[2, 3] = -1.0  # holes are fed as the bottom of the range
    np.testing.assert_allclose(fed[0, 0], expected, atol=1e-6)


def test_models_that_fill_holes_themselves_get_raw_holes(tmp_path: Path) -> None:
    sidecar = write_affine_depth_model(tmp_path / "m.onnx", height=6, width=8, normalisation=RANGE_0_4)
    fills = dataclasses.replace(sidecar, extra={**sidecar.extra, "fills_holes": True})
    depth = np.random.default_rng(4).uniform(0.5, 3.5, (6, 8)).astype(np.float32)
    depth[1:3, 2:5] = np.nan
    for model_sidecar, hole_fed_raw in ((sidecar, False), (fills, True)):
        fake = FakeModel(model_sidecar)
        pipeline = DepthCleaningPipeline(fake)  # fill_holes=True asked for: honoured only when the model does not fill
        pipeline(depth)
        fed = fake.seen[0]["depth"][0, 0, 1:3, 2:5]
        assert pipeline.model_fills_holes is hole_fed_raw
        if hole_fed_raw:
            np.testing.assert_array_equal(fed, -1.0)  # the bottom of the range, as in training
        else:
            assert (fed > -1.0).all()  # pre-filled with nearby measured depths


def test_sidecar_problems_are_pipeline_errors(tmp_path: Path) -> None:
    sidecar = write_affine_depth_model(tmp_path / "m.onnx", height=6, width=8)
    with pytest.raises(PipelineError, match="'rgb_to_depth'"):
        DepthCleaningPipeline(FakeModel(dataclasses.replace(sidecar, task="rgb_to_depth")))
    with pytest.raises(PipelineError, match="no normalisation entry"):
        DepthCleaningPipeline(FakeModel(dataclasses.replace(sidecar, normalisation={})))
    with pytest.raises(PipelineError, match="'mean_std'"):
        DepthCleaningPipeline(
            FakeModel(dataclasses.replace(sidecar, normalisation={"depth": {"kind": "mean_std", "mean": 0, "std": 1}}))
        )
    rgb_input = dataclasses.replace(sidecar.inputs[0], semantic="rgb")
    with pytest.raises(PipelineError, match="semantic 'depth'"):
        DepthCleaningPipeline(FakeModel(dataclasses.replace(sidecar, inputs=(rgb_input,))))
    with pytest.raises(PipelineError, match="returned"):
        DepthCleaningPipeline(FakeModel(sidecar, outputs={"other": np.zeros((1, 1, 6, 8))}))(np.ones((6, 8)))
    with pytest.raises(PipelineError, match="single"):
        DepthCleaningPipeline(FakeModel(sidecar, outputs={"depth_out": np.zeros((2, 1, 6, 8))}))(np.ones((6, 8)))


def test_growing_to_a_larger_deploy_resolution(tmp_path: Path) -> None:
    model = affine(tmp_path, height=48, width=64)
    depth = scene(shape=(24, 32))
    out = DepthCleaningPipeline(model)(depth)
    # Fill at the input size, grow bilinearly, run the identity, shrink back bilinearly.
    grown = cv2.resize(fill_holes(depth), (64, 48), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(out, cv2.resize(grown, (32, 24), interpolation=cv2.INTER_LINEAR), rtol=1e-5)
    assert np.isfinite(out).all()
    kept = DepthCleaningPipeline(model, fill_holes=False, raw_output=True)(depth)
    holes = ~(np.isfinite(depth) & (depth > 0))
    np.testing.assert_array_equal(np.isnan(kept), holes)  # nearest both ways: holes map exactly back
    np.testing.assert_allclose(kept[~holes], depth[~holes], rtol=1e-6)


def test_max_fill_px_leaves_regions_far_from_any_reading_unknown(tmp_path: Path) -> None:
    depth = scene()
    depth[:, :20] = np.nan  # a blind band 20 px wide, like a stereo camera's left edge
    full = DepthCleaningPipeline(affine(tmp_path, height=48, width=64))(depth)
    limited = DepthCleaningPipeline(affine(tmp_path, height=48, width=64), max_fill_px=5)(depth)
    assert np.isfinite(full).all()
    columns_unknown = np.isnan(limited).all(axis=0)
    # Columns 0..14 are more than 5 px from the first reading (column 20); 15..19 are filled as before.
    assert columns_unknown[:15].all() and not columns_unknown[15:].any()
    known = np.isfinite(limited)
    np.testing.assert_array_equal(limited[known], full[known])
    # The small hole of the scene (at most 4 px from a reading) is still filled.
    assert np.isfinite(limited[5:12, 20:]).all()
    with pytest.raises(PipelineError, match="max_fill_px"):
        DepthCleaningPipeline(affine(tmp_path, height=48, width=64), max_fill_px=-1)
