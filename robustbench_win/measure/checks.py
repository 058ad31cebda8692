"""Sanity checks on every model before its robustness numbers count.

A robustness number is only as good as the gradients the attacks followed. A model whose
outputs are randomized, saturated into probabilities, masked (zero or non-finite input
gradients) or simply broken (chance level) makes gradient attacks fail, and failed attacks read
as +inf: a perfectly robust model. These checks, after AutoAttack's (``autoattack/checks.py``)
and the checklist of Carlini et al. (2019, "On Evaluating Adversarial Robustness"), run on every
model before its attacks (:data:`PRE_ATTACK_CHECKS`) and, for the gradient-free cross-check,
after them (:func:`cross_check`). Each returns one :class:`CheckResult`; the runner stores them
(:data:`~robustbench_win.store.records.CHECK_RECORDS`) and the report lists them next to the model.

Outcomes (:class:`CheckResult` ``status``): ``pass``; ``flag`` (the model's robustness numbers
carry the flag in every table and no robustness claim may rest on them); ``refuse`` (the model
is not attacked at all: its numbers would be meaningless); ``skipped`` (nothing to check on,
e.g. no correctly classified image).

The checks judge the attacks' evidence, not the model's properties: leakage and shift
consistency are per-model measures (:mod:`robustbench_win.measure.base`), and what a flag or a
refusal does to the tables and claims is :mod:`robustbench_win.analysis.flags`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from torch import nn

from robustbench_win.attacks.base import channels_last_weights, frozen
from robustbench_win.conventions import (  # the checks' names: the keys of a suite's [checks] table
    CHANCE, CHECK_NAMES, CROSS_CHECK, GRADIENTS, NON_FINITE, PROBABILITIES, RANDOMIZED,
)

PASS, FLAG, REFUSE, SKIPPED = "pass", "flag", "refuse", "skipped"

# Thresholds (stated in the report through each result's message).
OUTPUT_TOLERANCE = 1e-4  # largest |difference| of two forward passes, relative to the largest |logit|
PROBABILITY_TOLERANCE = 1e-3  # |row sum - 1| under which a row in [0, 1] reads as probabilities
GRADIENT_SHARE = 0.1  # flag when more than this share of correct images has a zero or non-finite gradient
CHANCE_CONFIDENCE = 0.99  # binomial interval around 1 / classes
CROSS_CHECK_IMAGES = 10  # correctly classified images the decision-based attack runs on (seeded)
CROSS_CHECK_SHARE = 0.2  # flag when more than this share of them get a smaller norm than the gradient attacks
CROSS_CHECK_MARGIN = 0.01  # a norm counts as smaller when below (1 - margin) x the best-known one
CROSS_CHECK_STEPS = 10  # HopSkipJump iterations (bench/cross_check.md: cost and quality)
CROSS_CHECK_SEED = 2024  # fixed: every model is cross-checked on the same images
CHECK_BATCH = 100  # images per forward pass


@dataclass(frozen=True)
class CheckResult:
    """What one check found on one model.

    Attributes:
        check: The check's name (:data:`CHECK_NAMES`).
        status: ``pass``, ``flag``, ``refuse`` or ``skipped``.
        value: The measured quantity (a share, a difference, an accuracy); NaN when skipped.
        threshold: The bound the value was held against.
        n: Images the check ran on.
        message: What was found, in words, and what to do when it is not ``pass``.
        seconds: Wall time of the check.
    """

    check: str
    status: str
    value: float
    threshold: float
    n: int
    message: str
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """Whether the check flagged or refused the model."""
        return self.status in (FLAG, REFUSE)


def _timed(check: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
    """Record the wall time of a check in its result."""
    def run(*args: object, **kwargs: object) -> CheckResult:
        start = time.perf_counter()
        result = check(*args, **kwargs)
        return CheckResult(**{**result.__dict__, "seconds": time.perf_counter() - start})
    run.__name__, run.__doc__ = check.__name__, check.__doc__
    return run


@torch.no_grad()
def _outputs(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The model's outputs on ``images`` in batches, float32 on the CPU."""
    return torch.cat([model(images[i:i + CHECK_BATCH]).float().cpu() for i in range(0, len(images), CHECK_BATCH)])


