"""Fast Minimum-Norm attack, L2 (Pintor et al., NeurIPS 2021), batched."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from robustbench_win.attacks.base import check_non_negative
from robustbench_win.attacks.minimal_norm_loop import (
    MinimalNormL2Attack, StepInput, check_fraction, check_positive, cosine_annealing, l2_norms, logit_margin,
    rescale_and_clip, unit_directions,
)


class FMN(MinimalNormL2Attack):
    """Fast Minimum-Norm attack (FMN), L2: a gradient walk whose norm budget is steered to the boundary.

    Pintor, Roli, Brendel & Biggio, "Fast Minimum-norm Adversarial Attacks through Adaptive
    Norm Constraints", NeurIPS 2021 (https://arxiv.org/abs/2102.12827), Algorithm 1 with
    p = 2, untargeted.

    The loss is the logit margin ``f_y - max_{k != y} f_k``. Each step: with ``g`` its gradient
    at ``x0 + delta``, the budget becomes ``min(epsilon (1 - gamma), best norm)`` if
    ``x0 + delta`` is adversarial, ``epsilon (1 + gamma)`` if it is not but an adversarial
    point was seen before, and ``(1 + overshoot) (||delta|| + |margin| / ||g||)`` (the
    linearised distance to the boundary) before the first success; then
    ``delta <- delta - alpha g / ||g||``, is projected onto the L2 ball of radius ``epsilon``
    and clipped so that ``x0 + delta`` is in [0, 1]. ``alpha`` and ``gamma`` decay from their
    initial to their final values along a cosine. The result is the smallest adversarial
    point seen. Three additions, each switched off by one argument (``init="none",
    overshoot=0, box_aware=False`` is Algorithm 1 as the authors' code implements it): a start
    at projected DeepFool's boundary point, an overshoot of the first budget, and box-aware
    steps; why, and how adv-lib's and foolbox's versions differ: ``docs/attacks.md``.

    Args:
        steps: Gradient steps per sample (the annealing schedules span this many).
        alpha_init: First step length (L2, pixels in [0, 1]).
        alpha_final: Last step length; ``None``: ``alpha_init / 100``.
        gamma_init: First relative change of the budget per step.
        gamma_final: Last relative change of the budget per step.
        overshoot: Relative overshoot of the linearised distance before the first success.
        box_aware: Drop the gradient components that push pixels at 0 or 1 out of [0, 1].
        **common: ``init`` (default ``"deepfool"``; ``"none"``: from the clean image, as in the
            paper; ``"random"``: from a random point near it), ``start_radius``, ``patience`` and ``tolerance``, as
            :class:`~robustbench_win.attacks.minimal_norm_loop.MinimalNormL2Attack` takes them.
    """

    name: ClassVar[str] = "fmn"

    def __init__(
        self,
        *,
        steps: int = 200,
        alpha_init: float = 1.0,
        alpha_final: float | None = None,
        gamma_init: float = 0.05,
        gamma_final: float = 0.001,
        overshoot: float = 0.02,
        box_aware: bool = True,
        **common: Any,
    ) -> None:
        super().__init__(steps=steps, box_aware=box_aware, **common)
        self.alpha_init = check_positive("alpha_init", alpha_init)
        self.alpha_final = self.alpha_init / 100 if alpha_final is None else check_positive("alpha_final", alpha_final)
        self.gamma_init = check_fraction("gamma_init", gamma_init)
        self.gamma_final = check_fraction("gamma_final", gamma_final)
        self.overshoot = check_non_negative("overshoot", overshoot)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "alpha_init": self.alpha_init, "alpha_final": self.alpha_final,
                "gamma_init": self.gamma_init, "gamma_final": self.gamma_final, "overshoot": self.overshoot}

    def facts(self) -> list[str]:
        return [f"Over {self.steps} steps the step length decays from {self.alpha_init:g} to {self.alpha_final:g} "
                f"and the budget factor from {self.gamma_init:g} to {self.gamma_final:g} along a cosine; the budget "
                f"before the first success overshoots the linearised distance by {self.overshoot:g}.", *super().facts()]

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return -logit_margin(logits, y)

    def _update(self, state: StepInput) -> tuple[Tensor, Tensor]:
        alpha = cosine_annealing(self.alpha_init, self.alpha_final, state.step, self.steps)
        gamma = cosine_annealing(self.gamma_init, self.gamma_final, state.step, self.steps)
        norm = l2_norms(state.delta)
        to_boundary = state.loss.abs() / l2_norms(state.gradient).clamp(min=1e-12)
        epsilon = torch.where(
            state.is_adversarial,
            torch.minimum(state.epsilon * (1 - gamma), state.best_norm),
            torch.where(state.found, state.epsilon * (1 + gamma), (1 + self.overshoot) * (norm + to_boundary)),
        ).minimum(state.worst_norm)
        delta = state.delta + alpha * unit_directions(state.gradient)  # down the margin
        return rescale_and_clip(state.x0, delta, epsilon, only_shrink=True), epsilon

