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

from robustbench_win.measure.leakage import LEAKAGE_INIT_MEASURE, LEAKAGE_MEASURE
from robustbench_win.measure.leakage import null_leakage
from robustbench_win.ordering import sort_records
from robustbench_win.schema import CONFIG_COLUMNS, CONFIG_SEED_COLUMNS
from robustbench_win.analysis.tables import (
    REFERENCE_KERNEL_SIZE, REFERENCE_TAG, int_columns, over_seeds, seed_differences,
)

_COUNTS = ["n_paired", f"n_paired_{REFERENCE_TAG}"]


def _with_differences(per_seed: pd.DataFrame, metric: str, long: pd.DataFrame) -> pd.DataFrame:
    """``long`` with the paired differences of ``metric`` to ``none`` at the same k and at k = 3."""
    for diffs in (seed_differences(per_seed, metric),
                  seed_differences(per_seed, metric, reference_kernel_size=REFERENCE_KERNEL_SIZE, tag=f"diff_{REFERENCE_TAG}")):
        long = long.merge(diffs, how="left", on=CONFIG_COLUMNS)
    return long


# --------------------------------------------------------------------------- leakage

LEAKAGE_LAYERS = ("blocks", "stem", "all")
LEAKAGE_MEASURES = ("trained", "init", "learned-change", "normalised")
STEM_LAYER_INDEX = 0  # the first measured conv layer: the stem of the paper CNN and of the ResNet
_LAYER_KEYS = [*CONFIG_SEED_COLUMNS, "layer_index"]
_MEASURE_COLUMNS = {"trained": "trained", "init": "init", "learned-change": "change", "normalised": "excess"}


def leakage_layers(leakage: pd.DataFrame) -> pd.DataFrame:
    """Each trained layer's median leakage next to the same layer of the untrained model of its seed.

    Args:
        leakage: Stored leakage records (:data:`~robustbench_win.store.records.LEAKAGE_RECORDS`):
            step :data:`~robustbench_win.measure.leakage.LEAKAGE_MEASURE` (trained) and, where
            measured, :data:`~robustbench_win.measure.leakage.LEAKAGE_INIT_MEASURE` (untrained).

    Returns:
        One row per trained model and conv layer: ``dataset, model, kernel_size, window, seed,
        layer_index, layer_kernel_size, layer_window``, ``stem`` (the first measured layer),
        ``trained`` and ``init`` (median leakage; ``init`` NaN where the untrained model was not
        measured), ``change`` (trained minus init: the learned change) and ``excess`` (trained
        minus :func:`~robustbench_win.measure.leakage.null_leakage` of the layer's k and window).
    """
    columns = [*_LAYER_KEYS, "layer_kernel_size", "layer_window", "stem", "trained", "init", "change", "excess"]
    by_measure = {m: leakage[leakage["measure"] == m] for m in (LEAKAGE_MEASURE, LEAKAGE_INIT_MEASURE)}
    trained = by_measure[LEAKAGE_MEASURE]
    if trained.empty:
        return pd.DataFrame(columns=columns)
    layers = trained[[*_LAYER_KEYS, "layer_kernel_size", "layer_window", "leakage_median", "n_fft"]].rename(
        columns={"leakage_median": "trained"})
    init = by_measure[LEAKAGE_INIT_MEASURE][[*_LAYER_KEYS, "leakage_median"]].rename(columns={"leakage_median": "init"})
    layers = layers.merge(init, how="left", on=_LAYER_KEYS)
    nulls = {key: null_leakage(int(key[0]), str(key[1]), n_fft=int(key[2]))
             for key in layers[["layer_kernel_size", "layer_window", "n_fft"]].drop_duplicates().itertuples(index=False)}
    null = [nulls[key] for key in layers[["layer_kernel_size", "layer_window", "n_fft"]].itertuples(index=False)]
    layers = layers.assign(stem=layers["layer_index"] == STEM_LAYER_INDEX, init=layers["init"].astype(float),
                           change=lambda f: f["trained"] - f["init"], excess=lambda f: f["trained"] - pd.Series(null, index=f.index))
    return layers[columns].reset_index(drop=True)


