"""The parts of the report, each declared once (:data:`PARTS`), and the prose of ``summary.md``.

A :class:`Part` is one table (``table_<name>.csv`` and ``.md``) with its builder, its figures,
its section of ``summary.md``, whether its rows carry the sanity checks' flags and how its
columns read in markdown; a section without a table is a part too. The order of :data:`PARTS`
is the order of ``summary.md``; :mod:`robustbench_win.report.build` builds, writes and draws
every part, and :func:`render_summary` puts the sections together. A new table or figure is one
more entry here (and its builder or drawing function).

Every sentence about an attack or a data set comes from the object itself (the descriptions
the run stored in ``meta.json``); every number comes from the tables built from the stored
records. Tables wider than :data:`robustbench_win.report.markdown.SCREEN_WIDTH` characters are split
into narrower ones here; the ``table_*.csv`` files keep every column.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_win.analysis import claims
from robustbench_win.analysis import diagnostic_tables
from robustbench_win.analysis import tables
from robustbench_win.analysis import norms
from robustbench_win.attacks.families import DEEPFOOL, SPATIAL, minimal_norm_families
from robustbench_win.report import figures
from robustbench_win.report.markdown import SCREEN_WIDTH, Columns, pipe_table, to_markdown_parts
from robustbench_win.ordering import attack_order, ordered, window_order
from robustbench_win.registry import ATTACKS
from robustbench_win.measure.leakage import N_FFT, NULL_SEED, NULL_SLICES
from robustbench_win.measure.shift_consistency import MAX_SHIFT, grid_shifts
from robustbench_win.store.records import (
    ATTACK_RECORDS, KERNEL_RECORDS, LEAKAGE_RECORDS, SHIFT_ACCURACY_RECORDS, SHIFT_RECORDS,
)
from robustbench_win.store.run_folder import CLEAN_TABLE, Results
from robustbench_win.analysis.inference import MIN_PAIRS, SIGNED_RANK_TEST
from robustbench_win.analysis.verdict import VERDICT_RULE
from robustbench_win.analysis.flags import REFUSED
from robustbench_win.measure.checks import CHECK_NAMES, FLAG, REFUSE, describe_checks
from robustbench_win.store.records import CHECK_RECORDS

_MIN_ERROR_CHARS = 40  # an error cell is cut to fit the screen, never below this


@dataclass
class Report:
    """What the report's parts are built from and rendered with.

    Attributes:
        results: One run folder's records.
        out: The run folder; figures are linked relative to it.
        tables: Each part's table, by part name, as built (:mod:`robustbench_win.report.build`).
        figures: Each drawn figure's file, by :attr:`PartFigure.key`.
    """

    results: Results
    out: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)

    @cached_property
    def claim_inputs(self) -> claims.Inputs:
        """The per-model values both verdict tables share, computed once."""
        return claims.Inputs(self.results)


def dataset_name(results: Results) -> str:
    """The data set's own name as the run recorded it, else the registry names in the records."""
    if results.meta.get("dataset_name"):
        return str(results.meta["dataset_name"])
    names = sorted({str(d) for d in results.clean["dataset"].dropna()})
    return ", ".join(names) or "unknown data set"


def attack_descriptions(results: Results) -> dict[str, str]:
    """Each attack's description, by name, as the attack object gave it.

    A run stores them in ``meta.json``; for a folder written before that, the attacks its
    ``suite.toml`` names are created again and asked (those not registered are left out).
    """
    stored = results.meta.get("attacks")
    if stored:
        return {name: str(info.get("description", "")) for name, info in stored.items()}
    try:
        entries = tomllib.loads(results.suite_text).get("attacks", [])
    except tomllib.TOMLDecodeError:
        return {}
    descriptions = {}
    for entry in entries:
        params = {k: v for k, v in entry.items() if k != "name"}
        try:
            descriptions[entry["name"]] = ATTACKS.create(entry["name"], **params).describe()
        except (KeyError, ValueError, TypeError):  # not registered here, or parameters of another version
            continue
    return descriptions


def _markdown_tables(table: pd.DataFrame, columns: Columns = Columns()) -> list[str]:
    """A table as one or more markdown tables that fit the screen, separated by blank lines."""
    lines: list[str] = []
    for part in to_markdown_parts(table, columns):
        lines += ([""] if lines else []) + [part]
    return lines


