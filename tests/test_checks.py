"""Sanity checks on models: each defect is caught with its own message, a healthy model passes.

References are independent of the code: the defects are built by hand (dropout left on, a final
softmax, input rounding, NaN logits), the chance interval is the normal approximation of the
binomial, and the minimal L2 distance of a linear classifier is its closed form.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_win.measure import checks
from robustbench_win.suite import CHECK_NAMES, SuiteError, suite_from_dict
from robustbench_win.train.config import TrainConfig
from robustbench_win.train.loop import TrainingDivergedError, check_finite_loss

torch.manual_seed(0)
IMAGES = torch.rand(40, 1, 6, 6)


class Linear(nn.Module):
    """A fixed linear classifier on 6x6 images: 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.fc = nn.Linear(36, 3)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(3, 36, generator=generator))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class Randomized(Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.dropout(x.flatten(1), 0.5, training=True))  # dropout left on at test time


class Softmax(Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).softmax(dim=1)


class Quantised(Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.round(x * 4) / 4)  # round() has zero gradient everywhere


class NaNOnSome(Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        bright = x.flatten(1).mean(dim=1) > 0.5
        return torch.where(bright[:, None], torch.full_like(logits, math.nan), logits)


def labels_of(model: nn.Module) -> torch.Tensor:
    """The healthy model's predictions (every image "correct" for it), whatever defect ``model`` has."""
    with torch.no_grad():
        return Linear()(IMAGES).argmax(dim=1)


def statuses(model: nn.Module) -> dict[str, str]:
    results = checks.pre_attack_checks(model.eval(), IMAGES, labels_of(model), n_correct=900, n_test=1000,
                                       num_classes=3, enabled=lambda name: True)
    return {r.check: r.status for r in results}


def test_a_healthy_model_passes_every_check() -> None:
    assert set(statuses(Linear()).values()) == {checks.PASS}


@pytest.mark.parametrize(("model", "check", "status", "words"), [
    (Randomized(), checks.RANDOMIZED, checks.REFUSE, "eval()"),
    (Softmax(), checks.PROBABILITIES, checks.FLAG, "probabilities"),
    (Quantised(), checks.GRADIENTS, checks.FLAG, "gradient masking"),
    (NaNOnSome(), checks.NON_FINITE, checks.FLAG, "non-finite outputs"),
])
def test_each_defect_is_caught_by_its_check_with_a_message(model: nn.Module, check: str, status: str, words: str) -> None:
    results = {r.check: r for r in checks.pre_attack_checks(model.eval(), IMAGES, labels_of(model), n_correct=900,
                                                           n_test=1000, num_classes=3, enabled=lambda n: True)}
    assert results[check].status == status
    assert words in results[check].message


def test_the_quantised_model_has_exactly_zero_gradients_and_the_margin_gradient_is_not_fooled_by_confidence() -> None:
    grads = checks.margin_gradients(Quantised(), IMAGES, labels_of(Quantised()))
    assert torch.count_nonzero(grads) == 0
    # A very confident linear model: its cross-entropy gradient underflows to 0, its margin gradient does not.
    confident = Linear()
    with torch.no_grad():
        confident.fc.weight.mul_(1e4)
    x = IMAGES.clone().requires_grad_(True)
    F.cross_entropy(confident(x), labels_of(confident), reduction="sum").backward()
    assert (x.grad.flatten(1) == 0).all(dim=1).float().mean() > 0.5
    assert checks.input_gradients(confident, IMAGES, labels_of(confident)).status == checks.PASS


@pytest.mark.parametrize(("n_correct", "status"), [(110, checks.FLAG), (90, checks.FLAG), (140, checks.PASS),
                                                    (900, checks.PASS)])
def test_chance_level_follows_the_binomial_interval(n_correct: int, status: str) -> None:
    # Normal approximation of the 99% interval of Binomial(1000, 0.1): 100 +- 2.576 * sqrt(90) = 75.6..124.4.
    assert checks.chance_level(n_correct, 1000, 10).status == status


def exact_linear_distances(model: Linear, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Closed form: the smallest L2 step to another class's half-space, min over classes (box ignored)."""
    w, b = model.fc.weight.detach(), model.fc.bias.detach()
    logits = images.flatten(1) @ w.T + b
    distances = []
    for logit, y in zip(logits, labels):
        gaps = [(logit[y] - logit[j]) / (w[y] - w[j]).norm() for j in range(len(w)) if j != y]
        distances.append(min(gaps))
    return torch.stack(distances)


def test_the_cross_check_flags_norms_that_are_far_from_the_minimum_and_passes_exact_ones() -> None:
    model = Linear().eval()
    images = torch.rand(60, 1, 6, 6) * 0.5 + 0.25  # inside the box: the unconstrained minimum is reachable
    with torch.no_grad():
        labels = model(images).argmax(dim=1)
    exact = exact_linear_distances(model, images, labels)
    assert checks.cross_check(model, images, labels, exact).status == checks.PASS
    weak = checks.cross_check(model, images, labels, exact * 3)  # as if the gradient attacks had missed the minimum
    assert weak.status == checks.FLAG and "not finding the minimal" in weak.message
    failed = checks.cross_check(model, images, labels, torch.full_like(exact, math.inf))  # every attack "failed"
    assert failed.status == checks.FLAG and failed.value == 1.0


def test_a_diverged_loss_stops_training_and_names_the_learning_rate() -> None:
    config = TrainConfig(epochs=6, lr=1000.0)
    with pytest.raises(TrainingDivergedError, match=r"train\.lr = 1000"):
        check_finite_loss(math.nan, 1, config)
    check_finite_loss(2.3, 1, config)  # a finite loss goes on


def test_checks_are_switched_off_only_explicitly_and_unknown_names_are_refused() -> None:
    raw = {"name": "t", "dataset": "mnist5k", "kernel_sizes": [3], "model": {"name": "paper-cnn"}}
    assert suite_from_dict(raw).checks_off == ()
    assert suite_from_dict(raw | {"checks": {"enabled": False}}).checks_off == CHECK_NAMES
    assert suite_from_dict(raw | {"checks": {"cross-check": False}}).checks_off == ("cross-check",)
    with pytest.raises(SuiteError, match="checks.cross-chek"):
        suite_from_dict(raw | {"checks": {"cross-chek": False}})
    with pytest.raises(SuiteError, match="true or false"):
        suite_from_dict(raw | {"checks": {"enabled": "no"}})


def test_every_check_the_suite_names_exists() -> None:
    assert set(CHECK_NAMES) == set(checks.CHECK_FUNCTIONS)
