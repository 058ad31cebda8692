"""Pooling one claim's effect across runs: a random-effects meta-analysis.

Each run (a data set, a model family, a preset) gives an effect with a standard error from the
spread of its seeds. Runs differ for real reasons (data, architecture, training budget), so the
pooled estimate is a random-effects mean: DerSimonian & Laird (1986). It is written out here
(a few lines of textbook algebra) because statsmodels 0.15's ``combine_effects(method_re="dl")``
does not truncate tau^2 at zero: with runs that agree better than their noise (Q < df) it
returns a negative between-run variance and a standard error far too small. Its heterogeneity
statistics say how much the runs disagree beyond their own noise:

- Cochran's ``Q`` = sum_i w_i (y_i - y_FE)^2 with w_i = 1 / se_i^2, and its chi-square p-value
  (df = runs - 1);
- ``tau2``, the between-run variance, max(0, (Q - df) / (sum w - sum w^2 / sum w));
- ``I2`` = max(0, (Q - df) / Q), the share of the spread that is heterogeneity, not noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

METHOD = "random effects, DerSimonian-Laird, normal 95% interval"
CONFIDENCE = 0.95


@dataclass(frozen=True)
class PooledEffect:
    """One claim's effect pooled across runs.

    Attributes:
        estimate: Random-effects mean (DerSimonian-Laird weights 1 / (se_i^2 + tau2)).
        se: Its standard error.
        ci_low: Lower end of the 95% interval (normal).
        ci_high: Upper end.
        p_value: Two-sided p-value of the pooled estimate against zero (normal).
        tau2: Between-run variance.
        i2: Share of the variation across runs due to heterogeneity (0..1; NaN for one run).
        q: Cochran's Q.
        q_p_value: Chi-square p-value of Q (NaN for one run).
        n_runs: Runs pooled.
    """

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    tau2: float
    i2: float
    q: float
    q_p_value: float
    n_runs: int


def random_effects(effects: Sequence[float], standard_errors: Sequence[float]) -> PooledEffect:
    """Pool per-run ``effects`` with their ``standard_errors`` (random effects, DerSimonian-Laird).

    Raises:
        ValueError: No run, lengths that differ, or a standard error that is not finite and > 0.
    """
    y = np.asarray(effects, dtype=float)
    se = np.asarray(standard_errors, dtype=float)
    if y.ndim != 1 or y.shape != se.shape or len(y) == 0:
        raise ValueError(f"expected one effect and one standard error per run, got {y.shape} and {se.shape}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(se)) and np.all(se > 0)):
        raise ValueError("every run needs a finite effect and a finite standard error > 0 (a run with fewer "
                         "than 2 seeds or no spread across seeds has none)")
    if len(y) == 1:  # nothing to pool: the run itself
        z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
        return PooledEffect(float(y[0]), float(se[0]), float(y[0] - z * se[0]), float(y[0] + z * se[0]),
                            float(2 * stats.norm.sf(abs(y[0]) / se[0])), 0.0, float("nan"), 0.0, float("nan"), 1)
    w = 1 / se**2
    fixed = np.sum(w * y) / np.sum(w)
    q, df = float(np.sum(w * (y - fixed) ** 2)), len(y) - 1
    tau2 = max(0.0, (q - df) / (np.sum(w) - np.sum(w**2) / np.sum(w)))
    w_re = 1 / (se**2 + tau2)
    estimate, pooled_se = float(np.sum(w_re * y) / np.sum(w_re)), float(np.sqrt(1 / np.sum(w_re)))
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    return PooledEffect(
        estimate=estimate, se=pooled_se, ci_low=estimate - z * pooled_se, ci_high=estimate + z * pooled_se,
        p_value=float(2 * stats.norm.sf(abs(estimate) / pooled_se)), tau2=float(tau2),
        i2=max(0.0, (q - df) / q) if q > 0 else 0.0, q=q, q_p_value=float(stats.chi2.sf(q, df)), n_runs=len(y),
    )
