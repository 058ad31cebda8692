"""Batched L2 DeepFool, multi-class, with the semantics of foolbox's ``L2DeepFoolAttack``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from robustbench_win.attacks.base import Attack, BatchOutput, check_non_negative, check_positive_int

# Numerical guards of foolbox 3.3 (attacks/deepfool.py), kept so that norms agree with it.
_GRAD_NORM_EPS = 1e-8  # added to gradient norms before dividing
_STEP_EPS = 1e-4  # added to each step's distance to the linearised boundary, "for numerical stability"


def check_candidates(candidates: Any) -> int:
    """Return ``candidates`` if it is an integer >= 2, else raise ``ValueError``."""
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 2:
        raise ValueError(
            f"candidates must be an integer >= 2 (the true class and at least one other), got {candidates!r}"
        )
    return candidates


@dataclass
class Descent:
    """Where one DeepFool run left each row.

    Attributes:
        x_adv: ``(B, C, H, W)`` last iterate of every row, fooled or not.
        iterations: ``(B,)`` steps made.
        targets: ``(B,)`` class whose linearised boundary the row's last step aimed at (the
            second candidate for a row that made no step).
        unchecked: Positions of the rows still correct before their last step, whose last
            iterate has not been put through the model (empty when all were seen fooled).
    """

    x_adv: Tensor
    iterations: Tensor
    targets: Tensor
    unchecked: Tensor


class DeepFoolParameters(Attack):
    """Hyper-parameters shared by every DeepFool backend, validated once here.

    Args:
        steps: Maximum number of DeepFool steps.
        candidates: Classes considered, the true class included.
        overshoot: ``eta`` in ``x0 + (1 + eta) * r_tot``.
    """

    family: ClassVar[str] = "deepfool"

    def __init__(self, *, steps: int = 50, candidates: int = 10, overshoot: float = 0.02) -> None:
        self.steps = check_positive_int("steps", steps)
        self.candidates = check_candidates(candidates)
        self.overshoot = check_non_negative("overshoot", overshoot)

    def params(self) -> dict[str, Any]:
        return {"steps": self.steps, "candidates": self.candidates, "overshoot": self.overshoot}


class DeepFool(DeepFoolParameters):
    """L2 DeepFool, multi-class, batched.

    Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool deep
    neural networks", CVPR 2016 (https://arxiv.org/abs/1511.04599), Algorithm 2 with p = 2.

    At each step the classifier is linearised around the current point ``x``; among the
    ``candidates - 1`` most likely other classes at the clean input, the one whose linearised
    boundary is closest, ``|f_k - f_y| / ||grad(f_k - f_y)||``, gives the step
    ``r = (d + 1e-4) / ||g|| * g``. Steps accumulate in ``r_tot`` and the next point is
    ``clip(x0 + (1 + overshoot) * r_tot, 0, 1)``, the reference implementation's overshoot.
    A sample stops (and is no longer computed) as soon as it is misclassified; at most
    ``steps`` steps are made. Same update, guards and stopping rule as foolbox 3's
    ``L2DeepFoolAttack`` with ``loss="logits"``, so per-sample norms agree with it (its
    clipping too, which lets a few samples stall on saturated pixels: ``docs/attacks.md``).

    Args:
        steps: Maximum number of DeepFool steps.
        candidates: Classes considered: the true class and the ``candidates - 1`` most likely
            others at the clean input (capped at the number of classes).
        overshoot: ``eta`` in ``x0 + (1 + eta) * r_tot``.
    """

    name: ClassVar[str] = "deepfool"
    channels_last: ClassVar[bool] = True
    fast_gradient_kernels: ClassVar[bool] = True
    projected: ClassVar[bool] = False  # stay in [0, 1]: projected r_tot, feasible steps (ProjectedDeepFool)

    def _attack_batch(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int
    ) -> BatchOutput:
        classes = self._candidate_classes(model, x, y)  # (B, K), column 0 = true class
        run = self._descend(model, x, y, classes)
        success = torch.ones(len(x), dtype=torch.bool, device=x.device)
        if len(run.unchecked):  # the last step's result has not been checked yet
            success[run.unchecked] = ~still_correct(model, run.x_adv[run.unchecked], y[run.unchecked])
        return BatchOutput(x_adv=run.x_adv, iterations=run.iterations, success=success)

    def _descend(self, model: nn.Module, x0: Tensor, y: Tensor, classes: Tensor) -> Descent:
        """DeepFool from ``x0``: at most ``steps`` steps per row, each row stopping once fooled."""
        r_tot = torch.zeros_like(x0)
        x_adv = x0.clone()
        iterations = torch.zeros(len(x0), dtype=torch.long, device=x0.device)
        targets = classes[:, 1].clone()
        active = torch.arange(len(x0), device=x0.device)
        for _ in range(self.steps):
            # The forward pass for the gradients also tells which samples are fooled by now;
            # it is repeated on the rest only when some of them are.
            logits, x_active = forward_with_input_graph(model, x_adv[active])
            still = logits.argmax(dim=1) == y[active]
            if not bool(still.all()):
                active = active[still]
                if len(active) == 0:
                    break
                logits, x_active = forward_with_input_graph(model, x_adv[active])
            base = x0[active] + r_tot[active] if self.projected else None
            step, targets[active] = self._closest_boundary_step(logits, x_active, classes[active], base)
            r_tot[active] += step
            if self.projected:  # keep x0 + r_tot in [0, 1]: no push is stored beyond the box
                r_tot[active] = (x0[active] + r_tot[active]).clamp(0.0, 1.0) - x0[active]
            x_adv[active] = (x0[active] + (1.0 + self.overshoot) * r_tot[active]).clamp(0.0, 1.0)
            iterations[active] += 1
        return Descent(x_adv, iterations, targets, active)

    def _candidate_classes(self, model: nn.Module, x0: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            logits = model(x0)
        num_classes = logits.shape[1]
        if num_classes < 2:
            raise ValueError(f"DeepFool needs a model with at least 2 classes, got {num_classes} output(s)")
        k = min(self.candidates, num_classes)
        others = logits.scatter(1, y[:, None], -math.inf).topk(k - 1, dim=1).indices
        return torch.cat([y[:, None], others], dim=1)

    def _step(self, logits: Tensor, x: Tensor, classes: Tensor, base: Tensor | None = None) -> Tensor:
        """One DeepFool step for every row of ``x`` (none of them fooled yet)."""
        return self._closest_boundary_step(logits, x, classes, base)[0]

    def _closest_boundary_step(
        self, logits: Tensor, x: Tensor, classes: Tensor, base: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """One DeepFool step for every row of ``x``, and the ``(n,)`` class whose boundary it aims at.

        ``logits = model(x)`` with its graph. The closest linearised boundary is found with
        one backward pass per candidate on the input only, keeping a running best instead of
        stacking all ``K - 1`` gradients (less memory, and faster on CPU than a vmap-batched
        backward).
        """
        n, k = classes.shape
        best_class = classes[:, 1].clone()
        losses = (logits.gather(1, classes[:, 1:]) - logits.gather(1, classes[:, :1])).detach()  # (n, K - 1)
        best_distance = torch.full((n,), math.inf, dtype=logits.dtype, device=x.device)
        best_norm = torch.zeros_like(best_distance)
        best_grad = torch.zeros_like(x)
        for j in range(1, k):
            cotangent = torch.zeros_like(logits)
            cotangent.scatter_(1, classes[:, j:j + 1], 1.0).scatter_(1, classes[:, :1], -1.0)
            (grad,) = torch.autograd.grad(logits, x, cotangent, retain_graph=j < k - 1)
            assert grad.shape == x.shape
            if base is not None:
                grad = feasible_direction(grad, base)
            norm = grad.flatten(1).norm(dim=1)
            distance = losses[:, j - 1].abs() / (norm + _GRAD_NORM_EPS)
            better = distance < best_distance  # strict: ties keep the first candidate, as argmin
            best_distance = torch.where(better, distance, best_distance)
            best_norm = torch.where(better, norm, best_norm)
            best_class = torch.where(better, classes[:, j], best_class)
            best_grad = torch.where(better.view(-1, *([1] * (x.ndim - 1))), grad, best_grad)
        scale = (best_distance + _STEP_EPS) / (best_norm + _GRAD_NORM_EPS)
        return scale.view(-1, *([1] * (x.ndim - 1))) * best_grad, best_class


def feasible_direction(grad: Tensor, base: Tensor) -> Tensor:
    """``grad`` without the components that would push a pixel of ``base`` out of [0, 1].

    The projection of the step direction onto the box's tangent cone at ``base``: a pixel at
    0 cannot decrease and a pixel at 1 cannot increase, so a linearised step computed with
    those components would spend part of its length where clipping throws it away.
    """
    blocked = ((base <= 0.0) & (grad < 0)) | ((base >= 1.0) & (grad > 0))
    return grad.masked_fill(blocked, 0.0)


def forward_with_input_graph(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """``model(x)`` with a graph back to (a leaf copy of) ``x``, which is returned too."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        return model(x), x


