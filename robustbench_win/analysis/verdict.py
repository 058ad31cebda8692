"""Effect sizes with 95 % confidence intervals, and the one rule that turns them into a verdict.

Every claim of the paper is a signed difference, *windowed minus baseline*, that the paper says
is positive (``direction="increase"``: accuracy, robustness) or negative (``"decrease"``:
leakage). Two estimates are offered:

- :func:`seed_effect`, over seeds: one value per model and seed (a clean accuracy, a robust
  accuracy, a median leakage), paired by seed. Effect: the mean per-seed difference; interval:
  Student's t with n - 1 degrees of freedom; test: the two-sided paired t-test.
- :func:`sample_effect`, over samples: one value per test image (a DeepFool norm), paired by
  sample, for example by ``(seed, index)``. Effect: the Hodges-Lehmann estimate (the median of
  the Walsh averages ``(d_i + d_j) / 2``, ``i <= j``); interval: Tukey's distribution-free
  interval between two order statistics of the Walsh averages, whose ranks come from the
  null distribution of the signed-rank statistic (exact up to :data:`EXACT_SIGNED_RANK_MAX`
  pairs, normal beyond; above :data:`MAX_WALSH_PAIRS` pairs both come from a seeded random
  subset); test: the two-sided Wilcoxon signed-rank test (scipy, zero differences dropped) on
  every pair.

A failed attack's norm is ``+inf``: larger than every finite norm, never dropped. Infinite
values are handled as the limit of replacing every ``+inf`` (on either side) by one common
number ``M`` and letting ``M`` grow: a difference is ``a M + c`` with ``a`` in {-1, 0, 1} and
``c`` finite. Only the windowed model resisted: ``M - b`` (``+inf``); only the baseline:
``w - M`` (``-inf``); both: 0. Once ``M`` is larger than a bound set by the finite values, the
ranks of ``|d|`` no longer change with ``M``, so the signed-rank statistic and p-value are those
of any such substitute (infinite differences rank above every finite one, among themselves by
their finite part); the order of the Walsh averages no longer changes either, and an estimate
or bound that still contains ``M`` is reported as ``+-inf``. (So the Walsh average of ``M - b``
and ``w - M`` is ``(w - b) / 2``.) NaN marks a missing value: that pair is left out and counted.

The verdict (:data:`VERDICT_RULE`, applied by :func:`decide` and nowhere else) is fixed here,
never chosen per run.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95  # of every interval
ALPHA = 0.05  # significance level of every test
MIN_SEEDS = 3  # fewer paired seeds: no verdict (with 2, the t interval is +- 12.7 standard errors)
MIN_PAIRS = 10  # fewer paired samples: no verdict
EXACT_SIGNED_RANK_MAX = 50  # Tukey's interval uses the exact null distribution up to this many pairs
MAX_WALSH_PAIRS = 4000  # more pairs: estimate and interval from a seeded random subset of this size
SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
VERDICTS: tuple[str, ...] = (SUPPORTED, CONTRADICTED, INCONCLUSIVE)

VERDICT_RULE = (
    f"A claim is supported when the {CONFIDENCE:.0%} confidence interval of its effect (windowed minus "
    f"baseline) lies entirely on the side of zero the paper claims and the test gives p < {ALPHA}, "
    f"contradicted when the interval lies entirely on the other side and p < {ALPHA}, and inconclusive "
    f"otherwise, and whenever fewer than {MIN_SEEDS} seeds or {MIN_PAIRS} samples are paired."
)

SEED_TEST = "paired t-test (two-sided) over seeds"
SEED_ESTIMATOR = f"mean per-seed difference, Student t {CONFIDENCE:.0%} interval"
SAMPLE_TEST = "Wilcoxon signed-rank test (two-sided, zero differences dropped) over paired samples"
SAMPLE_ESTIMATOR = f"Hodges-Lehmann estimate, Tukey's distribution-free {CONFIDENCE:.0%} interval"

Direction = Literal["increase", "decrease"]
DIRECTIONS: tuple[str, ...] = ("increase", "decrease")
Values = Mapping[Hashable, float] | pd.Series | Sequence[float] | np.ndarray


@dataclass(frozen=True)
class ClaimResult:
    """One claim's effect, interval, test and verdict: a row of the verdict table.

    Attributes:
        claim: What the paper claims, e.g. ``"clean accuracy gain of windowed k = 11"``.
        direction: ``"increase"`` or ``"decrease"``: the claimed sign of windowed minus baseline.
        effect: The estimate (:attr:`estimator`) of windowed minus baseline, in :attr:`unit`.
        ci_low: Lower end of the :data:`CONFIDENCE` interval (may be ``-inf``).
        ci_high: Upper end (may be ``+inf``).
        unit: Unit of the effect, e.g. ``"percentage points"``.
        estimator: How :attr:`effect` and the interval were computed.
        test: The test behind :attr:`p_value`.
        p_value: Two-sided p-value; NaN where the test cannot be run.
        n: Complete pairs used (seeds or samples).
        n_label: What :attr:`n` counts: ``"paired seeds"`` or ``"paired samples"``.
        n_dropped: Pairs left out because a value was missing on either side.
        verdict: One of :data:`VERDICTS`, from :func:`decide`.
        reason: Why, in one clause.
    """

    claim: str
    direction: str
    effect: float
    ci_low: float
    ci_high: float
    unit: str
    estimator: str
    test: str
    p_value: float
    n: int
    n_label: str
    n_dropped: int
    verdict: str
    reason: str

    def as_record(self) -> dict[str, object]:
        """The result as a flat dict (one row of :func:`claim_table`)."""
        return asdict(self)


CLAIM_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ClaimResult))


# --------------------------------------------------------------------------- the rule


def decide(
    *,
    ci_low: float,
    ci_high: float,
    p_value: float,
    direction: Direction,
    n: int,
    n_needed: int,
    n_label: str,
    why_undefined: str = "no interval or p-value could be computed",
) -> tuple[str, str]:
    """Apply :data:`VERDICT_RULE`; the only place a verdict is made.

    Args:
        ci_low: Lower end of the interval of windowed minus baseline.
        ci_high: Upper end.
        p_value: Two-sided p-value of the test.
        direction: The claimed sign: ``"increase"`` or ``"decrease"``.
        n: Complete pairs.
        n_needed: The fewest pairs the rule accepts (:data:`MIN_SEEDS` or :data:`MIN_PAIRS`).
        n_label: What the pairs are, for the reason (``"paired seeds"``, ``"paired samples"``).
        why_undefined: The reason given when the interval or the p-value is NaN.

    Returns:
        ``(verdict, reason)``.
    """
    _check_direction(direction)
    if n < n_needed:
        return INCONCLUSIVE, f"{n} {n_label}, fewer than the {n_needed} the rule needs"
    if any(math.isnan(v) for v in (ci_low, ci_high, p_value)):
        return INCONCLUSIVE, why_undefined
    if ci_low <= 0 <= ci_high:
        return INCONCLUSIVE, f"the {CONFIDENCE:.0%} interval includes zero"
    if p_value >= ALPHA:
        return INCONCLUSIVE, f"the interval excludes zero but p = {p_value:.3g} >= {ALPHA}"
    observed = "increase" if ci_low > 0 else "decrease"
    side = "the claimed" if observed == direction else "the opposite"
    verdict = SUPPORTED if observed == direction else CONTRADICTED
    interval = f"the {CONFIDENCE:.0%} interval lies on {side} side of zero ({observed})"
    return verdict, f"{interval} and p = {p_value:.3g} < {ALPHA}"


# --------------------------------------------------------------------------- over seeds


def seed_effect(windowed: Values, baseline: Values, *, claim: str, unit: str, direction: Direction) -> ClaimResult:
    """Effect over seeds: per-seed differences, their mean, t interval and paired t-test.

    Args:
        windowed: One value per seed of the windowed model: a mapping or Series keyed by
            seed (pairs are matched on keys), or a sequence (matched by position).
        baseline: The baseline's values, keyed or ordered the same way.
        claim: What the paper claims (see :class:`ClaimResult`).
        unit: Unit of the values.
        direction: The claimed sign of windowed minus baseline.

    Returns:
        The :class:`ClaimResult`. Non-finite per-seed values give an inconclusive verdict.
    """
    _check_direction(direction)
    w, b, dropped = _paired(windowed, baseline)
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, caught below as non-finite
        diff = w - b
    mean = float(diff.mean()) if len(diff) else math.nan
    low = high = p_value = math.nan
    why_undefined = "no interval or p-value could be computed"
    if len(diff) < 2:
        pass  # decide() reports too few seeds
    elif not np.isfinite(diff).all():
        why_undefined = "per-seed values must be finite for a t interval"
    elif np.ptp(diff) == 0:  # a t interval of width 0 and p = 0 would overstate the evidence
        why_undefined = f"all {len(diff)} per-seed differences are equal ({mean:.4g}): no spread for an interval"
    else:
        test = stats.ttest_1samp(diff, 0.0)
        low, high = (float(v) for v in test.confidence_interval(CONFIDENCE))
        p_value = float(test.pvalue)
    verdict, why = decide(
        ci_low=low, ci_high=high, p_value=p_value, direction=direction, n=len(diff), n_needed=MIN_SEEDS,
        n_label="paired seeds", why_undefined=why_undefined,
    )
    return ClaimResult(
        claim=claim, direction=direction, effect=mean, ci_low=low, ci_high=high, unit=unit,
        estimator=SEED_ESTIMATOR, test=SEED_TEST, p_value=p_value, n=len(diff), n_label="paired seeds",
        n_dropped=dropped, verdict=verdict, reason=why,
    )


# --------------------------------------------------------------------------- over samples


def sample_effect(
    windowed: Values, baseline: Values, *, claim: str, unit: str, direction: Direction, seed: int = 0
) -> ClaimResult:
    """Effect over paired samples: Hodges-Lehmann estimate, Tukey interval, Wilcoxon test.

    Args:
        windowed: One value per sample of the windowed model (``+inf`` for a failed attack),
            keyed (mapping or Series, e.g. by ``(seed, index)``) or ordered (sequence).
        baseline: The baseline's values, keyed or ordered the same way.
        claim: What the paper claims (see :class:`ClaimResult`).
        unit: Unit of the values.
        direction: The claimed sign of windowed minus baseline.
        seed: Seeds the random subset of pairs behind the estimate and interval when there
            are more than :data:`MAX_WALSH_PAIRS` (the test always uses every pair).

    Returns:
        The :class:`ClaimResult`.
    """
    _check_direction(direction)
    w, b, dropped = _paired(windowed, baseline)
    estimate, low, high = hodges_lehmann(w, b, seed=seed) if len(w) else (math.nan,) * 3
    diff = _Differences.of(w, b).with_stand_in()
    p_value = math.nan  # all pairs equal: no test (the interval is [0, 0])
    if np.any(diff != 0):
        p_value = float(stats.wilcoxon(diff).pvalue)
    verdict, why = decide(
        ci_low=low, ci_high=high, p_value=p_value, direction=direction, n=len(w), n_needed=MIN_PAIRS,
        n_label="paired samples", why_undefined="all paired samples are equal: no test",
    )
    return ClaimResult(
        claim=claim, direction=direction, effect=estimate, ci_low=low, ci_high=high, unit=unit,
        estimator=SAMPLE_ESTIMATOR, test=SAMPLE_TEST, p_value=p_value, n=len(w), n_label="paired samples",
        n_dropped=dropped, verdict=verdict, reason=why,
    )


def hodges_lehmann(windowed: np.ndarray, baseline: np.ndarray, *, seed: int = 0) -> tuple[float, float, float]:
    """Hodges-Lehmann estimate of windowed minus baseline and Tukey's interval.

    Args:
        windowed: ``(n,)`` values, ``+inf`` allowed (module docstring), no NaN.
        baseline: ``(n,)`` paired values.
        seed: Seeds the subset drawn when ``n`` exceeds :data:`MAX_WALSH_PAIRS`.

    Returns:
        ``(estimate, ci_low, ci_high)``: the median of the ``M = n (n + 1) / 2`` Walsh averages
        and the :data:`CONFIDENCE` interval ``[W_(k), W_(M + 1 - k)]`` of their order
        statistics, ``k - 1`` being the largest signed-rank statistic whose lower tail
        probability is at most ``(1 - CONFIDENCE) / 2`` (the whole range if there is none).
        Above :data:`MAX_WALSH_PAIRS` pairs, all three come from a seeded random subset of
        that many pairs (a wider interval, never a narrower one).
    """
    diff = _Differences.of(np.asarray(windowed, dtype=np.float64), np.asarray(baseline, dtype=np.float64))
    if len(diff.finite) > MAX_WALSH_PAIRS:  # n (n + 1) / 2 Walsh averages: bound memory and time
        keep = np.random.default_rng(seed).choice(len(diff.finite), size=MAX_WALSH_PAIRS, replace=False)
        diff = _Differences(diff.infinite[keep], diff.finite[keep])
    walsh = diff.walsh_averages()
    order = np.lexsort((walsh.finite, walsh.infinite))  # sorted by M-part first: the large-M order
    ranked = _Differences(walsh.infinite[order], walsh.finite[order])
    middle = (len(order) - 1) // 2, len(order) // 2
    estimate = ranked.value((ranked.infinite[list(middle)].sum(), ranked.finite[list(middle)].sum() / 2))
    k = signed_rank_lower_critical(len(diff.finite)) + 1  # 1-based rank of the lower end
    k = max(k, 1)  # too few pairs for any order statistic to reach the confidence: the whole range
    return estimate, ranked.value_at(k - 1), ranked.value_at(len(order) - k)


def walsh_averages(windowed: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """``(d_i + d_j) / 2`` of the differences for all ``i <= j``, infinite ones as ``+-inf``."""
    diff = _Differences.of(np.asarray(windowed, dtype=np.float64), np.asarray(baseline, dtype=np.float64))
    return diff.walsh_averages().values()


@dataclass(frozen=True)
class _Differences:
    """Differences ``infinite * M + finite`` for an arbitrarily large ``M`` (module docstring)."""

    infinite: np.ndarray  # (n,) integer coefficients of M
    finite: np.ndarray  # (n,) float64

    @classmethod
    def of(cls, windowed: np.ndarray, baseline: np.ndarray) -> _Differences:
        """Windowed minus baseline, each ``+-inf`` value standing for ``+-M``."""
        has_nan = np.isnan(windowed).any() or np.isnan(baseline).any()
        if windowed.shape != baseline.shape or windowed.ndim != 1 or has_nan:
            raise ValueError(
                f"expected two 1-D arrays of equal length without NaN, got shapes {windowed.shape} and {baseline.shape}"
            )
        parts = [(np.sign(v) * np.isinf(v), np.where(np.isinf(v), 0.0, v)) for v in (windowed, baseline)]
        return cls((parts[0][0] - parts[1][0]).astype(np.int64), parts[0][1] - parts[1][1])

    def walsh_averages(self) -> _Differences:
        """All ``(d_i + d_j) / 2``, ``i <= j``, kept in the same two parts (M-part not halved)."""
        n = len(self.finite)
        infinite = np.concatenate([self.infinite[i] + self.infinite[i:] for i in range(n)]) if n else self.infinite
        finite = np.concatenate([(self.finite[i] + self.finite[i:]) / 2.0 for i in range(n)]) if n else self.finite
        return _Differences(infinite, finite)

    def with_stand_in(self) -> np.ndarray:
        """Numbers with the ranks of ``|d|`` of every large enough M: M beats every finite part."""
        stand_in = 2.0 * (np.abs(self.finite).max() if len(self.finite) else 0.0) + 1.0
        return self.infinite * stand_in + self.finite

    def values(self) -> np.ndarray:
        """``+-inf`` where the M-part is non-zero, else the finite part."""
        return np.where(self.infinite != 0, np.copysign(np.inf, self.infinite), self.finite)

    def value_at(self, i: int) -> float:
        return self.value((self.infinite[i], self.finite[i]))

    @staticmethod
    def value(part: tuple[float, float]) -> float:
        """``+-inf`` where the M-part is non-zero, else the finite part."""
        infinite, finite = part
        return math.copysign(math.inf, infinite) if infinite else float(finite)


def signed_rank_lower_critical(n: int, *, confidence: float = CONFIDENCE) -> int:
    """Largest ``c`` with ``P(T <= c) <= (1 - confidence) / 2`` for the signed-rank statistic T.

    Exact (the distribution of sums of random subsets of ``1..n``) up to
    :data:`EXACT_SIGNED_RANK_MAX` pairs, the normal approximation with continuity correction
    beyond. Returns -1 when even ``P(T = 0) = 2**-n`` exceeds the tail (small ``n``).
    """
    tail = (1.0 - confidence) / 2.0
    if n <= EXACT_SIGNED_RANK_MAX:
        counts = np.zeros(n * (n + 1) // 2 + 1)
        counts[0] = 1.0
        for rank in range(1, n + 1):  # add rank to every subset that may include it
            counts[rank:] = counts[rank:] + counts[:-rank].copy()
        cdf = np.cumsum(counts) / 2.0**n
        return int(np.searchsorted(cdf, tail, side="right")) - 1
    mean = n * (n + 1) / 4.0
    std = math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)
    return math.floor(mean - 0.5 + stats.norm.ppf(tail) * std)


# --------------------------------------------------------------------------- tables and inputs


def claim_table(results: Iterable[ClaimResult]) -> pd.DataFrame:
    """One row per :class:`ClaimResult`, columns :data:`CLAIM_COLUMNS`."""
    return pd.DataFrame.from_records([r.as_record() for r in results], columns=list(CLAIM_COLUMNS))


def _paired(windowed: Values, baseline: Values) -> tuple[np.ndarray, np.ndarray, int]:
    keyed = [isinstance(v, (Mapping, pd.Series)) for v in (windowed, baseline)]
    if keyed[0] != keyed[1]:
        raise ValueError(
            "give windowed and baseline values the same way: both keyed (mapping or Series) or both sequences"
        )
    w, b = pd.Series(windowed, dtype="float64"), pd.Series(baseline, dtype="float64")
    if not keyed[0] and len(w) != len(b):
        raise ValueError(f"sequences are paired by position and need equal lengths, got {len(w)} and {len(b)}")
    for name, series in (("windowed", w), ("baseline", b)):
        if not series.index.is_unique:
            duplicated = series.index[series.index.duplicated()].unique().tolist()
            raise ValueError(f"{name} values must have unique keys; duplicated: {duplicated[:5]}")
    joined = pd.concat({"w": w, "b": b}, axis=1, join="outer")
    complete = joined.dropna()
    return complete["w"].to_numpy(), complete["b"].to_numpy(), len(joined) - len(complete)


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
