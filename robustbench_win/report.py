"""Rebuild tables, figures and a one-page summary from a run folder's stored results.

A run folder ``OUT`` (written by ``robustbench-win run SUITE --out OUT``) holds::

    OUT/suite.toml                          the resolved suite configuration
    OUT/meta.json                           suite and data-set names, notes, versions, device, timings
    OUT/runs/<model_id>/clean.json          one trained model and its clean accuracy
    OUT/runs/<model_id>/attack-<attack>.csv per-sample attack records
    OUT/runs/<model_id>/attack-<attack>.error.json   an attack that crashed for that model

:func:`build_report` reads only these files and writes, next to them, ``clean.csv`` and
``samples.csv`` (the consolidated records), ``table_*.csv`` / ``table_*.md``, ``figures/*.png``
and ``summary.md``. Every write goes to a temporary file first and is then renamed, so an
interrupted report never leaves half a file; re-running it gives byte-identical files.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_win import figures, tables

SAMPLE_COLUMNS = [
    "model_id", "dataset", "model", "kernel_size", "window", "seed", "attack", "family",
    "index", "label", "clean_pred", "attacked", "adv_pred", "success", "l2", "rho",
    "iterations", "dx", "dy", "angle",
]
CLEAN_COLUMNS = [
    "model_id", "dataset", "model", "kernel_size", "window", "seed", "status", "error",
    "accuracy", "n_test", "n_correct", "train_seconds", "checkpoint",
]
FAILURE_COLUMNS = ["model_id", "dataset", "model", "kernel_size", "window", "seed", "stage", "attack", "error"]

_SAMPLE_TYPES = {
    "kernel_size": "int64", "seed": "int64", "index": "int64",
    "label": "Int64", "clean_pred": "Int64", "adv_pred": "Int64", "iterations": "Int64",
    "l2": "float64", "rho": "float64", "dx": "float64", "dy": "float64", "angle": "float64",
}
_CLEAN_TYPES = {
    "kernel_size": "Int64", "seed": "Int64", "n_test": "Int64", "n_correct": "Int64",
    "accuracy": "float64", "train_seconds": "float64",
}
_TRUE, _FALSE = {"true", "1", "1.0", "yes"}, {"false", "0", "0.0", "no", ""}
_SORT_SAMPLES = ["dataset", "model", "kernel_size", "window", "seed", "attack", "index"]
_SORT_MODELS = ["dataset", "model", "kernel_size", "window", "seed", "model_id"]
_SORT_FAILURES = _SORT_MODELS + ["stage", "attack"]
_TABLES = ("clean_accuracy", "deepfool", "spatial")
_FIGURES = {
    "clean_accuracy": "figures/clean_accuracy.png",
    "deepfool": "figures/deepfool_rho.png",
    "spatial": "figures/spatial_robust_accuracy.png",
}
_MAX_ERROR_CHARS = 300  # in summary.md; the full message stays in the run folder


class ResultsNotFoundError(FileNotFoundError):
    """The run folder holds no stored model results."""


@dataclass(frozen=True)
class Results:
    """Everything stored in one run folder.

    Attributes:
        clean: One row per model (``clean.json``), columns :data:`CLEAN_COLUMNS`.
        samples: Per-sample attack records of all models, columns :data:`SAMPLE_COLUMNS`.
        failures: Failed models and crashed attacks, columns :data:`FAILURE_COLUMNS`
            (``stage`` is "model" or "attack").
        meta: ``meta.json`` (empty if missing).
        suite_text: ``suite.toml`` verbatim (empty if missing).
    """

    clean: pd.DataFrame
    samples: pd.DataFrame
    failures: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    suite_text: str = ""

    @property
    def radii(self) -> tuple[float, ...]:
        """L2 radii for DeepFool robust accuracy (``meta.json`` "radii", else the default)."""
        radii = self.meta.get("radii")
        return tuple(float(r) for r in radii) if radii else tables.DEFAULT_RADII


# --------------------------------------------------------------------------- reading


def _no_results(out: Path, runs: Path) -> ResultsNotFoundError:
    return ResultsNotFoundError(
        f"no stored results in '{out}': expected one folder per model under '{runs}', each "
        f"holding clean.json and attack-<attack>.csv files. Produce them with "
        f"`robustbench-win run SUITE --out {out}`, then build the report again."
    )


def _parse_bool(column: pd.Series, source: Path) -> pd.Series:
    text = column.fillna("").astype(str).str.strip().str.lower()
    bad = sorted(set(text) - _TRUE - _FALSE)
    if bad:
        raise ValueError(f"{source}: column '{column.name}' must hold True/False, got {bad[:3]}")
    return text.isin(_TRUE)


def _typed(df: pd.DataFrame, types: dict[str, str], source: Path | str) -> pd.DataFrame:
    """Cast text columns to their numeric types ("" and "nan" become missing)."""
    for name, dtype in types.items():
        if name not in df:
            continue
        text = df[name].astype(object).where(df[name].notna(), "")
        try:
            values = pd.to_numeric(text.replace("", math.nan))
            df[name] = values.astype(dtype)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{source}: column '{name}' must hold {dtype} numbers ({error})") from None
    return df


def _read_samples(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty file; expected a header row {SAMPLE_COLUMNS}") from None
    missing = [c for c in SAMPLE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {SAMPLE_COLUMNS}, got {list(df.columns)}")
    df = _typed(df[SAMPLE_COLUMNS].copy(), _SAMPLE_TYPES, path)
    df["attacked"] = _parse_bool(df["attacked"], path)
    df["success"] = _parse_bool(df["success"], path)
    return df


def _empty_samples() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series([], dtype=object) for c in SAMPLE_COLUMNS})
    df = _typed(df, _SAMPLE_TYPES, "samples")
    return df.astype({"attacked": bool, "success": bool})


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def _model_keys(record: dict[str, Any], model_id: str) -> dict[str, Any]:
    keys = {k: record.get(k) for k in ("dataset", "model", "kernel_size", "window", "seed")}
    return {"model_id": record.get("model_id") or model_id} | keys


def _read_model(folder: Path) -> tuple[dict | None, list[pd.DataFrame], list[dict]]:
    """One model folder: its clean record, its per-sample frames and its failures."""
    frames = [_read_samples(p) for p in sorted(folder.glob("attack-*.csv"))]
    clean_path = folder / "clean.json"
    record = _read_json(clean_path) if clean_path.is_file() else None
    if record is not None:
        keys = _model_keys(record, folder.name)
    elif frames and len(frames[0]):
        keys = _model_keys(frames[0].iloc[0].to_dict(), folder.name)
    else:
        keys = {"model_id": folder.name}
    failures = []
    if record is None:
        failures.append(keys | {"stage": "model", "attack": "", "error": "no clean.json: the run stopped before "
                                "this model finished (run the suite again with the same --out to resume)"})
    elif record.get("status") != "ok":
        failures.append(keys | {"stage": "model", "attack": "",
                                "error": record.get("error") or f"status {record.get('status')!r}, no error recorded"})
    for path in sorted(folder.glob("attack-*.error.json")):
        info = _read_json(path)
        attack = info.get("attack") or path.name[len("attack-"):-len(".error.json")]
        failures.append(keys | {"stage": "attack", "attack": attack, "error": info.get("error") or "no error recorded"})
    return record, frames, failures


def _frame(records: list[dict], columns: list[str], types: dict[str, str]) -> pd.DataFrame:
    df = pd.DataFrame([{c: r.get(c) for c in columns} for r in records], columns=columns)
    return _typed(df, types, "clean.json")


def collect_results(out_dir: Path | str) -> Results:
    """Read every stored result of a run folder.

    Args:
        out_dir: The folder passed as ``--out`` to ``robustbench-win run``.

    Returns:
        The consolidated records, sorted deterministically.

    Raises:
        ResultsNotFoundError: ``out_dir/runs`` is missing or holds no model folder.
        ValueError: A stored file is malformed (the message names it).
    """
    out = Path(out_dir)
    runs = out / "runs"
    folders = sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    if not folders:
        raise _no_results(out, runs)
    records, frames, failures = [], [], []
    for folder in folders:
        record, model_frames, model_failures = _read_model(folder)
        records += [record] if record is not None else []
        frames += model_frames
        failures += model_failures
    samples = pd.concat(frames, ignore_index=True) if frames else _empty_samples()
    duplicated = samples.duplicated(["model_id", "attack", "index"])
    if duplicated.any():
        first = samples[duplicated].iloc[0]
        raise ValueError(f"{runs}: sample {first['index']} of model {first['model_id']} appears more than once "
                         f"for attack {first['attack']}; each test index must be recorded once per attack")
    meta_path, suite_path = out / "meta.json", out / "suite.toml"
    return Results(
        clean=tables.sort_records(_frame(records, CLEAN_COLUMNS, _CLEAN_TYPES), _SORT_MODELS),
        samples=tables.sort_records(samples, _SORT_SAMPLES),
        failures=tables.sort_records(_frame(failures, FAILURE_COLUMNS, _CLEAN_TYPES), _SORT_FAILURES),
        meta=_read_json(meta_path) if meta_path.is_file() else {},
        suite_text=suite_path.read_text(encoding="utf-8") if suite_path.is_file() else "",
    )


# --------------------------------------------------------------------------- writing


def _file_mode() -> int:
    """Permissions of a newly created file under the current umask (0644 for umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path | str, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Args:
        path: Destination; its folder is created if needed.
        data: Text (written as UTF-8 with "\\n" line ends) or bytes.

    Returns:
        ``path`` as a :class:`Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _file_mode())  # mkstemp creates 0600; give the usual permissions
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, lineterminator="\n")


def build_tables(results: Results) -> dict[str, pd.DataFrame]:
    """The three comparison tables, keyed "clean_accuracy", "deepfool" and "spatial"."""
    return {
        "clean_accuracy": tables.clean_accuracy_table(results.clean),
        "deepfool": tables.deepfool_table(results.samples, results.radii),
        "spatial": tables.spatial_table(results.samples),
    }


def _dataset_name(results: Results) -> str:
    if results.meta.get("dataset_name"):
        return str(results.meta["dataset_name"])
    names = sorted({str(d) for d in results.clean["dataset"].dropna()})
    return ", ".join(names) or "unknown data set"


def _draw_figures(out: Path, built: dict[str, pd.DataFrame], dataset: str) -> dict[str, Path]:
    plots = {
        "clean_accuracy": (figures.plot_clean_accuracy, "clean accuracy vs kernel size"),
        "deepfool": (figures.plot_deepfool_rho, "DeepFool ρ_adv vs kernel size"),
        "spatial": (figures.plot_spatial_robust_accuracy, "spatial robust accuracy vs kernel size"),
    }
    drawn = {}
    for name, (plot, what) in plots.items():
        table = built[name]
        if name == "spatial" and not tables.spatial_attacks(table):
            continue
        if not table.empty:
            drawn[name] = plot(table, out / _FIGURES[name], f"{dataset}: {what}")
    return drawn


def build_report(out_dir: Path | str) -> list[Path]:
    """Write the consolidated records, tables, figures and ``summary.md`` of a run folder.

    Args:
        out_dir: The folder passed as ``--out`` to ``robustbench-win run``.

    Returns:
        The files written, in writing order (``summary.md`` last).

    Raises:
        ResultsNotFoundError: The folder holds no stored results.
    """
    out = Path(out_dir)
    results = collect_results(out)
    built = build_tables(results)
    written = [write_atomic(out / "clean.csv", _csv(results.clean)),
               write_atomic(out / "samples.csv", _csv(results.samples))]
    for name in _TABLES:
        written.append(write_atomic(out / f"table_{name}.csv", _csv(built[name])))
        written.append(write_atomic(out / f"table_{name}.md", tables.to_markdown(built[name]) + "\n"))
    drawn = _draw_figures(out, built, _dataset_name(results))
    written += list(drawn.values())
    written.append(write_atomic(out / "summary.md", render_summary(results, built, drawn, out)))
    return written


# --------------------------------------------------------------------------- summary.md


def _md_cell(value: Any) -> str:
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


def _md_table(header: list[str], rows: list[list[Any]], numeric: int = 0) -> str:
    """A pipe table of text cells; the last ``numeric`` columns are right-aligned."""
    frame = pd.DataFrame([[_md_cell(v) for v in row] for row in rows], columns=header)
    align = ["left"] * (len(header) - numeric) + ["right"] * numeric
    return frame.to_markdown(index=False, disable_numparse=True, colalign=align)


def _seconds(value: Any) -> str:
    try:
        return f"{float(value):.1f}"
    except (TypeError, ValueError):
        return "–"


def _overview(results: Results) -> list[str]:
    clean = results.clean
    def listing(column: str, order: tuple[str, ...] = ()) -> str:
        values = [str(v) for v in clean[column].dropna().unique()]
        return ", ".join(tables.ordered(values, order) if order else sorted(values, key=lambda v: (len(v), v)))
    lines = [f"- Models: {listing('model')}; kernel sizes {listing('kernel_size')}; windows "
             f"{listing('window', tables.WINDOW_ORDER)}; seeds {listing('seed')}."]
    attacks = tables.ordered(results.samples["attack"].unique(), tables.ATTACK_ORDER)
    lines.append(f"- Attacks: {', '.join(attacks) if attacks else 'none recorded'}.")
    lines.append("- Every number below is computed from the stored per-model and per-sample records "
                 "(`clean.csv`, `samples.csv`); the tables are also stored as CSV next to this file.")
    lines.append("- Figures: one line per window; error bars are ± 1 std over seeds.")
    return lines


def _notes(results: Results) -> list[str]:
    notes = [str(n) for n in results.meta.get("notes", [])]
    lines = ["## Notes", ""]
    lines += [f"- {n}" for n in notes] or ["- No reductions from the paper's setup were recorded."]
    return lines


def _figure_link(drawn: dict[str, Path], name: str, alt: str, out: Path) -> list[str]:
    if name not in drawn:
        return []
    return ["", f"![{alt}]({drawn[name].relative_to(out).as_posix()})"]


def _clean_section(built: dict[str, pd.DataFrame], drawn: dict[str, Path], out: Path) -> list[str]:
    return [
        "## Clean accuracy", "",
        "Test accuracy of each trained model in %, mean ± std over seeds (sample std, n − 1; a "
        "single seed shows no ±). \"Δ vs none\" is the mean ± std over seeds of the per-seed "
        "difference to the unwindowed model with the same kernel size and seed, in percentage "
        "points. Failed models are left out of the numbers and listed under Failures.", "",
        tables.to_markdown(built["clean_accuracy"]),
        *_figure_link(drawn, "clean_accuracy", "Clean accuracy vs kernel size", out),
    ]


def _deepfool_section(built: dict[str, pd.DataFrame], drawn: dict[str, Path], out: Path,
                      radii: tuple[float, ...]) -> list[str]:
    return [
        "## DeepFool", "",
        "Only samples the model classifies correctly are attacked. Success rate: % of attacked "
        "samples whose adversarial example was verified (misclassified, inside [0, 1]). Median "
        "and mean ‖r‖₂ and mean ρ_adv = ‖r‖₂ / ‖x‖₂ are over successful samples only; failed "
        "attacks count in the success rate but never in the norms. Robust accuracy at ε "
        f"(ε ∈ {{{', '.join(f'{r:g}' for r in radii)}}}, L2 in [0, 1] pixel space) is the % of all "
        "evaluated test samples that are classified correctly and not fooled within ε "
        "(misclassified samples count as not robust). Each metric is computed per seed, then "
        "mean ± std over seeds; counts are totals over seeds.", "",
        "Wilcoxon: two-sided signed-rank test (scipy defaults) of ‖r‖₂ of the windowed model "
        "against the unwindowed one at the same k, paired by (seed, test index) over samples "
        "that both models classify correctly and both attacks fooled; \"median Δ‖r‖₂\" is the "
        "median of windowed − none (positive: the windowed model needs larger perturbations). "
        f"No p-value below {tables.MIN_WILCOXON_PAIRS} pairs.", "",
        tables.to_markdown(built["deepfool"]),
        *_figure_link(drawn, "deepfool", "Mean DeepFool rho vs kernel size", out),
    ]


_SPATIAL_NOTES = {
    "spatial-grid": "`spatial-grid`: worst case over the full grid of rotations in [-30°, 30°] and "
                    "translations in [-3, 3] px (31 × 5 × 5 = 775 transforms), searched in order of "
                    "magnitude, so the recorded transform is the smallest that fools.",
    "spatial-random": "`spatial-random`: worst of 10 random transforms per sample (seeded); the "
                      "recorded transform is the first that fooled, not the smallest.",
    "spatial-foolbox": "`spatial-foolbox`: foolbox's grid search (first success per sample); it does "
                       "not report which transform fooled, so the transform medians are empty.",
    "spatial-art": "`spatial-art`: ART searches one global transform for the whole batch (and skips "
                   "vertical shifts for channels-first input): a different metric, not comparable "
                   "with the per-sample grid.",
}


def _spatial_section(built: dict[str, pd.DataFrame], drawn: dict[str, Path], out: Path) -> list[str]:
    attacks = tables.spatial_attacks(built["spatial"])
    lines = [
        "## Spatial transformations", "",
        "Robust accuracy: % of all evaluated test samples classified correctly and not fooled by "
        "any transform tried (misclassified samples count as not robust). Over fooled samples with "
        "a recorded transform: median |angle| of the fooling rotation (degrees) and median shift "
        "= max(|dx|, |dy|) of the fooling translation (pixels). Per seed, then mean ± std over seeds.",
    ]
    notes = [f"- {_SPATIAL_NOTES[a]}" for a in attacks if a in _SPATIAL_NOTES]
    lines += ([""] + notes if notes else []) + ["", tables.to_markdown(built["spatial"])]
    return lines + _figure_link(drawn, "spatial", "Spatial robust accuracy vs kernel size", out)


def _failures_section(results: Results) -> list[str]:
    if results.failures.empty:
        return []
    columns = ["model_id", "kernel_size", "window", "seed", "stage", "attack", "error"]
    rows = [["" if pd.isna(v) else v for v in row]
            for row in results.failures[columns].astype(object).itertuples(index=False)]
    return [
        "## Failures", "",
        "Models that did not train or evaluate, and attacks that crashed; their results are "
        "missing from the tables above. Full messages are in `runs/<model_id>/`.", "",
        _md_table(["model", "k", "window", "seed", "stage", "attack", "error"], rows),
    ]


def _environment_section(results: Results) -> list[str]:
    meta = results.meta
    suite = results.suite_text.rstrip("\n") or "# suite.toml was not found in the run folder"
    versions = meta.get("versions") or {}
    lines = ["## Suite configuration", "", "```toml", suite, "```", "", "## Software and device", ""]
    lines += [_md_table(["package", "version"], [[k, v] for k, v in versions.items()])] if versions else [
        "Versions were not recorded."]
    lines += ["", f"Device: {meta.get('device') or 'not recorded'}."]
    return lines


def _timings_section(results: Results) -> list[str]:
    timings = results.meta.get("timings") or {}
    models = timings.get("models") or {}
    total = timings.get("total_seconds")
    lines = ["## Timings", "", f"Total: {_seconds(total)} s." if total is not None else "Total: not recorded."]
    if not models:
        return lines
    known = [m for m in results.clean["model_id"] if m in models]
    order = known + sorted(set(models) - set(known))
    attacks = tables.ordered({a for m in models.values() for a in (m.get("attack_seconds") or {})},
                             tables.ATTACK_ORDER)
    rows = [[m, _seconds(models[m].get("train_seconds")), _seconds(models[m].get("clean_seconds"))]
            + [_seconds((models[m].get("attack_seconds") or {}).get(a)) for a in attacks] for m in order]
    header = ["model", "train (s)", "clean eval (s)"] + [f"{a} (s)" for a in attacks]
    return lines + ["", _md_table(header, rows, numeric=len(header) - 1)]


def render_summary(results: Results, built: dict[str, pd.DataFrame], drawn: dict[str, Path], out: Path) -> str:
    """The text of ``summary.md``.

    Args:
        results: The collected records.
        built: The tables of :func:`build_tables`.
        drawn: Figure paths by table name (linked relative to ``out``).
        out: The run folder.

    Returns:
        Markdown text ending in a newline.
    """
    suite = results.meta.get("suite_name") or out.name
    lines = [f"# {suite}: {_dataset_name(results)}", "", *_overview(results), "", *_notes(results), ""]
    lines += _clean_section(built, drawn, out) + [""]
    lines += _deepfool_section(built, drawn, out, results.radii) + [""]
    lines += _spatial_section(built, drawn, out) + [""]
    failures = _failures_section(results)
    lines += failures + ([""] if failures else [])
    lines += _environment_section(results) + [""] + _timings_section(results)
    return "\n".join(lines) + "\n"
