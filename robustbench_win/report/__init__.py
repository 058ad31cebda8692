"""The report: markdown views, figures and summary.md, built from a run folder's records.

:func:`build_report` writes a run folder's report; :func:`write_comparison` the page that
compares several runs.
"""

from robustbench_win.report.build import build_report
from robustbench_win.report.compare import write_comparison

__all__ = ["build_report", "write_comparison"]
