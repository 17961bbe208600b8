"""Features for the perceptual (Eq. 5) and style (Eq. 6-7) losses of the inpainting module.

Two sources, and every checkpoint records which one was used (``PerceptualFeatures.describe()``):

* ``vgg16_file``: the paper's choice, ImageNet VGG16 features. torchvision is not a dependency and nothing may be
  downloaded at run time, so the VGG16 ``features`` layers are built here with torchvision's layout and indices and a
  state_dict is loaded BY NAME from a local file the user provides (a full ``vgg16`` state_dict with
  ``features.N.weight`` keys, or the ``features`` sub-module's own ``N.weight`` keys).
* ``random_vgg16`` (the default substitute, no download): the SAME VGG16-shaped layers up to the deepest layer used,
  with Kaiming-normal filters drawn from a fixed seed and zero biases, frozen. Why this one: it keeps VGG16's receptive
  fields, depths and multi-scale pooling, so the loss compares the same spatial scales as the paper's; random
  convolutional features are known to carry useful texture statistics for Gram-matrix style losses (Ustyuzhaninov et
  al., "Texture synthesis using shallow convolutional networks with random filters", 2016; He et al., "A powerful
  generative model using random weights for the deep image representation", NeurIPS 2016); and a fixed seed makes it
  reproducible bit for bit. It is NOT semantically trained, so results must say that they used it.
  ``width_scale`` < 1 narrows it for tests (the pretrained source needs 1.0).

The input is an RGB batch in [-1, 1]; it is mapped to [0, 1] and normalised with the ImageNet mean / std for both
sources.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dcl_arc_ros.learning.arc.errors import PerceptualWeightsError

# VGG16 configuration "D": channel counts, "M" = 2x2 max-pool. Indices below follow torchvision's ``features``.
_VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
# Index of each named ReLU output inside torchvision's vgg16().features.
VGG16_LAYERS: dict[str, int] = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
    "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}  # fmt: skip
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_features(last_index: int, width_scale: float = 1.0) -> nn.Sequential:
    """torchvision-layout ``vgg16().features[: last_index + 1]`` (same module indices, so state_dict names match)."""
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _VGG16_CFG:
        if len(layers) > last_index:
            break
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        out_ch = max(1, round(int(item) * width_scale))
        layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=False)]
        in_ch = out_ch
    return nn.Sequential(*layers[: last_index + 1])


class PerceptualFeatures(nn.Module):
    """Frozen feature extractor: ``forward(x)`` returns the listed layers' activations, shallowest first."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3"),
        *,
        weights_path: str | Path | None = None,
        seed: int = 0,
        width_scale: float = 1.0,
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG16_LAYERS]
        if unknown or not layers:
            raise ValueError(f"perceptual layers {list(layers)}: unknown {unknown}; choose from {list(VGG16_LAYERS)}")
        self.layer_names = tuple(sorted(layers, key=VGG16_LAYERS.__getitem__))
        self._taps = {VGG16_LAYERS[name] for name in self.layer_names}
        last = max(self._taps)
        self._description: dict[str, Any]
        if weights_path:
            self.features = vgg16_features(last)
            sha = _load_vgg16_state(self.features, Path(weights_path))
            self._description = {"kind": "vgg16_file", "file_name": Path(weights_path).name, "sha256": sha}
        else:
            self.features = vgg16_features(last, width_scale)
            _init_random(self.features, seed)
            self._description = {"kind": "random_vgg16", "seed": seed, "width_scale": width_scale}
        self._description["layers"] = list(self.layer_names)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> PerceptualFeatures:  # always frozen, never in training mode
        return super().train(False)

    def describe(self) -> dict[str, Any]:
        """What produced the features, for the checkpoint config and the results."""
        return dict(self._description)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        y = ((x + 1.0) * 0.5 - self.mean) / self.std
        outputs: list[torch.Tensor] = []
        for index, layer in enumerate(self.features):
            y = layer(y)
            if index in self._taps:
                outputs.append(y)
        return outputs


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """sigma(phi) = R(phi) R(phi)^T / (C H W) of Eq. 7, per image: (B, C, H, W) -> (B, C, C)."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / float(c * h * w)


def perceptual_and_style_losses(
    extractor: PerceptualFeatures, output: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Eq. 5, Eq. 6): sums over layers of the L1 distance of features and of Gram matrices."""
    with torch.no_grad():
        target_feats = extractor(target)
    output_feats = extractor(output)
    feature_loss = output.new_zeros(())
    style_loss = output.new_zeros(())
    for fo, ft in zip(output_feats, target_feats, strict=True):
        feature_loss = feature_loss + (fo - ft).abs().mean()
        style_loss = style_loss + (gram_matrix(fo) - gram_matrix(ft)).abs().mean()
    return feature_loss, style_loss


def _init_random(features: nn.Sequential, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for module in features:
        if isinstance(module, nn.Conv2d):
            fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
            with torch.no_grad():
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                assert module.bias is not None
                module.bias.zero_()


def _load_vgg16_state(features: nn.Sequential, path: Path) -> str:
    """Load the needed conv weights by name; returns the file's sha256."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PerceptualWeightsError(f"{path}: cannot read the VGG16 weights: {exc}") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise PerceptualWeightsError(f"{path}: not a torch state_dict: {exc}") from exc
    if not isinstance(state, dict):
        raise PerceptualWeightsError(f"{path}: expected a state_dict (dict), got {type(state).__name__}")
    if any(str(k).startswith("features.") for k in state):
        state = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    needed = features.state_dict()
    missing = sorted(set(needed) - set(state))
    if missing:
        raise PerceptualWeightsError(f"{path}: VGG16 weights lack {missing[:4]} (torchvision layout expected)")
    for key, tensor in needed.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise PerceptualWeightsError(
                f"{path}: {key} has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)}"
            )
    features.load_state_dict({k: state[k] for k in needed})
    return hashlib.sha256(raw).hexdigest()
