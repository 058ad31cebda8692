"""Augmented Lagrangian Method for Adversarial attacks (ALMA), L2, batched with early exit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from robustbench_win.attacks.base import Attack, BatchOutput, check_non_negative, check_positive_int
from robustbench_win.attacks.minimal_norm_loop import (
    batch_view, check_fraction, check_init, check_patience, check_positive, check_tolerance, decisively_adversarial,
    keep_smallest, l2_norms, RANDOM_START_RADIUS, start_facts, starting_perturbation,
)

_MU_RANGE = (1e-6, 1e12)  # the multiplier's clamp, as in the authors' code
_RMS_FLOOR = 1e-8  # added to RMSProp's root mean square before dividing by it


def difference_of_logits_ratio(logits: Tensor, y: Tensor, tolerance: float) -> Tensor:
    """``(n,)`` ``(f_y - max_{k != y} f_k + tolerance) / (f_(1) - f_(3))``: negative = fooled.

    The untargeted DLR of Croce & Hein (2020) in the form ALMA uses: positive while the true
    class wins by more than ``-tolerance``, scaled by the gap between the largest and the third
    largest logit so that the constraint does not depend on the logits' scale.
    """
    others = logits.scatter(1, y[:, None], -math.inf)
    margin = logits.gather(1, y[:, None]).squeeze(1) - others.amax(dim=1)
    top3 = logits.topk(k=min(3, logits.shape[1]), dim=1).values
    return (margin + tolerance) / (top3[:, 0] - top3[:, -1] + 1e-8)


def penalty_p2(dlr: Tensor, rho: Tensor, mu: Tensor) -> Tensor:
    """ALMA's penalty-Lagrangian P2 of the constraint ``dlr <= 0`` (Birgin et al. 2005).

    ``mu y + mu rho y^2 + rho^2 y^3 / 6`` for ``y >= 0`` (not yet adversarial: grows fast),
    ``mu y / (1 - rho y)`` for ``y < 0`` (adversarial: a bounded reward).
    """
    above = mu * dlr + mu * rho * dlr ** 2 + rho ** 2 * dlr ** 3 / 6
    below = mu * dlr / (1 - rho * dlr.clamp(max=0))
    return torch.where(dlr >= 0, above, below)


def penalty_p2_slope(dlr: Tensor, rho: Tensor, mu: Tensor) -> Tensor:
    """``d penalty_p2 / d dlr``: the multiplier's next estimate (the method of multipliers)."""
    above = mu + 2 * mu * rho * dlr + rho ** 2 * dlr ** 2 / 2
    below = mu / (1 - rho * dlr.clamp(max=0)) ** 2
    return torch.where(dlr >= 0, above, below)


@dataclass
class _Walk:
    """Per-sample state of one batch (rows in batch order)."""

    delta: Tensor
    square_avg: Tensor
    momentum: Tensor
    mu: Tensor
    rho: Tensor
    previous_dlr: Tensor
    found: Tensor
    step_found: Tensor
    best_norm: Tensor
    best_delta: Tensor
    stale: Tensor
    steps: Tensor


