"""Exact minimal L2 distance to the decision boundary of a one-hidden-layer ReLU network, inside a box.

The exactness canary of the minimal-norm attacks: on a network small enough to enumerate its
activation patterns, the smallest perturbation that changes the predicted class is computed
exactly, so an attack's norm can be compared with the true optimum instead of with other
attacks (``benchmarks/bench_exact.py``, ``tests/test_exact_relu.py``).

**The programs.** The network is ``f(x) = W2 relu(W1 x + b1) + b2`` with ``H`` hidden units.
On the closed activation region of a pattern ``s`` in ``{0, 1}^H`` (unit ``i`` has
``W1_i x + b1_i >= 0`` if ``s_i = 1`` and ``<= 0`` if ``s_i = 0``) it is affine, so "class
``j`` scores at least class ``y``" is one more linear inequality there. For every pattern and
every class ``j != y`` the convex quadratic program

    min ||x - x0||^2   subject to   A x <= c  (H pattern rows, 1 class row),   lower <= x <= upper

gives the closest point of the box that has that pattern and where ``j`` ties or beats ``y``.
The regions cover the box, so the smallest optimum over all (pattern, class) pairs is the
exact distance from ``x0`` to the set of points not classified ``y`` (an infimum over an open
set, attained on its closure: every verified adversarial example is at least that far).

**One program: the dual.** The box is kept as the domain and the ``H + 1`` rows get multipliers
``lam >= 0``: ``x(lam) = clip(x0 - A^T lam / 2, lower, upper)`` minimises the Lagrangian over
the box, and the dual ``g(lam) = ||x(lam) - x0||^2 + lam^T (A x(lam) - c)`` is concave and
continuously differentiable, with gradient ``A x(lam) - c``. scipy's L-BFGS-B maximises it
under ``lam >= 0``; one Newton step on the active rows and free pixels then lands on the
exact solution of the piecewise-linear optimality conditions (kept unless it lowers the
dual). By weak duality every ``g(lam)`` is a lower bound on the program's optimum, and
``||x(lam) - x0||^2`` is an upper bound wherever ``x(lam)`` satisfies the rows. A program is
*solved* when both hold to tolerance: ``x(lam)`` violates no row by more than
:data:`FEASIBILITY_TOLERANCE` (rows scaled to unit norm, so this is a distance in pixel units)
and the duality gap is below :data:`GAP_TOLERANCE`, relative.

**The enumeration.** The pairs are visited in increasing order of a cheap lower bound: the
largest distance from ``x0`` to one of the pair's half-spaces. The search stops when that
bound reaches the best squared distance found so far, and a dual maximisation stops as soon
as ``g`` exceeds it: the pair cannot improve on it. An infeasible program (a region with no
point in the box, or one where ``j`` never wins) has an unbounded dual, so it is cut off the
same way, at the latest when ``g`` exceeds the largest squared distance any point of the box
has from ``x0`` (which proves that no point of the box satisfies its rows). The result
carries the certified interval: a lower bound (the smallest lower bound over all pairs) and
the distance of the best feasible point found; ``certified`` says whether they agree to
:data:`GAP_TOLERANCE`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize
from torch import nn

FEASIBILITY_TOLERANCE = 1e-9  # largest violation of a unit-norm row accepted as feasible (pixel units)
GAP_TOLERANCE = 1e-8  # largest duality gap accepted, relative to the squared distance
MAX_HIDDEN_UNITS = 16  # 2^16 patterns x (classes - 1) pairs: beyond that enumeration is not the tool
_TINY_ROW = 1e-12  # a row with a smaller norm is constant: always true or never


def relu_mlp(in_features: int, hidden: int, classes: int) -> nn.Sequential:
    """The network :class:`ReluNet` reads: flatten, linear, ReLU, linear (images ``(N, C, H, W)`` to logits)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


