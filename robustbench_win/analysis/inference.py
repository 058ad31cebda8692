"""The statistics every comparison shares: one paired test per level, Holm, power, infinite norms.

One place for each statistical fact of the suite:

- :data:`MIN_SEEDS`: fewer paired seeds, no verdict; :data:`MIN_PAIRS`: fewer paired images,
  no per-image test (descriptive tables) and no per-seed estimate over images.
- :func:`seed_t_test`: the test of every verdict row, a paired t-test over seeds on the
  per-seed effects (windowed minus baseline of the same seed), with its t interval.
- :func:`signed_rank_test`: the one per-image test, used only by descriptive tables
  (their p-values are labelled unadjusted and descriptive); :func:`paired_image_test` reports
  it with the median paired difference, as every such table shows it.
- :func:`cap_norms`: the one convention for infinite norms (a failed attack) in every test
  and estimate: a norm is capped at a fixed radius, so every difference is finite.
- :func:`holm`: Holm's step-down adjustment across the rows of one table.
- :func:`power_paired_t`, :func:`min_detectable_effect`, :func:`seeds_needed`: the power of
  the paired t-test from the noncentral t distribution, for "inconclusive" rows.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import integrate, optimize, stats

CONFIDENCE = 0.95  # of every interval
ALPHA = 0.05  # family-wise significance level of every table of verdicts (Holm)
MIN_SEEDS = 3  # fewer paired seeds: no verdict (with 2, the t interval is +- 12.7 standard errors)
# Fewer paired images: no per-image test and no per-seed estimate over images. Below 6 pairs
# a two-sided exact signed-rank test cannot reach p < 0.05 (its smallest p-value is 2 / 2**n).
MIN_PAIRS = 6
POWER = 0.80  # the power asked of a detectable effect
MAX_SEEDS = 100  # seeds_needed searches up to this many seeds, then says "more than"
SEED_TEST = "paired t-test (two-sided) over seeds"
SIGNED_RANK_TEST = "Wilcoxon signed-rank, two-sided (scipy), zero differences dropped"
INFINITY_CONVENTION = ("a failed attack's norm (+inf) and every norm above the fixed radius count as that "
                       "radius, so every difference is finite")


class TTest(NamedTuple):
    """A paired t-test over seeds.

    Attributes:
        mean: Mean per-seed effect.
        sd: Sample standard deviation of the per-seed effects (ddof = 1).
        ci_low: Lower end of the :data:`CONFIDENCE` t interval.
        ci_high: Upper end.
        p_value: Two-sided p-value; NaN where undefined.
        n: Seeds.
        why_undefined: Why the interval or p-value is NaN; empty otherwise.
    """

    mean: float
    sd: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    why_undefined: str


def seed_t_test(effects: ArrayLike) -> TTest:
    """Mean, t interval and two-sided one-sample t-test of per-seed paired effects.

    Args:
        effects: One effect per seed (windowed minus baseline of that seed), finite.

    Returns:
        The :class:`TTest`; interval and p-value NaN with a reason below 2 seeds, with a
        non-finite effect, or when every effect is equal (no spread: a width-0 interval with
        p = 0 would overstate the evidence).
    """
    diff = np.asarray(effects, dtype=float)
    n = len(diff)
    mean = float(diff.mean()) if n else math.nan
    sd = float(diff.std(ddof=1)) if n > 1 and np.isfinite(diff).all() else math.nan
    if n < 2:
        return TTest(mean, sd, math.nan, math.nan, math.nan, n, f"{n} seed{'s' if n != 1 else ''}: no spread")
    if not np.isfinite(diff).all():
        return TTest(mean, sd, math.nan, math.nan, math.nan, n, "per-seed effects must be finite")
    if np.ptp(diff) <= 1e-12 * max(1.0, float(np.abs(diff).max())):  # equal up to rounding
        return TTest(mean, 0.0, math.nan, math.nan, math.nan, n,
                     f"all {n} per-seed effects are equal ({mean:.4g}): no spread for an interval")
    test = stats.ttest_1samp(diff, 0.0)
    low, high = (float(v) for v in test.confidence_interval(CONFIDENCE))
    return TTest(mean, sd, low, high, float(test.pvalue), n, "")


def signed_rank_test(diff: ArrayLike) -> tuple[float, str]:
    """The per-image paired test of the descriptive tables: scipy's two-sided Wilcoxon.

    Args:
        diff: Finite paired differences (cap infinite norms first: :func:`cap_norms`).

    Returns:
        ``(p, note)``: NaN and why below :data:`MIN_PAIRS` pairs or with every difference
        zero, else the p-value and an empty note.
    """
    values = np.asarray(diff, dtype=float)
    if len(values) < MIN_PAIRS:
        return math.nan, f"too few pairs ({len(values)} < {MIN_PAIRS})"
    if not np.any(values != 0):
        return math.nan, "all paired differences are zero"
    with warnings.catch_warnings():  # scipy warns when ties force the normal approximation
        warnings.simplefilter("ignore")
        return float(stats.wilcoxon(values).pvalue), ""


class ImageTest(NamedTuple):
    """The per-image test of one comparison, as the descriptive tables report it.

    Attributes:
        n_pairs: Paired images.
        median_diff: Median of the paired differences (model minus baseline); NaN for none.
        p: :func:`signed_rank_test` p-value (NaN with a ``note`` where it does not apply).
        note: Why ``p`` is NaN; empty otherwise.
    """

    n_pairs: int
    median_diff: float
    p: float
    note: str


def paired_image_test(diff: ArrayLike) -> ImageTest:
    """Median and :func:`signed_rank_test` of per-image paired differences (model minus baseline)."""
    values = np.asarray(diff, dtype=float)
    p, note = signed_rank_test(values)
    return ImageTest(len(values), float(np.median(values)) if values.size else math.nan, p, note)


def cap_norms(norms: ArrayLike, radius: float) -> np.ndarray:
    """Norms capped at ``radius`` (:data:`INFINITY_CONVENTION`): ``min(norm, radius)``.

    A robust-accuracy curve up to ``radius`` cannot tell apart norms above it, so capping
    loses nothing the area up to ``radius`` holds, and makes every difference finite.
    """
    if not radius > 0:
        raise ValueError(f"expected a positive radius to cap norms at, got {radius}")
    return np.minimum(np.asarray(norms, dtype=float), radius)


def hodges_lehmann(diff: ArrayLike) -> float:
    """Hodges-Lehmann estimate of finite paired differences: the median of the Walsh averages.

    ``median{(d_i + d_j) / 2 : i <= j}``; NaN for no differences.
    """
    values = np.asarray(diff, dtype=float)
    if not len(values):
        return math.nan
    i, j = np.triu_indices(len(values))
    return float(np.median((values[i] + values[j]) / 2.0))


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error rate), NaN entries left out.

    Sorted ascending, ``p_(i)`` becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))`` with ``m``
    the number of non-NaN p-values; a hypothesis is rejected at level ``alpha`` exactly when
    its adjusted p-value is below ``alpha``.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    order = tested[np.argsort(p[tested], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def holm_levels(p_values: ArrayLike, alpha: float = ALPHA) -> np.ndarray:
    """The level Holm's procedure tests each p-value at: ``alpha / (m - rank + 1)`` (rank 1-based).

    NaN p-values (rows without a test) get the strictest level, ``alpha / m`` (``alpha`` if
    nothing was tested).
    """
    p = np.asarray(p_values, dtype=float)
    tested = np.flatnonzero(~np.isnan(p))
    m = max(len(tested), 1)
    levels = np.full(p.shape, alpha / m)
    for rank, index in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        levels[index] = alpha / (m - rank)
    return levels


def power_paired_t(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with ``n`` seeds at level ``alpha``.

    ``P(|T| > t_{1 - alpha/2, n-1})`` with ``T`` noncentral t, ``n - 1`` degrees of freedom,
    noncentrality ``sqrt(n) * effect / sd``.
    """
    if n < 2 or not sd > 0:
        return math.nan
    df, ncp = n - 1, math.sqrt(n) * abs(effect) / sd
    critical = float(stats.t.ppf(1.0 - alpha / 2.0, df))
    upper = float(stats.nct.sf(critical, df, ncp))
    lower = float(stats.nct.cdf(-critical, df, ncp))
    # scipy's nct returns NaN for some tails (with 1 degree of freedom already at ncp ~ 12, where
    # the lower tail is ~1e-38): fall back to the same probability as a one-dimensional integral.
    if math.isnan(upper):
        upper = _nct_tail(critical, df, ncp, upper_tail=True)
    if math.isnan(lower):
        lower = _nct_tail(-critical, df, ncp, upper_tail=False)
    return min(1.0, upper + lower)


