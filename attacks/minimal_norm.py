"""The loop shared by FMN and DDN: gradient steps on a perturbation whose L2 norm is steered.

Both attacks move a perturbation ``delta`` along a normalised gradient, then rescale it to an
L2 budget ``epsilon`` that shrinks while ``x0 + delta`` is adversarial and grows while it is
not, and clip ``x0 + delta`` to [0, 1]. They keep improving after their first success, so the
answer is the smallest adversarial point seen, not the last one. This module holds what they
share (batching, best-so-far tracking, the rule for when a sample is done); each attack
supplies its loss and its update of ``delta`` and ``epsilon``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from robustbench_win.attacks.base import Attack, BatchOutput, check_non_negative, check_positive_int
from robustbench_win.attacks.deepfool import feasible_direction

_NORM_FLOOR = 1e-12  # smallest gradient or perturbation norm divided by


def cosine_annealing(start: float, end: float, step: int, steps: int) -> float:
    """``start`` at step 0, decaying along half a cosine to ``end`` at step ``steps``."""
    return end + (start - end) * (1 + math.cos(math.pi * step / steps)) / 2


def check_patience(patience: Any) -> int:
    """Return ``patience`` if it is an integer >= 0, else raise ``ValueError``."""
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise ValueError(f"patience must be an integer >= 0 (0: every sample runs all steps), got {patience!r}")
    return patience


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool, else raise ``ValueError``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_positive(name: str, value: Any) -> float:
    """Return ``float(value)`` if it is a finite number > 0, else raise ``ValueError``."""
    number = check_non_negative(name, value)
    if number == 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def check_fraction(name: str, value: Any) -> float:
    """Return ``float(value)`` if it is a number in (0, 1), else raise ``ValueError``."""
    number = check_non_negative(name, value)
    if not 0 < number < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return number


def batch_view(values: Tensor, like: Tensor) -> Tensor:
    """``(B,)`` per-sample values shaped ``(B, 1, 1, ...)`` to broadcast against ``like``."""
    return values.view(-1, *([1] * (like.ndim - 1)))


def l2_norms(batch: Tensor) -> Tensor:
    """``(B,)`` L2 norm of each sample of a ``(B, ...)`` tensor."""
    return batch.flatten(1).norm(dim=1)


def unit_directions(gradient: Tensor) -> Tensor:
    """Each sample's gradient divided by its L2 norm (a zero gradient stays zero)."""
    return gradient / batch_view(l2_norms(gradient).clamp(min=_NORM_FLOOR), gradient)


def rescale_and_clip(x0: Tensor, delta: Tensor, epsilon: Tensor, *, only_shrink: bool) -> Tensor:
    """Scale each ``delta`` to L2 norm ``epsilon`` (at most ``epsilon`` with ``only_shrink``), then
    clip ``x0 + delta`` to [0, 1]; returns the new perturbation."""
    factor = epsilon / l2_norms(delta).clamp(min=_NORM_FLOOR)
    if only_shrink:
        factor = factor.clamp(max=1.0)
    delta = delta * batch_view(factor, delta)
    return (x0 + delta).clamp(0.0, 1.0) - x0


@dataclass
class Iterate:
    """The per-sample state of a batch, rows in batch order.

    Attributes:
        delta: ``(B, C, H, W)`` current perturbation; ``x0 + delta`` is in [0, 1].
        epsilon: ``(B,)`` current L2 budget (``inf`` until the attack sets one).
        found: ``(B,)`` an adversarial point has been seen.
        best_norm: ``(B,)`` L2 norm of the smallest adversarial perturbation seen (``inf``: none).
        best_delta: ``(B, C, H, W)`` that perturbation (zero while none).
        stale: ``(B,)`` steps since ``best_norm`` last fell by more than the tolerance.
        steps: ``(B,)`` gradient evaluations made for the sample.
    """

    delta: Tensor
    epsilon: Tensor
    found: Tensor
    best_norm: Tensor
    best_delta: Tensor
    stale: Tensor
    steps: Tensor

    @classmethod
    def start(cls, x0: Tensor, epsilon: float) -> Iterate:
        """All-zero perturbations with budget ``epsilon``, nothing found yet."""
        n = len(x0)
        return cls(
            delta=torch.zeros_like(x0), epsilon=torch.full((n,), epsilon, dtype=x0.dtype, device=x0.device),
            found=torch.zeros(n, dtype=torch.bool, device=x0.device),
            best_norm=torch.full((n,), math.inf, dtype=x0.dtype, device=x0.device),
            best_delta=torch.zeros_like(x0), stale=torch.zeros(n, dtype=torch.long, device=x0.device),
            steps=torch.zeros(n, dtype=torch.long, device=x0.device),
        )


@dataclass
class StepInput:
    """What one step of the attack knows about the samples still running (rows = ``active``).

    Attributes:
        step: 0-based step number (for the annealed schedules).
        x0: ``(n, C, H, W)`` clean images.
        delta: ``(n, C, H, W)`` perturbations the gradient was taken at.
        epsilon: ``(n,)`` budgets before this step's update.
        found: ``(n,)`` an adversarial point has been seen (this step's included).
        best_norm: ``(n,)`` smallest adversarial norm so far (this step's included).
        is_adversarial: ``(n,)`` ``x0 + delta`` is misclassified.
        loss: ``(n,)`` the attack's loss at ``x0 + delta``.
        gradient: ``(n, C, H, W)`` gradient of ``loss`` with respect to ``delta``.
        worst_norm: ``(n,)`` largest L2 distance to any point of [0, 1]^d (a cap on ``epsilon``).
    """

    step: int
    x0: Tensor
    delta: Tensor
    epsilon: Tensor
    found: Tensor
    best_norm: Tensor
    is_adversarial: Tensor
    loss: Tensor
    gradient: Tensor
    worst_norm: Tensor


