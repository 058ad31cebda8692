"""The run folder: its layout, the record schemas, typed reading and writing, and the API that
the runner writes through and the tables, figures and summary read from.

Layout of a run folder ``OUT`` (``robustbench-win run SUITE --out OUT``)::

    OUT/suite.toml                                  the resolved suite; claims the folder
    OUT/meta.json                                   data set, notes, attacks, versions, device, total time
    OUT/runs/<model_id>/clean.json                  one model's clean accuracy, or why it failed
    OUT/runs/<model_id>/timings.json                seconds spent on it (training, clean accuracy, attacks)
    OUT/runs/<model_id>/attack-<attack>.csv         one row per attacked test image
    OUT/runs/<model_id>/attack-<attack>.error.json  an attack that crashed on this model
    OUT/runs/<model_id>/attack-<attack>.costs.json  what the attack cost on this model (passes, seconds)
    OUT/runs/<model_id>/leakage-spectral.csv        spectral leakage, one row per conv layer
    OUT/runs/<model_id>/leakage-spectral-init.csv   the same on the untrained model of that seed
    OUT/runs/<model_id>/kernels-spectral.csv        example effective kernels, one row per tap
    OUT/runs/<model_id>/shift-consistency.csv       predictions under two random shifts, per image
    OUT/runs/<model_id>/shift_accuracy-grid.csv     accuracy under each single grid shift
    OUT/runs/<model_id>/check-<check>.csv           one sanity check of the model (robustbench_win.measure.checks)

Everything under ``runs/<model_id>/`` is written only by the process that handles that model,
and every file is written atomically, so several processes can work on different models of one
folder at once and a reader never sees half a file. The report adds the consolidated records
``OUT/clean.csv``, ``OUT/samples.csv.gz`` (gzipped: it grows with every attack and seed; a folder
written before holds ``samples.csv``, read as before), ``OUT/costs.csv`` and one ``OUT/<kind>.csv``
per other record kind, and ``OUT/timings.csv`` (every model's ``timings.json``); a folder holding only those (a committed report, whose ``runs/`` is not
kept) is read from them.

Record schemas are declared once, in :mod:`robustbench_win.store.records`, from typed dataclasses:
:class:`ModelIdentity` leads every record, :class:`CleanResult` follows it in ``clean.json``, and
an attack's rows add the attack's name and family and the fields of
:class:`~robustbench_win.attacks.result.SampleResult`. A per-model measure declares its own kinds
of record (:mod:`robustbench_win.measure.base`); listing it in
:data:`~robustbench_win.store.records.MEASURES` adds them to :data:`RECORD_KINDS`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_win.errors import UserError
from robustbench_win.atomic import write_atomic
from robustbench_win.conventions import DEFAULT_RADII
from robustbench_win.ordering import sort_records
from robustbench_win.schema import MODEL_SORT
from robustbench_win.store.records import (
    ATTACK_RECORDS,
    CLEAN,
    COSTS,
    FAILURES,
    IDENTITY,
    RECORD_KINDS,
    TIMINGS,
    AttackCost,
    CleanResult,
    ModelIdentity,
    RecordError,
    RecordKind,
    failure_fields,
    nested_timings,
    timing_rows,
)

SUITE_FILE, META_FILE, RUNS_DIR = "suite.toml", "meta.json", "runs"
CLEAN_FILE, TIMINGS_FILE, CLEAN_TABLE = "clean.json", "timings.json", "clean.csv"
COSTS_SUFFIX, COSTS_TABLE = ".costs.json", "costs.csv"  # per (model, attack) file; consolidated records
TIMINGS_TABLE = "timings.csv"  # every model's timings.json, consolidated
STEP_FLOAT_FORMAT = "%.9g"  # per-model record files; tables are computed from these values


class ResultsNotFoundError(UserError, FileNotFoundError):
    """The run folder holds no stored model results."""


class RunFolderError(UserError, RuntimeError):
    """The output folder holds results of a different suite configuration."""


# --------------------------------------------------------------------------- what a folder holds


@dataclass(frozen=True)
class Results:
    """Everything stored in one run folder.

    Attributes:
        clean: One row per model that has a clean record, columns of :data:`CLEAN`.
        records: Per-sample records of every model, by :attr:`RecordKind.name`.
        failures: Models that did not finish and steps that crashed, columns of :data:`FAILURES`.
        meta: ``meta.json`` (empty if missing).
        suite_text: ``suite.toml`` verbatim (empty if missing).
        timings: Seconds per model id: ``train_seconds``, ``clean_seconds``, ``attack_seconds``.
        costs: One row per (model, attack) whose cost was recorded, columns of :data:`COSTS`.
    """

    clean: pd.DataFrame
    records: dict[str, pd.DataFrame]
    failures: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    suite_text: str = ""
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)
    costs: pd.DataFrame = field(default_factory=lambda: COSTS.frame([]))

    @property
    def samples(self) -> pd.DataFrame:
        """Per-sample attack records, columns of :data:`ATTACK_RECORDS`."""
        return self.records[ATTACK_RECORDS.name]

    @property
    def radii(self) -> tuple[float, ...]:
        """L2 radii for robust accuracy (``meta.json`` "radii", else the suite default)."""
        radii = self.meta.get("radii")
        return tuple(float(r) for r in radii) if radii else DEFAULT_RADII

    @property
    def total_seconds(self) -> float | None:
        return (self.meta.get("timings") or {}).get("total_seconds")


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; ``None`` when missing, truncated or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _write_json(path: Path, data: Mapping[str, Any]) -> Path:
    return write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _merge(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``old`` updated with ``new``, nested dictionaries merged key by key."""
    merged = dict(old)
    for key, value in new.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) else value
    return merged