def leakage_per_seed(leakage: pd.DataFrame, *, layers: str, measure: str) -> pd.DataFrame:
    """One leakage value per trained model: the mean over the chosen layers of one per-layer measure.

    Cross-k comparisons should use ``"learned-change"`` or ``"normalised"``: the raw measure rises
    with k on unstructured kernels (:mod:`robustbench_win.measure.leakage`, "The null").

    Args:
        leakage: Stored leakage records (both steps; :func:`leakage_layers`).
        layers: ``"blocks"`` (every measured conv layer but the stem: the k x k layers of the paper
            CNN and the ResNet), ``"stem"`` (the first measured conv layer, whose kernel size and
            window do not follow k), or ``"all"``.
        measure: ``"trained"`` (median leakage of the trained layers), ``"init"`` (the same on the
            untrained model of the seed), ``"learned-change"`` (trained minus init, per layer) or
            ``"normalised"`` (trained minus the Gaussian-kernel null of the layer's k and window).

    Returns:
        Columns ``dataset, model, kernel_size, window, seed, leakage``, one row per (kernel size,
        window, seed) model that has the value (models without untrained records have no
        ``"init"`` or ``"learned-change"`` row).

    Raises:
        ValueError: ``layers`` or ``measure`` is not one of the names above.
    """
    if layers not in LEAKAGE_LAYERS:
        raise ValueError(f"layers must be one of {', '.join(LEAKAGE_LAYERS)}, got {layers!r}")
    if measure not in LEAKAGE_MEASURES:
        raise ValueError(f"measure must be one of {', '.join(LEAKAGE_MEASURES)}, got {measure!r}")
    per_layer = leakage_layers(leakage)
    if layers != "all":
        per_layer = per_layer[per_layer["stem"] == (layers == "stem")]
    values = per_layer.dropna(subset=[_MEASURE_COLUMNS[measure]])
    # A model counts only if every chosen layer has the value: a mean over some layers is another measure.
    wanted = per_layer.groupby(CONFIG_SEED_COLUMNS, sort=False).size()
    per_seed = values.groupby(CONFIG_SEED_COLUMNS, sort=False)[_MEASURE_COLUMNS[measure]].mean()
    per_seed = per_seed[values.groupby(CONFIG_SEED_COLUMNS, sort=False).size() == wanted.reindex(per_seed.index)]
    return per_seed.astype(float).rename("leakage").reset_index()


LEAKAGE_METRICS = ["leakage", "leakage_init", "leakage_change", "leakage_excess", "stem", "stem_init", "stem_change"]
_TABLE_VALUES = {  # column: (layers, measure) of leakage_per_seed
    "leakage": ("blocks", "trained"), "leakage_init": ("blocks", "init"),
    "leakage_change": ("blocks", "learned-change"), "leakage_excess": ("blocks", "normalised"),
    "stem": ("stem", "trained"), "stem_init": ("stem", "init"), "stem_change": ("stem", "learned-change"),
}


