"""ONNX export: torch.export-based exporter, real onnxruntime parity (<= 1e-4 relative), sidecar from the config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dcl_arc_ros.core.sidecar import read_sidecar
from dcl_arc_ros.learning.checkpoint import save_checkpoint
from dcl_arc_ros.learning.errors import ExportError, ParityError
from dcl_arc_ros.learning.export import check_parity, export_checkpoint, torch_to_onnx
from dcl_arc_ros.learning.registry import NetworkSpec

torch.set_num_threads(1)

RUN_CONFIG = {"data": {"depth_range": {"min_m": 0.0, "max_m": 3.0}}}


def _trained_looking(spec: NetworkSpec, *inputs: torch.Tensor) -> torch.nn.Module:
    torch.manual_seed(1)
    net = spec.build()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    net.train()
    net(*inputs)  # moves BatchNorm running statistics away from (0, 1)
    return net.eval()


@pytest.mark.parametrize(
    ("kind", "preset_name", "overrides", "names"),
    [
        ("resnet_generator", "tiny", {}, ("depth",)),
        ("resnet_generator", "tiny_rgb", {}, ("depth", "rgb")),
        ("resnet_generator", "tiny", {"input_skip": True, "hole_head": "soft"}, ("depth",)),
        ("unet", "tiny", {}, ("depth",)),
        ("unet", "deploy", {}, ("depth",)),
        ("unet", "deploy", {"refine_channels": 4}, ("depth",)),
        ("unet", "tiny_normals", {}, ("depth",)),
    ],
)
def test_export_checkpoint_parity_and_sidecar(
    tmp_path: Path, kind: str, preset_name: str, overrides: dict[str, object], names: tuple[str, ...]
) -> None:
    spec = NetworkSpec.from_preset(kind, preset_name, **overrides)
    example = [torch.rand(2, 1, 32, 48) * 2 - 1] + ([torch.rand(2, 3, 32, 48)] if "rgb" in names else [])
    net = _trained_looking(spec, *example)
    ckpt = save_checkpoint(tmp_path / "run.pt", step=11, networks={"net": (spec, net)}, run_config=RUN_CONFIG)

    result = export_checkpoint(ckpt, tmp_path / "model.onnx", height=32, width=64)

    assert result.parity.max_rel <= 1e-4
    assert result.parity.provider == "CPUExecutionProvider"
    sidecar = read_sidecar(result.sidecar_path)
    assert [t.name for t in sidecar.inputs] == list(names)
    assert sidecar.inputs[0].shape == (1, 1, 32, 64)
    assert sidecar.deploy_resolution == (32, 64)
    assert sidecar.normalisation["depth"] == {"kind": "range", "min_m": 0.0, "max_m": 3.0, "invalid_value_m": 0.0}
    assert sidecar.extra["checkpoint_step"] == 11
    assert sidecar.extra["network_kind"] == kind
    assert len(sidecar.training_config_sha256) == 64
    if kind == "unet":
        assert sidecar.extra["fills_holes"] is True
        ds = spec.config.internal_downsample
        assert sidecar.extra["internal_resolution"] == [32 // ds, 64 // ds]
    else:
        assert sidecar.extra["outputs_holes"] is True

    # Independent check on fresh inputs: the artefact alone (onnxruntime) against the torch net.
    import onnxruntime as ort

    sess = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    feeds = [torch.rand(1, 1, 32, 64) * 2 - 1] + ([torch.rand(1, 3, 32, 64)] if "rgb" in names else [])
    got = sess.run(None, {n: t.numpy() for n, t in zip(names, feeds, strict=True)})[0]
    with torch.no_grad():
        want = net(*feeds).numpy()
    assert np.max(np.abs(got - want)) <= 1e-4 * max(np.max(np.abs(want)), 1e-6)


def test_export_flags_are_validated(tmp_path: Path) -> None:
    spec = NetworkSpec.from_preset("unet", "deploy")
    ckpt = save_checkpoint(tmp_path / "run.pt", step=1, networks={"net": (spec, spec.build())}, run_config=RUN_CONFIG)
    with pytest.raises(ExportError, match="multiples of 4"):
        export_checkpoint(ckpt, tmp_path / "m.onnx", height=33, width=64)
    disc = NetworkSpec.from_preset("patchgan", "tiny")
    ckpt_d = save_checkpoint(tmp_path / "d.pt", step=1, networks={"d": (disc, disc.build())}, run_config=RUN_CONFIG)
    with pytest.raises(ExportError, match="patchgan"):
        export_checkpoint(ckpt_d, tmp_path / "d.onnx", height=32, width=32)
    no_range = save_checkpoint(tmp_path / "n.pt", step=1, networks={"net": (spec, spec.build())}, run_config={})
    with pytest.raises(ExportError, match="depth_range"):
        export_checkpoint(no_range, tmp_path / "n.onnx", height=32, width=32)


def test_parity_check_detects_a_different_model(tmp_path: Path) -> None:
    spec = NetworkSpec.from_preset("unet", "tiny")
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    net = _trained_looking(spec, x)
    path = torch_to_onnx(net, (x,), tmp_path / "a.onnx", input_names=("depth",), output_names=("depth_out",))
    assert check_parity(path, net, (x,)).ok
    other = _trained_looking(NetworkSpec.from_preset("unet", "tiny", residual=False), x)
    with pytest.raises(ParityError, match=r"a\.onnx"):
        check_parity(path, other, (x,))
    report = check_parity(path, other, (x,), raise_on_failure=False)
    assert report.max_rel > 1e-4
    assert json.loads(json.dumps(report.as_dict()))["rtol"] == 1e-4
