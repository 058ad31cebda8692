"""The paper's claims, tested on a run's stored records: the verdict table that opens ``summary.md``.

Tomen & van Gemert claim that windowed large kernels (1) are more accurate, (2) need larger
minimal adversarial perturbations, (3) are more robust to spatial transformations, and (4) leak
less, than unwindowed networks. Each claim is tested here in two comparisons, fixed in code:

- the window: :data:`PREFERRED_WINDOW` (the paper's Hamming) when the run has it, else the
  first windowed window in display order;
- "large k": the largest kernel size in the run's records (:func:`large_kernel_size`);
- the baselines (:data:`COMPARISONS`): the unwindowed model at the same large k, and the
  unwindowed k = 3 model (the standard network the paper's headline compares against).

Values are paired by seed (clean accuracy, spatial robust accuracy of the first spatial attack
in display order, leakage; :func:`robustbench_win.analysis.verdict.seed_effect`) or by (seed, test image)
(best-known minimal norm over every attack of the families in
:data:`robustbench_win.analysis.norms.MINIMAL_NORM_FAMILIES`, failures as +inf, on the test images
both models classify correctly; :func:`robustbench_win.analysis.verdict.sample_effect`). The verdict of each row
comes from :func:`robustbench_win.analysis.verdict.decide` alone (:data:`~robustbench_win.analysis.verdict.VERDICT_RULE`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from robustbench_win.analysis.diagnostic_tables import leakage_per_seed
from robustbench_win.analysis.flags import REFUSED, flagged_models, refusal
from robustbench_win.analysis.norms import MINIMAL_NORM_FAMILIES, best_known_norms
from robustbench_win.ordering import attack_order, ordered, window_order
from robustbench_win.store.records import LEAKAGE_RECORDS
from robustbench_win.store.run_folder import Results
from robustbench_win.analysis.tables import BASELINE_WINDOW, REFERENCE_KERNEL_SIZE, spatial_seed_metrics
from robustbench_win.analysis.verdict import (
    SAMPLE_ESTIMATOR, SAMPLE_TEST, SEED_ESTIMATOR, SEED_TEST, ClaimResult, Direction, claim_table, sample_effect,
    seed_effect,
)

PREFERRED_WINDOW = "hamming"  # the paper's window


@dataclass(frozen=True)
class Comparison:
    """A baseline of the verdict: the unwindowed model at ``kernel_size`` (``None``: the large k)."""

    label: str
    kernel_size: int | None


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("none at the same k", None),
    Comparison(f"none at k = {REFERENCE_KERNEL_SIZE}", REFERENCE_KERNEL_SIZE),
)


def verdict_window(windows: pd.Series) -> str | None:
    """The windowed window the verdict tests: :data:`PREFERRED_WINDOW` if present, else the first."""
    windowed = [w for w in ordered(windows.dropna().unique(), window_order()) if w != BASELINE_WINDOW]
    return PREFERRED_WINDOW if PREFERRED_WINDOW in windowed else (windowed[0] if windowed else None)


def large_kernel_size(clean: pd.DataFrame) -> int | None:
    """"Large k": the largest kernel size among the run's models."""
    sizes = clean["kernel_size"].dropna()
    return int(sizes.max()) if len(sizes) else None


def design_text(results: Results) -> str:
    """One paragraph saying, from the code, what each verdict row compares."""
    window, large = verdict_window(results.clean["window"]), large_kernel_size(results.clean)
    baselines = " and ".join(f"the unwindowed model at k = {c.kernel_size or large}" for c in COMPARISONS)
    return (f"Each claim compares the {window} model at the largest kernel size of this run (\"large k\" = "
            f"{large}) with {baselines}, on the same seeds and, for norms, the same test images. Effects are "
            f"{window} minus baseline. Minimal-norm robustness: best-known L2 norm per test image over every "
            f"attack of the families {', '.join(MINIMAL_NORM_FAMILIES)} (failures +inf) on the test "
            f"images both models classify correctly. Spatial robustness: robust accuracy of the first spatial "
            f"attack. Leakage: mean over conv layers of the median leakage of their kernels. Over seeds: {SEED_ESTIMATOR}, {SEED_TEST}; over "
            f"samples: {SAMPLE_ESTIMATOR}, {SAMPLE_TEST}.")


def _select(frame: pd.DataFrame, window: str, kernel_size: int) -> pd.DataFrame:
    return frame[(frame["window"] == window) & (frame["kernel_size"] == kernel_size)]


def _clean_per_seed(results: Results) -> pd.DataFrame:
    ok = results.clean[results.clean["status"].astype(str) == "ok"]
    return ok.assign(value=100.0 * ok["accuracy"].astype(float))


def _spatial_per_seed(results: Results) -> pd.DataFrame:
    rows = results.samples[results.samples["family"] == "spatial"]
    attacks = ordered(rows["attack"].unique(), attack_order())
    if not attacks:
        return pd.DataFrame(columns=["window", "kernel_size", "seed", "value"])
    rows = rows[rows["attack"] == attacks[0]].assign(success=lambda f: f["success"] & f["attacked"])
    return pd.DataFrame([{"window": w, "kernel_size": k, "seed": s, "value": spatial_seed_metrics(g)["robust_acc"]}
                         for (w, k, s), g in rows.groupby(["window", "kernel_size", "seed"])],
                        columns=["window", "kernel_size", "seed", "value"])


