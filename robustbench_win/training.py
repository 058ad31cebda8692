"""Training and evaluation of classifiers on in-memory :class:`ImageData`, and
:func:`obtain_model`: a trained model from the checkpoint store, or trained now and stored.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from robustbench_win.batches import CROP_PADDING, BatchSource, crop_and_flip, draw_crops
from robustbench_win.checkpoints import CheckpointStore, ModelSpec, build_model
from robustbench_win.datasets import ImageData, load_dataset, subsample, to_float
from robustbench_win.speed import (
    SPEED_OPTIONS,
    Accelerator,
    SpeedSettings,
    Toggle,
    accelerated,
    check_toggle,
    resolve_speed_settings,
)

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Every training hyper-parameter, in one place (defaults: the authors' code, 150 epochs).

    Attributes:
        epochs: Passes over the training split.
        batch_size: Images per optimiser step.
        lr: SGD learning rate at the start.
        momentum: SGD momentum.
        weight_decay: L2 penalty (SGD ``weight_decay``).
        milestones: Epochs after which the learning rate is multiplied by ``lr_gamma``.
        lr_gamma: Learning-rate factor at each milestone.
        augment: Random crop (pad 4) + horizontal flip; ``None``: the data set's default.
        precision: ``"fp32"``, or ``"bf16"`` autocast for the forward pass (training only;
            the weights, the optimiser and every attack stay fp32).
        channels_last: Channels-last memory format for model and batches.
        data_on_device: Hold the uint8 training split on the training device and build
            (crop, flip) the batches there.
        compile: Run the training steps through ``torch.compile``.

    The last three are speed options (``True``, ``False`` or ``"auto"``: on only where they
    help; rules and repeatability in :mod:`robustbench_win.speed`). They do not change what is
    computed, so they are not part of :meth:`as_dict` and hence not of a checkpoint's key.
    """

    epochs: int = 150
    batch_size: int = 32  # images
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-3
    milestones: tuple[int, ...] = (75, 120)  # epochs
    lr_gamma: float = 0.1
    augment: bool | None = None
    precision: Precision = "fp32"
    channels_last: Toggle = "auto"
    data_on_device: Toggle = "auto"
    compile: Toggle = "auto"

    def __post_init__(self) -> None:
        _require(isinstance(self.epochs, int) and self.epochs >= 0, f"epochs must be an integer >= 0, got {self.epochs!r}")
        _require(isinstance(self.batch_size, int) and self.batch_size >= 1, f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        _require(self.lr > 0, f"lr must be positive, got {self.lr}")
        _require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        _require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _require(self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in SPEED_OPTIONS:
            check_toggle(name, getattr(self, name))
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))

    def as_dict(self) -> dict[str, Any]:
        """What determines the trained weights, as plain types (lists for tuples), for checkpoint keys.

        The speed options are left out: they change the weights by rounding noise at most.
        """
        values = {name: value for name, value in asdict(self).items() if name not in SPEED_OPTIONS}
        values["milestones"] = list(self.milestones)
        return values

    def speed_options(self) -> dict[str, Toggle]:
        """The requested speed options (``True``, ``False`` or ``"auto"``) by name."""
        return {name: getattr(self, name) for name in SPEED_OPTIONS}


@dataclass
class TrainResult:
    """What :func:`train` did: seconds spent, the mean loss of each epoch, the speed options used."""

    seconds: float
    epoch_losses: list[float] = field(default_factory=list)
    images_per_second: float = 0.0
    speed: SpeedSettings = field(default_factory=SpeedSettings)  # the speed options as resolved


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator for data order and augmentation."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def bf16_autocast_available(device: torch.device) -> bool:
    """Whether bf16 autocast can run on ``device`` (CUDA: hardware support; CPU: always)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu"


def augment_batch(images: torch.Tensor, generator: torch.Generator, padding: int = CROP_PADDING) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, for a ``(N, C, H, W)`` batch (CPU draws)."""
    draws = draw_crops(len(images), generator, padding).to(images.device)
    return crop_and_flip(images, draws, padding)


