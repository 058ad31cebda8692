"""Typed record schemas: the columns and dtypes of every stored record, declared once.

A :class:`Schema` is built from a dataclass's typed fields and reads and writes its records as
typed CSV; :class:`ModelIdentity` leads every record (:data:`IDENTITY`); a :class:`RecordKind`
is one kind of per-model record file. They sit below every stage, so that the module that
computes a measure also declares the records it stores
(:mod:`robustbench_win.measure.base`); :mod:`robustbench_win.store.records` declares the
run folder's own records and lists every kind.
"""

from __future__ import annotations

import dataclasses
import gzip
import typing
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_win.errors import BadValueError

TRUE_TEXT, FALSE_TEXT = ("True", "true"), ("False", "false")
# Floats must read back exactly as written: pandas 3 does so by default (and deprecates the
# option); pandas 2 needs to be asked.
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


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


# The model-key columns of every record and table, from ModelIdentity.
MODEL_COLUMNS = [f.name for f in dataclasses.fields(ModelIdentity)]  # one trained model, its id first
CONFIG_COLUMNS = [c for c in MODEL_COLUMNS if c not in ("model_id", "seed")]  # one configuration, every seed
CONFIG_SEED_COLUMNS = [*CONFIG_COLUMNS, "seed"]  # one trained model, by its configuration and seed
MODEL_SORT = (*CONFIG_SEED_COLUMNS, "model_id")  # the order of per-model records

_DTYPES: dict[type, str] = {bool: "bool", int: "Int64", float: "float64", str: "str"}


class RecordError(BadValueError):
    """A stored record file is damaged or does not hold what its schema declares (the message names the file)."""


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
            RecordError: A record lacks a required column, or holds no value in a ``bool``
                column (pandas would read that as False); the message names ``source`` and the column.
        """
        rows = list(rows)
        for row in rows:
            self.check(row, source)
        frame = pd.DataFrame.from_records([{n: row.get(n) for n in self.names} for row in rows], columns=self.names)
        return frame.astype({c.name: c.dtype for c in self.columns if c.dtype != "str"})

    def check(self, record: Mapping[str, Any], source: str | Path = "record") -> None:
        """Raise :class:`RecordError` naming ``source`` and the column if ``record`` cannot be stored as is."""
        missing = [c.name for c in self.columns if c.required and c.name not in record]
        if missing:
            raise RecordError(f"{source}: a record lacks the required column '{missing[0]}' "
                             f"(expected columns {self.names}, got {list(record)})")
        empty = [c.name for c in self.columns if c.dtype == "bool" and c.name in record and _is_missing(record[c.name])]
        if empty:
            raise RecordError(f"{source}: column '{empty[0]}' must hold True or False, got {record[empty[0]]!r}")

    def read_csv(self, path: Path) -> pd.DataFrame:
        """Read a CSV file of these records, typed.

        Raises:
            RecordError: Empty, cut short (a compressed file) or damaged file, a required column
                missing, or a value of the wrong type; the message names the file and the column.
        """
        try:
            frame = pd.read_csv(path, dtype=self.dtypes, true_values=list(TRUE_TEXT), false_values=list(FALSE_TEXT),
                                keep_default_na=False, na_values=[""], **_EXACT_FLOATS)
        except pd.errors.EmptyDataError:
            raise RecordError(f"{path}: empty file; expected a header row {self.names}") from None
        except (EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError) as error:
            raise RecordError(f"{path} is cut short or damaged ({error}); restore it from a copy (a committed report: "
                              f"git checkout -- {path}), or run the suite again on this folder, which redoes "
                              f"damaged files under runs/") from None
        except (ValueError, TypeError) as error:
            raise RecordError(f"{path}: {self._bad_column(path) or error}") from None
        missing = [c.name for c in self.columns if c.required and c.name not in frame.columns]
        if missing:
            raise RecordError(f"{path}: missing columns {missing}; expected {self.names}, got {list(frame.columns)}")
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
