"""The paper's claims, tested on a run's stored records: the verdict tables that open ``summary.md``.

Tomen & van Gemert claim that windowed large kernels (1) are more accurate, (2) need larger
minimal adversarial perturbations, (3) are more robust to spatial transformations, and (4) leak
less, than unwindowed networks. Fixed in code:

- the window: :data:`PREFERRED_WINDOW` (the paper's Hamming) when the run has it, else the
  first windowed window in display order;
- the headline table compares "large k", the largest kernel size of the run
  (:func:`large_kernel_size`), with the unwindowed model at the same k and at
  :data:`~robustbench_win.analysis.tables.REFERENCE_KERNEL_SIZE` (the paper's standard
  network); the per-k table (:func:`per_k_results`) applies the same rule to the primary
  claims at every kernel size;
- each claim (:data:`CLAIMS`) is one small function from the records to per-seed effects
  (:class:`~robustbench_win.analysis.verdict.SeedEffects`); the verdict of every row comes from
  :func:`robustbench_win.analysis.verdict.decide_table` (the seed is the unit of replication,
  Holm across the rows of a table).

Minimal norms are best-known norms over every attack of the families in
:func:`robustbench_win.attacks.families.minimal_norm_families`, on every evaluated image (0 where
the model misclassifies it, +inf where every attack failed), capped at the fixed radius
(:func:`fixed_radius`, :data:`~robustbench_win.analysis.inference.INFINITY_CONVENTION`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from robustbench_win.analysis.diagnostic_tables import leakage_per_seed
from robustbench_win.analysis.inference import INFINITY_CONVENTION, MIN_PAIRS, cap_norms, hodges_lehmann
from robustbench_win.analysis.flags import REFUSED, flagged_models, refusal
from robustbench_win.analysis.norms import best_known_norms
from robustbench_win.analysis.tables import BASELINE_WINDOW, REFERENCE_KERNEL_SIZE, spatial_model_metrics
from robustbench_win.analysis.verdict import (
    DECISION_TEXT, ClaimResult, Direction, SeedEffects, claim_table, decide_table, power_text, replication_text,
    seed_effect,
)
from robustbench_win.attacks.families import SPATIAL, minimal_norm_families
from robustbench_win.ordering import attack_order, ordered, window_order
from robustbench_win.schema import CONFIG_SEED_COLUMNS
from robustbench_win.store.records import LEAKAGE_RECORDS
from robustbench_win.store.run_folder import Results

PREFERRED_WINDOW = "hamming"  # the paper's window


@dataclass(frozen=True)
class Pair:
    """One comparison: ``window`` at ``kernel_size`` against the unwindowed model at ``base_kernel_size``."""

    window: str
    kernel_size: int
    base_kernel_size: int

    def label(self) -> str:
        return f"{self.window} k{self.kernel_size} vs {BASELINE_WINDOW} k{self.base_kernel_size}"


def verdict_window(windows: pd.Series) -> str | None:
    """The windowed window the verdict tests: :data:`PREFERRED_WINDOW` if present, else the first."""
    windowed = [w for w in ordered(windows.dropna().unique(), window_order()) if w != BASELINE_WINDOW]
    return PREFERRED_WINDOW if PREFERRED_WINDOW in windowed else (windowed[0] if windowed else None)


def large_kernel_size(clean: pd.DataFrame) -> int | None:
    """"Large k": the largest kernel size among the run's models."""
    sizes = clean["kernel_size"].dropna()
    return int(sizes.max()) if len(sizes) else None


def fixed_radius(results: Results) -> float:
    """The radius norms are capped at and the AUC is taken to: the largest of the suite's L2 radii."""
    return float(max(results.radii))


