"""Spectral leakage of learned convolution kernels (DESIGN.md, "Spectral leakage of learned kernels").

Tomen & van Gemert (ICCV 2021) argue that a k x k kernel is a truncated filter: truncation
spreads its frequency response into side lobes (the sinc side lobes of a box), and tapering
the kernel with a window such as Hamming suppresses them. This module measures that leakage
on the kernels a network actually convolves with.

Definition, for one k x k slice ``w`` of an effective kernel (one output channel, one input
channel; the raw weight times the window for a windowed layer):

1. Zero-pad ``w`` to ``N x N`` (``N = 64`` by default, the same for every k) and take its power
   spectrum ``P[u, v] = |DFT(w)[u, v]|**2`` on the periodic ``N x N`` frequency grid.
2. Split the grid into *lobes*: every bin climbs to a local maximum by steepest ascent over
   its 8 neighbours (indices wrap around, as the DFT grid does), and a lobe is the set of bins
   that climb to the same maximum (its catchment basin). A lobe is therefore bounded by the
   minima (valleys) of ``P`` around its peak: for a box kernel, the main lobe ends at the
   first zeros of the sinc. Ties are broken towards the spectral peak: among neighbours of
   equal power (to a relative 1e-12) the one nearer (periodic Chebyshev distance) to the peak
   or its mirror wins, so a plateau drains towards the peak instead of becoming a lobe of its
   own.
3. The *main lobe* is the union of the lobes whose maximum equals the global maximum of ``P``
   (to a relative ``1e-9``). For a real kernel that is the peak and its mirror
   ``P[-u, -v] = P[u, v]``: one lobe for a low-pass (DC-peaked) kernel, two for a band-pass one.
4. ``leakage(w) = sum of P outside the main lobe / sum of P``, between 0 and 1. By Parseval
   the denominator is ``N**2 * sum(w**2)``. An all-zero slice has no spectrum: NaN.

The lobes are defined by the spectrum alone, so the measure does not depend on the window
or on k (a fixed radius in units of ``N / k`` bins would narrow as k grows and count a large,
smooth filter as leaking); scaling ``w`` by any non-zero factor leaves it unchanged. A layer
is summarised by the median over its slices, with the quartiles and the mean; a model by the
mean of its layers' medians (each layer counts once, however many channels it has; the report
averages the block layers only and keeps the stem apart, see "The null").
1 x 1 layers are skipped: a single tap has a flat spectrum and nothing to truncate.

Why not :func:`scipy.ndimage.watershed_ift`: it floods ``uint8``/``uint16`` images, which
would quantise a spectrum spanning 100 dB and more, and it has no periodic boundary, which
the DFT grid needs when a lobe straddles the Nyquist frequency. Steepest ascent with pointer
jumping is a few tensor operations vectorised over thousands of slices.

The null. The measure rises with k on kernels that have no structure at all: i.i.d. Gaussian
kernels have median leakage 0.27 at k = 3 and 0.89 at k = 11 (0.00 and 0.69 under a Hamming
window), because a larger random kernel has more, narrower lobes. A raw leakage is therefore
comparable only between layers of the same k and window; across kernel sizes it must be read
against this null. :func:`null_leakage` estimates it once per (k, window, N), with a fixed seed
(:data:`NULL_SEED`), as the median leakage of :data:`NULL_SLICES` Gaussian kernels times the
window; :func:`excess_over_null` subtracts it from a layer's median. Random kernels then score
0 in expectation at every k and window. A difference is used rather than a ratio because the
windowed 3 x 3 null is 0 (a windowed 3 x 3 is almost a single tap, whose spectrum has one
lobe), and rather than a percentile because that null is a point mass at 0, where a layer's
median and the null's percentiles are not comparable. The stronger reference, when the
weights a model started from are known, is the same measure on those weights (the learned
change); Gaussian kernels are the reference that needs no model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustbench_win.errors import BadValueError
from robustbench_win.measure.base import Measure, MeasureInput, Rows, measure_records
from robustbench_win.models.windowed_conv import WindowedConv2d
from robustbench_win.models.windows import window_2d
from robustbench_win.schema import Schema

N_FFT = 64  # zero-padded DFT size N, the same for every kernel size
TOP_RTOL = 1e-9  # maxima this close (relative) to the global maximum belong to the main lobe
TIE_RTOL = 1e-12  # powers this close (relative, per bin of distance) count as ties
# Slices per vectorised step: on a CPU small steps stay in cache (64 was fastest at N = 64);
# an accelerator wants large ones.
CPU_CHUNK_SLICES = 64
ACCELERATOR_CHUNK_SLICES = 8192
NULL_SEED = 20210  # fixed: the null of every report is the same numbers
NULL_SLICES = 1024  # Gaussian kernels per null estimate: its median to within about 0.02 (a second on a CPU)


@dataclass(frozen=True)
class ConvKernels:
    """The effective kernels of one conv layer.

    Attributes:
        layer: Module name inside the model (``model.named_modules()``).
        layer_index: Position among the model's measured conv layers, from 0.
        kernel_size: k of the layer's k x k kernel.
        window: Window name of a :class:`WindowedConv2d`, ``"none"`` for a plain conv.
        kernels: ``(out_channels * in_channels / groups, k, k)`` float64 effective kernels, on
            the model's device (the spectra are computed there).
    """

    layer: str
    layer_index: int
    kernel_size: int
    window: str
    kernels: Tensor


@dataclass(frozen=True)
class LayerLeakage:
    """Leakage summary of one conv layer: one record of :func:`model_leakage_table`.

    Attributes:
        layer: Module name inside the model.
        layer_index: Position among the model's measured conv layers, from 0.
        kernel_size: k of the layer's k x k kernel.
        window: Window name (``"none"`` for a plain conv).
        n_fft: Zero-padded DFT size N used.
        n_slices: k x k slices in the layer (out x in / groups).
        n_empty: All-zero slices, left out of the statistics (their leakage is undefined).
        leakage_median: Median leakage over the non-empty slices.
        leakage_q25: First quartile.
        leakage_q75: Third quartile.
        leakage_mean: Mean.
    """

    layer: str
    layer_index: int
    kernel_size: int
    window: str
    n_fft: int
    n_slices: int
    n_empty: int
    leakage_median: float
    leakage_q25: float
    leakage_q75: float
    leakage_mean: float


LEAKAGE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(LayerLeakage))


# --------------------------------------------------------------------------- spectra


def power_spectrum(kernels: Tensor, *, n_fft: int = N_FFT) -> Tensor:
    """Power spectra of zero-padded kernels, DC at ``[0, 0]`` (not shifted).

    Args:
        kernels: ``(S, k, k)`` real kernels (any float dtype; computed in float64).
        n_fft: Size N of the zero-padded DFT, at least k.

    Returns:
        ``(S, N, N)`` float64 ``|DFT|**2``, on the kernels' device.
    """
    _check_kernels(kernels, n_fft)
    spectrum = torch.fft.fft2(kernels.detach().double(), s=(n_fft, n_fft))
    return torch.view_as_real(spectrum).square().sum(dim=-1)  # re**2 + im**2, faster than abs()


def centred_spectrum_db(kernels: Tensor, *, n_fft: int = N_FFT, floor_db: float = -60.0) -> Tensor:
    """Power spectra for display: dB relative to each slice's peak, DC in the centre.

    Args:
        kernels: ``(S, k, k)`` real kernels.
        n_fft: Size N of the zero-padded DFT.
        floor_db: Values below this (and all-zero slices) are clipped to it.

    Returns:
        ``(S, N, N)`` float64 ``10 log10(P / max P)`` after ``fftshift``, in ``[floor_db, 0]``.
    """
    power = power_spectrum(kernels, n_fft=n_fft)
    peak = power.flatten(1).amax(dim=1).clamp_min(torch.finfo(torch.float64).tiny)
    db = 10.0 * torch.log10(power / peak[:, None, None])  # -inf where the power is 0
    return torch.fft.fftshift(db.clamp(min=floor_db), dim=(-2, -1))


def main_lobe_mask(power: Tensor, *, rtol: float = TOP_RTOL) -> Tensor:
    """Bins of each power spectrum that belong to its main lobe (module docstring, steps 2-3).

    Args:
        power: ``(S, N, M)`` non-negative float64 power spectra on the periodic DFT grid.
        rtol: Relative tolerance for a local maximum to count as the global maximum.

    Returns:
        ``(S, N, M)`` bool mask. All true for a constant (or all-zero) spectrum.
    """
    slices, rows, cols = power.shape
    # Climb on a key that orders bins by power and, among equal powers (to TIE_RTOL), by
    # nearness to the peak: a strict order along every path, so no path can cycle.
    key = power * (1.0 - TIE_RTOL * _distance_to_peak(power).to(power.dtype))
    # Each bin's largest neighbour (itself included) by a 3 x 3 max-pool on the grid padded
    # periodically; the indices point into the padded (N + 2) x (M + 2) grid.
    padded = F.pad(key[:, None], (1, 1, 1, 1), mode="circular")
    _, index = F.max_pool2d(padded, kernel_size=3, stride=1, return_indices=True)
    pointer = _unpadded_index(rows, cols, power.device)[index.view(slices, -1)]  # (S, N * M) next bin uphill
    root = _follow_to_root(pointer)  # (S, N * M) index of the maximum each bin climbs to
    flat = power.reshape(slices, -1)
    top = flat.amax(dim=1, keepdim=True)
    return (flat.gather(1, root) >= top * (1.0 - rtol)).view(slices, rows, cols)


def _unpadded_index(rows: int, cols: int, device: torch.device) -> Tensor:
    """``((N + 2) * (M + 2),)`` flat index in the N x M grid of each bin of its periodic padding."""
    row = (torch.arange(rows + 2, device=device) - 1).remainder(rows)
    col = (torch.arange(cols + 2, device=device) - 1).remainder(cols)
    return (row[:, None] * cols + col[None, :]).flatten()


def _distance_to_peak(power: Tensor) -> Tensor:
    """``(S, N, M)`` periodic Chebyshev distance of each bin to the peak or its mirror."""
    slices, rows, cols = power.shape
    peak = power.reshape(slices, -1).argmax(dim=1)
    peak_row, peak_col = peak // cols, peak % cols
    row_index, col_index = torch.arange(rows, device=power.device), torch.arange(cols, device=power.device)

    def to(target_row: Tensor, target_col: Tensor) -> Tensor:
        dr = (row_index[None, :] - target_row[:, None]).remainder(rows)
        dc = (col_index[None, :] - target_col[:, None]).remainder(cols)
        dr, dc = torch.minimum(dr, rows - dr), torch.minimum(dc, cols - dc)  # (S, N), (S, M)
        return torch.maximum(dr[:, :, None], dc[:, None, :])

    return torch.minimum(to(peak_row, peak_col), to((-peak_row).remainder(rows), (-peak_col).remainder(cols)))


def _follow_to_root(pointer: Tensor) -> Tensor:
    """Follow ``pointer`` (``(S, B)`` index of each bin's next bin uphill) to its fixed point.

    Pointer jumping: after j rounds every bin points ``2**j`` steps up its path, so a path of
    length B needs ``ceil(log2 B)`` rounds.
    """
    for _ in range(max(1, math.ceil(math.log2(pointer.shape[1]))) + 1):
        jumped = pointer.gather(1, pointer)
        if torch.equal(jumped, pointer):
            break
        pointer = jumped
    return pointer


# --------------------------------------------------------------------------- per-slice measures


def slice_leakage(kernels: Tensor, *, n_fft: int = N_FFT, chunk_slices: int | None = None) -> Tensor:
    """Leakage of every slice: the share of spectral energy outside the main lobe.

    Args:
        kernels: ``(S, k, k)`` real effective kernels.
        n_fft: Size N of the zero-padded DFT, at least k.
        chunk_slices: Slices processed together (memory grows linearly with it); default
            :data:`CPU_CHUNK_SLICES` on a CPU, :data:`ACCELERATOR_CHUNK_SLICES` elsewhere.

    Returns:
        ``(S,)`` float64 leakage in [0, 1] on the CPU (computed on the kernels' device); NaN for
        an all-zero slice.
    """
    parts = []
    for power, side_lobes in _spectra(kernels, n_fft, chunk_slices):
        total = power.sum(dim=1)
        parts.append(torch.where(total > 0, side_lobes.sum(dim=1) / total, math.nan).cpu())
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def peak_side_lobe_db(kernels: Tensor, *, n_fft: int = N_FFT, chunk_slices: int | None = None) -> Tensor:
    """Peak side-lobe level: the largest power outside the main lobe relative to the peak, in dB.

    The classic figure of merit of a window (about -13 dB for a box, -43 dB for Hamming).

    Args:
        kernels: ``(S, k, k)`` real kernels.
        n_fft: Size N of the zero-padded DFT (larger N samples the side lobes' tops finer).
        chunk_slices: Slices processed together (default as :func:`slice_leakage`).

    Returns:
        ``(S,)`` float64 dB; ``-inf`` where the spectrum has a single lobe, NaN for all-zero.
    """
    parts = []
    for power, side_lobes in _spectra(kernels, n_fft, chunk_slices):
        peak = power.amax(dim=1)
        parts.append(torch.where(peak > 0, 10.0 * torch.log10(side_lobes.amax(dim=1) / peak), math.nan).cpu())
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def _spectra(kernels: Tensor, n_fft: int, chunk_slices: int | None) -> Iterator[tuple[Tensor, Tensor]]:
    """Per chunk of slices: ``(C, N * N)`` power spectra, and the same with the main lobe zeroed."""
    _check_kernels(kernels, n_fft)
    if chunk_slices is None:
        chunk_slices = CPU_CHUNK_SLICES if kernels.device.type == "cpu" else ACCELERATOR_CHUNK_SLICES
    _check_positive("chunk_slices", chunk_slices)
    for chunk in kernels.split(chunk_slices) if len(kernels) else ():
        power = power_spectrum(chunk, n_fft=n_fft)
        yield power.flatten(1), torch.where(main_lobe_mask(power), 0.0, power).flatten(1)


# --------------------------------------------------------------------------- models


def effective_kernels(model: nn.Module) -> list[ConvKernels]:
    """The kernels every ``nn.Conv2d`` of ``model`` convolves with, 1 x 1 layers excluded.

    A :class:`~robustbench_win.models.WindowedConv2d` contributes its raw weight times its
    window, a plain ``nn.Conv2d`` its weight. Dilation is not applied: the slices are the k x k
    taps.

    Raises:
        ValueError: A conv layer has a non-square kernel.
    """
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d) or module.kernel_size == (1, 1):
            continue
        height, width = module.kernel_size
        if height != width:
            raise BadValueError(
                f"spectral leakage is measured on square k x k kernels; layer '{name}' has a "
                f"{height} x {width} kernel"
            )
        with torch.no_grad():
            weight = module.windowed_weight() if isinstance(module, WindowedConv2d) else module.weight
        window = module.window_name if isinstance(module, WindowedConv2d) else "none"
        kernels = weight.detach().double().reshape(-1, height, width)
        found.append(ConvKernels(name, len(found), height, window, kernels))
    return found


def layer_leakage(model: nn.Module, *, n_fft: int = N_FFT) -> list[LayerLeakage]:
    """Leakage summary of every conv layer of ``model`` (module docstring), in module order."""
    return [_summarise(layer, slice_leakage(layer.kernels, n_fft=n_fft), n_fft) for layer in effective_kernels(model)]


def model_leakage_table(model: nn.Module, *, n_fft: int = N_FFT) -> pd.DataFrame:
    """One record per conv layer of ``model``, columns :data:`LEAKAGE_COLUMNS`."""
    records = [asdict(summary) for summary in layer_leakage(model, n_fft=n_fft)]
    return pd.DataFrame.from_records(records, columns=list(LEAKAGE_COLUMNS))


def overall_leakage(table: pd.DataFrame) -> float:
    """A model's leakage: the mean of its layers' medians (a :func:`model_leakage_table`); NaN if none."""
    medians = table["leakage_median"].dropna()
    return float(medians.mean()) if len(medians) else math.nan


def _summarise(layer: ConvKernels, leakage: Tensor, n_fft: int) -> LayerLeakage:
    values = leakage.numpy()
    finite = values[~np.isnan(values)]
    q25, median, q75 = np.quantile(finite, [0.25, 0.5, 0.75]) if len(finite) else (math.nan,) * 3
    return LayerLeakage(
        layer=layer.layer, layer_index=layer.layer_index, kernel_size=layer.kernel_size,
        window=layer.window, n_fft=n_fft, n_slices=len(values), n_empty=len(values) - len(finite),
        leakage_median=float(median), leakage_q25=float(q25), leakage_q75=float(q75),
        leakage_mean=float(finite.mean()) if len(finite) else math.nan,
    )


# --------------------------------------------------------------------------- the null


def random_kernels(kernel_size: int, window: str, count: int, *, generator: torch.Generator) -> Tensor:
    """Unstructured kernels: i.i.d. standard Gaussian taps times the (symmetric) window.

    Args:
        kernel_size: k.
        window: A window name of :data:`robustbench_win.models.windows.WINDOWS` (``"none"``: no taper).
        count: Slices wanted.
        generator: The random generator to draw from.

    Returns:
        ``(count, k, k)`` float64 kernels on the CPU.
    """
    _check_positive("count", count)
    taps = torch.randn(count, kernel_size, kernel_size, generator=generator, dtype=torch.float64)
    return taps * window_2d(window, kernel_size, dtype=torch.float64)


@functools.lru_cache(maxsize=None)
def null_leakage(kernel_size: int, window: str, *, n_fft: int = N_FFT) -> float:
    """Median leakage of Gaussian random k x k kernels under ``window`` (module docstring, "The null").

    Estimated once per process and arguments from :data:`NULL_SLICES` kernels drawn with
    :data:`NULL_SEED`, so every report uses the same value. About a second per call on a CPU.
    """
    generator = torch.Generator().manual_seed(NULL_SEED)
    leakage = slice_leakage(random_kernels(kernel_size, window, NULL_SLICES, generator=generator), n_fft=n_fft)
    return float(torch.nanquantile(leakage, 0.5))


def excess_over_null(leakage_median: float, kernel_size: int, window: str, *, n_fft: int = N_FFT) -> float:
    """A layer's median leakage minus :func:`null_leakage` of its k and window: 0 for unstructured
    kernels at every k, negative for kernels that leak less than random ones of their size."""
    return leakage_median - null_leakage(kernel_size, window, n_fft=n_fft)


def strongest_slices(kernels: Tensor, count: int) -> Tensor:
    """The ``count`` slices with the most energy (``sum w**2``), strongest first: figure examples.

    Args:
        kernels: ``(S, k, k)`` kernels.
        count: Slices wanted (fewer if the layer has fewer).

    Returns:
        ``(min(count, S),)`` int64 slice indices.
    """
    _check_positive("count", count)
    energy = kernels.detach().double().flatten(1).square().sum(dim=1)
    return torch.argsort(energy, descending=True, stable=True)[:count]


# --------------------------------------------------------------------------- the stored measure

LEAKAGE_MEASURE = "spectral"  # step name of the leakage and kernel records
# Step name of the leakage records of the untrained model of the same seed (its initial weights).
LEAKAGE_INIT_MEASURE = "spectral-init"
EXAMPLE_SLICES = 4  # strongest kernel slices stored per model for the kernel figure
# How kernel_example_rows picks the slices it stores (said in the kernel figure's caption).
EXAMPLE_RULE = "the strongest k×k slices by energy (sum of squared weights) of the last measured conv layer"


@dataclass(frozen=True)
class KernelExample:
    """One tap of an example kernel slice of a model (the report draws kernels and spectra from these).

    Attributes:
        layer: Module name of the conv layer.
        layer_index: Position among the model's measured conv layers, from 0.
        slice: Rank of the slice by energy in its layer (0: the strongest).
        row: Tap row, 0..k-1.
        col: Tap column, 0..k-1.
        weight: The effective weight (raw weight times the window).
    """

    layer: str
    layer_index: int
    slice: int
    row: int
    col: int
    weight: float


@dataclass(frozen=True)
class LayerShape:
    """A conv layer's own kernel size and window (the stem's differ from the model's k and window)."""

    layer_kernel_size: int
    layer_window: str


LEAKAGE_LAYER_FIELDS = ("layer", "layer_index")
LEAKAGE_VALUE_FIELDS = ("n_fft", "n_slices", "n_empty", "leakage_median", "leakage_q25", "leakage_q75", "leakage_mean")
LEAKAGE_RECORDS = measure_records(
    "leakage", Schema.of(LayerLeakage, LEAKAGE_LAYER_FIELDS) + Schema.of(LayerShape)
    + Schema.of(LayerLeakage, LEAKAGE_VALUE_FIELDS), unique=("layer_index",), sort=("layer_index",))
KERNEL_RECORDS = measure_records("kernels", Schema.of(KernelExample), unique=("layer_index", "slice", "row", "col"),
                                 sort=("layer_index", "slice", "row", "col"))


def leakage_rows(model: nn.Module, *, n_fft: int = N_FFT) -> list[dict[str, Any]]:
    """One row per conv layer: :func:`layer_leakage`, the layer's own kernel size and window as
    ``layer_kernel_size`` and ``layer_window``.

    Stored twice per model: on the trained model (step :data:`LEAKAGE_MEASURE`) and on the
    untrained model of the same seed (step :data:`LEAKAGE_INIT_MEASURE`, the null the trained
    layers are read against).
    """
    rows = []
    for summary in layer_leakage(model, n_fft=n_fft):
        row = asdict(summary)
        row["layer_kernel_size"], row["layer_window"] = row.pop("kernel_size"), row.pop("window")
        rows.append(row)
    return rows


def kernel_example_rows(model: nn.Module, *, count: int = EXAMPLE_SLICES) -> list[dict[str, Any]]:
    """The ``count`` strongest effective kernel slices of the model's last measured conv layer, one row per tap.

    The last layer is a block layer of the model's own kernel size in the paper CNN and the
    ResNet (the stem keeps its 7 x 7).
    """
    layers = effective_kernels(model)
    if not layers:
        return []
    layer = layers[-1]
    rows = []
    for rank, slice_index in enumerate(strongest_slices(layer.kernels, count).tolist()):
        kernel = layer.kernels[slice_index].cpu()
        rows += [{"layer": layer.layer, "layer_index": layer.layer_index, "slice": rank, "row": r, "col": c,
                  "weight": float(kernel[r, c])}
                 for r in range(kernel.shape[0]) for c in range(kernel.shape[1])]
    return rows


def _trained_records(measured: MeasureInput) -> tuple[Rows, Rows]:
    return leakage_rows(measured.model), kernel_example_rows(measured.model)


def _initial_records(measured: MeasureInput) -> tuple[Rows]:
    return (leakage_rows(measured.model),)


TRAINED_LEAKAGE = Measure("leakage", ((LEAKAGE_RECORDS, LEAKAGE_MEASURE), (KERNEL_RECORDS, LEAKAGE_MEASURE)),
                          _trained_records)
# The untrained model of the same seed, built exactly as training builds it (windowed like the
# trained model): the null its layers are read against.
INITIAL_LEAKAGE = Measure("leakage-init", ((LEAKAGE_RECORDS, LEAKAGE_INIT_MEASURE),), _initial_records, trained=False)


# --------------------------------------------------------------------------- validation


def _check_kernels(kernels: Tensor, n_fft: int) -> None:
    if isinstance(n_fft, bool) or not isinstance(n_fft, int) or n_fft < 2:
        raise ValueError(f"n_fft must be an integer >= 2, got {n_fft!r}")
    if not isinstance(kernels, Tensor) or kernels.ndim != 3 or kernels.is_complex() or not kernels.is_floating_point():
        shape = tuple(kernels.shape) if isinstance(kernels, Tensor) else type(kernels).__name__
        raise ValueError(f"kernels must be a real float tensor of shape (slices, k, k), got {shape}")
    if max(kernels.shape[1:]) > n_fft:
        raise BadValueError(
            f"n_fft must be at least the kernel size to zero-pad it: kernels are "
            f"{kernels.shape[1]} x {kernels.shape[2]}, n_fft is {n_fft}"
        )


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
