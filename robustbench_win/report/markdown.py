"""Markdown views of the comparison tables and of the summary's own small tables.

A table of :mod:`robustbench_win.analysis.tables` keeps every column numeric; here each
``<metric>_mean`` / ``<metric>_std`` pair becomes one "mean ± std" column with a readable
header, and missing values show as "–". :func:`to_markdown` renders every column (the
``table_*.md`` files); :func:`to_markdown_parts` splits a wide table into tables at most about
``max_width`` characters wide, each repeating the key columns (for ``summary.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from robustbench_win.analysis.tables import BASELINE_WINDOW, REFERENCE_KERNEL_SIZE, REFERENCE_TAG

SCREEN_WIDTH = 120  # characters: what a table in summary.md may take
_KEY_COLUMNS = ("dataset", "model", "model_id", "attack", "kernel_size", "window", "claim")  # repeated in every part
_MAX_CELL_CHARS = 300

_LABELS = {
    "dataset": "data set",
    "model": "model",
    "model_id": "model",
    "attack": "attack",
    "kernel_size": "k",
    "window": "window",
    "n_seeds": "seeds",
    "n_paired": "paired seeds",
    "n_evaluated": "evaluated",
    "n_attacked": "attacked",
    "n_success": "fooled",
    "n_fooled": "fooled",
    "acc": "acc. (%)",
    "diff": f"Δ vs {BASELINE_WINDOW} (pp)",
    "success_rate": "success (%)",
    "median_l2": "median ‖r‖₂",
    "mean_l2": "mean ‖r‖₂",
    "mean_rho": "mean ρ_adv",
    "robust_acc": "robust acc. (%)",
    "median_abs_angle": "median |angle| (°)",
    "median_shift": "median shift (px)",
    "wilcoxon_n_pairs": "pairs",
    "wilcoxon_median_diff": f"median Δ‖r‖₂ (win − {BASELINE_WINDOW})",
    "wilcoxon_p": "Wilcoxon p (unadjusted, descriptive)",
    "wilcoxon_note": "note",
    # minimal-norm tables (robustbench_win.analysis.norms): failures count as an infinite norm
    "norms_from": "norms from",
    "robust_auc_upper": "AUC range",
    "median_norm": "median ‖r‖₂ (fail = ∞)",
    "mean_l2_successes": "mean ‖r‖₂ (successes only)",
    "robust_auc": "AUC",
    "clean_acc_test": "clean acc. (%)",
    "n_pairs": "pairs",
    "n_both_failed": "both failed",
    "median_diff": "median Δ‖r‖₂",
    "p": "Wilcoxon p (unadjusted, descriptive)",
    "test": "test",
    "note": "note",
    "seed": "seed",
    "optimality": "optimality",
    "d_max": "d_max",
    "optimality_note": "note",
    "forward_passes_per_sample": "fwd passes / sample",
    "backward_passes_per_sample": "bwd passes / sample",
    "seconds": "seconds",
    "n_params": "params",
    f"n_paired_{REFERENCE_TAG}": f"paired seeds ({REFERENCE_TAG})",
    f"diff_{REFERENCE_TAG}": f"Δ vs {BASELINE_WINDOW} k={REFERENCE_KERNEL_SIZE}",
    "leakage_diff": f"Δ vs {BASELINE_WINDOW}",
    "leakage": "leakage (blocks)",
    "leakage_init": "untrained",
    "leakage_change": "learned change",
    "leakage_null": "Gaussian null",
    "leakage_excess": "excess over null",
    "stem": "stem",
    "stem_init": "stem untrained",
    "stem_change": "stem change",
    "change_diff_k3": f"Δ change vs {BASELINE_WINDOW} k=3",
    "excess_diff_k3": f"Δ excess vs {BASELINE_WINDOW} k=3",
    "consistency": "consistency (%)",
    "unshifted_acc": "unshifted acc. (%)",
    "mean_shift_acc": "mean shift acc. (%)",
    "worst_shift_acc": "worst shift acc. (%)",
}
_DECIMALS = {
    "acc": 2,
    "diff": 2,
    "success_rate": 1,
    "median_l2": 3,
    "mean_l2": 3,
    "mean_rho": 4,
    "robust_acc": 1,
    "median_abs_angle": 1,
    "median_shift": 2,
    "wilcoxon_median_diff": 3,
    "clean_acc": 2,
    "forward_passes": 1,
    "backward_passes": 1,
    "seconds": 2,
    f"diff_{REFERENCE_TAG}": 2,
    "leakage_diff": 3,
    "consistency": 1,
    "unshifted_acc": 1,
    "mean_shift_acc": 1,
    "worst_shift_acc": 1,
}
_SIGNED = {"diff", "wilcoxon_median_diff", "median_diff", f"diff_{REFERENCE_TAG}", "leakage_diff", "leakage_change",
           "leakage_excess", "stem_change", "change_diff_k3", "excess_diff_k3"}
_P_VALUES = {"wilcoxon_p", "p", "p-value", "p (raw)", "p (Holm)"}
_TEXT_COLUMNS = {"dataset", "model", "model_id", "attack", "window", "wilcoxon_note", "norms_from", "test", "note",
                 "optimality_note", "claim", "effect [95% CI]", "n", "verdict"}
_MISSING = "–"


def _label(metric: str) -> str:
    if metric.startswith("robust_acc@"):
        return f"robust acc. ε={metric.split('@', 1)[1]} (%)"
    if metric.startswith("layer") and metric.endswith("_init"):  # a leakage table's untrained layer
        return f"{metric.removesuffix('_init')} untrained"
    return _LABELS.get(metric, metric)


def _decimals(metric: str) -> int:
    return _DECIMALS.get(metric.split("@", 1)[0].removesuffix("_test").removesuffix("_per_sample"), 3)


def _number(value: Any, metric: str) -> str:
    """One cell: integers as integers, p-values with 3 significant digits, else fixed."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return _MISSING
    if isinstance(value, str):
        return value or ""
    if metric in _P_VALUES:
        return f"{value:.3g}"
    if isinstance(value, float) and math.isinf(value):  # a failed attack's norm, or a median over failures
        return "∞" if value > 0 else "−∞"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    sign = "+" if metric in _SIGNED else ""
    return f"{value:{sign}.{_decimals(metric)}f}"