def _seconds(value: Any) -> str:
    try:
        return f"{float(value):.1f}"
    except (TypeError, ValueError):
        return "–"


def _overview_section(report: Report) -> list[str]:
    return ["## Overview", "", *_overview(report.results)]


def _overview(results: Results) -> list[str]:
    clean = results.clean

    def listing(column: str, order: tuple[str, ...] = ()) -> str:
        values = [str(v) for v in clean[column].dropna().unique()]
        return ", ".join(ordered(values, order) if order else sorted(values, key=lambda v: (len(v), v)))

    attacks = ordered(results.samples["attack"].unique(), attack_order())
    return [
        f"- Models: {listing('model')}; kernel sizes {listing('kernel_size')}; windows "
        f"{listing('window', window_order())}; seeds {listing('seed')}.",
        f"- Attacks: {', '.join(attacks) if attacks else 'none recorded'}.",
        "- Every number below is computed from the stored per-model and per-sample records "
        f"(`{CLEAN_TABLE}`, `{ATTACK_RECORDS.consolidated_name}`); the tables are also stored as CSV next to this file, with "
        "every column (wide tables are split here to fit the page).",
        "- Figures: one line per window; error bars are ± 1 std over seeds.",
    ]


def _notes(report: Report) -> list[str]:
    notes = [str(n) for n in report.results.meta.get("notes", [])]
    return ["## Notes", ""] + ([f"- {n}" for n in notes] or ["- No reductions from the paper's setup were recorded."])


def _figure_links(report: Report, part: Part) -> list[str]:
    """A link to each of the part's figures that was drawn."""
    return [line for figure in part.figures if figure.key in report.figures
            for line in ("", f"![{figure.alt}]({report.figures[figure.key].relative_to(report.out).as_posix()})")]


def _attack_notes(results: Results, family: str | tuple[str, ...]) -> list[str]:
    """One bullet per attack of ``family`` (or of any of several) in the records, with its own description."""
    families = (family,) if isinstance(family, str) else family
    descriptions = attack_descriptions(results)
    names = ordered(results.samples.loc[results.samples["family"].isin(families), "attack"].unique(), attack_order())
    notes = [f"- `{name}`: {descriptions[name]}" for name in names if descriptions.get(name)]
    return [""] + notes if notes else []


def _clean_section(report: Report) -> list[str]:
    return [
        "## Clean accuracy", "",
        "Test accuracy of each trained model in %, mean ± std over seeds (sample std, n − 1; a "
        "single seed shows no ±). \"Δ vs none\" is the mean ± std over seeds of the per-seed "
        "difference to the unwindowed model with the same kernel size and seed, in percentage "
        f"points; \"Δ vs none k={tables.REFERENCE_KERNEL_SIZE}\" the same against the unwindowed k = "
        f"{tables.REFERENCE_KERNEL_SIZE} model (the paper's standard "
        "network). \"params\": trainable parameters of the model. Failed models are left out of the "
        "numbers and listed under Failures.", "",
        *_markdown_tables(report.tables["clean_accuracy"], CLEAN_COLUMNS),
    ]


def _deepfool_section(report: Report) -> list[str]:
    results = report.results
    radii = ", ".join(f"{r:g}" for r in results.radii)
    return [
        "## DeepFool (the paper's metric: DeepFool alone)", "",
        "These numbers come from DeepFool alone, the metric the suite started from; the minimal-norm "
        "section below uses the smallest norm any minimal-norm attack found instead. "
        "Only samples the model classifies correctly are attacked. Success rate: % of attacked "
        "samples whose adversarial example was verified (misclassified, inside [0, 1]). Median "
        "and mean ‖r‖₂ and mean ρ_adv = ‖r‖₂ / ‖x‖₂ are over successful samples only; failed "
        "attacks count in the success rate but never in the norms. Robust accuracy at ε "
        f"(ε ∈ {{{radii}}}, L2 in [0, 1] pixel space) is the % of all "
        "evaluated test samples that are classified correctly and not fooled within ε "
        "(misclassified samples count as not robust). Each metric is computed per seed, then "
        "mean ± std over seeds; counts are totals over seeds.", "",
        f"Wilcoxon: {SIGNED_RANK_TEST}, of ‖r‖₂ of the windowed model "
        "against the unwindowed one at the same k, paired by (seed, test index) over samples "
        "that both models classify correctly and both attacks fooled; \"median Δ‖r‖₂\" is the "
        "median of windowed − none (positive: the windowed model needs larger perturbations). "
        f"No p-value below {MIN_PAIRS} pairs. These p-values pool (seed, image) pairs and are unadjusted and "
        "descriptive; the verdict above tests over seeds.",
        *_attack_notes(results, DEEPFOOL.name), "",
        *_markdown_tables(report.tables["deepfool"], DEEPFOOL_COLUMNS),
    ]


