"""The evaluation runner: kernel-size x window x seed matrix -> clean accuracy -> attacks.

Each model of the matrix is one *cell*: train it or load it from the checkpoint store, measure
its clean accuracy on the whole test split, then run its sanity checks, every pending attack on
the same test images as every other model, and the per-model measures. Each of these is a step
(:mod:`robustbench_win.run.steps`) that runs itself on the model and returns its records;
:func:`run_cell` runs the pending ones, stores what they return, times them and records a crash
(:func:`run_step`). A cell writes each result through
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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from robustbench_win.atomic import WriteError, remove_temporaries
from robustbench_win.train.checkpoints import CheckpointStore, ModelSpec
from robustbench_win.data.datasets import ImageData, stratified_subset
from robustbench_win.attacks.families import gradient_families
from robustbench_win.measure.checks import CROSS_CHECK, PRE_ATTACK_CHECKS, REFUSE
from robustbench_win.run.executors import Task, WorkerSetup, default_threads, run_cells
from robustbench_win.run.folder_lock import hold_run_folder
from robustbench_win.run.steps import (
    AttackStep, Cell, CellContext, CheckStep, CrossCheckStep, MeasureStep, ObtainModel, Step, StepOutput,
)
from robustbench_win.models.param_match import DEFAULT_TOLERANCE, REFERENCE_KERNEL_SIZE, match_width
from robustbench_win.registry import ATTACKS
from robustbench_win.store import minimal_norms
from robustbench_win.store.records import ATTACK_RECORDS, CHECK_RECORDS, MEASURES, ModelIdentity
from robustbench_win.store.run_folder import RunFolder
from robustbench_win.suite import AttackSpec, SuiteConfig, weights_path
from robustbench_win.data.prepare import prepare_data
from robustbench_win.train.weights import load_weights

ATTACK_SAMPLE_SEED = 1234  # fixed: every model of every suite run attacks the same images
VERSIONED_PACKAGES = ("robustbench-win", "torch", "torchvision", "foolbox", "adversarial-robustness-toolbox", "numpy", "pandas", "scipy")


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
        remove_temporaries(folder.root)  # what a worker killed mid-write left; only this run writes here now
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
    """Every pending step of one model (:func:`cell_steps`), each stored as it finishes.

    A model that fails to train is recorded as failed (delete its ``clean.json`` to retry);
    a step that crashes is recorded and retried by the next run. A model a check refuses
    (:mod:`robustbench_win.measure.checks`) is not attacked; the other models still are.

    Raises:
        WriteError: A result could not be written.
    """
    context = CellContext(cell, data, indices, folder, device, progress)
    model_id = cell.identity.model_id
    clean = folder.read_clean(model_id)
    if clean is not None and clean["status"] == "failed":
        return
    pending = [step for step in cell_steps(attacks, checks_off) if not step.done(folder, model_id)]
    # The untrained model needs only the seed and the spec: an older run folder gains these
    # records on resume without retraining or reloading anything.
    for step in (s for s in pending if not s.needs_model):
        run_step(step, context)
    pending = [step for step in pending if step.needs_model]
    if clean is not None and not pending:
        return
    output = run_step(ObtainModel(store, evaluate_test=clean is None), context)
    if output is None or output.obtained is None:
        return  # recorded as failed
    context = dataclasses.replace(context, model=output.obtained.model)
    for step in pending:
        if step.refusable and refused(folder, model_id):
            continue  # its numbers would be meaningless; the check's record says why
        run_step(step, context)


def cell_steps(attacks: tuple[AttackSpec, ...], checks_off: tuple[str, ...] = ()) -> list[Step]:
    """Every step of a model but obtaining it, in running order: the sanity checks, the attacks, the
    cross-check (:data:`~robustbench_win.conventions.CHECK_NAMES`) and the per-model measures
    (:data:`~robustbench_win.store.records.MEASURES`; a measure of the untrained model runs before the
    model is obtained)."""
    checks: list[Step] = [CheckStep(name) for name in PRE_ATTACK_CHECKS if name not in checks_off]
    cross_check: list[Step] = [] if CROSS_CHECK in checks_off else [CrossCheckStep(best_known_norms)]
    return [*checks, *(AttackStep(attack) for attack in attacks), *cross_check, *(MeasureStep(m) for m in MEASURES)]


def run_step(step: Step, context: CellContext) -> StepOutput | None:
    """Run one step on one model: store what it returns, add its seconds to ``timings.json`` and
    record a crash (the other steps still run); ``None`` when it crashed.

    A :class:`~robustbench_win.atomic.WriteError` is raised on: the folder itself is broken.
    """
    folder, identity = context.folder, context.identity
    start = time.perf_counter()
    output: StepOutput | None = None
    try:
        output = step.run(context)
        seconds = time.perf_counter() - start
        if output.cost is not None:
            folder.write_cost(identity, output.cost)  # first: a stored step has its cost
        if output.clean is not None:
            folder.write_clean(identity, output.clean)
        for records in output.records:
            folder.write_step(records.kind, identity, records.step, records.rows)
    except WriteError:
        raise
    except Exception as error:  # recorded in the report; the other steps still run
        seconds, output = time.perf_counter() - start, None
        step.failed(folder, identity, error)
    folder.add_timings(identity.model_id, step.timings(seconds, output))
    return output


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
