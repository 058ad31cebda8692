"""Input normalisation inside the model, so every attack works in [0, 1] pixel space."""

from __future__ import annotations

import torch
from torch import nn


class InputNormalization(nn.Module):
    """``(x - mean) / std`` per channel; the identity when ``mean`` is ``None``."""

    def __init__(self, mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> None:
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std for input normalisation, or neither")
        if mean is not None and std is not None and len(mean) != len(std):
            raise ValueError(f"mean and std need one value per channel, got {len(mean)} and {len(std)}")
        if std is not None and any(s <= 0 for s in std):
            raise ValueError(f"std values must be positive, got {std}")
        self.enabled = mean is not None
        shape = (1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(mean or (0.0,)).view(shape), persistent=False)
        self.register_buffer("std", torch.tensor(std or (1.0,)).view(shape), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        return (x - self.mean) / self.std