def _spatial_section(report: Report) -> list[str]:
    results = report.results
    return [
        "## Spatial transformations", "",
        "Robust accuracy: % of all evaluated test samples classified correctly and not fooled by "
        "any transform tried (misclassified samples count as not robust). Over fooled samples with "
        "a recorded transform: median |angle| of the fooling rotation (degrees) and median shift "
        "= max(|dx|, |dy|) of the fooling translation (pixels). Per seed, then mean ± std over seeds.",
        *_attack_notes(results, SPATIAL.name), "",
        *_markdown_tables(report.tables["spatial"], SPATIAL_COLUMNS),
    ]


def _minimal_norm_section(report: Report) -> list[str]:
    """Best-known norms compared across configurations (the security-evaluation figure follows)."""
    results = report.results
    attacks = norms.minimal_norm_attacks(results.samples)
    if not attacks:
        return []
    table = report.tables["minimal_norm"]
    radii = ", ".join(f"{r:g}" for r in results.radii)
    ranges = ", ".join(f"{u:.3g}" for u in table["robust_auc_upper"].dropna().unique())
    area = (f"AUC is the exact area under that curve on [0, {ranges}] (the largest finite best-known norm)" if ranges
            else "AUC, the area under that curve up to the largest finite best-known norm, is not defined here: no "
                 "attack fooled any correctly classified image, so there is no finite norm to end the curve at")
    groups = [norms.baseline_group(w, k) for w, k in norms.DEFAULT_BASELINES]
    shown = table.drop(columns=["norms_from", "robust_auc_upper", *(f"{g}:test" for g in groups)], errors="ignore")
    return [
        "## Minimal-norm robustness (best-known norms)", "",
        f"Best-known norm of a test image: the smallest verified ‖r‖₂ that any of {', '.join(f'`{a}`' for a in attacks)} "
        "found for it on that model. An attacked image that no attack fooled counts as ∞ (never dropped), an image "
        "the model misclassifies as 0. Median ‖r‖₂ is over the attacked images, failures included (∞ when half or "
        "more failed); \"mean ‖r‖₂ (successes only)\" is the mean over fooled images only. Robust accuracy at ε "
        f"(ε ∈ {{{radii}}}) is the % of all evaluated images whose best-known norm exceeds ε; {area}. Per seed, "
        "then mean ± std over seeds.", "",
        f"Paired comparison ({', '.join(groups)}): {norms.PAIRED_TEST}, on the images both models attack, paired by "
        "(seed, test index), so both sides use the same samples; \"median Δ‖r‖₂\" is the median of this model − "
        f"the baseline (positive: this model needs larger perturbations). No p-value below "
        f"{MIN_PAIRS} pairs. These p-values pool (seed, image) pairs and are unadjusted and descriptive; the "
        "verdict above tests over seeds.",
        *_attack_notes(results, minimal_norm_families()), "",
        *_markdown_tables(shown, MINIMAL_NORM_COLUMNS),
    ]


def _attack_quality_section(report: Report) -> list[str]:
    """Each minimal-norm attack per model against the best-known norms."""
    table = report.tables["attack_quality"]
    if table.empty:
        return []
    shown = table.drop(columns=["dataset", "model", "kernel_size", "window", "seed", "n_evaluated", "d_max"],
                       errors="ignore")
    return [
        "## Attack quality", "",
        "Per model and minimal-norm attack: success (% of attacked images), median ‖r‖₂ with failures as ∞, "
        "and optimality against the best-known norms (AttackBench: 1 − (A − A*) / (clean_acc · d_max − A*), "
        "A the area under the attack's robust-accuracy curve and A* that of the best-known norms on [0, d_max], "
        f"d_max the largest finite best-known norm; `{norms.BEST_KNOWN}` scores 1, an attack that never succeeds 0). "
        "Passes count the images put through the model (forward) and input gradients (backward) by the "
        "algorithm per attacked image; seconds are the attack's wall time on that model. – : not recorded.", "",
        *_markdown_tables(shown, ATTACK_QUALITY_COLUMNS),
    ]


