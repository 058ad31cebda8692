"""The report: markdown views, figures and summary.md, built from a run folder's records."""
