"""The shared statistics: Holm, power of the paired t-test, capping, and the verdict's calibration."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from robustbench_win.analysis.calibration import Design, simulate
from robustbench_win.analysis.inference import (
    ALPHA, cap_norms, hodges_lehmann, holm, holm_levels, min_detectable_effect, paired_image_test, power_paired_t,
    seed_t_test, seeds_needed, signed_rank_test,
)
from robustbench_win.analysis.verdict import CONTRADICTED, SUPPORTED, SeedEffects, decide_table, seed_effect

NAN = math.nan


# --------------------------------------------------------------------------- Holm


@pytest.mark.parametrize(("raw", "expected"), [
    # Sorted 0.005, 0.01, 0.03, 0.04 (m = 4): x4 = 0.02, x3 = 0.03, x2 = 0.06, x1 = 0.04 -> max so far 0.06.
    ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
    ([0.01, NAN, 0.04], [0.02, NAN, 0.04]),  # rows without a test are not in the family: m = 2
    ([0.6, 0.7], [1.0, 1.0]),  # 1.2 capped at 1, then monotone
    ([0.02], [0.02]),
    ([], []),
])
def test_holm_by_hand(raw: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(holm(raw), expected, equal_nan=True)


def test_holm_levels_are_alpha_over_the_remaining_hypotheses() -> None:
    np.testing.assert_allclose(holm_levels([0.01, 0.04, 0.03, 0.005]), [ALPHA / 3, ALPHA, ALPHA / 2, ALPHA / 4])
    assert holm_levels([NAN, 0.2])[0] == ALPHA  # one test in the family: its level, alpha / 1


# --------------------------------------------------------------------------- power


def test_power_matches_textbook_values() -> None:
    # Cohen / G*Power, paired t, two-sided alpha .05: d = 1 needs n = 10 (power 0.8031),
    # d = 0.5 needs n = 34 (power 0.8078).
    assert power_paired_t(1.0, 1.0, 10) == pytest.approx(0.8031, abs=5e-4)
    assert power_paired_t(1.0, 1.0, 9) < 0.8 and seeds_needed(1.0, 1.0) == 10
    assert power_paired_t(0.5, 1.0, 34) == pytest.approx(0.8078, abs=5e-4) and seeds_needed(0.5, 1.0) == 34
    assert seeds_needed(2.0, 2.0) == 10  # only the ratio effect / sd matters


def test_power_agrees_with_a_simulated_t_test() -> None:
    rng = np.random.default_rng(0)
    samples = rng.normal(0.8, 1.0, (20000, 6))
    rejected = np.mean(stats.ttest_1samp(samples, 0.0, axis=1).pvalue < ALPHA)
    assert power_paired_t(0.8, 1.0, 6) == pytest.approx(rejected, abs=0.015)


def test_power_with_two_seeds_agrees_with_a_simulated_t_test_where_scipy_nct_fails() -> None:
    """With 1 degree of freedom scipy's nct gives NaN for the lower tail from ncp ~ 12 on, which
    once made the power jump to 1 and the detectable effect jump between runs."""
    rng = np.random.default_rng(1)
    for effect in (6.0, 9.0, 12.0):  # ncp = sqrt(2) * effect: 8.5 .. 17
        samples = rng.normal(effect, 1.0, (200000, 2))
        rejected = np.mean(stats.ttest_1samp(samples, 0.0, axis=1).pvalue < ALPHA)
        assert power_paired_t(effect, 1.0, 2) == pytest.approx(rejected, abs=0.005)
    powers = [power_paired_t(effect, 1.0, 2) for effect in np.linspace(0.5, 30.0, 200)]
    assert np.all(np.diff(powers) > 0) and powers[-1] < 1.0  # rises smoothly, never reaches 1
    detectable = [min_detectable_effect(11.04 * factor, 2) for factor in (0.9999, 1.0, 1.0001)]
    assert np.ptp(detectable) / detectable[1] < 1e-3  # continuous in the spread


def test_min_detectable_effect_inverts_the_power() -> None:
    effect = min_detectable_effect(1.0, 10)
    assert effect < 1.0 and power_paired_t(effect, 1.0, 10) == pytest.approx(0.8, abs=1e-6)  # d = 1 has 0.803
    assert min_detectable_effect(2.0, 10) == pytest.approx(2 * effect)
    assert min_detectable_effect(1.0, 10, alpha=ALPHA / 4) > effect  # a stricter Holm level needs more
    assert math.isnan(min_detectable_effect(0.0, 5)) and seeds_needed(0.1, 0.0) is None
    assert seeds_needed(0.01, 1.0) is None  # more than MAX_SEEDS


def test_power_survives_a_huge_noncentrality() -> None:
    assert power_paired_t(1e3, 1e-3, 3) == 1.0


# --------------------------------------------------------------------------- pieces


def test_seed_t_test_matches_a_hand_computed_t() -> None:
    result = seed_t_test([1.0, 2.0, 3.0])  # mean 2, sd 1, se 1/sqrt(3), t = 2 sqrt(3), df 2
    t = 2 * math.sqrt(3)
    assert (result.mean, result.sd) == pytest.approx((2.0, 1.0))
    assert result.p_value == pytest.approx(2 * stats.t.sf(t, 2))
    half = stats.t.ppf(0.975, 2) / math.sqrt(3)
    assert (result.ci_low, result.ci_high) == pytest.approx((2 - half, 2 + half))
    assert "no spread" in seed_t_test([1.0, 1.0, 1.0]).why_undefined
    assert math.isnan(seed_t_test([1.0]).p_value)


def test_cap_and_hodges_lehmann_by_hand() -> None:
    np.testing.assert_array_equal(cap_norms([0.0, 0.5, np.inf, 3.0], 2.0), [0.0, 0.5, 2.0, 2.0])
    with pytest.raises(ValueError, match="positive radius"):
        cap_norms([1.0], 0.0)
    # Walsh averages of (1, 2, 4): 1, 1.5, 2.5, 2, 3, 4 -> median (2 + 2.5) / 2.
    assert hodges_lehmann([1.0, 2.0, 4.0]) == 2.25
    assert signed_rank_test([1.0] * 5)[1] == "too few pairs (5 < 6)"
    assert signed_rank_test([0.0] * 8)[1] == "all paired differences are zero"


def test_the_per_image_test_is_scipys_wilcoxon_with_the_median_difference() -> None:
    diff = [0.3, -0.1, 0.25, 0.4, 0.0, 0.15, -0.05, 0.2]
    result = paired_image_test(diff)
    assert (result.n_pairs, result.median_diff, result.note) == (8, 0.175, "")  # (0.15 + 0.2) / 2
    assert result.p == pytest.approx(stats.wilcoxon(diff).pvalue)
    empty = paired_image_test([])
    assert empty.n_pairs == 0 and math.isnan(empty.median_diff) and math.isnan(empty.p)


# --------------------------------------------------------------------------- calibration


def new_design_verdict(windowed: np.ndarray, baseline: np.ndarray, radius: float) -> str:
    """The verdict's path: per-seed normalised AUC difference, then the t-test over seeds (one-row table)."""
    auc_w = cap_norms(windowed, radius).mean(axis=1) * 100 / radius
    auc_b = cap_norms(baseline, radius).mean(axis=1) * 100 / radius
    row = seed_effect(SeedEffects.of_values(list(auc_w), list(auc_b)), claim="x", unit="pp", direction="increase")
    return decide_table([row], with_power=False)[0].verdict