def has_verdict(built: dict[str, pd.DataFrame]) -> bool:
    """Whether the run compares anything: some verdict row has paired values, or was refused."""
    table = built["verdict"]
    return not table.empty and bool(((table["n"] > 0) | (table["verdict"] == REFUSED)).any())


def _no_baseline_section(results: Results) -> list[str]:
    """What a run without a comparison opens with instead of a verdict table of empty rows."""
    models = ", ".join(results.clean["model_id"].astype(str)) or "no model"
    return ["## No baseline for a verdict", "",
            f"This run has no baseline for a verdict: it holds {models}, and a claim compares a windowed model at "
            f"the largest kernel size with the unwindowed (window = {tables.BASELINE_WINDOW}) model at that size and "
            f"at k = {tables.REFERENCE_KERNEL_SIZE} on the same seeds. Run a suite with both windows to get one. The "
            f"model's own results follow."]


def _verdict_section(report: Report) -> list[str]:
    results, built = report.results, report.tables
    if not has_verdict(built):
        return []
    lines = [
        "## Verdict", "", claims.design_text(results), "", "Claims (rows):", "", *claims.claim_legend(), "",
        f"Rule: {VERDICT_RULE}", "",
        *_markdown_tables(claims.display_table(built["verdict"]), VERDICT_COLUMNS), "",
        "Details (seeds, per-seed effects, exclusions, power) by row:", "",
        *claims.detail_lines(built["verdict"]),
    ]
    per_k = built.get("verdict_per_k")
    if per_k is not None and not per_k.empty:
        lines += [
            "", "### Verdict at every kernel size", "",
            "The primary claims at every kernel size of the window, against the unwindowed model at the same k and "
            f"at k = {tables.REFERENCE_KERNEL_SIZE}, by the same rule; Holm across the rows of this table (a family "
            "of its own, after the headline).", "",
            *_markdown_tables(claims.display_table(per_k), VERDICT_COLUMNS), "",
            *claims.detail_lines(per_k),
        ]
    return lines


_DIFFERENCES = ("\"diff\" is the mean ± std over seeds of the per-seed difference to the unwindowed model "
                f"with the same seed at the same k, \"diff_{tables.REFERENCE_TAG}\" the same against the unwindowed "
                f"k = {tables.REFERENCE_KERNEL_SIZE} model.")


def _leakage_section(report: Report) -> list[str]:
    table = report.tables["leakage"]
    if table.empty:
        return []
    measured = "leakage_init_mean" in table and table["leakage_init_mean"].notna().any()
    untrained = ("" if measured else "Not measured in this run: the untrained models' leakage (running the suite "
                 "again on its run folder adds it without retraining), so \"untrained\" and \"learned change\" "
                 "are empty. ")
    return [
        "## Spectral leakage of the learned kernels", "",
        f"Leakage of one k × k slice of an effective kernel (raw weight × window): the share of its "
        f"power spectrum, zero-padded to {N_FFT} × {N_FFT}, outside the main lobe (the basins of the "
        "spectral peak and its mirror, bounded by the spectrum's minima; see the README). Per layer: the "
        "median over its slices (layer0 is the first conv in module order, the stem, whose kernel size and "
        "window do not follow k: it has its own columns); per model: the mean over the block layers. The "
        "measure rises with k on kernels without structure, so each value stands next to its null: "
        "\"untrained\" is the same layers of the model of the same seed before training (windowed alike), "
        "\"learned change\" the trained minus the untrained value, \"Gaussian null\" the median leakage of "
        f"Gaussian random kernels of the layer's k and window ({NULL_SLICES} kernels, seed {NULL_SEED}), and "
        "\"excess over null\" the trained value minus it. Compare across k only the learned change or the "
        "excess (Δ … vs none k=3). Fractions 0..1, mean ± std over seeds. " + untrained + _DIFFERENCES, "",
        *_markdown_tables(table, LEAKAGE_COLUMNS),
    ]