@_timed
def randomized_outputs(model: nn.Module, images: torch.Tensor) -> CheckResult:
    """Two forward passes on the same batch must agree.

    Guards against randomness at evaluation time (dropout left active, random input
    transformations): gradient attacks then follow noise, a sample's clean prediction changes
    from attack to attack, and every norm is meaningless. Such a model is refused.
    """
    first, second = _outputs(model, images), _outputs(model, images)
    scale = max(float(first[torch.isfinite(first)].abs().max()) if torch.isfinite(first).any() else 1.0, 1e-12)
    same_nan = torch.isnan(first) == torch.isnan(second)
    diff = (first - second).nan_to_num(0.0, 0.0, 0.0).abs().max().item() / scale if len(first) else 0.0
    if diff <= OUTPUT_TOLERANCE and bool(same_nan.all()):
        return CheckResult(RANDOMIZED, PASS, diff, OUTPUT_TOLERANCE, len(images),
                           f"two forward passes agree (largest difference {diff:.2g} of the largest output)")
    return CheckResult(RANDOMIZED, REFUSE, diff, OUTPUT_TOLERANCE, len(images), (
        f"randomized outputs: two forward passes on the same {len(images)} images differ (largest difference "
        f"{diff:.2g} of the largest output), so attacks would follow noise; the model was not attacked. Evaluate it "
        f"in eval() with randomness disabled (dropout, random transforms), or register an "
        f"expectation-over-transformation variant that averages its randomness"))


@_timed
def non_finite_outputs(model: nn.Module, images: torch.Tensor) -> CheckResult:
    """Every output must be finite.

    Guards against a broken model (NaN or inf logits): its arg-max is arbitrary and attacks
    cannot move it.
    """
    outputs = _outputs(model, images)
    bad = int((~torch.isfinite(outputs)).any(dim=1).sum())
    share = bad / max(len(images), 1)
    if bad == 0:
        return CheckResult(NON_FINITE, PASS, 0.0, 0.0, len(images), "every output is finite")
    return CheckResult(NON_FINITE, FLAG, share, 0.0, len(images), (
        f"non-finite outputs (NaN or inf) on {bad} of {len(images)} images: the model is broken on them and "
        f"its robustness numbers cannot be trusted; check its weights and forward pass"))


@_timed
def probability_outputs(model: nn.Module, images: torch.Tensor) -> CheckResult:
    """Outputs must be logits, not probabilities.

    Guards against a final softmax: rows in [0, 1] that sum to 1 saturate, so input
    gradients vanish on confident images and attacks built for logits (DeepFool's linearisation,
    FMN's and DDN's margins) fail or overestimate the norm.
    """
    outputs = _outputs(model, images)
    finite = outputs[torch.isfinite(outputs).all(dim=1)]
    if not len(finite):
        return CheckResult(PROBABILITIES, SKIPPED, math.nan, PROBABILITY_TOLERANCE, 0, "no finite output row to check")
    in_range = bool(((finite >= 0) & (finite <= 1)).all())
    off = float((finite.sum(dim=1) - 1).abs().max())
    if not (in_range and off <= PROBABILITY_TOLERANCE):
        return CheckResult(PROBABILITIES, PASS, off, PROBABILITY_TOLERANCE, len(finite), "outputs are logits "
                           "(not rows in [0, 1] summing to 1)")
    return CheckResult(PROBABILITIES, FLAG, off, PROBABILITY_TOLERANCE, len(finite), (
        f"outputs look like probabilities (every row in [0, 1], sums within {off:.1g} of 1) instead of logits: "
        f"gradient attacks are weakened by the saturated softmax; return the logits (drop the final softmax)"))


