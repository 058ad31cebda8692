"""What a per-model measure declares: its name, the records it stores and how it computes them.

A measure (spectral leakage, shift consistency) runs on every model of a suite after its
attacks, or, with ``trained=False``, on the untrained model of the same seed. The module that
computes it declares, next to the computation, one :class:`Measure` and the record kinds it
writes (:func:`measure_records`); listing the measure in
:data:`robustbench_win.store.records.MEASURES` is all the rest of the suite needs: the runner
runs it on every model as one step (:class:`robustbench_win.run.steps.MeasureStep`), resumes
it, records its crashes and times it, and the run folder stores and consolidates its records
for the report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from robustbench_win.schema import CONFIG_SEED_COLUMNS, IDENTITY, RecordKind, Schema

Rows = Sequence[Mapping[str, Any]]  # one mapping per record, without the model identity and the step
MEASURE_SORT = (*CONFIG_SEED_COLUMNS, "measure")


@dataclass(frozen=True)
class MeasureIdentity:
    """Which per-model measure a record comes from (the step of a measure's record kind)."""

    measure: str


def measure_records(name: str, schema: Schema, *, unique: tuple[str, ...], sort: tuple[str, ...]) -> RecordKind:
    """A kind of measure record: the model identity, the ``measure`` step column, then ``schema``.

    Args:
        name: Stem of the consolidated file (``OUT/<name>.csv``) and prefix of the per-model
            files (``runs/<model_id>/<name>-<measure>.csv``).
        schema: The measure's own columns.
        unique: Columns that, with the model and the step, identify one record.
        sort: Columns that, after the model and the step, order the consolidated records.
    """
    return RecordKind(name=name, prefix=name, step="measure", schema=IDENTITY + Schema.of(MeasureIdentity) + schema,
                      unique=("model_id", "measure", *unique), sort=(*MEASURE_SORT, *sort))


@dataclass(frozen=True)
class MeasureInput:
    """What a measure runs on: one model and the suite's attacked test images.

    Attributes:
        model: The model (trained, or untrained for a measure with ``trained=False``), on the
            run's device.
        images: The attacked test images ``(N, C, H, W)`` in [0, 1], the same for every model.
        labels: Their labels ``(N,)``.
        indices: Their positions in the test split.
    """

    model: nn.Module
    images: Tensor
    labels: Tensor
    indices: list[int]


@dataclass(frozen=True)
class Measure:
    """One per-model measure: what it is called, the files it writes and how it computes them.

    Attributes:
        name: Name in ``timings.json``.
        writes: ``(record kind, step)`` of every file it writes, one per element that
            ``compute`` returns; a crash is recorded as a failure of the first.
        compute: The records of one model, one list of rows per entry of ``writes``.
        trained: Whether it measures the trained model; ``False``: the untrained model of the
            same seed, which needs neither training nor a checkpoint.
    """

    name: str
    writes: tuple[tuple[RecordKind, str], ...]
    compute: Callable[[MeasureInput], Sequence[Rows]]
    trained: bool = True
