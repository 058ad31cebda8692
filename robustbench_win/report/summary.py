"""The prose of ``summary.md``: a one-page account of a run folder's results.

Every sentence about an attack or a data set comes from the object itself (the descriptions
the run stored in ``meta.json``); every number comes from the tables built from the stored
records. Tables wider than :data:`robustbench_win.report.markdown.SCREEN_WIDTH` characters are split
into narrower ones here; the ``table_*.csv`` files keep every column.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_win.analysis import claims
from robustbench_win.analysis import tables
from robustbench_win.analysis import norms
from robustbench_win.attacks.families import DEEPFOOL, SPATIAL, minimal_norm_families
from robustbench_win.report.markdown import SCREEN_WIDTH, pipe_table, to_markdown_parts
from robustbench_win.ordering import attack_order, ordered, window_order
from robustbench_win.registry import ATTACKS
from robustbench_win.measure.leakage import N_FFT, NULL_SEED, NULL_SLICES
from robustbench_win.measure.shift_consistency import MAX_SHIFT, grid_shifts
from robustbench_win.store.records import ATTACK_RECORDS
from robustbench_win.store.run_folder import CLEAN_TABLE, Results
from robustbench_win.analysis.inference import MIN_PAIRS, SIGNED_RANK_TEST
from robustbench_win.analysis.verdict import VERDICT_RULE
from robustbench_win.analysis.flags import REFUSED
from robustbench_win.measure.checks import CHECK_NAMES, FLAG, REFUSE, describe_checks
from robustbench_win.store.records import CHECK_RECORDS

_MIN_ERROR_CHARS = 40  # an error cell is cut to fit the screen, never below this


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


def _markdown_tables(table: pd.DataFrame) -> list[str]:
    """A table as one or more markdown tables that fit the screen, separated by blank lines."""
    lines: list[str] = []
    for part in to_markdown_parts(table):
        lines += ([""] if lines else []) + [part]
    return lines


def _seconds(value: Any) -> str:
    try:
        return f"{float(value):.1f}"
    except (TypeError, ValueError):
        return "–"


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


def _notes(results: Results) -> list[str]:
    notes = [str(n) for n in results.meta.get("notes", [])]
    return ["## Notes", ""] + ([f"- {n}" for n in notes] or ["- No reductions from the paper's setup were recorded."])


def _figure_link(drawn: dict[str, Path], name: str, alt: str, out: Path) -> list[str]:
    if name not in drawn:
        return []
    return ["", f"![{alt}]({drawn[name].relative_to(out).as_posix()})"]


def _attack_notes(results: Results, family: str | tuple[str, ...]) -> list[str]:
    """One bullet per attack of ``family`` (or of any of several) in the records, with its own description."""
    families = (family,) if isinstance(family, str) else family
    descriptions = attack_descriptions(results)
    names = ordered(results.samples.loc[results.samples["family"].isin(families), "attack"].unique(), attack_order())
    notes = [f"- `{name}`: {descriptions[name]}" for name in names if descriptions.get(name)]
    return [""] + notes if notes else []


def _clean_section(built: dict[str, pd.DataFrame], drawn: dict[str, Path], out: Path) -> list[str]:
    return [
        "## Clean accuracy", "",
        "Test accuracy of each trained model in %, mean ± std over seeds (sample std, n − 1; a "
        "single seed shows no ±). \"Δ vs none\" is the mean ± std over seeds of the per-seed "
        "difference to the unwindowed model with the same kernel size and seed, in percentage "
        f"points; \"Δ vs none k={tables.REFERENCE_KERNEL_SIZE}\" the same against the unwindowed k = "
        f"{tables.REFERENCE_KERNEL_SIZE} model (the paper's standard "
        "network). \"params\": trainable parameters of the model. Failed models are left out of the "
        "numbers and listed under Failures.", "",
        *_markdown_tables(built["clean_accuracy"]),
        *_figure_link(drawn, "clean_accuracy", "Clean accuracy vs kernel size", out),
    ]


def _deepfool_section(results: Results, built: dict[str, pd.DataFrame], drawn: dict[str, Path], out: Path) -> list[str]:
    radii = ", ".join(f"{r:g}" for r in results.radii)
    return [
        "## DeepFool (the seed's metric: DeepFool alone)", "",
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
        *_markdown_tables(built["deepfool"]),
        *_figure_link(drawn, "deepfool", "Mean DeepFool rho vs kernel size", out),
    ]


def _spatial_section(results: Results, built: dict[str, pd.DataFrame], drawn: dict[str, Path], out: Path) -> list[str]:
    return [
        "## Spatial transformations", "",
        "Robust accuracy: % of all evaluated test samples classified correctly and not fooled by "
        "any transform tried (misclassified samples count as not robust). Over fooled samples with "
        "a recorded transform: median |angle| of the fooling rotation (degrees) and median shift "
        "= max(|dx|, |dy|) of the fooling translation (pixels). Per seed, then mean ± std over seeds.",
        *_attack_notes(results, SPATIAL.name), "",
        *_markdown_tables(built["spatial"]),
        *_figure_link(drawn, "spatial", "Spatial robust accuracy vs kernel size", out),
    ]


def _minimal_norm_section(results: Results, built: dict[str, pd.DataFrame], drawn: dict[str, Path],
                          out: Path) -> list[str]:
    """Best-known norms compared across configurations, and the security-evaluation figure."""
    attacks = norms.minimal_norm_attacks(results.samples)
    if not attacks:
        return []
    table = built["minimal_norm"]
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
        *_markdown_tables(shown),
        *_figure_link(drawn, "security_curves", "Robust accuracy vs L2 radius from best-known norms", out),
    ]


def _attack_quality_section(built: dict[str, pd.DataFrame]) -> list[str]:
    """Each minimal-norm attack per model against the best-known norms."""
    table = built["attack_quality"]
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
        *_markdown_tables(shown),
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


def _verdict_section(results: Results, built: dict[str, pd.DataFrame]) -> list[str]:
    if not has_verdict(built):
        return []
    lines = [
        "## Verdict", "", claims.design_text(results), "", "Claims (rows):", "", *claims.claim_legend(), "",
        f"Rule: {VERDICT_RULE}", "",
        *_markdown_tables(claims.display_table(built["verdict"])), "",
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
            *_markdown_tables(claims.display_table(per_k)), "",
            *claims.detail_lines(per_k),
        ]
    return lines


_DIFFERENCES = ("\"diff\" is the mean ± std over seeds of the per-seed difference to the unwindowed model "
                f"with the same seed at the same k, \"diff_{tables.REFERENCE_TAG}\" the same against the unwindowed "
                f"k = {tables.REFERENCE_KERNEL_SIZE} model.")


def _leakage_section(built: dict[str, pd.DataFrame], drawn: dict[str, Path], out: Path) -> list[str]:
    table = built["leakage"]
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
        *_markdown_tables(built["leakage"]),
        *_figure_link(drawn, "leakage", "Leakage vs kernel size", out),
        *_figure_link(drawn, "kernels", "Example kernels and their spectra", out),
    ]


def _shift_section(built: dict[str, pd.DataFrame], drawn: dict[str, Path], out: Path) -> list[str]:
    if built["shift"].empty:
        return []
    n_shifted = len([s for s in grid_shifts(MAX_SHIFT) if s != (0, 0)])
    return [
        "## Shift consistency", "",
        "On the attacked test images (the same for every model): consistency is the % of images whose "
        f"predicted class is the same under two different random integer shifts of 1-{MAX_SHIFT} pixels (seeded per "
        "image, so every model sees the same shifts; Zhang, ICML 2019), right or wrong. Accuracy (%) under "
        f"each single shift of the grid -{MAX_SHIFT}..{MAX_SHIFT} × -{MAX_SHIFT}..{MAX_SHIFT} px, summarised as the "
        f"unshifted accuracy and the mean and the minimum over the {n_shifted} non-zero shifts. Mean ± std over seeds. " + _DIFFERENCES, "",
        *_markdown_tables(built["shift"]),
        *_figure_link(drawn, "shift", "Shift consistency vs kernel size", out),
    ]


def _checks_section(results: Results) -> list[str]:
    """Each model's sanity checks (one column per check), what failed and why, and what was switched off."""
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


