"""Apply the paper's change to any PyTorch model: window (and optionally resize) its spatial convs.

:func:`windowize` replaces every spatial ``nn.Conv2d`` of a model (kernel larger than 1 x 1)
by a :class:`~robustbench_win.models.WindowedConv2d` carrying the same weights, in place.
``1 x 1`` convs are left alone: a window of length 1 is ``[1.0]``, so windowing them would
change nothing.

Resizing to ``kernel_size`` K (from the layer's k, both odd):

- growing (K > k): the k x k weight is placed at the centre of a K x K zero weight;
- shrinking (K < k): the centre K x K of the weight is kept, the border taps are dropped;
- padding: each side grows (or shrinks) by ``dilation * (K - k) / 2`` along each axis, which
  keeps the output size for any stride. A "same"-style padding ``k // 2 * dilation`` becomes
  ``K // 2 * dilation``; padding 0 ("valid") grows to ``dilation * (K - k) / 2``. Grown with
  window ``"none"``, the layer computes the same function as before (the new taps are zero and
  see only padding or pixels the old kernel did not reach). A shrink that would need negative
  padding is refused.

The window (of size K) multiplies the raw weight in every forward pass, as everywhere in this
package (DESIGN.md section 2): the state dict keeps the raw weight under the same key, so
weights saved from the original model load into the windowized one when no resize happens.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from robustbench_win.models.windowed_conv import WindowedConv2d
from robustbench_win.models.windows import check_kernel_size, check_window

Scope = Literal["all", "first"]
SCOPES: tuple[str, ...] = ("all", "first")


def windowize(
    model: nn.Module, window: str = "hamming", kernel_size: int | None = None, scope: Scope = "all"
) -> nn.Module:
    """Replace the spatial convs of ``model`` by windowed equivalents with the same weights.

    Every ``nn.Conv2d`` with a kernel larger than 1 x 1 (any stride, padding, padding mode,
    groups, dilation and bias; depthwise included) becomes a
    :class:`~robustbench_win.models.WindowedConv2d` whose raw weight is the original weight
    (resized when ``kernel_size`` is given, see the module docstring). Layers already
    windowed are converted again (new window, optional resize). Nothing is changed unless
    every selected layer can be converted.

    Args:
        model: The model, changed in place (``copy.deepcopy`` it first to keep the original).
            A bare ``nn.Conv2d`` is accepted too: the converted layer is returned.
        window: One of :data:`robustbench_win.models.windows.WINDOWS`; ``"none"`` gives a
            model computing exactly what the original computed (when no resize happens).
        kernel_size: Odd size every converted kernel is resized to; ``None`` keeps each size.
        scope: ``"all"`` spatial convs, or the ``"first"`` one in module order
            (``model.named_modules()``), as the paper's first-layer variant.

    Returns:
        ``model`` itself (or the new layer when ``model`` is a conv).

    Raises:
        ValueError: Unknown window or scope, bad ``kernel_size``, or a layer that cannot be
            converted (its qualified name is in the message, with what to do).
    """
    check_window(window)
    if kernel_size is not None:
        check_kernel_size(kernel_size)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    targets = [(name, module) for name, module in model.named_modules() if _is_spatial_conv(module)]
    if scope == "first":
        targets = targets[:1]
    # Build every replacement before changing anything, so a refusal leaves the model intact.
    replacements = [(name, windowed_copy(conv, window, kernel_size, name=name or "<model>")) for name, conv in targets]
    for name, new in replacements:
        if not name:
            return new
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, new)
    return model


def windowed_copy(conv: nn.Conv2d, window: str, kernel_size: int | None = None, *, name: str = "conv") -> WindowedConv2d:
    """A :class:`WindowedConv2d` with the weights of ``conv``, resized to ``kernel_size``.

    Args:
        conv: A plain ``nn.Conv2d`` (or a ``WindowedConv2d``) with a square, odd kernel.
        window: Window of the new layer.
        kernel_size: New odd kernel size; ``None`` keeps the layer's.
        name: The layer's qualified name, used in error messages.

    Raises:
        ValueError: The layer cannot be converted; the message says why and what to do.
    """
    size = _check_convertible(conv, name)
    new_size = size if kernel_size is None else kernel_size
    padding = _resized_padding(conv, size, new_size, name)
    new = WindowedConv2d(
        conv.in_channels, conv.out_channels, new_size, window=window, stride=conv.stride, padding=padding,
        dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None, padding_mode=conv.padding_mode,
        dtype=conv.weight.dtype,
    ).to(conv.weight.device)
    with torch.no_grad():
        new.weight.copy_(resize_kernel(conv.weight, new_size))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    new.weight.requires_grad_(conv.weight.requires_grad)  # a frozen layer stays frozen
    if conv.bias is not None:
        new.bias.requires_grad_(conv.bias.requires_grad)
    return new.train(conv.training)


def resize_kernel(weight: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-pad with zeros (growing) or centre-crop (shrinking) the last two axes to ``size``.

    Args:
        weight: ``(out, in / groups, k, k)`` with k odd.
        size: Odd target size.
    """
    k = weight.shape[-1]
    if size >= k:
        margin = (size - k) // 2
        return F.pad(weight, (margin, margin, margin, margin))
    margin = (k - size) // 2
    return weight[..., margin : margin + size, margin : margin + size]