def margin_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Input gradient of the logit margin (true logit minus the largest other), ``(N, C, H, W)``.

    The margin, not the cross-entropy: a confident, healthy model saturates the softmax, and
    its cross-entropy gradient underflows to exactly zero in float32 (a false alarm).
    """
    parts = []
    for i in range(0, len(images), CHECK_BATCH):
        x = images[i:i + CHECK_BATCH].clone().requires_grad_(True)
        y = labels[i:i + CHECK_BATCH].to(x.device)
        logits = model(x).float()
        true = logits.gather(1, y[:, None])[:, 0]
        other = logits.masked_fill(torch.nn.functional.one_hot(y, logits.shape[1]).bool(), -math.inf).amax(dim=1)
        (grad,) = torch.autograd.grad((true - other).sum(), x, allow_unused=True)
        parts.append(torch.zeros_like(x) if grad is None else grad.detach())
    return torch.cat(parts) if parts else torch.zeros_like(images)


@_timed
def input_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> CheckResult:
    """Input gradients must be non-zero and finite on correctly classified images.

    Guards against gradient masking (input quantisation, non-differentiable preprocessing)
    and broken models: every gradient attack fails there, and failures read as +inf norms,
    i.e. a model that looks perfectly robust.
    """
    with torch.no_grad():
        correct = _outputs(model, images).argmax(dim=1) == labels.cpu()
    selected = images[correct.to(images.device)]
    if not len(selected):
        return CheckResult(GRADIENTS, SKIPPED, math.nan, GRADIENT_SHARE, 0, "no correctly classified image to check")
    grads = margin_gradients(model, selected, labels[correct.to(labels.device)]).flatten(1)
    bad = int(((grads == 0).all(dim=1) | ~torch.isfinite(grads).all(dim=1)).sum())
    share = bad / len(selected)
    if share <= GRADIENT_SHARE:
        return CheckResult(GRADIENTS, PASS, share, GRADIENT_SHARE, len(selected), (
            f"input gradients are non-zero and finite on {len(selected) - bad} of {len(selected)} correctly "
            f"classified images"))
    return CheckResult(GRADIENTS, FLAG, share, GRADIENT_SHARE, len(selected), (
        f"zero or non-finite input gradients on {bad} of {len(selected)} correctly classified images "
        f"({share:.0%}, more than {GRADIENT_SHARE:.0%}): gradient masking or a broken model, so gradient attacks "
        f"fail and their +inf norms would read as robustness; remove the non-differentiable step (e.g. input "
        f"quantisation) or evaluate with a gradient-free attack"))


def chance_interval(n: int, num_classes: int, confidence: float = CHANCE_CONFIDENCE) -> tuple[int, int]:
    """The central binomial interval of correct answers out of ``n`` for a guess among ``num_classes``."""
    low, high = stats.binom.interval(confidence, n, 1.0 / num_classes)
    return int(low), int(high)


@_timed
def chance_level(n_correct: int, n_test: int, num_classes: int) -> CheckResult:
    """Clean accuracy must be above chance.

    Guards against a model that did not learn (training diverged, a wrong learning rate, a
    wrong label mapping): an attack on it measures nothing, and its few correct images say
    nothing about windowing.
    """
    low, high = chance_interval(n_test, num_classes)
    accuracy = n_correct / max(n_test, 1)
    if n_test == 0:
        return CheckResult(CHANCE, SKIPPED, math.nan, 1.0 / num_classes, 0, "no test image evaluated")
    if n_correct > high:
        return CheckResult(CHANCE, PASS, accuracy, 1.0 / num_classes, n_test, (
            f"clean accuracy {accuracy:.1%} is above chance ({1 / num_classes:.1%}; {CHANCE_CONFIDENCE:.0%} "
            f"binomial interval {low}..{high} of {n_test})"))
    return CheckResult(CHANCE, FLAG, accuracy, 1.0 / num_classes, n_test, (
        f"chance level: clean accuracy {accuracy:.1%} ({n_correct} of {n_test}) is not above 1/{num_classes} "
        f"(the {CHANCE_CONFIDENCE:.0%} binomial interval of guessing is {low}..{high}); the model did not learn: "
        f"lower train.lr or train longer"))


def cross_check_indices(eligible: np.ndarray, count: int = CROSS_CHECK_IMAGES, seed: int = CROSS_CHECK_SEED) -> np.ndarray:
    """A seeded choice of ``count`` positions among ``eligible`` (sorted, so the same for every model)."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(eligible), size=min(count, len(eligible)), replace=False)
    return np.sort(eligible[chosen])


def hop_skip_jump(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, starts: torch.Tensor, *,
                  steps: int = CROSS_CHECK_STEPS) -> torch.Tensor:
    """Foolbox's decision-based HopSkipJump (Chen et al., 2020), L2, from misclassified ``starts``.

    Returns the adversarial candidates (to be verified by the caller).
    """
    import foolbox as fb  # imported here: only the cross-check needs it

    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0))
    attack = fb.attacks.HopSkipJumpAttack(steps=steps, initial_gradient_eval_steps=20, max_gradient_eval_steps=100,
                                          gamma=1.0, constraint="l2")
    return attack.run(fmodel, images, labels, starting_points=starts)


