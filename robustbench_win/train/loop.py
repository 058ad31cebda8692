"""The training loop: :func:`train` a classifier on in-memory :class:`ImageData`, and
:func:`evaluate` / :func:`classify` it on the test split."""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from robustbench_win.errors import UserError
from robustbench_win.data.datasets import ImageData, to_float
from robustbench_win.train.batches import BatchSource
from robustbench_win.train.config import TrainConfig
from robustbench_win.train.speed import (
    Accelerator,
    SpeedSettings,
    accelerated,
    resolve_speed_settings,
)

logger = logging.getLogger(__name__)


class TrainingDivergedError(UserError, RuntimeError):
    """The training loss became non-finite: the learning rate is too high for the model (or the data is broken)."""


@dataclass
class TrainResult:
    """What :func:`train` did: seconds spent, the mean loss of each epoch, the speed options used."""

    seconds: float
    epoch_losses: list[float] = field(default_factory=list)
    images_per_second: float = 0.0
    speed: SpeedSettings = field(default_factory=SpeedSettings)  # the speed options as resolved


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

    The speed options of ``config`` are resolved for ``device`` (see :mod:`robustbench_win.train.speed`);
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
                losses.append(train_step(step_model, optimizer, images, labels, config.precision))
                sizes.append(len(labels))
                bar.update(1)
            scheduler.step()
            result.epoch_losses.append(_mean_loss(losses, sizes))
            bar.set_postfix(epoch=epoch + 1, loss=f"{result.epoch_losses[-1]:.3f}")
            check_finite_loss(result.epoch_losses[-1], epoch, config)
    result.seconds = time.perf_counter() - start
    result.images_per_second = config.epochs * len(data.train_labels) / max(result.seconds, 1e-9)
    model.eval()
    return result


def check_finite_loss(loss: float, epoch: int, config: TrainConfig) -> None:
    """Stop a training run whose loss diverged: every later step would only spread the NaN.

    Raises:
        TrainingDivergedError: ``loss`` is NaN or infinite; the message names ``train.lr``.
    """
    if math.isfinite(loss):
        return
    raise TrainingDivergedError(
        f"training diverged: the mean loss of epoch {epoch + 1} of {config.epochs} is {loss} with train.lr = "
        f"{config.lr}; lower the learning rate (e.g. --set train.lr={config.lr / 10:g}) and run again")


def train_step(
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
def classify(model: nn.Module, images: torch.Tensor, *, batch_size: int = 500, device: torch.device | str = "cpu") -> torch.Tensor:
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
        classify(model, to_float(data.test_images[i : i + batch_size]), batch_size=batch_size, device=device)
        for i in range(0, len(data.test_labels), batch_size)
    ])
    return predictions == data.test_labels
