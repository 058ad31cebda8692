"""Symmetric window functions and their 2-D outer products (DESIGN.md section 2).

Every window is the *symmetric* form used for filter design, the one ``numpy.hamming(N)``
returns: ``w[n] = 0.54 - 0.46 cos(2 pi n / (N - 1))`` for ``n = 0..N-1``. PyTorch's
``torch.hamming_window(N)`` defaults to the *periodic* form, which is not what the paper uses.
"""

from __future__ import annotations

import math

import torch

KAISER_BETA = 14.0  # the value in the authors' code

WINDOWS: tuple[str, ...] = ("none", "hamming", "hann", "blackman", "kaiser")


def check_kernel_size(kernel_size: int) -> int:
    """Return ``kernel_size`` if it is an odd integer >= 1, else raise ``ValueError``."""
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise ValueError(f"kernel size must be an odd integer >= 1, got {kernel_size!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel size must be an odd integer >= 1 (3, 5, 7, ...) so the kernel has a centre, "
            f"got {kernel_size}"
        )
    return kernel_size


def check_window(window: str) -> str:
    """Return ``window`` if it names a known window, else raise ``ValueError``."""
    if window not in WINDOWS:
        raise ValueError(f"unknown window '{window}'; expected one of {', '.join(WINDOWS)}")
    return window


def window_1d(window: str, size: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Symmetric 1-D window of length ``size``.

    Args:
        window: One of :data:`WINDOWS`. ``"none"`` is the rectangular window (all ones).
        size: Window length, an odd integer >= 1.
        dtype: Floating point type of the result.

    Returns:
        Tensor of shape ``(size,)``. A length-1 window is ``[1.0]`` for every name, as in numpy.
    """
    check_window(window)
    check_kernel_size(size)
    if window == "none" or size == 1:
        return torch.ones(size, dtype=dtype)
    if window == "kaiser":
        return torch.kaiser_window(size, periodic=False, beta=KAISER_BETA, dtype=torch.float64).to(dtype)
    n = torch.arange(size, dtype=torch.float64)
    phase = 2.0 * math.pi * n / (size - 1)
    if window == "hamming":
        values = 0.54 - 0.46 * torch.cos(phase)
    elif window == "hann":
        values = 0.5 - 0.5 * torch.cos(phase)
    else:  # blackman, with numpy's exact coefficients
        values = 0.42 - 0.5 * torch.cos(phase) + 0.08 * torch.cos(2.0 * phase)
    return values.to(dtype)


def window_2d(window: str, size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """2-D window ``w (x) w`` of shape ``(size, size)``, not renormalised."""
    w = window_1d(window, size, dtype=torch.float64)
    return torch.outer(w, w).to(dtype)