@_timed
def cross_check(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, best_known: torch.Tensor, *,
                seed: int = CROSS_CHECK_SEED, count: int = CROSS_CHECK_IMAGES) -> CheckResult:
    """A gradient-free attack must not find smaller perturbations than the gradient attacks.

    Guards against gradient attacks that do not find the minimum (masked, noisy or misleading
    gradients): HopSkipJump, which uses only the model's decisions, runs on ``count`` seeded
    correctly classified images, starting from the nearest image of another predicted class;
    when it finds a verified adversarial closer than the best-known norm (over the gradient
    attacks, failures +inf) on more than :data:`CROSS_CHECK_SHARE` of them, the model is flagged.

    Args:
        model: The model, in eval mode.
        images: The attacked images ``(N, C, H, W)`` in [0, 1].
        labels: Their labels ``(N,)``.
        best_known: Best-known L2 norm of each image over the gradient attacks (``+inf`` for a
            failure, NaN for an image not attacked), ``(N,)``.
    """
    with torch.no_grad():
        predicted = _outputs(model, images).argmax(dim=1).to(labels.device)
    eligible = np.flatnonzero(((predicted == labels) & ~torch.isnan(best_known)).cpu().numpy())
    if len(eligible) == 0 or len(predicted.unique()) < 2:
        return CheckResult(CROSS_CHECK, SKIPPED, math.nan, CROSS_CHECK_SHARE, 0,
                           "no correctly classified image with a start of another class to cross-check on")
    chosen = torch.as_tensor(cross_check_indices(eligible, count, seed))
    x, y = images[chosen], labels[chosen]
    # Start: the nearest attacked image the model puts in another class (already adversarial).
    flat = images.flatten(1)
    distance = torch.cdist(x.flatten(1), flat)
    distance[predicted[None, :] == y[:, None]] = math.inf
    starts = images[distance.argmin(dim=1)]
    # Run as the attacks run the model: frozen, channels-last weights (oneDNN's large kernels
    # are faster so; on the quick preset's k = 11 models this check takes half the time).
    with frozen(model), channels_last_weights(model):
        candidates = hop_skip_jump(model, x, y, starts).detach().clamp(0.0, 1.0)
    with torch.no_grad():
        fooled = _outputs(model, candidates).argmax(dim=1).to(y.device) != y  # verified, as every adversarial
    norms = torch.where(fooled, (candidates - x).flatten(1).norm(dim=1), torch.full_like(fooled, math.inf, dtype=x.dtype))
    known = best_known[chosen].to(norms.dtype)
    smaller = int((norms < (1 - CROSS_CHECK_MARGIN) * known).sum())
    share = smaller / len(chosen)
    ratio = torch.median(norms / known).item() if bool(torch.isfinite(known).all()) else math.nan
    detail = (f"HopSkipJump ({CROSS_CHECK_STEPS} steps) found a smaller L2 norm than the gradient attacks on {smaller} "
              f"of {len(chosen)} seeded images (median ratio to the best-known norm {ratio:.3g})")
    if share <= CROSS_CHECK_SHARE:
        return CheckResult(CROSS_CHECK, PASS, share, CROSS_CHECK_SHARE, len(chosen), detail)
    return CheckResult(CROSS_CHECK, FLAG, share, CROSS_CHECK_SHARE, len(chosen), (
        f"{detail}, more than {CROSS_CHECK_SHARE:.0%}: the gradient attacks are not finding the minimal "
        f"perturbation (masked or misleading gradients), so the model's norms overstate its robustness"))


CHECK_FUNCTIONS: dict[str, Callable[..., CheckResult]] = {
    RANDOMIZED: randomized_outputs, NON_FINITE: non_finite_outputs, PROBABILITIES: probability_outputs,
    GRADIENTS: input_gradients, CHANCE: chance_level, CROSS_CHECK: cross_check,
}


def describe_checks() -> dict[str, str]:
    """Each check's name and the first line of its docstring (what it requires), in :data:`CHECK_NAMES`."""
    return {name: (CHECK_FUNCTIONS[name].__doc__ or "").strip().splitlines()[0] for name in CHECK_NAMES}


PRE_ATTACK_CHECKS: tuple[str, ...] = tuple(name for name in CHECK_NAMES if name != CROSS_CHECK)  # run before the attacks


def pre_attack_check(name: str, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, n_correct: int,
                     n_test: int, num_classes: int) -> CheckResult:
    """One of the checks that run before the attacks (:data:`PRE_ATTACK_CHECKS`), by name.

    Args:
        name: The check.
        model: The model, in eval mode, on the device of ``images``.
        images: The images the model will be attacked on.
        labels: Their labels.
        n_correct: Test images the model classifies correctly (its clean record).
        n_test: Test images evaluated.
        num_classes: Classes of the data.
    """
    runs: dict[str, Callable[[], CheckResult]] = {
        RANDOMIZED: lambda: randomized_outputs(model, images),
        NON_FINITE: lambda: non_finite_outputs(model, images),
        PROBABILITIES: lambda: probability_outputs(model, images),
        GRADIENTS: lambda: input_gradients(model, images, labels),
        CHANCE: lambda: chance_level(n_correct, n_test, num_classes),
    }
    return runs[name]()


def pre_attack_checks(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, n_correct: int, n_test: int,
                      num_classes: int, enabled: Callable[[str], bool]) -> list[CheckResult]:
    """Every enabled check that runs before the attacks, in :data:`CHECK_NAMES` (:func:`pre_attack_check`).

    Args:
        model: The model, in eval mode, on the device of ``images``.
        images: The images the model will be attacked on.
        labels: Their labels.
        n_correct: Test images the model classifies correctly (its clean record).
        n_test: Test images evaluated.
        num_classes: Classes of the data.
        enabled: Whether a check (by name) is switched on.
    """
    return [pre_attack_check(name, model, images, labels, n_correct=n_correct, n_test=n_test, num_classes=num_classes)
            for name in PRE_ATTACK_CHECKS if enabled(name)]