def _shift_section(report: Report) -> list[str]:
    if report.tables["shift"].empty:
        return []
    n_shifted = len([s for s in grid_shifts(MAX_SHIFT) if s != (0, 0)])
    return [
        "## Shift consistency", "",
        "On the attacked test images (the same for every model): consistency is the % of images whose "
        f"predicted class is the same under two different random integer shifts of 1-{MAX_SHIFT} pixels (seeded per "
        "image, so every model sees the same shifts; Zhang, ICML 2019), right or wrong. Accuracy (%) under "
        f"each single shift of the grid -{MAX_SHIFT}..{MAX_SHIFT} × -{MAX_SHIFT}..{MAX_SHIFT} px, summarised as the "
        f"unshifted accuracy and the mean and the minimum over the {n_shifted} non-zero shifts. Mean ± std over seeds. " + _DIFFERENCES, "",
        *_markdown_tables(report.tables["shift"], SHIFT_COLUMNS),
    ]


def _checks_section(report: Report) -> list[str]:
    """Each model's sanity checks (one column per check), what failed and why, and what was switched off."""
    results = report.results
    checks = results.records.get(CHECK_RECORDS.name, CHECK_RECORDS.schema.frame([]))
    off = [str(name) for name in results.meta.get("checks_off") or []]
    if checks.empty and not off:
        return []
    lines = ["## Sanity checks", "",
             "Run on every model before its robustness numbers count (flag: its numbers carry the flag in every "
             "table and no robustness claim may rest on them; refuse: it was not attacked):", "",
             *[f"- `{name}`: {text}" for name, text in describe_checks().items() if name not in off]]
    if off:
        lines += ["", f"Switched off by the suite's [checks]: {', '.join(f'`{n}`' for n in off)}; the robustness "
                      f"numbers of this run were not checked for {'it' if len(off) == 1 else 'them'}."]
    if checks.empty:
        return lines
    names = [c for c in CHECK_NAMES if c in set(checks["check"])]
    status = checks.pivot_table(index="model_id", columns="check", values="status", aggfunc="first")
    seconds = checks.groupby("model_id")["seconds"].sum()
    rows = [[m, *[_status(status.loc[m].get(c)) for c in names], f"{seconds[m]:.2f}"] for m in status.index]
    lines += ["", pipe_table(["model", *names, "seconds"], rows)]
    failed = checks[checks["status"].isin([FLAG, REFUSE])]
    lines += [""] + [f"- {row.model_id}, `{row.check}`: {row.message}." for row in failed.itertuples()] if len(failed) else []
    return lines


def _status(value: Any) -> str:
    return "–" if not isinstance(value, str) else (value.upper() if value in (FLAG, REFUSE) else value)


def _failures_section(report: Report) -> list[str]:
    results = report.results
    if results.failures.empty:
        return []
    header = ["model", "stage", "step", "error"]
    rows = [["" if pd.isna(v) else v for v in row]
            for row in results.failures[["model_id", "stage", "step", "error"]].astype(object).itertuples(index=False)]
    others = pipe_table(header[:-1], [row[:-1] for row in rows])
    room = max(_MIN_ERROR_CHARS, SCREEN_WIDTH - max(len(line) for line in others.splitlines()) - 3)
    return [
        "## Failures", "",
        "Models that did not train or evaluate, and attacks that crashed; their results are "
        "missing from the tables above. Full messages are in `runs/<model_id>/`.", "",
        pipe_table(header, rows, max_cell=room),
    ]


def _environment_section(report: Report) -> list[str]:
    results = report.results
    meta = results.meta
    suite = results.suite_text.rstrip("\n") or "# suite.toml was not found in the run folder"
    versions = meta.get("versions") or {}
    lines = ["## Suite configuration", "", "```toml", suite, "```", "", "## Software and device", ""]
    lines += [pipe_table(["package", "version"], [[k, v] for k, v in versions.items()])] if versions else [
        "Versions were not recorded."]
    threads = meta.get("threads")
    used = f"this run used {threads} torch thread{'s' if threads != 1 else ''}" if threads is not None else "this run did not record its thread count"
    lines += ["", f"Device: {meta.get('device') or 'not recorded'}.", "",
              f"On a CPU the numbers repeat exactly for the same suite, seeds, torch version and thread count "
              f"({used}; `--threads N` sets it). Another thread count adds numbers in another order and trains "
              f"slightly different models; on a GPU results repeat up to such rounding."]
    return lines


