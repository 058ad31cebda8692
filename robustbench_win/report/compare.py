"""The comparison page across runs: ``compare.md``, its CSV tables and a forest plot.

:func:`write_comparison` takes run folders (or committed reports), recomputes each one's verdict
from its stored records, and writes into ``out``:

- ``compare_runs.csv``: one row per (run, claim): relative effect, 95% interval, standard
  error, seeds, the run's verdict;
- ``compare_pooled.csv``: one row per claim: the random-effects estimate across runs with its
  interval, p-value and heterogeneity (tau^2, I^2, Q);
- ``figures/forest.png`` (and ``.svg``): one shared axis, a group of rows per claim: each run's effect
  with its interval, seeds and verdict, and the pooled diamond;
- ``compare.md``: the method, the pooled table, and each run's rows.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from robustbench_win.analysis import claims, compare, pooling
from robustbench_win.atomic import write_atomic
from robustbench_win.report.figures import save_png
from robustbench_win.report.markdown import pipe_table
from robustbench_win.report.summary import dataset_name
from robustbench_win.store.run_folder import RunFolder

FOREST_FIGURE = "figures/forest.png"
_FOREST_WIDTH = 12.0  # inches: claim labels, the shared axis and the numbers beside it
_ROW_HEIGHT = 0.14  # inches per row (a claim's pooled row or a run)
_FOREST_MARGIN = 1.3  # inches: title, favours labels, x axis
_FONT = 7.0
_LINEAR_WITHIN = 10.0  # % of the baseline: the symmetric-log axis is linear inside ±this
_VERDICT_COLOURS = {"supported": "C2", "contradicted": "C3", "inconclusive": "0.35"}
_POOLED_COLOUR = "C0"


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


def claim_sign(key: str) -> float:
    """+1 where the claim (the part of ``key`` before ':') is an increase, -1 where it is a decrease
    (:data:`robustbench_win.analysis.claims.CLAIMS`); a claim not found there is read as an increase."""
    what = key.split(":", 1)[0]
    return next((-1.0 if c.direction == "decrease" else 1.0 for c in claims.CLAIMS if c.what == what), 1.0)


def _interval_text(effect: float, low: float, high: float) -> str:
    return f"{_number(effect, 3, significant=True)} [{_number(low, 3, significant=True)}, " \
           f"{_number(high, 3, significant=True)}] {compare.UNIT}"


def forest_figure(per_run: pd.DataFrame, pooled: pd.DataFrame, names: dict[str, str] | None = None) -> Figure:
    """One axis for every claim: a group of rows per claim (its pooled diamond on the claim's row,
    then each run's effect with its 95% interval), the effect, interval, seeds and verdict written
    beside each point.

    Effects are drawn in the claim's direction (:func:`claim_sign`, a decrease claimed: sign
    flipped), so right of 0 always favours the window; the shared axis is symmetric-log (linear
    within ±:data:`_LINEAR_WITHIN` %) so effects from a few % to thousands of % read on one scale.

    Args:
        per_run: :func:`robustbench_win.analysis.compare.compare_runs`' per-run rows.
        pooled: Its pooled rows.
        names: A short name per run label on the rows (default: the label).
    """
    names = names or {}
    keys = list(pooled[compare.KEY])
    runs = list(dict.fromkeys(per_run["run"]))
    n_rows = len(keys) * (len(runs) + 1)
    fig = Figure(figsize=(_FOREST_WIDTH, _ROW_HEIGHT * n_rows + _FOREST_MARGIN), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    beside = ax.get_yaxis_transform()  # x in axes fraction, y in data
    ticks, labels, y = [], [], n_rows
    for key in keys:
        sign = claim_sign(key)
        y -= 1
        summary = pooled[pooled[compare.KEY] == key].iloc[0]
        flipped = " (decrease claimed: sign flipped)" if sign < 0 else ""
        ticks.append(y)
        labels.append(f"{key}{flipped}")
        if "estimate" in summary and np.isfinite(summary.get("estimate", np.nan)):
            e, lo, hi = (sign * float(summary[c]) for c in ("estimate", "ci_low", "ci_high"))
            ax.fill([lo, e, hi, e], [y, y + 0.35, y, y - 0.35], color=_POOLED_COLOUR)
            ax.text(1.01, y, f"pooled {_interval_text(summary['estimate'], summary['ci_low'], summary['ci_high'])}, "
                    f"{summary['runs_pooled']} runs", transform=beside, va="center", fontsize=_FONT, color=_POOLED_COLOUR)
        for run in runs:
            y -= 1
            row = per_run[(per_run[compare.KEY] == key) & (per_run["run"] == run)]
            ticks.append(y)
            labels.append(names.get(run, run))
            if row.empty:
                continue
            r = row.iloc[0]
            effect, low, high = (sign * float(r[c]) for c in ("effect", "ci_low", "ci_high"))
            colour = _VERDICT_COLOURS.get(str(r[compare.VERDICT]), "0.3")
            if np.isfinite([low, high]).all():
                ax.plot([low, high], [y, y], color=colour, linewidth=1.2)
            if np.isfinite(effect):
                ax.plot([effect], [y], "s", color=colour, markersize=3.5)
            ax.text(1.01, y, f"{_interval_text(r['effect'], r['ci_low'], r['ci_high'])}, {r[compare.N_SEEDS]} seeds, "
                    f"{r[compare.VERDICT]}", transform=beside, va="center", fontsize=_FONT)
    for boundary in range(len(runs) + 1, n_rows, len(runs) + 1):
        ax.axhline(n_rows - boundary - 0.5, color="0.8", linewidth=0.6)
    ax.set_xscale("symlog", linthresh=_LINEAR_WITHIN)
    ax.axvline(0.0, color="0.4", linewidth=0.8, linestyle="--")
    ax.set_yticks(ticks, labels, fontsize=_FONT)
    for label in ax.get_yticklabels()[::len(runs) + 1]:
        label.set_fontweight("bold")
    ax.set_ylim(-0.6, n_rows - 0.4)
    ax.tick_params(axis="x", labelsize=_FONT)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_xlabel(f"effect of the window in the claim's direction ({compare.UNIT} of the baseline, symmetric log "
                  f"scale); square: a run, 95% interval over its seeds; diamond: pooled (random effects)",
                  fontsize=_FONT)
    ax.text(0.0, 1.005, "← favours the baseline", transform=ax.transAxes, ha="left", va="bottom", fontsize=_FONT)
    ax.text(1.0, 1.005, "favours the window →", transform=ax.transAxes, ha="right", va="bottom", fontsize=_FONT)
    fig.suptitle("Effect of windowing per claim and run", fontsize="medium")
    return fig


def _number(value: object, digits: int = 2, *, significant: bool = False) -> str:
    """Signed with ``digits`` decimals; ``significant``: about ``digits`` significant digits, never an exponent."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or pd.isna(value):  # type: ignore[arg-type]
        return "–"
    if significant:
        magnitude = math.floor(math.log10(abs(float(value)))) + 1 if float(value) else 1
        return f"{float(value):+.{max(digits - magnitude, 0)}f}"
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
    runs = load_runs(folders)
    per_run, pooled = compare.compare_runs(runs)
    names = {run.label: folder.name for run, folder in zip(runs, folders)}
    out.mkdir(parents=True, exist_ok=True)
    return [
        write_atomic(out / "compare_runs.csv", per_run.to_csv(index=False)),
        write_atomic(out / "compare_pooled.csv", pooled.to_csv(index=False)),
        save_png(forest_figure(per_run, pooled, names), out / FOREST_FIGURE),
        write_atomic(out / "compare.md", render_page(per_run, pooled, folders)),
    ]
