"""Built-in model factories, registered by name in :data:`robustbench_win.registry.MODELS`.

Every factory takes ``in_channels`` and ``num_classes`` (from the data set) plus the model's
own keyword arguments, and returns a module mapping [0, 1] pixels to logits.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from robustbench_win.models.paper_cnn import PaperCNN
from robustbench_win.models.resnet import WindowedResNet18
from robustbench_win.registry import register_model


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
    """torchvision ResNet-18 with k x k block convs and an optional window."""
    return WindowedResNet18(**kwargs)
