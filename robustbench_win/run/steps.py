"""The steps of one model: each runs itself on a :class:`CellContext` and returns what to store.

A model's work is a list of steps: obtaining it (:class:`ObtainModel`: training or loading it,
and its clean accuracy on the whole test split), each sanity check before the attacks
(:class:`CheckStep`), each attack (:class:`AttackStep`), the gradient-free cross-check
(:class:`CrossCheckStep`) and each per-model measure (:class:`MeasureStep`, one per entry of
:data:`robustbench_win.store.records.MEASURES`). A step declares the files it writes (so a
resumed run skips it once they are stored), whether it needs the trained model, and whether a
check that refused the model skips it; :func:`robustbench_win.run.runner.run_cell` runs the
steps in order, stores what each returns, times it and records a crash.
"""

from __future__ import annotations

import dataclasses
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from robustbench_win.attacks.base import Attack
from robustbench_win.data.datasets import ImageData
from robustbench_win.measure.base import Measure, MeasureInput, Rows
from robustbench_win.measure.checks import CROSS_CHECK, CheckResult, cross_check, pre_attack_check
from robustbench_win.registry import ATTACKS
from robustbench_win.store.records import (
    ATTACK_RECORDS, CHECK_RECORDS, AttackCost, CleanResult, ModelIdentity, RecordKind, failure_fields,
)
from robustbench_win.store.run_folder import RunFolder
from robustbench_win.suite import AttackSpec
from robustbench_win.train.checkpoints import CheckpointStore, ModelSpec
from robustbench_win.train.obtain import TrainedModel, initial_model, obtain_model
from robustbench_win.train.weights import load_weights

Seconds = dict[str, Any]  # a step's entries of timings.json


@dataclass(frozen=True)
class Cell:
    """One model of the matrix: how its records are labelled and what determines its weights.

    Attributes:
        identity: The labels of its records.
        spec: How to build (and train) it.
        weights: A state-dict file to load instead of training (a suite's ``weights``), or ``None``.
    """

    identity: ModelIdentity
    spec: ModelSpec
    weights: Path | None = None


@dataclass(frozen=True)
class CellContext:
    """One model and everything its steps run on.

    Attributes:
        cell: The model of the matrix (identity, spec, weights file).
        data: The suite's data.
        indices: Positions in the test split of the attacked images, the same for every model.
        folder: The run folder (for steps that read earlier results of the model).
        device: Where the model runs.
        progress: Whether steps show progress bars.
        model: The trained (or loaded) model; ``None`` until it is obtained.
    """

    cell: Cell
    data: ImageData
    indices: torch.Tensor
    folder: RunFolder
    device: torch.device
    progress: bool
    model: nn.Module | None = None

    @property
    def identity(self) -> ModelIdentity:
        return self.cell.identity

    @property
    def trained(self) -> nn.Module:
        """The obtained model, for the steps that need it."""
        if self.model is None:
            raise RuntimeError(f"a step of {self.identity.model_id} needs the trained model, which was not obtained first")
        return self.model

    def attacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The attacked test images (float32 in [0, 1]) and their labels, on the CPU."""
        return self.data.test_tensors(self.indices)


@dataclass(frozen=True)
class StepRecords:
    """One file of records a step produced.

    Attributes:
        kind: The kind of record.
        step: The step's own columns: its name under ``kind.step`` (``{"attack": ..., "family": ...}``).
        rows: One mapping per record with the remaining columns.
    """

    kind: RecordKind
    step: Mapping[str, Any]
    rows: Rows


@dataclass(frozen=True)
class StepOutput:
    """What a step returns for the runner to store (in this order: cost, clean record, records).

    Attributes:
        records: Its per-model record files.
        cost: An attack's cost (stored first: a stored attack has its cost).
        clean: The model's clean record, when obtaining it measured one.
        obtained: The obtained model, which the later steps run on.
    """

    records: tuple[StepRecords, ...] = ()
    cost: AttackCost | None = None
    clean: CleanResult | None = None
    obtained: TrainedModel | None = None


class Step(ABC):
    """One piece of a model's work.

    Attributes:
        name: Its name in ``timings.json``.
        writes: ``(record kind, step)`` of every file it writes: it is done when all are stored,
            and a crash is recorded as a failure of the first.
        timing: Its key in ``timings.json`` (``"attack_seconds"``); its seconds go under ``name``.
        needs_model: Whether it runs on the obtained model (``False``: before the model is obtained,
            so that a resumed run adds it without training or loading anything).
        refusable: Whether a check that refused the model skips it (its numbers would be meaningless).
    """

    name: str
    writes: tuple[tuple[RecordKind, str], ...] = ()
    timing: ClassVar[str] = ""
    needs_model: bool = True
    refusable: ClassVar[bool] = False

    @abstractmethod
    def run(self, context: CellContext) -> StepOutput:
        """Run on one model; return what to store."""

    def done(self, folder: RunFolder, model_id: str) -> bool:
        """Whether every file the step writes is stored and readable (a damaged file is redone)."""
        return all(folder.step_done(kind, model_id, step) for kind, step in self.writes)

    def timings(self, seconds: float, output: StepOutput | None) -> Seconds:
        """Its entries of ``timings.json`` after it ran for ``seconds`` (``output`` ``None``: it crashed)."""
        return {self.timing: {self.name: seconds}}

    def failed(self, folder: RunFolder, identity: ModelIdentity, error: Exception) -> None:
        """Record that the step crashed on this model; the other steps still run, and a rerun retries it."""
        kind, step = self.writes[0]
        folder.write_step_error(kind, identity.model_id, step, error)


class ObtainModel(Step):
    """Train the model or load it (its weights file, else the checkpoint store), and measure its clean
    accuracy on the whole test split unless its clean record is stored.

    A model that fails here is recorded as failed (delete its ``clean.json`` to retry) and none
    of its other steps run.
    """

    name = "model"

    def __init__(self, store: CheckpointStore, *, evaluate_test: bool) -> None:
        self.store = store
        self.evaluate_test = evaluate_test

    def run(self, context: CellContext) -> StepOutput:
        cell, device = context.cell, context.device
        if cell.weights is not None:
            trained = load_weights(cell.spec, context.data, cell.weights, device=device, evaluate_test=self.evaluate_test)
        else:
            trained = obtain_model(cell.spec, context.data, self.store, device=device, progress=context.progress,
                                   evaluate_test=self.evaluate_test)
        return StepOutput(clean=clean_result(trained) if self.evaluate_test else None, obtained=trained)

    def timings(self, seconds: float, output: StepOutput | None) -> Seconds:
        if output is None or output.obtained is None:
            return {}
        trained = output.obtained
        timings = {} if trained.reused else {"train_seconds": seconds - trained.test_seconds}
        return timings | ({"clean_seconds": trained.test_seconds} if self.evaluate_test else {})

    def failed(self, folder: RunFolder, identity: ModelIdentity, error: Exception) -> None:
        failure = failure_fields(error)
        folder.write_clean(identity, CleanResult("failed", failure["error"], None, 0, 0, 0.0, ""), failure["traceback"])


class CheckStep(Step):
    """One sanity check before the attacks (:data:`~robustbench_win.measure.checks.PRE_ATTACK_CHECKS`)."""

    timing = "check_seconds"

    def __init__(self, check: str) -> None:
        self.name = check
        self.writes = ((CHECK_RECORDS, check),)

    def run(self, context: CellContext) -> StepOutput:
        images, labels = context.attacked()
        clean = context.folder.read_clean(context.identity.model_id) or {}
        result = pre_attack_check(self.name, context.trained.to(context.device).eval(), images.to(context.device),
                                  labels.to(context.device), n_correct=int(clean.get("n_correct") or 0),
                                  n_test=int(clean.get("n_test") or 0), num_classes=context.data.num_classes)
        return StepOutput(records=(check_records(result),))

    def timings(self, seconds: float, output: StepOutput | None) -> Seconds:
        return super().timings(seconds, output) if output is not None and output.records else {}


class CrossCheckStep(CheckStep):
    """The gradient-free cross-check (:func:`~robustbench_win.measure.checks.cross_check`), after the attacks.

    Args:
        best_known: The model's best-known norms over its stored gradient attacks, per attacked
            image in ``indices`` order (``folder, model_id, indices``); ``None`` when it has none.
    """

    refusable = True

    def __init__(self, best_known: Callable[[RunFolder, str, torch.Tensor], torch.Tensor | None]) -> None:
        super().__init__(CROSS_CHECK)
        self.best_known = best_known

    def run(self, context: CellContext) -> StepOutput:
        best = self.best_known(context.folder, context.identity.model_id, context.indices)
        if best is None:  # no gradient attack in the suite: nothing to cross-check
            return StepOutput()
        images, labels = context.attacked()
        device = context.device
        result = cross_check(context.trained.to(device).eval(), images.to(device), labels.to(device), best.to(device))
        return StepOutput(records=(check_records(result),))


def check_records(result: CheckResult) -> StepRecords:
    """A check's result as its record file (``check-<name>.csv``)."""
    row = dataclasses.asdict(result)
    return StepRecords(CHECK_RECORDS, {"check": row.pop("check")}, [row])


