"""A content-addressed store of trained models.

A checkpoint is keyed by everything that determines it: model name and arguments, data set
(and subset), training configuration (precision included) and seed. The file records how to
rebuild its model, holds only tensors and plain Python values, and is always read with
``torch.load(..., weights_only=True)``, so opening a checkpoint can never run code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from robustbench_win.errors import BadValueError, UserError
from robustbench_win.atomic import write_atomic
from robustbench_win.data.datasets import ImageData, default_cache_dir
from robustbench_win.registry import MODELS

if TYPE_CHECKING:  # training imports this module to store what it trains
    from robustbench_win.train.config import TrainConfig

CHECKPOINT_FORMAT = 1
CHECKPOINT_DIR_ENV = "ROBUSTBENCH_WIN_CHECKPOINTS"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file is corrupt, of another format, or does not match what was asked."""


class ModelArgumentsError(BadValueError):
    """A model factory refuses the arguments it was given (an even kernel size, an unknown argument)."""


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
        """Human-readable name of the model, the file-name prefix (:func:`model_id`)."""
        kwargs = self.model_kwargs
        return model_id(self.model, kwargs.get("kernel_size", "x"), kwargs.get("window", "none"), self.seed)


def model_id(model: str, kernel_size: Any, window: Any, seed: int) -> str:
    """The name of one trained model in file names and reports, e.g. ``paper-cnn_k5_hamming_s0``."""
    parts = [model, f"k{kernel_size}", str(window), f"s{seed}"]
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
        """Write the raw state dict and how to rebuild the model, atomically.

        Raises:
            WriteError: The checkpoint folder cannot be written (disk full, permissions).
        """
        path = self.path(spec)
        payload = {
            "format": CHECKPOINT_FORMAT,
            "key": spec.key(),
            "spec": spec.key_fields(),
            "metrics": _plain(metrics),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        return write_atomic(path, buffer.getvalue())  # a crash never leaves a half-written checkpoint

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
    """Instantiate the model of ``spec`` for ``data`` (channels and classes from the data).

    Raises:
        ModelArgumentsError: The factory refuses the arguments (the message names them).
    """
    return create_model(spec.model, in_channels=data.in_channels, num_classes=data.num_classes, **spec.model_kwargs)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """``MODELS.create(name, **kwargs)``, with a refusal of the arguments said as the user's error.

    A factory refuses a bad value with ``ValueError`` (an even kernel size), and Python refuses
    an argument the factory does not take with ``TypeError`` naming it. Any other ``TypeError``
    is a bug in the factory and is left as it is.

    Raises:
        ModelArgumentsError: The factory refuses the arguments.
    """
    try:
        return MODELS.create(name, **kwargs)
    except ValueError as error:
        if isinstance(error, UserError):
            raise
        raise ModelArgumentsError(f"model '{name}' refuses its arguments {kwargs}: {error}") from error
    except TypeError as error:
        unexpected = re.search(r"unexpected keyword argument '(\w+)'", str(error))
        if unexpected is None or unexpected.group(1) not in kwargs:
            raise
        raise ModelArgumentsError(f"model '{name}' takes no argument '{unexpected.group(1)}' ({error}); "
                                  f"`robustbench-win list models` names the models, and each factory's "
                                  f"docstring its arguments") from error


def load_model(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from a checkpoint file alone (registry name and arguments it records)."""
    payload = read_checkpoint(Path(path))
    fields = payload["spec"]
    in_channels, num_classes = payload["metrics"]["in_channels"], payload["metrics"]["num_classes"]
    model = create_model(fields["model"], in_channels=in_channels, num_classes=num_classes, **fields["model_kwargs"])
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload
