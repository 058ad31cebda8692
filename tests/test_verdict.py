"""Effects over seeds, Holm across a table and the verdict rule, on inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from robustbench_win.analysis.inference import MIN_SEEDS, power_paired_t
from robustbench_win.analysis.verdict import (
    ALPHA, CLAIM_COLUMNS, CONFIDENCE, CONTRADICTED, INCONCLUSIVE, SUPPORTED, VERDICT_RULE, SeedEffects, claim_table,
    decide, decide_table, power_text, seed_effect,
)

CLAIM = {"claim": "clean accuracy gain", "unit": "pp"}


def noise(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, n)


def row(windowed, baseline, direction: str = "increase"):
    """One decided row (a table of one: Holm leaves its p-value as it is)."""
    result = seed_effect(SeedEffects.of_values(windowed, baseline), direction=direction, **CLAIM)  # type: ignore[arg-type]
    return decide_table([result])[0]


# --------------------------------------------------------------------------- the rule


def test_rule_sentence_states_the_constants() -> None:
    assert f"{CONFIDENCE:.0%}" in VERDICT_RULE and f"below {ALPHA}" in VERDICT_RULE
    assert f"{MIN_SEEDS} seeds" in VERDICT_RULE and "Holm" in VERDICT_RULE
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
        (0.5, 2.0, 0.07, "increase", INCONCLUSIVE),  # adjusted p too large
        (math.nan, 1.0, 0.01, "increase", INCONCLUSIVE),
    ],
)
def test_decide(low: float, high: float, p: float, direction: str, expected: str) -> None:
    verdict, reason = decide(ci_low=low, ci_high=high, p_value=p, direction=direction, n=5)  # type: ignore[arg-type]
    assert verdict == expected and reason


def test_decide_needs_enough_seeds() -> None:
    verdict, reason = decide(ci_low=1, ci_high=2, p_value=0.001, direction="increase", n=2)
    assert verdict == INCONCLUSIVE and reason == "2 paired seeds, fewer than the 3 the rule needs"


def test_bad_direction_is_refused() -> None:
    with pytest.raises(ValueError, match="direction must be one of increase, decrease, got 'up'"):
        row([1, 2, 3], [0, 1, 2], direction="up")


# --------------------------------------------------------------------------- one row


def test_seed_interval_matches_hand_computation() -> None:
    # Differences 1, 2, 3, 4: mean 2.5, s = 1.2910, s / sqrt(4) = 0.6455, t(0.975, 3) = 3.182
    # (printed tables), so the interval is 2.5 +- 2.054; t = 3.873 on 3 df gives p = 0.0305.
    result = row([11.0, 12.0, 13.0, 14.0], [10.0, 10.0, 10.0, 10.0])
    assert result.effect == pytest.approx(2.5)
    assert result.ci_low == pytest.approx(2.5 - 3.182 * 0.6455, abs=2e-3)
    assert result.ci_high == pytest.approx(2.5 + 3.182 * 0.6455, abs=2e-3)
    assert result.p_value == pytest.approx(0.0305, abs=5e-4) and result.p_holm == result.p_value
    assert (result.n, result.verdict) == (4, SUPPORTED)
    assert result.baseline == 10.0 and result.relative == pytest.approx(25.0)  # 2.5 of 10
    assert result.per_seed == "0: +1, 1: +2, 2: +3, 3: +4"


def test_clear_effect_is_supported_and_opposite_is_contradicted() -> None:
    baseline = 90 + noise(5, 0)
    better = baseline + 2.0 + noise(5, 1, 0.2)
    assert row(better, baseline).verdict == SUPPORTED
    assert row(better, baseline, "decrease").verdict == CONTRADICTED
    assert row(baseline, better).verdict == CONTRADICTED


def test_noise_is_inconclusive_with_its_power() -> None:
    baseline = 90 + noise(5, 2)
    result = row(baseline + noise(5, 3), baseline)
    assert result.verdict == INCONCLUSIVE and result.ci_low < 0 < result.ci_high
    # The detectable effect has 80 % power at the row's level with its own SD and n.
    assert power_paired_t(result.detectable, result.per_seed_sd, 5, result.holm_level) == pytest.approx(0.8, abs=1e-4)
    needed = int(result.seeds_needed) if not math.isnan(result.seeds_needed) else None
    if needed is not None:
        assert power_paired_t(result.effect, result.per_seed_sd, needed, ALPHA) >= 0.8
        assert power_paired_t(result.effect, result.per_seed_sd, needed - 1, ALPHA) < 0.8
    assert "detectable with 80% power" in power_text(result)


def test_seeds_are_paired_by_key_and_missing_ones_counted() -> None:
    windowed = {0: 92.0, 1: 93.0, 2: 91.5, 3: 92.5}
    baseline = pd.Series({3: 90.0, 2: 89.0, 1: 91.0, 0: 90.0, 7: 80.0})
    result = row(windowed, baseline)
    assert result.effect == pytest.approx(np.mean([2.0, 2.0, 2.5, 2.5]))
    assert (result.n, result.n_dropped) == (4, 1)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_few_seeds_are_inconclusive(n: int) -> None:
    result = row([95.0, 96.0][:n], [90.0, 90.5][:n])
    assert result.verdict == INCONCLUSIVE
    assert result.reason == f"{n} paired seeds, fewer than the 3 the rule needs"


def test_two_seeds_of_opposite_sign_are_inconclusive() -> None:
    # The quick report's case: per-seed effects -0.161 and +0.035 must never give a verdict.
    result = row([0.839, 1.035], [1.0, 1.0], "increase")
    assert result.verdict == INCONCLUSIVE and "fewer than the 3" in result.reason


def test_equal_differences_and_infinite_values_are_inconclusive() -> None:
    equal = row([91.0, 92.0, 93.0], [90.0, 91.0, 92.0])
    assert equal.verdict == INCONCLUSIVE and "equal" in equal.reason
    infinite = row([1.0, math.inf, 2.0], [0.5, 1.0, 1.0])
    assert infinite.verdict == INCONCLUSIVE and "finite" in infinite.reason


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="equal lengths, got 3 and 2"):
        row([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="both keyed"):
        row({0: 1.0}, [1.0])


# --------------------------------------------------------------------------- a table


def test_holm_turns_a_marginal_row_inconclusive() -> None:
    # Two rows with raw p 0.0305 (differences 1, 2, 3, 4) and one with a tiny p: Holm multiplies
    # the smallest by 3 and the next by 2, so 0.0305 -> 0.061 >= 0.05.
    marginal = seed_effect(SeedEffects.of_values([11.0, 12.0, 13.0, 14.0], [10.0] * 4), direction="increase", **CLAIM)
    strong = seed_effect(SeedEffects.of_values([20.0, 20.1, 19.9, 20.05], [10.0] * 4), direction="increase", **CLAIM)
    decided = decide_table([marginal, strong, marginal])
    assert decided[1].verdict == SUPPORTED and decided[1].p_holm == pytest.approx(3 * strong.p_value)
    assert [d.verdict for d in (decided[0], decided[2])] == [INCONCLUSIVE] * 2
    assert decided[0].p_holm == pytest.approx(2 * 0.0305, abs=1e-3) and "adjusted p" in decided[0].reason
    assert decided[0].holm_level == pytest.approx(ALPHA / 2)


def test_claim_table_has_one_row_per_claim() -> None:
    table = claim_table([row([3, 4, 5], [1, 1, 2])] * 2)
    assert list(table.columns) == list(CLAIM_COLUMNS) and len(table) == 2
