"""Record schemas of a run folder, declared once from typed dataclasses.

:class:`ModelIdentity` leads every record, :class:`CleanResult` follows it in ``clean.json``, and an
attack's rows add the attack's name and family and the fields of
:class:`~robustbench_win.attacks.result.SampleResult`. A new kind of per-sample record (another
step run on every model) is one more :class:`RecordKind` in :data:`RECORD_KINDS`.
"""

from __future__ import annotations

import dataclasses
import gzip
import traceback
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_win.attacks.result import RECORD_FIELDS, SampleResult
from robustbench_win.measure.checks import CheckResult
from robustbench_win.measure.leakage import LayerLeakage
from robustbench_win.measure.shift_consistency import ShiftAccuracy, ShiftSample

TRUE_TEXT, FALSE_TEXT = ("True", "true"), ("False", "false")
_TRACEBACK_FRAMES = 5
# Floats must read back exactly as written: pandas 3 does so by default (and deprecates the
# option); pandas 2 needs to be asked.
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


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


def _is_missing(value: Any) -> bool:
    """Whether ``value`` is no value at all (``None`` or a float NaN)."""
    return value is None or (isinstance(value, float) and value != value)


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

    def frame(self, rows: Iterable[Mapping[str, Any]], source: str | Path = "records") -> pd.DataFrame:
        """Records (mappings holding at least the schema's required columns) as a typed DataFrame.

        An optional column a record lacks is a missing value.

        Args:
            rows: The records.
            source: Where they come from, for the error message (a file).

        Raises:
            ValueError: A record lacks a required column, or holds no value in a ``bool``
                column (pandas would read that as False); the message names ``source`` and the column.
        """
        rows = list(rows)
        for row in rows:
            self.check(row, source)
        frame = pd.DataFrame.from_records([{n: row.get(n) for n in self.names} for row in rows], columns=self.names)
        return frame.astype({c.name: c.dtype for c in self.columns if c.dtype != "str"})

    def check(self, record: Mapping[str, Any], source: str | Path = "record") -> None:
        """Raise ``ValueError`` naming ``source`` and the column if ``record`` cannot be stored as is."""
        missing = [c.name for c in self.columns if c.required and c.name not in record]
        if missing:
            raise ValueError(f"{source}: a record lacks the required column '{missing[0]}' "
                             f"(expected columns {self.names}, got {list(record)})")
        empty = [c.name for c in self.columns if c.dtype == "bool" and c.name in record and _is_missing(record[c.name])]
        if empty:
            raise ValueError(f"{source}: column '{empty[0]}' must hold True or False, got {record[empty[0]]!r}")

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


@dataclass(frozen=True)
class Timing:
    """Seconds one model spent on one stage: a row of the consolidated ``timings.csv``.

    A model's ``timings.json`` (``{"train_seconds": 3.1, "attack_seconds": {"deepfool": 1.4}}``)
    is one row per number: ``stage`` is its key, ``step`` the key inside a nested one (the attack).

    Attributes:
        model_id: The model.
        stage: ``train_seconds``, ``clean_seconds``, ``attack_seconds``, ...
        step: The attack of an ``attack_seconds`` entry; empty for a stage without steps.
        seconds: Wall time.
    """

    model_id: str
    stage: str
    step: str | None
    seconds: float