class RunFolder:
    """One run folder: where each result lives, and the only code that reads or writes it.

    Args:
        root: The folder passed as ``--out``.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # ----------------------------------------------------------------- layout

    @property
    def runs(self) -> Path:
        return self.root / RUNS_DIR

    def model_dir(self, model_id: str) -> Path:
        return self.runs / model_id

    def step_file(self, kind: RecordKind, model_id: str, step: str) -> Path:
        return self.model_dir(model_id) / f"{kind.prefix}-{step}.csv"

    def error_file(self, kind: RecordKind, model_id: str, step: str) -> Path:
        return self.model_dir(model_id) / f"{kind.prefix}-{step}.error.json"

    def cost_file(self, model_id: str, attack: str) -> Path:
        return self.model_dir(model_id) / f"{ATTACK_RECORDS.prefix}-{attack}{COSTS_SUFFIX}"

    def model_ids(self) -> list[str]:
        """Model folders under ``runs/``, sorted."""
        return sorted(p.name for p in self.runs.iterdir() if p.is_dir()) if self.runs.is_dir() else []

    # ----------------------------------------------------------------- the run (one process)

    def claim(self, suite_text: str) -> None:
        """Write ``suite.toml``, or check that the folder's results come from the same suite.

        Raises:
            RunFolderError: The folder holds results of another configuration.
            WriteError: The folder cannot be written.
        """
        suite_file = self.root / SUITE_FILE
        if self.model_ids() and suite_file.is_file() and suite_file.read_text(encoding="utf-8") != suite_text:
            raise RunFolderError(
                f"{self.root} holds results of a different suite configuration (see {suite_file}); "
                f"resume it with the same suite and --set options, or choose another --out folder"
            )
        write_atomic(suite_file, suite_text)

    def start(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``meta.json`` with ``facts`` at the start of a run and return it.

        The total time of earlier attempts is kept only when model results exist (a copied
        report folder must not add its old timings to a new run).
        """
        earlier = (_read_json(self.root / META_FILE) or {}) if self.model_ids() else {}
        meta = earlier | dict(facts)
        meta.setdefault("timings", {}).setdefault("total_seconds", 0.0)
        _write_json(self.root / META_FILE, meta)
        return meta

    def finish(self, meta: dict[str, Any], seconds: float) -> None:
        """Add ``seconds`` to the run's total time in ``meta.json``."""
        meta["timings"]["total_seconds"] += seconds
        _write_json(self.root / META_FILE, meta)

    # ----------------------------------------------------------------- one model (one process each)

    def read_clean(self, model_id: str) -> dict[str, Any] | None:
        """The model's clean record; ``None`` when it has none yet or it is unreadable (redo it)."""
        record = _read_json(self.model_dir(model_id) / CLEAN_FILE)
        return record if record is not None and "status" in record else None

    def write_clean(self, identity: ModelIdentity, result: CleanResult, traceback_text: str | None = None) -> None:
        extra = {"traceback": traceback_text} if traceback_text else {}
        _write_json(self.model_dir(identity.model_id) / CLEAN_FILE,
                    identity.fields() | dataclasses.asdict(result) | extra)

    def step_done(self, kind: RecordKind, model_id: str, step: str) -> bool:
        """Whether the step's records are stored and readable (a damaged file is redone)."""
        try:
            kind.schema.read_csv(self.step_file(kind, model_id, step))
        except (OSError, ValueError):
            return False
        return True

    def write_step(self, kind: RecordKind, identity: ModelIdentity, step: Mapping[str, Any],
                   rows: Iterable[Mapping[str, Any]]) -> Path:
        """Store one step's per-sample records, and clear an earlier crash of that step.

        Args:
            kind: The kind of record.
            identity: The model.
            step: The step's own columns, its name under ``kind.step`` (``{"attack": ...,
                "family": ...}``).
            rows: One mapping per sample with the remaining columns.
        """
        name = str(step[kind.step])
        path = self.step_file(kind, identity.model_id, name)
        frame = kind.schema.frame((identity.fields() | dict(step) | dict(row) for row in rows), source=path)
        path = write_atomic(path,
                            kind.schema.to_csv(frame, float_format=STEP_FLOAT_FORMAT))
        self.error_file(kind, identity.model_id, name).unlink(missing_ok=True)
        return path

    def write_step_error(self, kind: RecordKind, model_id: str, step: str, error: BaseException) -> None:
        """Record that a step crashed on this model; the run goes on, and a rerun retries it."""
        _write_json(self.error_file(kind, model_id, step), {kind.step: step} | failure_fields(error))

    def write_cost(self, identity: ModelIdentity, cost: AttackCost) -> Path:
        """Store what one attack cost on one model (replacing an earlier run's)."""
        return _write_json(self.cost_file(identity.model_id, cost.attack), identity.fields() | dataclasses.asdict(cost))

    def add_timings(self, model_id: str, timings: Mapping[str, Any]) -> None:
        """Merge ``timings`` (seconds) into the model's ``timings.json``."""
        if timings:
            path = self.model_dir(model_id) / TIMINGS_FILE
            _write_json(path, _merge(_read_json(path) or {}, timings))

    def saved(self) -> tuple[int, int]:
        """How many models have a clean record and how many per-sample record files are stored."""
        ids = self.model_ids()
        records = sum(len(list(self.model_dir(m).glob(f"{k.prefix}-*.csv"))) for m in ids for k in RECORD_KINDS)
        return sum(self.read_clean(m) is not None for m in ids), records

    # ----------------------------------------------------------------- everything (the report)

    def collect(self) -> Results:
        """Read every stored result, typed and sorted.

        Raises:
            ResultsNotFoundError: No model folder under ``runs/`` and no ``clean.csv``.
            RecordError: A stored per-sample file is malformed (the message names it).
        """
        meta = _read_json(self.root / META_FILE) or {}
        suite = self.root / SUITE_FILE
        suite_text = suite.read_text(encoding="utf-8") if suite.is_file() else ""
        if self.model_ids():
            clean, records, failures, timings = self._read_runs()
        elif (self.root / CLEAN_TABLE).is_file():
            clean, records, failures, timings = self._read_consolidated()
        else:
            raise self._no_results()
        timings = _merge((meta.get("timings") or {}).get("models") or {}, timings)
        return Results(clean=clean, records=records, failures=failures, meta=meta, suite_text=suite_text, timings=timings,
                       costs=self._read_costs())

    def write_consolidated(self, results: Results) -> list[Path]:
        """Write ``clean.csv``, each record kind's consolidated file and ``costs.csv``; return their paths.

        A stale uncompressed ``samples.csv`` an older report left next to the compressed one
        is removed, so the folder holds one copy of the records.
        """
        written = [write_atomic(self.root / CLEAN_TABLE, CLEAN.to_csv(results.clean))]
        for kind in RECORD_KINDS:
            path = write_atomic(self.root / kind.consolidated_name, kind.consolidated_bytes(results.records[kind.name]))
            written.append(path)
            if kind.compressed:  # the same records, now in the compressed file
                (self.root / f"{kind.name}.csv").unlink(missing_ok=True)
        written.append(write_atomic(self.root / COSTS_TABLE, COSTS.to_csv(results.costs)))
        written.append(write_atomic(self.root / TIMINGS_TABLE, TIMINGS.to_csv(TIMINGS.frame(timing_rows(results.timings)))))
        return written

    def _read_costs(self) -> pd.DataFrame:
        """Attack costs from ``runs/`` (unreadable files are skipped: costs are NaN), else ``costs.csv``."""
        if not self.model_ids():
            path = self.root / COSTS_TABLE
            return COSTS.read_csv(path) if path.is_file() else COSTS.frame([])
        paths = [p for m in self.model_ids() for p in sorted(self.model_dir(m).glob(f"*{COSTS_SUFFIX}"))]
        read = [(p, r) for p, r in ((p, _read_json(p)) for p in paths) if r is not None]
        for path, record in read:
            COSTS.check(record, path)
        return sort_records(COSTS.frame(r for _, r in read), (*MODEL_SORT, "attack"))

    def _no_results(self) -> ResultsNotFoundError:
        """Why the folder cannot be reported, naming what is really missing."""
        produce = f"`robustbench-win run SUITE --out {self.root}`"
        if not self.root.is_dir():
            return ResultsNotFoundError(f"no folder '{self.root}': pass the --out folder of a run, or produce one with "
                                        f"{produce}")
        consolidated = sorted(p.name for p in self.root.iterdir() if p.name in self._consolidated_names())
        if consolidated:  # a report whose runs/ is not kept (a committed report), with clean.csv lost
            return ResultsNotFoundError(
                f"'{self.root}' holds consolidated records ({', '.join(consolidated)}) but not {CLEAN_TABLE}, the "
                f"clean-accuracy record of every model that the report is built from, and no '{self.runs}' folder to "
                f"rebuild it from. Restore {self.root / CLEAN_TABLE} (a committed report: git checkout -- "
                f"{self.root / CLEAN_TABLE}), or produce the records again with {produce}."
            )
        return ResultsNotFoundError(
            f"no stored results in '{self.root}': expected one folder per model under '{self.runs}', "
            f"each holding clean.json and attack-<attack>.csv files. Produce them with "
            f"{produce}, then build the report again."
        )

    @staticmethod
    def _consolidated_names() -> set[str]:
        """File names of the consolidated records a report writes besides ``clean.csv``."""
        names = {COSTS_TABLE, TIMINGS_TABLE}
        for kind in RECORD_KINDS:
            names |= {kind.consolidated_name, f"{kind.name}.csv"}
        return names

    def _read_runs(self) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], pd.DataFrame, dict[str, Any]]:
        cleans, failures, timings = [], [], {}
        frames: dict[str, list[pd.DataFrame]] = {kind.name: [] for kind in RECORD_KINDS}
        for model_id in self.model_ids():
            folder = self.model_dir(model_id)
            model_frames = {kind.name: [kind.schema.read_csv(p) for p in sorted(folder.glob(f"{kind.prefix}-*.csv"))]
                            for kind in RECORD_KINDS}
            record = self.read_clean(model_id)
            if record is not None:
                CLEAN.check(record, folder / CLEAN_FILE)
                cleans.append(record)
            failures += self._model_failures(model_id, record, [f for fs in model_frames.values() for f in fs])
            timings[model_id] = _read_json(folder / TIMINGS_FILE) or {}
            for name, found in model_frames.items():
                frames[name] += found
        records = {kind.name: self._records(kind, frames[kind.name]) for kind in RECORD_KINDS}
        return self._clean_frame(cleans), records, self._failure_frame(failures), timings

    def _model_failures(self, model_id: str, record: dict[str, Any] | None, frames: list[pd.DataFrame]) -> list[dict]:
        """A model without a finished clean record, or that failed, and its crashed steps."""
        rows = [f.iloc[0].to_dict() for f in frames if len(f)]
        identity = {n: (record or (rows[0] if rows else {})).get(n) for n in IDENTITY.names} | {"model_id": model_id}
        failures = []
        if record is None:
            failures.append(identity | {"stage": "model", "step": "", "error": (
                "no readable clean.json: the run stopped before this model finished (run the suite again "
                "with the same --out to resume)")})
        elif record.get("status") != "ok":
            failures.append(identity | {"stage": "model", "step": "",
                                        "error": record.get("error") or f"status {record.get('status')!r}, no error recorded"})
        for kind in RECORD_KINDS:
            for path in sorted(self.model_dir(model_id).glob(f"{kind.prefix}-*.error.json")):
                info = _read_json(path) or {}
                failures.append(identity | {"stage": kind.prefix, "step": info.get(kind.step) or kind.step_of(path),
                                            "error": info.get("error") or "no error recorded"})
        return failures

    def _read_consolidated(self) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], pd.DataFrame, dict[str, Any]]:
        """A folder without ``runs/``: the records the report consolidated (model failures only)."""
        clean = CLEAN.read_csv(self.root / CLEAN_TABLE)
        records = {}
        for kind in RECORD_KINDS:
            path = kind.consolidated_file(self.root)
            records[kind.name] = self._records(kind, [kind.schema.read_csv(path)] if path is not None else [])
        failed = clean[clean["status"] != "ok"]
        failures = [row | {"stage": "model", "step": "",
                           "error": row["error"] if isinstance(row["error"], str) and row["error"] else "failed"}
                    for row in failed.to_dict("records")]
        timings_path = self.root / TIMINGS_TABLE
        timings = nested_timings(TIMINGS.read_csv(timings_path)) if timings_path.is_file() else {}
        return self._clean_frame(clean.to_dict("records")), records, self._failure_frame(failures), timings

    def _records(self, kind: RecordKind, frames: list[pd.DataFrame]) -> pd.DataFrame:
        records = pd.concat(frames, ignore_index=True) if frames else kind.schema.frame([])
        duplicated = records.duplicated(list(kind.unique))
        if duplicated.any():
            first = records[duplicated].iloc[0]
            where = ", ".join(f"{c} {first[c]}" for c in kind.unique)
            raise RecordError(f"{self.runs}: the record of {where} appears more than once; each must be stored once")
        return sort_records(records, kind.sort)

    @staticmethod
    def _clean_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
        return sort_records(CLEAN.frame(records), MODEL_SORT)

    @staticmethod
    def _failure_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
        return sort_records(FAILURES.frame(records), (*MODEL_SORT, "stage", "step"))
