"""A content-addressed store of trained models.

A checkpoint is keyed by everything that determines it: model name and arguments, data set
(and subset), training configuration (precision included) and seed. The file records how to
rebuild its model, holds only tensors and plain Python values, and is always read with
``torch.load(..., weights_only=True)``, so opening a checkpoint can never run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_win.datasets import ImageData, default_cache_dir, load_dataset, subsample
from robustbench_win.registry import MODELS
from robustbench_win.training import TrainConfig, evaluate, seed_everything, train

CHECKPOINT_FORMAT = 1
CHECKPOINT_DIR_ENV = "ROBUSTBENCH_WIN_CHECKPOINTS"


class CheckpointError(RuntimeError):
    """A checkpoint file is corrupt, of another format, or does not match what was asked."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything that determines a trained model.

    Attributes:
        model: Registry name of the model factory.
        model_kwargs: Factory arguments (``in_channels``/``num_classes`` are added from the data).
        dataset: Data set spec as given to :func:`load_dataset`.
        train_size: Stratified training subset size (``None``: the whole split).
        train: Training configuration.
        seed: Training seed (weights initialisation, data order, augmentation).
        extra: Anything else that determines the trained weights (say, a plugin's own
            preprocessing); part of the key only when non-empty.
    """

    model: str
    model_kwargs: dict[str, Any]
    dataset: str
    train: TrainConfig
    seed: int = 0
    train_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def key_fields(self) -> dict[str, Any]:
        """Plain, JSON-able description whose hash is the checkpoint key."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model,
            "model_kwargs": _plain(self.model_kwargs),
            "dataset": self.dataset,
            "train_size": self.train_size,
            "train": self.train.as_dict(),
            "seed": self.seed,
            **({"extra": _plain(self.extra)} if self.extra else {}),
        }

    def key(self) -> str:
        """16 hex digits of the SHA-256 of the canonical JSON of :meth:`key_fields`."""
        canonical = json.dumps(self.key_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def slug(self) -> str:
        """Human-readable file-name prefix, e.g. ``paper-cnn_k5_hamming_s0``."""
        kwargs = self.model_kwargs
        parts = [self.model, f"k{kwargs.get('kernel_size', 'x')}", str(kwargs.get("window", "none")), f"s{self.seed}"]
        return "_".join(str(p).replace("/", "-") for p in parts)


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so keys do not depend on the container type."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def default_checkpoint_dir() -> Path:
    """``$ROBUSTBENCH_WIN_CHECKPOINTS`` or ``<cache>/checkpoints``."""
    return Path(os.environ.get(CHECKPOINT_DIR_ENV, default_cache_dir() / "checkpoints"))


@dataclass
class CheckpointStore:
    """Checkpoints under ``root``, one file per :class:`ModelSpec` key."""

    root: Path = field(default_factory=default_checkpoint_dir)

    def path(self, spec: ModelSpec) -> Path:
        return Path(self.root) / f"{spec.slug()}_{spec.key()}.pt"

    def save(self, spec: ModelSpec, model: nn.Module, metrics: dict[str, Any]) -> Path:
        """Write the raw state dict and how to rebuild the model, atomically."""
        path = self.path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": CHECKPOINT_FORMAT,
            "key": spec.key(),
            "spec": spec.key_fields(),
            "metrics": _plain(metrics),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        }
        temporary = path.with_name(path.name + ".tmp")
        torch.save(payload, temporary)
        os.replace(temporary, path)  # a crash never leaves a half-written checkpoint
        return path

    def load(self, spec: ModelSpec, model: nn.Module) -> dict[str, Any] | None:
        """Load the checkpoint of ``spec`` into ``model``; ``None`` if there is none.

        Raises:
            CheckpointError: The file is corrupt, was made for another spec, or its weights do
                not fit ``model``.
        """
        path = self.path(spec)
        if not path.is_file():
            return None
        payload = read_checkpoint(path)
        if payload["spec"] != spec.key_fields():
            raise CheckpointError(
                f"checkpoint {path} was made for {payload['spec']}, not {spec.key_fields()}; "
                f"delete the file or use another --checkpoint-dir"
            )
        try:
            model.load_state_dict(payload["state_dict"])
        except RuntimeError as error:
            raise CheckpointError(f"checkpoint {path} does not fit the model: {error}") from error
        return payload


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint file safely (``weights_only=True``) and check its format.

    Raises:
        CheckpointError: Not a readable checkpoint of this format.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(error).__name__}: {error}); "
            f"the file is corrupt or not a robustbench-win checkpoint: delete it to retrain"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT or "state_dict" not in payload:
        raise CheckpointError(
            f"{path} is not a robustbench-win checkpoint of format {CHECKPOINT_FORMAT}; delete it to retrain"
        )
    return payload


def build_model(spec: ModelSpec, data: ImageData) -> nn.Module:
    """Instantiate the model of ``spec`` for ``data`` (channels and classes from the data)."""
    return MODELS.create(spec.model, in_channels=data.in_channels, num_classes=data.num_classes, **spec.model_kwargs)


def load_model(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from a checkpoint file alone (registry name and arguments it records)."""
    payload = read_checkpoint(Path(path))
    fields = payload["spec"]
    in_channels, num_classes = payload["metrics"]["in_channels"], payload["metrics"]["num_classes"]
    model = MODELS.create(fields["model"], in_channels=in_channels, num_classes=num_classes, **fields["model_kwargs"])
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload


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
    trained model reuses the evaluation that goes into its checkpoint's metrics).
    """
    seed_everything(spec.seed)  # weights initialisation depends on the seed
    model = build_model(spec, data)
    payload = store.load(spec, model)
    if payload is not None:
        model = model.to(device).eval()
        correct, seconds = _timed_evaluate(model, data, device) if evaluate_test else (None, 0.0)
        return TrainedModel(model, store.path(spec), True, payload["metrics"], correct, seconds)
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


def prepare_data(dataset: str, *, train_size: int | None, test_size: int | None, data_dir: Path | None, download: bool) -> ImageData:
    """Load ``dataset`` and apply the stratified subsets a spec names."""
    return subsample(load_dataset(dataset, data_dir=data_dir, download=download), train_size=train_size, test_size=test_size)