def still_correct(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Whether ``model`` still predicts ``y`` on each row of ``x`` (no graph)."""
    with torch.no_grad():
        return model(x).argmax(dim=1) == y


class ProjectedDeepFool(DeepFool):
    """L2 DeepFool that keeps its iterate in [0, 1] and steps only where pixels can move, so it does not stall.

    Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool deep
    neural networks", CVPR 2016 (https://arxiv.org/abs/1511.04599).

    :class:`DeepFool` with two changes for the box [0, 1]: after every step the accumulated
    perturbation is projected so that ``x0 + r_tot`` stays in [0, 1]
    (``r_tot <- clip(x0 + r_tot, 0, 1) - x0``), as ART and adv-lib do; and each candidate's
    gradient is projected onto the directions the box allows at ``x0 + r_tot``
    (:func:`feasible_direction`) before the distance to the linearised boundary and the step
    are computed, DeepFool's linearised step for the box-constrained problem. Overshoot,
    candidates, guards and the stopping rule are those of :class:`DeepFool`; on an image with
    no pixel at 0 or 1 the two give the same iterates (what the changes buy on digits:
    ``docs/attacks.md``).

    Takes the arguments of :class:`DeepFool` (``steps``, ``candidates``, ``overshoot``).
    """

    name: ClassVar[str] = "deepfool-projected"
    projected: ClassVar[bool] = True
