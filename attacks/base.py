"""The attack base class: one ``__call__`` for every attack, subclasses supply the algorithm.

Modelled on foolbox 3: the public call lives once here, so every attack (our own or an adapter
to foolbox or ART) gets the same input checks, the same treatment of the model, the same
verification of its adversarial examples and the same per-sample result.
"""

from __future__ import annotations

import logging
import math
import re
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from robustbench_win.attacks.input_gradients import fast_input_gradients
from robustbench_win.attacks.result import SampleResult

logger = logging.getLogger(__name__)


@dataclass
class BatchOutput:
    """What an algorithm returns for one batch of correctly classified samples.

    Attributes:
        x_adv: ``(B, C, H, W)`` adversarial candidates, on the model's device.
        iterations: ``(B,)`` integer steps (DeepFool) or transforms needed (spatial).
        success: ``(B,)`` bool successes the algorithm claims, or ``None`` when the backend
            makes no claim. Either way the base class verifies every sample itself; a
            claimed success that fails verification becomes a failure.
        transforms: ``(B, 3)`` float64 ``(angle, dx, dy)`` that produced ``x_adv`` (spatial
            attacks; NaN rows where ``x_adv`` is untransformed), ``None`` for other attacks.
    """

    x_adv: Tensor
    iterations: Tensor
    success: Tensor | None = None
    transforms: Tensor | None = None


@dataclass(frozen=True)
class CallStats:
    """What one attack call cost, counted by :meth:`Attack.__call__` around the algorithm.

    Passes are counted in sample rows, so a batch of 8 images through the model is 8 forward
    passes and a gradient of its logits with respect to those 8 images is 8 backward passes.
    Only the algorithm's own model calls count (its ``_attack_batch``): the clean prediction
    and the verification of the adversarial examples, the same for every attack, do not.

    Attributes:
        n_attacked: Samples attacked (those the model classified correctly).
        forward_passes: Sample rows put through the model by the algorithm.
        backward_passes: Sample rows whose input gradient was computed, once per gradient
            (DeepFool's one gradient per candidate class counts once each).
        seconds: Wall time of the whole call.
    """

    n_attacked: int
    forward_passes: int
    backward_passes: int
    seconds: float

    def per_sample(self) -> dict[str, float]:
        """Forward and backward passes and seconds per attacked sample (NaN when none)."""
        n = self.n_attacked or math.nan
        return {"forward_passes": self.forward_passes / n, "backward_passes": self.backward_passes / n,
                "seconds": self.seconds / n}


