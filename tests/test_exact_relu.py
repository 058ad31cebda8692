"""The exact minimal L2 distance of a small ReLU network, against references that share none of its code.

1. Closed forms: a network that is linear on the whole box, whose distance is the distance to
   a hyperplane, or the projection onto a half-space intersected with the box (a 1-D root
   found by bisection), with the box constraints active.
2. A 2-D toy network against a dense grid search over the square.
3. A network trained on the embedded digits: no verified adversarial example of any attack is
   closer than the exact distance; the exact closest point, pushed a little past the
   boundary, is misclassified, and the segment from the clean image to it is not.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustbench_win.attacks.exact_relu import (
    ReluNet,
    minimal_l2_distance,
    minimal_l2_distances,
    relu_mlp,
)
from robustbench_win.data.datasets import load_dataset, stratified_subset
from robustbench_win.registry import ATTACKS
from robustbench_win.train.config import TrainConfig
from robustbench_win.train.loop import train

# float32 logits (the attacks' verification) against float64 ones (the exact solver) differ by
# a relative ~1e-7 of the logits; a point that float32 calls adversarial can therefore be
# closer than the float64 boundary by about that much of its distance. 1e-5 is 100 times that.
FLOAT32_SLACK = 1e-5


def linear_net(normal: np.ndarray, offset: float) -> ReluNet:
    """Two classes, class 1 iff ``normal . x >= offset``: one hidden unit active on the whole box."""
    shift = float(np.abs(normal).sum()) + 1.0  # normal . x + shift > 0 for every x in [0, 1]^D
    return ReluNet(w1=normal[None, :], b1=np.array([shift]), w2=np.array([[0.0], [1.0]]),
                   b2=np.array([0.0, -(offset + shift)]))


def box_half_space_projection(x0: np.ndarray, normal: np.ndarray, offset: float) -> float:
    """Distance from ``x0`` to ``{x in [0, 1]^D : normal . x >= offset}``, by bisection on the 1-D dual.

    The projection is ``clip(x0 + t normal, 0, 1)`` for the ``t >= 0`` where ``normal . x``
    reaches ``offset`` (KKT conditions of a half-space and a box); ``normal . x`` is
    non-decreasing in ``t``.
    """
    def reached(t: float) -> float:
        return float(normal @ np.clip(x0 + t * normal, 0.0, 1.0))

    low, high = 0.0, 1.0
    while reached(high) < offset:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if reached(middle) < offset else (low, middle)
    return float(np.linalg.norm(np.clip(x0 + high * normal, 0.0, 1.0) - x0))


def test_a_linear_network_is_as_far_as_its_hyperplane() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        normal = rng.normal(size=30)
        x0 = rng.uniform(0.3, 0.7, size=30)
        distance = 0.05  # small enough that the projection stays inside the box
        offset = float(normal @ x0) + distance * float(np.linalg.norm(normal))
        result = minimal_l2_distance(linear_net(normal, offset), x0, 0)
        assert result.certified and result.target == 1
        assert result.distance == pytest.approx(distance, rel=1e-7)
        assert result.lower_bound == pytest.approx(distance, rel=1e-7)


def test_the_box_clips_the_projection_as_by_hand() -> None:
    # x1 + x2 >= 1.8 from (0.9, 0.5): the free projection (1.1, 0.7) leaves the box; the
    # closest point inside is (1, 0.8), at distance sqrt(0.1^2 + 0.3^2).
    result = minimal_l2_distance(linear_net(np.array([1.0, 1.0]), 1.8), np.array([0.9, 0.5]), 0)
    assert result.distance == pytest.approx(math.sqrt(0.1), rel=1e-8)
    np.testing.assert_allclose(result.point, [1.0, 0.8], atol=1e-8)


def test_box_constrained_distances_match_the_one_dimensional_root() -> None:
    rng = np.random.default_rng(1)
    clipped = 0
    for _ in range(8):
        normal = rng.normal(size=40)
        x0 = rng.choice([0.0, 0.05, 0.5, 0.95, 1.0], size=40)  # many pixels at or near a bound, as in digits
        offset = float(normal @ x0) + rng.uniform(0.5, 2.0)
        result = minimal_l2_distance(linear_net(normal, offset), x0, 0)
        expected = box_half_space_projection(x0, normal, offset)
        assert result.certified
        assert result.distance == pytest.approx(expected, rel=1e-7)
        free = float(normal @ x0 - offset) / float(np.linalg.norm(normal))
        clipped += expected > abs(free) * (1 + 1e-3)
    assert clipped >= 6  # the box mattered in most cases: not a hyperplane test in disguise


def test_no_point_of_another_class_in_the_box_is_infinitely_far() -> None:
    normal = np.ones(4)
    result = minimal_l2_distance(linear_net(normal, 4.5), np.full(4, 0.5), 0)  # 1 . x <= 4 < 4.5 on the box
    assert result.distance == math.inf and result.point is None and result.certified


def random_toy_net(rng: np.random.Generator, hidden: int = 6, classes: int = 3) -> ReluNet:
    return ReluNet(w1=rng.normal(size=(hidden, 2)) * 3, b1=rng.normal(size=hidden),
                   w2=rng.normal(size=(classes, hidden)), b2=rng.normal(size=classes) * 0.5)


def test_a_two_dimensional_network_agrees_with_a_dense_grid() -> None:
    steps = 600
    grid_axis = np.linspace(0.0, 1.0, steps + 1)
    grid = np.stack(np.meshgrid(grid_axis, grid_axis, indexing="ij"), axis=-1).reshape(-1, 2)
    spacing = 1.0 / steps
    rng = np.random.default_rng(2)
    checked = 0
    while checked < 5:
        net = random_toy_net(rng)
        classes = net.logits(grid).argmax(axis=1)
        if len(np.unique(classes)) < 2:
            continue
        x0 = rng.uniform(0, 1, size=2)
        label = int(net.logits(x0[None])[0].argmax())
        result = minimal_l2_distance(net, x0, label)
        others = grid[classes != label]
        nearest = float(np.min(np.linalg.norm(others - x0, axis=1)))
        assert result.certified
        # Every grid point of another class is a feasible point: never closer than the optimum.
        assert result.lower_bound <= nearest + 1e-12
        # The optimum is on the closure of an open set of other-class points, so grid points
        # of another class lie within a few spacings of it.
        assert nearest <= result.distance + 3 * spacing
        checked += 1


# --------------------------------------------------------------------------- a network trained on digits

HIDDEN = 10  # 2^10 patterns x 9 classes = 9,216 programs per digit before pruning
DIGITS = 30


@pytest.fixture(scope="module")
def digits_net() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, list]:
    """A 784-10-10 ReLU network trained on the embedded digits, and its exact distances on correct test digits."""
    data = load_dataset("mnist5k")
    torch.manual_seed(0)
    model = relu_mlp(28 * 28, HIDDEN, 10)
    train(model, data, TrainConfig(epochs=5, batch_size=64, lr=0.05, milestones=(), augment=False, compile=False),
          seed=0, progress=False)
    x, y = data.test_tensors(stratified_subset(data.test_labels, 60, 1234))
    with torch.no_grad():
        correct = model(x).argmax(dim=1) == y
    x, y = x[correct][:DIGITS], y[correct][:DIGITS]
    return model, x, y, minimal_l2_distances(model, x, y)


def test_every_distance_on_digits_is_certified(digits_net: tuple) -> None:
    *_, exact = digits_net
    assert all(result.certified and math.isfinite(result.distance) for result in exact)


def test_the_closest_point_is_on_the_boundary(digits_net: tuple) -> None:
    model, x, y, exact = digits_net
    for image, label, result in zip(x, y.tolist(), exact):
        x0 = image.double().flatten()
        direction = torch.from_numpy(result.point) - x0
        assert float(direction.norm()) == pytest.approx(result.distance, rel=1e-9)
        inside = torch.stack([x0 + t * direction for t in (0.0, 0.3, 0.6, 0.9, 0.999)])
        past = (x0 + 1.001 * direction).clamp(0, 1)
        with torch.no_grad():
            logits = model(torch.cat([inside, past[None]]).float().view(-1, *image.shape))
        assert (logits[:-1].argmax(dim=1) == label).all(), "a point closer than the optimum is misclassified"
        assert int(logits[-1].argmax()) != label, "the point just past the optimum is not misclassified"


@pytest.mark.parametrize("name", ["deepfool", "deepfool-projected", "superdeepfool", "fmn", "ddn", "alma"])
def test_no_attack_beats_the_exact_distance(digits_net: tuple, name: str) -> None:
    model, x, y, exact = digits_net
    results = ATTACKS.create(name)(model, x, y)
    found = [(r.l2, e.lower_bound) for r, e in zip(results, exact) if r.success]
    assert len(found) >= len(exact) // 2  # a check of something
    for norm, bound in found:
        assert norm >= bound * (1 - FLOAT32_SLACK)
