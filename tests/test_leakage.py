"""Spectral leakage of kernels (DESIGN.md, "Spectral leakage of learned kernels").

References are independent of the module: numpy's FFT, numpy's Hamming window, closed-form
DTFTs of the box and Hamming windows, and main lobes drawn by hand on synthetic spectra.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from robustbench_win.measure.leakage import (
    LEAKAGE_COLUMNS,
    centred_spectrum_db,
    effective_kernels,
    model_leakage_table,
    main_lobe_mask,
    overall_leakage,
    peak_side_lobe_db,
    power_spectrum,
    slice_leakage,
    strongest_slices,
)
from robustbench_win.models import PaperCNN, WindowedResNet18

KERNEL_SIZES = [3, 5, 7, 9, 11]


def box(k: int) -> torch.Tensor:
    return torch.ones(1, k, k, dtype=torch.float64)


def hamming(k: int) -> torch.Tensor:
    return torch.from_numpy(np.outer(np.hamming(k), np.hamming(k)))[None]


def gabor(k: int, *, sigma: float = 3.0, frequency: float = 0.2, angle_deg: float = 30.0) -> torch.Tensor:
    """A band-pass Gabor filter (Gaussian envelope ``sigma`` px, ``frequency`` cycles/px), k x k."""
    r = np.arange(k) - (k - 1) / 2
    y, x = np.meshgrid(r, r, indexing="ij")
    along = x * math.cos(math.radians(angle_deg)) + y * math.sin(math.radians(angle_deg))
    envelope = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return torch.from_numpy(envelope * np.cos(2 * math.pi * frequency * along))[None]


# --------------------------------------------------------------------------- the paper's examples


def test_truncated_gabor_leaks_more_than_tapered_or_large_one() -> None:
    # Tomen & van Gemert, Figure 1: a Gabor truncated to 7 x 7 (its envelope still 0.6 at the
    # edge) leaks; tapering it with a Hamming window, or not truncating it (49 x 49, 8 sigma),
    # does not.
    truncated = slice_leakage(gabor(7)).item()
    tapered = slice_leakage(gabor(7) * hamming(7)).item()
    large = slice_leakage(gabor(49)).item()
    assert truncated > 0.02
    assert tapered < truncated / 10
    assert large < truncated / 10


def test_untruncated_band_pass_filter_has_two_lobe_main_lobe() -> None:
    # The spectrum of a real band-pass filter has its peak and the mirror peak; both are the
    # main lobe. Counting only one would put half of the energy outside (leakage 0.5).
    assert slice_leakage(gabor(49)).item() < 1e-6


@pytest.mark.parametrize("k", KERNEL_SIZES)
def test_box_kernel_leaks_more_than_hamming(k: int) -> None:
    assert slice_leakage(box(k)).item() > slice_leakage(hamming(k)).item() + 0.05


def test_box_leakage_matches_sinc_main_lobe_share() -> None:
    # Large k: the box's spectrum tends to sinc^2 along each axis, whose main lobe holds
    # Si(2 pi) / (pi / 2) = 90.28 % of the energy; in 2-D the share is squared.
    from scipy.special import sici

    main_share_1d = sici(2 * math.pi)[0] / (math.pi / 2)
    expected = 1 - main_share_1d**2
    assert slice_leakage(box(31), n_fft=512).item() == pytest.approx(expected, abs=0.005)


# --------------------------------------------------------------------------- side-lobe levels


def dirichlet(omega: np.ndarray, k: int) -> np.ndarray:
    """DTFT of a centred length-k box: sin(k w / 2) / sin(w / 2) (k at w = 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.sin(k * omega / 2) / np.sin(omega / 2)
    return np.where(np.isclose(np.sin(omega / 2), 0), k * np.cos(k * omega / 2) / np.cos(omega / 2), value)


def closed_form_psl_db(k: int, window: str) -> float:
    """Peak side-lobe level of the 1-D window's DTFT, from its closed form on a fine grid."""
    omega = np.linspace(0, math.pi, 200_001)
    if window == "box":
        response = dirichlet(omega, k)
    else:  # symmetric Hamming, centred: 0.54 + 0.46 cos(2 pi m / (k - 1)), m = -(k-1)/2 .. (k-1)/2
        step = 2 * math.pi / (k - 1)
        response = 0.54 * dirichlet(omega, k) + 0.23 * (dirichlet(omega - step, k) + dirichlet(omega + step, k))
    first_null = np.argmax(np.diff(np.abs(response)) > 0)  # first minimum of |W|
    return float(20 * np.log10(np.abs(response[first_null:]).max() / abs(response[0])))


@pytest.mark.parametrize(("k", "window"), [(11, "box"), (11, "hamming"), (63, "box"), (63, "hamming")])
def test_peak_side_lobe_matches_closed_form(k: int, window: str) -> None:
    # A separable 2-D window's largest side lobe lies on an axis, at the 1-D level.
    kernel = box(k) if window == "box" else hamming(k)
    measured = peak_side_lobe_db(kernel, n_fft=1024).item()
    assert measured == pytest.approx(closed_form_psl_db(k, window), abs=0.05)


def test_peak_side_lobe_levels_are_the_textbook_ones() -> None:
    # Harris (1978): rectangular -13 dB, Hamming -43 dB.
    assert peak_side_lobe_db(box(63), n_fft=1024).item() == pytest.approx(-13.26, abs=0.1)
    assert peak_side_lobe_db(hamming(63), n_fft=1024).item() == pytest.approx(-43, abs=1.0)


# --------------------------------------------------------------------------- properties


def test_power_spectrum_matches_numpy() -> None:
    kernels = torch.randn(3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = np.abs(np.fft.fft2(kernels.numpy(), s=(16, 16))) ** 2
    np.testing.assert_allclose(power_spectrum(kernels, n_fft=16).numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-6, 0.3, -2.0, 1e5])
def test_leakage_is_invariant_to_scale(scale: float) -> None:
    kernels = torch.randn(40, 7, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(slice_leakage(kernels * scale), slice_leakage(kernels), rtol=0, atol=1e-10)


def test_leakage_does_not_depend_on_float_precision_of_input() -> None:
    kernels = torch.randn(20, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(slice_leakage(kernels.float()), slice_leakage(kernels.float().double()))


def test_chunking_does_not_change_results() -> None:
    kernels = torch.randn(50, 3, 3, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(slice_leakage(kernels, chunk_slices=7), slice_leakage(kernels, chunk_slices=50))


def test_single_tap_and_empty_slices() -> None:
    delta = torch.zeros(1, 5, 5, dtype=torch.float64)
    delta[0, 1, 3] = 2.0  # a flat spectrum: one lobe covering everything
    zero = torch.zeros(1, 5, 5, dtype=torch.float64)
    leakage = slice_leakage(torch.cat([delta, zero]))
    assert leakage[0].item() == 0.0
    assert math.isnan(leakage[1].item())
    assert slice_leakage(torch.zeros(0, 3, 3)).shape == (0,)


# --------------------------------------------------------------------------- main lobe, by hand


def separable_spectrum(profile: list[float], size: int) -> torch.Tensor:
    """``P[u, v] = a(|u|) a(|v|)`` with ``a`` given by ``profile`` over periodic distance to bin 0."""
    distance = np.minimum(np.arange(size), size - np.arange(size))
    a = np.asarray(profile)[distance]
    return torch.from_numpy(np.outer(a, a))[None]


def periodic_box(size: int, radius: int, centre: tuple[int, int] = (0, 0)) -> np.ndarray:
    index = np.arange(size)
    near = [np.minimum((index - c) % size, (c - index) % size) <= radius for c in centre]
    return np.outer(near[0], near[1])


def test_main_lobe_ends_at_first_minimum_and_wraps_around() -> None:
    # Peak at bin (0, 0): the lobe spans the grid's corners. First minimum at distance 3, a side
    # lobe peaking at 5; the valley bin at distance 3 climbs to the steeper main-lobe side.
    profile = [1.0, 0.8, 0.4, 0.01, 0.05, 0.1, 0.05, 0.02, 0.01]
    mask = main_lobe_mask(separable_spectrum(profile, 16))[0].numpy()
    np.testing.assert_array_equal(mask, periodic_box(16, 3))


def test_main_lobe_follows_the_peak_anywhere_on_the_grid() -> None:
    profile = [1.0, 0.8, 0.4, 0.01, 0.05, 0.1, 0.05, 0.02, 0.01]
    shifted = torch.roll(separable_spectrum(profile, 16), shifts=(5, 9), dims=(1, 2))
    np.testing.assert_array_equal(main_lobe_mask(shifted)[0].numpy(), periodic_box(16, 3, centre=(5, 9)))


def test_plateau_on_the_main_lobe_slope_stays_in_the_main_lobe() -> None:
    # A shelf of equal power (distances 1..3) before the first minimum (distance 4): without a
    # tie rule its bins would have no higher neighbour and count as lobes of their own.
    profile = [1.0, 0.5, 0.5, 0.5, 0.2, 0.3, 0.25, 0.22, 0.21]
    mask = main_lobe_mask(separable_spectrum(profile, 16))[0].numpy()
    np.testing.assert_array_equal(mask, periodic_box(16, 4))


def test_equal_peaks_all_belong_to_the_main_lobe() -> None:
    profile = [1.0, 0.8, 0.4, 0.01, 0.05, 0.1, 0.05, 0.02, 0.01]
    one = separable_spectrum(profile + [0.01] * 8, 32)
    two = torch.maximum(one, torch.roll(one, shifts=(16, 16), dims=(1, 2)))
    expected = periodic_box(32, 3) | periodic_box(32, 3, centre=(16, 16))
    np.testing.assert_array_equal(main_lobe_mask(two)[0].numpy(), expected)


# --------------------------------------------------------------------------- models


def test_effective_kernels_are_raw_weight_times_window() -> None:
    torch.manual_seed(0)
    model = PaperCNN(in_channels=3, num_classes=10, kernel_size=5, window="hamming", depth=2, width=4, stem_width=2)
    stem, block = effective_kernels(model)
    conv = model.features[3]
    expected = conv.weight.detach().double().numpy() * np.outer(np.hamming(5), np.hamming(5))
    np.testing.assert_allclose(block.kernels.numpy(), expected.reshape(-1, 5, 5), rtol=1e-6)
    assert (stem.kernel_size, stem.window, stem.kernels.shape) == (7, "hamming", (3 * 2, 7, 7))


def test_leakage_table_has_one_row_per_conv_layer() -> None:
    model = PaperCNN(in_channels=1, num_classes=10, kernel_size=9, window="hann", depth=3, width=4, stem_width=2)
    table = model_leakage_table(model)
    assert list(table.columns) == list(LEAKAGE_COLUMNS)
    assert table["layer"].tolist() == ["features.0", "features.3", "features.6"]
    assert table["kernel_size"].tolist() == [7, 9, 9]
    assert table["n_slices"].tolist() == [1 * 2, 2 * 4, 4 * 4]
    assert table["layer_index"].tolist() == [0, 1, 2]
    assert set(table["window"]) == {"hann"}
    assert table["leakage_median"].between(0, 1).all()
    assert (table["leakage_q25"] <= table["leakage_median"]).all()
    assert (table["leakage_median"] <= table["leakage_q75"]).all()
    assert overall_leakage(table) == pytest.approx(table["leakage_median"].mean())


def test_leakage_table_skips_one_by_one_convs() -> None:
    # ResNet-18: a 3x3 stem, 16 k x k block convs and three 1x1 shortcut convs (skipped).
    table = model_leakage_table(WindowedResNet18(in_channels=3, num_classes=10, kernel_size=5, width=2))
    assert len(table) == 17
    assert table["kernel_size"].tolist() == [3] + [5] * 16


def test_plain_conv_counts_as_unwindowed() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 1))
    table = model_leakage_table(model)
    assert table[["layer", "window", "kernel_size", "n_slices"]].values.tolist() == [["0", "none", 3, 2]]


def test_empty_slices_are_counted_and_left_out() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False))
    with torch.no_grad():
        model[0].weight[:2] = 0.0
        model[0].weight[2:] = torch.ones(3, 3)
    row = model_leakage_table(model).iloc[0]
    assert (row["n_slices"], row["n_empty"]) == (4, 2)
    assert row["leakage_median"] == pytest.approx(slice_leakage(box(3)).item())