class MinimalNormL2Attack(Attack):
    """Shared batched loop of FMN and DDN; subclasses give the loss and the update.

    A sample is *done*, and leaves the batch, when it has an adversarial point and its best
    norm has not fallen by more than ``tolerance`` (relative) for ``patience`` consecutive
    steps: the budget then only oscillates around a boundary point already found. Samples
    without an adversarial point run all ``steps``. With ``patience=0`` every sample runs
    all ``steps``. The reported ``iterations`` are the gradient steps a sample used.

    With ``box_aware`` the gradient loses the components that would push a pixel already at
    0 or 1 out of [0, 1] (:func:`~robustbench_win.attacks.deepfool.feasible_direction`)
    before it is normalised, so that no part of a step is spent where the clip to [0, 1]
    throws it away; on digits, whose pixels are mostly exactly 0 or 1, that decides whether
    FMN finds an adversarial point at all.

    Family ``"deepfool"``: results feed the minimal-L2-norm table next to DeepFool's.

    Args:
        steps: Most gradient steps per sample (the annealing schedules span this many).
        box_aware: Drop gradient components that point out of [0, 1] where a pixel is at a
            bound.
        patience: Steps without improvement after which a sample with an adversarial point
            is done; 0: never leave early.
        tolerance: Relative decrease of the best norm that counts as an improvement.
    """

    family: ClassVar[str] = "deepfool"

    def __init__(self, *, steps: int, box_aware: bool, patience: int, tolerance: float) -> None:
        self.steps = check_positive_int("steps", steps)
        self.box_aware = check_bool("box_aware", box_aware)
        self.patience = check_patience(patience)
        self.tolerance = check_non_negative("tolerance", tolerance)
        if self.tolerance >= 1:
            raise ValueError(f"tolerance must be a relative decrease below 1, got {tolerance!r}")

    def params(self) -> dict[str, Any]:
        return {"steps": self.steps, "box_aware": self.box_aware, "patience": self.patience, "tolerance": self.tolerance}

    def _initial_epsilon(self) -> float:
        """Budget before the first update (``inf``: none yet)."""
        return math.inf

    def _patience_clause(self) -> str:
        """End of a :meth:`describe` sentence saying when a sample leaves the batch."""
        if self.patience == 0:
            return ""
        return f", a fooled sample done after {self.patience} steps without improvement"

    @abstractmethod
    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """``(n,)`` per-sample loss whose gradient with respect to the input guides the step."""

    @abstractmethod
    def _update(self, state: StepInput) -> tuple[Tensor, Tensor]:
        """New ``(delta, epsilon)`` of the active samples, ``x0 + delta`` inside [0, 1]."""

    def _attack_batch(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int
    ) -> BatchOutput:
        state = Iterate.start(x, self._initial_epsilon())
        worst_norm = l2_norms(torch.maximum(x, 1.0 - x))
        active = torch.arange(len(x), device=x.device)
        for step in range(self.steps):
            delta = state.delta[active].requires_grad_(True)
            with torch.enable_grad():
                logits = model(x[active] + delta)
                loss = self._loss(logits, y[active])
                (gradient,) = torch.autograd.grad(loss.sum(), delta)
            if self.box_aware:
                gradient = feasible_direction(gradient, x[active] + delta.detach())
            is_adversarial = logits.argmax(dim=1) != y[active]
            self._track_best(state, active, delta.detach(), is_adversarial)
            if step == self.steps - 1:
                break  # the schedule is over: no point in an update nobody evaluates
            new_delta, new_epsilon = self._update(StepInput(
                step=step, x0=x[active], delta=delta.detach(), epsilon=state.epsilon[active],
                found=state.found[active], best_norm=state.best_norm[active], is_adversarial=is_adversarial,
                loss=loss.detach(), gradient=gradient, worst_norm=worst_norm[active],
            ))
            state.delta[active], state.epsilon[active] = new_delta, new_epsilon
            active = active[~self._done(state, active)]
            if len(active) == 0:
                break
        return BatchOutput(x_adv=x + state.best_delta, iterations=state.steps, success=state.found)

    def _track_best(self, state: Iterate, active: Tensor, delta: Tensor, is_adversarial: Tensor) -> None:
        """Keep the smallest adversarial perturbation; count steps without improvement."""
        norm = l2_norms(delta)
        best = state.best_norm[active]
        smaller = is_adversarial & (norm < best)
        improved = is_adversarial & (norm < best * (1.0 - self.tolerance))
        state.best_norm[active] = torch.where(smaller, norm, best)
        state.best_delta[active] = torch.where(batch_view(smaller, delta), delta, state.best_delta[active])
        state.found[active] |= is_adversarial
        state.stale[active] = torch.where(improved, 0, state.stale[active] + 1)
        state.steps[active] += 1

    def _done(self, state: Iterate, active: Tensor) -> Tensor:
        """``(n,)`` which active samples are done (see the class docstring)."""
        if self.patience == 0:
            return torch.zeros(len(active), dtype=torch.bool, device=active.device)
        return state.found[active] & (state.stale[active] >= self.patience)
