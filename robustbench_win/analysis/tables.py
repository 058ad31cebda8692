"""Comparison tables computed from stored per-model and per-sample records.

Every function here is pure: it takes the typed records (as read by
:meth:`robustbench_win.store.run_folder.RunFolder.collect`) and returns a new DataFrame. Numbers stay
numeric; :mod:`robustbench_win.report.markdown` renders a table for reading.

Conventions shared by all tables:

- Accuracies, success rates and robust accuracies are in percent (0..100).
- A metric is computed once per seed, then summarised as ``<metric>_mean`` and
  ``<metric>_std`` over seeds (sample standard deviation, ddof = 1: NaN for a single seed).
- Wide tables name their column groups ``<group>:<column>``, the group being a window
  (clean accuracy) or a spatial attack (spatial table).
- Baseline means the unwindowed model (window ``"none"``) with the same data set, model and
  kernel size. Models are paired by seed, and attacked samples by (seed, test index): the
  runner attacks the same test images for every model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from robustbench_win.analysis.inference import paired_image_test
from robustbench_win.attacks.families import DEEPFOOL, SPATIAL
from robustbench_win.ordering import attack_order, ordered, sort_records, window_order
from robustbench_win.conventions import DEFAULT_RADII
from robustbench_win.schema import CONFIG_COLUMNS

BASELINE_WINDOW = "none"
REFERENCE_KERNEL_SIZE = 3  # the standard small-kernel network the paper compares against (the one definition)
REFERENCE_TAG = f"k{REFERENCE_KERNEL_SIZE}"  # suffix of the columns compared with it, e.g. diff_k3

ROW_KEYS = ["dataset", "model", "kernel_size"]  # one row of a wide table
WILCOXON_COLUMNS = ["wilcoxon_n_pairs", "wilcoxon_median_diff", "wilcoxon_p", "wilcoxon_note"]
_ATTACK_KEYS = ["dataset", "model", "attack", "kernel_size", "window"]  # one summary row per attack and configuration
_DEEPFOOL_COUNTS = ["n_evaluated", "n_attacked", "n_success"]
_SPATIAL_COUNTS = ["n_evaluated", "n_fooled"]
_SPATIAL_METRICS = ["robust_acc", "median_abs_angle", "median_shift"]


# --------------------------------------------------------------------------- helpers


def _prepare_samples(samples: pd.DataFrame, family: str) -> pd.DataFrame:
    """Rows of one attack family (typed records); ``success`` implies ``attacked``."""
    rows = samples[samples["family"] == family].copy()
    rows["success"] = rows["success"] & rows["attacked"]
    return rows


def _percent(count: float, total: float) -> float:
    return 100.0 * count / total if total else math.nan


def attack_counts(attacked: np.ndarray | pd.Series, success: np.ndarray | pd.Series) -> dict[str, float]:
    """How many images one attack (or a model's best-known norms) evaluated, attacked and fooled.

    Args:
        attacked: One flag per evaluated image: classified correctly, hence attacked.
        success: One flag per evaluated image: a verified adversarial was found.

    Returns:
        ``n_evaluated, n_attacked, n_success`` and ``success_rate`` (% of attacked; NaN when
        none was attacked): the first columns of every per-model attack summary.
    """
    n_attacked, n_success = int(np.sum(attacked)), int(np.sum(success))
    return {"n_evaluated": len(attacked), "n_attacked": n_attacked, "n_success": n_success,
            "success_rate": _percent(n_success, n_attacked)}


def over_seeds(per_seed: pd.DataFrame, keys: list[str], metrics: list[str],
                counts: Sequence[str] = ()) -> pd.DataFrame:
    """Summarise one-row-per-seed metrics as mean and std over seeds, per ``keys``.

    Returns one row per key with ``n_seeds``, the summed ``counts`` and, for each metric,
    ``<metric>_mean`` and ``<metric>_std`` (ddof = 1). A seed with an infinite metric makes
    the mean +inf and the std NaN.
    """
    groups = per_seed.groupby(keys, sort=False, dropna=False)
    out = groups.size().rename("n_seeds").to_frame()
    for name in counts:
        out[name] = groups[name].sum()
    with np.errstate(invalid="ignore"):  # std of values including +inf is NaN
        for name in metrics:
            out[f"{name}_mean"] = groups[name].mean()
            out[f"{name}_std"] = groups[name].std(ddof=1)
    return out.reset_index()


def image_pairs(model: pd.DataFrame, baseline: pd.DataFrame, column: str) -> pd.DataFrame:
    """``column`` of the images in both frames, paired by (seed, test index): each model's own seed.

    Returns:
        Columns ``seed, index, <column>_model, <column>_baseline``, sorted by seed and index.
    """
    columns = ["seed", "index", column]
    pairs = model[columns].merge(baseline[columns], on=["seed", "index"], suffixes=("_model", "_baseline"),
                                 validate="one_to_one")
    return pairs.sort_values(["seed", "index"], kind="mergesort").reset_index(drop=True)


def int_columns(df: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    """``df`` with the named columns (those present) as nullable integers, for tables that print counts."""
    for name in names:
        if name in df:
            df[name] = df[name].astype("Int64")
    return df


def _spread(long: pd.DataFrame, row_keys: list[str], group_key: str,
            columns: dict[str, list[str]]) -> pd.DataFrame:
    """Turn rows per (row keys, group) into one row per row key with ``<group>:<col>`` columns.

    Args:
        long: Summary rows, one per row key and group.
        row_keys: Columns identifying an output row.
        group_key: Column naming the group (window or attack).
        columns: For each group, in output order, the columns to carry over.
    """
    wide = sort_records(long[row_keys].drop_duplicates(), row_keys)
    for group, names in columns.items():
        part = long[long[group_key] == group].set_index(row_keys)[names]
        part = part.rename(columns=lambda c, g=group: f"{g}:{c}")
        wide = wide.merge(part, how="left", left_on=row_keys, right_index=True)
    return wide.reset_index(drop=True)


# --------------------------------------------------------------------------- clean accuracy


def seed_differences(per_seed: pd.DataFrame, metric: str, *, reference_kernel_size: int | None = None,
                     tag: str = "diff") -> pd.DataFrame:
    """Per configuration: mean and std over seeds of its per-seed difference to an unwindowed model.

    Args:
        per_seed: One row per trained model: ``dataset, model, kernel_size, window, seed`` and
            ``metric``.
        metric: The column compared.
        reference_kernel_size: ``None``: the baseline is the unwindowed model of the same
            kernel size; an integer (3, the paper's standard network): the unwindowed model of
            that kernel size, for every configuration.
        tag: Prefix of the output columns, ``"diff"`` or ``"diff_<suffix>"``.

    Returns:
        Columns ``dataset, model, kernel_size, window, <tag>_mean, <tag>_std, n_paired<suffix>``
        (``n_paired`` for ``"diff"``, ``n_paired_k3`` for ``"diff_k3"``): differences paired by seed (the same seed
        on both sides); the baseline itself has no row.
    """
    count = "n_paired" + tag.removeprefix("diff")
    join = ROW_KEYS if reference_kernel_size is None else ["dataset", "model"]
    base = per_seed[per_seed["window"] == BASELINE_WINDOW]
    if reference_kernel_size is not None:
        base = base[base["kernel_size"] == reference_kernel_size]
    paired = per_seed.merge(base[join + ["seed", metric]], on=join + ["seed"], suffixes=("", "_base"))
    is_base = paired["window"] == BASELINE_WINDOW
    if reference_kernel_size is not None:
        is_base &= paired["kernel_size"] == reference_kernel_size
    paired = paired[~is_base].assign(**{tag: lambda f: f[metric] - f[f"{metric}_base"]})
    if paired.empty:
        return pd.DataFrame(columns=CONFIG_COLUMNS + [f"{tag}_mean", f"{tag}_std", count])
    return over_seeds(paired, CONFIG_COLUMNS, [tag]).rename(columns={"n_seeds": count})


def clean_accuracy_long(clean: pd.DataFrame) -> pd.DataFrame:
    """Clean accuracy per (data set, model, kernel size, window), over the seeds that trained.

    Args:
        clean: One row per model (``clean.json`` records): ``dataset, model, kernel_size,
            window, seed, status, accuracy`` (accuracy as a fraction 0..1).

    Returns:
        Columns ``dataset, model, kernel_size, window, n_params, n_seeds, acc_mean, acc_std,
        diff_mean, diff_std, n_paired, diff_k3_mean, diff_k3_std, n_paired_k3``: the
        trainable parameters of the models (the largest over seeds; missing in records stored
        without it), accuracy in %, and the mean and std over seeds of the per-seed difference
        to the unwindowed model with the same seed, at the same kernel size (``diff``) and at
        k = 3 (``diff_k3``), in percentage points (NaN for the baseline rows). Failed models
        are left out (they are listed as failures).
    """
    ok = clean[(clean["status"].astype(str) == "ok") & clean["accuracy"].notna()].copy()
    ok["acc"] = 100.0 * ok["accuracy"].astype(float)
    long = over_seeds(ok, CONFIG_COLUMNS, ["acc"])
    if "n_params" not in ok:  # records of a run that did not store it
        ok["n_params"] = pd.Series(pd.NA, index=ok.index, dtype="Int64")
    long = long.merge(ok.groupby(CONFIG_COLUMNS)["n_params"].max().reset_index(), how="left", on=CONFIG_COLUMNS)
    for diffs in (seed_differences(ok, "acc"),
                  seed_differences(ok, "acc", reference_kernel_size=REFERENCE_KERNEL_SIZE, tag=f"diff_{REFERENCE_TAG}")):
        long = long.merge(diffs, how="left", on=CONFIG_COLUMNS)
    ref = REFERENCE_TAG
    long = long[CONFIG_COLUMNS + ["n_params", "n_seeds", "acc_mean", "acc_std", "diff_mean", "diff_std", "n_paired",
                              f"diff_{ref}_mean", f"diff_{ref}_std", f"n_paired_{ref}"]]
    integers = ["kernel_size", "n_params", "n_seeds", "n_paired", f"n_paired_{ref}"]
    return int_columns(sort_records(long, CONFIG_COLUMNS), integers)


def clean_accuracy_table(clean: pd.DataFrame) -> pd.DataFrame:
    """Clean accuracy: one row per kernel size, one column group per window.

    Args:
        clean: One row per model, as for :func:`clean_accuracy_long`.

    Returns:
        Columns ``dataset, model, kernel_size``, then for each window ``w`` (baseline
        first): ``w:n_params, w:n_seeds, w:acc_mean, w:acc_std``, for windowed models
        ``w:diff_mean, w:diff_std, w:n_paired`` (paired per-seed difference to ``none`` at the
        same k, percentage points), and ``w:diff_k3_mean, w:diff_k3_std, w:n_paired_k3`` (the
        same against ``none`` at k = 3).
    """
    long = clean_accuracy_long(clean)
    columns = {}
    for window in ordered(long["window"], window_order()):
        columns[window] = ["n_params", "n_seeds", "acc_mean", "acc_std"]
        if window != BASELINE_WINDOW:
            columns[window] += ["diff_mean", "diff_std", "n_paired"]
        columns[window] += [f"diff_{REFERENCE_TAG}_mean", f"diff_{REFERENCE_TAG}_std", f"n_paired_{REFERENCE_TAG}"]
    return _spread(long, ROW_KEYS, "window", columns)


# --------------------------------------------------------------------------- DeepFool


def radius_column(eps: float) -> str:
    """Name of the robust-accuracy metric at L2 radius ``eps`` (e.g. ``robust_acc@0.25``)."""
    return f"robust_acc@{eps:g}"


def deepfool_model_metrics(rows: pd.DataFrame, radii: Sequence[float] = DEFAULT_RADII) -> dict[str, float]:
    """The DeepFool paper's metrics (success, ||r||_2 and rho_adv over successes) of one model on one attack.

    Args:
        rows: Its per-sample records (booleans already parsed, ``success`` implies
            ``attacked``).
        radii: L2 radii for robust accuracy.

    Returns:
        :func:`attack_counts`; ``median_l2, mean_l2, mean_rho`` over successful samples only
        (failed attacks keep the norm of their last iterate, which is no adversarial norm; the
        minimal-norm tables count them as +inf instead:
        :func:`robustbench_win.analysis.norms.norm_summary`); and ``robust_acc@eps`` (% of
        all evaluated samples that are classified correctly and not fooled within ``eps``:
        attacked and (not successful or ||r||_2 > eps)).
    """
    attacked, success = rows["attacked"], rows["success"]
    fooled = rows[success]
    metrics = attack_counts(attacked, success)
    found = metrics["n_success"] > 0
    metrics |= {
        "median_l2": float(fooled["l2"].median()) if found else math.nan,
        "mean_l2": float(fooled["l2"].mean()) if found else math.nan,
        "mean_rho": float(fooled["rho"].mean()) if found else math.nan,
    }
    for eps in radii:
        robust = attacked & (~success | (rows["l2"] > eps))
        metrics[radius_column(eps)] = _percent(int(robust.sum()), metrics["n_evaluated"])
    return metrics


def paired_l2_test(windowed: pd.DataFrame, baseline: pd.DataFrame) -> dict[str, Any]:
    """Wilcoxon signed-rank test of DeepFool norms, windowed vs baseline, paired by sample.

    Only samples that both models classify correctly and both attacks fooled enter, paired
    by (seed, test index) (:func:`image_pairs`), so every norm is finite and none is capped
    (the minimal-norm tables pair every attacked image instead:
    :func:`robustbench_win.analysis.norms.paired_norm_test`). The test is
    :func:`~robustbench_win.analysis.inference.paired_image_test` of windowed - baseline.

    Args:
        windowed: Per-sample records of the windowed models (all seeds, one attack).
        baseline: The same for the baseline models at the same kernel size.

    Returns:
        ``wilcoxon_n_pairs``, ``wilcoxon_median_diff`` (median of windowed - baseline
        ||r||_2), ``wilcoxon_p`` and ``wilcoxon_note`` (why p is NaN, else empty).
    """
    fooled_w = windowed[windowed["success"] & windowed["l2"].notna()]
    fooled_b = baseline[baseline["success"] & baseline["l2"].notna()]
    pairs = image_pairs(fooled_w, fooled_b, "l2")
    test = paired_image_test((pairs["l2_model"] - pairs["l2_baseline"]).to_numpy())
    return dict(zip(WILCOXON_COLUMNS, test))


def _wilcoxon_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """One paired test per (data set, model, attack, kernel size, windowed window)."""
    keys = _ATTACK_KEYS[:-1]
    records = []
    for key, group in rows.groupby(keys, sort=False):
        baseline = group[group["window"] == BASELINE_WINDOW]
        for window, windowed in group.groupby("window", sort=False):
            record = dict(zip(keys, key)) | {"window": window}
            if window == BASELINE_WINDOW:
                record |= {"wilcoxon_n_pairs": pd.NA, "wilcoxon_median_diff": math.nan,
                           "wilcoxon_p": math.nan, "wilcoxon_note": "reference"}
            elif baseline.empty:
                record |= {"wilcoxon_n_pairs": pd.NA, "wilcoxon_median_diff": math.nan,
                           "wilcoxon_p": math.nan, "wilcoxon_note": "no baseline at this k"}
            else:
                record |= paired_l2_test(windowed, baseline)
            records.append(record)
    return pd.DataFrame(records, columns=keys + ["window"] + WILCOXON_COLUMNS)


def _deepfool_metrics(radii: Sequence[float]) -> list[str]:
    return ["success_rate", "median_l2", "mean_l2", "mean_rho"] + [radius_column(e) for e in radii]


def deepfool_columns(radii: Sequence[float] = DEFAULT_RADII) -> list[str]:
    """Columns of :func:`deepfool_table`, in order."""
    summary = [f"{m}_{s}" for m in _deepfool_metrics(radii) for s in ("mean", "std")]
    return _ATTACK_KEYS + ["n_seeds", *_DEEPFOOL_COUNTS] + summary + WILCOXON_COLUMNS


def deepfool_table(samples: pd.DataFrame, radii: Sequence[float] = DEFAULT_RADII) -> pd.DataFrame:
    """DeepFool results: one row per (attack, kernel size, window).

    Args:
        samples: Per-sample attack records (all families; rows with family "deepfool" are
            used).
        radii: L2 radii for robust accuracy.

    Returns:
        Columns :func:`deepfool_columns`: ``n_seeds``, totals over seeds of
        ``n_evaluated, n_attacked, n_success``, mean and std over seeds of the metrics of
        :func:`deepfool_model_metrics`, and the paired test of :func:`paired_l2_test`
        against the baseline (NaN p-value with a note where it does not apply).
    """
    rows = _prepare_samples(samples, DEEPFOOL.name)
    integers = ["kernel_size", "n_seeds", *_DEEPFOOL_COUNTS, "wilcoxon_n_pairs"]
    if rows.empty:
        return int_columns(pd.DataFrame(columns=deepfool_columns(radii)), integers)
    keys = _ATTACK_KEYS
    per_seed = [dict(zip(keys + ["seed"], key)) | deepfool_model_metrics(group, radii)
                for key, group in rows.groupby(keys + ["seed"], sort=False)]
    table = over_seeds(pd.DataFrame(per_seed), keys, _deepfool_metrics(radii), _DEEPFOOL_COUNTS)
    table = table.merge(_wilcoxon_rows(rows), how="left", on=keys)[deepfool_columns(radii)]
    return int_columns(sort_records(table, keys), integers)


# --------------------------------------------------------------------------- spatial


def spatial_model_metrics(rows: pd.DataFrame) -> dict[str, float]:
    """Spatial-attack metrics of one model (one seed) on one attack.

    Args:
        rows: Its per-sample records (booleans parsed, ``success`` implies ``attacked``).

    Returns:
        ``n_evaluated, n_fooled``; ``robust_acc`` (% of all evaluated samples that are
        classified correctly and not fooled by any transform tried); over fooled samples
        with a recorded transform, ``median_abs_angle`` (degrees) and ``median_shift``
        (pixels, Chebyshev: max(|dx|, |dy|)).
    """
    attacked, success = rows["attacked"], rows["success"]
    fooled = rows[success]
    shift = np.maximum(fooled["dx"].abs(), fooled["dy"].abs())
    return {
        "n_evaluated": len(rows),
        "n_fooled": int(success.sum()),
        "robust_acc": _percent(int((attacked & ~success).sum()), len(rows)),
        "median_abs_angle": float(fooled["angle"].abs().median()) if fooled["angle"].notna().any() else math.nan,
        "median_shift": float(shift.median()) if shift.notna().any() else math.nan,
    }


def spatial_table(samples: pd.DataFrame) -> pd.DataFrame:
    """Spatial-attack results: one row per (kernel size, window), a column group per attack.

    Args:
        samples: Per-sample attack records (rows with family "spatial" are used).

    Returns:
        Columns ``dataset, model, kernel_size, window``, then for each spatial attack ``a``
        present: ``a:n_seeds, a:n_evaluated, a:n_fooled`` (totals over seeds) and
        ``a:robust_acc_*``, ``a:median_abs_angle_*``, ``a:median_shift_*`` (``_mean`` and
        ``_std`` over seeds of :func:`spatial_model_metrics`).
    """
    rows = _prepare_samples(samples, SPATIAL.name)
    if rows.empty:
        return int_columns(pd.DataFrame(columns=CONFIG_COLUMNS), ["kernel_size"])
    keys = _ATTACK_KEYS
    per_seed = [dict(zip(keys + ["seed"], key)) | spatial_model_metrics(group)
                for key, group in rows.groupby(keys + ["seed"], sort=False)]
    long = over_seeds(pd.DataFrame(per_seed), keys, _SPATIAL_METRICS, _SPATIAL_COUNTS)
    names = ["n_seeds", *_SPATIAL_COUNTS] + [f"{m}_{s}" for m in _SPATIAL_METRICS for s in ("mean", "std")]
    attacks = ordered(long["attack"], attack_order())
    table = _spread(long, CONFIG_COLUMNS, "attack", {attack: names for attack in attacks})
    counts = [f"{a}:{c}" for a in attacks for c in ("n_seeds", *_SPATIAL_COUNTS)]
    return int_columns(table, ["kernel_size", *counts])


def spatial_attacks(table: pd.DataFrame) -> list[str]:
    """The spatial attacks that have a column group in a :func:`spatial_table`."""
    return [c.split(":", 1)[0] for c in table.columns if c.endswith(":robust_acc_mean")]