def _timings_section(report: Report) -> list[str]:
    results = report.results
    total = results.total_seconds
    lines = ["## Timings", "", f"Total: {_seconds(total)} s." if total is not None else "Total: not recorded."]
    models = {m: t for m, t in results.timings.items() if t}
    if not models:
        return lines
    known = [m for m in results.clean["model_id"] if m in models]
    order = known + sorted(set(models) - set(known))
    attacks = ordered({a for m in models.values() for a in (m.get("attack_seconds") or {})}, attack_order())
    frame = pd.DataFrame({"model_id": order,
                          "train (s)": [_seconds(models[m].get("train_seconds")) for m in order],
                          "clean eval (s)": [_seconds(models[m].get("clean_seconds")) for m in order]})
    for attack in attacks:
        frame[f"{attack} (s)"] = [_seconds((models[m].get("attack_seconds") or {}).get(attack)) for m in order]
    if any(models[m].get("check_seconds") for m in order):
        frame["checks (s)"] = [_seconds(sum((models[m].get("check_seconds") or {}).values()) if models[m].get(
            "check_seconds") else None) for m in order]
    return lines + [""] + _markdown_tables(frame)


# --------------------------------------------------------------------------- the parts


@dataclass(frozen=True)
class PartFigure:
    """A figure of a report part, linked at the end of the part's section when it was drawn.

    Attributes:
        key: Its name in :attr:`Report.figures`.
        file: Its path in the run folder.
        what: Its title, after the data set's name.
        alt: The text of its link in ``summary.md``.
        plot: Draws ``(data, path, title)`` into ``path`` and returns it (a ``plot_*`` function of
            :mod:`robustbench_win.report.figures`).
        data: What it draws, from the report and the part's table (default: the table); nothing
            is drawn for an empty frame.
    """

    key: str
    file: str
    what: str
    alt: str
    plot: Callable[[pd.DataFrame, Path, str], Path]
    data: Callable[[Report, pd.DataFrame], pd.DataFrame] = lambda report, table: table


@dataclass(frozen=True)
class Part:
    """One part of the report, declared once.

    Attributes:
        name: Its table's name: ``table_<name>.csv`` (every column) and ``table_<name>.md``; its
            key in :attr:`Report.tables`.
        build: Builds its table from the report's records; ``None``: a section without a table.
        section: Its section of ``summary.md`` (no lines: left out); ``None``: none of its own.
        figures: Its figures, linked at the end of its section.
        flags: Whether rows resting on a model a sanity check flagged carry the flag (a ``checks``
            column, :func:`robustbench_win.analysis.flags.mark_table`).
        headline: Whether a run without a verdict opens with it.
        columns: How its table's columns read in markdown.
        shown: The view of its table that ``table_<name>.md`` shows (default: the table).
    """

    name: str
    build: Callable[[Report], pd.DataFrame] | None = None
    section: Callable[[Report], list[str]] | None = None
    figures: tuple[PartFigure, ...] = ()
    flags: bool = False
    headline: bool = False
    columns: Columns = Columns()
    shown: Callable[[pd.DataFrame], pd.DataFrame] = lambda table: table


VERDICT_COLUMNS = Columns(text=frozenset({"claim", "effect [95% CI]", "n", "verdict"}),
                          p_values=frozenset({"p-value", "p (raw)", "p (Holm)"}))
CLEAN_COLUMNS = Columns(labels={"acc": "acc. (%)", "n_params": "params"}, decimals={"acc": 2})
DEEPFOOL_COLUMNS = Columns(
    labels={"median_l2": "median ‖r‖₂", "mean_l2": "mean ‖r‖₂", "mean_rho": "mean ρ_adv", "wilcoxon_n_pairs": "pairs",
            "wilcoxon_median_diff": f"median Δ‖r‖₂ (win − {tables.BASELINE_WINDOW})",
            "wilcoxon_p": "Wilcoxon p (unadjusted, descriptive)", "wilcoxon_note": "note"},
    decimals={"median_l2": 3, "mean_l2": 3, "mean_rho": 4, "wilcoxon_median_diff": 3},
    signed=frozenset({"wilcoxon_median_diff"}), text=frozenset({"wilcoxon_note"}), p_values=frozenset({"wilcoxon_p"}))
