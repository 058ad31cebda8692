"""The all-convolutional CNN of Tomen & van Gemert (ICCV 2021), with optional windowing."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from robustbench_win.models.normalize import InputNormalization
from robustbench_win.models.windowed_conv import WindowedConv2d
from robustbench_win.models.windows import check_kernel_size, check_window

Downsampling = Literal["stride", "maxpool", "none"]
WindowScope = Literal["all", "first"]

DOWNSAMPLINGS: tuple[str, ...] = ("stride", "maxpool", "none")
WINDOW_SCOPES: tuple[str, ...] = ("all", "first")
STEM_KERNEL_SIZE = 7


class PaperCNN(nn.Module):
    """Stem conv 7x7 -> ``depth - 1`` blocks of k x k conv -> global average pool -> Linear.

    Every conv is bias-free and followed by BatchNorm and ReLU. With the default
    ``downsampling="stride"`` the stem has stride 2, as in the authors' code; ``"maxpool"``
    uses a stride-1 stem followed by 2x2 max-pooling; ``"none"`` keeps full resolution.

    Args:
        in_channels: Image channels (1 for digits, 3 for CIFAR).
        num_classes: Output logits.
        kernel_size: Odd size k of the block convolutions.
        window: Window tapering the convs (see :data:`robustbench_win.models.windows.WINDOWS`).
        depth: Conv layers in all, stem included (the paper's M, 2..6; authors' default 6).
        width: Channels of the block convs (authors: 256).
        stem_width: Channels of the stem (authors: 128); defaults to ``width // 2``.
        downsampling: ``"stride"``, ``"maxpool"`` or ``"none"``.
        window_scope: ``"all"`` conv layers (default) or the ``"first"`` (stem) only.
        mean: Per-channel input mean subtracted inside the model (``None``: no normalisation,
            as in the authors' code). Inputs are always pixels in [0, 1].
        std: Per-channel input std, used with ``mean``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        kernel_size: int = 3,
        window: str = "none",
        depth: int = 6,
        width: int = 256,
        stem_width: int | None = None,
        downsampling: Downsampling = "stride",
        window_scope: WindowScope = "all",
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        check_kernel_size(kernel_size)
        check_window(window)
        _check_choice("depth", depth, range(2, 33))
        _check_choice("downsampling", downsampling, DOWNSAMPLINGS)
        _check_choice("window_scope", window_scope, WINDOW_SCOPES)
        if width < 1 or (stem_width is not None and stem_width < 1):
            raise ValueError(f"width and stem_width must be >= 1, got {width} and {stem_width}")
        stem_width = stem_width or max(1, width // 2)
        block_window = window if window_scope == "all" else "none"

        self.normalize = InputNormalization(mean, std)
        stem_stride = 2 if downsampling == "stride" else 1
        layers: list[nn.Module] = [*_conv_bn_relu(in_channels, stem_width, STEM_KERNEL_SIZE, window, stem_stride)]
        if downsampling == "maxpool":
            layers.append(nn.MaxPool2d(2))
        channels = stem_width
        for _ in range(depth - 1):
            layers.extend(_conv_bn_relu(channels, width, kernel_size, block_window, 1))
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, H, W) pixels in [0, 1] -> logits (N, num_classes)
        features = self.features(self.normalize(x))
        return self.classifier(torch.flatten(self.pool(features), 1))


def _conv_bn_relu(in_ch: int, out_ch: int, k: int, window: str, stride: int) -> list[nn.Module]:
    conv = WindowedConv2d(in_ch, out_ch, k, window=window, stride=stride, padding=k // 2, bias=False)
    return [conv, nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


def _check_choice(name: str, value: object, allowed: object) -> None:
    if value not in allowed:  # type: ignore[operator]
        shown = f"{allowed.start}..{allowed.stop - 1}" if isinstance(allowed, range) else ", ".join(map(str, allowed))  # type: ignore[arg-type]
        raise ValueError(f"{name} must be one of {shown}, got {value!r}")
