"""Build a run folder's report from its stored results alone.

:func:`build_report` reads the run folder through :class:`robustbench_win.store.run_folder.RunFolder`
and writes, next to the stored results, the consolidated records (``clean.csv``,
``samples.csv.gz``, ...), the comparison tables (``table_*.csv`` with every column, ``table_*.md``),
the figures (``figures/*.png``) and ``summary.md``. Every file is written atomically; building
the report again gives the same tables and summary.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robustbench_win.analysis import claims
from robustbench_win.analysis import diagnostic_tables
from robustbench_win.analysis import flags
from robustbench_win.report import figures
from robustbench_win.analysis import tables
from robustbench_win.analysis import norms
from robustbench_win.atomic import write_atomic
from robustbench_win.report.markdown import to_markdown
from robustbench_win.store.records import KERNEL_RECORDS, LEAKAGE_RECORDS, SHIFT_ACCURACY_RECORDS, SHIFT_RECORDS
from robustbench_win.store.run_folder import Results, RunFolder
from robustbench_win.report.summary import dataset_name, render_summary

TABLE_NAMES = ("verdict", "verdict_per_k", "clean_accuracy", "deepfool", "minimal_norm", "attack_quality", "spatial", "leakage", "shift")
VERDICT_TABLES = ("verdict", "verdict_per_k")
MARKED_TABLES = ("clean_accuracy", "deepfool", "minimal_norm", "attack_quality", "spatial")  # carry the checks' flags
SECURITY_FIGURE = "figures/security_curves.png"  # robust accuracy vs L2 from the best-known norms
# Table name -> (figure file, drawing function, what it shows).
FIGURES = {
    "clean_accuracy": ("figures/clean_accuracy.png", figures.plot_clean_accuracy, "clean accuracy vs kernel size"),
    "deepfool": ("figures/deepfool_rho.png", figures.plot_deepfool_rho, "DeepFool ρ_adv vs kernel size"),
    "spatial": ("figures/spatial_robust_accuracy.png", figures.plot_spatial_robust_accuracy,
                "spatial robust accuracy vs kernel size"),
    "leakage": ("figures/leakage.png", figures.plot_leakage, "spectral leakage of the learned kernels vs kernel size"),
    "shift": ("figures/shift_consistency.png", figures.plot_shift, "shift consistency vs kernel size"),
}
KERNEL_FIGURE = "figures/kernel_examples.png"


def build_tables(results: Results) -> dict[str, pd.DataFrame]:
    """The comparison tables, keyed by :data:`TABLE_NAMES`; rows resting on a model a sanity check flagged
    carry it in a ``checks`` column (:func:`robustbench_win.analysis.flags.mark_table`)."""
    built = {
        "clean_accuracy": tables.clean_accuracy_table(results.clean),
        "deepfool": tables.deepfool_table(results.samples, results.radii),
        "spatial": tables.spatial_table(results.samples),
        "leakage": diagnostic_tables.leakage_table(results.records[LEAKAGE_RECORDS.name]),
        "shift": diagnostic_tables.shift_table(results.records[SHIFT_RECORDS.name],
                                               results.records[SHIFT_ACCURACY_RECORDS.name]),
        **_verdicts(results),
        "minimal_norm": norms.comparison_table(results.samples, radii=results.radii, clean=results.clean),
        "attack_quality": norms.attack_quality_table(results.samples, costs=results.costs),
    }
    found = flags.flagged_models(results)
    if not found.empty:
        for name in MARKED_TABLES:
            built[name] = flags.mark_table(built[name], found)
    return built


def _verdicts(results: Results) -> dict[str, pd.DataFrame]:
    """The headline verdict table and the per-k one, from one set of per-model values."""
    inputs = claims.Inputs(results)
    return {"verdict": claims.claim_table(claims.claim_results(results, inputs)),
            "verdict_per_k": claims.claim_table(claims.per_k_results(results, inputs))}


def _draw_security_curves(out: Path, results: Results, dataset: str) -> dict[str, Path]:
    """The security-evaluation figure, when the records hold a minimal-norm attack."""
    if not norms.minimal_norm_attacks(results.samples):
        return {}
    curves = norms.security_curves(results.samples)
    return {"security_curves": figures.plot_security_curves(curves, out / SECURITY_FIGURE, title=(
        f"{dataset}: robust accuracy vs L2 radius (best-known norms; band: min-max over seeds)"))}


def _draw_figures(out: Path, built: dict[str, pd.DataFrame], dataset: str, results: Results) -> dict[str, Path]:
    drawn = {}
    kernels = results.records[KERNEL_RECORDS.name]
    if not kernels.empty:
        drawn["kernels"] = figures.plot_kernel_examples(
            kernels, out / KERNEL_FIGURE, f"{dataset}: example kernels and spectra at the largest kernel size")
    for name, (file, plot, what) in FIGURES.items():
        table = built[name]
        if name == "spatial" and not tables.spatial_attacks(table):
            continue
        if not table.empty:
            drawn[name] = plot(table, out / file, f"{dataset}: {what}")
    return drawn


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
    results = folder.collect()
    built = build_tables(results)
    written = folder.write_consolidated(results)
    for name in TABLE_NAMES:
        written.append(write_atomic(out / f"table_{name}.csv", built[name].to_csv(index=False, lineterminator="\n")))
        shown = claims.display_table(built[name]) if name in VERDICT_TABLES else built[name]
        written.append(write_atomic(out / f"table_{name}.md", to_markdown(shown) + "\n"))
    drawn = _draw_figures(out, built, dataset_name(results), results) | _draw_security_curves(out, results, dataset_name(results))
    written += list(drawn.values())
    written.append(write_atomic(out / "summary.md", render_summary(results, built, drawn, out)))
    return written
