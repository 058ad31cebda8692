"""SuperDeepFool, L2: DeepFool to the boundary, then a projection onto its normal, repeated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from robustbench_win.attacks.base import BatchOutput, check_non_negative, check_positive_int
from robustbench_win.attacks.deepfool import DeepFool, check_candidates, forward_with_input_graph, still_correct, feasible_direction

_NORMAL_NORM_MIN = 1e-6  # smallest boundary-normal norm divided by, as adv-lib's sdf


class SuperDeepFool(DeepFool):
    """SuperDeepFool L2 (Abdollahpourrostam et al. 2023): DeepFool runs to the boundary alternate with projections of the perturbation onto the boundary normal, then a bisection pulls each example back to the boundary.

    Abdollahpourrostam, Abdollahpour, Moosavi-Dezfooli et al., "Revisiting DeepFool:
    generalization and improvement", 2023 (https://arxiv.org/abs/2303.12481), the SDF(inf, 1)
    variant of the authors' code and of adv-lib's ``sdf``. Each iteration, from the current
    point ``x`` (the clean image ``x0`` at first):

    1. DeepFool runs from ``x`` until it fools the model or makes ``df_steps`` steps, landing
       at ``x~``;
    2. ``w`` is the gradient of ``f_t - f_y`` at ``x~`` (``t`` the class predicted there, or
       the class DeepFool last aimed at if still correct), normalised;
    3. ``x <- clip(x + ((x~ - x0) . w) w, 0, 1)``: the perturbation's component along the
       boundary normal, added to ``x`` as in the authors' code.

    The first ``x`` the model misclassifies is the example; at most ``steps`` iterations are
    made. A bisection of ``search_steps`` steps on the segment from ``x0`` to it then keeps
    the point nearest ``x0`` still misclassified. On an affine classifier one iteration
    reaches the closest boundary point (times ``1 + overshoot``) and the bisection brings it
    within ``2 ** -search_steps`` of the minimal norm. Box-aware like
    :class:`~robustbench_win.attacks.deepfool.ProjectedDeepFool` (the boundary normal drops
    the components :func:`feasible_direction` drops); ``iterations`` counts SuperDeepFool
    iterations. How it compares with adv-lib's ``sdf``: ``docs/attacks.md``.

    Args:
        steps: Most SuperDeepFool iterations (adv-lib's default, 100).
        df_steps: Most DeepFool steps in each iteration's run.
        candidates: Classes considered: the true class and the ``candidates - 1`` most likely
            others at the clean input (capped at the number of classes).
        overshoot: DeepFool's ``eta`` in ``x + (1 + eta) * r_tot``.
        search_steps: Bisection steps on the final segment (0: none).
    """

    name: ClassVar[str] = "superdeepfool"
    projected: ClassVar[bool] = True

    def __init__(
        self, *, steps: int = 100, df_steps: int = 50, candidates: int = 10, overshoot: float = 0.02,
        search_steps: int = 10,
    ) -> None:
        self.outer_steps = check_positive_int("steps", steps)
        super().__init__(steps=check_positive_int("df_steps", df_steps), candidates=check_candidates(candidates),
                         overshoot=check_non_negative("overshoot", overshoot))
        if isinstance(search_steps, bool) or not isinstance(search_steps, int) or search_steps < 0:
            raise ValueError(f"search_steps must be an integer >= 0 (bisection steps), got {search_steps!r}")
        self.search_steps = search_steps

    def params(self) -> dict[str, Any]:
        return {"steps": self.outer_steps, "df_steps": self.steps, "candidates": self.candidates,
                "overshoot": self.overshoot, "search_steps": self.search_steps}

    def facts(self) -> list[str]:
        return [f"At most {self.outer_steps} iterations of up to {self.steps} DeepFool steps each, "
                f"then {self.search_steps} bisection steps."]

    def _attack_batch(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int
    ) -> BatchOutput:
        x0 = x
        classes = self._candidate_classes(model, x0, y)  # (B, K), column 0 = true class
        current, adv = x0.clone(), x0.clone()
        found = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
        iterations = torch.zeros(len(x0), dtype=torch.long, device=x0.device)
        active = torch.arange(len(x0), device=x0.device)
        for iteration in range(self.outer_steps + 1):
            if iteration:  # x0 itself is correctly classified: the base class attacks no other
                fooled = ~still_correct(model, current[active], y[active])
                adv[active[fooled]] = current[active[fooled]]
                found[active[fooled]] = True
                active = active[~fooled]
            if len(active) == 0 or iteration == self.outer_steps:
                break
            run = self._descend(model, current[active], y[active], classes[active])
            current[active] = self._project(model, x0[active], current[active], run.x_adv, y[active], run.targets)
            iterations[active] += 1
        adv[found] = self._bisect(model, x0[found], adv[found], y[found])
        return BatchOutput(x_adv=adv, iterations=iterations, success=found)

    def _project(self, model: nn.Module, x0: Tensor, x: Tensor, x_df: Tensor, y: Tensor, targets: Tensor) -> Tensor:
        """``clip(x + ((x_df - x0) . w) w)``, ``w`` the unit boundary normal at ``x_df`` feasible at ``x``."""
        logits, x_leaf = forward_with_input_graph(model, x_df)
        predicted = logits.argmax(dim=1)
        other = torch.where(predicted != y, predicted, targets)
        margin = logits.gather(1, other[:, None]) - logits.gather(1, y[:, None])
        (normal,) = torch.autograd.grad(margin.sum(), x_leaf)
        normal = feasible_direction(normal, x)
        view = (-1, *([1] * (x.ndim - 1)))
        normal = normal / normal.flatten(1).norm(dim=1).clamp(min=_NORMAL_NORM_MIN).view(view)
        along = ((x_df - x0).flatten(1) * normal.flatten(1)).sum(dim=1)
        return (x + along.view(view) * normal).clamp(0.0, 1.0)

    def _bisect(self, model: nn.Module, x0: Tensor, adv: Tensor, y: Tensor) -> Tensor:
        """The point nearest ``x0`` on each segment ``x0 -> adv`` found misclassified by bisection."""
        low = torch.zeros(len(x0), dtype=x0.dtype, device=x0.device)
        high = torch.ones_like(low)
        view = (-1, *([1] * (x0.ndim - 1)))
        for _ in range(self.search_steps if len(x0) else 0):
            middle = (low + high) / 2
            fooled = ~still_correct(model, torch.lerp(x0, adv, middle.view(view)), y)
            high = torch.where(fooled, middle, high)
            low = torch.where(fooled, low, middle)
        return torch.lerp(x0, adv, high.view(view))  # exactly adv where high stayed 1
