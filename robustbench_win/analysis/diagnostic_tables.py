"""Tables of the per-model diagnostics: spectral leakage and shift consistency.

Pure functions of the stored records (:data:`robustbench_win.store.records.LEAKAGE_RECORDS`,
:data:`~robustbench_win.store.records.SHIFT_RECORDS`, :data:`~robustbench_win.store.records.SHIFT_ACCURACY_RECORDS`),
following the conventions of :mod:`robustbench_win.analysis.tables`: one row per (data set, model,
kernel size, window), a metric computed once per seed and summarised as ``<metric>_mean`` and
``<metric>_std`` over seeds, and the paired per-seed difference to the unwindowed model of the
same kernel size (``diff_*``, ``n_paired``) and to the unwindowed k = 3 model (``diff_k3_*``,
``n_paired_k3``).
"""

from __future__ import annotations

import pandas as pd

from robustbench_win.ordering import sort_records
from robustbench_win.analysis.tables import (
    MODEL_KEYS, REFERENCE_KERNEL_SIZE, REFERENCE_TAG, int_columns, over_seeds, seed_differences,
)

SEED_KEYS = [*MODEL_KEYS, "seed"]  # one trained model
_COUNTS = ["n_paired", f"n_paired_{REFERENCE_TAG}"]


def _with_differences(per_seed: pd.DataFrame, metric: str, long: pd.DataFrame) -> pd.DataFrame:
    """``long`` with the paired differences of ``metric`` to ``none`` at the same k and at k = 3."""
    for diffs in (seed_differences(per_seed, metric),
                  seed_differences(per_seed, metric, reference_kernel_size=REFERENCE_KERNEL_SIZE, tag=f"diff_{REFERENCE_TAG}")):
        long = long.merge(diffs, how="left", on=MODEL_KEYS)
    return long


# --------------------------------------------------------------------------- leakage


def leakage_per_seed(leakage: pd.DataFrame) -> pd.DataFrame:
    """A model's leakage: the mean of its layers' median leakages
    (:func:`robustbench_win.measure.leakage.overall_leakage`), one row per trained model.

    Returns:
        Columns ``dataset, model, kernel_size, window, seed, leakage`` (a fraction 0..1).
    """
    per_seed = leakage.groupby(SEED_KEYS, sort=False)["leakage_median"].mean()
    return per_seed.rename("leakage").reset_index()


def leakage_table(leakage: pd.DataFrame) -> pd.DataFrame:
    """Spectral leakage per configuration: overall and per layer, mean and std over seeds.

    Args:
        leakage: Stored leakage records, one row per model and conv layer.

    Returns:
        Columns ``dataset, model, kernel_size, window, n_seeds, leakage_mean, leakage_std``,
        the paired differences (``leakage_diff_mean, leakage_diff_std, n_paired, diff_k3_mean,
        diff_k3_std, n_paired_k3``; negative: the model leaks less than the baseline), then per conv layer
        ``i`` (0 is the first in module order) ``layer<i>_mean, layer<i>_std``: the layer's
        median leakage over its kernel slices, over seeds. Leakage is a fraction 0..1.
    """
    if leakage.empty:
        return pd.DataFrame(columns=[*MODEL_KEYS, "n_seeds", "leakage_mean", "leakage_std"])
    per_seed = leakage_per_seed(leakage)
    long = _with_differences(per_seed, "leakage", over_seeds(per_seed, MODEL_KEYS, ["leakage"]))
    # A difference of fractions, not of percentages: named apart so no view labels it "pp".
    long = long.rename(columns={"diff_mean": "leakage_diff_mean", "diff_std": "leakage_diff_std"})
    layers = leakage.pivot_table(index=SEED_KEYS, columns="layer_index", values="leakage_median", aggfunc="first")
    layers = layers.rename(columns=lambda i: f"layer{i}").reset_index()
    names = [c for c in layers.columns if c not in SEED_KEYS]
    per_layer = over_seeds(layers, MODEL_KEYS, names).drop(columns="n_seeds")
    long = long.merge(per_layer, how="left", on=MODEL_KEYS)
    return int_columns(sort_records(long, MODEL_KEYS), ["kernel_size", "n_seeds", *_COUNTS])


# --------------------------------------------------------------------------- shift consistency


def shift_per_seed(shift: pd.DataFrame, shift_accuracy: pd.DataFrame) -> pd.DataFrame:
    """Shift metrics of every trained model.

    Args:
        shift: Stored per-image records under two random shifts.
        shift_accuracy: Stored accuracy under each grid shift.

    Returns:
        Columns ``dataset, model, kernel_size, window, seed``, ``consistency`` (% of images
        predicted the same under both shifts), ``unshifted_acc`` (% correct at shift (0, 0)),
        ``mean_shift_acc`` and ``worst_shift_acc`` (mean and minimum of the accuracy, %, over
        every non-zero grid shift).
    """
    consistency = shift.groupby(SEED_KEYS, sort=False)["consistent"].mean().mul(100.0).rename("consistency")
    identity = (shift_accuracy["dx"] == 0) & (shift_accuracy["dy"] == 0)
    shifted = shift_accuracy[~identity].groupby(SEED_KEYS, sort=False)["accuracy"]
    unshifted = shift_accuracy[identity].set_index(SEED_KEYS)["accuracy"].rename("unshifted_acc")
    parts = [consistency, unshifted, shifted.mean().rename("mean_shift_acc"), shifted.min().rename("worst_shift_acc")]
    return pd.concat(parts, axis=1).reset_index()


SHIFT_METRICS = ["consistency", "unshifted_acc", "mean_shift_acc", "worst_shift_acc"]


def shift_table(shift: pd.DataFrame, shift_accuracy: pd.DataFrame) -> pd.DataFrame:
    """Shift consistency and accuracy under single shifts per configuration, over seeds.

    Returns:
        Columns ``dataset, model, kernel_size, window, n_seeds``, ``<metric>_mean`` and
        ``<metric>_std`` of each of :data:`SHIFT_METRICS` (:func:`shift_per_seed`, %), and the
        paired differences of the consistency in percentage points (``diff_*``, ``diff_k3_*``).
    """
    if shift.empty or shift_accuracy.empty:
        return pd.DataFrame(columns=[*MODEL_KEYS, "n_seeds"])
    per_seed = shift_per_seed(shift, shift_accuracy)
    long = _with_differences(per_seed, "consistency", over_seeds(per_seed, MODEL_KEYS, SHIFT_METRICS))
    return int_columns(sort_records(long, MODEL_KEYS), ["kernel_size", "n_seeds", *_COUNTS])