SPATIAL_COLUMNS = Columns(labels={"median_abs_angle": "median |angle| (°)", "median_shift": "median shift (px)"},
                          decimals={"median_abs_angle": 1, "median_shift": 2})
# Minimal-norm columns (robustbench_win.analysis.norms): failures count as an infinite norm.
_NORM_COLUMNS = Columns(labels={"median_norm": "median ‖r‖₂ (fail = ∞)", "mean_l2_successes": "mean ‖r‖₂ (successes only)"})
MINIMAL_NORM_COLUMNS = _NORM_COLUMNS | Columns(
    labels={"norms_from": "norms from", "robust_auc_upper": "AUC range", "robust_auc": "AUC",
            "clean_acc_test": "clean acc. (%)", "n_pairs": "pairs", "n_both_failed": "both failed",
            "median_diff": "median Δ‖r‖₂", "p": "Wilcoxon p (unadjusted, descriptive)", "test": "test", "note": "note"},
    decimals={"clean_acc": 2}, signed=frozenset({"median_diff"}), text=frozenset({"norms_from", "test", "note"}),
    p_values=frozenset({"p"}))
ATTACK_QUALITY_COLUMNS = _NORM_COLUMNS | Columns(
    labels={"optimality": "optimality", "d_max": "d_max", "optimality_note": "note",
            "forward_passes_per_sample": "fwd passes / sample", "backward_passes_per_sample": "bwd passes / sample",
            "seconds": "seconds"},
    decimals={"forward_passes": 1, "backward_passes": 1, "seconds": 2}, text=frozenset({"optimality_note"}))
LEAKAGE_COLUMNS = Columns(
    labels={"leakage_diff": f"Δ vs {tables.BASELINE_WINDOW}", "leakage": "leakage (blocks)", "leakage_init": "untrained",
            "leakage_change": "learned change", "leakage_null": "Gaussian null", "leakage_excess": "excess over null",
            "stem": "stem", "stem_init": "stem untrained", "stem_change": "stem change",
            "change_diff_k3": f"Δ change vs {tables.BASELINE_WINDOW} k=3",
            "excess_diff_k3": f"Δ excess vs {tables.BASELINE_WINDOW} k=3"},
    decimals={"leakage_diff": 3},
    signed=frozenset({"leakage_diff", "leakage_change", "leakage_excess", "stem_change", "change_diff_k3",
                      "excess_diff_k3"}))
SHIFT_COLUMNS = Columns(
    labels={"consistency": "consistency (%)", "unshifted_acc": "unshifted acc. (%)",
            "mean_shift_acc": "mean shift acc. (%)", "worst_shift_acc": "worst shift acc. (%)"},
    decimals={"consistency": 1, "unshifted_acc": 1, "mean_shift_acc": 1, "worst_shift_acc": 1})


def _spatial_only(report: Report, table: pd.DataFrame) -> pd.DataFrame:
    """The spatial table where it holds a spatial attack (else empty: no figure)."""
    return table if tables.spatial_attacks(table) else table.iloc[0:0]


def _security_curves(report: Report, table: pd.DataFrame) -> pd.DataFrame:
    """Robust accuracy against the L2 radius from the best-known norms, when a minimal-norm attack ran,
    with the radius the verdict's AUC is taken to (:func:`claims.fixed_radius`)."""
    samples = report.results.samples
    if not norms.minimal_norm_attacks(samples):
        return pd.DataFrame()
    return norms.security_curves(samples).assign(**{figures.RADIUS_COLUMN: claims.fixed_radius(report.results)})


def _plot_security_curves(curves: pd.DataFrame, path: Path, title: str) -> Path:
    return figures.plot_security_curves(curves, path, title=title)


