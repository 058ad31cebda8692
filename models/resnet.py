"""ResNet-18 (torchvision's) with k x k block convolutions and an optional window."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from robustbench_win.models.normalize import InputNormalization
from robustbench_win.models.windowed_conv import WindowedConv2d
from robustbench_win.models.windows import check_kernel_size, check_window


class WindowedResNet18(nn.Module):
    """torchvision ResNet-18 whose residual-block convs are k x k and windowed.

    Args:
        in_channels: Image channels.
        num_classes: Output logits.
        kernel_size: Odd size of every conv inside the residual blocks (torchvision: 3).
        window: Window tapering the block convs and the stem.
        small_input_stem: ``True`` for 32x32 inputs (a 3x3 stride-1 stem and no max-pool, the
            usual CIFAR adaptation); ``False`` for ImageNet-size inputs (7x7 stride-2 stem and
            max-pool, as torchvision).
        width: Channels of the first stage (torchvision: 64); later stages double it.
        mean: Per-channel mean for normalisation inside the model (``None``: none).
        std: Per-channel std, used with ``mean``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        kernel_size: int = 3,
        window: str = "none",
        small_input_stem: bool = True,
        width: int = 64,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        check_kernel_size(kernel_size)
        check_window(window)
        net = _resnet18_with_width(width, num_classes)
        stem_k, stem_stride = (3, 1) if small_input_stem else (7, 2)
        net.conv1 = WindowedConv2d(
            in_channels, net.conv1.out_channels, stem_k, window=window, stride=stem_stride,
            padding=stem_k // 2, bias=False,
        )
        if small_input_stem:
            net.maxpool = nn.Identity()
        for module in net.modules():
            if isinstance(module, BasicBlock):
                module.conv1 = _resize(module.conv1, kernel_size, window)
                module.conv2 = _resize(module.conv2, kernel_size, window)
        self.normalize = InputNormalization(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def _resize(conv: nn.Conv2d, kernel_size: int, window: str) -> WindowedConv2d:
    return WindowedConv2d(
        conv.in_channels, conv.out_channels, kernel_size, window=window,
        stride=conv.stride, padding=kernel_size // 2, bias=False,
    )


def _resnet18_with_width(width: int, num_classes: int) -> ResNet:
    class _WideResNet(ResNet):
        def __init__(self) -> None:
            super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
            # Rebuild the stages at the requested width; torchvision hard-codes 64.
            self.inplanes = width
            self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.layer1 = self._make_layer(BasicBlock, width, 2)
            self.layer2 = self._make_layer(BasicBlock, width * 2, 2, stride=2)
            self.layer3 = self._make_layer(BasicBlock, width * 4, 2, stride=2)
            self.layer4 = self._make_layer(BasicBlock, width * 8, 2, stride=2)
            self.fc = nn.Linear(width * 8, num_classes)

    return _WideResNet()