class Inputs:
    """Per-model values of one run, computed once and shared by every claim and table."""

    def __init__(self, results: Results) -> None:
        self.results = results
        self.radius = fixed_radius(results)

    @cached_property
    def clean(self) -> pd.DataFrame:
        ok = self.results.clean[self.results.clean["status"].astype(str) == "ok"]
        return ok.assign(value=100.0 * ok["accuracy"].astype(float))[[*CONFIG_SEED_COLUMNS, "value"]]

    @cached_property
    def norms(self) -> pd.DataFrame:
        """Best-known norms of every evaluated image (0 misclassified, +inf failed), and ``capped``."""
        samples = self.results.samples
        if not samples["family"].isin(minimal_norm_families()).any():
            return pd.DataFrame(columns=[*CONFIG_SEED_COLUMNS, "index", "attacked", "norm", "capped", "image_norm"])
        best = best_known_norms(samples)
        best["capped"] = cap_norms(best["norm"], self.radius)
        return best.merge(self._image_norms(), on=["dataset", "index"], how="left")

    def _image_norms(self) -> pd.DataFrame:
        """||x||_2 of each test image, from any verified adversarial: ``l2 / rho``."""
        rows = self.results.samples
        found = rows[rows["success"] & (pd.to_numeric(rows["rho"], errors="coerce") > 0)]
        ratio = found["l2"].astype(float) / found["rho"].astype(float)
        return ratio.groupby([found["dataset"], found["index"]]).median().rename("image_norm").reset_index()

    @cached_property
    def auc(self) -> pd.DataFrame:
        """Normalised area (%) under each model's robust-accuracy curve on [0, radius]: mean capped norm / radius."""
        frame = self.norms.groupby(CONFIG_SEED_COLUMNS)["capped"].mean().mul(100.0 / self.radius).rename("value")
        return frame.reset_index()

    def robust_accuracy(self, eps: float) -> pd.DataFrame:
        """Robust accuracy (%) at ``eps`` per model: share of evaluated images with best-known norm > eps."""
        robust = self.norms.assign(robust=self.norms["norm"] > eps)
        frame = robust.groupby(CONFIG_SEED_COLUMNS)["robust"].mean().mul(100.0)
        return frame.rename("value").reset_index()

    @cached_property
    def spatial(self) -> pd.DataFrame:
        """Per model: spatial robust accuracy (%, ``value``) and share of attacked images fooled (%, ``fooled``)."""
        rows = self.results.samples[self.results.samples["family"] == SPATIAL.name]
        attacks = ordered(rows["attack"].unique(), attack_order())
        if not attacks:
            return pd.DataFrame(columns=[*CONFIG_SEED_COLUMNS, "value", "fooled"])
        rows = rows[rows["attack"] == attacks[0]].assign(success=lambda f: f["success"] & f["attacked"])
        records = []
        for key, group in rows.groupby(CONFIG_SEED_COLUMNS):
            metrics = spatial_model_metrics(group)
            attacked = int(group["attacked"].sum())
            fooled = 100.0 * metrics["n_fooled"] / attacked if attacked else math.nan
            records.append(dict(zip(CONFIG_SEED_COLUMNS, key)) | {"value": metrics["robust_acc"], "fooled": fooled})
        return pd.DataFrame(records, columns=[*CONFIG_SEED_COLUMNS, "value", "fooled"])

    def leakage(self, layers: str) -> pd.DataFrame:
        """Per model: the learned change of the leakage of ``layers`` (trained minus the untrained model of the seed)."""
        leakage = self.results.records[LEAKAGE_RECORDS.name]
        if leakage.empty:
            return pd.DataFrame(columns=[*CONFIG_SEED_COLUMNS, "value"])
        per_seed = leakage_per_seed(leakage, layers=layers, measure=LEAKAGE_CLAIM_MEASURE)
        return per_seed.rename(columns={"leakage": "value"})


def _by_seed(frame: pd.DataFrame, window: str, kernel_size: int, column: str = "value") -> pd.Series:
    rows = frame[(frame["window"] == window) & (frame["kernel_size"] == kernel_size)]
    return rows.set_index("seed")[column].astype(float)


def _model_values(frame: pd.DataFrame, pair: Pair, column: str = "value", note: str = "") -> SeedEffects:
    return SeedEffects.of_values(_by_seed(frame, pair.window, pair.kernel_size, column),
                                 _by_seed(frame, BASELINE_WINDOW, pair.base_kernel_size, column), note)


# --------------------------------------------------------------------------- one function per claim


def clean_effects(inputs: Inputs, pair: Pair) -> SeedEffects:
    """Clean test accuracy (%) per seed, windowed minus baseline."""
    return _model_values(inputs.clean, pair)


def auc_effects(inputs: Inputs, pair: Pair) -> SeedEffects:
    """Normalised robust-accuracy AUC up to the fixed radius (%), every evaluated image; robust accuracy at radii."""
    effects = _model_values(inputs.auc, pair)
    parts = []
    for eps in inputs.results.radii:
        diff = _model_values(inputs.robust_accuracy(eps), pair).effects.dropna()
        parts.append(f"ε={eps:g}: {diff.mean():+.3g}" if len(diff) else f"ε={eps:g}: –")
    extra = "mean per-seed Δ robust accuracy (pp) at " + ", ".join(parts)
    return SeedEffects(effects.effects, effects.baseline, effects.note, extra)


