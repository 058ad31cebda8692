"""The loop shared by FMN and DDN: gradient steps on a perturbation whose L2 norm is steered.

Both attacks move a perturbation ``delta`` along a normalised gradient, then rescale it to an
L2 budget ``epsilon`` that shrinks while ``x0 + delta`` is adversarial and grows while it is
not, and clip ``x0 + delta`` to [0, 1]. They keep improving after their first success, so the
answer is the smallest adversarial point seen, not the last one. This module holds what they
share (batching, the starting point, best-so-far tracking, the rule for when a sample is
done); each attack supplies its loss and its update of ``delta`` and ``epsilon``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from robustbench_win.attacks.base import Attack, BatchOutput, check_non_negative, check_positive_int
from robustbench_win.attacks.deepfool import ProjectedDeepFool, feasible_direction

_NORM_FLOOR = 1e-12  # smallest gradient or perturbation norm divided by
# A point counts as adversarial when the best other logit beats the true one by more than this
# share of the largest logit magnitude: these attacks end a rounding error from the boundary,
# and a tie there can flip when the same image is computed in another batch.
_DECISIVE_MARGIN = 1e-5
BOUNDARY_SEARCH_STEPS = 10  # bisection steps from a starting point back towards the clean image
INITS: tuple[str, ...] = ("deepfool", "none", "random")
# init="random": a point drawn uniformly in the L2 ball of this radius around the clean image
# (pixels in [0, 1]), clipped into [0, 1]; a restart away from both the clean image and DeepFool.
RANDOM_START_RADIUS = 0.1
RANDOM_START_SEED = 20_24  # added to a sample's index: its own draw, whatever the batch


def logit_margin(logits: Tensor, y: Tensor) -> Tensor:
    """``(n,)`` true-class logit minus the largest other logit (negative = misclassified)."""
    others = logits.scatter(1, y[:, None], -math.inf)
    return logits.gather(1, y[:, None]).squeeze(1) - others.amax(dim=1)


def decisively_adversarial(logits: Tensor, y: Tensor) -> Tensor:
    """``(n,)`` misclassified by more than a rounding error (see ``_DECISIVE_MARGIN``)."""
    scale = logits.detach().abs().amax(dim=1).clamp(min=1.0)
    return logit_margin(logits.detach(), y) < -_DECISIVE_MARGIN * scale


@torch.no_grad()
def boundary_search(
    model: nn.Module, x0: Tensor, x1: Tensor, y: Tensor, *, steps: int = BOUNDARY_SEARCH_STEPS
) -> Tensor:
    """Perturbation to the point of the segment ``x0 -> x1`` nearest ``x0`` found adversarial.

    Bisection on ``t`` in ``x0 + t (x1 - x0)``, ``x1`` assumed adversarial; the segment stays
    in [0, 1] when both ends do. Returns ``t_high (x1 - x0)``, ``(n, C, H, W)``.
    """
    low = torch.zeros(len(x0), dtype=x0.dtype, device=x0.device)
    high = torch.ones_like(low)
    for _ in range(steps):
        middle = (low + high) / 2
        adversarial = decisively_adversarial(model(x0 + batch_view(middle, x0) * (x1 - x0)), y)
        high = torch.where(adversarial, middle, high)
        low = torch.where(adversarial, low, middle)
    return batch_view(high, x0) * (x1 - x0)


def deepfool_start(model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int) -> Tensor:
    """``(B, C, H, W)`` projected DeepFool's perturbation pulled back to the boundary by bisection.

    Zero for the samples projected DeepFool does not fool (they start from the clean image).
    """
    delta = torch.zeros_like(x)
    output = ProjectedDeepFool()._attack_batch(model, x, y, indices, batch_size=batch_size)
    fooled = output.success if output.success is not None else torch.ones(len(x), dtype=torch.bool, device=x.device)
    if bool(fooled.any()):
        delta[fooled] = boundary_search(model, x[fooled], output.x_adv[fooled], y[fooled])
    return delta


def random_start(x: Tensor, indices: Sequence[int], radius: float = RANDOM_START_RADIUS) -> Tensor:
    """``(B, C, H, W)`` a perturbation uniform in the L2 ball of ``radius``, clipped so that ``x + delta`` is in [0, 1].

    Each sample draws from its own generator, seeded with its data set index, so a sample
    starts from the same point in whatever batch it is attacked.
    """
    size = x[0].numel() if len(x) else 1
    draws = []
    for index in indices:
        generator = torch.Generator().manual_seed(RANDOM_START_SEED + int(index))
        direction = torch.randn(x.shape[1:], generator=generator, dtype=torch.float64)
        radial = radius * float(torch.rand((), generator=generator, dtype=torch.float64)) ** (1 / size)
        draws.append(direction * (radial / float(direction.norm().clamp(min=_NORM_FLOOR))))
    delta = torch.stack(draws).to(device=x.device, dtype=x.dtype) if draws else torch.zeros_like(x)
    return (x + delta).clamp(0, 1) - x


def starting_perturbation(
    init: str, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int, radius: float
) -> Tensor:
    """``(B, C, H, W)`` first perturbation of a start named in :data:`INITS`.

    ``"none"``: zero (the clean image); ``"deepfool"``: :func:`deepfool_start`; ``"random"``:
    :func:`random_start` with ``radius``.
    """
    if init == "none":
        return torch.zeros_like(x)
    if init == "random":
        return random_start(x, indices, radius)
    return deepfool_start(model, x, y, indices, batch_size=batch_size)


def start_facts(init: str, radius: float) -> str:
    """Where a walk starts, as a phrase for :meth:`Attack.facts`."""
    return {"none": "the clean image", "deepfool": "projected DeepFool's boundary point",
            "random": f"a random point within L2 distance {radius:g} of the clean image"}[init]


def check_init(init: Any) -> str:
    """Return ``init`` if it names a starting point in :data:`INITS`, else raise ``ValueError``."""
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(repr(i) for i in INITS)}, got {init!r}")
    return init


def cosine_annealing(start: float, end: float, step: int, steps: int) -> float:
    """``start`` at step 0, decaying along half a cosine to ``end`` at step ``steps``."""
    return end + (start - end) * (1 + math.cos(math.pi * step / steps)) / 2


def check_patience(patience: Any) -> int:
    """Return ``patience`` if it is an integer >= 0, else raise ``ValueError``."""
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise ValueError(f"patience must be an integer >= 0 (0: every sample runs all steps), got {patience!r}")
    return patience


def check_tolerance(tolerance: Any) -> float:
    """Return ``float(tolerance)`` if it is a relative decrease in [0, 1), else raise ``ValueError``."""
    number = check_non_negative("tolerance", tolerance)
    if number >= 1:
        raise ValueError(f"tolerance must be a relative decrease below 1, got {tolerance!r}")
    return number


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
        found: ``(B,)`` an adversarial point has been seen (``argmax != y``, as the algorithms
            define it).
        best_norm: ``(B,)`` L2 norm of the smallest decisively adversarial perturbation seen
            (``inf``: none), see :func:`decisively_adversarial`.
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
    def start(cls, delta: Tensor, epsilon: Tensor) -> Iterate:
        """Start at perturbations ``delta`` with budgets ``epsilon``, nothing found yet."""
        n, device = len(delta), delta.device
        return cls(
            delta=delta.clone(), epsilon=epsilon.to(delta.dtype).clone(),
            found=torch.zeros(n, dtype=torch.bool, device=device),
            best_norm=torch.full((n,), math.inf, dtype=delta.dtype, device=device),
            best_delta=torch.zeros_like(delta), stale=torch.zeros(n, dtype=torch.long, device=device),
            steps=torch.zeros(n, dtype=torch.long, device=device),
        )


class BestSoFar(Protocol):
    """Per-sample best-so-far fields (rows in batch order) that :func:`keep_smallest` updates."""

    best_norm: Tensor
    best_delta: Tensor
    stale: Tensor
    steps: Tensor


def keep_smallest(
    state: BestSoFar, active: Tensor, delta: Tensor, norm: Tensor, decisive: Tensor, tolerance: float
) -> None:
    """For the ``active`` rows: keep ``delta`` where it is decisively adversarial and smaller than
    the best so far, count steps since the best fell by more than ``tolerance`` (relative), and
    count the step."""
    best = state.best_norm[active]
    smaller = decisive & (norm < best)
    improved = decisive & (norm < best * (1.0 - tolerance))
    state.best_norm[active] = torch.where(smaller, norm, best)
    state.best_delta[active] = torch.where(batch_view(smaller, delta), delta, state.best_delta[active])
    state.stale[active] = torch.where(improved, 0, state.stale[active] + 1)
    state.steps[active] += 1


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
    all ``steps``. The reported ``iterations`` are the gradient steps a sample used. With
    ``box_aware`` the gradient loses the components that would push a pixel already at 0 or 1
    out of [0, 1] (:func:`~robustbench_win.attacks.deepfool.feasible_direction`) before it is
    normalised. With ``init="deepfool"`` each sample starts from the adversarial point of
    :class:`~robustbench_win.attacks.deepfool.ProjectedDeepFool`, moved back along the segment
    to the clean image by bisection, with that norm as budget; samples DeepFool does not fool
    start from the clean image. What the start and the box-aware steps change:
    ``docs/attacks.md``.

    Family ``"minimal-norm"``: results enter the best-known norms and the attack-quality table,
    not the DeepFool table.

    Args:
        steps: Most gradient steps per sample (the annealing schedules span this many).
        box_aware: Drop gradient components that point out of [0, 1] where a pixel is at a
            bound.
        init: ``"deepfool"``: start from projected DeepFool's boundary point; ``"none"``:
            from the clean image, as the papers do; ``"random"``: from a random point near it
            (:func:`random_start`, a restart for a reference).
        start_radius: L2 radius of the ball a random start is drawn in (``init="random"`` only).
        patience: Steps without improvement after which a sample with an adversarial point
            is done; 0: never leave early.
        tolerance: Relative decrease of the best norm that counts as an improvement.
    """

    family: ClassVar[str] = "minimal-norm"
    channels_last: ClassVar[bool] = True
    fast_gradient_kernels: ClassVar[bool] = True

    def __init__(
        self, *, steps: int = 200, box_aware: bool = False, init: str = "deepfool", patience: int = 0,
        tolerance: float = 1e-3, start_radius: float = RANDOM_START_RADIUS,
    ) -> None:
        self.steps = check_positive_int("steps", steps)
        self.box_aware = check_bool("box_aware", box_aware)
        self.init = check_init(init)
        self.start_radius = check_positive("start_radius", start_radius)
        self.patience = check_patience(patience)
        self.tolerance = check_tolerance(tolerance)

    def params(self) -> dict[str, Any]:
        # The radius is a hyper-parameter of random starts only: other starts' parameters stay as they were.
        radius = {"start_radius": self.start_radius} if self.init == "random" else {}
        return {"steps": self.steps, "box_aware": self.box_aware, "init": self.init, **radius,
                "patience": self.patience, "tolerance": self.tolerance}

    def _initial_epsilon(self) -> float:
        """Budget before the first update (``inf``: none yet)."""
        return math.inf

    def facts(self) -> list[str]:
        """Where the walk starts, how it treats the box, and when a sample is done."""
        start = "Started from " + start_facts(self.init, self.start_radius)
        box = ", box-aware steps" if self.box_aware else ""
        done = "" if self.patience == 0 else f", a fooled sample done after {self.patience} steps without improvement"
        return [f"{start}{box}, smallest adversarial point kept{done}."]

    def _starting_point(self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], batch_size: int) -> Tensor:
        """``(B, C, H, W)`` first perturbation: zero, DeepFool's pulled back to the boundary, or random."""
        return starting_perturbation(self.init, model, x, y, indices, batch_size=batch_size, radius=self.start_radius)

    @abstractmethod
    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """``(n,)`` per-sample loss whose gradient with respect to the input guides the step."""

    @abstractmethod
    def _update(self, state: StepInput) -> tuple[Tensor, Tensor]:
        """New ``(delta, epsilon)`` of the active samples, ``x0 + delta`` inside [0, 1]."""

    def _attack_batch(
        self, model: nn.Module, x: Tensor, y: Tensor, indices: Sequence[int], *, batch_size: int
    ) -> BatchOutput:
        start = self._starting_point(model, x, y, indices, batch_size)
        start_norm = l2_norms(start)
        state = Iterate.start(start, torch.where(start_norm > 0, start_norm, self._initial_epsilon()))
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
            is_adversarial = logits.argmax(dim=1) != y[active]  # drives the algorithm
            self._track_best(state, active, delta.detach(), is_adversarial, decisively_adversarial(logits, y[active]))
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
        return BatchOutput(x_adv=x + state.best_delta, iterations=state.steps, success=state.best_norm.isfinite())

    def _track_best(self, state: Iterate, active: Tensor, delta: Tensor, is_adversarial: Tensor, decisive: Tensor) -> None:
        """Keep the smallest decisively adversarial perturbation; count steps without improvement."""
        keep_smallest(state, active, delta, l2_norms(delta), decisive, self.tolerance)
        state.found[active] |= is_adversarial

    def _done(self, state: Iterate, active: Tensor) -> Tensor:
        """``(n,)`` which active samples are done (see the class docstring)."""
        if self.patience == 0:
            return torch.zeros(len(active), dtype=torch.bool, device=active.device)
        return state.best_norm[active].isfinite() & (state.stale[active] >= self.patience)
