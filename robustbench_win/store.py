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
    OUT/runs/<model_id>/kernels-spectral.csv        example effective kernels, one row per tap
    OUT/runs/<model_id>/shift-consistency.csv       predictions under two random shifts, per image
    OUT/runs/<model_id>/shift_accuracy-grid.csv     accuracy under each single grid shift

Everything under ``runs/<model_id>/`` is written only by the process that handles that model,
and every file is written atomically, so several processes can work on different models of one
folder at once and a reader never sees half a file. The report adds the consolidated records
``OUT/clean.csv``, ``OUT/samples.csv`` and ``OUT/costs.csv``; a folder holding only those (a committed report, whose
``runs/`` is not kept) is read from them.

Record schemas are declared once, here, from typed dataclasses: :class:`ModelIdentity` leads
every record, :class:`CleanResult` follows it in ``clean.json``, and an attack's rows add the
attack's name and family and the fields of :class:`~robustbench_win.attacks.result.SampleResult`.
A new kind of per-sample record (another step run on every model) is one more
:class:`RecordKind` in :data:`RECORD_KINDS`.
"""

from __future__ import annotations

import dataclasses
import json
import traceback
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_win.atomic import write_atomic
from robustbench_win.attacks.result import RECORD_FIELDS, SampleResult
from robustbench_win.leakage import LayerLeakage
from robustbench_win.ordering import sort_records
from robustbench_win.suite import DEFAULT_RADII

SUITE_FILE, META_FILE, RUNS_DIR = "suite.toml", "meta.json", "runs"
CLEAN_FILE, TIMINGS_FILE, CLEAN_TABLE = "clean.json", "timings.json", "clean.csv"
COSTS_SUFFIX, COSTS_TABLE = ".costs.json", "costs.csv"  # per (model, attack) file; consolidated records
TRUE_TEXT, FALSE_TEXT = ("True", "true"), ("False", "false")
STEP_FLOAT_FORMAT = "%.9g"  # per-model record files; tables are computed from these values
_TRACEBACK_FRAMES = 5
# Floats must read back exactly as written: pandas 3 does so by default (and deprecates the
# option); pandas 2 needs to be asked.
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


class ResultsNotFoundError(FileNotFoundError):
    """The run folder holds no stored model results."""


class RunFolderError(RuntimeError):
    """The output folder holds results of a different suite configuration."""


# --------------------------------------------------------------------------- schemas


@dataclass(frozen=True)
class ModelIdentity:
    """Which trained model a record belongs to; the first columns of every stored record."""

    model_id: str
    dataset: str
    model: str
    kernel_size: int
    window: str
    seed: int

    def fields(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CleanResult:
    """One model's clean accuracy on the whole test split, or why it has none.

    Attributes:
        status: ``"ok"``, or ``"failed"`` when training or evaluation raised.
        error: ``"<exception type>: <message>"`` of a failure; ``None`` when ok.
        accuracy: Fraction of test images classified correctly (0..1); ``None`` when failed.
        n_test: Test images evaluated.
        n_correct: Of those, classified correctly.
        train_seconds: Seconds the model took to train (when it was trained, possibly earlier).
        checkpoint: Path of the model's checkpoint.
        n_params: Trainable parameters of the model (``None`` in records written before it
            was stored).
    """

    status: str
    error: str | None
    accuracy: float | None
    n_test: int
    n_correct: int
    train_seconds: float
    checkpoint: str
    n_params: int | None = None


@dataclass(frozen=True)
class AttackIdentity:
    """Which attack a per-sample record comes from, and the report table it feeds (``family``)."""

    attack: str
    family: str


@dataclass(frozen=True)
class AttackCost:
    """What one attack cost on one model: the totals of its :class:`~robustbench_win.attacks.base.CallStats`.

    Attributes:
        attack: The attack's registry name.
        n_attacked: Samples attacked (classified correctly).
        forward_passes: Sample rows the algorithm put through the model.
        backward_passes: Sample rows whose input gradient the algorithm computed.
        seconds: Wall time of the attack call.
    """

    attack: str
    n_attacked: int
    forward_passes: int
    backward_passes: int
    seconds: float


@dataclass(frozen=True)
class Failure:
    """A model that did not finish, or a step that crashed on it (for the summary).

    Attributes:
        stage: ``"model"`` (training or clean accuracy), or a record kind's prefix (``"attack"``).
        step: The step that crashed (an attack's name); empty for a model.
        error: What went wrong, in one line.
    """

    stage: str
    step: str
    error: str


_DTYPES: dict[type, str] = {bool: "bool", int: "Int64", float: "float64", str: "str"}


@dataclass(frozen=True)
class Column:
    """One column of a stored record.

    Attributes:
        name: Column name.
        dtype: pandas dtype (``"Int64"``: integers that may be missing).
        required: Every stored file has it; an optional column missing from an older file
            reads as missing values.
    """

    name: str
    dtype: str
    required: bool = True


def _dtype(hint: Any) -> str:
    """pandas dtype of a field annotation: ``int``, ``float``, ``bool``, ``str`` or ``X | None``."""
    inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if len(inner) == 1:
        return "boolean" if inner[0] is bool else _DTYPES[inner[0]]
    if hint not in _DTYPES:
        raise TypeError(f"no record dtype for a field of type {hint!r}")
    return _DTYPES[hint]


@dataclass(frozen=True)
class Schema:
    """Columns and dtypes of one kind of record, in file order; reads and writes it typed."""

    columns: tuple[Column, ...]

    @classmethod
    def of(cls, record_type: type, names: Sequence[str] | None = None) -> Schema:
        """The schema of a dataclass's fields (``names``: a subset, in that order).

        Field types map to dtypes (``int`` -> ``Int64``, ``float`` -> ``float64``, ``bool``,
        ``str``); a field with a default is optional when reading.
        """
        hints = typing.get_type_hints(record_type)
        fields = {f.name: f for f in dataclasses.fields(record_type)}
        has_default = {n for n, f in fields.items() if f.default is not dataclasses.MISSING
                       or f.default_factory is not dataclasses.MISSING}
        return cls(tuple(Column(n, _dtype(hints[n]), n not in has_default) for n in names or list(fields)))

    def __add__(self, other: Schema) -> Schema:
        return Schema(self.columns + other.columns)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def dtypes(self) -> dict[str, str]:
        return {c.name: c.dtype for c in self.columns}

    def frame(self, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
        """Records (mappings holding at least the schema's columns) as a typed DataFrame."""
        frame = pd.DataFrame.from_records([{n: row.get(n) for n in self.names} for row in rows], columns=self.names)
        return frame.astype({c.name: c.dtype for c in self.columns if c.dtype != "str"})

    def read_csv(self, path: Path) -> pd.DataFrame:
        """Read a CSV file of these records, typed.

        Raises:
            ValueError: Empty file, a required column missing, or a value of the wrong type;
                the message names the file and the column.
        """
        try:
            frame = pd.read_csv(path, dtype=self.dtypes, true_values=list(TRUE_TEXT), false_values=list(FALSE_TEXT),
                                keep_default_na=False, na_values=[""], **_EXACT_FLOATS)
        except pd.errors.EmptyDataError:
            raise ValueError(f"{path}: empty file; expected a header row {self.names}") from None
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: {self._bad_column(path) or error}") from None
        missing = [c.name for c in self.columns if c.required and c.name not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; expected {self.names}, got {list(frame.columns)}")
        for column in self.columns:
            if column.name not in frame.columns:
                frame[column.name] = pd.Series([None] * len(frame), dtype=object).astype(column.dtype)
        return frame[self.names]

    def _bad_column(self, path: Path) -> str | None:
        """Which column of ``path`` holds a value its dtype cannot take, said plainly."""
        text = pd.read_csv(path, dtype=str, keep_default_na=False)
        for column in self.columns:
            if column.name not in text.columns or column.dtype == "str":
                continue
            values = text[column.name]
            if column.dtype in ("bool", "boolean"):
                allowed = set(TRUE_TEXT + FALSE_TEXT) | ({""} if column.dtype == "boolean" else set())
                bad = sorted(set(values) - allowed)
            else:
                bad = [v for v in values if v and pd.isna(pd.to_numeric(v, errors="coerce"))]
            if bad:
                return f"column '{column.name}' must hold {column.dtype} values, got {bad[0]!r}"
        return None

    def to_csv(self, frame: pd.DataFrame, float_format: str | None = None) -> str:
        """CSV text of ``frame``'s schema columns (floats at full precision unless ``float_format``)."""
        return frame[self.names].to_csv(index=False, lineterminator="\n", float_format=float_format)


IDENTITY = Schema.of(ModelIdentity)
CLEAN = IDENTITY + Schema.of(CleanResult)
FAILURES = IDENTITY + Schema.of(Failure)
COSTS = IDENTITY + Schema.of(AttackCost)
MODEL_SORT = ("dataset", "model", "kernel_size", "window", "seed", "model_id")


@dataclass(frozen=True)
class RecordKind:
    """A kind of per-sample record: every model runs its steps, each writing one file.

    Attributes:
        name: Stem of the consolidated file (``"samples"``: ``OUT/samples.csv``).
        prefix: Per-model file prefix: step ``s`` of model ``m`` writes ``runs/<m>/<prefix>-<s>.csv``,
            and a crash of it ``runs/<m>/<prefix>-<s>.error.json``.
        step: The column naming the step (``"attack"``).
        schema: Columns and dtypes, the model identity first.
        unique: Columns identifying one record; a duplicate is an error.
        sort: Columns ordering the consolidated records.
    """

    name: str
    prefix: str
    step: str
    schema: Schema
    unique: tuple[str, ...]
    sort: tuple[str, ...]

    def step_of(self, path: Path) -> str:
        """The step name in a per-model file name (``attack-deepfool.csv`` -> ``deepfool``)."""
        name = path.name.removesuffix(".error.json").removesuffix(".csv")
        return name[len(self.prefix) + 1:]


ATTACK_RECORDS = RecordKind(
    name="samples", prefix="attack", step="attack",
    schema=IDENTITY + Schema.of(AttackIdentity) + Schema.of(SampleResult, RECORD_FIELDS),
    unique=("model_id", "attack", "index"),
    sort=("dataset", "model", "kernel_size", "window", "seed", "attack", "index"),
)


@dataclass(frozen=True)
class DiagnosticIdentity:
    """Which per-model diagnostic a record comes from (the step of a diagnostic record kind)."""

    measure: str


@dataclass(frozen=True)
class KernelExample:
    """One tap of an example kernel slice of a model (the report draws kernels and spectra from these).

    Attributes:
        layer: Module name of the conv layer.
        layer_index: Position among the model's measured conv layers, from 0.
        slice: Rank of the slice by energy in its layer (0: the strongest).
        row: Tap row, 0..k-1.
        col: Tap column, 0..k-1.
        weight: The effective weight (raw weight times the window).
    """

    layer: str
    layer_index: int
    slice: int
    row: int
    col: int
    weight: float


@dataclass(frozen=True)
class ShiftSample:
    """One image under two random shifts (:data:`robustbench_win.shift_consistency.SAMPLE_COLUMNS`)."""

    index: int
    label: int
    dx_a: int
    dy_a: int
    dx_b: int
    dy_b: int
    pred_a: int
    pred_b: int
    consistent: bool


@dataclass(frozen=True)
class ShiftAccuracy:
    """Accuracy under one grid shift (:data:`robustbench_win.shift_consistency.SHIFT_ACCURACY_COLUMNS`)."""

    dx: int
    dy: int
    n_samples: int
    n_correct: int
    accuracy: float


@dataclass(frozen=True)
class LayerShape:
    """A conv layer's own kernel size and window (the stem's differ from the model's k and window)."""

    layer_kernel_size: int
    layer_window: str


LEAKAGE_LAYER_FIELDS = ("layer", "layer_index")
LEAKAGE_VALUE_FIELDS = ("n_fft", "n_slices", "n_empty", "leakage_median", "leakage_q25", "leakage_q75", "leakage_mean")
_DIAGNOSTIC_SORT = ("dataset", "model", "kernel_size", "window", "seed", "measure")
LEAKAGE_RECORDS = RecordKind(
    name="leakage", prefix="leakage", step="measure",
    schema=(IDENTITY + Schema.of(DiagnosticIdentity) + Schema.of(LayerLeakage, LEAKAGE_LAYER_FIELDS)
            + Schema.of(LayerShape) + Schema.of(LayerLeakage, LEAKAGE_VALUE_FIELDS)),
    unique=("model_id", "measure", "layer_index"), sort=(*_DIAGNOSTIC_SORT, "layer_index"),
)
KERNEL_RECORDS = RecordKind(
    name="kernels", prefix="kernels", step="measure",
    schema=IDENTITY + Schema.of(DiagnosticIdentity) + Schema.of(KernelExample),
    unique=("model_id", "measure", "layer_index", "slice", "row", "col"),
    sort=(*_DIAGNOSTIC_SORT, "layer_index", "slice", "row", "col"),
)
SHIFT_RECORDS = RecordKind(
    name="shift", prefix="shift", step="measure",
    schema=IDENTITY + Schema.of(DiagnosticIdentity) + Schema.of(ShiftSample),
    unique=("model_id", "measure", "index"), sort=(*_DIAGNOSTIC_SORT, "index"),
)
SHIFT_ACCURACY_RECORDS = RecordKind(
    name="shift_accuracy", prefix="shift_accuracy", step="measure",
    schema=IDENTITY + Schema.of(DiagnosticIdentity) + Schema.of(ShiftAccuracy),
    unique=("model_id", "measure", "dx", "dy"), sort=(*_DIAGNOSTIC_SORT, "dx", "dy"),
)
RECORD_KINDS: tuple[RecordKind, ...] = (
    ATTACK_RECORDS, LEAKAGE_RECORDS, KERNEL_RECORDS, SHIFT_RECORDS, SHIFT_ACCURACY_RECORDS,
)


def failure_fields(error: BaseException) -> dict[str, Any]:
    """What a stored failure says: ``status``, the one-line ``error`` and a short traceback."""
    return {"status": "failed", "error": f"{type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(error, limit=_TRACEBACK_FRAMES))}


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
        frame = kind.schema.frame(identity.fields() | dict(step) | dict(row) for row in rows)
        path = write_atomic(self.step_file(kind, identity.model_id, name),
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
            ValueError: A stored per-sample file is malformed (the message names it).
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
        """Write ``clean.csv`` and one ``<kind>.csv`` per record kind; return their paths."""
        written = [write_atomic(self.root / CLEAN_TABLE, CLEAN.to_csv(results.clean))]
        for kind in RECORD_KINDS:
            written.append(write_atomic(self.root / f"{kind.name}.csv", kind.schema.to_csv(results.records[kind.name])))
        written.append(write_atomic(self.root / COSTS_TABLE, COSTS.to_csv(results.costs)))
        return written

    def _read_costs(self) -> pd.DataFrame:
        """Attack costs from ``runs/`` (unreadable files are skipped: costs are NaN), else ``costs.csv``."""
        if not self.model_ids():
            path = self.root / COSTS_TABLE
            return COSTS.read_csv(path) if path.is_file() else COSTS.frame([])
        paths = [p for m in self.model_ids() for p in sorted(self.model_dir(m).glob(f"*{COSTS_SUFFIX}"))]
        records = [r for r in map(_read_json, paths) if r is not None]
        return sort_records(COSTS.frame(records), (*MODEL_SORT, "attack"))

    def _no_results(self) -> ResultsNotFoundError:
        return ResultsNotFoundError(
            f"no stored results in '{self.root}': expected one folder per model under '{self.runs}', "
            f"each holding clean.json and attack-<attack>.csv files. Produce them with "
            f"`robustbench-win run SUITE --out {self.root}`, then build the report again."
        )

    def _read_runs(self) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], pd.DataFrame, dict[str, Any]]:
        cleans, failures, timings = [], [], {}
        frames: dict[str, list[pd.DataFrame]] = {kind.name: [] for kind in RECORD_KINDS}
        for model_id in self.model_ids():
            folder = self.model_dir(model_id)
            model_frames = {kind.name: [kind.schema.read_csv(p) for p in sorted(folder.glob(f"{kind.prefix}-*.csv"))]
                            for kind in RECORD_KINDS}
            record = self.read_clean(model_id)
            cleans += [record] if record is not None else []
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
            path = self.root / f"{kind.name}.csv"
            records[kind.name] = self._records(kind, [kind.schema.read_csv(path)] if path.is_file() else [])
        failed = clean[clean["status"] != "ok"]
        failures = [row | {"stage": "model", "step": "",
                           "error": row["error"] if isinstance(row["error"], str) and row["error"] else "failed"}
                    for row in failed.to_dict("records")]
        return self._clean_frame(clean.to_dict("records")), records, self._failure_frame(failures), {}

    def _records(self, kind: RecordKind, frames: list[pd.DataFrame]) -> pd.DataFrame:
        records = pd.concat(frames, ignore_index=True) if frames else kind.schema.frame([])
        duplicated = records.duplicated(list(kind.unique))
        if duplicated.any():
            first = records[duplicated].iloc[0]
            where = ", ".join(f"{c} {first[c]}" for c in kind.unique)
            raise ValueError(f"{self.runs}: the record of {where} appears more than once; each must be stored once")
        return sort_records(records, kind.sort)

    @staticmethod
    def _clean_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
        return sort_records(CLEAN.frame(records), MODEL_SORT)

    @staticmethod
    def _failure_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
        return sort_records(FAILURES.frame(records), (*MODEL_SORT, "stage", "step"))
