"""One answer across runs: every run's verdict rows side by side, and each claim pooled.

A run folder (or a committed report) answers each claim of the paper for one data set and
model family. :func:`compare_runs` takes the verdict tables of several runs, recomputed from
their stored records by :func:`robustbench_win.analysis.claims.verdict_table` (no attack is run
again), checks that they can be compared (the same claims against the same baselines, in the
same units), and pools each claim's per-run effects with a random-effects meta-analysis
(:mod:`robustbench_win.analysis.pooling`).

Effects are pooled in the verdict's relative units (% of the baseline), the only ones that mean
the same on 196-pixel digits and 3,072-pixel colour images. A run's standard error comes from
its interval over seeds; a row without one (fewer than 2 seeds, or no spread) is shown but not
pooled, and the page says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from robustbench_win.errors import BadValueError
from robustbench_win.analysis import claims, pooling
from robustbench_win.store.run_folder import Results

# Columns of a verdict table (robustbench_win.analysis.verdict.ClaimResult) that compare reads.
KEY = "claim"  # what is claimed, against which baseline: identical text across comparable runs
UNIT = "%"  # effects are pooled relative to the baseline, in % of its mean over seeds
N_SEEDS, VERDICT = "n", "verdict"
_READ = (KEY, "effect", "ci_low", "ci_high", "baseline", N_SEEDS, VERDICT)


class CompareError(BadValueError):
    """The runs cannot be compared; the message says why and what would make them comparable."""


@dataclass(frozen=True)
class Run:
    """One run's verdict table, with the label it has on the comparison page."""

    label: str
    verdict: pd.DataFrame


def run_effects(run: Run) -> pd.DataFrame:
    """One row per claim of ``run``: relative effect, its 95% interval, standard error, seeds, verdict.

    The relative effect and its interval are the verdict's absolute ones divided by the
    baseline's mean over seeds (``100 * x / |baseline|``, the verdict's ``relative``); the standard
    error is the half-width of the Student t interval over seeds divided by its critical value,
    since the verdict's interval is ``effect +- t(0.975, n - 1) * se``.
    """
    table = run.verdict
    missing = [c for c in _READ if c not in table.columns]
    if missing:
        raise CompareError(f"run '{run.label}' has no {', '.join(missing)} in its verdict table; "
                           f"rebuild it with this version ('robustbench-win report DIR') and compare again")
    n = pd.to_numeric(table[N_SEEDS], errors="coerce")
    scale = 100.0 / table["baseline"].astype(float).abs().where(lambda b: b > 0)
    effect, low, high = (table[c].astype(float) * scale for c in ("effect", "ci_low", "ci_high"))
    critical = stats.t.ppf(0.975, np.maximum(n - 1, 1))
    se = (high - low) / (2 * critical)
    se = se.where((n >= 2) & np.isfinite(se) & (se > 0))
    return pd.DataFrame({
        "run": run.label, KEY: table[KEY].astype(str), "effect": effect, "ci_low": low, "ci_high": high, "se": se,
        N_SEEDS: n.astype("Int64"), VERDICT: table[VERDICT].astype(str),
    })


def check_comparable(runs: Sequence[Run]) -> None:
    """Refuse runs whose verdicts test different claims or baselines (one message naming them)."""
    if len(runs) < 2:
        raise CompareError(f"compare needs at least 2 run folders, got {len(runs)}")
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise CompareError(f"two run folders have the same label: {labels}; give folders distinct names")
    first = list(runs[0].verdict[KEY].astype(str))
    for run in runs[1:]:
        other = list(run.verdict[KEY].astype(str))
        if set(other) != set(first):
            only_first = sorted(set(first) - set(other))
            only_other = sorted(set(other) - set(first))
            raise CompareError(
                f"runs '{runs[0].label}' and '{run.label}' test different claims or baselines "
                f"(only in the first: {only_first or 'none'}; only in the second: {only_other or 'none'}): "
                f"compare runs of the same window against the same baselines, e.g. the same kernel sizes")


def compare_runs(runs: Sequence[Run]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-run effects and, per claim, the pooled random-effects estimate.

    Returns:
        ``(per_run, pooled)``: ``per_run`` has one row per (run, claim), from
        :func:`run_effects`; ``pooled`` one row per claim with the fields of
        :class:`~robustbench_win.analysis.pooling.PooledEffect`, the runs pooled and the runs
        left out (no standard error), in the claims' order of the first run.

    Raises:
        CompareError: The runs cannot be compared.
    """
    check_comparable(runs)
    per_run = pd.concat([run_effects(run) for run in runs], ignore_index=True)
    rows = []
    for claim in dict.fromkeys(per_run[KEY]):
        part = per_run[per_run[KEY] == claim]
        usable = part[part["se"].notna() & np.isfinite(part["effect"])]
        row: dict[str, object] = {KEY: claim, "runs_pooled": len(usable),
                                  "runs_left_out": ", ".join(part.loc[~part.index.isin(usable.index), "run"])}
        if len(usable):
            pooled = pooling.random_effects(usable["effect"].to_numpy(), usable["se"].to_numpy())
            row.update({name: getattr(pooled, name) for name in
                        ("estimate", "se", "ci_low", "ci_high", "p_value", "tau2", "i2", "q", "q_p_value")})
        rows.append(row)
    return per_run, pd.DataFrame(rows)


def runs_from_results(results_by_label: dict[str, Results]) -> list[Run]:
    """A :class:`Run` per stored run, its verdict table recomputed from the records (no attack rerun)."""
    return [Run(label, claims.verdict_table(results)) for label, results in results_by_label.items()]