def timing_rows(timings: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per-model timings (``{model_id: timings.json}``) as :class:`Timing` rows, sorted (model, stage, step)."""
    rows = []
    for model_id, stages in timings.items():
        for stage, value in stages.items():
            steps = value.items() if isinstance(value, Mapping) else [(None, value)]
            rows += [{"model_id": model_id, "stage": stage, "step": step, "seconds": float(seconds)}
                     for step, seconds in steps if isinstance(seconds, (int, float)) and not isinstance(seconds, bool)]
    return sorted(rows, key=lambda r: (r["model_id"], r["stage"], r["step"] or ""))


def nested_timings(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """:class:`Timing` rows back into ``{model_id: timings.json}`` (the inverse of :func:`timing_rows`)."""
    timings: dict[str, dict[str, Any]] = {}
    for row in frame.to_dict("records"):
        stages = timings.setdefault(row["model_id"], {})
        if isinstance(row["step"], str):
            stages.setdefault(row["stage"], {})[row["step"]] = row["seconds"]
        else:
            stages[row["stage"]] = row["seconds"]
    return timings


IDENTITY = Schema.of(ModelIdentity)
CLEAN = IDENTITY + Schema.of(CleanResult)
FAILURES = IDENTITY + Schema.of(Failure)
COSTS = IDENTITY + Schema.of(AttackCost)
TIMINGS = Schema.of(Timing)
# The model-key columns of every record and table, from ModelIdentity.
MODEL_COLUMNS = [f.name for f in dataclasses.fields(ModelIdentity)]  # one trained model, its id first
CONFIG_COLUMNS = [c for c in MODEL_COLUMNS if c not in ("model_id", "seed")]  # one configuration, every seed
CONFIG_SEED_COLUMNS = [*CONFIG_COLUMNS, "seed"]  # one trained model, by its configuration and seed
MODEL_SORT = (*CONFIG_SEED_COLUMNS, "model_id")  # the order of per-model records


@dataclass(frozen=True)
class RecordKind:
    """A kind of per-sample record: every model runs its steps, each writing one file.

    Attributes:
        name: Stem of the consolidated file (``"samples"``: ``OUT/samples.csv.gz``).
        prefix: Per-model file prefix: step ``s`` of model ``m`` writes ``runs/<m>/<prefix>-<s>.csv``,
            and a crash of it ``runs/<m>/<prefix>-<s>.error.json``.
        step: The column naming the step (``"attack"``).
        schema: Columns and dtypes, the model identity first.
        unique: Columns identifying one record; a duplicate is an error.
        sort: Columns ordering the consolidated records.
        compressed: Whether the consolidated file is gzipped (``<name>.csv.gz``): the
            per-sample records grow with every attack and seed.
    """

    name: str
    prefix: str
    step: str
    schema: Schema
    unique: tuple[str, ...]
    sort: tuple[str, ...]
    compressed: bool = False

    @property
    def consolidated_name(self) -> str:
        """File name of the consolidated records: ``<name>.csv.gz`` when compressed, else ``<name>.csv``."""
        return f"{self.name}.csv.gz" if self.compressed else f"{self.name}.csv"

    def consolidated_file(self, root: Path) -> Path | None:
        """The consolidated records in folder ``root``; an older folder's uncompressed ``<name>.csv``
        where there is no compressed one; ``None`` when there is neither."""
        for name in (self.consolidated_name, f"{self.name}.csv"):
            if (root / name).is_file():
                return root / name
        return None

    def consolidated_bytes(self, frame: pd.DataFrame) -> bytes:
        """What the consolidated file holds: the CSV of ``frame``, gzipped when compressed.

        The gzip header's time stamp is 0, so the same records give the same bytes.
        """
        data = self.schema.to_csv(frame).encode("utf-8")
        return gzip.compress(data, mtime=0) if self.compressed else data

    def step_of(self, path: Path) -> str:
        """The step name in a per-model file name (``attack-deepfool.csv`` -> ``deepfool``)."""
        name = path.name.removesuffix(".error.json").removesuffix(".csv")
        return name[len(self.prefix) + 1:]


ATTACK_RECORDS = RecordKind(
    name="samples", prefix="attack", step="attack",
    schema=IDENTITY + Schema.of(AttackIdentity) + Schema.of(SampleResult, RECORD_FIELDS),
    unique=("model_id", "attack", "index"),
    sort=(*CONFIG_SEED_COLUMNS, "attack", "index"),
    compressed=True,
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
class LayerShape:
    """A conv layer's own kernel size and window (the stem's differ from the model's k and window)."""

    layer_kernel_size: int
    layer_window: str


LEAKAGE_LAYER_FIELDS = ("layer", "layer_index")
LEAKAGE_VALUE_FIELDS = ("n_fft", "n_slices", "n_empty", "leakage_median", "leakage_q25", "leakage_q75", "leakage_mean")
_DIAGNOSTIC_SORT = (*CONFIG_SEED_COLUMNS, "measure")
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
CHECK_RECORDS = RecordKind(
    name="checks", prefix="check", step="check",
    schema=IDENTITY + Schema.of(CheckResult),
    unique=("model_id", "check"), sort=(*CONFIG_SEED_COLUMNS, "check"),
)
RECORD_KINDS: tuple[RecordKind, ...] = (
    ATTACK_RECORDS, LEAKAGE_RECORDS, KERNEL_RECORDS, SHIFT_RECORDS, SHIFT_ACCURACY_RECORDS, CHECK_RECORDS,
)


def failure_fields(error: BaseException) -> dict[str, Any]:
    """What a stored failure says: ``status``, the one-line ``error`` and a short traceback."""
    return {"status": "failed", "error": f"{type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(error, limit=_TRACEBACK_FRAMES))}
