"""CUT-style ResNet generator for depth-to-depth synthesis: encoder phi, decoder psi, optional RGB encoder theta.

Tensors are in the normalised depth space of :class:`~dcl_arc_ros.learning.config.DepthRange` ([-1, 1]; 0 m -> -1).

The output head can make holes. Real sensors return "no reading" pixels, so a synthesizer must be able to output
them as well as noise. The last convolution therefore gives two channels per output:

* a depth channel ``z`` -> ``tanh`` (or, with ``residual``, ``clamp(input + tanh(z))``),
* a hole logit ``h`` -> ``p = sigmoid(h)``, the probability that the sensor returns nothing there.

In ``hole_head="straight_through"`` (the default) they are combined as ``keep * depth + (1 - keep) * hole_value``,
with ``keep = 1[p < 0.5]`` in the forward pass and the gradient of ``1 - p`` in the backward pass. The output
therefore has exactly ``hole_value`` (0 m) in its holes during training as well as at deployment. The discriminator
never sees "half holes" that real data cannot contain, and the hole logit still gets gradients from every loss.
``"soft"`` uses ``1 - p`` directly (smooth, but holes are only approximately 0 m). ``"none"`` has no hole channel.
The hole logit's bias starts at ``hole_bias_init`` (negative: few holes at first), so early outputs are dense.

Metric scale: ``norm="instance"`` (CUT's image default) removes each image's per-channel mean in the encoder, so the
decoder cannot easily recover the absolute depth level. In short toy runs (32x32, 300-400 steps) the identity L1 on
real depth ended near 0.40 (normalised units) with instance norm, 0.25 with ``"batch"`` (the DCL official choice,
used by every preset here except ``cut9``) and 0.06 with ``residual=True``, which adds the output to the input and
so keeps metric depth by construction. ``input_skip=True`` is a middle way: the input depth joins the last decoder
features before the output head, so the absolute level is at hand without forcing an identity-like output.

Where a pixel is in the camera: a crop does not say, yet some sensor artifacts depend on it (an active-stereo camera's
invalid band along one side, vignetting of the IR pattern). ``ray_channels=2`` feeds each pixel's viewing ray
``((u - cx) / fx, (v - cy) / fy)`` (:func:`ray_map`, from the crop's own intrinsics) to the output head beside the
decoder features, so the hole logit can depend on position; the encoder phi, whose features the contrastive losses
compare, does not see it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from dcl_arc_ros.learning.errors import ConfigError
from dcl_arc_ros.learning.nets.blocks import BlurDownsample, BlurUpsample, NormKind, ResnetBlock, make_norm

HoleHead = Literal["straight_through", "soft", "none"]

__all__ = ["PRESETS", "GeneratorOutput", "HoleHead", "ResnetGenerator", "ResnetGeneratorConfig", "ray_map"]


@dataclass(frozen=True)
class ResnetGeneratorConfig:
    """Architecture of :class:`ResnetGenerator`. ``rgb_channels > 0`` enables the RGB encoder theta."""

    in_channels: int = 1
    out_channels: int = 1
    ngf: int = 32
    n_blocks: int = 5
    n_downsampling: int = 2
    norm: NormKind = "batch"
    anti_alias: bool = True
    rgb_channels: int = 0
    rgb_blocks: int = 2
    hole_head: HoleHead = "straight_through"
    hole_value: float = -1.0
    hole_bias_init: float = -3.0
    residual: bool = False
    input_skip: bool = False
    n_feature_layers: int = 5
    ray_channels: int = 0  # 0, or 2: the pixel's viewing ray joins the output head (see the module docstring)

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "ngf"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ResnetGeneratorConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_blocks < 0 or self.n_downsampling < 0 or self.rgb_blocks < 0 or self.rgb_channels < 0:
            raise ConfigError(
                f"ResnetGeneratorConfig counts must be >= 0, got n_blocks={self.n_blocks} "
                f"n_downsampling={self.n_downsampling} rgb_channels={self.rgb_channels} rgb_blocks={self.rgb_blocks}"
            )
        if self.ray_channels not in (0, 2):
            raise ConfigError(f"ResnetGeneratorConfig.ray_channels must be 0 or 2, got {self.ray_channels}")
        if self.residual and self.in_channels != self.out_channels:
            raise ConfigError(
                f"residual output needs in_channels == out_channels, got {self.in_channels} and {self.out_channels}"
            )


PRESETS: dict[str, ResnetGeneratorConfig] = {
    # The DCL official defaults: resnet_5blocks, ngf 32, BatchNorm, anti-aliased resampling.
    "default": ResnetGeneratorConfig(),
    "tiny": ResnetGeneratorConfig(ngf=8, n_blocks=2),
    "rgb": ResnetGeneratorConfig(rgb_channels=3),
    "tiny_rgb": ResnetGeneratorConfig(ngf=8, n_blocks=2, rgb_channels=3, rgb_blocks=1),
    # The CUT paper's image generator (9 blocks, ngf 64, instance norm).
    "cut9": ResnetGeneratorConfig(ngf=64, n_blocks=9, norm="instance"),
}


@dataclass
class GeneratorOutput:
    """The parts of one generator pass, all (B, C, H, W) in normalised units."""

    output: torch.Tensor  # depth with holes = hole_value: what forward() returns
    depth: torch.Tensor  # the depth channel before holes are cut in
    hole_logit: torch.Tensor | None  # None when hole_head == "none"


def ray_map(intrinsics: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 4) pinhole intrinsics (fx, fy, cx, cy) of the pixels -> (B, 2, H, W) viewing rays ((u - cx)/fx, (v - cy)/fy).

    Pixel centres are at integer coordinates, as in ``sensor_msgs/CameraInfo``; a crop's intrinsics (cx, cy shifted by
    the crop's corner) give the same rays as the whole frame's at the same pixels.
    """
    if intrinsics.dim() != 2 or intrinsics.shape[1] != 4:
        raise ValueError(f"intrinsics must be (B, 4) fx, fy, cx, cy, got {tuple(intrinsics.shape)}")
    k = intrinsics.to(torch.float32)
    u = torch.arange(width, dtype=torch.float32, device=k.device).view(1, 1, width)
    v = torch.arange(height, dtype=torch.float32, device=k.device).view(1, height, 1)
    x = (u - k[:, 2].view(-1, 1, 1)) / k[:, 0].view(-1, 1, 1)
    y = (v - k[:, 3].view(-1, 1, 1)) / k[:, 1].view(-1, 1, 1)
    return torch.stack([x.expand(-1, height, width), y.expand(-1, height, width)], dim=1)


