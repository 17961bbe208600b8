"""Export trained networks to ONNX, check parity with ONNX Runtime, and write the model sidecar.

Three pure, typed steps plus a table of exportable kinds::

    from dcl_arc_ros.learning.export import torch_to_onnx, check_parity, export_checkpoint

    path = torch_to_onnx(model, (x,), Path("m.onnx"), input_names=("depth",), output_names=("depth_out",))
    report = check_parity(path, model, (x,), rtol=1e-4)      # a real onnxruntime session; ParityError if worse
    result = export_checkpoint(Path("run/checkpoints/latest.pt"), Path("models/cleaner.onnx"), height=480, width=640)
    # -> models/cleaner.onnx + models/cleaner.json (sidecar), result.parity.max_rel

``torch_to_onnx`` uses the torch.export-based exporter (``dynamo=True``) and writes one self-contained file (weights
inside). Parity is measured as ``max|onnx - torch| / max(max|torch|, 1e-6)`` over every output. For kinds other
code adds (grasp and pose nets, ARC), call :func:`register_export_kind` with an :class:`ExportKind`.

The exported tensors are in the networks' own units: depth normalised to [-1, 1] over the fixed metric range
recorded in the sidecar's ``normalisation`` (``kind: range``; 0 m, i.e. no reading, maps to -1 and comes back as
0 m), RGB in [0, 1] (``kind: affine``, scale 1/255 from uint8).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dcl_arc_ros.learning.config import DepthRange, from_dict
from dcl_arc_ros.learning.errors import ExportError, ParityError

__all__ = [
    "EXPORTABLE_KINDS",
    "ExportKind",
    "ExportResult",
    "ParityReport",
    "TensorDecl",
    "check_parity",
    "export_checkpoint",
    "register_export_kind",
    "torch_to_onnx",
]

DEFAULT_OPSET = 18


#: Node metadata the exporter fills with Python stack traces: file paths of the machine that exported the model.
SOURCE_LOCATION_KEYS = ("pkg.torch.onnx.stack_trace",)


def _drop_source_locations(path: Path) -> None:
    """Remove exporter stack traces from every node, so an artefact carries no file path of the exporting machine."""
    import onnx

    model = onnx.load(str(path))
    graphs = [model.graph, *(f for f in model.functions)]
    for graph in graphs:
        for node in graph.node:
            kept = [p for p in node.metadata_props if p.key not in SOURCE_LOCATION_KEYS]
            del node.metadata_props[:]
            node.metadata_props.extend(kept)
    onnx.save(model, str(path))


# --------------------------------------------------------------------------------------------------------------------
# step 1: torch -> onnx
# --------------------------------------------------------------------------------------------------------------------


def torch_to_onnx(
    model: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    path: Path | str,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export ``model`` (in eval mode) with static shapes taken from ``example_inputs``; returns the .onnx path."""
    path = Path(path)
    if len(input_names) != len(example_inputs):
        raise ExportError(f"{path}: {len(example_inputs)} example inputs but input_names={list(input_names)}")
    model = model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        program = torch.onnx.export(
            model,
            tuple(example_inputs),
            dynamo=True,
            input_names=list(input_names),
            output_names=list(output_names),
            opset_version=opset,
            external_data=False,
            optimize=True,
            verbose=False,
        )
        if program is None:
            raise ExportError(f"{path}: the exporter returned no program")
        program.save(str(path), external_data=False)
        _drop_source_locations(path)
    except ExportError:
        raise
    except Exception as exc:  # the exporter raises many types; name the file and the cause
        raise ExportError(f"{path}: ONNX export of {type(model).__name__} failed: {exc}") from exc
    return path


# --------------------------------------------------------------------------------------------------------------------
# step 2: parity with onnxruntime
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParityReport:
    max_abs: float
    max_rel: float  # max|onnx - torch| / max(max|torch|, 1e-6), worst output
    rtol: float
    provider: str
    per_output: dict[str, float]  # relative error per output name

    @property
    def ok(self) -> bool:
        return self.max_rel <= self.rtol

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "rtol": self.rtol,
            "provider": self.provider,
            "per_output": dict(self.per_output),
        }