def _failures_section(results: Results) -> list[str]:
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


def _environment_section(results: Results) -> list[str]:
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


def _timings_section(results: Results) -> list[str]:
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


def render_summary(results: Results, built: dict[str, pd.DataFrame], drawn: dict[str, Path], out: Path) -> str:
    """The text of ``summary.md``.

    Args:
        results: The collected records.
        built: The tables, by name (``clean_accuracy``, ``deepfool``, ``spatial``).
        drawn: Figure paths by table name (linked relative to ``out``).
        out: The run folder.

    Returns:
        Markdown text ending in a newline.
    """
    suite = results.meta.get("suite_name") or out.name
    # Without a baseline the run opens with the model's own results instead of a verdict of empty rows.
    opening = [_verdict_section(results, built)] if has_verdict(built) else [
        _no_baseline_section(results), _clean_section(built, drawn, out),
        _minimal_norm_section(results, built, drawn, out)]
    sections = [
        [f"# {suite}: {dataset_name(results)}"],
        *opening,
        _checks_section(results),
        ["## Overview", "", *_overview(results)],
        _notes(results),
        *([] if not has_verdict(built) else [_clean_section(built, drawn, out)]),
        _deepfool_section(results, built, drawn, out),
        _spatial_section(results, built, drawn, out),
        *([] if not has_verdict(built) else [_minimal_norm_section(results, built, drawn, out)]),
        _attack_quality_section(built),
        _leakage_section(built, drawn, out),
        _shift_section(built, drawn, out),
        _failures_section(results),
        _environment_section(results),
        _timings_section(results),
    ]
    return "\n\n".join("\n".join(section) for section in sections if section) + "\n"
