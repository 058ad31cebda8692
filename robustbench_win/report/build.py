"""Build a run folder's report from its stored results alone.

:func:`build_report` reads the run folder through :class:`robustbench_win.store.run_folder.RunFolder`
and writes, next to the stored results, the consolidated records (``clean.csv``,
``samples.csv.gz``, ...), then for every part of the report
(:data:`robustbench_win.report.summary.PARTS`) its table (``table_*.csv`` with every column,
``table_*.md``) and its figures (``figures/*.png``), and ``summary.md``. Every file is written
atomically; building the report again gives the same tables and summary.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robustbench_win.analysis import flags
from robustbench_win.atomic import write_atomic
from robustbench_win.report.markdown import to_markdown
from robustbench_win.report.summary import PARTS, Report, dataset_name, render_summary
from robustbench_win.store.run_folder import RunFolder


def build_tables(report: Report) -> dict[str, pd.DataFrame]:
    """Build every part's table into ``report.tables`` (by part name) and return them; rows resting on
    a model a sanity check flagged carry it in a ``checks`` column where the part says so
    (:func:`robustbench_win.analysis.flags.mark_table`)."""
    for part in PARTS:
        if part.build is not None:
            report.tables[part.name] = part.build(report)
    found = flags.flagged_models(report.results)
    if not found.empty:
        for part in PARTS:
            if part.flags:
                report.tables[part.name] = flags.mark_table(report.tables[part.name], found)
    return report.tables


def draw_figures(report: Report, dataset: str | None = None) -> dict[str, Path]:
    """Draw every part's figures that have something to show into ``report.out`` and return their
    files, by figure key (also kept in ``report.figures``).

    Args:
        report: The records and the built tables (:func:`build_tables`).
        dataset: The name in the figures' titles (default: the run's data set).
    """
    dataset = dataset or dataset_name(report.results)
    for part in PARTS:
        for figure in part.figures:
            data = figure.data(report, report.tables.get(part.name, pd.DataFrame()))
            if not data.empty:
                report.figures[figure.key] = figure.plot(data, report.out / figure.file, f"{dataset}: {figure.what}")
    return report.figures


def build_report(out_dir: Path | str) -> list[Path]:
    """Write the consolidated records, tables, figures and ``summary.md`` of a run folder.

    Args:
        out_dir: The folder passed as ``--out`` to ``robustbench-win run``.

    Returns:
        The files written, in writing order (``summary.md`` last).

    Raises:
        ResultsNotFoundError: The folder holds no stored results.
        ValueError: A stored per-sample file is malformed (the message names it).
    """
    out = Path(out_dir)
    folder = RunFolder(out)
    report = Report(folder.collect(), out)
    build_tables(report)
    written = folder.write_consolidated(report.results)
    for part in (p for p in PARTS if p.build is not None):
        table = report.tables[part.name]
        written.append(write_atomic(out / f"table_{part.name}.csv", table.to_csv(index=False, lineterminator="\n")))
        written.append(write_atomic(out / f"table_{part.name}.md", to_markdown(part.shown(table), part.columns) + "\n"))
    written += list(draw_figures(report).values())
    written.append(write_atomic(out / "summary.md", render_summary(report)))
    return written
