"""The evaluation runner: kernel-size x window x seed matrix -> clean accuracy -> attacks -> report.

Each stage writes its result to the run folder atomically as soon as it finishes::

    OUT/suite.toml                      the resolved suite
    OUT/meta.json                       data set, software versions, device, timings
    OUT/runs/<model_id>/clean.json      clean accuracy (or the model's failure)
    OUT/runs/<model_id>/attack-<name>.csv       one row per attacked test image
    OUT/runs/<model_id>/attack-<name>.error.json an attack that crashed on this model

A stopped run resumes from those files: ``run`` on the same folder skips every finished
(model, attack) and rebuilds the same tables. Models come from the checkpoint store, so a
resumed run reloads instead of retraining.
"""

from __future__ import annotations

import json
import platform
import time
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from robustbench_win.attacks.result import RECORD_FIELDS, SampleResult
from robustbench_win.checkpoints import CheckpointStore, ModelSpec, obtain_model, prepare_data
from robustbench_win.datasets import ImageData, stratified_subset
from robustbench_win.registry import ATTACKS
from robustbench_win.report import build_report, write_atomic
from robustbench_win.suite import AttackSpec, SuiteConfig

ATTACK_SAMPLE_SEED = 1234  # fixed: every model of every suite run attacks the same images
MODEL_COLUMNS = ("model_id", "dataset", "model", "kernel_size", "window", "seed")
VERSIONED_PACKAGES = ("robustbench-win", "torch", "torchvision", "foolbox", "adversarial-robustness-toolbox", "numpy", "pandas", "scipy")


class RunFolderError(RuntimeError):
    """The output folder holds results of a different suite configuration."""


@dataclass(frozen=True)
class MatrixEntry:
    """One model of the matrix: kernel size, window and seed."""

    kernel_size: int
    window: str
    seed: int

    def model_id(self, model: str) -> str:
        return f"{model}_k{self.kernel_size}_{self.window}_s{self.seed}"


def matrix(config: SuiteConfig) -> list[MatrixEntry]:
    """Every (kernel size, window, seed) of the suite, in table order."""
    return [MatrixEntry(k, w, s) for k in config.kernel_sizes for w in config.windows for s in config.seeds]


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
) -> list[Path]:
    """Run (or resume) a suite into ``out_dir`` and build its report.

    Returns:
        The report files written (tables, figures, ``summary.md`` last).

    Raises:
        RunFolderError: ``out_dir`` already holds results of another configuration.
    """
    out_dir = Path(out_dir)
    started = time.perf_counter()
    _claim_folder(out_dir, config)
    torch_device = resolve_device(device or config.device)
    data = prepare_data(config.dataset, train_size=config.train_size, test_size=config.test_size, data_dir=data_dir, download=download)
    store = CheckpointStore(checkpoint_dir) if checkpoint_dir else CheckpointStore()
    meta = _load_meta(out_dir) | _describe(config, data, torch_device)
    write_json(out_dir / "meta.json", meta)
    indices = attack_indices(data, config.attack_samples)
    entries = matrix(config)
    with tqdm(entries, desc=f"suite {config.name}", unit="model", disable=not progress) as bar:
        for entry in bar:
            bar.set_postfix_str(entry.model_id(config.model))
            timings = _run_model(config, entry, data, indices, store, torch_device, out_dir, progress)
            meta["timings"]["models"].setdefault(entry.model_id(config.model), {}).update(timings)
            write_json(out_dir / "meta.json", meta)
    meta["timings"]["total_seconds"] = meta["timings"].get("total_seconds", 0.0) + time.perf_counter() - started
    write_json(out_dir / "meta.json", meta)
    return build_report(out_dir)


def attack_indices(data: ImageData, count: int) -> torch.Tensor:
    """The fixed, class-balanced test images every model is attacked on (paired comparisons)."""
    return stratified_subset(data.test_labels, min(count, len(data.test_labels)), ATTACK_SAMPLE_SEED)