def leakage_table(leakage: pd.DataFrame) -> pd.DataFrame:
    """Spectral leakage per configuration, next to its null: mean and std over seeds.

    Args:
        leakage: Stored leakage records, one row per model, step and conv layer.

    Returns:
        Columns ``dataset, model, kernel_size, window, n_seeds``; ``<metric>_mean`` and
        ``<metric>_std`` of each of :data:`LEAKAGE_METRICS`: over the block layers (all but the
        stem) the trained leakage, the untrained model's (``_init``), the learned change
        (trained minus untrained) and the excess over the Gaussian-kernel null (``_excess``),
        and the same first three for the stem; ``leakage_null``, the null of the block layers
        (mean over them of :func:`~robustbench_win.measure.leakage.null_leakage`); the paired
        differences: ``leakage_diff_*`` (trained, to ``none`` at the same k, ``n_paired``),
        ``change_diff_k3_*`` and ``excess_diff_k3_*`` (learned change and excess, to ``none``
        at k = 3, ``n_paired_k3``; the raw leakage is not compared across k); then per conv
        layer ``i`` (0: the stem) ``layer<i>_*`` and ``layer<i>_init_*``. Untrained values are
        missing where the run did not measure them. Leakage is a fraction 0..1; negative
        differences: the model leaks less than the baseline.
    """
    if leakage.empty or not (leakage["measure"] == LEAKAGE_MEASURE).any():
        return pd.DataFrame(columns=[*CONFIG_COLUMNS, "n_seeds", "leakage_mean", "leakage_std"])
    per_seed = _table_per_seed(leakage)
    long = over_seeds(per_seed, CONFIG_COLUMNS, LEAKAGE_METRICS)
    per_layer = leakage_layers(leakage)
    null = per_layer[~per_layer["stem"]].assign(null=lambda f: f["trained"] - f["excess"])
    long = long.merge(null.groupby(CONFIG_COLUMNS, sort=False)["null"].mean().rename("leakage_null").reset_index(),
                      how="left", on=CONFIG_COLUMNS)
    for metric, reference, name in (("leakage", None, "leakage_diff"),
                                    ("leakage_excess", REFERENCE_KERNEL_SIZE, "excess_diff_k3"),
                                    ("leakage_change", REFERENCE_KERNEL_SIZE, "change_diff_k3")):
        tag = "diff" if reference is None else "diff_k3"
        diffs = seed_differences(per_seed.dropna(subset=[metric]), metric, reference_kernel_size=reference, tag=tag)
        diffs = diffs.rename(columns={f"{tag}_mean": f"{name}_mean", f"{tag}_std": f"{name}_std"})
        # One count per reference: the seeds paired on the always-measured values.
        long = long.merge(diffs.drop(columns=[c for c in _COUNTS if c in long.columns and c in diffs.columns]),
                          how="left", on=CONFIG_COLUMNS)
    long = long.merge(_layer_columns(per_layer), how="left", on=CONFIG_COLUMNS)
    return int_columns(sort_records(long, CONFIG_COLUMNS), ["kernel_size", "n_seeds", *_COUNTS])


def _table_per_seed(leakage: pd.DataFrame) -> pd.DataFrame:
    """:data:`LEAKAGE_METRICS` of every trained model (NaN where not measured)."""
    per_seed = leakage_per_seed(leakage, layers="all", measure="trained")[CONFIG_SEED_COLUMNS]
    for column, (layers, measure) in _TABLE_VALUES.items():
        values = leakage_per_seed(leakage, layers=layers, measure=measure).rename(columns={"leakage": column})
        per_seed = per_seed.merge(values, how="left", on=CONFIG_SEED_COLUMNS)
    return per_seed


def _layer_columns(per_layer: pd.DataFrame) -> pd.DataFrame:
    """``layer<i>_mean/_std`` (trained) and ``layer<i>_init_mean/_std`` per configuration."""
    wide = per_layer.pivot_table(index=CONFIG_SEED_COLUMNS, columns="layer_index", values=["trained", "init"],
                                 aggfunc="first", dropna=False)
    names = {("trained", i): f"layer{i}" for i in per_layer["layer_index"].unique()}
    names |= {("init", i): f"layer{i}_init" for i in per_layer["layer_index"].unique()}
    order = [key for i in sorted(per_layer["layer_index"].unique()) for key in (("trained", i), ("init", i))]
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(order))
    wide.columns = [names[key] for key in order]
    wide = wide.reset_index()
    return over_seeds(wide, CONFIG_COLUMNS, [names[key] for key in order]).drop(columns="n_seeds")


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
    consistency = shift.groupby(CONFIG_SEED_COLUMNS, sort=False)["consistent"].mean().mul(100.0).rename("consistency")
    identity = (shift_accuracy["dx"] == 0) & (shift_accuracy["dy"] == 0)
    shifted = shift_accuracy[~identity].groupby(CONFIG_SEED_COLUMNS, sort=False)["accuracy"]
    unshifted = shift_accuracy[identity].set_index(CONFIG_SEED_COLUMNS)["accuracy"].rename("unshifted_acc")
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
        return pd.DataFrame(columns=[*CONFIG_COLUMNS, "n_seeds"])
    per_seed = shift_per_seed(shift, shift_accuracy)
    long = _with_differences(per_seed, "consistency", over_seeds(per_seed, CONFIG_COLUMNS, SHIFT_METRICS))
    return int_columns(sort_records(long, CONFIG_COLUMNS), ["kernel_size", "n_seeds", *_COUNTS])