def auc_design(claim: Claim, results: Results) -> str:
    """How :func:`auc_effects` reads minimal norms, for the design paragraph."""
    radius = fixed_radius(results)
    return (f"Minimal norms: best-known L2 norm per image over every attack of the families "
            f"{', '.join(minimal_norm_families())}; the {claim.role} row uses every evaluated image (misclassified at 0, "
            f"failed attacks at +inf) through the normalised area under the robust-accuracy curve on [0, {radius:g}] "
            f"(the largest of the suite's radii; 100 % = robust to every image up to {radius:g}); one convention for "
            f"infinite norms in every test: {INFINITY_CONVENTION} ({radius:g}).")


def both_correct_effects(inputs: Inputs, pair: Pair) -> SeedEffects:
    """Per seed: Hodges-Lehmann of paired capped-norm differences on the images both models classify correctly."""
    norms = inputs.norms
    effects, baseline, rho, excluded, totals = {}, {}, {}, [], []
    windowed = norms[(norms["window"] == pair.window) & (norms["kernel_size"] == pair.kernel_size)]
    base = norms[(norms["window"] == BASELINE_WINDOW) & (norms["kernel_size"] == pair.base_kernel_size)]
    for seed in sorted(set(windowed["seed"]) & set(base["seed"])):
        joined = windowed[windowed["seed"] == seed].merge(base[base["seed"] == seed], on="index", suffixes=("", "_b"))
        both = joined[joined["attacked"] & joined["attacked_b"]]
        excluded.append(len(joined) - len(both))
        totals.append(len(joined))
        if len(both) < MIN_PAIRS:
            continue
        diff = both["capped"].to_numpy(float) - both["capped_b"].to_numpy(float)
        effects[seed], baseline[seed] = hodges_lehmann(diff), float(np.median(both["capped_b"]))
        known = both["image_norm"].notna().to_numpy()
        if known.any():
            rho[seed] = hodges_lehmann(diff[known] / both["image_norm"].to_numpy(float)[known])
    note = ""
    if totals:
        note = (f"excluded {sum(excluded)} of {sum(totals)} (seed, image) pairs ({', '.join(map(str, excluded))} per "
                f"seed): images either model misclassifies (no perturbation to compare); seeds with fewer than "
                f"{MIN_PAIRS} pairs give no effect")
    extra = ""
    if rho:
        extra = (f"in rho = ‖r‖₂/‖x‖₂: mean per-seed HL {np.mean(list(rho.values())):+.3g} ("
                 + ", ".join(f"{s}: {v:+.3g}" for s, v in rho.items()) + ")")
    return SeedEffects(pd.Series(effects, dtype=float), pd.Series(baseline, dtype=float), note, extra)


def both_correct_design(claim: Claim, results: Results) -> str:
    """How :func:`both_correct_effects` estimates, for the design paragraph."""
    return (f"The both-correct row ({claim.role}) is the per-seed Hodges-Lehmann estimate of paired norm differences "
            f"on the images both models classify correctly.")


def spatial_effects(inputs: Inputs, pair: Pair) -> SeedEffects:
    """Spatial robust accuracy (%) of every evaluated image (misclassified ones count as not robust)."""
    return _model_values(inputs.spatial, pair)


def spatial_fooled_effects(inputs: Inputs, pair: Pair) -> SeedEffects:
    """Share (%) of the correctly classified images the spatial attack fools."""
    return _model_values(inputs.spatial, pair, "fooled")


def spatial_design(claim: Claim, results: Results) -> str:
    """Which spatial attack :attr:`Inputs.spatial` reads, for the design paragraph."""
    return "Spatial: robust accuracy of the first spatial attack over every evaluated image;"


def spatial_fooled_design(claim: Claim, results: Results) -> str:
    """What :func:`spatial_fooled_effects` counts, for the design paragraph."""
    return f"the {claim.role} row is the share of correctly classified images it fools."


LEAKAGE_CLAIM_MEASURE = "learned-change"  # against the null: the same layers of the untrained model of the seed
_LEAKAGE_NOT_MEASURED = ("the untrained models' leakage is not measured in this run (running the suite again on its "
                         "run folder adds it without retraining)")


