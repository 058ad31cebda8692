"""Sanity-check outcomes applied to the report: which models were flagged or refused, and what follows.

The checks themselves run with the models (:mod:`robustbench_win.measure.checks`) and are stored
per model (:data:`~robustbench_win.store.records.CHECK_RECORDS`). Here they change the answer: a
flagged model's robustness numbers carry a marker in every table (:func:`mark_table`), and a
robustness claim that rests on a flagged model is refused (:func:`refusal`), so a broken or
masked model can never make windowing look robust.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from robustbench_win.measure.checks import FLAG, REFUSE
from robustbench_win.schema import MODEL_COLUMNS
from robustbench_win.store.records import CHECK_RECORDS
from robustbench_win.store.run_folder import Results

REFUSED = "refused"  # the verdict of a claim that rests on a flagged model
FLAG_COLUMN = "checks"  # the marker column of every robustness table


def flagged_models(results: Results) -> pd.DataFrame:
    """One row per failed check (``flag`` or ``refuse``) of any model: identity, check, status, message."""
    checks = results.records.get(CHECK_RECORDS.name, CHECK_RECORDS.schema.frame([]))
    return checks[checks["status"].isin([FLAG, REFUSE])].reset_index(drop=True)


def flag_text(flags: pd.DataFrame) -> str:
    """The marker of a table row: each failed check with the model it failed on, or ``""``."""
    return "; ".join(f"{'refused' if row.status == REFUSE else 'flagged'}: {row.check} on {row.model_id}"
                     for row in flags.itertuples())


def mark_table(table: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a :data:`FLAG_COLUMN` saying which of its rows rest on a flagged model.

    A row is matched on the model columns it has (``kernel_size``, ``window``, ``seed``...), so a
    row aggregated over seeds carries the flag of any of its seeds. A table without model
    columns, or a run without flags, gets an empty column.
    """
    if table.empty or FLAG_COLUMN in table.columns:
        return table
    keys = [k for k in MODEL_COLUMNS if k in table.columns]
    if flags.empty or not keys:
        return table.assign(**{FLAG_COLUMN: ""})
    marks = []
    for _, row in table.iterrows():
        match = pd.Series(True, index=flags.index)
        for key in keys:
            if pd.notna(row[key]):
                match &= flags[key].astype(str) == str(row[key])
        marks.append(flag_text(flags[match]))
    return table.assign(**{FLAG_COLUMN: marks})


def refusal(flags: pd.DataFrame, groups: Iterable[tuple[str, int]]) -> str | None:
    """Why a claim comparing the models of ``groups`` (window, kernel size) is refused, or ``None``.

    Returns:
        ``"<check> failed on <model_id>"`` for every failed check of those models, joined.
    """
    wanted = list(groups)
    if flags.empty:
        return None
    hit = flags[[any(w == row.window and int(k) == int(row.kernel_size) for w, k in wanted)
                 for row in flags.itertuples()]]
    if hit.empty:
        return None
    return "; ".join(f"{row.check} failed on {row.model_id}" for row in hit.itertuples())
