"""Effect sizes, intervals and the verdict rule, on synthetic records with known answers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from robustbench_win.analysis.verdict import (
    ALPHA,
    CLAIM_COLUMNS,
    CONFIDENCE,
    CONTRADICTED,
    INCONCLUSIVE,
    MIN_PAIRS,
    MIN_SEEDS,
    SUPPORTED,
    VERDICT_RULE,
    claim_table,
    decide,
    hodges_lehmann,
    sample_effect,
    seed_effect,
    signed_rank_lower_critical,
    walsh_averages,
)

CLAIM = {"claim": "clean accuracy gain", "unit": "percentage points"}


def noise(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, n)


# --------------------------------------------------------------------------- the rule


def test_rule_sentence_states_the_constants() -> None:
    assert f"{CONFIDENCE:.0%}" in VERDICT_RULE and f"p < {ALPHA}" in VERDICT_RULE
    assert f"{MIN_SEEDS} seeds" in VERDICT_RULE and f"{MIN_PAIRS} samples" in VERDICT_RULE
    for verdict in (SUPPORTED, CONTRADICTED, INCONCLUSIVE):
        assert verdict in VERDICT_RULE


@pytest.mark.parametrize(
    ("low", "high", "p", "direction", "expected"),
    [
        (0.5, 2.0, 0.01, "increase", SUPPORTED),
        (0.5, 2.0, 0.01, "decrease", CONTRADICTED),
        (-2.0, -0.5, 0.01, "decrease", SUPPORTED),
        (-2.0, -0.5, 0.01, "increase", CONTRADICTED),
        (-0.1, 2.0, 0.01, "increase", INCONCLUSIVE),  # interval includes zero
        (0.5, 2.0, 0.07, "increase", INCONCLUSIVE),  # p too large
        (0.5, math.inf, 0.001, "increase", SUPPORTED),  # an infinite bound is fine
        (math.nan, 1.0, 0.01, "increase", INCONCLUSIVE),
    ],
)
def test_decide(low: float, high: float, p: float, direction: str, expected: str) -> None:
    verdict, reason = decide(ci_low=low, ci_high=high, p_value=p, direction=direction, n=5, n_needed=3, n_label="seeds")
    assert verdict == expected
    assert reason


def test_decide_needs_enough_pairs() -> None:
    verdict, reason = decide(
        ci_low=1, ci_high=2, p_value=0.001, direction="increase", n=2, n_needed=3, n_label="paired seeds"
    )
    assert verdict == INCONCLUSIVE
    assert reason == "2 paired seeds, fewer than the 3 the rule needs"


def test_bad_direction_is_refused() -> None:
    with pytest.raises(ValueError, match="direction must be one of increase, decrease, got 'up'"):
        seed_effect([1, 2, 3], [0, 1, 2], direction="up", **CLAIM)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- over seeds


def test_seed_interval_matches_hand_computation() -> None:
    # Differences 1, 2, 3, 4: mean 2.5, s = 1.2910, s / sqrt(4) = 0.6455, t(0.975, 3) = 3.182
    # (printed tables), so the interval is 2.5 +- 2.054; t = 3.873 on 3 df gives p = 0.0305.
    result = seed_effect([11.0, 12.0, 13.0, 14.0], [10.0, 10.0, 10.0, 10.0], direction="increase", **CLAIM)
    assert result.effect == pytest.approx(2.5)
    assert result.ci_low == pytest.approx(2.5 - 3.182 * 0.6455, abs=2e-3)
    assert result.ci_high == pytest.approx(2.5 + 3.182 * 0.6455, abs=2e-3)
    assert result.p_value == pytest.approx(0.0305, abs=5e-4)
    assert (result.n, result.n_label, result.verdict) == (4, "paired seeds", SUPPORTED)


def test_clear_effect_is_supported_and_opposite_is_contradicted() -> None:
    baseline = 90 + noise(5, 0)
    better = baseline + 2.0 + noise(5, 1, 0.2)
    assert seed_effect(better, baseline, direction="increase", **CLAIM).verdict == SUPPORTED
    assert seed_effect(better, baseline, direction="decrease", **CLAIM).verdict == CONTRADICTED
    assert seed_effect(baseline, better, direction="increase", **CLAIM).verdict == CONTRADICTED


def test_noise_is_inconclusive() -> None:
    baseline = 90 + noise(5, 2)
    result = seed_effect(baseline + noise(5, 3), baseline, direction="increase", **CLAIM)
    assert result.verdict == INCONCLUSIVE
    assert result.ci_low < 0 < result.ci_high


def test_seeds_are_paired_by_key_and_missing_ones_counted() -> None:
    windowed = {0: 92.0, 1: 93.0, 2: 91.5, 3: 92.5}
    baseline = pd.Series({3: 90.0, 2: 89.0, 1: 91.0, 0: 90.0, 7: 80.0})
    result = seed_effect(windowed, baseline, direction="increase", **CLAIM)
    assert result.effect == pytest.approx(np.mean([2.0, 2.0, 2.5, 2.5]))
    assert (result.n, result.n_dropped) == (4, 1)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_few_seeds_are_inconclusive(n: int) -> None:
    result = seed_effect([95.0, 96.0][:n], [90.0, 90.5][:n], direction="increase", **CLAIM)
    assert result.verdict == INCONCLUSIVE
    assert result.reason == f"{n} paired seeds, fewer than the 3 the rule needs"


def test_equal_differences_and_infinite_values_are_inconclusive() -> None:
    equal = seed_effect([91.0, 92.0, 93.0], [90.0, 91.0, 92.0], direction="increase", **CLAIM)
    assert equal.verdict == INCONCLUSIVE and "equal" in equal.reason
    infinite = seed_effect([1.0, math.inf, 2.0], [0.5, 1.0, 1.0], direction="increase", **CLAIM)
    assert infinite.verdict == INCONCLUSIVE and "finite" in infinite.reason


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="equal lengths, got 3 and 2"):
        seed_effect([1, 2, 3], [1, 2], direction="increase", **CLAIM)
    with pytest.raises(ValueError, match="both keyed"):
        seed_effect({0: 1.0}, [1.0], direction="increase", **CLAIM)


# --------------------------------------------------------------------------- over samples


def test_hodges_lehmann_by_hand() -> None:
    # Walsh averages of 1, 2, 4: 1, 1.5, 2.5, 2, 3, 4 -> median of 1, 1.5, 2, 2.5, 3, 4 = 2.25.
    windowed, baseline = np.array([2.0, 2.0, 5.0]), np.array([1.0, 0.0, 1.0])
    assert sorted(walsh_averages(windowed, baseline)) == [1.0, 1.5, 2.0, 2.5, 3.0, 4.0]
    assert hodges_lehmann(windowed, baseline)[0] == 2.25


@pytest.mark.parametrize(("n", "table_value"), [(6, 0), (10, 8), (15, 25), (20, 52), (25, 89), (30, 137)])
def test_signed_rank_critical_values_match_printed_table(n: int, table_value: int) -> None:
    # Two-sided alpha = 0.05 critical values of the Wilcoxon signed-rank statistic.
    assert signed_rank_lower_critical(n) == table_value


def test_signed_rank_critical_values_match_scipy_exact_tail() -> None:
    # P(T+ <= c) from scipy's exact test on data whose positive ranks sum to c.
    for n in (8, 12, 40):
        c = signed_rank_lower_critical(n)
        ranks = np.arange(1, n + 1, dtype=float)
        for value, inside in ((c, True), (c + 1, False)):
            signs = -np.ones(n)
            for rank in _ranks_summing_to(value, n):
                signs[rank - 1] = 1
            tail = stats.wilcoxon(signs * ranks, alternative="less", method="exact").pvalue
            assert (tail <= (1 - CONFIDENCE) / 2) == inside


def _ranks_summing_to(total: int, n: int) -> list[int]:
    chosen, remaining = [], total
    for rank in range(n, 0, -1):
        if rank <= remaining:
            chosen.append(rank)
            remaining -= rank
    assert remaining == 0
    return chosen


def test_tukey_interval_is_the_order_statistics_of_walsh_averages() -> None:
    diff = noise(10, 4) + 0.5
    walsh = sorted((a + b) / 2 for a, b in itertools.combinations_with_replacement(diff, 2))
    assert len(walsh) == 55
    estimate, low, high = hodges_lehmann(diff, np.zeros(10))
    # n = 10: critical value 8 (table), so the interval is [W_(9), W_(47)].
    assert (low, high) == (walsh[8], walsh[46])
    assert estimate == pytest.approx(np.median(walsh))


def test_clear_sample_effect_is_supported_and_noise_inconclusive() -> None:
    baseline = np.abs(noise(200, 5)) + 1.0
    result = sample_effect(baseline * 1.3, baseline, direction="increase", claim="DeepFool norm gain", unit="L2")
    assert result.verdict == SUPPORTED
    assert 0 < result.ci_low < result.effect < result.ci_high
    assert sample_effect(baseline * 0.7, baseline, direction="increase", claim="x", unit="L2").verdict == CONTRADICTED
    jitter = baseline + noise(200, 6, 0.01)
    assert sample_effect(jitter, baseline, direction="increase", claim="x", unit="L2").verdict == INCONCLUSIVE


def test_failed_attacks_rank_above_every_finite_norm() -> None:
    baseline = np.abs(noise(40, 7)) + 1.0
    windowed = baseline + noise(40, 8, 0.1)
    windowed[:6] = math.inf  # only the windowed model resisted
    baseline[6:8] = math.inf  # only the baseline resisted
    windowed[8] = baseline[8] = math.inf  # both resisted: difference 0
    result = sample_effect(windowed, baseline, direction="increase", claim="x", unit="L2")
    # Any stand-in larger than every finite |difference| gives the same ranks, so the same p.
    for big in (1e3, 1e12):
        p = stats.wilcoxon(np.nan_to_num(windowed, posinf=big) - np.nan_to_num(baseline, posinf=big)).pvalue
        assert result.p_value == pytest.approx(p, rel=1e-12)
    assert (result.n, result.n_dropped) == (40, 0)


def test_mostly_failed_attacks_give_an_infinite_estimate() -> None:
    baseline = np.linspace(1.0, 2.0, 20)
    windowed = np.full(20, math.inf)
    assert hodges_lehmann(windowed, baseline) == (math.inf, math.inf, math.inf)
    windowed[:12] = 3.0  # 78 of the 210 Walsh averages finite: the median is not, the lower end is
    estimate, low, high = hodges_lehmann(windowed, baseline)
    assert estimate == high == math.inf
    assert math.isfinite(low)


def test_walsh_averages_of_infinite_differences_by_hand() -> None:
    # Differences M - 2, 1 - M, 2 (M a failed attack's norm); pairs: (M-2 + M-2)/2 = +inf,
    # (M-2 + 1-M)/2 = -0.5, (M-2 + 2)/2 = +inf, (1-M + 1-M)/2 = -inf, (1-M + 2)/2 = -inf, 2.
    windowed, baseline = np.array([math.inf, 1.0, 3.0]), np.array([2.0, math.inf, 1.0])
    assert sorted(walsh_averages(windowed, baseline)) == [-math.inf, -math.inf, -0.5, 2.0, math.inf, math.inf]


def test_missing_samples_are_dropped_and_counted() -> None:
    windowed = pd.Series({(0, i): 1.0 + i for i in range(12)})
    baseline = pd.Series({(0, i): float(i) for i in range(1, 14)})
    result = sample_effect(windowed, baseline, direction="increase", claim="x", unit="L2")
    assert (result.n, result.n_dropped) == (11, 3)
    assert result.effect == 1.0


def test_too_few_or_all_equal_pairs_are_inconclusive() -> None:
    for n in (0, 5):
        few = sample_effect([2.0] * n, [1.0] * n, direction="increase", claim="x", unit="L2")
        assert few.verdict == INCONCLUSIVE and few.reason == f"{n} paired samples, fewer than the 10 the rule needs"
    equal = sample_effect([1.0] * 20, [1.0] * 20, direction="increase", claim="x", unit="L2")
    assert equal.verdict == INCONCLUSIVE and "equal" in equal.reason


def test_claim_table_has_one_row_per_claim() -> None:
    results = [seed_effect([3, 4, 5], [1, 1, 1], direction="increase", **CLAIM)] * 2
    table = claim_table(results)
    assert list(table.columns) == list(CLAIM_COLUMNS)
    assert len(table) == 2