def _leakage_per_seed(results: Results) -> pd.DataFrame:
    leakage = results.records[LEAKAGE_RECORDS.name]
    if leakage.empty:
        return pd.DataFrame(columns=["window", "kernel_size", "seed", "value"])
    return leakage_per_seed(leakage).rename(columns={"leakage": "value"})


def _norms_per_sample(results: Results) -> pd.DataFrame:
    samples = results.samples
    if not samples["family"].isin(MINIMAL_NORM_FAMILIES).any():
        return pd.DataFrame(columns=["window", "kernel_size", "seed", "index", "value"])
    best = best_known_norms(samples)
    # Only images the model attacks (classifies correctly): paired with the baseline's, these are
    # the images both models classify correctly. A misclassified image has norm 0 on one side, and
    # a pair of them would only pull the estimate to 0; clean accuracy has its own claim.
    return best[best["attacked"]].rename(columns={"norm": "value"})


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and how its values are read from the records."""

    what: str
    unit: str
    direction: Direction
    values: Callable[[Results], pd.DataFrame]  # columns window, kernel_size, seed[, index], value
    by_sample: bool = False


CLAIMS: tuple[Claim, ...] = (
    Claim("clean accuracy gain", "percentage points", "increase", _clean_per_seed),
    Claim("minimal-norm robustness gain", "L2 norm", "increase", _norms_per_sample, by_sample=True),
    Claim("spatial robustness gain", "percentage points", "increase", _spatial_per_seed),
    Claim("leakage reduction", "leakage (fraction)", "decrease", _leakage_per_seed),
)


def _effect(claim: Claim, values: pd.DataFrame, window: str, large: int, comparison: Comparison) -> ClaimResult:
    keys = ["seed", "index"] if claim.by_sample else ["seed"]
    base_k = comparison.kernel_size or large
    windowed = _select(values, window, large).set_index(keys)["value"].astype(float)
    baseline = _select(values, BASELINE_WINDOW, base_k).set_index(keys)["value"].astype(float)
    text = f"{claim.what}: {window} k={large} vs {BASELINE_WINDOW} k={base_k}"
    effect = sample_effect if claim.by_sample else seed_effect
    result = effect(windowed, baseline, claim=text, unit=claim.unit, direction=claim.direction)
    if windowed.empty or baseline.empty:
        missing = f"{window} k = {large}" if windowed.empty else f"{BASELINE_WINDOW} k = {base_k}"
        result = dataclasses.replace(result, reason=f"no records of {missing} for this claim in this run")
    return result


def claim_results(results: Results) -> list[ClaimResult]:
    """Every claim in every comparison (:data:`CLAIMS` x :data:`COMPARISONS`), in that order."""
    window, large = verdict_window(results.clean["window"]), large_kernel_size(results.clean)
    if window is None or large is None:
        return []
    rows = []
    for claim in CLAIMS:
        values = claim.values(results)
        rows += [_refused_if_flagged(_effect(claim, values, window, large, comparison), claim, results, window, large,
                                     comparison) for comparison in COMPARISONS]
    return rows


# --------------------------------------------------------------------------- sanity-check hook


def _refused_if_flagged(result: ClaimResult, claim: Claim, results: Results, window: str, large: int,
                        comparison: Comparison) -> ClaimResult:
    """A robustness claim resting on a model a sanity check flagged is refused, naming check and model."""
    if "robustness" not in claim.what:
        return result
    why = refusal(flagged_models(results), [(window, large), (BASELINE_WINDOW, comparison.kernel_size or large)])
    return result if why is None else dataclasses.replace(result, verdict=REFUSED, reason=f"refused: {why}")


def verdict_table(results: Results) -> pd.DataFrame:
    """:func:`claim_results` as a table, columns :data:`robustbench_win.analysis.verdict.CLAIM_COLUMNS`."""
    return claim_table(claim_results(results))


_SHORT_UNITS = {"percentage points": "pp", "L2 norm": "L2", "leakage (fraction)": ""}


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The verdict table for reading: claim, verdict, effect with its interval and unit, test, p, n.

    The verdict comes right after the claim, so it stays in the first part when a narrow page
    splits the table.
    """
    def effect(row: pd.Series) -> str:
        unit = _SHORT_UNITS.get(row["unit"], row["unit"])
        interval = "" if pd.isna(row["ci_low"]) else f" [{row['ci_low']:+.3g}, {row['ci_high']:+.3g}]"
        return f"{row['effect']:+.3g}{interval} {unit}".rstrip()

    return pd.DataFrame({
        "claim": table["claim"], "verdict": table["verdict"],
        "effect [95% CI]": [effect(row) for _, row in table.iterrows()],
        "p-value": table["p_value"],
        "n": table["n"].astype(str) + " " + table["n_label"].str.replace("paired ", ""),
        "test": table["test"].str.split(" (", regex=False).str[0],  # in full in the paragraph above
    })