@dataclass(frozen=True)
class ReluNet:
    """The weights of ``x -> W2 relu(W1 x + b1) + b2``, in float64.

    Attributes:
        w1: ``(H, D)`` first layer.
        b1: ``(H,)``.
        w2: ``(K, H)`` second layer (``K`` classes).
        b2: ``(K,)``.
    """

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    def __post_init__(self) -> None:
        hidden, _ = self.w1.shape
        classes = len(self.b2)
        if self.b1.shape != (hidden,) or self.w2.shape != (classes, hidden) or self.b2.shape != (classes,):
            raise ValueError(f"inconsistent layer shapes: w1 {self.w1.shape}, b1 {self.b1.shape}, "
                             f"w2 {self.w2.shape}, b2 {self.b2.shape}")
        if hidden > MAX_HIDDEN_UNITS:
            raise ValueError(f"at most {MAX_HIDDEN_UNITS} hidden units can be enumerated, got {hidden}")

    @classmethod
    def from_module(cls, module: nn.Module) -> ReluNet:
        """The weights of a :func:`relu_mlp` (an ``nn.Sequential`` of optional Flatten, Linear, ReLU, Linear)."""
        layers = [layer for layer in module.children() if not isinstance(layer, nn.Flatten)]
        if not (len(layers) == 3 and isinstance(layers[0], nn.Linear) and isinstance(layers[1], nn.ReLU)
                and isinstance(layers[2], nn.Linear)):
            raise ValueError(f"expected Flatten, Linear, ReLU, Linear (see relu_mlp), got {module}")
        first, last = layers[0], layers[2]
        as_array = lambda t: t.detach().cpu().double().numpy()  # noqa: E731
        return cls(as_array(first.weight), as_array(first.bias), as_array(last.weight), as_array(last.bias))

    @property
    def hidden(self) -> int:
        """Number of hidden units ``H``."""
        return len(self.b1)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """``(N, K)`` logits of ``(N, D)`` flattened inputs, in float64."""
        return np.maximum(x @ self.w1.T + self.b1, 0.0) @ self.w2.T + self.b2


@dataclass(frozen=True)
class ExactDistance:
    """The exact minimal L2 distance from one input to the points the network does not assign its class.

    Attributes:
        distance: Distance of the best point found (``inf`` if no point of the box leaves the class).
        lower_bound: Certified lower bound on the distance (weak duality over every pair).
        certified: Whether ``distance`` and ``lower_bound`` agree to :data:`GAP_TOLERANCE`.
        point: ``(D,)`` the closest point (on the boundary), ``None`` if there is none.
        target: The class that ties the true one there (-1 if none).
        pattern: The activation pattern of the closest point's region (empty if none).
        pairs: Number of (pattern, class) pairs, ``2^H (K - 1)``.
        solved: Pairs whose dual was maximised (the others were pruned by their cheap bound).
    """

    distance: float
    lower_bound: float
    certified: bool
    point: np.ndarray | None
    target: int
    pattern: tuple[int, ...]
    pairs: int
    solved: int


@dataclass(frozen=True)
class ProgramSolution:
    """What maximising one program's dual gave.

    Attributes:
        lower: Dual value reached: a lower bound on the program's optimum.
        upper: ``||x - x0||^2`` of the dual's point if it satisfies the rows, else ``inf``.
        point: That point (``None`` when the maximisation was stopped above ``bound``).
    """

    lower: float
    upper: float
    point: np.ndarray | None


class _AboveBound(Exception):
    """Raised inside the dual objective once it exceeds the bound: the program cannot improve on it."""

    def __init__(self, value: float) -> None:
        super().__init__(value)
        self.value = value


def region_rows(net: ReluNet, pattern: np.ndarray, label: int, target: int) -> tuple[np.ndarray, np.ndarray]:
    """``(A, c)`` of one pair: ``A x <= c`` says "pattern ``pattern`` and logit ``target`` >= logit ``label``".

    Args:
        net: The network.
        pattern: ``(H,)`` 0/1 activation pattern.
        label: The class at ``x0``.
        target: The class that must tie or beat it.

    Returns:
        ``A`` ``(H + 1, D)`` and ``c`` ``(H + 1,)``, unscaled.
    """
    sign = np.where(pattern > 0, -1.0, 1.0)  # active: -(W1 x + b1) <= 0; inactive: W1 x + b1 <= 0
    unit_rows, unit_bounds = sign[:, None] * net.w1, -sign * net.b1
    weights = (net.w2[target] - net.w2[label]) * pattern  # logit gap = weights . (W1 x + b1) + bias gap
    class_row = -(weights @ net.w1)
    class_bound = weights @ net.b1 + net.b2[target] - net.b2[label]
    return np.vstack([unit_rows, class_row]), np.append(unit_bounds, class_bound)


