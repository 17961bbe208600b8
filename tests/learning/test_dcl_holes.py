"""How a DCL generator learns holes: viewing rays, losses on the pre-hole depth, the hole-rate prior, and export."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dcl_arc_ros.core.sidecar import read_sidecar
from dcl_arc_ros.learning.checkpoint import save_checkpoint
from dcl_arc_ros.learning.config import DepthRange
from dcl_arc_ros.learning.errors import ConfigError, DatasetError, ExportError
from dcl_arc_ros.learning.export import export_checkpoint
from dcl_arc_ros.learning.losses.holes import HoleRatePrior
from dcl_arc_ros.learning.nets.blocks import normalise_depth
from dcl_arc_ros.learning.nets.resnet_generator import ResnetGeneratorConfig, ray_map
from dcl_arc_ros.learning.registry import NetworkSpec
from dcl_arc_ros.learning.trainers.dcl import (
    DCL_PRESETS,
    DataConfig,
    GeneratorSynthesizer,
    LossWeights,
    SynthesisTask,
    ToyDepthDataset,
    config_for_method,
    load_dcl_config,
    make_task,
)
from dcl_arc_ros.learning.trainers.loop import LoopConfig, seed_everything

torch.set_num_threads(1)


def _cfg(*, rays: bool = False, hole_losses: str = "output", method: str = "dcl", **weights: float):
    cfg = config_for_method(DCL_PRESETS["tiny"], method)
    gen = dataclasses.replace(cfg.generator, ray_channels=2 if rays else 0, hole_bias_init=0.0)
    return dataclasses.replace(
        cfg,
        generator=gen,
        hole_losses=hole_losses,
        weights=dataclasses.replace(LossWeights(), **weights),
        data=DataConfig(depth_range=DepthRange(0.0, 3.0)),
        loop=LoopConfig(max_steps=1, batch_size=4, progress=False, checkpoint_every=1000, seed=0),
    )


def _batch() -> dict[str, dict[str, torch.Tensor]]:
    data = {"source": ToyDepthDataset(8, seed=1), "real": ToyDepthDataset(8, seed=2, real_like=True)}
    return {name: next(iter(DataLoader(ds, batch_size=4))) for name, ds in data.items()}


def _hole_head(task: SynthesisTask) -> tuple[torch.Tensor, torch.Tensor]:
    conv = task.generator.head[-1]
    c = task.cfg.generator.out_channels
    return conv.weight[c:].detach().clone(), conv.bias[c:].detach().clone()


def test_ray_map_of_a_crop_equals_the_same_pixels_of_the_whole_frame() -> None:
    fx, fy, cx, cy = 500.0, 510.0, 319.5, 239.5
    full = ray_map(torch.tensor([[fx, fy, cx, cy]]), 480, 640)
    x0, y0 = 200, 96  # a crop's intrinsics: the principal point moves by the crop's corner
    crop = ray_map(torch.tensor([[fx, fy, cx - x0, cy - y0]]), 48, 64)
    assert torch.allclose(crop, full[..., y0 : y0 + 48, x0 : x0 + 64])
    assert full[0, 0, 0, 0] == pytest.approx(-cx / fx) and full[0, 1, 0, 0] == pytest.approx(-cy / fy)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        ray_map(torch.zeros(3), 4, 4)


def test_a_ray_aware_generator_needs_rays_and_its_holes_depend_on_them() -> None:
    seed_everything(0)
    gen = NetworkSpec("resnet_generator", ResnetGeneratorConfig(ngf=8, n_blocks=1, ray_channels=2)).build().eval()
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    with pytest.raises(ValueError, match="ray_channels=2"):
        gen(x)
    left = ray_map(torch.tensor([[16.0, 16.0, 7.5, 7.5]]), 16, 16)
    right = ray_map(torch.tensor([[16.0, 16.0, -200.0, 7.5]]), 16, 16)  # the same crop further right in the frame
    with torch.no_grad():
        a = gen.forward_parts(x, rays=left).hole_logit
        b = gen.forward_parts(x, rays=right).hole_logit
    assert a is not None and b is not None and not torch.allclose(a, b)
    with pytest.raises(ConfigError, match="ray_channels"):
        ResnetGeneratorConfig(ray_channels=1)


@pytest.mark.parametrize("method", ["dcl", "cut"])
def test_with_losses_on_the_depth_channel_only_the_adversarial_term_moves_the_hole_head(method: str) -> None:
    # adv = 0 and no rate prior: in "depth" mode nothing may reach the hole logit; in "output" mode the other terms
    # (L_idt and L_dc, or PatchNCE) do.
    for mode, moves in (("depth", False), ("output", True)):
        seed_everything(0)
        task = SynthesisTask(_cfg(hole_losses=mode, method=method, adv=0.0))
        w0, b0 = _hole_head(task)
        logs = task.train_step(_batch(), 0)
        w1, b1 = _hole_head(task)
        assert np.isfinite(logs["loss"])
        assert (not torch.equal(w0, w1) or not torch.equal(b0, b1)) == moves, (method, mode)


def test_per_method_settings_apply_to_their_method_only() -> None:
    raw = {
        "preset": "tiny",
        "weights": {"dc": 2.0},
        "per_method": {"dcl": {"hole_losses": "depth", "generator": {"ray_channels": 2}}},
    }
    dcl = load_dcl_config(raw, source="t")
    assert (dcl.hole_losses, dcl.generator.ray_channels, dcl.weights.dc) == ("depth", 2, 2.0)
    rgb = load_dcl_config(raw, source="t", method="dcl_rgb")
    assert (rgb.hole_losses, rgb.generator.ray_channels, rgb.generator.rgb_channels) == ("output", 0, 3)
    assert load_dcl_config(raw, source="t", method="cyclegan").generator.ray_channels == 0
    for bad in ({"dcll": {}}, {"dcl": {"method": "cut"}}, {"dcl": 3}):
        with pytest.raises(ConfigError, match="per_method"):
            load_dcl_config({**raw, "per_method": bad}, source="t")


def test_identity_on_the_depth_channel_counts_only_pixels_where_the_real_frame_has_a_reading() -> None:
    seed_everything(0)
    task = SynthesisTask(_cfg(hole_losses="depth", adv=0.0, dc=0.0))
    batch = _batch()
    rng = task.cfg.data.depth_range
    d_s, d_r = (normalise_depth(batch[k]["depth"], rng) for k in ("source", "real"))
    has = d_r > -1.0 + 1e-6
    assert (~has).any()  # the toy real frames have holes, so the mask matters
    with torch.no_grad():  # the step's own forward: source and real in one batch (BatchNorm sees both)
        depth = copy.deepcopy(task.generator).forward_parts(torch.cat([d_s, d_r])).depth[d_s.shape[0] :]
    want = float((depth - d_r).abs()[has].mean())
    everywhere = float((depth - d_r).abs().mean())
    logs = task.train_step(batch, 0)
    assert logs["idt"] == pytest.approx(want, rel=1e-4)
    assert abs(want - everywhere) > 1e-3  # counting the holes too would have given a different number


def test_hole_rate_prior_counts_the_holes_really_cut_and_pulls_towards_the_real_fraction() -> None:
    prior = HoleRatePrior()
    real = torch.zeros(1, 1, 4, 5)
    real[..., :2, :] = -1.0  # 50 % holes
    prior.observe(real, hole_value=-1.0)
    prior.observe(torch.zeros(1, 1, 4, 5), hole_value=-1.0)  # rates accumulate over batches: 20 of 40 pixels, 25 %
    logit = torch.full((1, 1, 4, 5), -0.2, requires_grad=True)  # p = 0.45 everywhere: no hard hole at all
    loss = prior.loss(logit)
    assert loss.item() == pytest.approx(0.25**2)  # the soft mean (0.45) would have given 0.04
    loss.backward()
    assert logit.grad is not None and bool((logit.grad < 0).all())  # gradient descent raises every logit
    with pytest.raises(ConfigError, match="hole_rate"):
        dataclasses.replace(_cfg(), weights=LossWeights(hole_rate=-1.0))
    with pytest.raises(ConfigError, match="hole_losses"):
        dataclasses.replace(_cfg(), hole_losses="everywhere")
    with pytest.raises(ConfigError, match="ray_channels"):
        dataclasses.replace(_cfg(), hole_rate_bins=(8, 1))


def test_a_binned_hole_rate_prior_learns_where_the_real_holes_are() -> None:
    # Real frames: a hole band on the left third of the camera. The prior binned along x must ask for holes there
    # and nowhere else, from crops that each cover only part of the frame.
    k = torch.tensor([[40.0, 40.0, 59.5, 19.5]])
    frame_rays = ray_map(k, 40, 120)
    prior = HoleRatePrior(bins=(6, 1), extent=1.5)
    for x0 in (0, 30, 60, 90):  # four real crops, 30 pixels wide
        crop = torch.zeros(1, 1, 40, 30)
        crop[..., : max(0, 40 - x0)] = -1.0  # columns < 40 of the frame are holes
        prior.observe(crop, -1.0, frame_rays[..., x0 : x0 + 30])
    rates = prior.real_rates()
    assert rates[0] == 1.0 and rates[-1] == 0.0
    logit = torch.zeros(1, 1, 40, 120, requires_grad=True)  # a synthesizer at the threshold everywhere
    prior.loss(logit - 1e-3, frame_rays).backward()
    grad = logit.grad
    assert grad is not None
    assert bool((grad[..., :30] < 0).all())  # left: raise the logits (more holes)
    assert bool((grad[..., -30:] == 0).all())  # right: no holes and none wanted
    with pytest.raises(ValueError, match="rays"):
        prior.loss(logit)


def test_rate_prior_and_rays_train_and_the_synthesizer_needs_intrinsics(tmp_path: Path) -> None:
    seed_everything(0)
    cfg = _cfg(rays=True, hole_losses="depth", hole_rate=10.0)
    task = make_task(cfg)
    assert isinstance(task, SynthesisTask)
    assert task.disc_spec.config.in_channels == 3  # the discriminator judges depth beside the same rays
    logs = task.train_step(_batch(), 0)
    assert {"hole_rate", "fake_hole_fraction"} <= set(logs)
    no_k = _batch()
    del no_k["source"]["intrinsics"]
    with pytest.raises(DatasetError, match="intrinsics"):
        task.train_step(no_k, 1)
    with pytest.raises(ConfigError, match="ray_channels"):
        make_task(config_for_method(cfg, "cyclegan"))

    synth = GeneratorSynthesizer(task.generator, cfg.data.depth_range)
    clean = _batch()["source"]
    with pytest.raises(ValueError, match="intrinsics"):
        synth(clean["depth"])
    out = synth(clean["depth"], intrinsics=clean["intrinsics"])
    assert out.shape == clean["depth"].shape and float(out.min()) >= 0.0


def test_a_ray_aware_generator_exports_with_the_cameras_rays_baked_in(tmp_path: Path) -> None:
    seed_everything(0)
    spec = NetworkSpec("resnet_generator", ResnetGeneratorConfig(ngf=8, n_blocks=1, ray_channels=2))
    net = spec.build().eval()
    run = {"data": {"depth_range": {"min_m": 0.0, "max_m": 3.0}}}
    ckpt = save_checkpoint(tmp_path / "g.pt", step=3, networks={"generator": (spec, net)}, run_config=run)
    with pytest.raises(ExportError, match="--intrinsics"):
        export_checkpoint(ckpt, tmp_path / "g.onnx", height=32, width=48)
    k = (40.0, 40.0, 23.5, 15.5)
    result = export_checkpoint(ckpt, tmp_path / "g.onnx", height=32, width=48, intrinsics=k)
    assert result.parity.max_rel <= 1e-4
    sidecar = read_sidecar(result.sidecar_path)
    assert [t.name for t in sidecar.inputs] == ["depth"]
    assert sidecar.extra["rays_from_intrinsics"] == {"fx": 40.0, "fy": 40.0, "cx": 23.5, "cy": 15.5}

    import onnxruntime as ort

    x = torch.rand(1, 1, 32, 48) * 2 - 1
    got = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"]).run(
        None, {"depth": x.numpy()}
    )
    with torch.no_grad():
        want = net(x, rays=ray_map(torch.tensor([k]), 32, 48)).numpy()
    assert np.max(np.abs(got[0] - want)) <= 1e-4 * max(float(np.max(np.abs(want))), 1e-6)

    plain = NetworkSpec("resnet_generator", ResnetGeneratorConfig(ngf=8, n_blocks=1))
    ckpt2 = save_checkpoint(tmp_path / "p.pt", step=1, networks={"generator": (plain, plain.build())}, run_config=run)
    with pytest.raises(ExportError, match="only for generators with ray_channels"):
        export_checkpoint(ckpt2, tmp_path / "p.onnx", height=32, width=48, intrinsics=k)


def test_the_hole_probe_compares_synthesized_and_real_holes_pixel_by_pixel(
    tmp_path: Path, load_script: Callable[[str], ModuleType]
) -> None:
    probe = load_script("training/probe_dcl_holes.py")

    real = torch.zeros(1, 1, 4, 10, dtype=torch.bool)
    real[..., :2] = True  # the left band: 2 of 10 columns
    synth = torch.zeros_like(real)
    synth[..., 1:3] = True  # one band column right, one wrong
    row = probe.hole_placement(synth, real, band=0.2)
    assert row["holes"] == pytest.approx(0.2)
    assert row["iou_real_holes"] == pytest.approx(4 / 12)
    assert row["holes_left_band"] == pytest.approx(0.5)
    assert row["holes_elsewhere"] == pytest.approx(4 / 32)
    assert probe.main([str(tmp_path / "no_run")]) == 2  # a run without a checkpoint is named, not a traceback
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "latest.pt").write_bytes(b"")
    assert probe.main([str(tmp_path / "run"), "--data", str(tmp_path / "no_bags")]) == 2  # bad data: named too
