"""The comparison page across runs: ``compare.md``, its CSV tables and a forest plot.

:func:`write_comparison` takes run folders (or committed reports), recomputes each one's verdict
from its stored records, and writes into ``out``:

- ``compare_runs.csv``: one row per (run, claim): relative effect, 95% interval, standard
  error, seeds, the run's verdict;
- ``compare_pooled.csv``: one row per claim: the random-effects estimate across runs with its
  interval, p-value and heterogeneity (tau^2, I^2, Q);
- ``figures/forest.png``: a panel per claim, a line per run and a diamond for the pooled estimate;
- ``compare.md``: the method, the pooled table, and each run's rows.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from robustbench_win.analysis import compare, pooling
from robustbench_win.atomic import write_atomic
from robustbench_win.report.figures import save_png
from robustbench_win.report.markdown import pipe_table
from robustbench_win.report.summary import dataset_name
from robustbench_win.store.run_folder import RunFolder

FOREST_FIGURE = "figures/forest.png"
_PANEL_SIZE = (4.6, 0.42)  # inches: width of the plot area, height per row (runs + pooled)
_LABEL_CHARS = 32  # run labels wrap at this many characters
_INCHES_PER_CHAR = 0.075  # room for one character of a run label at the small font


def run_label(folder: Path, dataset: str) -> str:
    """``<data set> (<folder name>)``: what the page calls a run."""
    return f"{dataset} ({folder.name})"


def load_runs(folders: list[Path]) -> list[compare.Run]:
    """Each folder's verdict, recomputed from its stored records."""
    by_label = {}
    for folder in folders:
        results = RunFolder(folder).collect()
        by_label[run_label(folder, dataset_name(results))] = results
    if len(by_label) < len(folders):
        raise compare.CompareError("two folders have the same name and data set: give them distinct folder names")
    return compare.runs_from_results(by_label)


def forest_figure(per_run: pd.DataFrame, pooled: pd.DataFrame) -> Figure:
    """A panel per claim: each run's relative effect with its 95% interval, and the pooled diamond."""
    claims = list(pooled[compare.KEY])
    runs = list(dict.fromkeys(per_run["run"]))
    rows = len(runs) + 1
    labels = [textwrap.fill(run, _LABEL_CHARS) for run in runs]
    lines = sum(label.count("\n") + 1 for label in labels) + 1
    fig = Figure(figsize=(_PANEL_SIZE[0] + _INCHES_PER_CHAR * _LABEL_CHARS,
                          (_PANEL_SIZE[1] * max(rows, lines) + 1.0) * len(claims)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(claims), 1, squeeze=False)[:, 0]
    for ax, claim in zip(axes, claims):
        part = per_run[per_run[compare.KEY] == claim].set_index("run").reindex(runs)
        y = np.arange(rows)[::-1]  # runs top to bottom, pooled last
        for yi, run in zip(y[:-1], runs):
            effect, low, high = part.loc[run, ["effect", "ci_low", "ci_high"]]
            if np.isfinite([effect, low, high]).all():
                ax.plot([low, high], [yi, yi], color="0.3", linewidth=1)
                ax.plot([effect], [yi], "s", color="C0", markersize=4)
        summary = pooled[pooled[compare.KEY] == claim].iloc[0]
        if "estimate" in summary and np.isfinite(summary.get("estimate", np.nan)):
            e, lo, hi = summary["estimate"], summary["ci_low"], summary["ci_high"]
            ax.fill([lo, e, hi, e], [y[-1], y[-1] + 0.3, y[-1], y[-1] - 0.3], color="C3")
        ax.axvline(0.0, color="0.5", linewidth=0.8, linestyle="--")
        ax.set_yticks(y, [*labels, "pooled (random effects)"], fontsize="small")
        ax.set_ylim(-0.7, rows - 0.3)
        ax.set_title(textwrap.fill(claim, 70), fontsize="small")
        ax.set_xlabel(f"effect of the window ({compare.UNIT} of the baseline)", fontsize="small")
        ax.grid(True, axis="x", alpha=0.3)
    return fig


def _number(value: object, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):  # type: ignore[arg-type]
        return "–"
    return f"{float(value):+.{digits}f}" if digits else f"{float(value):.0f}"


def _p(value: object) -> str:
    return "–" if pd.isna(value) else f"{float(value):.3g}"  # type: ignore[arg-type]


def render_page(per_run: pd.DataFrame, pooled: pd.DataFrame, folders: list[Path]) -> str:
    """The markdown of ``compare.md``."""
    lines = ["# Does windowing help? One answer across runs", "",
             f"Runs compared: {len(folders)} (" + ", ".join(f"`{f}`" for f in folders) + "). "
             "Each run's effects are recomputed from its stored records (no attack is run again).", "",
             f"Effects are relative to the baseline ({compare.UNIT}), each run's 95% interval over its seeds. "
             f"Pooled: {pooling.METHOD}; tau² is the variance between runs, I² the share of the spread that "
             "is heterogeneity rather than seed noise, Q Cochran's statistic with its p-value.", "",
             f"![forest plot]({FOREST_FIGURE})", "", "## Pooled across runs", ""]
    header = ["claim", "pooled effect [95% CI]", "p (unadjusted)", "tau²", "I²", "Q (p)", "runs pooled", "left out"]
    rows = []
    for _, r in pooled.iterrows():
        has = "estimate" in r and pd.notna(r.get("estimate"))
        effect = f"{_number(r['estimate'])} [{_number(r['ci_low'])}, {_number(r['ci_high'])}] %" if has else "–"
        rows.append([r[compare.KEY], effect, _p(r.get("p_value")) if has else "–",
                     f"{r['tau2']:.3g}" if has else "–", f"{100 * r['i2']:.0f} %" if has and pd.notna(r["i2"]) else "–",
                     f"{r['q']:.2f} ({_p(r['q_p_value'])})" if has else "–", str(r["runs_pooled"]),
                     r["runs_left_out"] or "–"])
    lines += [pipe_table(header, rows), "", "## Each run", ""]
    header = ["claim", "run", "effect [95% CI]", "seeds", "verdict"]
    rows = [[r[compare.KEY], r["run"],
             f"{_number(r['effect'])} [{_number(r['ci_low'])}, {_number(r['ci_high'])}] %", str(r[compare.N_SEEDS]), r["verdict"]]
            for _, r in per_run.sort_values([compare.KEY, "run"], kind="stable").iterrows()]
    lines += [pipe_table(header, rows), ""]
    return "\n".join(lines)


def write_comparison(folders: list[Path], out: Path) -> list[Path]:
    """Compare the runs in ``folders``; write the page, its tables and the forest plot into ``out``.

    Raises:
        CompareError: The runs cannot be compared (the message says why).
        ResultsNotFoundError: A folder holds no stored results.
    """
    per_run, pooled = compare.compare_runs(load_runs(folders))
    out.mkdir(parents=True, exist_ok=True)
    return [
        write_atomic(out / "compare_runs.csv", per_run.to_csv(index=False)),
        write_atomic(out / "compare_pooled.csv", pooled.to_csv(index=False)),
        save_png(forest_figure(per_run, pooled), out / FOREST_FIGURE),
        write_atomic(out / "compare.md", render_page(per_run, pooled, folders)),
    ]
