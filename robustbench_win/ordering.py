"""Display order of windows and attacks in records, tables, figures and the summary.

Windows follow :data:`robustbench_win.models.windows.WINDOWS` (``none``, the baseline, first);
attacks follow their registration order (the built-ins as ``attacks/zoo.py`` registers them,
then plug-ins). Names neither knows follow, alphabetically. Nothing here lists a name itself,
so a new window or attack takes its place without an edit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from robustbench_win.models.windows import WINDOWS
from robustbench_win.registry import ATTACKS


def window_order() -> tuple[str, ...]:
    """Windows in display order."""
    return WINDOWS


def attack_order() -> tuple[str, ...]:
    """Registered attacks in display order."""
    return tuple(ATTACKS.in_registration_order())


def _rank(values: pd.Series, order: Sequence[str]) -> pd.Series:
    """Position of each value in ``order``; unknown values after it, alphabetically."""
    ranks = {name: i for i, name in enumerate(order)}
    extra = sorted({str(v) for v in values.dropna().unique()} - set(ranks))
    ranks.update({name: len(order) + i for i, name in enumerate(extra)})
    return values.map(lambda v: ranks.get(str(v), math.inf) if pd.notna(v) else math.inf)


def _sort_key(column: pd.Series) -> pd.Series:
    if column.name == "window":
        return _rank(column, window_order())
    if column.name == "attack":
        return _rank(column, attack_order())
    return column


def sort_records(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Sort rows deterministically: windows and attacks in display order, the rest natural.

    Args:
        df: Records to sort.
        by: Columns to sort by, most significant first.

    Returns:
        A sorted copy with a fresh 0..n-1 index.
    """
    return df.sort_values(list(by), key=_sort_key, kind="mergesort").reset_index(drop=True)


def ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    """Distinct ``values`` in display ``order`` (unknown names last, alphabetically)."""
    distinct = pd.Series(sorted({str(v) for v in values}), dtype=object)
    return list(distinct.iloc[np.argsort(_rank(distinct, order).to_numpy(), kind="stable")])
