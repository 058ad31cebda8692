"""Built-in model factories, registered by name in :data:`robustbench_win.registry.MODELS`.

Every factory takes ``in_channels`` and ``num_classes`` (from the data set) plus the model's
own keyword arguments, and returns a module mapping [0, 1] pixels to logits. Names
``torchvision:ARCH`` and ``timm:ARCH`` are routed to :mod:`robustbench_win.models.external`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from robustbench_win.models import external
from robustbench_win.models.convnext import SmallConvNeXt
from robustbench_win.models.paper_cnn import PaperCNN
from robustbench_win.models.resnet import WindowedResNet18
from robustbench_win.registry import MODELS, register_model


@register_model("paper-cnn")
def paper_cnn(**kwargs: Any) -> nn.Module:
    """The paper's CNN: 7x7/2 stem, k x k blocks, global average pool (authors' width 256)."""
    return PaperCNN(**kwargs)


@register_model("paper-cnn-small")
def paper_cnn_small(**kwargs: Any) -> nn.Module:
    """The paper's CNN at CPU size: depth 4, width 32 (stem 16) unless overridden."""
    kwargs.setdefault("depth", 4)
    kwargs.setdefault("width", 32)
    return PaperCNN(**kwargs)


@register_model("resnet18")
def resnet18_windowed(**kwargs: Any) -> nn.Module:
    """ResNet-18 for 32x32 inputs (3x3/1 stem, no max-pool, any width), k x k block convs, optional window.

    Built on torchvision's blocks but adapted to small images, as CIFAR ResNets are; see
    ``tv-resnet18`` for torchvision's architecture unchanged.
    """
    return WindowedResNet18(**kwargs)


@register_model("tv-resnet18")
def tv_resnet18(**kwargs: Any) -> nn.Module:
    """torchvision's own ResNet-18 (7x7/2 stem, max-pool, width 64), block convs resized to k x k and windowed."""
    return external.tv_resnet18(**kwargs)


@register_model("convnext-cpu")
def convnext_cpu(**kwargs: Any) -> nn.Module:
    """ConvNeXt-style network at CPU size: 2x2 patchify stem, 3 stages (width 32..128), k x k depthwise convs."""
    return SmallConvNeXt(**kwargs)


MODELS.register_route("torchvision")(external.torchvision_resolver)
MODELS.register_route("timm")(external.timm_resolver)
