"""Architectures from torchvision and timm, built without pretrained weights and windowized.

Weights come from a file, as for every model (``attack --weights``, or a suite's ``weights``):
nothing here downloads. A windowized layer keeps its weight under the same state-dict key, so
a state dict saved from the library's own model loads into the windowized one as long as no
kernel is resized (``kernel_size`` left out, or equal to the layers' sizes) and no input
normalisation is added (``mean``/``std`` wrap the network, prefixing its keys with ``net.``).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from torch import nn

from robustbench_win.models.normalize import InputNormalization
from robustbench_win.models.windowize import SCOPES, Scope, windowize
from robustbench_win.registry import MissingLibraryError, UnknownNameError


class Normalized(nn.Module):
    """``net(normalize(x))``: a library network fed [0, 1] pixels."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.normalize = InputNormalization(mean, std)
        self.net = net

    def forward(self, x: Any) -> Any:
        return self.net(self.normalize(x))


def tv_resnet18(
    *,
    in_channels: int,
    num_classes: int,
    kernel_size: int = 3,
    window: str = "none",
    window_scope: Scope = "all",
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> nn.Module:
    """torchvision's ``resnet18(num_classes=...)`` with its residual-block convs resized to k x k and windowed.

    The architecture is torchvision's unchanged (7 x 7 stride-2 stem, max-pool, 64..512
    channels), so 32 x 32 images shrink to 8 x 8 after the stem; the stem keeps its 7 x 7 size
    and takes the window. ``in_channels`` other than 3 replace the stem by a fresh 7 x 7 conv.
    """
    torchvision_models = importlib.import_module("torchvision.models")
    net = torchvision_models.resnet18(weights=None, num_classes=num_classes)
    _set_input_channels(net, in_channels)
    _check_scope(window_scope)
    net.conv1 = windowize(net.conv1, window)  # the stem stays 7 x 7
    for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
        windowize(stage, window if window_scope == "all" else "none", kernel_size)
    return _normalized(net, mean, std)


def torchvision_resolver(arch: str) -> Callable[..., nn.Module]:
    """The factory of ``torchvision:ARCH`` (a classification model of ``torchvision.models``)."""
    library = importlib.import_module("torchvision.models")
    available = library.list_models(module=library)
    if arch not in available:
        raise UnknownNameError(_unknown(f"torchvision:{arch}", arch, available, "torchvision.models.list_models()"))

    def build(*, in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
        def create(**library_kwargs: Any) -> nn.Module:
            net = library.get_model(arch, weights=None, num_classes=num_classes, **library_kwargs)
            _set_input_channels(net, in_channels)
            return net

        return _windowized(create, **kwargs)

    build.__doc__ = f"torchvision's {arch} (no pretrained weights), every spatial conv resized to k x k and windowed."
    return build


def timm_resolver(arch: str) -> Callable[..., nn.Module]:
    """The factory of ``timm:ARCH``; needs the optional library timm."""
    timm = _optional_library("timm", f"timm:{arch}")
    available = timm.list_models()
    if arch not in available:
        raise UnknownNameError(_unknown(f"timm:{arch}", arch, available, "timm.list_models()"))

    def build(*, in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
        def create(**library_kwargs: Any) -> nn.Module:
            return timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_channels,
                                     **library_kwargs)

        return _windowized(create, **kwargs)

    build.__doc__ = f"timm's {arch} (no pretrained weights), every spatial conv resized to k x k and windowed."
    return build


def _windowized(
    create: Callable[..., nn.Module],
    *,
    kernel_size: int | None = None,
    window: str = "none",
    window_scope: Scope = "all",
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    **library_kwargs: Any,
) -> nn.Module:
    _check_scope(window_scope)
    net = windowize(create(**library_kwargs), window if window_scope == "all" else "none", kernel_size)
    if window_scope == "first":  # every kernel resized above; the first one windowed now
        windowize(net, window, scope="first")
    return _normalized(net, mean, std)


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"window_scope must be one of {', '.join(SCOPES)}, got {scope!r}")


def _normalized(net: nn.Module, mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> nn.Module:
    if mean is None and std is None:
        return net  # state-dict keys stay the library's
    if mean is None or std is None:
        raise ValueError("give both mean and std for input normalisation, or neither")
    return Normalized(net, mean, std)


def _set_input_channels(net: nn.Module, in_channels: int) -> None:
    """Replace the first conv (module order) by a fresh one reading ``in_channels`` channels."""
    first = next(((name, m) for name, m in net.named_modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ValueError(f"{type(net).__name__} has no nn.Conv2d to read {in_channels}-channel images with")
    name, conv = first
    if conv.in_channels == in_channels:
        return
    if conv.groups != 1:
        raise ValueError(f"cannot adapt layer '{name}' of {type(net).__name__} to {in_channels} input channels: it is grouped")
    fresh = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,  # type: ignore[arg-type]
                      conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode)
    parent, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent), child, fresh)


def _optional_library(module: str, name: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingLibraryError(
            f"model '{name}' needs the optional library {module}, which is not installed: "
            f"pip install 'robustbench-win[{module}]' (or pip install {module})"
        ) from None


def _unknown(name: str, arch: str, available: list[str], listing: str) -> str:
    prefix = name.partition(":")[0]
    close = difflib.get_close_matches(arch, available, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(f'{prefix}:{c}') for c in close)}?" if close else ""
    return f"unknown model '{name}'.{hint} The names after the colon are those of {listing}."