def decisive_share(design: Design, runs: int, seed: int) -> tuple[int, int]:
    """How many of ``runs`` simulated runs end supported, and how many supported or contradicted."""
    rng = np.random.default_rng(seed)
    verdicts = pd.Series([new_design_verdict(*simulate(design, rng), design.radius) for _ in range(runs)])
    return int((verdicts == SUPPORTED).sum()), int(verdicts.isin([SUPPORTED, CONTRADICTED]).sum())


RUNS = 500


@pytest.mark.parametrize("n_seeds", [3, 5])
def test_no_true_effect_gives_at_most_five_percent_decisive_verdicts(n_seeds: int) -> None:
    _, decisive = decisive_share(Design(n_seeds=n_seeds), RUNS, seed=n_seeds)
    # Monte-Carlo slack: the 99 % upper quantile of a binomial(RUNS, 0.05) count.
    assert decisive <= stats.binom.ppf(0.99, RUNS, ALPHA), decisive / RUNS


def test_a_clear_effect_with_five_seeds_is_supported_in_most_runs() -> None:
    supported, _ = decisive_share(Design(n_seeds=5, effect=0.4), RUNS, seed=11)
    assert supported >= 0.8 * RUNS, supported / RUNS


@pytest.mark.slow
@pytest.mark.parametrize("design", [Design(n_seeds=3, seed_sd=0.05, image_sd=0.6), Design(n_seeds=10, n_images=300)])
def test_calibration_holds_on_a_bigger_grid(design: Design) -> None:
    _, decisive = decisive_share(design, 4000, seed=1)
    assert decisive <= stats.binom.ppf(0.99, 4000, ALPHA)