def unit_rows(a: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Rows scaled to unit norm, constant rows dropped; ``False`` when a constant row can never hold."""
    norms = np.linalg.norm(a, axis=1)
    constant = norms < _TINY_ROW
    feasible = bool(np.all(c[constant] >= 0))
    keep = ~constant
    return a[keep] / norms[keep, None], c[keep] / norms[keep], feasible


def solve_program(
    a: np.ndarray, c: np.ndarray, x0: np.ndarray, bound: float, lower: float = 0.0, upper: float = 1.0
) -> ProgramSolution:
    """Maximise the dual of ``min ||x - x0||^2 s.t. a x <= c, lower <= x <= upper``, stopping above ``bound``.

    Args:
        a: ``(m, D)`` rows, each of unit norm.
        c: ``(m,)`` right-hand sides.
        x0: ``(D,)`` the point to project.
        bound: Stop as soon as the dual exceeds this (the caller's best squared distance).
        lower: Lower end of the box, every coordinate.
        upper: Upper end of the box.

    Returns:
        The dual value reached (a lower bound on the optimum), and the primal point with its
        squared distance when it satisfies the rows to :data:`FEASIBILITY_TOLERANCE`.
    """
    def point(lam: np.ndarray) -> np.ndarray:
        return np.clip(x0 - a.T @ lam / 2, lower, upper)

    def dual(lam: np.ndarray) -> tuple[float, np.ndarray]:
        x = point(lam)
        slack = a @ x - c
        return float(np.sum((x - x0) ** 2) + lam @ slack), slack

    def negative_dual(lam: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = dual(lam)
        if value > bound:
            raise _AboveBound(value)
        return -value, -gradient

    start = np.zeros(len(c))
    try:
        result = minimize(negative_dual, start, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * len(c),
                          options={"maxiter": 2000, "maxfun": 4000, "ftol": 1e-15, "gtol": 1e-12})
    except _AboveBound as above:
        return ProgramSolution(above.value, math.inf, None)
    lam = np.maximum(result.x, 0.0)
    value, slack = dual(lam)
    polished = newton_polish(a, c, x0, lam, lower, upper)
    if polished is not None:
        polished_value, polished_slack = dual(polished)
        if polished_value >= value - GAP_TOLERANCE * max(value, 1e-12):  # a wrong active set lowers the dual
            lam, value, slack = polished, polished_value, polished_slack
    if value > bound:
        return ProgramSolution(value, math.inf, None)
    x = point(lam)
    feasible = slack.size == 0 or float(slack.max()) <= FEASIBILITY_TOLERANCE
    return ProgramSolution(value, float(np.sum((x - x0) ** 2)) if feasible else math.inf, x)


def newton_polish(
    a: np.ndarray, c: np.ndarray, x0: np.ndarray, lam: np.ndarray, lower: float, upper: float
) -> np.ndarray | None:
    """Multipliers that make the rows with ``lam > 0`` tight on the same free pixels, if they are >= 0.

    With the set of free pixels ``F`` (where ``x0 - a^T lam / 2`` is strictly inside the box)
    and of active rows ``S`` fixed, ``x(lam)`` is affine in ``lam_S`` and the optimality
    conditions are one linear system ``a_SF a_SF^T lam_S / 2 = a_S x_fixed - c_S`` (``x_fixed``:
    ``x0`` on ``F``, the clipped value elsewhere). ``None`` when nothing is active or the
    solution has a negative multiplier.
    """
    unclipped = x0 - a.T @ lam / 2
    free = (unclipped > lower) & (unclipped < upper)
    active = lam > 0
    if not active.any():
        return None
    fixed = np.where(free, x0, np.clip(unclipped, lower, upper))
    rows = a[active]
    system = rows[:, free] @ rows[:, free].T / 2
    solution, *_ = np.linalg.lstsq(system, rows @ fixed - c[active], rcond=None)
    if np.any(solution < 0):
        return None
    polished = np.zeros_like(lam)
    polished[active] = solution
    return polished


def patterns(hidden: int) -> np.ndarray:
    """``(2^hidden, hidden)`` every 0/1 activation pattern."""
    codes = np.arange(2 ** hidden)
    return ((codes[:, None] >> np.arange(hidden)) & 1).astype(np.float64)


def half_space_bounds(net: ReluNet, x0: np.ndarray, label: int, all_patterns: np.ndarray) -> np.ndarray:
    """``(P, K)`` per (pattern, class) the largest distance from ``x0`` to one of the pair's half-spaces.

    A lower bound on the pair's distance (its feasible set lies inside each half-space); ``inf``
    where a constant row can never hold, and for ``label`` itself.
    """
    pre = net.w1 @ x0 + net.b1  # (H,)
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero row: its unit never changes state
        unit_distance = np.nan_to_num(np.abs(pre) / np.linalg.norm(net.w1, axis=1), nan=0.0, posinf=np.inf)
    own = (pre >= 0).astype(np.float64)
    # A unit's row is violated at x0 only where the pattern disagrees with x0's own.
    unit_bound = np.max(np.where(all_patterns != own, unit_distance, 0.0), axis=1, initial=0.0)  # (P,)
    weights = (net.w2 - net.w2[label])[None, :, :] * all_patterns[:, None, :]  # (P, K, H)
    gap = weights @ pre + (net.b2 - net.b2[label])  # logit j - logit y at x0 if it had that pattern
    gram = net.w1 @ net.w1.T
    row_norm = np.sqrt(np.maximum(np.einsum("pkh,hg,pkg->pk", weights, gram, weights), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        class_bound = np.where(row_norm > _TINY_ROW, np.maximum(-gap, 0.0) / row_norm,
                               np.where(gap >= 0, 0.0, np.inf))
    bounds = np.maximum(unit_bound[:, None], class_bound)
    bounds[:, label] = np.inf
    return bounds


def minimal_l2_distance(net: ReluNet, x0: np.ndarray, label: int, *, lower: float = 0.0,
                        upper: float = 1.0) -> ExactDistance:
    """The exact smallest L2 distance from ``x0`` to a point of the box whose class is not ``label``.

    Args:
        net: The network (:meth:`ReluNet.from_module`).
        x0: ``(D,)`` flattened input inside the box.
        label: The class the distance is measured from (the network's prediction at ``x0``
            for a minimal adversarial perturbation; 0 if ``x0`` is already outside it).
        lower: Lower end of the box (every coordinate).
        upper: Upper end of the box.

    Returns:
        The distance with its certified lower bound and the closest point.

    Raises:
        ValueError: ``x0`` of the wrong size or outside the box.
    """
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    if x0.shape != (net.w1.shape[1],) or np.any(x0 < lower) or np.any(x0 > upper):
        raise ValueError(f"x0 must be {net.w1.shape[1]} values in [{lower}, {upper}], got shape {x0.shape}")
    all_patterns = patterns(net.hidden)
    bounds = half_space_bounds(net, x0, label, all_patterns)
    # No point of the box is farther than its farthest corner: above that, a program is infeasible.
    best = float(np.sum(np.maximum(x0 - lower, upper - x0) ** 2)) * (1 + 1e-9) + 1e-12
    best_found = (math.inf, None, -1, ())
    lowest = math.inf  # smallest lower bound over the pairs not yet shown to be above the best
    order = np.argsort(bounds, axis=None)
    solved = 0
    for flat in order:
        pattern_index, target = np.unravel_index(flat, bounds.shape)
        if bounds[pattern_index, target] ** 2 >= best:
            break  # every pair left is at least this far
        pattern = all_patterns[pattern_index]
        a, c, possible = unit_rows(*region_rows(net, pattern, label, int(target)))
        if not possible:
            continue
        solution = solve_program(a, c, x0, best, lower, upper)
        solved += 1
        if solution.upper < best:
            best = solution.upper
            best_found = (solution.upper, solution.point, int(target), tuple(int(s) for s in pattern))
        if solution.lower <= best:
            lowest = min(lowest, solution.lower)
    squared, point, target, pattern = best_found
    lowest = min(lowest, squared)  # every pruned pair's bound exceeded a best at least this small
    distance, lower_bound = math.sqrt(squared), math.sqrt(max(lowest, 0.0))
    # Nothing found is certified only when every program was shown to hold no point of the box.
    certified = lowest == math.inf if squared == math.inf else squared - lowest <= GAP_TOLERANCE * squared + 1e-15
    return ExactDistance(distance=distance, lower_bound=lower_bound, certified=certified, point=point,
                         target=target, pattern=pattern, pairs=len(all_patterns) * (bounds.shape[1] - 1),
                         solved=solved)


def minimal_l2_distances(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> list[ExactDistance]:
    """:func:`minimal_l2_distance` of every image, box [0, 1], for a :func:`relu_mlp` model.

    Args:
        model: A :func:`relu_mlp` (read with :meth:`ReluNet.from_module`).
        images: ``(N, C, H, W)`` pixels in [0, 1].
        labels: ``(N,)`` the classes the distances are measured from.
    """
    net = ReluNet.from_module(model)
    flat = images.detach().cpu().double().flatten(1).numpy()
    return [minimal_l2_distance(net, x0, int(label)) for x0, label in zip(flat, labels.tolist())]
