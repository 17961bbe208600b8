"""GG-CNN / GG-CNN2 training: a sample adapter, the run config and the :class:`TrainTask` for the common loop.

Data contract (``dcl_arc_ros.data.torch_datasets``): samples are dicts with ``"depth"`` (1, H, W) metres (0 =
invalid) and the dense GG-CNN maps ``"grasp_quality"``, ``"grasp_cos2"``, ``"grasp_sin2"`` and ``"grasp_width"``
(1, H, W; width in pixels). :class:`GraspSampleAdapter` crops (random position when training, centre otherwise),
optionally mirrors, and prepares the depth exactly as the deployed pipeline does
(:func:`dcl_arc_ros.core.grasp_pipeline.prepare_ggcnn_input`: fill holes, resize, minus mean, clip).

Usage::

    cfg = from_dict(GraspTrainConfig, load_yaml("training/configs/grasp_tiny.yaml"))
    task = GraspTask(cfg)
    run_training(task, {"train": GraspSampleAdapter(base, cfg.data, train=True)}, cfg.loop, out_dir, run_config=cfg)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dcl_arc_ros.core.grasp_pipeline import prepare_ggcnn_input
from dcl_arc_ros.learning.checkpoint import load_checkpoint
from dcl_arc_ros.learning.config import DepthRange, OptimConfig
from dcl_arc_ros.learning.errors import ConfigError, DatasetError
from dcl_arc_ros.learning.frame_source import FrameSourceConfig, open_frame_dataset
from dcl_arc_ros.learning.grasp.ggcnn import GGCNN2Config, GGCNNConfig
from dcl_arc_ros.learning.grasp.losses import GRASP_MAP_KEYS, GraspLossConfig, grasp_maps_loss
from dcl_arc_ros.learning.registry import NetworkSpec
from dcl_arc_ros.learning.trainers.loop import LoopConfig
from dcl_arc_ros.learning.trainers.single_network import SingleNetworkTask

__all__ = ["GraspDataConfig", "GraspSampleAdapter", "GraspTask", "GraspTrainConfig", "open_grasp_frames"]

SAMPLE_MAP_KEYS: dict[str, str] = {
    "quality": "grasp_quality",
    "cos2": "grasp_cos2",
    "sin2": "grasp_sin2",
    "width": "grasp_width",
}


@dataclass(frozen=True)
class GraspDataConfig(FrameSourceConfig):
    """Where the frames come from and how they become network inputs."""

    input_size: int = 300  # network input side in pixels
    crop_size: int = 300  # side of the square taken from the frame before resizing to input_size
    depth_range: DepthRange = field(default_factory=lambda: DepthRange(0.1, 4.0))  # outside = invalid
    flip: bool = True  # random left-right mirror when training
    # where training crops are taken: "random" (anywhere in the frame) or "grasp" (centred, with +-side/4 jitter, on a
    # random labelled grasp pixel, as GG-CNN's Cornell/Jacquard crops are centred on the object)
    crop_centre: Literal["random", "grasp"] = "random"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.input_size < 8 or self.crop_size < 8:
            raise ConfigError(
                f"GraspDataConfig input_size/crop_size must be >= 8, got {self.input_size}/{self.crop_size}"
            )


@dataclass(frozen=True)
class GraspTrainConfig:
    network: Literal["ggcnn", "ggcnn2"] = "ggcnn"
    init_checkpoint: str = ""  # start from this GG-CNN's weights (fine-tuning, e.g. on a few real frames)
    ggcnn: GGCNNConfig = field(default_factory=GGCNNConfig)
    ggcnn2: GGCNN2Config = field(default_factory=GGCNN2Config)
    loss: GraspLossConfig = field(default_factory=GraspLossConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, beta1=0.9, beta2=0.999))
    loop: LoopConfig = field(default_factory=LoopConfig)
    data: GraspDataConfig = field(default_factory=GraspDataConfig)

    def network_spec(self) -> NetworkSpec:
        return NetworkSpec(self.network, self.ggcnn if self.network == "ggcnn" else self.ggcnn2)

    @property
    def width_scale_px(self) -> float:
        return (self.ggcnn if self.network == "ggcnn" else self.ggcnn2).width_scale_px


def open_grasp_frames(cfg: GraspTrainConfig) -> Dataset[Mapping[str, Any]]:
    """The training frames of ``cfg.data`` with their dense grasp maps; ``sample["depth"]`` is the network's input
    depth (the ``depth_from`` depth, or the one synthesized from the clean depth with ``data.synthesis``)."""
    data = cfg.data
    if data.source == "toy":
        if data.synthesizes:
            raise ConfigError("the toy grasp source has no clean depth to synthesize from; use generated bags")
        from dcl_arc_ros.learning.grasp.toy_data import ToyGraspFrames

        side = max(data.crop_size, 48)
        return ToyGraspFrames(data.toy_frames, height=side, width=side, seed=cfg.loop.seed)
    return open_frame_dataset(data, ("depth", *SAMPLE_MAP_KEYS.values()), seed=cfg.loop.seed)


class GraspSampleAdapter(Dataset[dict[str, torch.Tensor]]):
    """Frames with dense grasp maps -> ``{"input", "quality", "cos2", "sin2", "width"}`` tensors of (1, S, S).

    ``width`` is divided by ``width_scale_px`` (the network's output unit). Frames with no valid depth in the crop
    give an all-zero input and all-zero targets (nothing to grasp), which keeps batches rectangular.
    """

    def __init__(
        self,
        base: Dataset[Mapping[str, Any]],
        cfg: GraspDataConfig,
        *,
        train: bool,
        width_scale_px: float = 150.0,
        seed: int = 0,
    ) -> None:
        self.base, self.cfg, self.train, self.width_scale_px, self.seed = base, cfg, train, width_scale_px, seed

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.base[index]
        missing = [k for k in ("depth", *SAMPLE_MAP_KEYS.values()) if k not in sample]
        if missing:
            raise DatasetError(f"grasp sample {index} lacks {missing}; it has {sorted(sample)}")
        depth = _plane(sample["depth"])
        maps = {k: _plane(sample[v]) for k, v in SAMPLE_MAP_KEYS.items()}
        h, w = depth.shape
        side = min(self.cfg.crop_size, h, w)
        if self.train:  # drawn from torch's stream, which the training loop seeds per rank and step
            rng = np.random.default_rng((self.seed, index, int(torch.randint(0, 2**31 - 1, ()).item())))
            y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            if self.cfg.crop_centre == "grasp":
                y0, x0 = _grasp_centred(maps["quality"], side, rng, default=(y0, x0))
            flip = self.cfg.flip and bool(rng.integers(0, 2))
        else:
            y0, x0, flip = (h - side) // 2, (w - side) // 2, False
        window = (slice(y0, y0 + side), slice(x0, x0 + side))
        d = depth[window]
        lo, hi = self.cfg.depth_range.min_m, self.cfg.depth_range.max_m
        d = np.where((d >= lo) & (d <= hi), d, np.float32(np.nan)).astype(np.float32)
        crops = {k: m[window] for k, m in maps.items()}
        if flip:  # mirroring u negates the angle: cos 2a is unchanged, sin 2a changes sign
            d = d[:, ::-1]
            crops = {k: m[:, ::-1] for k, m in crops.items()}
            crops["sin2"] = -crops["sin2"]
        size = self.cfg.input_size
        net_input = prepare_ggcnn_input(np.ascontiguousarray(d), (size, size))
        if net_input is None:
            zeros = torch.zeros(1, size, size)
            return {"input": zeros, **{k: zeros.clone() for k in SAMPLE_MAP_KEYS}}
        scale = size / side
        out = {"input": torch.from_numpy(net_input[0].copy())}
        for key, m in crops.items():
            m = np.ascontiguousarray(m, dtype=np.float32)
            if side != size:
                m = cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR)
            if key == "width":
                m = m * np.float32(scale / self.width_scale_px)
            out[key] = torch.from_numpy(m[None].copy())
        return out


def _grasp_centred(
    quality: np.ndarray, side: int, rng: np.random.Generator, *, default: tuple[int, int]
) -> tuple[int, int]:
    """Top-left corner of a ``side`` square centred (+- side/4) on a random pixel with quality > 0 (``default`` when
    the frame has none), kept inside the frame."""
    rows, cols = np.nonzero(quality > 0)
    if rows.size == 0:
        return default
    i = int(rng.integers(0, rows.size))
    jitter = side // 4
    h, w = quality.shape
    y0 = int(rows[i]) - side // 2 + int(rng.integers(-jitter, jitter + 1))
    x0 = int(cols[i]) - side // 2 + int(rng.integers(-jitter, jitter + 1))
    return int(np.clip(y0, 0, h - side)), int(np.clip(x0, 0, w - side))


def _plane(x: Any) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    arr = arr.astype(np.float32, copy=False)
    while arr.ndim > 2:
        arr = arr[0]
    return arr


class GraspTask(SingleNetworkTask):
    """The :class:`~dcl_arc_ros.learning.trainers.loop.TrainTask` of GG-CNN: one network, Adam, summed map MSEs."""

    primary = "ggcnn"

    def __init__(self, cfg: GraspTrainConfig, device: str | torch.device = "cpu") -> None:
        self.cfg = cfg
        super().__init__(cfg.network_spec(), cfg.optim, device)
        if cfg.init_checkpoint:
            init = load_checkpoint(cfg.init_checkpoint)
            if init.networks.get(self.primary) != self.spec:
                raise ConfigError(
                    f"init_checkpoint {cfg.init_checkpoint}: its {self.primary} {init.networks.get(self.primary)} "
                    f"differs from the configured network {self.spec}"
                )
            init.restore({self.primary: self.net})

    def loss(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch["input"].to(self.device)
        target = {k: batch[k].to(self.device) for k in GRASP_MAP_KEYS}
        return grasp_maps_loss(self._forward(x), target, self.cfg.loss)

    def image_grids(self, batch: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        b = batch["train"]
        self.net.eval()
        with torch.no_grad():
            quality = self.net(b["input"].to(self.device))[0].clamp(0, 1).cpu()
        self.net.train()
        return {"depth": (b["input"] + 1) / 2, "quality_target": b["quality"].clamp(0, 1), "quality_pred": quality}