def check_parity(
    onnx_path: Path | str,
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    rtol: float = 1e-4,
    *,
    raise_on_failure: bool = True,
) -> ParityReport:
    """Run the .onnx in a CPU onnxruntime session and the torch model on ``inputs``; compare every output."""
    import onnxruntime as ort

    onnx_path = Path(onnx_path)
    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"{onnx_path}: onnxruntime cannot load the model: {exc}") from exc
    names = [i.name for i in session.get_inputs()]
    if len(names) != len(inputs):
        raise ExportError(f"{onnx_path}: the graph has inputs {names} but {len(inputs)} tensors were given")
    feeds = {name: t.detach().cpu().numpy().astype(np.float32) for name, t in zip(names, inputs, strict=True)}
    ort_out = session.run(None, feeds)
    with torch.no_grad():
        ref = model.eval()(*inputs)
    refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    if len(refs) != len(ort_out):
        raise ExportError(f"{onnx_path}: torch gives {len(refs)} outputs, onnxruntime {len(ort_out)}")
    per_output: dict[str, float] = {}
    max_abs = 0.0
    for meta, got, want in zip(session.get_outputs(), ort_out, refs, strict=True):
        want_np = want.detach().cpu().numpy()
        if got.shape != want_np.shape:
            raise ParityError(f"{onnx_path}: output {meta.name!r} has shape {got.shape}, torch {want_np.shape}")
        err = float(np.max(np.abs(got.astype(np.float64) - want_np))) if got.size else 0.0
        scale = max(float(np.max(np.abs(want_np))) if want_np.size else 0.0, 1e-6)
        per_output[meta.name] = err / scale
        max_abs = max(max_abs, err)
    report = ParityReport(
        max_abs=max_abs,
        max_rel=max(per_output.values(), default=0.0),
        rtol=rtol,
        provider=session.get_providers()[0],
        per_output=per_output,
    )
    if raise_on_failure and not report.ok:
        raise ParityError(f"{onnx_path}: ONNX/torch relative error {report.max_rel:.3g} exceeds rtol {rtol:g}")
    return report


# --------------------------------------------------------------------------------------------------------------------
# the table of exportable kinds
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorDecl:
    """One graph input/output: channels and meaning (the exporter adds batch 1 and the deploy resolution)."""

    name: str
    channels: int
    semantic: str
    units: str
    normalisation: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ExportKind:
    """How a network kind is exported: the sidecar task, its tensors, and the size rule the flags must satisfy."""

    task: str
    inputs: Callable[[Any, DepthRange], tuple[TensorDecl, ...]]
    outputs: Callable[[Any, DepthRange], tuple[TensorDecl, ...]]
    size_multiple: Callable[[Any], int]
    internal_resolution: Callable[[Any, int, int], tuple[int, int]] = lambda cfg, h, w: (h, w)
    notes: Callable[[Any], dict[str, Any]] = lambda cfg: {}  # facts for the sidecar's ``extra`` (e.g. hole handling)


_RGB_NORM: Mapping[str, Any] = {"kind": "affine", "scale": 1.0 / 255.0, "offset": 0.0}


def _generator_inputs(cfg: Any, rng: DepthRange) -> tuple[TensorDecl, ...]:
    decls = [TensorDecl("depth", cfg.in_channels, "depth", "normalised", rng.as_sidecar())]
    if cfg.rgb_channels:
        decls.append(TensorDecl("rgb", cfg.rgb_channels, "rgb", "unit", _RGB_NORM))
    return tuple(decls)


def _generator_outputs(cfg: Any, rng: DepthRange) -> tuple[TensorDecl, ...]:
    return (TensorDecl("depth_out", cfg.out_channels, "depth", "normalised", rng.as_sidecar()),)


def _unet_inputs(cfg: Any, rng: DepthRange) -> tuple[TensorDecl, ...]:
    decls = [TensorDecl("depth", 1, "depth", "normalised", rng.as_sidecar())]
    if cfg.rgb_channels:
        decls.append(TensorDecl("rgb", cfg.rgb_channels, "rgb", "unit", _RGB_NORM))
    return tuple(decls)


