"""Record schemas of a run folder, declared once from typed dataclasses.

:class:`ModelIdentity` leads every record, :class:`CleanResult` follows it in ``clean.json``, and an
attack's rows add the attack's name and family and the fields of
:class:`~robustbench_win.attacks.result.SampleResult`. A per-model measure declares its own
record kinds next to its computation (:mod:`robustbench_win.measure.base`); listing it in
:data:`MEASURES` adds its kinds to :data:`RECORD_KINDS`, which the run folder stores and reads.
The schema types themselves (:class:`Schema`, :class:`RecordKind`, :class:`ModelIdentity`) live
in :mod:`robustbench_win.schema`, below every stage, and are re-exported here.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from robustbench_win.attacks.result import RECORD_FIELDS, SampleResult
from robustbench_win.measure.base import Measure
from robustbench_win.measure.checks import CheckResult
from robustbench_win.measure.leakage import INITIAL_LEAKAGE, KERNEL_RECORDS, LEAKAGE_RECORDS, TRAINED_LEAKAGE
from robustbench_win.measure.shift_consistency import SHIFT_ACCURACY_RECORDS, SHIFT_CONSISTENCY, SHIFT_RECORDS
# Re-exported: the run folder's records are read and written through these.
from robustbench_win.schema import CONFIG_SEED_COLUMNS, IDENTITY, ModelIdentity, RecordError, RecordKind, Schema

_TRACEBACK_FRAMES = 5


# --------------------------------------------------------------------------- schemas


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


CLEAN = IDENTITY + Schema.of(CleanResult)
FAILURES = IDENTITY + Schema.of(Failure)
COSTS = IDENTITY + Schema.of(AttackCost)
TIMINGS = Schema.of(Timing)


ATTACK_RECORDS = RecordKind(
    name="samples", prefix="attack", step="attack",
    schema=IDENTITY + Schema.of(AttackIdentity) + Schema.of(SampleResult, RECORD_FIELDS),
    unique=("model_id", "attack", "index"),
    sort=(*CONFIG_SEED_COLUMNS, "attack", "index"),
    compressed=True,
)
CHECK_RECORDS = RecordKind(
    name="checks", prefix="check", step="check",
    schema=IDENTITY + Schema.of(CheckResult),
    unique=("model_id", "check"), sort=(*CONFIG_SEED_COLUMNS, "check"),
)

# Every per-model measure, in the order the runner runs them on a model (after its attacks; a
# measure of the untrained model before training). A new measure is one more entry here.
MEASURES: tuple[Measure, ...] = (INITIAL_LEAKAGE, TRAINED_LEAKAGE, SHIFT_CONSISTENCY)
RECORD_KINDS: tuple[RecordKind, ...] = (
    ATTACK_RECORDS, *dict.fromkeys(kind for measure in MEASURES for kind, _ in measure.writes), CHECK_RECORDS,
)


def failure_fields(error: BaseException) -> dict[str, Any]:
    """What a stored failure says: ``status``, the one-line ``error`` and a short traceback."""
    return {"status": "failed", "error": f"{type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(error, limit=_TRACEBACK_FRAMES))}
