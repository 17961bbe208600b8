"""The depth path's fast paths give the same values as the plain decode and pipeline on fixed inputs.

Covered: 32FC1 read in place (``decode_depth(copy=False)``) against an independent REP 118 reference, for unpadded,
padded and big-endian rows, NaN / 0 / inf / negative pixels and all-NaN frames; 16UC1 with holes left at 0
(``nan_holes=False``), exhaustively over every uint16 value; the pipeline writing into a caller's buffer (``out``),
reading a read-only view, and fed 0 holes instead of NaN; and the OpenCV label order that the nearest-fill lookup
table relies on.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from dcl_arc_ros.core import depth as depth_ops
from dcl_arc_ros.core.depth_cleaning import DepthCleaningPipeline
from dcl_arc_ros.core.errors import DepthError
from dcl_arc_ros.core.image_codec import ImageFields, decode_depth, depth_and_holes_from_image
from dcl_arc_ros.inference.backends import Model, load_model
from dcl_arc_ros.inference.reference_models import write_affine_depth_model

RANGE_0_4 = {"depth": {"kind": "range", "min_m": 0.0, "max_m": 4.0}}


def pack(values: np.ndarray, encoding: str, *, pad: int = 0, bigendian: bool = False) -> ImageFields:
    """Build the message fields by hand: explicit byte order, ``pad`` junk bytes after every row."""
    dtype = np.dtype(np.float32 if encoding == "32FC1" else np.uint16).newbyteorder(">" if bigendian else "<")
    rows = values.astype(dtype).view(np.uint8).reshape(values.shape[0], -1)
    junk = np.full((values.shape[0], pad), 0xAB, np.uint8)
    data = bytearray(np.concatenate([rows, junk], axis=1).tobytes())
    return ImageFields(values.shape[0], values.shape[1], encoding, bigendian, rows.shape[1] + pad, data)


def reference_metres(values: np.ndarray) -> tuple[np.ndarray, int, int, int]:
    """REP 118 by definition, pixel by pixel: (depth with NaN where not finite or <= 0, holes, infinite, negative)."""
    flat = [float(v) for v in values.ravel()]
    depth = np.array([v if math.isfinite(v) and v > 0 else math.nan for v in flat], np.float32)
    holes = sum(not (math.isfinite(v) and v > 0) for v in flat)
    return depth.reshape(values.shape), holes, sum(math.isinf(v) for v in flat), sum(v < 0 for v in flat)


def frame(kind: str, shape: tuple[int, int] = (6, 9)) -> np.ndarray:
    rng = np.random.default_rng(7)
    values = rng.uniform(0.2, 5.0, shape).astype(np.float32)
    if kind == "nan_holes":
        values[1, 2:5] = np.nan
    elif kind == "bad_pixels":
        values[0, 0], values[1, 1], values[2, 2], values[3, 3], values[4, 4] = np.nan, 0.0, np.inf, -np.inf, -0.5
    elif kind == "all_nan":
        values[:] = np.nan
    return values


@pytest.mark.parametrize("kind", ["no_holes", "nan_holes", "bad_pixels", "all_nan"])
@pytest.mark.parametrize(("pad", "bigendian"), [(0, False), (4, False), (0, True), (3, True)])
def test_32fc1_decode_matches_rep118_reference_with_and_without_copy(kind: str, pad: int, bigendian: bool) -> None:
    values = frame(kind)
    img = pack(values, "32FC1", pad=pad, bigendian=bigendian)
    expected, holes, infinite, negative = reference_metres(values)
    for copy in (True, False):
        decoded = decode_depth(img, copy=copy)
        np.testing.assert_array_equal(decoded.depth_m, expected)  # NaN where NaN, equal values elsewhere
        assert decoded.depth_m.dtype == np.float32 and decoded.depth_m.dtype.isnative
        assert (decoded.holes, decoded.infinite, decoded.negative) == (holes, infinite, negative)
        assert decoded.valid == values.size - holes
        assert decoded.any_valid == (holes < values.size)
    assert depth_and_holes_from_image(img)[1] == holes


@pytest.mark.parametrize("kind", ["no_holes", "nan_holes"])
def test_32fc1_in_rep118_form_is_a_read_only_view_only_when_asked(kind: str) -> None:
    img = pack(frame(kind), "32FC1")
    view = decode_depth(img, copy=False).depth_m
    raw = np.frombuffer(img.data, np.uint8)
    assert np.shares_memory(view, raw) and not view.flags.writeable
    with pytest.raises(ValueError):
        view[0, 0] = 1.0  # the message's bytes are never written through the view
    copied = decode_depth(img).depth_m
    assert not np.shares_memory(copied, raw) and copied.flags.writeable


@pytest.mark.parametrize(
    ("kind", "pad", "bigendian"), [("bad_pixels", 0, False), ("nan_holes", 4, False), ("nan_holes", 0, True)]
)
def test_32fc1_that_needs_decoding_is_never_a_view(kind: str, pad: int, bigendian: bool) -> None:
    img = pack(frame(kind), "32FC1", pad=pad, bigendian=bigendian)
    depth = decode_depth(img, copy=False).depth_m
    assert not np.shares_memory(depth, np.frombuffer(img.data, np.uint8))
    assert depth.flags.c_contiguous and depth.flags.writeable


def test_16uc1_every_value_decodes_as_millimetres_times_float32_thousandth() -> None:
    """All 65536 values, both byte orders, padded: the widening copy + in-place scale is the one-step product."""
    mm = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    expected = np.multiply(mm, np.float32(0.001), dtype=np.float32)  # the formula the codec always used
    expected_nan = expected.copy()
    expected_nan[mm == 0] = np.nan
    for pad, bigendian in ((0, False), (6, True)):
        img = pack(mm, "16UC1", pad=pad, bigendian=bigendian)
        with_nan = decode_depth(img)
        with_zero = decode_depth(img, nan_holes=False)
        np.testing.assert_array_equal(with_nan.depth_m, expected_nan)
        np.testing.assert_array_equal(with_zero.depth_m, expected)
        assert with_nan.holes == with_zero.holes == 1 and with_zero.valid == mm.size - 1


def test_16uc1_without_holes_is_the_same_either_way() -> None:
    mm = np.full((4, 5), 1234, np.uint16)
    img = pack(mm, "16UC1")
    np.testing.assert_array_equal(decode_depth(img).depth_m, decode_depth(img, nan_holes=False).depth_m)
    assert decode_depth(img).holes == 0


# --- the pipeline ----------------------------------------------------------------------------------------------------


def affine(tmp_path: Path, **kwargs: object) -> Model:
    path = tmp_path / "affine.onnx"
    write_affine_depth_model(path, **kwargs)  # type: ignore[arg-type]
    return load_model(path, intra_op_num_threads=1)


def millimetre_scene(shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    rng = np.random.default_rng(3)
    mm = rng.integers(400, 3500, shape).astype(np.uint16)
    mm[rng.random(shape) < 0.08] = 0
    mm[10:20, 5:30] = 0
    return mm


@pytest.mark.parametrize("normalisation", [None, RANGE_0_4])
@pytest.mark.parametrize("deploy", [(48, 64), (24, 32)])
@pytest.mark.parametrize("fill_holes", [True, False])
def test_pipeline_output_is_the_same_from_zero_holes_nan_holes_and_a_read_only_view(
    tmp_path: Path, normalisation: dict | None, deploy: tuple[int, int], fill_holes: bool
) -> None:
    model = affine(tmp_path, height=deploy[0], width=deploy[1], scale=1.0, offset=0.0, normalisation=normalisation)
    pipeline = DepthCleaningPipeline(model, fill_holes=fill_holes)
    img16 = pack(millimetre_scene(), "16UC1")
    reference = pipeline(decode_depth(img16).depth_m)  # the REP 118 input: NaN holes, a fresh array
    np.testing.assert_array_equal(pipeline(decode_depth(img16, nan_holes=False).depth_m), reference)
    metres = decode_depth(img16).depth_m
    view = decode_depth(pack(metres, "32FC1"), copy=False).depth_m
    assert not view.flags.writeable
    np.testing.assert_array_equal(pipeline(view), reference)
    if deploy == metres.shape:  # at the deploy size, holes are filled or stay NaN, nothing in between
        assert np.isnan(reference).any() == (not fill_holes)


@pytest.mark.parametrize("normalisation", [None, RANGE_0_4])
@pytest.mark.parametrize("deploy", [(48, 64), (24, 32)])
def test_pipeline_writes_into_out_exactly_what_it_returns_otherwise(
    tmp_path: Path, normalisation: dict | None, deploy: tuple[int, int]
) -> None:
    model = affine(tmp_path, height=deploy[0], width=deploy[1], scale=0.5, offset=0.25, normalisation=normalisation)
    pipeline = DepthCleaningPipeline(model)
    depth = decode_depth(pack(millimetre_scene(), "16UC1")).depth_m
    expected = pipeline(depth)
    out = np.full(depth.shape, -7.0, np.float32)
    returned = pipeline(depth, out=out)
    assert returned is out
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(pipeline.raw(depth, out=out), pipeline.raw(depth))


def test_pipeline_refuses_an_out_it_cannot_write(tmp_path: Path) -> None:
    pipeline = DepthCleaningPipeline(affine(tmp_path, height=48, width=64))
    depth = decode_depth(pack(millimetre_scene(), "16UC1")).depth_m
    read_only = np.empty(depth.shape, np.float32)
    read_only.flags.writeable = False
    for bad in (np.empty((48, 63), np.float32), np.empty(depth.shape, np.float64), read_only):
        with pytest.raises(DepthError, match="out must be"):
            pipeline(depth, out=bad)


# --- the nearest-fill lookup table -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(120, 160), (7, 5), (61, 81)])
def test_opencv_numbers_valid_pixels_in_raster_order(shape: tuple[int, int]) -> None:
    """The fill's lookup table is the valid values in boolean-selection order; this pins the OpenCV behaviour."""
    valid = np.random.default_rng(shape[0]).random(shape) < 0.6
    _, labels = cv2.distanceTransformWithLabels((~valid).view(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    np.testing.assert_array_equal(labels[valid], np.arange(1, int(valid.sum()) + 1))


def test_nearest_fill_gives_every_hole_a_measured_value_at_its_nearest_valid_pixel() -> None:
    """Exact fill (no grid): each hole takes the value of a valid pixel at the (3x3-L2) nearest distance."""
    rng = np.random.default_rng(11)
    depth = rng.uniform(0.5, 3.0, (30, 40)).astype(np.float32)
    valid = rng.random(depth.shape) < 0.7
    out = np.empty_like(depth)
    depth_ops.fill_nearest_into(depth, valid, out, max_grid_pixels=depth.size)
    np.testing.assert_array_equal(out[valid], depth[valid])
    ys, xs = np.nonzero(valid)
    for y, x in zip(*np.nonzero(~valid), strict=True):
        distances = np.hypot(ys - y, xs - x)
        source = np.isclose(depth[ys, xs], out[y, x]) & (distances <= distances.min() + 1.0)
        assert source.any(), f"hole ({y}, {x}) took {out[y, x]}, not a value of a nearest valid pixel"


# --- the model writing straight into the result ---------------------------------------------------------------------


class RunOnly:
    """The same model without ``run_into``: the pipeline then copies the output out of the model's own array."""

    def __init__(self, model: Model) -> None:
        self.sidecar = model.sidecar
        self.provider = model.provider
        self.run = model.run


@pytest.mark.parametrize("normalisation", [None, RANGE_0_4])
@pytest.mark.parametrize("deploy", [(48, 64), (24, 32), (64, 48)])
@pytest.mark.parametrize("raw", [False, True])
def test_model_writing_into_the_result_gives_the_copied_result(
    tmp_path: Path, normalisation: dict | None, deploy: tuple[int, int], raw: bool
) -> None:
    model = affine(tmp_path, height=deploy[0], width=deploy[1], scale=0.9, offset=0.05, normalisation=normalisation)
    assert hasattr(model, "run_into")
    direct, copied = DepthCleaningPipeline(model), DepthCleaningPipeline(RunOnly(model))  # type: ignore[arg-type]
    depth = decode_depth(pack(millimetre_scene(), "16UC1")).depth_m
    run = (lambda p, **kw: p.raw(depth, **kw)) if raw else (lambda p, **kw: p(depth, **kw))
    expected = run(copied)
    np.testing.assert_array_equal(run(direct), expected)
    out = np.full(depth.shape, 5.0, np.float32)
    assert run(direct, out=out) is out
    np.testing.assert_array_equal(out, expected)


def test_run_into_writes_the_output_of_run_into_the_given_array(tmp_path: Path) -> None:
    model = affine(tmp_path, height=6, width=8, scale=2.0, offset=-1.0)
    depth = np.random.default_rng(5).uniform(0.5, 3.0, (1, 1, 6, 8)).astype(np.float32)
    expected = model.run({"depth": depth})
    target = np.zeros((6, 8), np.float32)
    got = model.run_into({"depth": depth}, {"depth_out": target})  # type: ignore[attr-defined]
    assert got["depth_out"] is target
    np.testing.assert_array_equal(target, expected["depth_out"].reshape(6, 8))


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (np.zeros((6, 7), np.float32), "cannot be written into"),
        (np.zeros((6, 8), np.float64), "needs a writable C-contiguous float32"),
        (np.zeros((8, 6), np.float32).T, "needs a writable C-contiguous float32"),
    ],
)
def test_run_into_refuses_an_array_it_cannot_fill(tmp_path: Path, target: np.ndarray, message: str) -> None:
    from dcl_arc_ros.inference.errors import InferenceRunError

    model = affine(tmp_path, height=6, width=8)
    depth = np.ones((1, 1, 6, 8), np.float32)
    with pytest.raises(InferenceRunError, match=message):
        model.run_into({"depth": depth}, {"depth_out": target})  # type: ignore[attr-defined]
    with pytest.raises(InferenceRunError, match="no output named"):
        model.run_into({"depth": depth}, {"nope": np.zeros((6, 8), np.float32)})  # type: ignore[attr-defined]
