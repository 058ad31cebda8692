"""Parameter-matched widths: a k x k model as large as the 3 x 3 one (DESIGN.md, "Comparisons").

A k x k network has about ``(k / 3)**2`` times the weights of the 3 x 3 one, so a gain of large
kernels can come from capacity alone. :func:`match_width` finds the channel width at which a
model with kernel size k has the parameter count of the same model at the reference kernel
size (3), within a stated relative tolerance (:data:`DEFAULT_TOLERANCE`).

The search, for a model factory whose channels are set by ``width`` (and, where it has one, a
separate ``stem_width``):

1. The block width ``w`` is searched over the integers; a stem width given in the model's
   arguments is scaled with it, ``round(stem_width * w / width)`` (at least 1); a stem width
   left to the model's default follows the model's own rule (the paper CNN: ``w // 2``).
   The count grows with ``w``, so a bisection finds the two widths around the reference count;
   the closer one wins.
2. At small widths one channel can be a large share of the count (the paper CNN at width 12:
   one channel is 10-25 %), so no integer width may come within the tolerance. If the model
   takes a stem width, the stem then becomes a second, finer knob: the block width of step 1
   is kept and the stem width giving the closest count is chosen; if that is still outside
   the tolerance, block widths ``w - 1`` and ``w + 1`` (each with its closest stem) compete
   too, and the closest count wins.
3. If the best count is still outside the tolerance, :class:`ValueError` says so.

Parameters are counted on the ``meta`` device (shapes only: no memory, no initialisation);
only trainable parameters count (``model.parameters()``), not buffers such as the window or
BatchNorm statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from robustbench_win.models.windows import check_kernel_size
from robustbench_win.registry import MODELS

REFERENCE_KERNEL_SIZE = 3
DEFAULT_TOLERANCE = 0.05  # largest |count / reference count - 1| accepted
_MAX_WIDTH = 1 << 20  # the search gives up beyond this many channels

ModelSpec = str | Callable[..., nn.Module]


@dataclass(frozen=True)
class WidthMatch:
    """A parameter-matched configuration.

    Attributes:
        model: Registry name of the model, or the factory's qualified name.
        kernel_size: Kernel size k of the matched model.
        reference_kernel_size: Kernel size of the model it is matched to.
        width: Matched block width.
        stem_width: Matched stem width, or ``None`` where the model's default applies.
        parameters: Trainable parameters of the matched model.
        reference_parameters: Trainable parameters of the reference model.
        tolerance: The relative tolerance the match satisfies.
        kwargs: Keyword arguments that build the matched model (kernel size included).
    """

    model: str
    kernel_size: int
    reference_kernel_size: int
    width: int
    stem_width: int | None
    parameters: int
    reference_parameters: int
    tolerance: float
    kwargs: dict[str, Any] = field(compare=False)

    @property
    def relative_difference(self) -> float:
        """``parameters / reference_parameters - 1``."""
        return self.parameters / self.reference_parameters - 1.0

    def as_record(self) -> dict[str, Any]:
        """A flat record for tables: every field but ``kwargs``, plus the relative difference."""
        record = {key: value for key, value in asdict(self).items() if key != "kwargs"}
        record["relative_difference"] = self.relative_difference
        return record


def count_parameters(model: ModelSpec, **kwargs: Any) -> int:
    """Trainable parameters of ``model(**kwargs)``, built on the meta device.

    Args:
        model: Registry name (:data:`robustbench_win.registry.MODELS`) or factory.
        **kwargs: The factory's arguments.
    """
    factory = _factory(model)
    try:
        with torch.device("meta"):
            built = factory(**kwargs)
    except (NotImplementedError, RuntimeError):  # a factory that computes on its tensors
        built = factory(**kwargs)
    return sum(p.numel() for p in built.parameters() if p.requires_grad)


def match_width(
    model: ModelSpec,
    *,
    model_kwargs: Mapping[str, Any],
    kernel_size: int,
    reference_kernel_size: int = REFERENCE_KERNEL_SIZE,
    tolerance: float = DEFAULT_TOLERANCE,
    width_arg: str = "width",
    stem_arg: str = "stem_width",
) -> WidthMatch:
    """The width at which ``model`` with ``kernel_size`` has the reference model's parameter count.

    Args:
        model: Registry name or factory.
        model_kwargs: The model's arguments (``in_channels``, ``num_classes``, ``width``, ...)
            without ``kernel_size``; the reference model is ``model(**model_kwargs,
            kernel_size=reference_kernel_size)``.
        kernel_size: Kernel size of the model to match.
        reference_kernel_size: Kernel size of the reference model.
        tolerance: Largest accepted ``|count / reference count - 1|``, in (0, 1).
        width_arg: Name of the factory's block-width argument.
        stem_arg: Name of its stem-width argument, used where the factory takes it.

    Returns:
        The :class:`WidthMatch`.

    Raises:
        ValueError: Bad arguments, or no width (and stem width) comes within ``tolerance``.
    """
    _check_arguments(model_kwargs, kernel_size, reference_kernel_size, tolerance, width_arg, stem_arg)
    search = _Search(model, dict(model_kwargs), kernel_size, width_arg, stem_arg)
    target = count_parameters(model, **model_kwargs, kernel_size=reference_kernel_size)
    width = search.closest_width(target)
    best = (width, search.proportional_stem(width))
    if not search.within(best, target, tolerance) and search.takes_stem():
        best = (width, search.closest_stem(width, target))
        if not search.within(best, target, tolerance):
            candidates = [(w, search.closest_stem(w, target)) for w in (width - 1, width + 1) if w >= 1]
            best = min([best, *candidates], key=lambda pair: abs(search.count(*pair) - target))
    parameters = search.count(*best)
    name = model if isinstance(model, str) else getattr(model, "__qualname__", repr(model))
    if abs(parameters / target - 1) > tolerance:
        stem = f" (stem {best[1]})" if best[1] is not None else ""
        raise ValueError(
            f"cannot match {name} at kernel size {kernel_size} to {target:,} parameters within "
            f"{tolerance:.1%}: the closest, width {best[0]}{stem}, has {parameters:,} "
            f"({parameters / target - 1:+.1%}); raise the tolerance or start from a wider model"
        )
    return WidthMatch(
        model=name, kernel_size=kernel_size, reference_kernel_size=reference_kernel_size, width=best[0],
        stem_width=best[1], parameters=parameters, reference_parameters=target, tolerance=tolerance,
        kwargs=search.kwargs(*best),
    )


class _Search:
    """Parameter counts of one model at kernel size k over widths and stem widths, cached."""

    def __init__(self, model: ModelSpec, base: dict[str, Any], kernel_size: int, width_arg: str, stem_arg: str) -> None:
        self.model, self.base, self.kernel_size = model, base, kernel_size
        self.width_arg, self.stem_arg = width_arg, stem_arg
        self._counts: dict[tuple[int, int | None], int] = {}

    def kwargs(self, width: int, stem: int | None) -> dict[str, Any]:
        built = {**self.base, self.width_arg: width, "kernel_size": self.kernel_size}
        if stem is not None:
            built[self.stem_arg] = stem
        return built

    def count(self, width: int, stem: int | None) -> int:
        if (width, stem) not in self._counts:
            self._counts[width, stem] = count_parameters(self.model, **self.kwargs(width, stem))
        return self._counts[width, stem]

    def within(self, pair: tuple[int, int | None], target: int, tolerance: float) -> bool:
        return abs(self.count(*pair) / target - 1) <= tolerance

    def proportional_stem(self, width: int) -> int | None:
        """The given stem width scaled with the block width; ``None`` if none was given."""
        if self.stem_arg not in self.base:
            return None
        return max(1, round(self.base[self.stem_arg] * width / self.base[self.width_arg]))

    def takes_stem(self) -> bool:
        """Whether the factory accepts the stem argument (tried on the meta device)."""
        if self.stem_arg in self.base:
            return True
        try:
            self.count(1, 1)
        except TypeError as error:
            if self.stem_arg not in str(error):
                raise
            return False
        return True

    def closest_width(self, target: int) -> int:
        return _closest(lambda w: self.count(w, self.proportional_stem(w)), target)

    def closest_stem(self, width: int, target: int) -> int:
        return _closest(lambda s: self.count(width, s), target)


def _closest(count: Callable[[int], int], target: int) -> int:
    """The integer ``x >= 1`` whose non-decreasing ``count(x)`` is closest to ``target`` (smaller on ties)."""
    high = 1
    while count(high) < target:  # double until past the target, then bisect
        if high >= _MAX_WIDTH:
            raise ValueError(f"no width up to {_MAX_WIDTH} reaches {target:,} parameters")
        high *= 2
    low = high // 2 if high > 1 else 1  # count(low) < target unless low == high == 1
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if count(middle) < target else (low, middle)
    return min((low, high), key=lambda x: (abs(count(x) - target), x))


def _factory(model: ModelSpec) -> Callable[..., nn.Module]:
    if isinstance(model, str):
        return MODELS.get(model)
    if not callable(model):
        raise ValueError(f"model must be a registered model name or a factory, got {model!r}")
    return model


def _check_arguments(
    model_kwargs: Mapping[str, Any], kernel_size: int, reference: int, tolerance: float, width_arg: str, stem_arg: str
) -> None:
    check_kernel_size(kernel_size)
    check_kernel_size(reference)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be a fraction in (0, 1), e.g. 0.05 for 5 %, got {tolerance!r}")
    if "kernel_size" in model_kwargs:
        raise ValueError(
            "model_kwargs must not contain kernel_size: pass it as kernel_size= (and reference_kernel_size=)"
        )
    if stem_arg in model_kwargs and width_arg not in model_kwargs:
        raise ValueError(f"to scale {stem_arg} with the width, model_kwargs must give {width_arg} as well")
    for name in (width_arg, stem_arg):
        value = model_kwargs.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
