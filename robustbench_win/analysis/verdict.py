"""Effects with 95 % intervals over seeds, Holm across a table, and the one rule that decides.

Every claim of the paper is a signed difference, *windowed minus baseline*, that the paper says
is positive (``direction="increase"``: accuracy, robustness) or negative (``"decrease"``:
leakage, the share of images an attack fools). The trained model (the seed) is the unit of
replication: a claim's effect is computed once per seed, pairing the windowed and the baseline
model of that seed (on the same test images where images enter), and the interval and test come
from the spread of those per-seed effects (:func:`robustbench_win.analysis.inference.seed_t_test`:
mean, Student t interval with n - 1 degrees of freedom, two-sided paired t-test). No (seed,
image) pairs are ever pooled: images are shared by every seed, so pooled pairs are not
independent.

A table of claims is one family: :func:`decide_table` Holm-adjusts the p-values across its
rows and applies :data:`VERDICT_RULE` (:func:`decide`, the only place a verdict is made) to the
adjusted ones. For an inconclusive row it adds what the run could have detected: the smallest
effect with 80 % power at the level Holm tested the row at, from the observed between-seed
spread, and the number of seeds that would detect the observed effect.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Literal

import numpy as np
import pandas as pd

from robustbench_win.analysis.inference import (
    ALPHA, CONFIDENCE, MAX_SEEDS, MIN_SEEDS, POWER, SEED_TEST, holm, holm_levels, min_detectable_effect,
    seed_t_test, seeds_needed,
)

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
VERDICTS: tuple[str, ...] = (SUPPORTED, CONTRADICTED, INCONCLUSIVE)

VERDICT_RULE = (
    f"A claim is supported when the {CONFIDENCE:.0%} confidence interval of its effect (windowed minus "
    f"baseline, one value per seed) lies entirely on the side of zero the paper claims and the Holm-adjusted "
    f"p-value (across the rows of the table) is below {ALPHA}, contradicted when the interval lies entirely on "
    f"the other side and the adjusted p < {ALPHA}, and inconclusive otherwise, and whenever fewer than "
    f"{MIN_SEEDS} seeds are paired."
)
SEED_ESTIMATOR = f"mean of the per-seed effects, Student t {CONFIDENCE:.0%} interval over seeds"
POWER_TEXT = (f"detectable: the smallest |effect| the paired t-test finds with {POWER:.0%} power at the level Holm "
              f"tested the row at, from the observed between-seed SD and this run's seeds; seeds needed: the fewest "
              f"seeds with {POWER:.0%} power for the observed effect at that level (searched up to {MAX_SEEDS})")
# How a row is decided (decide_table, seed_effect), as the design paragraph of a report says it.
DECISION_TEXT = ("Relative effects are % of the baseline's mean. The p-values are Holm-adjusted across the rows of "
                 f"each table; the decision uses the adjusted one. Power ({POWER_TEXT}).")

Direction = Literal["increase", "decrease"]
DIRECTIONS: tuple[str, ...] = ("increase", "decrease")
Values = Mapping[Hashable, float] | pd.Series | Sequence[float] | np.ndarray


@dataclass(frozen=True)
class SeedEffects:
    """A claim's per-seed effects, as one function per claim computes them from the records.

    Attributes:
        effects: Windowed minus baseline, one value per paired seed (indexed by seed).
        baseline: The baseline's value per seed (the denominator of the relative effect).
        note: What the effects leave out and why (e.g. images excluded), or "".
        extra: Further per-seed summaries worth printing (e.g. the same effect in rho), or "".
    """

    effects: pd.Series
    baseline: pd.Series
    note: str = ""
    extra: str = ""

    @classmethod
    def of_values(cls, windowed: Values, baseline: Values, note: str = "") -> SeedEffects:
        """Per-seed differences of one value per model, paired by seed key (or by position)."""
        w, b = _paired(windowed, baseline)
        with np.errstate(invalid="ignore"):
            return cls(w - b, b, note)


@dataclass(frozen=True)
class ClaimResult:
    """One claim's effect, interval, test and verdict: a row of a verdict table.

    Attributes:
        claim: What is compared, e.g. ``"clean accuracy gain: hamming k=11 vs none k=11"``.
        role: ``"primary"`` or ``"secondary"`` (a restricted or partial view of a primary claim).
        direction: The claimed sign of windowed minus baseline.
        effect: Mean per-seed effect, in :attr:`unit`.
        ci_low: Lower end of the :data:`CONFIDENCE` t interval.
        ci_high: Upper end.
        unit: Unit of the effect.
        baseline: Mean over seeds of the baseline's value.
        relative: ``100 * effect / |baseline|`` (% of the baseline); NaN when the baseline is 0.
        per_seed_sd: Sample SD of the per-seed effects.
        per_seed: The per-seed effects, as text (``seed: value``).
        estimator: How :attr:`effect` and the interval were computed.
        test: The test behind :attr:`p_value`.
        p_value: Raw two-sided p-value; NaN where the test cannot be run.
        p_holm: Holm-adjusted across the table (:func:`decide_table`).
        holm_level: The level Holm tested this row at.
        n: Paired seeds.
        n_dropped: Seeds with a value on one side only.
        verdict: One of :data:`VERDICTS`, from :func:`decide`.
        reason: Why, in one clause.
        detectable: For an inconclusive row, the smallest |effect| detectable (:data:`POWER_TEXT`).
        seeds_needed: For an inconclusive row, seeds that would detect the observed effect
            (NaN: more than :data:`~robustbench_win.analysis.inference.MAX_SEEDS`, or unknown).
        note: What the per-seed effects leave out and why.
        extra: Further per-seed summaries.
    """

    claim: str
    role: str
    direction: str
    effect: float
    ci_low: float
    ci_high: float
    unit: str
    baseline: float
    relative: float
    per_seed_sd: float
    per_seed: str
    estimator: str
    test: str
    p_value: float
    n: int
    n_dropped: int
    why_undefined: str = ""
    p_holm: float = math.nan
    holm_level: float = math.nan
    verdict: str = INCONCLUSIVE
    reason: str = ""
    detectable: float = math.nan
    seeds_needed: float = math.nan
    note: str = ""
    extra: str = field(default="")

    def as_record(self) -> dict[str, object]:
        """The result as a flat dict (one row of :func:`claim_table`)."""
        return asdict(self)


CLAIM_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ClaimResult))


# --------------------------------------------------------------------------- the rule


def decide(*, ci_low: float, ci_high: float, p_value: float, direction: Direction, n: int,
           why_undefined: str = "no interval or p-value could be computed") -> tuple[str, str]:
    """Apply :data:`VERDICT_RULE`; the only place a verdict is made.

    Args:
        ci_low: Lower end of the interval of windowed minus baseline.
        ci_high: Upper end.
        p_value: The Holm-adjusted two-sided p-value.
        direction: The claimed sign: ``"increase"`` or ``"decrease"``.
        n: Paired seeds.
        why_undefined: The reason given when the interval or the p-value is NaN.

    Returns:
        ``(verdict, reason)``.
    """
    _check_direction(direction)
    if n < MIN_SEEDS:
        return INCONCLUSIVE, f"{n} paired seeds, fewer than the {MIN_SEEDS} the rule needs"
    if any(math.isnan(v) for v in (ci_low, ci_high, p_value)):
        return INCONCLUSIVE, why_undefined or "no interval or p-value could be computed"
    if ci_low <= 0 <= ci_high:
        return INCONCLUSIVE, f"the {CONFIDENCE:.0%} interval includes zero"
    if p_value >= ALPHA:
        return INCONCLUSIVE, f"the interval excludes zero but the adjusted p = {p_value:.3g} >= {ALPHA}"
    observed = "increase" if ci_low > 0 else "decrease"
    side = "the claimed" if observed == direction else "the opposite"
    verdict = SUPPORTED if observed == direction else CONTRADICTED
    interval = f"the {CONFIDENCE:.0%} interval lies on {side} side of zero ({observed})"
    return verdict, f"{interval} and the adjusted p = {p_value:.3g} < {ALPHA}"


# --------------------------------------------------------------------------- one row, then a table


def replication_text(window: str) -> str:
    """How every row's effect, interval and test come from the seeds (:func:`seed_effect`), in words."""
    return (f"The trained model is the unit of replication: every effect ({window} minus baseline) is computed once "
            f"per seed, pairing the two models of that seed on the same test images, and its interval and test come "
            f"from the spread of the per-seed effects ({SEED_ESTIMATOR}; {SEED_TEST}); no (seed, image) pairs are "
            f"pooled. The intervals are conditional on this run's test images (they vary the training seed, not the "
            f"test set).")


