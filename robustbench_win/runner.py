"""The evaluation runner: kernel-size x window x seed matrix -> clean accuracy -> attacks.

Each model of the matrix is one *cell*: train it or load it from the checkpoint store, measure
its clean accuracy on the whole test split, then run every pending attack on the same test
images as every other model. A cell writes each result through
:class:`~robustbench_win.store.RunFolder` as soon as it finishes, and only under its own
``runs/<model_id>/``, so cells may run in any order, or side by side. A stopped run resumes
from those files: nothing finished is redone, and trained models are reloaded. The report is
built from the folder afterwards (:func:`robustbench_win.report.build_report`).

A model that fails to train and an attack that crashes are recorded, and the rest of the
matrix still runs; a result that cannot be written (disk full, read-only folder) stops the run,
since every later write would fail too.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from robustbench_win.atomic import WriteError
from robustbench_win.checkpoints import CheckpointStore, ModelSpec
from robustbench_win.datasets import ImageData, stratified_subset
from robustbench_win.diagnostics import (
    DIAGNOSTICS, LEAKAGE_DIAGNOSTIC, LEAKAGE_MEASURE, SHIFT_GRID_MEASURE, SHIFT_MEASURE, Diagnostic,
    kernel_example_rows, leakage_rows, shift_rows,
)
from robustbench_win.registry import ATTACKS
from robustbench_win.models.param_match import DEFAULT_TOLERANCE, REFERENCE_KERNEL_SIZE, match_width
from robustbench_win.store import (
    ATTACK_RECORDS, KERNEL_RECORDS, LEAKAGE_RECORDS, RECORD_KINDS, SHIFT_ACCURACY_RECORDS, SHIFT_RECORDS,
    CleanResult, ModelIdentity, RunFolder, failure_fields,
)
from robustbench_win.suite import AttackSpec, SuiteConfig
from robustbench_win.training import TrainedModel, obtain_model, prepare_data

ATTACK_SAMPLE_SEED = 1234  # fixed: every model of every suite run attacks the same images
VERSIONED_PACKAGES = ("robustbench-win", "torch", "torchvision", "foolbox", "adversarial-robustness-toolbox", "numpy", "pandas", "scipy")


@dataclass(frozen=True)
class Cell:
    """One model of the matrix: how its records are labelled and what determines its weights."""

    identity: ModelIdentity
    spec: ModelSpec


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
                matrix.append(Cell(identity, spec))
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


def run_suite(
    config: SuiteConfig,
    out_dir: Path,
    *,
    data_dir: Path | None = None,
    download: bool = False,
    checkpoint_dir: Path | None = None,
    device: str | None = None,
    progress: bool = True,
) -> RunFolder:
    """Run (or resume) a suite: store every model's results in ``out_dir``.

    Returns:
        The run folder; build its report with :func:`robustbench_win.report.build_report`.

    Raises:
        RunFolderError: ``out_dir`` already holds results of another configuration.
        WriteError: A result could not be written; every result finished before is kept.
    """
    started = time.perf_counter()
    folder = RunFolder(out_dir)
    folder.claim(config.to_toml())
    torch_device = resolve_device(device or config.device)
    data = prepare_data(config.dataset, train_size=config.train_size, test_size=config.test_size,
                        data_dir=data_dir, download=download, dataset_args=config.dataset_args)
    store = CheckpointStore(checkpoint_dir) if checkpoint_dir else CheckpointStore()
    meta = folder.start(run_facts(config, data, torch_device))
    indices = attack_indices(data, config.attack_samples)
    matrix = cells(config, in_channels=data.in_channels, num_classes=data.num_classes)
    with tqdm(matrix, desc=f"suite {config.name}", unit="model", disable=not progress) as bar:
        for cell in bar:
            bar.set_postfix_str(cell.identity.model_id)
            run_cell(cell, config.attacks, data, indices, store, torch_device, folder, progress)
    folder.finish(meta, time.perf_counter() - started)
    return folder


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
) -> None:
    """Clean accuracy and every pending attack of one model, each stored as it finishes.

    A model that fails to train is recorded as failed (delete its ``clean.json`` to retry);
    an attack that crashes is recorded and retried by the next run.

    Raises:
        WriteError: A result could not be written.
    """
    model_id = cell.identity.model_id
    pending = [a for a in attacks if not folder.step_done(ATTACK_RECORDS, model_id, a.name)]
    diagnostics = pending_diagnostics(folder, model_id)
    clean = folder.read_clean(model_id)
    if clean is not None and (clean["status"] == "failed" or not (pending or diagnostics)):
        return
    try:
        start = time.perf_counter()
        trained = obtain_model(cell.spec, data, store, device=device, progress=progress, evaluate_test=clean is None)
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
    for attack in pending:
        start = time.perf_counter()
        _run_attack(attack, trained.model, data, indices, cell.identity, folder, device, progress)
        folder.add_timings(model_id, {"attack_seconds": {attack.name: time.perf_counter() - start}})
    for diagnostic in diagnostics:
        start = time.perf_counter()
        _run_diagnostic(diagnostic, trained.model, data, indices, cell.identity, folder, device)
        folder.add_timings(model_id, {"diagnostic_seconds": {diagnostic.name: time.perf_counter() - start}})


def pending_diagnostics(folder: RunFolder, model_id: str) -> list[Diagnostic]:
    """The diagnostics (:data:`~robustbench_win.diagnostics.DIAGNOSTICS`) whose records are not all stored."""
    kinds = {kind.name: kind for kind in RECORD_KINDS}
    return [d for d in DIAGNOSTICS if not all(folder.step_done(kinds[name], model_id, step) for name, step in d.kinds)]


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
    try:
        model = model.to(device)
        if diagnostic is LEAKAGE_DIAGNOSTIC:
            folder.write_step(LEAKAGE_RECORDS, identity, {"measure": LEAKAGE_MEASURE}, leakage_rows(model))
            folder.write_step(KERNEL_RECORDS, identity, {"measure": LEAKAGE_MEASURE}, kernel_example_rows(model))
        else:
            images, labels = data.test_tensors(indices)
            samples, accuracies = shift_rows(model, images, labels, indices.tolist())
            folder.write_step(SHIFT_RECORDS, identity, {"measure": SHIFT_MEASURE}, samples)
            folder.write_step(SHIFT_ACCURACY_RECORDS, identity, {"measure": SHIFT_GRID_MEASURE}, accuracies)
    except WriteError:
        raise
    except Exception as error:  # recorded in the report; the other steps still run
        folder.write_step_error(first_kind, identity.model_id, first_step, error)


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
    try:
        instance = ATTACKS.create(attack.name, **attack.params)
        images, labels = data.test_tensors(indices)
        results = instance(model.to(device), images, labels, indices.tolist(), progress=progress)
        folder.write_step(ATTACK_RECORDS, identity, {"attack": attack.name, "family": instance.family},
                          (result.record() for result in results))
    except WriteError:
        raise
    except Exception as error:  # recorded in the report; the other attacks still run
        folder.write_step_error(ATTACK_RECORDS, identity.model_id, attack.name, error)


def run_facts(config: SuiteConfig, data: ImageData, device: torch.device) -> dict[str, Any]:
    """What ``meta.json`` says about a run: names, notes and descriptions from the objects themselves."""
    notes = [*config.notes, *data.notes, f"{config.attack_samples} test images attacked, the same ones for every model"]
    if config.param_match:
        notes.append(f"parameter-matched: each model's width is scaled so that its parameter count is within "
                     f"{DEFAULT_TOLERANCE:.0%} of the same model's at k = {REFERENCE_KERNEL_SIZE} (n_params in the "
                     f"clean-accuracy table)")
    return {
        "suite_name": config.name, "dataset_name": data.display_name, "notes": notes,
        "attacks": attack_info(config.attacks), "versions": _versions(), "device": _device_name(device),
        "threads": torch.get_num_threads(), "radii": list(config.radii),
    }


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


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