PARTS: tuple[Part, ...] = (
    Part("verdict", lambda report: claims.claim_table(claims.claim_results(report.results, report.claim_inputs)),
         _verdict_section, columns=VERDICT_COLUMNS, shown=claims.display_table),
    # Rendered inside the verdict's section.
    Part("verdict_per_k", lambda report: claims.claim_table(claims.per_k_results(report.results, report.claim_inputs)),
         columns=VERDICT_COLUMNS, shown=claims.display_table),
    Part("checks", section=_checks_section),
    Part("overview", section=_overview_section),
    Part("notes", section=_notes),
    Part("clean_accuracy", lambda report: tables.clean_accuracy_table(report.results.clean), _clean_section,
         (PartFigure("clean_accuracy", "figures/clean_accuracy.png", "clean accuracy vs kernel size",
                     "Clean accuracy vs kernel size", figures.plot_clean_accuracy),),
         flags=True, headline=True, columns=CLEAN_COLUMNS),
    Part("deepfool", lambda report: tables.deepfool_table(report.results.samples, report.results.radii),
         _deepfool_section,
         (PartFigure("deepfool", "figures/deepfool_rho.png", "DeepFool ρ_adv vs kernel size",
                     "Mean DeepFool rho vs kernel size", figures.plot_deepfool_rho),),
         flags=True, columns=DEEPFOOL_COLUMNS),
    Part("spatial", lambda report: tables.spatial_table(report.results.samples), _spatial_section,
         (PartFigure("spatial", "figures/spatial_robust_accuracy.png", "spatial robust accuracy vs kernel size",
                     "Spatial robust accuracy vs kernel size", figures.plot_spatial_robust_accuracy, _spatial_only),),
         flags=True, columns=SPATIAL_COLUMNS),
    Part("minimal_norm", lambda report: norms.comparison_table(report.results.samples, radii=report.results.radii,
                                                            clean=report.results.clean),
         _minimal_norm_section,
         (PartFigure("security_curves", "figures/security_curves.png",
                     "robust accuracy vs L2 radius (best-known norms; band: 95 % t-interval over seeds; "
                     "dashed: the verdict's radius)",
                     "Robust accuracy vs L2 radius from best-known norms", _plot_security_curves, _security_curves),),
         flags=True, headline=True, columns=MINIMAL_NORM_COLUMNS),
    Part("attack_quality", lambda report: norms.attack_quality_table(report.results.samples, costs=report.results.costs),
         _attack_quality_section, flags=True, columns=ATTACK_QUALITY_COLUMNS),
    Part("leakage", lambda report: diagnostic_tables.leakage_table(report.results.records[LEAKAGE_RECORDS.name]),
         _leakage_section,
         (PartFigure("leakage", "figures/leakage.png", "spectral leakage of the learned kernels vs kernel size",
                     "Leakage vs kernel size", figures.plot_leakage),
          PartFigure("kernels", "figures/kernel_examples.png", "example kernels and spectra at the largest kernel size",
                     "Example kernels and their spectra", figures.plot_kernel_examples,
                     lambda report, table: report.results.records[KERNEL_RECORDS.name])),
         columns=LEAKAGE_COLUMNS),
    Part("shift", lambda report: diagnostic_tables.shift_table(report.results.records[SHIFT_RECORDS.name],
                                                              report.results.records[SHIFT_ACCURACY_RECORDS.name]),
         _shift_section,
         (PartFigure("shift", "figures/shift_consistency.png", "shift consistency vs kernel size",
                     "Shift consistency vs kernel size", figures.plot_shift),),
         columns=SHIFT_COLUMNS),
    Part("failures", section=_failures_section),
    Part("environment", section=_environment_section),
    Part("timings", section=_timings_section),
)


def _part_lines(report: Report, part: Part) -> list[str]:
    """A part's section with links to its drawn figures; no lines when it has nothing to say."""
    lines = part.section(report) if part.section is not None else []
    return lines + _figure_links(report, part) if lines else []


def render_summary(report: Report) -> str:
    """The text of ``summary.md``: the title, then each part's section in :data:`PARTS` order.

    Args:
        report: The records, the built tables and the drawn figures.

    Returns:
        Markdown text ending in a newline.
    """
    results = report.results
    suite = results.meta.get("suite_name") or report.out.name
    verdict = has_verdict(report.tables)
    # Without a baseline the run opens with the model's own results instead of a verdict of empty rows.
    opening = [] if verdict else [_no_baseline_section(results), *(_part_lines(report, p) for p in PARTS if p.headline)]
    sections = [[f"# {suite}: {dataset_name(results)}"], *opening,
                *(_part_lines(report, part) for part in PARTS if verdict or not part.headline)]
    return "\n\n".join("\n".join(section) for section in sections if section) + "\n"
