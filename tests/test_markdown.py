"""Markdown views of the tables: readable cells, GitHub-valid pipes, and summary tables that fit a screen."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from robustbench_win.analysis import tables
from robustbench_win.report.markdown import SCREEN_WIDTH, to_markdown, to_markdown_parts
from robustbench_win.report.summary import CLEAN_COLUMNS, DEEPFOOL_COLUMNS, SPATIAL_COLUMNS
from test_tables import RADII, clean_record, random_deepfool, sample

UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


@pytest.fixture
def deepfool_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    records = [r for k in (3, 5) for w in ("none", "hamming") for s in (0, 1, 2) for r in random_deepfool(rng, k, w, s)]
    return tables.deepfool_table(pd.DataFrame(records), RADII)


@pytest.fixture
def spatial_table() -> pd.DataFrame:
    rows = [sample(attack=a, k=k, window=w, index=i, success=i % 2 == 0, angle=10.0 * i, dx=1.0, dy=-2.0)
            for a in ("spatial-grid", "spatial-random") for k in (3, 5) for w in ("none", "hamming") for i in range(6)]
    return tables.spatial_table(pd.DataFrame(rows))


def headers(markdown: str) -> list[str]:
    return [h.strip() for h in UNESCAPED_PIPE.split(markdown.splitlines()[0])[1:-1]]


def test_markdown_shows_mean_pm_std_and_tables_stay_numeric(deepfool_table: pd.DataFrame) -> None:
    assert deepfool_table["success_rate_mean"].dtype == float and deepfool_table["n_attacked"].dtype == "Int64"
    text = to_markdown(deepfool_table, DEEPFOOL_COLUMNS)
    first = deepfool_table.iloc[0]
    assert f"{first['success_rate_mean']:.1f} ± {first['success_rate_std']:.1f}" in text
    assert "robust acc. ε=0.25 (%)" in text and "Wilcoxon p" in text
    assert "| dataset" not in text and "toy" not in text  # constant key columns left out
    assert len(text.splitlines()) == 2 + len(deepfool_table)


def test_markdown_of_clean_table_signs_differences() -> None:
    records = [clean_record(3, "none", 0, 0.9), clean_record(3, "hamming", 0, 0.85)]
    text = to_markdown(tables.clean_accuracy_table(pd.DataFrame(records)), CLEAN_COLUMNS)
    assert "-5.00" in text and "hamming Δ vs none (pp)" in text and "90.00" in text
    assert to_markdown(pd.DataFrame()) == "_No results._"


def test_every_row_has_as_many_cells_as_the_header(spatial_table: pd.DataFrame) -> None:
    # GitHub drops a table whose rows and header differ in cell count: "|angle|" must be escaped.
    text = to_markdown(spatial_table, SPATIAL_COLUMNS)
    assert "median \\|angle\\| (°)" in text
    counts = {len(UNESCAPED_PIPE.findall(line)) for line in text.splitlines()}
    assert counts == {2 + len(headers(text)) - 1}


@pytest.mark.parametrize("name", ["deepfool", "spatial"])
def test_parts_fit_the_screen_and_together_hold_every_column(name: str, deepfool_table: pd.DataFrame,
                                                             spatial_table: pd.DataFrame) -> None:
    table = {"deepfool": deepfool_table, "spatial": spatial_table}[name]
    columns = {"deepfool": DEEPFOOL_COLUMNS, "spatial": SPATIAL_COLUMNS}[name]
    whole = to_markdown(table, columns)
    assert max(len(line) for line in whole.splitlines()) > SCREEN_WIDTH  # the case that needs splitting
    parts = to_markdown_parts(table, columns)
    assert len(parts) > 1
    keys = {"attack", "k", "window"}
    for part in parts:
        assert max(len(line) for line in part.splitlines()) <= SCREEN_WIDTH
        assert len(part.splitlines()) == 2 + len(table)
        assert {"k", "window"} <= set(headers(part))
    shown = [h for part in parts for h in headers(part) if h not in keys]
    expected = [h for h in headers(whole) if h not in keys]
    assert shown == expected  # each column once, in order
    # A row of a part is the same row of the whole table: k and window line up.
    first_rows = [UNESCAPED_PIPE.split(part.splitlines()[2]) for part in parts]
    assert len({tuple(cell.strip() for cell in row[1:3]) for row in first_rows}) == 1


def test_a_narrow_table_stays_in_one_part() -> None:
    records = [clean_record(3, "none", 0, 0.9), clean_record(5, "none", 0, 0.85)]
    table = tables.clean_accuracy_table(pd.DataFrame(records))
    assert max(len(line) for line in to_markdown(table).splitlines()) <= SCREEN_WIDTH
    assert to_markdown_parts(table) == [to_markdown(table)]
