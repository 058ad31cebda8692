"""Decoupled Direction and Norm attack (Rony et al., CVPR 2019), batched."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from robustbench_win.attacks.minimal_norm_loop import (
    MinimalNormL2Attack, StepInput, check_fraction, check_positive, cosine_annealing, rescale_and_clip, unit_directions,
)


def other_classes_log_sum_exp_margin(logits: Tensor, y: Tensor) -> Tensor:
    """``(n,)`` ``logsumexp_{k != y} f_k - f_y``: cross-entropy's gradient direction without underflow.

    The gradient of the cross-entropy with respect to the logits is ``(1 - p_y)`` times this
    function's, so after normalisation both give the same direction; this one stays non-zero
    when ``p_y`` rounds to 1 in float32 (a very confident model).
    """
    others = logits.scatter(1, y[:, None], -float("inf"))
    return others.logsumexp(dim=1) - logits.gather(1, y[:, None]).squeeze(1)


class DDN(MinimalNormL2Attack):
    """Decoupled Direction and Norm attack (DDN), L2: cross-entropy ascent on a sphere whose radius adapts.

    Rony, Hafemann, Oliveira, Ben Ayed, Sabourin & Granger, "Decoupling Direction and Norm
    for Efficient Gradient-Based L2 Adversarial Attacks and Defenses", CVPR 2019
    (https://arxiv.org/abs/1811.09600), Algorithm 1, untargeted, without quantisation.

    Each step: ``delta <- delta + alpha g / ||g||`` with ``g`` the gradient of the
    cross-entropy at ``x0 + delta`` (its direction is computed without underflow, see
    :func:`other_classes_log_sum_exp_margin`), ``alpha`` decaying from ``alpha_init`` to
    ``alpha_final`` along a cosine; the norm ``epsilon`` shrinks by ``1 - gamma`` if
    ``x0 + delta`` was adversarial and grows by ``1 + gamma`` if not; ``delta`` is rescaled to
    norm ``epsilon`` and ``x0 + delta`` clipped to [0, 1]. The direction is thus decoupled
    from the norm. The result is the smallest adversarial point seen. By default
    (``init="deepfool"``) the walk starts from projected DeepFool's adversarial point pulled
    back to the boundary, with its norm as the first ``epsilon``; the paper (and
    ``init="none"``) starts from the clean image with ``epsilon = initial_norm`` (why the
    start matters: ``docs/attacks.md``).

    Args:
        steps: Gradient steps per sample (the step-length schedule spans this many).
        gamma: Relative change of the norm per step.
        initial_norm: Norm of the first step.
        alpha_init: First step length.
        alpha_final: Last step length.
        **common: ``box_aware`` (default off), ``init`` (default ``"deepfool"``; ``"none"``: from
            the clean image, as in the paper; ``"random"``: from a random point near it), ``start_radius``,
            ``patience`` and ``tolerance``, as
            :class:`~robustbench_win.attacks.minimal_norm_loop.MinimalNormL2Attack` takes them.
    """

    name: ClassVar[str] = "ddn"

    def __init__(
        self,
        *,
        steps: int = 200,
        gamma: float = 0.05,
        initial_norm: float = 1.0,
        alpha_init: float = 1.0,
        alpha_final: float = 0.01,
        **common: Any,
    ) -> None:
        super().__init__(steps=steps, **common)
        self.gamma = check_fraction("gamma", gamma)
        self.initial_norm = check_positive("initial_norm", initial_norm)
        self.alpha_init = check_positive("alpha_init", alpha_init)
        self.alpha_final = check_positive("alpha_final", alpha_final)

    def _initial_epsilon(self) -> float:
        return self.initial_norm

    def params(self) -> dict[str, Any]:
        return {**super().params(), "gamma": self.gamma, "initial_norm": self.initial_norm,
                "alpha_init": self.alpha_init, "alpha_final": self.alpha_final}

    def facts(self) -> list[str]:
        first = "projected DeepFool's norm" if self.init == "deepfool" else f"{self.initial_norm:g}"
        return [f"Over {self.steps} steps the norm changes by a factor 1 ± {self.gamma:g} per step from {first}, and "
                f"the step length decays from {self.alpha_init:g} to {self.alpha_final:g} along a cosine.",
                *super().facts()]

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return other_classes_log_sum_exp_margin(logits, y)

    def _update(self, state: StepInput) -> tuple[Tensor, Tensor]:
        alpha = cosine_annealing(self.alpha_init, self.alpha_final, state.step, self.steps)
        delta = state.delta + alpha * unit_directions(state.gradient)  # up the cross-entropy
        factor = torch.where(state.is_adversarial, 1.0 - self.gamma, 1.0 + self.gamma)
        epsilon = (state.epsilon * factor).minimum(state.worst_norm)
        return rescale_and_clip(state.x0, delta, epsilon, only_shrink=False), epsilon
