"""A :class:`~dcl_arc_ros.learning.trainers.loop.TrainTask` for the common case: one network, one Adam, one loss.

GG-CNN and the pose network train this way; a subclass builds its :class:`SingleNetworkTask` with the network spec
and optimiser settings and supplies :meth:`SingleNetworkTask.loss` (and its image grids). The network is also the
checkpoint's primary network and its optimiser is stored under the same name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from dcl_arc_ros.learning.config import OptimConfig
from dcl_arc_ros.learning.registry import NetworkSpec

__all__ = ["SingleNetworkTask", "adam"]


def adam(params: Iterable[nn.Parameter], optim: OptimConfig) -> torch.optim.Adam:
    """Adam with the learning rate, betas and weight decay of ``optim``."""
    return torch.optim.Adam(params, lr=optim.lr, betas=(optim.beta1, optim.beta2), weight_decay=optim.weight_decay)


class SingleNetworkTask(ABC):
    """Builds ``spec`` on ``device`` with an Adam optimiser; one step minimises :meth:`loss` on the ``"train"`` batch.

    ``self.net`` is the plain module (checkpoints, evaluation); ``self._forward`` is what the loss should call, the
    DistributedDataParallel wrapper under torchrun.
    """

    primary: str  # the network's (and its optimiser's) name in checkpoints

    def __init__(self, spec: NetworkSpec, optim: OptimConfig, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.spec = spec
        self.net = spec.build().to(self.device)
        self._forward: nn.Module = self.net
        self.opt = adam(self.net.parameters(), optim)

    def networks(self) -> dict[str, tuple[NetworkSpec, nn.Module]]:
        return {self.primary: (self.spec, self.net)}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {self.primary: self.opt}

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        self._forward = wrap(self.net)

    @abstractmethod
    def loss(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The scalar to minimise on one batch, and the scalar logs that go with it."""

    def train_step(self, batch: Mapping[str, Mapping[str, Any]], step: int) -> dict[str, float]:
        self.net.train()
        loss, logs = self.loss(batch["train"])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.detach()), **logs}