def _run_model(
    config: SuiteConfig,
    entry: MatrixEntry,
    data: ImageData,
    indices: torch.Tensor,
    store: CheckpointStore,
    device: torch.device,
    out_dir: Path,
    progress: bool,
) -> dict[str, Any]:
    """Clean accuracy and every pending attack for one model; failures are recorded, not raised."""
    model_id = entry.model_id(config.model)
    folder = out_dir / "runs" / model_id
    identity = _identity(config, entry, model_id)
    pending = [a for a in config.attacks if not _attack_done(folder, a.name)]
    clean = _read_json(folder / "clean.json")
    if clean is not None and (clean.get("status") == "failed" or not pending):
        return {}  # finished earlier (or failed earlier: delete clean.json to retry)
    timings: dict[str, Any] = {}
    spec = ModelSpec(config.model, {"kernel_size": entry.kernel_size, "window": entry.window, **config.model_args},
                     config.dataset, config.train, seed=entry.seed, train_size=config.train_size)
    try:
        start = time.perf_counter()
        trained = obtain_model(spec, data, store, device=device, progress=progress, evaluate_test=clean is None)
        timings["train_seconds"] = 0.0 if trained.reused else time.perf_counter() - start - trained.test_seconds
        if clean is None:
            correct = trained.test_correct
            assert correct is not None  # asked for with evaluate_test
            timings["clean_seconds"] = trained.test_seconds
            clean = identity | {
                "status": "ok", "error": None, "accuracy": float(correct.float().mean()),
                "n_test": len(correct), "n_correct": int(correct.sum()),
                "train_seconds": float(trained.metrics.get("train_seconds", 0.0)), "checkpoint": str(trained.checkpoint),
            }
            write_json(folder / "clean.json", clean)
    except Exception as error:  # one broken model must not stop the matrix
        write_json(folder / "clean.json", identity | _failure(error) | {"n_test": 0, "n_correct": 0, "train_seconds": 0.0, "checkpoint": ""})
        return timings
    timings["attack_seconds"] = {}
    for attack in pending:
        start = time.perf_counter()
        _run_attack(attack, trained.model, data, indices, identity, folder, device, progress)
        timings["attack_seconds"][attack.name] = time.perf_counter() - start
    return timings


def _run_attack(
    attack: AttackSpec,
    model: torch.nn.Module,
    data: ImageData,
    indices: torch.Tensor,
    identity: dict[str, Any],
    folder: Path,
    device: torch.device,
    progress: bool,
) -> None:
    try:
        instance = ATTACKS.create(attack.name, **attack.params)
        images, labels = data.test_tensors(indices)
        results = instance(model.to(device), images, labels, indices.tolist(), progress=progress)
        write_csv(folder / f"attack-{attack.name}.csv", sample_frame(results, identity | {"attack": attack.name, "family": instance.family}))
        (folder / f"attack-{attack.name}.error.json").unlink(missing_ok=True)
    except Exception as error:  # recorded in the report; the other attacks still run
        write_json(folder / f"attack-{attack.name}.error.json", {"attack": attack.name} | _failure(error))


def sample_frame(results: list[SampleResult], identity: dict[str, Any]) -> pd.DataFrame:
    """Per-sample records with the model/attack identity columns in front."""
    records = [identity | r.record() for r in results]
    columns = [*MODEL_COLUMNS, "attack", "family", *RECORD_FIELDS]
    return pd.DataFrame.from_records(records, columns=columns)


def _identity(config: SuiteConfig, entry: MatrixEntry, model_id: str) -> dict[str, Any]:
    return {"model_id": model_id, "dataset": config.dataset, "model": config.model,
            "kernel_size": entry.kernel_size, "window": entry.window, "seed": entry.seed}


def _attack_done(folder: Path, name: str) -> bool:
    return (folder / f"attack-{name}.csv").is_file()


def _failure(error: BaseException) -> dict[str, Any]:
    summary = f"{type(error).__name__}: {error}"
    return {"status": "failed", "error": summary, "traceback": traceback.format_exc(limit=5), "accuracy": None}


def _claim_folder(out_dir: Path, config: SuiteConfig) -> None:
    """Write ``suite.toml``, or check that an existing one describes the same suite."""
    suite_file = out_dir / "suite.toml"
    text = config.to_toml()
    if suite_file.is_file() and suite_file.read_text() != text and (out_dir / "runs").is_dir():
        raise RunFolderError(
            f"{out_dir} holds results of a different suite configuration (see {suite_file}); "
            f"resume it with the same suite and --set options, or choose another --out folder"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(suite_file, text)


def _describe(config: SuiteConfig, data: ImageData, device: torch.device) -> dict[str, Any]:
    notes = [*config.notes, *data.notes, f"{config.attack_samples} test images attacked, the same ones for every model"]
    return {
        "suite_name": config.name, "dataset_name": data.display_name, "notes": notes,
        "versions": _versions(), "device": _device_name(device), "radii": list(config.radii),
    }


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


def _load_meta(out_dir: Path) -> dict[str, Any]:
    """The timings of earlier, resumed attempts; none when no per-model results exist yet
    (a copied or committed report folder must not add its old timings to a new run)."""
    has_runs = (out_dir / "runs").is_dir() and any((out_dir / "runs").iterdir())
    meta = (_read_json(out_dir / "meta.json") if has_runs else None) or {}
    meta.setdefault("timings", {}).setdefault("models", {})
    return meta


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically write ``data`` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Atomically write ``frame`` as CSV (floats at full precision, so tables rebuild exactly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, frame.to_csv(index=False, float_format="%.9g"))
