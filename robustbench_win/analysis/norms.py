"""Minimal-norm robustness from per-sample records: failures as +inf, best-known norms, optimality.

Every function here is pure (figures live in :mod:`robustbench_win.report.figures`): it takes the
per-sample attack records of a run folder (columns of :data:`~robustbench_win.store.records.ATTACK_RECORDS`) and returns
numbers or DataFrames. Definitions (DESIGN.md, "Minimal-norm evaluation beyond DeepFool"):

- **Per-sample norm** of a minimal-norm L2 attack on one test image:
  ``||r||_2`` (column ``l2``) if the attack succeeded (verified), ``+inf`` if the image was
  attacked and the attack failed, and ``0`` if the image was not attacked because the model
  misclassifies it already (it is robust at no radius). Medians of norms are taken over the
  *attacked* images only (failures included as ``+inf``), so a model that misclassifies more
  does not get a smaller median; the misclassified images count in every robust accuracy.
- **Best-known norm** of an image (per model and test index): the smallest per-sample norm over
  all minimal-norm attacks run on it (``+inf`` if none succeeded).

Both come from :mod:`robustbench_win.store.minimal_norms`, which the runner's cross-check shares.
- **Robust accuracy** at radius eps: ``RA(eps) = #{i : norm_i > eps} / N`` over all N evaluated
  images (misclassified ones included, norm 0). ``RA(0)`` is the clean accuracy of the
  evaluated images; for eps above every finite norm it is the share of attacked images that
  every attack failed on.
- **Area** under the curve on ``[0, D]``: the curve is a step function, integrated exactly as
  ``A(D) = (1/N) * sum_i min(norm_i, D)`` (each image contributes ``min(norm_i, D)``, the length
  of ``[0, D]`` on which it is robust).
- **Optimality** of an attack (AttackBench, Cina et al. 2024):
  ``1 - (A - A*) / (clean_acc * D - A*)`` with ``A`` the area under the attack's curve,
  ``A*`` the area under the best-known curve, both on ``[0, D]``, and ``D = d_max`` the largest
  finite best-known norm. ``clean_acc * D`` is the area of an attack that fails everywhere,
  so optimality is 1 for the best-known curve and 0 for an attack that never succeeds.
- **Paired comparison** of two models (windowed vs a baseline) on the images both attacked
  (pairs by seed and test index), difference of the norms capped at the largest radius
  (:data:`~robustbench_win.analysis.inference.INFINITY_CONVENTION`): scipy's two-sided Wilcoxon
  signed-rank test, pooled over seeds, hence unadjusted and descriptive (see
  :func:`paired_norm_test`); the verdict tests over seeds.

Which attacks count as minimal-norm is decided by the ``family`` column
(:func:`~robustbench_win.attacks.families.minimal_norm_families`); every function takes an
explicit ``attacks`` list instead, so DeepFool-only numbers are ``attacks=["deepfool"]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from robustbench_win.ordering import sort_records
from robustbench_win.store.minimal_norms import (
    BEST_KNOWN, NORM_COLUMNS, best_known_norms, minimal_norm_attacks, resolve_attacks, sample_norms,
)
from robustbench_win.schema import CONFIG_COLUMNS, CONFIG_SEED_COLUMNS, MODEL_COLUMNS
from robustbench_win.conventions import DEFAULT_RADII
from robustbench_win.analysis.inference import INFINITY_CONVENTION, SIGNED_RANK_TEST, cap_norms, paired_image_test
from robustbench_win.analysis.tables import (
    BASELINE_WINDOW, REFERENCE_KERNEL_SIZE, attack_counts, image_pairs, int_columns, over_seeds, radius_column,
)

PAIRED_TEST = f"{SIGNED_RANK_TEST}; {INFINITY_CONVENTION}"
PAIRED_COLUMNS = ["n_pairs", "n_both_failed", "median_diff", "p", "test", "note"]
COST_COLUMNS = ["forward_passes", "backward_passes", "seconds"]  # optional per-(model, attack) costs
DEFAULT_BASELINES: tuple[tuple[str, int | None], ...] = (
    (BASELINE_WINDOW, None),  # the unwindowed model of the same kernel size
    (BASELINE_WINDOW, REFERENCE_KERNEL_SIZE),  # the unwindowed 3 x 3 model
)
_SUMMARY_METRICS = ["success_rate", "median_norm", "mean_l2_successes"]
_COUNTS = ["n_evaluated", "n_attacked", "n_success"]


class Optimality(NamedTuple):
    """AttackBench optimality of one attack on one model.

    Attributes:
        value: ``1 - (A - A*) / (clean_acc * d_max - A*)``; NaN where undefined.
        d_max: Largest finite best-known norm (NaN when there is none).
        note: Why ``value`` is NaN; empty otherwise.
    """

    value: float
    d_max: float
    note: str


# --------------------------------------------------------------------------- curve statistics


def robust_accuracy(norms: ArrayLike, eps: ArrayLike) -> np.ndarray:
    """Robust accuracy ``RA(eps) = #{i : norm_i > eps} / N`` (a fraction) at each radius.

    Args:
        norms: Per-sample norms of all N evaluated images (0 misclassified, +inf failed).
        eps: Radii.

    Returns:
        One fraction per radius (NaN when ``norms`` is empty), shaped like ``eps``.
    """
    values = np.sort(np.asarray(norms, dtype=float))
    radii = np.asarray(eps, dtype=float)
    if values.size == 0:
        return np.full(radii.shape, math.nan)
    # searchsorted(side="right") counts the norms <= eps; the rest are robust at eps.
    return (values.size - np.searchsorted(values, radii, side="right")) / values.size


def curve_area(norms: ArrayLike, upper: float) -> float:
    """Exact area under the robust-accuracy step function on ``[0, upper]``.

    ``A = integral_0^upper RA(eps) d eps = (1/N) * sum_i min(norm_i, upper)``: image i is
    robust exactly on ``[0, norm_i)``. Units: fraction x L2 norm.

    Args:
        norms: Per-sample norms of all N evaluated images.
        upper: Upper end of the integration range (>= 0).

    Returns:
        The area (NaN when ``norms`` is empty or ``upper`` is NaN).
    """
    values = np.asarray(norms, dtype=float)
    if values.size == 0 or math.isnan(upper):
        return math.nan
    if upper < 0:
        raise ValueError(f"expected an integration range [0, upper] with upper >= 0, got upper={upper}")
    return float(np.minimum(values, upper).mean())


def median_norm(norms: ArrayLike) -> float:
    """Median of the norms of the attacked images, failures included as +inf.

    With more than half failures the median is +inf; with an even count and exactly half
    failures it is the mean of a finite and an infinite middle value, hence +inf as well.

    Args:
        norms: Norms of attacked images only (misclassified images are not attacked).

    Returns:
        The median, +inf as above, NaN when there is no attacked image.
    """
    values = np.asarray(norms, dtype=float)
    return float(np.median(values)) if values.size else math.nan


def optimality(norms: ArrayLike, best_norms: ArrayLike) -> Optimality:
    """AttackBench optimality ``1 - (A - A*) / (clean_acc * d_max - A*)`` of one attack.

    ``A`` and ``A*`` are the exact areas (:func:`curve_area`) under the robust-accuracy curves
    of the attack's norms and of the best-known norms on ``[0, d_max]``, ``d_max`` the largest
    finite best-known norm of a correctly classified image (the 0 of a misclassified one is
    no perturbation, so ``d_max > 0`` whenever it exists), ``clean_acc = RA*(0)`` the share of
    evaluated images with a positive best-known norm (the correctly classified ones).
    ``clean_acc * d_max`` is the area of an attack that fails on every image.

    Args:
        norms: The attack's per-sample norms, one per evaluated image.
        best_norms: The best-known norms of the same images, in the same order.

    Returns:
        The optimality, ``d_max``, and a note when the value is NaN: no finite positive
        best-known norm (nothing fooled, or every image misclassified: ``d_max`` undefined),
        or a best-known curve equal to the failure curve on ``[0, d_max]`` (every finite
        best-known norm equals ``d_max``, so the denominator is 0).

    Raises:
        ValueError: Arrays of different lengths, or a norm below its best-known norm.
    """
    attack, best = np.asarray(norms, dtype=float), np.asarray(best_norms, dtype=float)
    if attack.shape != best.shape:
        raise ValueError(f"expected one best-known norm per attack norm, got {best.shape} and {attack.shape}")
    if np.any(attack < best):
        raise ValueError("an attack norm is below its best-known norm: best_norms must be the per-sample "
                         "minimum over attacks that include this one")
    found = best[np.isfinite(best) & (best > 0)]  # the 0 of a misclassified image is no perturbation
    if found.size == 0:
        return Optimality(math.nan, math.nan, "no attack fooled any correctly classified image (d_max undefined)")
    d_max = float(found.max())
    area, best_area = curve_area(attack, d_max), curve_area(best, d_max)
    failure_area = float(robust_accuracy(best, 0.0)) * d_max
    if failure_area <= best_area:
        return Optimality(math.nan, d_max, "best-known curve equals the all-failure curve on [0, d_max]")
    return Optimality(1.0 - (area - best_area) / (failure_area - best_area), d_max, "")


def norm_summary(rows: pd.DataFrame, *, radii: Sequence[float] = (),
                 auc_upper: float | None = None) -> dict[str, float]:
    """Minimal-norm metrics of one model on one attack (or on its best-known norms).

    Args:
        rows: Its rows of :func:`sample_norms` or :func:`best_known_norms`.
        radii: L2 radii for ``robust_acc@eps`` (percent of all evaluated images).
        auc_upper: If given, ``robust_auc`` = :func:`curve_area` on ``[0, auc_upper]``.

    Returns:
        :func:`~robustbench_win.analysis.tables.attack_counts`, ``median_norm`` (over attacked
        images, failures +inf), ``mean_l2_successes`` (mean ``||r||_2`` over successes only),
        the robust accuracies and ``robust_auc``.
    """
    norms = rows["norm"].to_numpy(dtype=float)
    attacked, success = rows["attacked"].to_numpy(dtype=bool), rows["success"].to_numpy(dtype=bool)
    summary = attack_counts(attacked, success) | {
        "median_norm": median_norm(norms[attacked]),
        "mean_l2_successes": float(norms[success].mean()) if success.any() else math.nan,
    }
    summary |= {radius_column(r): 100.0 * float(a) for r, a in zip(radii, robust_accuracy(norms, list(radii)))}
    if auc_upper is not None:
        summary["robust_auc"] = curve_area(norms, auc_upper)
    return summary


# --------------------------------------------------------------------------- paired comparison


def _no_test(n_pairs: int, n_both_failed: int, median_diff: float, note: str) -> dict[str, Any]:
    return {"n_pairs": n_pairs, "n_both_failed": n_both_failed, "median_diff": median_diff,
            "p": math.nan, "test": PAIRED_TEST, "note": note}


def paired_differences(model: pd.DataFrame, baseline: pd.DataFrame, radius: float) -> pd.DataFrame:
    """Pairs of images attacked by both models, by (seed, test index), and their capped differences.

    Args:
        model: Norm rows (:func:`sample_norms` or :func:`best_known_norms`) of one
            configuration, all seeds.
        baseline: The same for the model it is compared with.
        radius: Norms are capped at this radius (:data:`~robustbench_win.analysis.inference.INFINITY_CONVENTION`).

    Returns:
        Columns ``seed, index, norm_model, norm_baseline, diff`` with
        ``diff = min(norm_model, radius) - min(norm_baseline, radius)`` (finite).
    """
    pairs = image_pairs(model[model["attacked"]], baseline[baseline["attacked"]], "norm")
    pairs["diff"] = cap_norms(pairs["norm_model"], radius) - cap_norms(pairs["norm_baseline"], radius)
    return pairs


def paired_norm_test(model: pd.DataFrame, baseline: pd.DataFrame, radius: float) -> dict[str, Any]:
    """Descriptive Wilcoxon signed-rank test of per-image norms, model vs baseline, capped at ``radius``.

    Pairs are the images both models attacked (both classify them correctly), matched by
    (seed, test index) and pooled over seeds (:func:`paired_differences`): the p-value is
    unadjusted and descriptive, since images recur in every seed; the verdict
    (:mod:`robustbench_win.analysis.claims`) tests over seeds instead.

    Args:
        model: Norm rows of the model (all seeds of one configuration).
        baseline: Norm rows of the baseline.
        radius: The cap of every norm.

    Returns:
        ``n_pairs``, ``n_both_failed``, ``median_diff`` (median of the capped model - baseline;
        positive: the model needs larger perturbations), ``p`` (NaN with a ``note`` as
        :func:`~robustbench_win.analysis.inference.signed_rank_test` says), ``test``
        (:data:`PAIRED_TEST`) and ``note``.
    """
    pairs = paired_differences(model, baseline, radius)
    n_both_failed = int((np.isinf(pairs["norm_model"]) & np.isinf(pairs["norm_baseline"])).sum())
    test = paired_image_test(pairs["diff"])
    return _no_test(test.n_pairs, n_both_failed, test.median_diff, test.note) | {"p": test.p}


def baseline_group(window: str, kernel_size: int | None) -> str:
    """Column-group name of a paired comparison, e.g. ``vs none (same k)`` or ``vs none (k=3)``."""
    return f"vs {window} (same k)" if kernel_size is None else f"vs {window} (k={kernel_size})"


def _paired_record(best: pd.DataFrame, config: tuple, window: str, kernel_size: int | None,
                   radius: float) -> dict[str, Any]:
    """Paired test of one configuration (dataset, model, k, window) against one baseline."""
    dataset, model, k, own_window = config
    base_k = k if kernel_size is None else kernel_size
    if (base_k, window) == (k, own_window):
        return _no_test(0, 0, math.nan, "reference") | {"n_pairs": pd.NA, "n_both_failed": pd.NA}
    is_config = (best["dataset"] == dataset) & (best["model"] == model)
    rows = best[is_config & (best["kernel_size"] == k) & (best["window"] == own_window)]
    base = best[is_config & (best["kernel_size"] == base_k) & (best["window"] == window)]
    if base.empty:
        note = f"no {window} model with k={base_k}"
        return _no_test(0, 0, math.nan, note) | {"n_pairs": pd.NA, "n_both_failed": pd.NA}
    return paired_norm_test(rows, base, radius)


# --------------------------------------------------------------------------- tables


def _per_model(norms: pd.DataFrame, keys: list[str], **summary: Any) -> pd.DataFrame:
    records = [dict(zip(keys, key)) | norm_summary(group, **summary)
               for key, group in norms.groupby(keys, sort=False, dropna=False)]
    return pd.DataFrame(records)


def _optimality_rows(norms: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Optimality per (model, attack) against the model's best-known norms, same images."""
    keys = [*MODEL_COLUMNS, "index"]
    joined = norms.merge(best[[*keys, "norm"]], on=keys, suffixes=("", "_best"), validate="many_to_one")
    records = []
    for key, group in joined.groupby([*MODEL_COLUMNS, "attack"], sort=False, dropna=False):
        score = optimality(group["norm"], group["norm_best"])
        records.append({"model_id": key[0], "attack": key[-1], "optimality": score.value,
                        "d_max": score.d_max, "optimality_note": score.note})
    return pd.DataFrame(records, columns=["model_id", "attack", "optimality", "d_max", "optimality_note"])