def _leakage_effects(inputs: Inputs, pair: Pair, layers: str) -> SeedEffects:
    values = inputs.leakage(layers)
    return _model_values(values, pair, note="" if len(values) else _LEAKAGE_NOT_MEASURED)


def leakage_effects(inputs: Inputs, pair: Pair) -> SeedEffects:
    """Leakage of the k x k block layers per seed: learned change (trained minus untrained), windowed minus baseline."""
    return _leakage_effects(inputs, pair, "blocks")


def stem_leakage_effects(inputs: Inputs, pair: Pair) -> SeedEffects:
    """Leakage of the stem (its own kernel size, windowed in every windowed model) per seed: learned change."""
    return _leakage_effects(inputs, pair, "stem")


def leakage_design(claim: Claim, results: Results) -> str:
    """How :func:`leakage_effects` reads leakage against its null, for the design paragraph."""
    return ("Leakage, read against its null (it rises with k on random kernels): the learned change (trained minus "
            "the untrained model of the same seed) of the median leakage of a layer's kernels, averaged over the "
            "k x k block layers;")


def stem_leakage_design(claim: Claim, results: Results) -> str:
    """Where :func:`stem_leakage_effects` puts the stem, for the design paragraph."""
    return "the stem (its own kernel size, windowed in every windowed model) on its own row."


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and the function that gives its per-seed effects."""

    what: str
    unit: str
    direction: Direction
    effects: Callable[[Inputs, Pair], SeedEffects]
    role: str = "primary"
    robustness: bool = False  # refused when a model it rests on is flagged by a sanity check
    design: Callable[[Claim, Results], str] | None = None  # its words in the design paragraph, if any


CLAIMS: tuple[Claim, ...] = (
    Claim("clean accuracy gain", "pp", "increase", clean_effects),
    Claim("min-norm AUC gain", "pp", "increase", auc_effects, robustness=True, design=auc_design),
    Claim("min-norm gain, both correct", "L2", "increase", both_correct_effects, role="secondary", robustness=True,
          design=both_correct_design),
    Claim("spatial robust acc. gain", "pp", "increase", spatial_effects, robustness=True, design=spatial_design),
    Claim("spatial fooled share drop", "pp", "decrease", spatial_fooled_effects, role="secondary", robustness=True,
          design=spatial_fooled_design),
    Claim("leakage reduction, block layers", "", "decrease", leakage_effects, design=leakage_design),
    Claim("leakage reduction, stem", "", "decrease", stem_leakage_effects, role="secondary",
          design=stem_leakage_design),
)


def design_text(results: Results) -> str:
    """One paragraph saying, from the code, what each verdict row compares and how.

    The comparisons (:func:`headline_text`), how a row's effect comes from the seeds
    (:func:`~robustbench_win.analysis.verdict.replication_text`), each claim's own words
    (:attr:`Claim.design`) and how a row is decided
    (:data:`~robustbench_win.analysis.verdict.DECISION_TEXT`).
    """
    window, large = verdict_window(results.clean["window"]), large_kernel_size(results.clean)
    parts = [headline_text(window, large), replication_text(str(window)),
             *(claim.design(claim, results) for claim in CLAIMS if claim.design), DECISION_TEXT]
    return " ".join(parts)


def claim_legend() -> list[str]:
    """One bullet per claim: its name, role, unit and what its per-seed effect is (the function's docstring)."""
    return [f"- `{c.what}` ({c.role}, {c.direction} claimed{', ' + c.unit if c.unit else ''}): "
            f"{(c.effects.__doc__ or '').strip().splitlines()[0]}" for c in CLAIMS]


def _row(claim: Claim, inputs: Inputs, pair: Pair) -> ClaimResult:
    per_seed = claim.effects(inputs, pair)
    row = seed_effect(per_seed, claim=f"{claim.what}: {pair.label()}", unit=claim.unit, direction=claim.direction,
                      role=claim.role)
    if per_seed.effects.dropna().empty:
        row = _no_records(row, per_seed)
    return row


def _no_records(row: ClaimResult, per_seed: SeedEffects) -> ClaimResult:
    why = per_seed.note or "no paired seed has records for this claim in this run"
    return dataclasses.replace(row, why_undefined=why, note=per_seed.note or why)


def headline_text(window: str | None, large: int | None) -> str:
    """What the rows of :func:`headline_pairs` compare, in words."""
    return (f"Each row compares the {window} model with an unwindowed model (at the same k, and at k = "
            f"{REFERENCE_KERNEL_SIZE}, the paper's standard network); the headline uses the largest kernel size of "
            f"this run (k = {large}).")


def headline_pairs(results: Results) -> list[Pair]:
    """The comparisons of the headline table: large k vs none at large k and at the reference k (one
    comparison when large k is the reference k)."""
    window, large = verdict_window(results.clean["window"]), large_kernel_size(results.clean)
    if window is None or large is None:
        return []
    return [Pair(window, large, base) for base in dict.fromkeys((large, REFERENCE_KERNEL_SIZE))]


def claim_results(results: Results, inputs: Inputs | None = None) -> list[ClaimResult]:
    """Every claim in every headline comparison, decided as one Holm family."""
    inputs = inputs or Inputs(results)
    pairs = headline_pairs(results)
    rows = decide_table([_row(claim, inputs, pair) for claim in CLAIMS for pair in pairs])
    return _refused_if_flagged(rows, [c for c in CLAIMS for _ in pairs], [p for _ in CLAIMS for p in pairs], results)


def per_k_results(results: Results, inputs: Inputs | None = None) -> list[ClaimResult]:
    """The primary claims at every kernel size the window has (vs none at k, and vs none at the reference k), one Holm family."""
    inputs = inputs or Inputs(results)
    window = verdict_window(results.clean["window"])
    if window is None:
        return []
    sizes = sorted(int(k) for k in results.clean.loc[results.clean["window"] == window, "kernel_size"].unique())
    pairs = [Pair(window, k, base) for k in sizes for base in dict.fromkeys((k, REFERENCE_KERNEL_SIZE))]
    claims = [c for c in CLAIMS if c.role == "primary"]
    rows = decide_table([_row(c, inputs, p) for c in claims for p in pairs])
    return _refused_if_flagged(rows, [c for c in claims for _ in pairs], [p for _ in claims for p in pairs], results)


# --------------------------------------------------------------------------- sanity-check hook


def _refused_if_flagged(rows: list[ClaimResult], claims: list[Claim], pairs: list[Pair],
                        results: Results) -> list[ClaimResult]:
    """A robustness claim resting on a model a sanity check flagged is refused, naming check and model."""
    found = flagged_models(results)
    out = []
    for row, claim, pair in zip(rows, claims, pairs, strict=True):
        why = None
        if claim.robustness:
            why = refusal(found, [(pair.window, pair.kernel_size), (BASELINE_WINDOW, pair.base_kernel_size)])
        out.append(row if why is None else dataclasses.replace(row, verdict=REFUSED, reason=why))
    return out


def verdict_table(results: Results) -> pd.DataFrame:
    """:func:`claim_results` as a table, columns :data:`robustbench_win.analysis.verdict.CLAIM_COLUMNS`."""
    return claim_table(claim_results(results))


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """A verdict table for reading: claim, verdict, effect with interval and unit, relative effect, p, adjusted p.

    Details (seeds, test, exclusions, power) go in a list under the table (:func:`detail_lines`).
    """
    def effect(row: pd.Series) -> str:
        interval = "" if pd.isna(row["ci_low"]) else f" [{row['ci_low']:+.3g}, {row['ci_high']:+.3g}]"
        value = "–" if pd.isna(row["effect"]) else f"{row['effect']:+.3g}"
        return f"{value}{interval} {row['unit']}".rstrip()

    return pd.DataFrame({
        "claim": table["claim"], "verdict": table["verdict"],
        "effect [95% CI]": [effect(row) for _, row in table.iterrows()],
        "rel. (%)": ["–" if pd.isna(v) else f"{v:+.1f}" for v in table["relative"]],
        "p (raw)": table["p_value"], "p (Holm)": table["p_holm"],
    })


def detail_lines(table: pd.DataFrame) -> list[str]:
    """One bullet per row: the claim, then seeds, per-seed effects, reason, exclusions, power, extras."""
    lines = []
    for row in table.itertuples():
        result = ClaimResult(**{k: getattr(row, k) for k in ClaimResult.__dataclass_fields__})
        parts = [f"{row.verdict}, {row.reason}", f"{row.n} paired seeds ({row.per_seed or 'none'})"]
        parts += [text for text in (power_text(result), row.note, row.extra) if isinstance(text, str) and text]
        lines.append(f"- **{row.claim}** ({row.role}): " + "; ".join(parts) + ".")
    return lines