def test_non_square_kernels_are_refused() -> None:
    with pytest.raises(ValueError, match="1 x 7"):
        effective_kernels(nn.Sequential(nn.Conv2d(1, 1, (1, 7))))


# --------------------------------------------------------------------------- helpers and validation


def test_centred_spectrum_puts_dc_in_the_centre_at_zero_db() -> None:
    db = centred_spectrum_db(box(5), n_fft=32, floor_db=-50)
    assert db.shape == (1, 32, 32)
    assert db[0, 16, 16].item() == pytest.approx(0.0)
    assert db.min().item() == -50


def test_strongest_slices_orders_by_energy() -> None:
    kernels = torch.stack([torch.full((3, 3), v) for v in (0.1, -3.0, 2.0)])
    assert strongest_slices(kernels, 2).tolist() == [1, 2]


@pytest.mark.parametrize(
    ("kernels", "n_fft", "message"),
    [
        (torch.ones(1, 9, 9), 8, "at least the kernel size"),
        (torch.ones(9, 9), 64, r"shape \(slices, k, k\)"),
        (torch.ones(1, 3, 3), 1, "n_fft must be an integer >= 2"),
    ],
)
def test_bad_inputs_are_refused(kernels: torch.Tensor, n_fft: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        slice_leakage(kernels, n_fft=n_fft)