def _encoder_layers(in_ch: int, cfg: ResnetGeneratorConfig, n_blocks: int) -> tuple[list[nn.Module], int]:
    bias = cfg.norm != "batch"
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3),
        nn.Conv2d(in_ch, cfg.ngf, 7, bias=bias),
        make_norm(cfg.norm, cfg.ngf),
        nn.ReLU(inplace=True),
    ]
    ch = cfg.ngf
    for _ in range(cfg.n_downsampling):
        out = ch * 2
        if cfg.anti_alias:
            layers += [
                nn.Conv2d(ch, out, 3, padding=1, bias=bias),
                make_norm(cfg.norm, out),
                nn.ReLU(inplace=True),
                BlurDownsample(out),
            ]
        else:
            layers += [nn.Conv2d(ch, out, 3, stride=2, padding=1, bias=bias), make_norm(cfg.norm, out), nn.ReLU(True)]
        ch = out
    layers += [ResnetBlock(ch, cfg.norm) for _ in range(n_blocks)]
    return layers, ch


class ResnetGenerator(nn.Module):
    """psi(phi(d) [+ theta(rgb)]) with a depth + hole-logit head. See the module docstring for the hole design."""

    def __init__(self, cfg: ResnetGeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        enc, ch = _encoder_layers(cfg.in_channels, cfg, cfg.n_blocks)
        self.encoder = nn.ModuleList(enc)  # phi, kept flat so features can be read at any layer index
        self.bottleneck_channels = ch
        self.rgb_encoder: nn.Sequential | None = None  # theta
        self.fuse: nn.Module = nn.Identity()
        if cfg.rgb_channels > 0:
            rgb_layers, rgb_ch = _encoder_layers(cfg.rgb_channels, cfg, cfg.rgb_blocks)
            self.rgb_encoder = nn.Sequential(*rgb_layers)
            self.fuse = nn.Sequential(nn.Conv2d(ch + rgb_ch, ch, 1), nn.ReLU(inplace=True))
        bias = cfg.norm != "batch"
        dec: list[nn.Module] = []
        for _ in range(cfg.n_downsampling):
            out = ch // 2
            if cfg.anti_alias:
                dec += [BlurUpsample(ch), nn.Conv2d(ch, out, 3, padding=1, bias=bias)]
            else:
                dec += [nn.ConvTranspose2d(ch, out, 3, stride=2, padding=1, output_padding=1, bias=bias)]
            dec += [make_norm(cfg.norm, out), nn.ReLU(inplace=True)]
            ch = out
        self.decoder = nn.Sequential(*dec)  # psi, up to the output head
        n_head = cfg.out_channels * (1 if cfg.hole_head == "none" else 2)
        head_in = ch + (cfg.in_channels if cfg.input_skip else 0) + cfg.ray_channels
        head_conv = nn.Conv2d(head_in, n_head, 7)
        if cfg.hole_head != "none" and head_conv.bias is not None:
            with torch.no_grad():
                head_conv.bias[cfg.out_channels :].fill_(cfg.hole_bias_init)
        self.head = nn.Sequential(nn.ReflectionPad2d(3), head_conv)

    # ---------------------------------------------------------------------------------------------------------------
    @property
    def n_encoder_layers(self) -> int:
        return len(self.encoder)

    def default_feature_layers(self) -> tuple[int, ...]:
        """``n_feature_layers`` encoder layer indices spread evenly from the first to the last (the paper uses 5)."""
        n = min(self.cfg.n_feature_layers, self.n_encoder_layers)
        return tuple(int(i) for i in np.unique(np.round(np.linspace(0, self.n_encoder_layers - 1, n)).astype(int)))

    def _check_size(self, x: torch.Tensor) -> None:
        mult = 2**self.cfg.n_downsampling
        if x.dim() != 4 or x.shape[1] != self.cfg.in_channels:
            raise ValueError(f"generator expects (B, {self.cfg.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[-1] % mult or x.shape[-2] % mult:
            raise ValueError(f"generator input size {tuple(x.shape[-2:])} must be a multiple of {mult}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x): the bottleneck features."""
        for layer in self.encoder:
            x = layer(x)
        return x

    def encode_features(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """Activations of phi after each requested flat layer index (in the order asked), stopping at the last."""
        wanted = list(layers)
        if not wanted:
            return []
        bad = [i for i in wanted if not 0 <= i < self.n_encoder_layers]
        if bad:
            raise ValueError(f"feature layer indices {bad} outside the encoder's 0..{self.n_encoder_layers - 1}")
        found: dict[int, torch.Tensor] = {}
        last = max(wanted)
        for idx, layer in enumerate(self.encoder):
            x = layer(x)
            if idx in wanted:
                found[idx] = x
            if idx == last:
                break
        return [found[i] for i in wanted]

    def feature_channels(self, layers: Sequence[int]) -> list[int]:
        """Channel count of each requested layer's features (computed from a tiny dummy pass)."""
        mult = 2**self.cfg.n_downsampling
        probe = torch.zeros(1, self.cfg.in_channels, 2 * mult, 2 * mult)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            feats = self.encode_features(probe, layers)
        self.train(was_training)
        return [int(f.shape[1]) for f in feats]

    def forward_parts(
        self, x: torch.Tensor, rgb: torch.Tensor | None = None, rays: torch.Tensor | None = None
    ) -> GeneratorOutput:
        self._check_size(x)
        if self.cfg.ray_channels and (rays is None or rays.shape != (x.shape[0], 2, *x.shape[-2:])):
            got = None if rays is None else tuple(rays.shape)
            raise ValueError(f"this generator sees viewing rays (ray_channels=2): pass rays (B, 2, H, W), got {got}")
        z = self.encode(x)
        if self.rgb_encoder is not None:
            if rgb is None:
                raise ValueError("this generator has an RGB encoder (rgb_channels > 0) and needs an rgb input")
            z = self.fuse(torch.cat([z, self.rgb_encoder(rgb)], dim=1))
        feats = self.decoder(z)
        head_in = [feats, *([x] if self.cfg.input_skip else []), *([rays] if self.cfg.ray_channels else [])]
        raw = self.head(torch.cat(head_in, dim=1) if len(head_in) > 1 else feats)
        c = self.cfg.out_channels
        depth = torch.tanh(raw[:, :c])
        if self.cfg.residual:
            depth = (x + depth).clamp(-1.0, 1.0)
        if self.cfg.hole_head == "none":
            return GeneratorOutput(output=depth, depth=depth, hole_logit=None)
        hole_logit = raw[:, c:]
        keep_soft = torch.sigmoid(-hole_logit)  # 1 - sigmoid(h)
        if self.cfg.hole_head == "straight_through":
            keep = (keep_soft > 0.5).to(depth.dtype) + keep_soft - keep_soft.detach()
        else:
            keep = keep_soft
        out = keep * depth + (1.0 - keep) * self.cfg.hole_value
        return GeneratorOutput(output=out, depth=depth, hole_logit=hole_logit)

    def forward(
        self,
        x: torch.Tensor,
        rgb: torch.Tensor | None = None,
        *,
        rays: torch.Tensor | None = None,
        parts: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The synthesized depth; with ``parts=True`` the tuple (output, depth, hole_logit) of :meth:`forward_parts`
        instead (a plain tuple, so that a DistributedDataParallel wrapper can pass it through)."""
        out = self.forward_parts(x, rgb, rays)
        return (out.output, out.depth, out.hole_logit) if parts else out.output


def build_resnet_generator(cfg: ResnetGeneratorConfig) -> ResnetGenerator:
    return ResnetGenerator(cfg)