def training_batches(
    data: ImageData, batch_size: int, generator: torch.Generator, augment: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled float batches in [0, 1] on the CPU (the last, smaller batch included)."""
    return BatchSource(data.train_images, data.train_labels).epoch(batch_size, generator, augment)


def train(
    model: nn.Module,
    data: ImageData,
    config: TrainConfig,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = True,
    description: str = "train",
) -> TrainResult:
    """Train ``model`` in place with SGD, step learning-rate schedule and optional bf16 autocast.

    The speed options of ``config`` are resolved for ``device`` (see :mod:`robustbench_win.speed`);
    ``model`` ends in eval mode, in the default memory format, on ``device``.

    Args:
        model: Classifier mapping [0, 1] pixels to logits.
        data: Training data (the test split is not touched).
        config: Hyper-parameters.
        seed: Seeds weights' data order and augmentation (initialise the model after
            :func:`seed_everything` for a fully repeatable run).
        device: Where to train.
        progress: Show a progress bar.
        description: Progress bar label.
    """
    device = torch.device(device)
    if config.precision == "bf16" and not bf16_autocast_available(device):
        raise ValueError(f"bf16 autocast is not supported on {device}; use precision = 'fp32'")
    generator = seed_everything(seed)
    augment = data.augment if config.augment is None else config.augment
    steps_per_epoch = math.ceil(len(data.train_labels) / config.batch_size)
    settings = resolve_speed_settings(config.speed_options(), Accelerator.of(device),
                                      train_bytes=data.train_images.nbytes, total_steps=config.epochs * steps_per_epoch)
    source = BatchSource(data.train_images, data.train_labels, storage=device if settings.data_on_device else "cpu",
                         target=device, channels_last=settings.channels_last)
    if settings.compile:
        torch.compiler.reset()  # a fresh cache per model: the graphs of earlier models would count towards its limit
    model.to(device).train()
    result = TrainResult(seconds=0.0, speed=settings)
    start = time.perf_counter()
    with accelerated(model, settings) as fast_model, tqdm(
        total=config.epochs * steps_per_epoch, desc=description, disable=not progress, leave=False, unit="step"
    ) as bar:
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=config.lr_gamma)
        for epoch in range(config.epochs):
            losses, sizes = [], []
            for images, labels in source.epoch(config.batch_size, generator, augment):
                # A compiled model would recompile for the smaller last batch: run that one eagerly.
                step_model = fast_model if len(labels) == config.batch_size else model
                losses.append(_train_step(step_model, optimizer, images, labels, config.precision))
                sizes.append(len(labels))
                bar.update(1)
            scheduler.step()
            result.epoch_losses.append(_mean_loss(losses, sizes))
            bar.set_postfix(epoch=epoch + 1, loss=f"{result.epoch_losses[-1]:.3f}")
    result.seconds = time.perf_counter() - start
    result.images_per_second = config.epochs * len(data.train_labels) / max(result.seconds, 1e-9)
    model.eval()
    return result


def _train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor, precision: str
) -> torch.Tensor:
    """One SGD step; returns the batch's mean loss as a 0-d tensor (reading it would wait for the GPU)."""
    with torch.autocast(device_type=images.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = F.cross_entropy(model(images), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def _mean_loss(losses: list[torch.Tensor], sizes: list[int]) -> float:
    """Image-weighted mean of an epoch's batch losses, summed in float64 in batch order."""
    total = 0.0
    for loss, size in zip(torch.stack(losses).tolist() if losses else [], sizes):  # one device sync per epoch
        total += loss * size
    return total / max(sum(sizes), 1)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 500, device: torch.device | str = "cpu") -> torch.Tensor:
    """Arg-max predictions of ``model`` (fp32, eval mode) for float images in [0, 1]."""
    was_training = model.training
    model.eval()
    try:
        parts = [model(images[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)


def evaluate(model: nn.Module, data: ImageData, *, batch_size: int = 500, device: torch.device | str = "cpu") -> torch.Tensor:
    """Per-sample correctness (bool tensor) on the whole test split; its mean is the accuracy."""
    predictions = torch.cat([
        predict(model, to_float(data.test_images[i : i + batch_size]), batch_size=batch_size, device=device)
        for i in range(0, len(data.test_labels), batch_size)
    ])
    return predictions == data.test_labels


# --------------------------------------------------------------------------- models from the store

CPU_WARNING_SECONDS = 300.0  # training estimated to take longer on a CPU is announced first


def prepare_data(dataset: str, *, train_size: int | None, test_size: int | None, data_dir: Path | None,
                 download: bool, dataset_args: dict[str, Any] | None = None) -> ImageData:
    """Load ``dataset`` (with its own ``dataset_args``) and apply the stratified subsets a spec names."""
    data = load_dataset(dataset, data_dir=data_dir, download=download, **(dataset_args or {}))
    return subsample(data, train_size=train_size, test_size=test_size)


@dataclass
class TrainedModel:
    """A model ready to evaluate, with where it came from."""

    model: nn.Module
    checkpoint: Path
    reused: bool
    metrics: dict[str, Any]
    test_correct: torch.Tensor | None = None  # per test image of ``data``, when evaluated
    test_seconds: float = 0.0  # time that evaluation took


def obtain_model(
    spec: ModelSpec,
    data: ImageData,
    store: CheckpointStore,
    *,
    device: torch.device | str = "cpu",
    progress: bool = True,
    evaluate_test: bool = True,
) -> TrainedModel:
    """Load the checkpoint of ``spec`` if the store has it, else train and save one.

    ``data`` must already be the (sub)set that ``spec`` names. With ``evaluate_test`` the
    result carries per-image correctness on ``data``'s test split (computed once: a freshly
    trained model reuses the evaluation that goes into its checkpoint's metrics). Before a
    long training on a CPU, a warning with the estimated time is logged.

    Raises:
        CheckpointError: The stored checkpoint is corrupt or does not fit.
        WriteError: The new checkpoint cannot be written.
    """
    seed_everything(spec.seed)  # weights initialisation depends on the seed
    model = build_model(spec, data)
    payload = store.load(spec, model)
    if payload is not None:
        model = model.to(device).eval()
        correct, seconds = _timed_evaluate(model, data, device) if evaluate_test else (None, 0.0)
        return TrainedModel(model, store.path(spec), True, payload["metrics"], correct, seconds)
    warn_if_slow_on_cpu(spec, model, data, torch.device(device))
    result = train(model, data, spec.train, seed=spec.seed, device=device, progress=progress, description=spec.slug())
    correct, seconds = _timed_evaluate(model, data, device)
    metrics = {
        "test_accuracy": float(correct.float().mean()),
        "train_seconds": result.seconds,
        "images_per_second": result.images_per_second,
        "epoch_losses": result.epoch_losses,
        "in_channels": data.in_channels,
        "num_classes": data.num_classes,
    }
    path = store.save(spec, model, metrics)
    return TrainedModel(model.eval(), path, False, metrics, correct, seconds)


def _timed_evaluate(model: nn.Module, data: ImageData, device: torch.device | str) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    correct = evaluate(model, data, device=device)
    return correct, time.perf_counter() - start


def estimate_train_seconds(model: nn.Module, data: ImageData, config: TrainConfig, *, device: torch.device,
                           threshold: float = CPU_WARNING_SECONDS) -> tuple[float, float]:
    """Seconds a whole training of ``model`` would take on ``device``, and seconds per step.

    Times one optimiser step on a batch with a copy of the model. The first step includes
    set-up time, so its estimate errs high; a second step is timed only when the estimate is
    within a factor 2 of ``threshold``, where the difference decides. The model, its weights
    and every random generator are left as they were.
    """
    steps = config.epochs * math.ceil(len(data.train_labels) / config.batch_size)
    trial = copy.deepcopy(model).to(device).train()
    optimizer = torch.optim.SGD(trial.parameters(), lr=config.lr, momentum=config.momentum)
    images = to_float(data.train_images[: config.batch_size]).to(device)
    labels = data.train_labels[: config.batch_size].to(device)
    with torch.random.fork_rng(devices=[]):
        per_step = _timed_step(trial, optimizer, images, labels, config.precision)
        if threshold / 2 < per_step * steps < threshold * 2:
            per_step = _timed_step(trial, optimizer, images, labels, config.precision)
    return per_step * steps, per_step


def _timed_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
                precision: str) -> float:
    start = time.perf_counter()
    _train_step(model, optimizer, images, labels, precision)
    return time.perf_counter() - start


def warn_if_slow_on_cpu(spec: ModelSpec, model: nn.Module, data: ImageData, device: torch.device) -> None:
    """Log a warning before training a GPU-sized model on a CPU, with the time it will take."""
    if device.type != "cpu" or spec.train.epochs == 0:
        return
    seconds, per_step = estimate_train_seconds(model, data, spec.train, device=device)
    if seconds > CPU_WARNING_SECONDS:
        steps = math.ceil(len(data.train_labels) / spec.train.batch_size)
        logger.warning(
            "%s is GPU-sized: training it on this CPU (%d threads) will take about %s (%d epochs x %d steps "
            "at %.2f s per step). Train on a GPU (--device cuda), or make it smaller: fewer epochs, a "
            "smaller width, or the paper-cnn-small model.",
            spec.slug(), torch.get_num_threads(), format_duration(seconds), spec.train.epochs, steps, per_step,
        )


def format_duration(seconds: float) -> str:
    """``42 s``, ``24 min`` or ``3.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
