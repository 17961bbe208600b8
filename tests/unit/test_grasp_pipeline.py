"""GraspPipeline with a fake model: input preparation, crop/resize bookkeeping, ranking and deprojection."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.errors import PipelineError
from dcl_arc_ros.core.grasp_pipeline import GraspPipeline, prepare_ggcnn_input
from dcl_arc_ros.core.grasps import GraspDecodeParams
from dcl_arc_ros.core.sidecar import ModelSidecar, TensorSpec

NET = 50


def _sidecar(task: str = "grasp_maps") -> ModelSidecar:
    outs = tuple(TensorSpec(n, (1, 1, NET, NET), "float32", f"grasp_{n}") for n in ("quality", "cos2", "sin2", "width"))
    return ModelSidecar(
        name="fake_ggcnn",
        task=task,
        model_version="0",
        inputs=(TensorSpec("depth", (1, 1, NET, NET), "float32", "depth"),),
        outputs=outs,
        deploy_resolution=(NET, NET),
        normalisation={},
        training_config_sha256="0" * 64,
    )


class _FakeGraspModel:
    """Two quality blobs (net pixels (25, 20) strong, (10, 38) weaker), constant angle and width."""

    def __init__(self, angle: float = 0.3, width_px: float = 12.0) -> None:
        self.sidecar = _sidecar()
        self.angle, self.width_px = angle, width_px
        self.inputs: list[np.ndarray] = []

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = np.asarray(inputs["depth"])
        self.inputs.append(x)
        yy, xx = np.mgrid[0:NET, 0:NET]
        q = 0.9 * np.exp(-((xx - 25) ** 2 + (yy - 20) ** 2) / 8.0)
        q += 0.6 * np.exp(-((xx - 10) ** 2 + (yy - 38) ** 2) / 8.0)
        full = np.ones((1, 1, NET, NET), np.float32)
        return {
            "quality": q[None, None].astype(np.float32),
            "cos2": full * math.cos(2 * self.angle),
            "sin2": full * math.sin(2 * self.angle),
            "width": full * np.float32(self.width_px / 150.0),
        }


K = Intrinsics(fx=200.0, fy=200.0, cx=79.5, cy=59.5, width=160, height=120)


def _depth() -> np.ndarray:
    depth = np.full((120, 160), 0.75, np.float32)
    depth[30:60, 60:100] = 0.70
    depth[::7, ::5] = np.nan  # holes everywhere, including at the grasp pixels
    depth[0:10, :] = 0.0
    return depth


def test_prepare_input_fills_and_normalises() -> None:
    x = prepare_ggcnn_input(_depth()[10:110, 30:130], (NET, NET))
    assert x is not None and x.shape == (1, 1, NET, NET) and x.dtype == np.float32
    assert np.all(np.isfinite(x)) and abs(float(x.mean())) < 1e-4 and x.max() <= 1.0 and x.min() >= -1.0
    assert prepare_ggcnn_input(np.full((20, 20), np.nan, np.float32), (NET, NET)) is None


def test_pipeline_maps_grasps_back_to_full_image() -> None:
    model = _FakeGraspModel()
    pipe = GraspPipeline(model, crop_size=100, decode=GraspDecodeParams(min_distance=5, threshold=0.2))
    det = pipe.detect(_depth(), K)
    assert det.window.side == 100 and (det.window.x0, det.window.y0) == (30, 10)
    assert model.inputs[0].shape == (1, 1, NET, NET) and np.all(np.isfinite(model.inputs[0]))
    assert len(det.grasps) == 2
    best, second = det.grasps
    assert best.quality > second.quality
    # net pixel (25, 20) -> full image 30 + (25 + 0.5) * 2 - 0.5 = 80.5, 10 + (20 + 0.5) * 2 - 0.5 = 50.5
    assert (best.rect.cx, best.rect.cy) == pytest.approx((80.5, 50.5))
    assert best.rect.width_px == pytest.approx(24.0, rel=1e-4)  # 12 network px = 24 image px
    assert best.angle == pytest.approx(0.3, abs=1e-4)
    np.testing.assert_allclose(best.position, K.deproject(80.5, 50.5, 0.70), atol=1e-6)
    assert best.width_m == pytest.approx(24.0 * 0.70 / 200.0, rel=1e-4)
    assert (second.rect.cx, second.rect.cy) == pytest.approx((30 + 10.5 * 2 - 0.5, 10 + 38.5 * 2 - 0.5))
    np.testing.assert_allclose(det.rects[:, 5], [g.quality for g in det.grasps])
    assert pipe(_depth(), K)[0].quality == pytest.approx(best.quality)


def test_a_wider_image_gets_a_crop_with_the_same_field_of_view() -> None:
    # The scene of _depth() at twice the resolution: same camera, every pixel doubled.
    wide = Intrinsics(fx=400.0, fy=400.0, cx=159.5, cy=119.5, width=320, height=240)
    depth = np.repeat(np.repeat(_depth(), 2, axis=0), 2, axis=1)
    decode = GraspDecodeParams(min_distance=5, threshold=0.2)
    narrow = GraspPipeline(_FakeGraspModel(), crop_size=100, decode=decode, working_width=160).detect(_depth(), K)
    det = GraspPipeline(_FakeGraspModel(), crop_size=100, decode=decode, working_width=160).detect(depth, wide)
    assert det.window.side == 200 and (det.window.x0, det.window.y0) == (60, 20)
    assert len(det.grasps) == len(narrow.grasps) == 2
    for g, n in zip(det.grasps, narrow.grasps, strict=True):
        assert (g.rect.cx, g.rect.cy) == pytest.approx((2 * n.rect.cx + 0.5, 2 * n.rect.cy + 0.5))
        assert g.width_m == pytest.approx(n.width_m, rel=1e-4)  # the same grasp in metres
    full = GraspPipeline(_FakeGraspModel(), crop_size=100, decode=decode, working_width=0).detect(depth, wide)
    assert full.window.side == 100
    with pytest.raises(PipelineError, match="working_width"):
        GraspPipeline(_FakeGraspModel(), working_width=-1)


def test_all_invalid_depth_gives_no_grasps() -> None:
    model = _FakeGraspModel()
    det = GraspPipeline(model).detect(np.full((120, 160), np.nan, np.float32), K)
    assert det.grasps == [] and det.maps is None and model.inputs == []


def test_threshold_and_max_grasps_are_honoured() -> None:
    pipe = GraspPipeline(
        _FakeGraspModel(), crop_size=100, decode=GraspDecodeParams(min_distance=5, threshold=0.2, max_grasps=1)
    )
    assert len(pipe(_depth(), K)) == 1
    pipe = GraspPipeline(_FakeGraspModel(), crop_size=100, decode=GraspDecodeParams(min_distance=5, threshold=0.95))
    assert pipe(_depth(), K) == []


def test_wrong_task_is_rejected() -> None:
    model = _FakeGraspModel()
    model.sidecar = _sidecar(task="pose")
    with pytest.raises(PipelineError, match="grasp_maps"):
        GraspPipeline(model)
