"""The leakage measure against its null (DESIGN.md, "Spectral leakage of learned kernels").

Unstructured kernels leak more at larger k; the null-referenced measure must not. The random
kernels here are drawn with seeds other than :data:`~robustbench_win.measure.leakage.NULL_SEED`,
so they are not the kernels the null was estimated from.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from robustbench_win.analysis.diagnostic_tables import leakage_layers, leakage_per_seed, leakage_table
from robustbench_win.measure.leakage import NULL_SEED, excess_over_null, null_leakage, slice_leakage

KERNEL_SIZES = [3, 5, 7, 9, 11]
TEST_SEED = NULL_SEED + 1
LAYER_SLICES = 512  # a layer of 512 Gaussian kernels (e.g. 32 x 16 channels)
# The median of a 512-kernel layer scatters about its expectation with a standard deviation of
# at most 0.015 (Hamming k = 5, where the leakage is most spread; 16 seeds), and the null's own
# estimate (1,024 kernels) is off by up to about 0.02 there: 0.05 covers both, and is a tenth
# of the 0.5 to 0.6 the raw measure moves from k = 3 to k = 11.
TOLERANCE = 0.05


def gaussian_layer(kernel_size: int, window: str, seed: int) -> torch.Tensor:
    """Gaussian taps times numpy's symmetric window: drawn here, not by the module under test."""
    taps = torch.randn(LAYER_SLICES, kernel_size, kernel_size, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)
    if window == "none":
        return taps
    return taps * torch.from_numpy(np.outer(np.hamming(kernel_size), np.hamming(kernel_size)))


def raw_median(kernel_size: int, window: str) -> float:
    return float(slice_leakage(gaussian_layer(kernel_size, window, TEST_SEED + kernel_size)).median())


@pytest.mark.parametrize("kernel_size", KERNEL_SIZES)
@pytest.mark.parametrize("window", ["none", "hamming"])
def test_gaussian_kernels_score_the_same_normalised_leakage_at_every_k(window: str, kernel_size: int) -> None:
    normalised = excess_over_null(raw_median(kernel_size, window), kernel_size, window)
    assert abs(normalised) < TOLERANCE, normalised


@pytest.mark.parametrize("window", ["none", "hamming"])
def test_raw_leakage_of_gaussian_kernels_rises_with_k(window: str) -> None:
    # The confound the null removes: without it, a larger k alone means more leakage.
    assert raw_median(11, window) - raw_median(3, window) > 0.5
    assert raw_median(5, window) < raw_median(9, window)


def test_the_null_is_fixed_and_windowing_lowers_it() -> None:
    assert null_leakage(7, "none") == null_leakage(7, "none")  # one seed: the same number every time
    assert null_leakage(3, "hamming") == 0.0  # a windowed 3 x 3 is almost one tap: a single lobe
    assert null_leakage(11, "hamming") < null_leakage(11, "none")


def _records(rows: list[tuple[str, int, int, float]]) -> pd.DataFrame:
    """Leakage records of one paper-CNN-like model per (window, k, seed): stem 7 x 7, two k x k blocks."""
    records = []
    for measure, seed, kernel_size, window, values in rows:
        for index, median in enumerate(values):
            records.append({"model_id": f"m_k{kernel_size}_{window}_s{seed}", "dataset": "d", "model": "m",
                            "kernel_size": kernel_size, "window": window, "seed": seed, "measure": measure,
                            "layer": f"l{index}", "layer_index": index,
                            "layer_kernel_size": 7 if index == 0 else kernel_size, "layer_window": window,
                            "n_fft": 64, "n_slices": 4, "n_empty": 0, "leakage_median": median,
                            "leakage_q25": median, "leakage_q75": median, "leakage_mean": median})
    return pd.DataFrame(records)


RECORDS = [  # (measure, seed, k, window, [stem, block 1, block 2])
    ("spectral", 0, 3, "none", [0.50, 0.20, 0.30]), ("spectral-init", 0, 3, "none", [0.70, 0.25, 0.27]),
    ("spectral", 1, 3, "none", [0.40, 0.10, 0.20]), ("spectral-init", 1, 3, "none", [0.80, 0.30, 0.26]),
    ("spectral", 0, 5, "hamming", [0.05, 0.40, 0.30]), ("spectral-init", 0, 5, "hamming", [0.45, 0.10, 0.20]),
    ("spectral", 1, 5, "hamming", [0.15, 0.20, 0.20]),  # no untrained record: not measured
]


def test_per_seed_values_by_hand() -> None:
    leakage = _records(RECORDS)
    change = leakage_per_seed(leakage, layers="blocks", measure="learned-change").set_index(["window", "seed"])["leakage"]
    # (0.20 - 0.25 + 0.30 - 0.27) / 2, (0.10 - 0.30 + 0.20 - 0.26) / 2, (0.40 - 0.10 + 0.30 - 0.20) / 2
    assert change.to_dict() == pytest.approx({("none", 0): -0.01, ("none", 1): -0.13, ("hamming", 0): 0.20})
    stem = leakage_per_seed(leakage, layers="stem", measure="trained").set_index(["window", "seed"])["leakage"]
    assert stem.to_dict() == pytest.approx({("none", 0): 0.50, ("none", 1): 0.40, ("hamming", 0): 0.05,
                                            ("hamming", 1): 0.15})
    normalised = leakage_per_seed(leakage, layers="blocks", measure="normalised")
    hamming = normalised[(normalised["window"] == "hamming") & (normalised["seed"] == 1)]["leakage"].item()
    assert hamming == pytest.approx(0.20 - null_leakage(5, "hamming"))
    with pytest.raises(ValueError, match="measure must be one of"):
        leakage_per_seed(leakage, layers="blocks", measure="raw")


def test_table_compares_across_k_only_against_the_null() -> None:
    table = leakage_table(_records(RECORDS)).set_index("window")
    row = table.loc["hamming"]
    assert row["leakage_mean"] == pytest.approx((0.35 + 0.20) / 2)  # blocks only, the stem apart
    assert row["stem_mean"] == pytest.approx(0.10)
    assert row["leakage_init_mean"] == pytest.approx(0.15) and row["layer0_init_mean"] == pytest.approx(0.45)
    assert row["change_diff_k3_mean"] == pytest.approx(0.20 - (-0.01))  # seed 0 only: seed 1 has no init
    excess = [0.35 - null_leakage(5, "hamming") - (0.25 - null_leakage(3, "none")),
              0.20 - null_leakage(5, "hamming") - (0.15 - null_leakage(3, "none"))]
    assert row["excess_diff_k3_mean"] == pytest.approx(np.mean(excess))
    assert row["leakage_null"] == pytest.approx(null_leakage(5, "hamming"))
    assert leakage_layers(_records(RECORDS))["stem"].sum() == 4