def _mean_std(mean: Any, std: Any, metric: str) -> str:
    if pd.isna(mean):
        return _MISSING
    if pd.isna(std):  # a single seed: no spread to report
        return _number(float(mean), metric)
    return f"{_number(float(mean), metric)} ± {float(std):.{_decimals(metric)}f}"


@dataclass(frozen=True)
class _ViewColumn:
    header: str
    cells: list[str]
    align: str  # "left" or "right"
    key: bool  # repeated in every part of a split table


def _view(df: pd.DataFrame, droppable: tuple[str, ...]) -> list[_ViewColumn]:
    """The columns to show: mean/std pairs merged, ``droppable`` columns left out where constant."""
    names = set(df.columns)
    view = []
    for column in df.columns:
        group, _, metric = column.rpartition(":")
        prefix = f"{group}:" if group else ""
        if column in droppable and df[column].nunique(dropna=False) <= 1:
            continue
        if metric.endswith("_std") and f"{prefix}{metric[:-4]}_mean" in names:
            continue
        if metric.endswith("_mean") and f"{prefix}{metric[:-5]}_std" in names:
            base = metric[:-5]
            cells = [_mean_std(m, s, base) for m, s in zip(df[column], df[f"{prefix}{base}_std"])]
        else:
            base = metric
            cells = [_number(v, metric) for v in df[column].astype(object)]
        header = f"{group} {_label(base)}".strip()
        align = "left" if column in _TEXT_COLUMNS or metric in _TEXT_COLUMNS else "right"
        view.append(_ViewColumn(header, cells, align, column in _KEY_COLUMNS))
    return view


def _render(columns: list[_ViewColumn]) -> str:
    frame = pd.DataFrame({_escape(c.header): c.cells for c in columns})
    return frame.to_markdown(index=False, disable_numparse=True, colalign=[c.align for c in columns])


def _escape(text: str) -> str:
    """A pipe inside a cell would end it: escape it, as GitHub-flavoured markdown asks."""
    return text.replace("|", "\\|")


def _width(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def to_markdown(df: pd.DataFrame, *, drop_constant_keys: bool = True) -> str:
    """Render a table of :mod:`robustbench_win.analysis.tables` as one markdown (pipe) table.

    Args:
        df: A table from :func:`~robustbench_win.analysis.tables.clean_accuracy_table`,
            :func:`~robustbench_win.analysis.tables.deepfool_table` or
            :func:`~robustbench_win.analysis.tables.spatial_table` (any DataFrame works).
        drop_constant_keys: Leave out the ``dataset`` and ``model`` columns where they hold
            a single value (the report names them in its heading).

    Returns:
        The markdown text, without a trailing newline; "_No results._" for an empty table.
    """
    if df.empty:
        return "_No results._"
    return _render(_view(df, ("dataset", "model") if drop_constant_keys else ()))


def to_markdown_parts(df: pd.DataFrame, *, max_width: int = SCREEN_WIDTH) -> list[str]:
    """Render a table as markdown tables at most about ``max_width`` characters wide.

    The key columns (data set, model, model id, attack, k, window) lead every part; the other
    columns follow in their order, as many per part as fit. The parts together show every
    column of :func:`to_markdown`, except an attack column holding a single attack (the
    summary names it above the table).

    Returns:
        One markdown table per part (one part when the whole table fits).
    """
    if df.empty:
        return ["_No results._"]
    view = _view(df, ("dataset", "model", "attack"))
    keys = [c for c in view if c.key]
    parts: list[list[_ViewColumn]] = []
    for column in (c for c in view if not c.key):
        if parts and _width(_render(keys + parts[-1] + [column])) <= max_width:
            parts[-1].append(column)
        else:
            parts.append([column])
    return [_render(keys + part) for part in parts] or [_render(keys)]


def pipe_table(header: list[str], rows: list[list[Any]], numeric: int = 0, max_cell: int = _MAX_CELL_CHARS) -> str:
    """A pipe table of text cells, each on one line and at most ``max_cell`` characters.

    Args:
        header: Column names.
        rows: Cell values (turned into text).
        numeric: The last ``numeric`` columns are right-aligned.
        max_cell: Longer cells are cut, ending in "…".
    """
    def cell(value: Any) -> str:
        text = _escape(" ".join(str(value).split()))
        return text if len(text) <= max_cell else text[: max_cell - 1] + "…"

    frame = pd.DataFrame([[cell(v) for v in row] for row in rows], columns=[_escape(h) for h in header])
    align = ["left"] * (len(header) - numeric) + ["right"] * numeric
    return frame.to_markdown(index=False, disable_numparse=True, colalign=align)