def _is_spatial_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and tuple(module.kernel_size) != (1, 1)


def _check_convertible(conv: nn.Conv2d, name: str) -> int:
    """The layer's kernel size if :func:`windowed_copy` can convert it, else ``ValueError``."""
    if parametrize.is_parametrized(conv) or conv._forward_hooks or conv._forward_pre_hooks:
        raise ValueError(
            f"cannot windowize layer '{name}': it has parametrizations or forward hooks (weight or spectral "
            f"norm, ...) that the windowed layer would lose; remove them, windowize, then add them back"
        )
    if type(conv) not in (nn.Conv2d, WindowedConv2d):
        raise ValueError(
            f"cannot windowize layer '{name}': it is a {type(conv).__name__}, a subclass of nn.Conv2d with its own "
            f"behaviour that a WindowedConv2d would drop; replace it with a plain nn.Conv2d first, or windowize only "
            f"the sub-modules without it"
        )
    height, width = conv.kernel_size
    if height != width:
        raise ValueError(
            f"cannot windowize layer '{name}': its kernel is {height} x {width}; windowing needs square kernels "
            f"(a symmetric 2-D window); windowize the sub-modules that hold square kernels only"
        )
    if height % 2 == 0:
        raise ValueError(
            f"cannot windowize layer '{name}': its kernel is {height} x {width}, even-sized, so it has no centre "
            f"tap for a symmetric window; use an odd kernel (or a space-to-depth + 1 x 1 conv for a patchify layer)"
        )
    return height


def _resized_padding(conv: nn.Conv2d, size: int, new_size: int, name: str) -> str | tuple[int, ...]:
    """Padding that keeps the output size when the kernel goes from ``size`` to ``new_size``."""
    padding = conv.padding
    if isinstance(padding, str):
        if padding == "same" or new_size == size:
            return padding  # "same" stays "same" for the new odd kernel; "valid" at the same size stays
        padding = (0, 0)  # "valid"
    new = tuple(p + d * (new_size - size) // 2 for p, d in zip(padding, conv.dilation))
    if min(new) < 0:
        raise ValueError(
            f"cannot shrink layer '{name}' from {size} x {size} to {new_size} x {new_size}: keeping its output size "
            f"would need padding {new} (negative) from {tuple(padding)}; choose kernel_size >= {_smallest(conv, size)} "
            f"or kernel_size=None for this layer"
        )
    return new


def _smallest(conv: nn.Conv2d, size: int) -> int:
    """Smallest odd size a layer with numeric padding can shrink to without negative padding."""
    padding = (0, 0) if isinstance(conv.padding, str) else conv.padding
    return max(size - 2 * (p // d) for p, d in zip(padding, conv.dilation))
