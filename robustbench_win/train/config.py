"""Training hyper-parameters: :class:`TrainConfig`, the one place they are declared."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from robustbench_win.train.speed import SPEED_OPTIONS, Toggle, check_toggle

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
    help; rules and repeatability in :mod:`robustbench_win.train.speed`). They do not change what is
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


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