def seed_effect(per_seed: SeedEffects, *, claim: str, unit: str, direction: Direction,
                role: str = "primary") -> ClaimResult:
    """A row of a verdict table from per-seed effects: mean, t interval, raw paired t-test.

    The verdict is left to :func:`decide_table` (it needs the other rows' p-values).

    Args:
        per_seed: The claim's per-seed effects and baseline values.
        claim: What is compared.
        unit: Unit of the effects.
        direction: The claimed sign of windowed minus baseline.
        role: ``"primary"`` or ``"secondary"``.
    """
    _check_direction(direction)
    effects = per_seed.effects.dropna()
    test = seed_t_test(effects.to_numpy())
    base = float(per_seed.baseline.loc[effects.index].mean()) if len(effects) else math.nan
    relative = 100.0 * test.mean / abs(base) if base and math.isfinite(base) else math.nan
    text = ", ".join(f"{key}: {value:+.4g}" for key, value in effects.items())
    return ClaimResult(
        claim=claim, role=role, direction=direction, effect=test.mean, ci_low=test.ci_low, ci_high=test.ci_high,
        unit=unit, baseline=base, relative=relative, per_seed_sd=test.sd, per_seed=text, estimator=SEED_ESTIMATOR,
        test=SEED_TEST, p_value=test.p_value, n=test.n, n_dropped=len(per_seed.effects) - len(effects),
        why_undefined=test.why_undefined, note=per_seed.note, extra=per_seed.extra,
    )


def decide_table(rows: Sequence[ClaimResult], *, with_power: bool = True) -> list[ClaimResult]:
    """Holm-adjust the rows' p-values as one family, decide each row, add power where inconclusive.

    Args:
        rows: The rows of one table (:func:`seed_effect`).
        with_power: Add :attr:`ClaimResult.detectable` and :attr:`ClaimResult.seeds_needed`
            (they never change a verdict; simulations leave them out for speed).
    """
    raw = [r.p_value for r in rows]
    adjusted, levels = holm(raw), holm_levels(raw)
    decided = []
    for row, p_holm, level in zip(rows, adjusted, levels):
        verdict, reason = decide(ci_low=row.ci_low, ci_high=row.ci_high, p_value=float(p_holm),
                                 direction=row.direction, n=row.n, why_undefined=row.why_undefined)  # type: ignore[arg-type]
        detectable = needed = math.nan
        if with_power and verdict == INCONCLUSIVE and row.n >= 2:
            detectable = min_detectable_effect(row.per_seed_sd, row.n, alpha=float(level))
            found = seeds_needed(row.effect, row.per_seed_sd, alpha=float(level))
            needed = math.nan if found is None else float(found)
        decided.append(dataclasses.replace(row, p_holm=float(p_holm), holm_level=float(level), verdict=verdict,
                                           reason=reason, detectable=detectable, seeds_needed=needed))
    return decided


def power_text(row: ClaimResult) -> str:
    """What an inconclusive row could have detected, in words ("" for a decided row)."""
    if row.verdict != INCONCLUSIVE or row.n < 2:
        return ""
    detectable = "unknown (no spread)" if math.isnan(row.detectable) else f"±{row.detectable:.3g}"
    needed = (f"> {MAX_SEEDS}" if math.isnan(row.seeds_needed) else f"{row.seeds_needed:.0f}")
    if not (row.per_seed_sd > 0):
        needed = "unknown (no spread)"
    return (f"detectable with {POWER:.0%} power at level {row.holm_level:.3g}: {detectable} {row.unit}; "
            f"seeds needed for the observed effect: {needed}")


def claim_table(results: Iterable[ClaimResult]) -> pd.DataFrame:
    """One row per :class:`ClaimResult`, columns :data:`CLAIM_COLUMNS`."""
    return pd.DataFrame.from_records([r.as_record() for r in results], columns=list(CLAIM_COLUMNS))


def _paired(windowed: Values, baseline: Values) -> tuple[pd.Series, pd.Series]:
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
    joined = pd.concat({"w": w, "b": b}, axis=1, join="outer").sort_index()
    return joined["w"], joined["b"]


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