class Attack(ABC):
    """Base class of every attack.

    Subclasses set :attr:`name` and :attr:`family`, take their hyper-parameters as
    keyword-only arguments validated in ``__init__`` (raising ``ValueError``), return them
    from :meth:`params`, and implement :meth:`_attack_batch`. They never see the samples the
    model already gets wrong, never need to set eval mode and never verify their own output.
    """

    name: ClassVar[str]
    family: ClassVar[str]  # a registered family (robustbench_win.attacks.families): what the results are
    last_call_stats: CallStats | None = None  # set by every call: passes and seconds it took
    # Run the model with channels-last weights during the call (native attacks): oneDNN's
    # large-kernel convolutions are up to 3x faster so on CPU (benchmarks/bench_attacks.py).
    channels_last: ClassVar[bool] = False
    # Compute input gradients with the faster CPU kernels during the call (native gradient
    # attacks; robustbench_win.attacks.input_gradients says which and why).
    fast_gradient_kernels: ClassVar[bool] = False

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Hyper-parameters as a JSON-able dict (for reports and cache keys)."""

    @abstractmethod
    def _attack_batch(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int
    ) -> BatchOutput:
        """Attack one batch of samples that ``model`` classifies correctly.

        Args:
            model: In eval mode, parameters not requiring grad.
            x: ``(B, C, H, W)`` float32 pixels in [0, 1] on the model's device.
            y: ``(B,)`` int64 labels (equal to the clean predictions).
            indices: The samples' data set positions (seed per-sample randomness with them,
                so results do not depend on batching).
            batch_size: The caller's batch size: the most images to put through the model
                at once where an algorithm evaluates many candidates per sample.
        """

    def __call__(
        self,
        model: nn.Module,
        images: Tensor,
        labels: Tensor,
        indices: Sequence[int] | None = None,
        *,
        batch_size: int = 256,
        progress: bool = False,
    ) -> list[SampleResult]:
        """Attack every correctly classified sample; one result per input sample, in order.

        Args:
            model: Maps ``(N, C, H, W)`` pixels in [0, 1] to logits. Left as it was found:
                training flag, ``requires_grad`` and ``.grad`` of its parameters are restored.
            images: ``(N, C, H, W)`` pixels in [0, 1] (any device; moved to the model's).
            labels: ``(N,)`` integer class labels.
            indices: Data set positions of the samples, stored in the results
                (default ``range(N)``).
            batch_size: Samples attacked together (also the forward-pass batch).
            progress: Show a tqdm progress bar.

        Returns:
            ``N`` :class:`~robustbench_win.attacks.result.SampleResult`, in input order. What
            the call cost is then in :attr:`last_call_stats`.

        Raises:
            ValueError: Inputs of the wrong shape, type or range, or a bad ``batch_size``.
        """
        started = time.perf_counter()
        indices = check_inputs(images, labels, indices, batch_size)
        device = model_device(model)
        x = images.detach().to(device=device, dtype=torch.float32)
        y = labels.detach().to(device=device, dtype=torch.long)
        with (
            frozen(model),
            full_fp32(device),
            channels_last_weights(model, self.channels_last),
            fast_input_gradients(model, device, self.fast_gradient_kernels),
        ):
            clean_pred = predict(model, x, batch_size).tolist()
            label_list = y.tolist()
            results: list[SampleResult | None] = [
                None if pred == label else SampleResult.not_attacked(index, label, pred)
                for index, label, pred in zip(indices, label_list, clean_pred)
            ]
            attacked = [i for i, result in enumerate(results) if result is None]
            passes = PassCounter()
            with _progress_bar(len(attacked), self.name, progress) as bar:
                for start in range(0, len(attacked), batch_size):
                    chunk = attacked[start:start + batch_size]
                    chunk_indices = [indices[i] for i in chunk]
                    with passes.counting(model):
                        output = self._attack_batch(model, x[chunk], y[chunk], chunk_indices, batch_size=batch_size)
                    verified = self._verify(model, x[chunk], y[chunk], chunk_indices, output, batch_size)
                    for position, result in zip(chunk, verified):
                        results[position] = result
                    bar.update(len(chunk))
        assert all(result is not None for result in results)
        self.last_call_stats = CallStats(len(attacked), passes.forward, passes.backward, time.perf_counter() - started)
        return results  # type: ignore[return-value]

    def _verify(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], output: BatchOutput, batch_size: int
    ) -> list[SampleResult]:
        """Re-run the model on ``x_adv``: success = misclassified, inside [0, 1] (and claimed)."""
        x_adv = output.x_adv.detach().to(device=x.device, dtype=torch.float32)
        assert x_adv.shape == x.shape, (x_adv.shape, x.shape)
        assert output.iterations.shape == (len(x),)
        adv_pred = predict(model, x_adv, batch_size)
        flat = x_adv.flatten(1)
        success = (adv_pred != y) & (flat >= 0).all(dim=1) & (flat <= 1).all(dim=1)
        if output.success is not None:
            claimed = output.success.to(device=success.device, dtype=torch.bool)
            rejected = int((claimed & ~success).sum())
            if rejected:
                logger.warning("%s: %d claimed successes failed verification; counted as failures", self.name, rejected)
            success &= claimed
        l2 = (x_adv - x).double().flatten(1).norm(dim=1)
        clean_norm = x.double().flatten(1).norm(dim=1)
        rho = torch.where(clean_norm > 0, l2 / clean_norm, math.nan)  # undefined for an all-black image
        transforms = output.transforms.tolist() if output.transforms is not None else [None] * len(x)
        x_adv_cpu = x_adv.cpu()
        return [
            SampleResult(
                index=index, label=label, clean_pred=label, attacked=True, success=ok, adv_pred=pred,
                l2=norm, rho=ratio, iterations=int(steps), **_transform_fields(transform),
                x_adv=x_adv_cpu[i].clone(),
            )
            for i, (index, label, ok, pred, norm, ratio, steps, transform) in enumerate(zip(
                indices, y.tolist(), success.tolist(), adv_pred.tolist(), l2.tolist(), rho.tolist(),
                output.iterations.tolist(), transforms,
            ))
        ]

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.params().items())
        return f"{type(self).__name__}({args})"

    def describe(self) -> str:
        """What this attack does, in one paragraph for reports, taken from the attack itself.

        The first paragraph of the class docstring, then :meth:`facts`, then the parameters.
        A new attack gets a fitting description from a docstring alone; one whose behaviour
        depends on its parameters says so in :meth:`facts`.
        """
        parameters = ", ".join(f"{key} = {value}" for key, value in self.params().items())
        sentences = [docstring_summary(type(self)), *self.facts(), f"Parameters: {parameters}." if parameters else ""]
        return " ".join(s for s in sentences if s)

    def facts(self) -> list[str]:
        """Sentences about this configuration that the docstring cannot state; none by default."""
        return []


def docstring_summary(cls: type) -> str:
    """First paragraph of ``cls``'s own docstring as plain text (reST roles and literals unwrapped)."""
    doc = cls.__dict__.get("__doc__") or cls.__name__
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    paragraph = re.sub(r":\w+:`~?(?:[\w.]*\.)?([\w]+)`", r"\1", paragraph)  # :class:`a.b.C` -> C
    return paragraph.replace("``", "`")


# --------------------------------------------------------------------------- model handling


class PassCounter:
    """Counts sample rows going forward through a model, and backward to its input.

    Use :meth:`counting` around the code to measure; counts add up over several uses.
    A forward pre-hook counts the rows of the model's first argument; when that input takes
    part in autograd, a tensor hook on it counts its rows each time a gradient reaches it.
    """

    def __init__(self) -> None:
        self.forward = 0
        self.backward = 0

    @contextmanager
    def counting(self, model: nn.Module) -> Iterator[PassCounter]:
        """Count the passes through ``model`` made inside; the hook is removed on exit."""
        # One gradient hook per input tensor, however often it goes through the model: a hook
        # fires once per gradient computed for its tensor. Keyed by id (tensors compare
        # element-wise), with a weak reference to tell a reused id from the same tensor.
        hooked: dict[int, weakref.ref[Tensor]] = {}

        def count(module: nn.Module, args: tuple[Any, ...]) -> None:
            inputs = args[0] if args else None
            if not isinstance(inputs, Tensor) or inputs.ndim == 0:
                return
            rows = len(inputs)
            self.forward += rows
            known = hooked.get(id(inputs))
            if inputs.requires_grad and (known is None or known() is not inputs):
                hooked[id(inputs)] = weakref.ref(inputs)
                inputs.register_hook(lambda grad: self._add_backward(rows))

        handle = model.register_forward_pre_hook(count)
        try:
            yield self
        finally:
            handle.remove()

    def _add_backward(self, rows: int) -> None:
        self.backward += rows


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a stateless model)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients inside; everything restored on exit.

    Restores each module's training flag, and each parameter's ``requires_grad`` and
    ``.grad`` (some backends call ``model.zero_grad()``). Parameters and buffers are never
    written (BatchNorm statistics do not move in eval mode).
    """
    modes = [(module, module.training) for module in model.modules()]
    params = list(model.parameters())
    saved = [(p, p.requires_grad, p.grad) for p in params]
    model.eval()
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for p, requires_grad, grad in saved:
            p.requires_grad_(requires_grad)
            p.grad = grad


@contextmanager
def channels_last_weights(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """4-D parameters and buffers of ``model`` in channels-last layout inside; the originals restored on exit.

    Same values, another memory layout: a convolution with channels-last weights gives a
    channels-last output, so the layout carries through the network whatever the input's.
    Each tensor's ``.data`` is swapped back on exit, so nothing the caller holds is written.
    """
    tensors = [t for t in (*model.parameters(), *model.buffers()) if t.ndim == 4] if enabled else []
    saved = [(t, t.data) for t in tensors]
    try:
        for t in tensors:
            t.data = t.data.contiguous(memory_format=torch.channels_last)
        yield model
    finally:
        for t, data in saved:
            t.data = data


@contextmanager
def full_fp32(device: torch.device) -> Iterator[None]:
    """IEEE float32 convolutions and matmuls on CUDA inside (TF32 off); flags restored on exit.

    DeepFool stops a hair past the decision boundary (2 % overshoot). With TF32, logits
    change with the batch a sample is computed in by more than that margin, so examples
    found in one batch stop being adversarial when verified in another.
    """
    saved = []
    if device.type == "cuda":
        for holder in (torch.backends.cudnn, torch.backends.cuda.matmul):
            try:
                saved.append((holder, holder.allow_tf32))
                holder.allow_tf32 = False
            except RuntimeError:  # the new fp32_precision API is in use; leave it alone
                pass
    try:
        yield
    finally:
        for holder, allow in saved:
            holder.allow_tf32 = allow


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    """Arg-max class of ``model`` on ``x``, in batches; ``(N,)`` int64 on ``x``'s device."""
    if len(x) == 0:
        return torch.zeros(0, dtype=torch.long, device=x.device)
    return torch.cat([model(x[i:i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)])


# --------------------------------------------------------------------------- validation


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an integer >= 1, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_non_negative(name: str, value: Any) -> float:
    """Return ``float(value)`` if it is a finite real number >= 0, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_inputs(images: Any, labels: Any, indices: Sequence[int] | None, batch_size: Any) -> list[int]:
    """Validate an attack's inputs and return the indices to attack; raise ValueError naming the problem."""
    check_positive_int("batch_size", batch_size)
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a float tensor of shape (N, C, H, W), got {shape}")
    if not isinstance(labels, Tensor) or labels.shape != (len(images),) or labels.is_floating_point():
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must be an integer tensor of shape ({len(images)},), got {shape}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(
            f"images must be pixels in [0, 1] (normalise inside the model), got values in "
            f"[{images.min().item():.3g}, {images.max().item():.3g}]"
        )
    if indices is None:
        return list(range(len(images)))
    indices = [int(i) for i in indices]
    if len(indices) != len(images):
        raise ValueError(f"indices must give one data set position per image: {len(images)} images, {len(indices)} indices")
    if any(i < 0 for i in indices):
        raise ValueError(f"indices must be non-negative data set positions, got {min(indices)}")
    return indices


def _transform_fields(transform: list[float] | None) -> dict[str, float | None]:
    """``angle``, ``dx``, ``dy`` of a spatial result; all ``None`` for no (or a NaN) transform."""
    if transform is None or any(math.isnan(v) for v in transform):
        return {"angle": None, "dx": None, "dy": None}
    angle, dx, dy = transform
    return {"angle": float(angle), "dx": float(dx), "dy": float(dy)}


@contextmanager
def _progress_bar(total: int, name: str, enabled: bool) -> Iterator[Any]:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=name, unit="sample", disable=not enabled)
    try:
        yield bar
    finally:
        bar.close()
