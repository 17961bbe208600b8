"""Exported ONNX artefacts carry no file path of the machine that exported them."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from torch import nn

from dcl_arc_ros.learning.export import SOURCE_LOCATION_KEYS, torch_to_onnx


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def test_no_stack_traces_or_source_paths_in_the_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = torch_to_onnx(
        Tiny(), [torch.rand(1, 1, 8, 8)], tmp_path / "tiny.onnx", input_names=["x"], output_names=["y"]
    )
    model = onnx.load(str(path))
    keys = {p.key for node in model.graph.node for p in node.metadata_props}
    assert not keys & set(SOURCE_LOCATION_KEYS)
    assert __file__.encode() not in path.read_bytes()  # this test's own path would be in a stack trace
    onnx.checker.check_model(model)