class ALMA(Attack):
    """ALMA, L2 (Rony et al., ICCV 2021): minimise the norm under the constraint "fooled" with an augmented Lagrangian, by RMSProp steps.

    Rony, Granger, Pedersoli & Ben Ayed, "Augmented Lagrangian Adversarial Attacks", ICCV 2021
    (https://arxiv.org/abs/2011.11857), untargeted, penalty P2, as adv-lib's ``alma`` computes
    it. Each step minimises ``||delta||_2 + P2(dlr(x0 + delta); rho, mu)`` (only the penalty at
    the first step), with ``dlr`` the difference-of-logits ratio of
    :func:`difference_of_logits_ratio`: an RMSProp step with momentum ``alpha`` whose learning
    rate decays exponentially from ``lr_init`` to ``lr_init * lr_reduction`` between the step a
    sample is first fooled and the last step, then ``x0 + delta`` clipped to [0, 1]. The
    multiplier ``mu`` follows the penalty's slope (moving average ``alpha``); every
    ``check_steps`` steps the penalty ``rho`` grows by ``gamma`` for a sample neither fooled yet
    nor with its ``dlr`` down by the factor ``tau``. The result is the smallest adversarial
    point seen.

    Family ``"minimal-norm"``: results enter the best-known norms and the attack-quality table.

    Args:
        steps: Most steps per sample (the learning-rate schedule spans this many).
        lr_init: First learning rate.
        lr_reduction: Last learning rate over the first.
        mu_init: First multiplier.
        rho_init: First penalty parameter.
        check_steps: Steps between checks of the constraint's progress.
        tau: Relative decrease of ``dlr`` that counts as progress.
        gamma: Factor by which ``rho`` grows without progress.
        alpha: Moving-average weight of the multiplier, RMSProp and momentum.
        logit_tolerance: Margin by which the true logit must lose (see
            :func:`difference_of_logits_ratio`).
        init: ``"none"``: start from the clean image, as the paper; ``"deepfool"``: from
            projected DeepFool's boundary point; ``"random"``: from a random point near the
            clean image (a restart for a reference).
        start_radius: L2 radius of the ball a random start is drawn in (``init="random"`` only).
        patience: Steps without improvement after which a fooled sample is done; 0: every
            sample runs all steps, as the paper.
        tolerance: Relative decrease of the best norm that counts as an improvement.
    """

    name: ClassVar[str] = "alma"
    family: ClassVar[str] = "minimal-norm"
    channels_last: ClassVar[bool] = True
    fast_gradient_kernels: ClassVar[bool] = True

    def __init__(
        self, *, steps: int = 1000, lr_init: float = 0.1, lr_reduction: float = 0.01, mu_init: float = 1.0,
        rho_init: float = 1.0, check_steps: int = 10, tau: float = 0.95, gamma: float = 1.2, alpha: float = 0.9,
        logit_tolerance: float = 1e-4, init: str = "none", patience: int = 0, tolerance: float = 1e-3,
        start_radius: float = RANDOM_START_RADIUS,
    ) -> None:
        self.steps = check_positive_int("steps", steps)
        self.lr_init = check_positive("lr_init", lr_init)
        self.lr_reduction = check_fraction("lr_reduction", lr_reduction)
        self.mu_init = check_positive("mu_init", mu_init)
        self.rho_init = check_positive("rho_init", rho_init)
        self.check_steps = check_positive_int("check_steps", check_steps)
        self.tau = check_fraction("tau", tau)
        self.gamma = check_positive("gamma", gamma)
        if self.gamma <= 1:
            raise ValueError(f"gamma must be a growth factor > 1, got {gamma!r}")
        self.alpha = check_fraction("alpha", alpha)
        self.logit_tolerance = check_non_negative("logit_tolerance", logit_tolerance)
        self.init = check_init(init)
        self.start_radius = check_positive("start_radius", start_radius)
        self.patience = check_patience(patience)
        self.tolerance = check_tolerance(tolerance)

    def params(self) -> dict[str, Any]:
        return {"steps": self.steps, "lr_init": self.lr_init, "lr_reduction": self.lr_reduction,
                "mu_init": self.mu_init, "rho_init": self.rho_init, "check_steps": self.check_steps,
                "tau": self.tau, "gamma": self.gamma, "alpha": self.alpha, "logit_tolerance": self.logit_tolerance,
                "init": self.init, **({"start_radius": self.start_radius} if self.init == "random" else {}),
                "patience": self.patience, "tolerance": self.tolerance}

    def facts(self) -> list[str]:
        start = start_facts(self.init, self.start_radius)
        done = ("every sample runs all steps" if self.patience == 0
                else f"a fooled sample done after {self.patience} steps without improvement")
        return [f"Over {self.steps} steps the learning rate decays from {self.lr_init:g} to "
                f"{self.lr_init * self.lr_reduction:g} after a sample's first success. Started from {start}, "
                f"smallest adversarial point kept, {done}."]

    def _attack_batch(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int
    ) -> BatchOutput:
        walk = self._start(model, x, y, indices, batch_size)
        active = torch.arange(len(x), device=x.device)
        for step in range(self.steps):
            self._step(model, x[active], y[active], walk, active, step)
            if self.patience:
                done = walk.best_norm[active].isfinite() & (walk.stale[active] >= self.patience)
                active = active[~done]
            if len(active) == 0:
                break
        return BatchOutput(x_adv=x + walk.best_delta, iterations=walk.steps, success=walk.best_norm.isfinite())

    def _start(self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], batch_size: int) -> _Walk:
        n, device = len(x), x.device
        delta = starting_perturbation(self.init, model, x, y, indices, batch_size=batch_size, radius=self.start_radius)
        per_sample = lambda value: torch.full((n,), value, dtype=x.dtype, device=device)  # noqa: E731
        return _Walk(
            delta=delta, square_avg=torch.ones_like(x), momentum=torch.zeros_like(x),
            mu=per_sample(self.mu_init), rho=per_sample(self.rho_init), previous_dlr=per_sample(math.inf),
            found=torch.zeros(n, dtype=torch.bool, device=device), step_found=per_sample(self.steps + 1),
            best_norm=per_sample(math.inf), best_delta=torch.zeros_like(x),
            stale=torch.zeros(n, dtype=torch.long, device=device), steps=torch.zeros(n, dtype=torch.long, device=device),
        )

    def _step(self, model: nn.Module, x0: Tensor, y: Tensor, walk: _Walk, active: Tensor, step: int) -> None:
        """One ALMA step on the active samples, updating ``walk`` in place."""
        delta = walk.delta[active].requires_grad_(True)
        mu, rho = walk.mu[active], walk.rho[active]
        with torch.enable_grad():
            logits = model(x0 + delta)
            dlr = difference_of_logits_ratio(logits, y, self.logit_tolerance)
            norm = l2_norms(delta)
        found = walk.found[active]
        if step == 0:
            walk.previous_dlr[active] = dlr.detach()
        elif (step + 1) % self.check_steps == 0:
            progressed = dlr.detach() < self.tau * walk.previous_dlr[active]
            rho = torch.where(found | progressed, rho, self.gamma * rho)
            walk.previous_dlr[active] = dlr.detach()
        if step:
            mu = torch.lerp(mu, penalty_p2_slope(dlr.detach(), rho, mu), 1 - self.alpha).clamp(*_MU_RANGE)
        is_adversarial = dlr.detach() < 0
        walk.step_found[active] = torch.where(~found & is_adversarial, float(step), walk.step_found[active])
        walk.found[active] = found | is_adversarial
        keep_smallest(walk, active, delta.detach(), norm.detach(), decisively_adversarial(logits, y), self.tolerance)
        with torch.enable_grad():
            penalty = penalty_p2(dlr, rho, mu)
            loss = penalty if step == 0 else norm + penalty
            (gradient,) = torch.autograd.grad(loss.sum(), delta)
        step_found = walk.step_found[active]
        decay = self.lr_reduction ** ((step - step_found).clamp(min=0) / (self.steps - step_found))
        square_avg = walk.square_avg[active].mul_(self.alpha).addcmul_(gradient, gradient, value=1 - self.alpha)
        momentum = walk.momentum[active].mul_(self.alpha).addcdiv_(gradient, square_avg.sqrt().add_(_RMS_FLOOR))
        new_delta = delta.detach() - batch_view(self.lr_init * decay, delta) * momentum
        walk.delta[active] = (x0 + new_delta).clamp(0.0, 1.0) - x0
        walk.square_avg[active], walk.momentum[active] = square_avg, momentum
        walk.mu[active], walk.rho[active] = mu, rho