def _costs(table: pd.DataFrame, costs: pd.DataFrame | None) -> pd.DataFrame:
    """Passes per attacked image and seconds from the per-(model, attack) cost records."""
    names = ["model_id", "attack", *COST_COLUMNS, "n_attacked"]
    given = pd.DataFrame(columns=names) if costs is None else costs
    given = given.reindex(columns=names).rename(columns={"n_attacked": "n_attacked_costs"})  # absent -> NaN
    merged = table.merge(given, on=["model_id", "attack"], how="left", validate="many_to_one")
    attacked = merged["n_attacked_costs"].astype(float).fillna(merged["n_attacked"].astype(float))
    attacked = attacked.where(attacked > 0)
    for kind in ("forward", "backward"):
        merged[f"{kind}_passes_per_sample"] = merged[f"{kind}_passes"].astype(float) / attacked
    merged["seconds"] = merged.pop("seconds").astype(float)
    return merged.drop(columns=["forward_passes", "backward_passes", "n_attacked_costs"])


def attack_quality_table(samples: pd.DataFrame, *, attacks: Iterable[str] | None = None,
                         costs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Attack quality: one row per model and minimal-norm attack, plus its best-known row.

    Args:
        samples: Per-sample attack records.
        attacks: Minimal-norm attacks to compare (and to take best-known norms over);
            default: every attack of a :func:`~robustbench_win.attacks.families.minimal_norm_families` family.
        costs: Optional per-(model, attack) records with ``model_id, attack`` and any of
            ``forward_passes, backward_passes, seconds, n_attacked`` (totals for the run of
            that attack on that model). Missing values stay NaN.

    Returns:
        Columns ``model_id, dataset, model, kernel_size, window, seed, attack``, the counts
        and metrics of :func:`norm_summary`, ``optimality, d_max, optimality_note``
        (:func:`optimality` against the best-known norms of the same images; the
        :data:`BEST_KNOWN` row scores 1), ``forward_passes_per_sample,
        backward_passes_per_sample`` (per attacked image; ``n_attacked`` from ``costs`` where
        given) and ``seconds`` (the attack's total).
    """
    norms = sample_norms(samples, attacks=attacks)
    best = best_known_norms(samples, attacks=attacks)
    both = pd.concat([norms, best[NORM_COLUMNS]], ignore_index=True)
    table = _per_model(both, [*MODEL_COLUMNS, "attack"])
    if table.empty:
        return pd.DataFrame(columns=[*MODEL_COLUMNS, "attack", *_COUNTS, *_SUMMARY_METRICS])
    table = table.merge(_optimality_rows(both, best), on=["model_id", "attack"], how="left")
    table = _costs(table, costs)
    order = {name: i for i, name in enumerate([*resolve_attacks(samples, attacks), BEST_KNOWN])}
    # Attacks in the order given, best-known last; then models in display order (a stable sort).
    table = table.iloc[np.argsort(table["attack"].map(order).to_numpy(), kind="stable")]
    return int_columns(sort_records(table, CONFIG_SEED_COLUMNS), ["kernel_size", "seed", *_COUNTS])


def default_auc_upper(best: pd.DataFrame) -> pd.Series:
    """Per data set, the largest finite best-known norm over all its models (NaN if none).

    Using one range per data set keeps ``robust_auc`` comparable across the rows of a table.
    """
    finite = best[np.isfinite(best["norm"]) & (best["norm"] > 0)]
    return finite.groupby("dataset")["norm"].max().reindex(best["dataset"].unique())


def _clean_over_seeds(clean: pd.DataFrame) -> pd.DataFrame:
    """Clean test-split accuracy (%) per configuration from ``clean.csv`` records."""
    ok = clean[clean["accuracy"].notna()]
    if "status" in ok:
        ok = ok[ok["status"].astype(str) == "ok"]
    acc = ok.assign(clean_acc_test=100.0 * ok["accuracy"].astype(float))
    groups = acc.groupby(CONFIG_COLUMNS, sort=False, dropna=False)["clean_acc_test"]
    return pd.DataFrame({"clean_acc_test_mean": groups.mean(), "clean_acc_test_std": groups.std(ddof=1)}).reset_index()


def _paired_columns(best: pd.DataFrame, configs: pd.DataFrame,
                    baselines: Sequence[tuple[str, int | None]], radius: float) -> pd.DataFrame:
    records = []
    for config in configs[CONFIG_COLUMNS].itertuples(index=False, name=None):
        record = dict(zip(CONFIG_COLUMNS, config))
        for window, kernel_size in baselines:
            group = baseline_group(window, kernel_size)
            result = _paired_record(best, config, window, kernel_size, radius)
            record |= {f"{group}:{name}": result[name] for name in PAIRED_COLUMNS}
        records.append(record)
    return pd.DataFrame(records)


def comparison_table(samples: pd.DataFrame, *, attacks: Iterable[str] | None = None,
                     radii: Sequence[float] = DEFAULT_RADII, clean: pd.DataFrame | None = None,
                     baselines: Sequence[tuple[str, int | None]] = DEFAULT_BASELINES,
                     auc_upper: float | None = None) -> pd.DataFrame:
    """Configurations compared on best-known norms: one row per (data set, model, k, window).

    Per model (seed), from its best-known norms over ``attacks`` (:func:`norm_summary`):
    success rate, median norm (failures +inf), mean ``||r||_2`` over successes only, robust
    accuracy at ``radii`` and the exact area under the robust-accuracy curve on
    ``[0, auc_upper]``; then mean and std over seeds. Each ``baselines`` entry adds a paired
    test (:func:`paired_norm_test`) of this configuration against the baseline of the same
    data set and model, pooled over seeds (unadjusted and descriptive), with norms capped at
    the largest of ``radii`` (the suite default's largest when ``radii`` is empty).

    Args:
        samples: Per-sample attack records.
        attacks: Attacks whose best-known norm is used; ``["deepfool"]`` gives the
            DeepFool-only numbers. Default: every attack of a
            :func:`~robustbench_win.attacks.families.minimal_norm_families` family.
        radii: L2 radii for robust accuracy.
        clean: Optional ``clean.csv`` records; adds ``clean_acc_test_mean/std`` (% of the
            whole test split, models with status "ok").
        baselines: ``(window, kernel_size)`` pairs; ``kernel_size=None`` means the same k as
            the row. Default: the unwindowed model of the same k and the unwindowed k = 3 one.
        auc_upper: Integration range of ``robust_auc``; default: per data set, the largest
            finite best-known norm of all its models (:func:`default_auc_upper`).

    Returns:
        Columns ``dataset, model, kernel_size, window, norms_from`` (the attacks combined),
        ``robust_auc_upper``, ``n_seeds`` and the totals ``n_evaluated, n_attacked,
        n_success``, ``<metric>_mean``/``<metric>_std`` for ``success_rate, median_norm,
        mean_l2_successes, robust_acc@eps..., robust_auc``, optionally the clean accuracy,
        and for each baseline ``<group>:n_pairs, :n_both_failed, :median_diff, :p, :test,
        :note`` with ``<group>`` from :func:`baseline_group`.
    """
    best = best_known_norms(samples, attacks=attacks)
    uppers = default_auc_upper(best) if auc_upper is None else pd.Series(auc_upper, index=best["dataset"].unique())
    per_seed = pd.concat([_per_model(rows, MODEL_COLUMNS, radii=radii, auc_upper=float(uppers[dataset]))
                         for dataset, rows in best.groupby("dataset", sort=False)] or [pd.DataFrame()])
    if per_seed.empty:
        return pd.DataFrame(columns=[*CONFIG_COLUMNS, "norms_from", "n_seeds", *_COUNTS])
    metrics = [*_SUMMARY_METRICS, *(radius_column(r) for r in radii), "robust_auc"]
    table = over_seeds(per_seed, CONFIG_COLUMNS, metrics, _COUNTS)
    table.insert(4, "norms_from", ", ".join(resolve_attacks(samples, attacks)))
    table.insert(5, "robust_auc_upper", table["dataset"].map(uppers).astype(float))
    if clean is not None:
        table = table.merge(_clean_over_seeds(clean), on=CONFIG_COLUMNS, how="left")
    cap = float(max(radii, default=max(DEFAULT_RADII)))  # the fixed radius of every test on norms
    table = table.merge(_paired_columns(best, table, baselines, cap), on=CONFIG_COLUMNS, how="left")
    counts = [c for c in table.columns if c.endswith((":n_pairs", ":n_both_failed"))]
    return int_columns(sort_records(table, CONFIG_COLUMNS), ["kernel_size", "n_seeds", *_COUNTS, *counts])


# --------------------------------------------------------------------------- security curves


def default_eps_grid(best: pd.DataFrame, n_points: int = 201) -> np.ndarray:
    """``n_points`` radii from 0 to 5 % past the largest finite best-known norm (just 0 if none)."""
    if n_points < 2:
        raise ValueError(f"expected n_points >= 2 for an eps grid, got {n_points}")
    finite = best.loc[np.isfinite(best["norm"]), "norm"]
    top = float(finite.max()) if len(finite) else 0.0
    return np.linspace(0.0, 1.05 * top, n_points) if top > 0 else np.zeros(1)


def security_curves(samples: pd.DataFrame, *, attacks: Iterable[str] | None = None,
                    eps: ArrayLike | None = None) -> pd.DataFrame:
    """Robust accuracy against L2 radius from the best-known norms, per model (seed).

    Args:
        samples: Per-sample attack records.
        attacks: Attacks combined into best-known norms (default: the minimal-norm families).
        eps: Radii; default :func:`default_eps_grid` over all models of the records.

    Returns:
        Long format: ``model_id, dataset, model, kernel_size, window, seed, norms_from, eps,
        robust_acc`` (percent of all evaluated images, :func:`robust_accuracy`).
    """
    best = best_known_norms(samples, attacks=attacks)
    radii = default_eps_grid(best) if eps is None else np.asarray(eps, dtype=float)
    source = ", ".join(resolve_attacks(samples, attacks))
    parts = []
    for key, rows in best.groupby(MODEL_COLUMNS, sort=False, dropna=False):
        part = pd.DataFrame({"eps": radii, "robust_acc": 100.0 * robust_accuracy(rows["norm"], radii)})
        parts.append(part.assign(**dict(zip(MODEL_COLUMNS, key)), norms_from=source))
    columns = [*MODEL_COLUMNS, "norms_from", "eps", "robust_acc"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