def _unet_outputs(cfg: Any, rng: DepthRange) -> tuple[TensorDecl, ...]:
    if cfg.out_kind == "normals":
        return (TensorDecl("normals", 3, "normals", "unit_vector"),)
    return (TensorDecl("depth_out", 1, "depth", "normalised", rng.as_sidecar()),)


EXPORTABLE_KINDS: dict[str, ExportKind] = {
    "resnet_generator": ExportKind(
        task="depth_to_depth",
        inputs=_generator_inputs,
        outputs=_generator_outputs,
        size_multiple=lambda cfg: 2**cfg.n_downsampling,
        notes=lambda cfg: {
            "holes": "outputs holes as the bottom of the range (-1 -> 0 m); keep them as no-reading (NaN)",
            "outputs_holes": cfg.hole_head != "none",
        },
    ),
    "unet": ExportKind(
        task="depth_to_depth",
        inputs=_unet_inputs,
        outputs=_unet_outputs,
        size_multiple=lambda cfg: cfg.internal_downsample,
        internal_resolution=lambda cfg, h, w: (h // cfg.internal_downsample, w // cfg.internal_downsample),
        notes=lambda cfg: {
            "holes": "trained with holes fed as the bottom of the range (-1 = 0 m) and fills them itself; "
            "pre-filling holes before the model is not needed",
            "fills_holes": True,
            "valid_mask": "derived inside the network from depth > -1",
        },
    ),
}


def register_export_kind(name: str, kind: ExportKind, *, replace: bool = False) -> None:
    if name in EXPORTABLE_KINDS and not replace:
        raise ExportError(f"export kind {name!r} is already registered")
    EXPORTABLE_KINDS[name] = kind


# --------------------------------------------------------------------------------------------------------------------
# step 3: checkpoint -> .onnx + sidecar
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    onnx_path: Path
    sidecar_path: Path
    parity: ParityReport


def _depth_range_of(run_config: Mapping[str, Any], source: str) -> DepthRange:
    data = run_config.get("data", {}) if isinstance(run_config.get("data"), Mapping) else {}
    raw = data.get("depth_range", run_config.get("depth_range"))
    if raw is None:
        raise ExportError(f"{source}: the run config has no data.depth_range; the sidecar needs the metric range")
    return from_dict(DepthRange, raw, source=source)


class _FixedRays(nn.Module):
    """A ray-aware generator with the viewing rays of one camera at the export resolution baked in as a constant."""

    def __init__(self, generator: nn.Module, rays: torch.Tensor) -> None:
        super().__init__()
        self.generator = generator
        self.register_buffer("rays", rays)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.generator(*inputs, rays=self.rays)


def _with_rays(
    model: nn.Module, config: Any, intrinsics: Sequence[float] | None, height: int, width: int, source: str
) -> tuple[nn.Module, dict[str, Any]]:
    """``model`` unchanged, or, for a generator that sees viewing rays, wrapped with the rays of ``intrinsics``."""
    if not getattr(config, "ray_channels", 0):
        if intrinsics is not None:
            raise ExportError(f"{source}: --intrinsics is only for generators with ray_channels; this one has none")
        return model, {}
    if intrinsics is None or len(intrinsics) != 4 or not all(math.isfinite(v) for v in intrinsics):
        raise ExportError(
            f"{source}: this generator's holes depend on the viewing ray (ray_channels=2); give the camera's "
            f"fx fy cx cy at the export resolution {width}x{height} with --intrinsics (got {intrinsics})"
        )
    from dcl_arc_ros.learning.nets.resnet_generator import ray_map

    rays = ray_map(torch.tensor([list(map(float, intrinsics))]), height, width)
    note = {
        "rays_from_intrinsics": {"fx": intrinsics[0], "fy": intrinsics[1], "cx": intrinsics[2], "cy": intrinsics[3]}
    }
    return _FixedRays(model, rays).eval(), note


def export_checkpoint(
    checkpoint: Path | str,
    out_path: Path | str,
    *,
    height: int,
    width: int,
    network: str | None = None,
    opset: int = DEFAULT_OPSET,
    rtol: float = 1e-4,
    model_version: str = "1.0.0",
    name: str | None = None,
    seed: int = 0,
    intrinsics: Sequence[float] | None = None,
) -> ExportResult:
    """Rebuild a network from its checkpoint's config, export it at (height, width), check parity, write the sidecar.

    Parity is checked on random inputs (depth uniform in [-1, 1] with ~10 % holes, RGB uniform in [0, 1]).
    A generator that sees viewing rays (``ray_channels``) needs ``intrinsics`` (fx, fy, cx, cy at the export
    resolution): a learned sensor model is one camera's, and its rays are baked into the graph as a constant.
    """
    from dcl_arc_ros.core.sidecar import ModelSidecar, TensorSpec, config_sha256, sha256_file, write_sidecar
    from dcl_arc_ros.learning.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    net_name = network or ckpt.primary
    if net_name not in ckpt.networks:
        raise ExportError(f"{checkpoint}: no network {net_name!r}; it holds {sorted(ckpt.networks)}")
    spec = ckpt.networks[net_name]
    if spec.kind not in EXPORTABLE_KINDS:
        raise ExportError(
            f"{checkpoint}: network {net_name!r} is of kind {spec.kind!r}, which cannot be exported; "
            f"exportable kinds: {sorted(EXPORTABLE_KINDS)}"
        )
    kind = EXPORTABLE_KINDS[spec.kind]
    mult = kind.size_multiple(spec.config)
    if height < 1 or width < 1 or height % mult or width % mult:
        raise ExportError(f"{checkpoint}: --height {height} / --width {width} must be positive multiples of {mult}")
    depth_range = _depth_range_of(ckpt.run_config, str(checkpoint))
    model, ray_note = _with_rays(
        ckpt.build(net_name, eval_mode=True), spec.config, intrinsics, height, width, str(checkpoint)
    )
    in_decls = kind.inputs(spec.config, depth_range)
    out_decls = kind.outputs(spec.config, depth_range)

    gen = torch.Generator().manual_seed(seed)
    inputs: list[torch.Tensor] = []
    for decl in in_decls:
        if decl.semantic == "depth":
            x = torch.rand(1, decl.channels, height, width, generator=gen) * 2.0 - 1.0
            x[torch.rand(x.shape, generator=gen) < 0.1] = -1.0
        else:
            x = torch.rand(1, decl.channels, height, width, generator=gen)
        inputs.append(x)
    out_path = Path(out_path)
    torch_to_onnx(
        model,
        inputs,
        out_path,
        input_names=[d.name for d in in_decls],
        output_names=[d.name for d in out_decls],
        opset=opset,
    )
    report = check_parity(out_path, model, inputs, rtol=rtol)

    normalisation = {d.name: dict(d.normalisation) for d in (*in_decls, *out_decls) if d.normalisation is not None}
    internal = kind.internal_resolution(spec.config, height, width)
    sidecar = ModelSidecar(
        name=name or out_path.stem,
        task=kind.task,
        model_version=model_version,
        inputs=tuple(
            TensorSpec(d.name, (1, d.channels, height, width), "float32", d.semantic, d.units) for d in in_decls
        ),
        outputs=tuple(
            TensorSpec(d.name, (1, d.channels, height, width), "float32", d.semantic, d.units) for d in out_decls
        ),
        deploy_resolution=(height, width),
        normalisation=normalisation,
        training_config_sha256=config_sha256(ckpt.run_config),
        model_sha256=sha256_file(out_path),
        extra={
            "network": net_name,
            "network_kind": spec.kind,
            "network_config": spec.to_dict()["config"],
            "checkpoint_step": ckpt.step,
            "internal_resolution": list(internal),
            "upsampling": "bilinear" if internal != (height, width) else "none",
            "parity": report.as_dict(),
            "opset": opset,
            **kind.notes(spec.config),
            **ray_note,
        },
    )
    from dcl_arc_ros.core.sidecar import sidecar_path_for

    sidecar_path = sidecar_path_for(out_path)
    write_sidecar(sidecar, sidecar_path)
    return ExportResult(onnx_path=out_path, sidecar_path=sidecar_path, parity=report)
