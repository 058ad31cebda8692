"""Speed options of training: channels-last memory, device-resident data and ``torch.compile``.

Each is a :class:`~robustbench_win.train.config.TrainConfig` field that takes ``true``, ``false``
or ``"auto"`` (the default). ``"auto"`` turns an option on only where it is expected to help:

- ``channels_last``: on for CUDA (tensor-core convolutions run in NHWC), off on the CPU.
- ``data_on_device``: on for CUDA when the uint8 training split takes at most a quarter of
  the GPU's memory (CIFAR-10: 150 MB), off on the CPU, where the data already are.
- ``compile``: on for CUDA when triton is installed and the run has at least
  :data:`COMPILE_MIN_STEPS` optimiser steps: compiling costs tens of seconds per model, which
  only a long run (``cifar10-paper``: 234,450 steps per model) earns back.
  ``benchmarks/bench_gpu_training.py`` measures that cost and each option's gain.

Repeatability rule: the options change how the arithmetic is laid out, never what is
computed. With ``"auto"`` the CPU uses none of them, so CPU training stays bit-exact (same
seed, same weights). Device-resident data gives bit-identical batches on any device
(:mod:`robustbench_win.train.batches`). Channels-last and compile reorder floating-point sums, so
weights differ by rounding noise, as CUDA training (cuDNN algorithm choice) does from run to
run anyway. That is why none of the three is part of a checkpoint's key.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

Toggle = bool | Literal["auto"]
SPEED_OPTIONS: tuple[str, ...] = ("channels_last", "data_on_device", "compile")
DATA_ON_DEVICE_SHARE = 0.25  # most of the device memory the uint8 training split may take
COMPILE_MIN_STEPS = 50_000  # optimiser steps per model before "auto" compiles


def check_toggle(name: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is ``True``, ``False`` or ``"auto"``."""
    if not (isinstance(value, bool) or value == "auto"):
        raise ValueError(f"{name} must be true, false or 'auto', got {value!r}")


@dataclass(frozen=True)
class SpeedSettings:
    """The speed options as resolved for one training run (all off: the plain CPU path)."""

    channels_last: bool = False
    data_on_device: bool = False
    compile: bool = False

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


@dataclass(frozen=True)
class Accelerator:
    """What the ``"auto"`` rules look at.

    Attributes:
        device_type: ``"cpu"``, ``"cuda"``, ...
        memory_bytes: Total memory of the device (``None`` for the CPU).
        compiler: Whether ``torch.compile``'s GPU code generator (triton) is installed.
    """

    device_type: str
    memory_bytes: int | None = None
    compiler: bool = False

    @classmethod
    def of(cls, device: torch.device | str) -> Accelerator:
        """Describe ``device`` by asking torch."""
        device = torch.device(device)
        if device.type != "cuda":
            return cls(device.type)
        memory = torch.cuda.get_device_properties(device).total_memory
        return cls("cuda", int(memory), importlib.util.find_spec("triton") is not None)


def resolve_speed_settings(
    requested: Mapping[str, Toggle], accelerator: Accelerator, *, train_bytes: int, total_steps: int
) -> SpeedSettings:
    """Turn each requested ``True``/``False``/``"auto"`` into on or off (rules: module docstring).

    Args:
        requested: A value for each name of :data:`SPEED_OPTIONS`.
        accelerator: The training device.
        train_bytes: Size of the uint8 training images.
        total_steps: Optimiser steps the run will take.
    """
    cuda = accelerator.device_type == "cuda"
    fits = accelerator.memory_bytes is not None and train_bytes <= DATA_ON_DEVICE_SHARE * accelerator.memory_bytes
    automatic = {
        "channels_last": cuda,
        "data_on_device": cuda and fits,
        "compile": cuda and accelerator.compiler and total_steps >= COMPILE_MIN_STEPS,
    }
    for name in SPEED_OPTIONS:
        check_toggle(name, requested[name])
    chosen = {name: automatic[name] if requested[name] == "auto" else bool(requested[name]) for name in SPEED_OPTIONS}
    return SpeedSettings(**chosen)


@contextmanager
def accelerated(model: nn.Module, settings: SpeedSettings) -> Iterator[nn.Module]:
    """Put ``model`` in channels-last format and/or compile it for the duration of training.

    Yields the module to run training steps through (the compiled wrapper, or ``model``);
    it shares its parameters with ``model``. Compiled graphs stay in torch's cache, which holds
    a few per code object: call ``torch.compiler.reset()`` before compiling another architecture
    once earlier graphs are no longer needed. On exit ``model`` is back in the default
    (contiguous) memory format, so saving, loading and attacks see a plain module.
    """
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    try:
        yield torch.compile(model) if settings.compile else model
    finally:
        if settings.channels_last:
            model.to(memory_format=torch.contiguous_format)