class AttackStep(Step):
    """One attack of the suite on the model's attacked images."""

    timing = "attack_seconds"
    refusable = True

    def __init__(self, attack: AttackSpec) -> None:
        self.attack = attack
        self.name = attack.name
        self.writes = ((ATTACK_RECORDS, attack.name),)

    def run(self, context: CellContext) -> StepOutput:
        instance = ATTACKS.create(self.attack.name, **self.attack.params)
        images, labels = context.attacked()
        results = instance(context.trained.to(context.device), images, labels, context.indices.tolist(),
                           progress=context.progress)
        rows = [result.record() for result in results]
        return StepOutput(records=(StepRecords(ATTACK_RECORDS, {"attack": self.name, "family": instance.family}, rows),),
                          cost=attack_cost(self.name, instance))


def attack_cost(name: str, attack: Attack) -> AttackCost:
    """The cost record of the attack's last call (passes and seconds it counted)."""
    stats = attack.last_call_stats
    if stats is None:
        raise ValueError(f"attack '{name}' has not been called yet, so it has no cost to record")
    return AttackCost(attack=name, n_attacked=stats.n_attacked, forward_passes=stats.forward_passes,
                      backward_passes=stats.backward_passes, seconds=stats.seconds)


class MeasureStep(Step):
    """A per-model measure (:class:`~robustbench_win.measure.base.Measure`) on the trained model, or on
    the untrained model of the same seed."""

    timing = "diagnostic_seconds"

    def __init__(self, measure: Measure) -> None:
        self.measure = measure
        self.name = measure.name
        self.writes = measure.writes
        self.needs_model = measure.trained

    def run(self, context: CellContext) -> StepOutput:
        if self.measure.trained:
            return self._measured(context.trained.to(context.device), context)
        # Built from its seed exactly as training builds it (windowed like the trained model); a
        # cell loaded from a weights file gets the same: the untrained model of its architecture
        # and seed. The random states are left as they were, so the steps after it do not change.
        with _rng_kept():
            return self._measured(initial_model(context.cell.spec, context.data).to(context.device), context)

    def _measured(self, model: nn.Module, context: CellContext) -> StepOutput:
        images, labels = context.attacked()
        rows = self.measure.compute(MeasureInput(model, images, labels, context.indices.tolist()))
        return StepOutput(records=tuple(StepRecords(kind, {kind.step: step}, part)
                                        for (kind, step), part in zip(self.writes, rows, strict=True)))


@contextmanager
def _rng_kept() -> Iterator[None]:
    """Leave the Python, NumPy and torch (CPU) random states as they were before the block."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(python_state)
    np.random.set_state(numpy_state)


def clean_result(trained: TrainedModel) -> CleanResult:
    """The clean record of a model evaluated on the whole test split."""
    correct = trained.test_correct
    if correct is None:
        raise ValueError("the model was not evaluated on the test split (obtain it with evaluate_test=True)")
    return CleanResult(status="ok", error=None, accuracy=float(correct.float().mean()), n_test=len(correct),
                       n_correct=int(correct.sum()), train_seconds=float(trained.metrics.get("train_seconds", 0.0)),
                       checkpoint=str(trained.checkpoint), n_params=trainable_parameters(trained.model))


def trainable_parameters(model: nn.Module) -> int:
    """Trainable parameters of a built model (as :func:`~robustbench_win.models.param_match.count_parameters`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
