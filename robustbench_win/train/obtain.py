"""A trained model for a :class:`ModelSpec`: loaded from the checkpoint store, or trained now
and stored; with a warning, before a long training on a CPU, of the time it will take."""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_win.data.datasets import ImageData, to_float
from robustbench_win.train.checkpoints import CheckpointStore, ModelSpec, build_model
from robustbench_win.train.config import TrainConfig
from robustbench_win.train.contract import check_model_contract
from robustbench_win.train.loop import evaluate, seed_everything, train, train_step

logger = logging.getLogger(__name__)

CPU_WARNING_SECONDS = 300.0  # training estimated to take longer on a CPU is announced first


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
        ModelContractError: The untrained model does not map images to finite logits of the data's
            classes (:func:`~robustbench_win.train.contract.check_model_contract`).
        WriteError: The new checkpoint cannot be written.
    """
    model = initial_model(spec, data)
    payload = store.load(spec, model)
    if payload is not None:
        model = model.to(device).eval()
        correct, seconds = _timed_evaluate(model, data, device) if evaluate_test else (None, 0.0)
        return TrainedModel(model, store.path(spec), True, payload["metrics"], correct, seconds)
    check_model_contract(model, data, name=spec.model)  # before a training that would fail in other words
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


def initial_model(spec: ModelSpec, data: ImageData) -> nn.Module:
    """The untrained model of ``spec``: the weights its training starts from (seeded by ``spec.seed``).

    Seeds Python, NumPy and torch with ``spec.seed`` (as training does) and leaves them so.
    """
    seed_everything(spec.seed)  # weights initialisation depends on the seed
    return build_model(spec, data)


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
    train_step(model, optimizer, images, labels, precision)
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
