"""Markdown views of the comparison tables and of the summary's own small tables.

A table of :mod:`robustbench_win.analysis.tables` keeps every column numeric; here each
``<metric>_mean`` / ``<metric>_std`` pair becomes one "mean ± std" column with a readable
header, and missing values show as "–". :func:`to_markdown` renders every column (the
``table_*.md`` files); :func:`to_markdown_parts` splits a wide table into tables at most about
``max_width`` characters wide, each repeating the key columns (for ``summary.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from robustbench_win.analysis.tables import BASELINE_WINDOW, REFERENCE_KERNEL_SIZE, REFERENCE_TAG

SCREEN_WIDTH = 120  # characters: what a table in summary.md may take
_KEY_COLUMNS = ("dataset", "model", "model_id", "attack", "kernel_size", "window", "claim")  # repeated in every part
_MAX_CELL_CHARS = 300


@dataclass(frozen=True)
class Columns:
    """How the columns of one table read in markdown; a report part declares its own
    (:data:`robustbench_win.report.summary.PARTS`), over :data:`SHARED_COLUMNS`.

    Attributes:
        labels: Metric (a column's name after any ``group:`` prefix) -> header.
        decimals: Metric -> decimals of its values (default 3; ``robust_acc@0.5`` looks up
            ``robust_acc``, ``*_test`` and ``*_per_sample`` their stem).
        signed: Metrics shown with a sign (differences).
        text: Columns or metrics of text, aligned left.
        p_values: Metrics that are p-values (3 significant digits).
    """

    labels: Mapping[str, str] = field(default_factory=dict)
    decimals: Mapping[str, int] = field(default_factory=dict)
    signed: frozenset[str] = frozenset()
    text: frozenset[str] = frozenset()
    p_values: frozenset[str] = frozenset()

    def __or__(self, other: Columns) -> Columns:
        """These columns with ``other``'s declarations added (``other`` wins where both declare one)."""
        return Columns({**self.labels, **other.labels}, {**self.decimals, **other.decimals}, self.signed | other.signed,
                       self.text | other.text, self.p_values | other.p_values)


# Columns that many tables carry: the model keys, counts, and the differences to the baseline.
SHARED_COLUMNS = Columns(
    labels={
        "dataset": "data set",
        "model": "model",
        "model_id": "model",
        "attack": "attack",
        "kernel_size": "k",
        "window": "window",
        "seed": "seed",
        "n_seeds": "seeds",
        "n_paired": "paired seeds",
        f"n_paired_{REFERENCE_TAG}": f"paired seeds ({REFERENCE_TAG})",
        "n_evaluated": "evaluated",
        "n_attacked": "attacked",
        "n_success": "fooled",
        "n_fooled": "fooled",
        "diff": f"Δ vs {BASELINE_WINDOW} (pp)",
        f"diff_{REFERENCE_TAG}": f"Δ vs {BASELINE_WINDOW} k={REFERENCE_KERNEL_SIZE}",
        "success_rate": "success (%)",
        "robust_acc": "robust acc. (%)",
    },
    decimals={"diff": 2, f"diff_{REFERENCE_TAG}": 2, "success_rate": 1, "robust_acc": 1},
    signed=frozenset({"diff", f"diff_{REFERENCE_TAG}"}),
    text=frozenset({"dataset", "model", "model_id", "attack", "window"}),
)
_MISSING = "–"


def _label(metric: str, columns: Columns) -> str:
    if metric.startswith("robust_acc@"):
        return f"robust acc. ε={metric.split('@', 1)[1]} (%)"
    if metric.startswith("layer") and metric.endswith("_init"):  # a leakage table's untrained layer
        return f"{metric.removesuffix('_init')} untrained"
    return columns.labels.get(metric, metric)


def _decimals(metric: str, columns: Columns) -> int:
    return columns.decimals.get(metric.split("@", 1)[0].removesuffix("_test").removesuffix("_per_sample"), 3)


def _number(value: Any, metric: str, columns: Columns) -> str:
    """One cell: integers as integers, p-values with 3 significant digits, else fixed."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return _MISSING
    if isinstance(value, str):
        return value or ""
    if metric in columns.p_values:
        return f"{value:.3g}"
    if isinstance(value, float) and math.isinf(value):  # a failed attack's norm, or a median over failures
        return "∞" if value > 0 else "−∞"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    sign = "+" if metric in columns.signed else ""
    return f"{value:{sign}.{_decimals(metric, columns)}f}"


def _mean_std(mean: Any, std: Any, metric: str, columns: Columns) -> str:
    if pd.isna(mean):
        return _MISSING
    if pd.isna(std):  # a single seed: no spread to report
        return _number(float(mean), metric, columns)
    return f"{_number(float(mean), metric, columns)} ± {float(std):.{_decimals(metric, columns)}f}"


@dataclass(frozen=True)
class _ViewColumn:
    header: str
    cells: list[str]
    align: str  # "left" or "right"
    key: bool  # repeated in every part of a split table


def _view(df: pd.DataFrame, droppable: tuple[str, ...], columns: Columns) -> list[_ViewColumn]:
    """The columns to show: mean/std pairs merged, ``droppable`` columns left out where constant."""
    columns = SHARED_COLUMNS | columns
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
            cells = [_mean_std(m, s, base, columns) for m, s in zip(df[column], df[f"{prefix}{base}_std"])]
        else:
            base = metric
            cells = [_number(v, metric, columns) for v in df[column].astype(object)]
        header = f"{group} {_label(base, columns)}".strip()
        align = "left" if column in columns.text or metric in columns.text else "right"
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


def to_markdown(df: pd.DataFrame, columns: Columns = SHARED_COLUMNS, *, drop_constant_keys: bool = True) -> str:
    """Render a table of :mod:`robustbench_win.analysis.tables` as one markdown (pipe) table.

    Args:
        df: A table from :func:`~robustbench_win.analysis.tables.clean_accuracy_table`,
            :func:`~robustbench_win.analysis.tables.deepfool_table` or
            :func:`~robustbench_win.analysis.tables.spatial_table` (any DataFrame works).
        columns: How its columns read (its report part's declaration).
        drop_constant_keys: Leave out the ``dataset`` and ``model`` columns where they hold
            a single value (the report names them in its heading).

    Returns:
        The markdown text, without a trailing newline; "_No results._" for an empty table.
    """
    if df.empty:
        return "_No results._"
    return _render(_view(df, ("dataset", "model") if drop_constant_keys else (), columns))


def to_markdown_parts(df: pd.DataFrame, columns: Columns = SHARED_COLUMNS, *, max_width: int = SCREEN_WIDTH) -> list[str]:
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
    view = _view(df, ("dataset", "model", "attack"), columns)
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