def _nct_tail(t: float, df: int, ncp: float, *, upper_tail: bool) -> float:
    """``P(T > t)`` (or ``P(T < t)``) for ``T = (Z + ncp) / sqrt(V / df)``, ``Z`` normal, ``V`` chi-square(df).

    Conditional on ``V = v``, ``T > t`` is ``Z > t sqrt(v / df) - ncp``: integrate that normal
    tail against the chi-square density.
    """
    def conditional(v: float) -> float:
        shift = t * math.sqrt(v / df) - ncp
        tail = stats.norm.sf(shift) if upper_tail else stats.norm.cdf(shift)
        return float(tail * stats.chi2.pdf(v, df))

    value, _ = integrate.quad(conditional, 0.0, math.inf, limit=200)
    return min(1.0, max(0.0, value))


def min_detectable_effect(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest |effect| the paired t-test with ``n`` seeds detects with probability ``power``.

    Solves :func:`power_paired_t` ``= power`` for the effect; NaN without a positive ``sd`` or
    with fewer than 2 seeds.
    """
    if n < 2 or not sd > 0 or not math.isfinite(sd):
        return math.nan
    upper = sd
    while power_paired_t(upper, sd, n, alpha) < power:
        upper *= 2.0
    return float(optimize.brentq(lambda e: power_paired_t(e, sd, n, alpha) - power, 0.0, upper, xtol=1e-8 * sd))


def seeds_needed(effect: float, sd: float, alpha: float = ALPHA, power: float = POWER,
                 max_seeds: int = MAX_SEEDS) -> int | None:
    """The fewest seeds with which the paired t-test detects ``effect`` with probability ``power``.

    Returns:
        That number (at least 2), or ``None`` when even :data:`MAX_SEEDS` seeds are not enough
        or the spread is unknown (``sd`` not positive and finite).
    """
    if not (sd > 0 and math.isfinite(sd)) or not math.isfinite(effect):
        return None
    if power_paired_t(effect, sd, max_seeds, alpha) < power:
        return None
    low, high = 1, max_seeds  # power grows with n: bisect for the first n with enough of it
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if power_paired_t(effect, sd, middle, alpha) >= power else (middle, high)
    return high
