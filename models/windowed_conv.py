"""A drop-in replacement for ``nn.Conv2d`` whose kernel is tapered by a window function."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustbench_win.models.windows import check_kernel_size, check_window, window_2d


class WindowedConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose weight is multiplied by a 2-D window in every forward pass.

    Tomen & van Gemert (ICCV 2021): a small kernel is a truncated filter; tapering a larger
    kernel with a window (Hamming by default in the paper) reduces spectral leakage. The raw
    ``weight`` stays the learnable parameter and is what the optimiser updates and what the
    state dict holds; the window is a non-trainable buffer.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Odd integer >= 1 (square kernels only).
        window: One of :data:`robustbench_win.models.windows.WINDOWS`; ``"none"`` behaves exactly like
            ``nn.Conv2d``.
        **kwargs: Passed to ``nn.Conv2d`` (stride, padding, bias, groups, ...).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        window: str = "none",
        **kwargs: Any,
    ) -> None:
        check_kernel_size(kernel_size)
        check_window(window)
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        self.window_name = window
        # Shape (1, 1, k, k) so it broadcasts over (out, in/groups, k, k).
        self.register_buffer("window", window_2d(window, kernel_size)[None, None], persistent=False)

    def windowed_weight(self) -> torch.Tensor:
        """The kernel actually convolved: raw weight times the window."""
        if self.window_name == "none":
            return self.weight
        return self.weight * self.window.to(self.weight.dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (nn.Conv2d's name)
        return self._conv_forward(input, self.windowed_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, window={self.window_name}"
