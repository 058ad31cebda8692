"""Faster input gradients on CPU during an attack: which convolution kernels compute them.

Gradient attacks (DeepFool, FMN, DDN, ALMA, SuperDeepFool) spend most of their time in
backward passes to the input. On CPU two choices of PyTorch's make those passes slower than
they need be, and :func:`fast_input_gradients` undoes both for the duration of an attack:

1. **Input gradients of convolutions with few input channels.** oneDNN's backward-data
   kernel for a convolution with 1 to 4 input channels (such as a stem, which sees the
   pixels) is 3 to 6 times slower than PyTorch's native kernel for the same result (a 7 x 7,
   stride-2 stem on 28 x 28 digits: 5.4 ms against 1.7 ms for 94 images, one thread, AMD
   EPYC), while for wider convolutions oneDNN is the faster. Such convolutions compute their
   input gradient with the native kernel (oneDNN is switched off, process-wide, for that one
   call); their forward pass is unchanged.
2. **Memory layout of what the backward pass reads.** Attacks run the model with
   channels-last weights, which speeds up the forward pass of large kernels, but the
   gradient arriving from global pooling is in the default layout. Every ReLU and
   BatchNorm backward then mixes two layouts and runs about 20 times slower than with one
   (``threshold_backward`` on 94 x 16 x 14 x 14: 1.8 ms against 0.09 ms). Activations saved
   for the backward pass are therefore stored in the default layout, so the whole backward
   pass runs in one layout; the forward pass keeps channels-last.

Both change only how a gradient is computed, not what it is: gradients agree with plain
autograd to float32 rounding (relative differences below 1e-5), and forward passes are
bit-identical. Nothing is done on other devices or for convolutions whose weights require a
gradient. ``benchmarks/bench_attacks.py`` measures the effect on whole attacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Convolutions with at most this many input channels use the native input-gradient kernel:
# images have 1 (grey), 3 (RGB) or 4 (RGBA) channels; from 8 input channels on oneDNN is the
# faster (measured on 3 x 3 to 11 x 11 kernels, one thread, AMD EPYC).
NATIVE_GRADIENT_MAX_IN_CHANNELS = 4


@contextmanager
def fast_input_gradients(model: nn.Module, device: torch.device, enabled: bool = True) -> Iterator[nn.Module]:
    """Inside, input gradients of ``model`` on CPU are computed by the faster kernels (see module doc).

    Args:
        model: Any ``nn.Module``; its ``nn.Conv2d`` layers (subclasses included) with at most
            :data:`NATIVE_GRADIENT_MAX_IN_CHANNELS` input channels and zero padding are
            switched for the duration, and restored on exit.
        device: Where ``model`` runs; on anything but CPU nothing changes.
        enabled: ``False``: nothing changes (backends that must run as their library does).
    """
    if not enabled or device.type != "cpu":
        yield model
        return
    with ExitStack() as stack:
        stack.enter_context(torch.autograd.graph.saved_tensors_hooks(_default_layout, _unchanged))
        for conv in narrow_input_convolutions(model):
            stack.enter_context(_native_input_gradient(conv))
        yield model


def narrow_input_convolutions(model: nn.Module) -> list[nn.Conv2d]:
    """The ``nn.Conv2d`` layers of ``model`` whose input gradient the native kernel computes faster.

    Those with at most :data:`NATIVE_GRADIENT_MAX_IN_CHANNELS` input channels and zero
    padding given as numbers (other padding modes stay with ``nn.Conv2d``'s own code).
    """
    return [
        module for module in model.modules()
        if isinstance(module, nn.Conv2d)
        and module.in_channels <= NATIVE_GRADIENT_MAX_IN_CHANNELS
        and module.padding_mode == "zeros"
        and isinstance(module.padding, tuple)  # "same"/"valid" strings: left to nn.Conv2d
    ]


@contextmanager
def _native_input_gradient(conv: nn.Conv2d) -> Iterator[None]:
    """``conv``'s convolutions go through :class:`_NativeInputGradientConv2d` inside; restored on exit."""
    had_own = "_conv_forward" in conv.__dict__
    original = conv._conv_forward

    def conv_forward(input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # noqa: A002
        if weight.requires_grad or (bias is not None and bias.requires_grad):
            return original(input, weight, bias)  # parameter gradients wanted: plain autograd
        return _NativeInputGradientConv2d.apply(input, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    conv._conv_forward = conv_forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        if had_own:
            conv._conv_forward = original  # type: ignore[method-assign]
        else:
            del conv._conv_forward


class _NativeInputGradientConv2d(torch.autograd.Function):
    """``F.conv2d`` whose backward pass computes the input gradient with PyTorch's native kernel.

    The forward pass is the very ``F.conv2d`` call ``nn.Conv2d`` makes. The weight and bias
    get no gradient (they do not require one when this is used).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, ...],
                padding: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, dilation, groups)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.geometry
        grad_input = None
        if ctx.needs_input_grad[0]:
            with _onednn_disabled():  # the native kernel
                grad_input = torch.ops.aten.convolution_backward(
                    grad_output, x, weight, None, list(stride), list(padding), list(dilation),
                    False, [0] * len(stride), groups, [True, False, False],
                )[0]
        return grad_input, None, None, None, None, None, None


@contextmanager
def _onednn_disabled() -> Iterator[None]:
    """oneDNN off for the convolutions inside (the flag ``torch.backends.mkldnn.flags`` sets,
    without also resetting its TF32 setting, which warns on CPU-only builds)."""
    enabled = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(enabled)


def _default_layout(tensor: Tensor) -> Tensor:
    """Pack hook: a channels-last float activation saved for backward is stored contiguous."""
    if tensor.is_floating_point() and tensor.dim() == 4 and not tensor.is_contiguous():
        if tensor.is_contiguous(memory_format=torch.channels_last):
            return tensor.contiguous()
    return tensor


def _unchanged(tensor: Tensor) -> Tensor:
    """Unpack hook: the stored tensor as it is."""
    return tensor
