"""The evaluation runner: kernel-size x window x seed matrix -> clean accuracy -> attacks.

Each model of the matrix is one *cell*: train it or load it from the checkpoint store, measure
its clean accuracy on the whole test split, then run every pending attack on the same test
images as every other model. A cell writes each result through
:class:`~robustbench_win.store.run_folder.RunFolder` as soon as it finishes, and only under its own
``runs/<model_id>/``, so cells may run in any order, or side by side. A stopped run resumes
from those files: nothing finished is redone, and trained models are reloaded. The report is
built from the folder afterwards (:func:`robustbench_win.report.build_report`).

A model that fails to train and an attack that crashes are recorded, and the rest of the
matrix still runs; a result that cannot be written (disk full, read-only folder) stops the run,
since every later write would fail too.

Cells run one after another in this process, in local worker processes (``jobs``) or as Ray
tasks (``executor="ray"``), see :mod:`robustbench_win.run.executors`; every way writes the same
files. One run at a time holds a run folder (:mod:`robustbench_win.run.folder_lock`).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from robustbench_win.atomic import WriteError
from robustbench_win.attacks.base import Attack
from robustbench_win.train.checkpoints import CheckpointStore, ModelSpec
from robustbench_win.data.datasets import ImageData, stratified_subset
from robustbench_win.attacks.families import gradient_families
from robustbench_win.measure.checks import (
    CROSS_CHECK, REFUSE, CheckResult, cross_check, pre_attack_checks,
)
from robustbench_win.measure.diagnostics import (
    DIAGNOSTICS, LEAKAGE_DIAGNOSTIC, LEAKAGE_INIT_MEASURE, LEAKAGE_MEASURE, SHIFT_GRID_MEASURE, SHIFT_MEASURE, Diagnostic,
    kernel_example_rows, leakage_rows, shift_rows,
)
from robustbench_win.run.executors import Task, WorkerSetup, default_threads, run_cells
from robustbench_win.run.folder_lock import hold_run_folder
from robustbench_win.models.param_match import DEFAULT_TOLERANCE, REFERENCE_KERNEL_SIZE, match_width
from robustbench_win.registry import ATTACKS
from robustbench_win.store.records import (
    ATTACK_RECORDS,
    CHECK_RECORDS,
    KERNEL_RECORDS,
    LEAKAGE_RECORDS,
    RECORD_KINDS,
    SHIFT_ACCURACY_RECORDS,
    SHIFT_RECORDS,
    AttackCost,
    CleanResult,
    ModelIdentity,
    RecordKind,
    failure_fields,
)
from robustbench_win.store import minimal_norms
from robustbench_win.store.run_folder import RunFolder
from robustbench_win.suite import CHECK_NAMES, AttackSpec, SuiteConfig, weights_path
from robustbench_win.data.prepare import prepare_data
from robustbench_win.train.obtain import TrainedModel, initial_model, obtain_model
from robustbench_win.train.weights import load_weights

ATTACK_SAMPLE_SEED = 1234  # fixed: every model of every suite run attacks the same images
VERSIONED_PACKAGES = ("robustbench-win", "torch", "torchvision", "foolbox", "adversarial-robustness-toolbox", "numpy", "pandas", "scipy")


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


def cells(config: SuiteConfig, *, in_channels: int | None = None, num_classes: int | None = None) -> list[Cell]:
    """Every (kernel size, window, seed) of the suite, in table order.

    Args:
        config: The suite.
        in_channels: Image channels of the data; needed only with ``model.param_match``.
        num_classes: Classes of the data; needed only with ``model.param_match``.

    Raises:
        ValueError: ``model.param_match`` without the data's shape, or no width matches.
    """
    matrix = []
    for kernel_size in config.kernel_sizes:
        for window in config.windows:
            kwargs = model_kwargs(config, kernel_size, window, in_channels=in_channels, num_classes=num_classes)
            for seed in config.seeds:
                spec = ModelSpec(config.model, kwargs, config.dataset, config.train, seed=seed,
                                 train_size=config.train_size)
                identity = ModelIdentity(spec.slug(), config.dataset, config.model, kernel_size, window, seed)
                weights = weights_path(config, kernel_size=kernel_size, window=window, seed=seed)
                # Absolute: a worker may run in another folder (or on another node).
                matrix.append(Cell(identity, spec, weights.resolve() if weights is not None else None))
    return matrix


def model_kwargs(config: SuiteConfig, kernel_size: int, window: str, *, in_channels: int | None,
                 num_classes: int | None) -> dict[str, Any]:
    """The factory arguments of one configuration; with ``model.param_match`` the width (and stem
    width) scaled by :func:`~robustbench_win.models.param_match.match_width` so that the model has
    the parameter count of the same model at k = 3."""
    kwargs = {"kernel_size": kernel_size, "window": window, **config.model_args}
    if not config.param_match:
        return kwargs
    if in_channels is None or num_classes is None:
        raise ValueError("model.param_match needs the data's in_channels and num_classes to count parameters")
    shape = {"in_channels": in_channels, "num_classes": num_classes}
    base = {k: v for k, v in kwargs.items() if k != "kernel_size"} | shape
    matched = match_width(config.model, model_kwargs=base, kernel_size=kernel_size).kwargs
    return {k: v for k, v in matched.items() if k not in shape}


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class DataRequest:
    """Which data a suite uses; every worker loads (and caches) it from this alone."""

    dataset: str
    train_size: int | None
    test_size: int | None
    data_dir: Path | None
    download: bool
    dataset_args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, config: SuiteConfig, data_dir: Path | None, download: bool) -> DataRequest:
        return cls(config.dataset, config.train_size, config.test_size, data_dir, download, dict(config.dataset_args))

    def key(self) -> str:
        return json.dumps([self.dataset, self.train_size, self.test_size, str(self.data_dir), self.download,
                           self.dataset_args], sort_keys=True, default=str)


_loaded_data: dict[str, ImageData] = {}  # per process: a worker loads its data once for all its cells


def load_data(request: DataRequest) -> ImageData:
    """The data of ``request``, loaded once per process."""
    key = request.key()
    if key not in _loaded_data:
        _loaded_data.clear()  # one suite's data at a time
        _loaded_data[key] = prepare_data(request.dataset, train_size=request.train_size, test_size=request.test_size,
                                         data_dir=request.data_dir, download=request.download,
                                         dataset_args=request.dataset_args)
    return _loaded_data[key]


@dataclass(frozen=True)
class CellTask:
    """Everything a worker needs to run one cell, picklable: it loads the data itself."""

    cell: Cell
    attacks: tuple[AttackSpec, ...]
    data: DataRequest
    indices: tuple[int, ...]
    run_folder: Path
    checkpoint_dir: Path | None
    device: str
    progress: bool
    checks_off: tuple[str, ...] = ()


def execute_cell(task: CellTask) -> str:
    """Run one cell from its :class:`CellTask` (in this process or a worker); return its model id."""
    store = CheckpointStore(task.checkpoint_dir) if task.checkpoint_dir else CheckpointStore()
    run_cell(task.cell, task.attacks, load_data(task.data), torch.tensor(task.indices, dtype=torch.long), store,
             torch.device(task.device), RunFolder(task.run_folder), task.progress, checks_off=task.checks_off)
    return task.cell.identity.model_id


def run_suite(
    config: SuiteConfig,
    out_dir: Path,
    *,
    data_dir: Path | None = None,
    download: bool = False,
    checkpoint_dir: Path | None = None,
    device: str | None = None,
    progress: bool = True,
    jobs: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
    threads: int | None = None,
    plugins: Sequence[str] = (),
) -> RunFolder:
    """Run (or resume) a suite: store every model's results in ``out_dir``.

    Args:
        config: The suite.
        out_dir: The run folder (created; resumed when it holds results of the same suite).
        data_dir: Where torchvision data sets live.
        download: Allow downloading them.
        checkpoint_dir: The checkpoint store (default: the user cache).
        device: Overrides the suite's device.
        progress: Show progress bars.
        jobs: Local worker processes (1: in this process).
        executor: ``"local"`` or ``"ray"``.
        ray_address: The Ray cluster to use (default: start a local Ray instance).
        threads: torch threads per worker (default: this process's count shared out among ``jobs``).
        plugins: Plugin modules or files that every worker must import.

    Returns:
        The run folder; build its report with :func:`robustbench_win.report.build_report`.

    Raises:
        RunFolderError: ``out_dir`` already holds results of another configuration.
        RunFolderBusyError: Another run is writing into ``out_dir``.
        WriteError: A result could not be written; every result finished before is kept.
        ExecutorError: A worker died; every finished cell is kept.
    """
    started = time.perf_counter()
    folder = RunFolder(out_dir)
    folder.claim(config.to_toml())  # first: it says clearly why a folder cannot be written
    with hold_run_folder(folder.root):
        torch_device = resolve_device(device or config.device)
        request = DataRequest.of(config, data_dir, download)
        data = load_data(request)
        check_weights(config, data)
        in_process = jobs == 1 and executor == "local"
        setup = WorkerSetup(run_folder=folder.root.resolve(), plugins=tuple(_absolute(p) for p in plugins),
                            threads=threads or (torch.get_num_threads() if in_process else default_threads(jobs)),
                            cuda=torch_device.type == "cuda")
        meta = folder.start(run_facts(config, data, torch_device, setup.threads) | {"jobs": jobs, "executor": executor})
        indices = tuple(attack_indices(data, config.attack_samples).tolist())
        tasks = [Task(cell.identity.model_id, CellTask(cell, config.attacks, request, indices, setup.run_folder,
                                                       checkpoint_dir, str(torch_device), progress and in_process,
                                                       config.checks_off))
                 for cell in cells(config, in_channels=data.in_channels, num_classes=data.num_classes)]
        run_cells(execute_cell, tasks, setup, jobs=jobs, executor=executor, ray_address=ray_address,
                  progress=progress, desc=f"suite {config.name}")
        folder.finish(meta, time.perf_counter() - started)
    return folder


def _absolute(plugin: str) -> str:
    """A plugin file as an absolute path (workers may start elsewhere); module names unchanged."""
    return str(Path(plugin).resolve()) if plugin.endswith(".py") else plugin


def check_weights(config: SuiteConfig, data: ImageData) -> None:
    """Load every weights file a suite names into its model, so a mismatch stops the run before it starts.

    Raises:
        WeightsError: A file is unreadable or does not fit its model (the message says how).
    """
    if config.weights is None:
        return
    for cell in cells(config, in_channels=data.in_channels, num_classes=data.num_classes):
        load_weights(cell.spec, data, cell.weights, evaluate_test=False)


def attack_indices(data: ImageData, count: int) -> torch.Tensor:
    """The fixed, class-balanced test images every model is attacked on (paired comparisons)."""
    return stratified_subset(data.test_labels, min(count, len(data.test_labels)), ATTACK_SAMPLE_SEED)


def run_cell(
    cell: Cell,
    attacks: tuple[AttackSpec, ...],
    data: ImageData,
    indices: torch.Tensor,
    store: CheckpointStore,
    device: torch.device,
    folder: RunFolder,
    progress: bool,
    *,
    checks_off: tuple[str, ...] = (),
) -> None:
    """Clean accuracy, the sanity checks and every pending attack of one model, each stored as it finishes.

    A model that fails to train is recorded as failed (delete its ``clean.json`` to retry);
    an attack that crashes is recorded and retried by the next run. A model a check refuses
    (:mod:`robustbench_win.measure.checks`) is not attacked; the other models still are.

    Raises:
        WriteError: A result could not be written.
    """
    model_id = cell.identity.model_id
    pending = [a for a in attacks if not folder.step_done(ATTACK_RECORDS, model_id, a.name)]
    diagnostics = pending_diagnostics(folder, model_id)
    checks = [name for name in CHECK_NAMES if name not in checks_off
              and not folder.step_done(CHECK_RECORDS, model_id, name)]
    clean = folder.read_clean(model_id)
    if clean is not None and clean["status"] == "failed":
        return
    # The untrained model needs only the seed and the spec: an older run folder gains these
    # records on resume without retraining or reloading anything.
    for diagnostic in (d for d in diagnostics if not d.trained):
        start = time.perf_counter()
        _run_init_diagnostic(cell, data, folder, device)
        folder.add_timings(model_id, {"diagnostic_seconds": {diagnostic.name: time.perf_counter() - start}})
    diagnostics = [d for d in diagnostics if d.trained]
    if clean is not None and not (pending or diagnostics or checks):
        return
    try:
        start = time.perf_counter()
        trained = _obtain(cell, data, store, device, progress, evaluate_test=clean is None)
        timings = {} if trained.reused else {"train_seconds": time.perf_counter() - start - trained.test_seconds}
        if clean is None:
            timings["clean_seconds"] = trained.test_seconds
            folder.write_clean(cell.identity, clean_result(trained))
    except WriteError:
        raise
    except Exception as error:  # one broken model must not stop the matrix
        failure = failure_fields(error)
        folder.write_clean(cell.identity, CleanResult("failed", failure["error"], None, 0, 0, 0.0, ""), failure["traceback"])
        return
    folder.add_timings(model_id, timings)
    images, labels = data.test_tensors(indices)
    _run_checks(trained.model.to(device).eval(), images.to(device), labels.to(device), folder.read_clean(model_id) or {},
                data.num_classes, cell.identity, folder, set(checks) - {CROSS_CHECK})
    if refused(folder, model_id):
        pending = []  # its numbers would be meaningless; the check's record says why
    for attack in pending:
        start = time.perf_counter()
        _run_attack(attack, trained.model, data, indices, cell.identity, folder, device, progress)
        folder.add_timings(model_id, {"attack_seconds": {attack.name: time.perf_counter() - start}})
    if CROSS_CHECK in checks and not refused(folder, model_id):
        with _failure_recorded(folder, CHECK_RECORDS, model_id, CROSS_CHECK):
            best = best_known_norms(folder, model_id, indices)
            if best is not None:  # no gradient attack in the suite: nothing to cross-check
                _store_checks(folder, cell.identity, [cross_check(trained.model.to(device).eval(), images.to(device),
                                                                  labels.to(device), best.to(device))])
    for diagnostic in diagnostics:
        start = time.perf_counter()
        _run_diagnostic(diagnostic, trained.model, data, indices, cell.identity, folder, device)
        folder.add_timings(model_id, {"diagnostic_seconds": {diagnostic.name: time.perf_counter() - start}})


def _run_checks(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, clean: dict[str, Any],
                num_classes: int, identity: ModelIdentity, folder: RunFolder, wanted: set[str]) -> None:
    """The pending checks before the attacks (:func:`~robustbench_win.measure.checks.pre_attack_checks`), stored."""
    if not wanted:
        return
    with _failure_recorded(folder, CHECK_RECORDS, identity.model_id, "pre-attack"):
        _store_checks(folder, identity, pre_attack_checks(
            model, images, labels, n_correct=int(clean.get("n_correct") or 0), n_test=int(clean.get("n_test") or 0),
            num_classes=num_classes, enabled=wanted.__contains__))


def _store_checks(folder: RunFolder, identity: ModelIdentity, results: list[CheckResult]) -> None:
    """One ``check-<name>.csv`` per result, and its seconds in ``timings.json``."""
    for result in results:
        row = dataclasses.asdict(result)
        folder.write_step(CHECK_RECORDS, identity, {"check": row.pop("check")}, [row])
        folder.add_timings(identity.model_id, {"check_seconds": {result.check: result.seconds}})


def refused(folder: RunFolder, model_id: str) -> bool:
    """Whether a stored check refused the model (it is then not attacked)."""
    for path in sorted(folder.model_dir(model_id).glob(f"{CHECK_RECORDS.prefix}-*.csv")):
        try:
            frame = CHECK_RECORDS.schema.read_csv(path)
        except ValueError:
            continue
        if (frame["status"] == REFUSE).any():
            return True
    return False


def best_known_norms(folder: RunFolder, model_id: str, indices: torch.Tensor) -> torch.Tensor | None:
    """Per attacked image (in ``indices`` order), the smallest verified L2 norm over the model's stored
    gradient attacks (:func:`~robustbench_win.attacks.families.gradient_families`), +inf where all failed, NaN
    where it was not attacked; ``None`` when no such attack is stored."""
    paths = sorted(folder.model_dir(model_id).glob(f"{ATTACK_RECORDS.prefix}-*.csv"))
    rows = pd.concat([ATTACK_RECORDS.schema.read_csv(path) for path in paths]) if paths else None
    attacks = [] if rows is None else minimal_norms.minimal_norm_attacks(rows, gradient_families())
    if not attacks:
        return None
    best = minimal_norms.best_known_norms(rows, attacks=attacks, misclassified=float("nan")).set_index("index")["norm"]
    return torch.tensor([float(best.get(i, float("nan"))) for i in indices.tolist()], dtype=torch.float32)


def pending_diagnostics(folder: RunFolder, model_id: str) -> list[Diagnostic]:
    """The diagnostics (:data:`~robustbench_win.measure.diagnostics.DIAGNOSTICS`) whose records are not all stored."""
    kinds = {kind.name: kind for kind in RECORD_KINDS}
    return [d for d in DIAGNOSTICS if not all(folder.step_done(kinds[name], model_id, step) for name, step in d.kinds)]


def _run_init_diagnostic(cell: Cell, data: ImageData, folder: RunFolder, device: torch.device) -> None:
    """Spectral leakage of the cell's untrained model: built from its seed exactly as training builds it
    (windowed like the trained model). A cell loaded from a weights file gets the same: the untrained
    model of its architecture and seed, the null its layers are read against."""
    with _failure_recorded(folder, LEAKAGE_RECORDS, cell.identity.model_id, LEAKAGE_INIT_MEASURE), _rng_kept():
        model = initial_model(cell.spec, data).to(device)
        folder.write_step(LEAKAGE_RECORDS, cell.identity, {"measure": LEAKAGE_INIT_MEASURE}, leakage_rows(model))


@contextmanager
def _rng_kept() -> Iterator[None]:
    """Leave the Python, NumPy and torch (CPU) random states as they were before the block."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(python_state)
    np.random.set_state(numpy_state)


def _run_diagnostic(
    diagnostic: Diagnostic,
    model: torch.nn.Module,
    data: ImageData,
    indices: torch.Tensor,
    identity: ModelIdentity,
    folder: RunFolder,
    device: torch.device,
) -> None:
    """Spectral leakage (from the weights) or shift consistency (on the attacked images) of one model."""
    first_kind, first_step = (LEAKAGE_RECORDS, LEAKAGE_MEASURE) if diagnostic is LEAKAGE_DIAGNOSTIC else (
        SHIFT_RECORDS, SHIFT_MEASURE)
    with _failure_recorded(folder, first_kind, identity.model_id, first_step):
        model = model.to(device)
        if diagnostic is LEAKAGE_DIAGNOSTIC:
            folder.write_step(LEAKAGE_RECORDS, identity, {"measure": LEAKAGE_MEASURE}, leakage_rows(model))
            folder.write_step(KERNEL_RECORDS, identity, {"measure": LEAKAGE_MEASURE}, kernel_example_rows(model))
        else:
            images, labels = data.test_tensors(indices)
            samples, accuracies = shift_rows(model, images, labels, indices.tolist())
            folder.write_step(SHIFT_RECORDS, identity, {"measure": SHIFT_MEASURE}, samples)
            folder.write_step(SHIFT_ACCURACY_RECORDS, identity, {"measure": SHIFT_GRID_MEASURE}, accuracies)


def _obtain(cell: Cell, data: ImageData, store: CheckpointStore, device: torch.device, progress: bool, *,
            evaluate_test: bool) -> TrainedModel:
    """The cell's model: loaded from its weights file when the suite names one, else trained or reused."""
    if cell.weights is not None:
        return load_weights(cell.spec, data, cell.weights, device=device, evaluate_test=evaluate_test)
    return obtain_model(cell.spec, data, store, device=device, progress=progress, evaluate_test=evaluate_test)


def clean_result(trained: TrainedModel) -> CleanResult:
    """The clean record of a model evaluated on the whole test split."""
    correct = trained.test_correct
    if correct is None:
        raise ValueError("the model was not evaluated on the test split (obtain it with evaluate_test=True)")
    return CleanResult(status="ok", error=None, accuracy=float(correct.float().mean()), n_test=len(correct),
                       n_correct=int(correct.sum()), train_seconds=float(trained.metrics.get("train_seconds", 0.0)),
                       checkpoint=str(trained.checkpoint), n_params=trainable_parameters(trained.model))


def trainable_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters of a built model (as :func:`~robustbench_win.models.param_match.count_parameters`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _run_attack(
    attack: AttackSpec,
    model: torch.nn.Module,
    data: ImageData,
    indices: torch.Tensor,
    identity: ModelIdentity,
    folder: RunFolder,
    device: torch.device,
    progress: bool,
) -> None:
    with _failure_recorded(folder, ATTACK_RECORDS, identity.model_id, attack.name):
        instance = ATTACKS.create(attack.name, **attack.params)
        images, labels = data.test_tensors(indices)
        results = instance(model.to(device), images, labels, indices.tolist(), progress=progress)
        folder.write_cost(identity, attack_cost(attack.name, instance))  # first: a stored step has its cost
        folder.write_step(ATTACK_RECORDS, identity, {"attack": attack.name, "family": instance.family},
                          (result.record() for result in results))


@contextmanager
def _failure_recorded(folder: RunFolder, kind: RecordKind, model_id: str, step: str) -> Iterator[None]:
    """Record an exception of the block as the failure of ``step``, so that the other steps still run.

    A :class:`~robustbench_win.atomic.WriteError` is raised on: the folder itself is broken.
    """
    try:
        yield
    except WriteError:
        raise
    except Exception as error:  # recorded in the report; the other steps still run
        folder.write_step_error(kind, model_id, step, error)


def attack_cost(name: str, attack: Attack) -> AttackCost:
    """The cost record of the attack's last call (passes and seconds it counted)."""
    stats = attack.last_call_stats
    if stats is None:
        raise ValueError(f"attack '{name}' has not been called yet, so it has no cost to record")
    return AttackCost(attack=name, n_attacked=stats.n_attacked, forward_passes=stats.forward_passes,
                      backward_passes=stats.backward_passes, seconds=stats.seconds)


def run_facts(config: SuiteConfig, data: ImageData, device: torch.device, threads: int | None = None) -> dict[str, Any]:
    """What ``meta.json`` says about a run: names, notes and descriptions from the objects themselves."""
    notes = [*config.notes, *data.notes, attacked_note(config.attack_samples, len(data.test_labels))]
    if config.checks_off:
        notes.append(f"sanity checks switched off in the suite's [checks]: {', '.join(config.checks_off)}; "
                     f"the robustness numbers of its models were not checked for them")
    if config.param_match:
        notes.append(f"parameter-matched: each model's width is scaled so that its parameter count is within "
                     f"{DEFAULT_TOLERANCE:.0%} of the same model's at k = {REFERENCE_KERNEL_SIZE} (n_params in the "
                     f"clean-accuracy table)")
    return {
        "suite_name": config.name, "dataset_name": data.display_name, "notes": notes,
        "attacks": attack_info(config.attacks), "versions": _versions(), "device": _device_name(device, threads),
        "threads": threads or torch.get_num_threads(), "radii": list(config.radii),
        "checks_off": list(config.checks_off),
    }


def attacked_note(requested: int, available: int) -> str:
    """What the report says about the attacked images: how many, and whether ``attack_samples`` was capped."""
    if requested <= available:
        return f"{requested} test images attacked, the same ones for every model"
    return (f"all {available} test images attacked, the same ones for every model (attack_samples = {requested} "
            f"was capped to the {available} images of the test split)")


def attack_info(attacks: tuple[AttackSpec, ...]) -> dict[str, dict[str, Any]]:
    """Each attack's family, parameters and description, as the attack object gives them."""
    info = {}
    for spec in attacks:
        attack = ATTACKS.create(spec.name, **spec.params)
        info[spec.name] = {"family": attack.family, "params": attack.params(), "description": attack.describe()}
    return info


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _device_name(device: torch.device, threads: int | None = None) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    count = threads or torch.get_num_threads()
    return f"cpu ({platform.processor() or platform.machine()}, {count} thread{'s' if count != 1 else ''})"
