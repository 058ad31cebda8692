"""DeepFool: our batched implementation against foolbox and ART on real digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustbench_win.attacks import ArtDeepFool, DeepFool, FoolboxDeepFool
from robustbench_win.attacks.result import ITERATIONS_NOT_REPORTED


@pytest.fixture(scope="module")
def deepfool_runs(trained_digits_model, digits_test_batch):
    """Results of the three DeepFool backends on the same digits (computed once)."""
    images, labels = digits_test_batch
    return {attack.name: attack(trained_digits_model, images, labels, batch_size=64)
            for attack in (DeepFool(), FoolboxDeepFool(), ArtDeepFool())}


def _l2(results, rows):
    return np.array([results[i].l2 for i in rows])


def _successes(results):
    return {i for i, r in enumerate(results) if r.success}


def test_matches_foolbox_per_sample(deepfool_runs):
    ours, foolbox = deepfool_runs["deepfool"], deepfool_runs["deepfool-foolbox"]
    assert [r.attacked for r in ours] == [r.attacked for r in foolbox]
    assert _successes(ours) == _successes(foolbox)
    attacked = [i for i, r in enumerate(ours) if r.attacked]
    relative = np.abs(_l2(ours, attacked) - _l2(foolbox, attacked)) / _l2(foolbox, attacked)
    assert np.median(relative) < 0.01
    both = sorted(_successes(ours))
    assert np.median(_l2(ours, both)) == pytest.approx(np.median(_l2(foolbox, both)), rel=0.02)


def test_matches_art_within_five_percent(deepfool_runs):
    # ART overshoots once at the end instead of at every step, so its norms are ~2 % larger
    # on the samples both fool (see robustbench_win.attacks.art_backend.ArtDeepFool).
    ours, art = deepfool_runs["deepfool"], deepfool_runs["deepfool-art"]
    both = sorted(_successes(ours) & _successes(art))
    assert len(both) >= 0.8 * sum(r.attacked for r in ours)
    assert np.median(_l2(art, both)) == pytest.approx(np.median(_l2(ours, both)), rel=0.05)


@pytest.mark.parametrize("name", ["deepfool", "deepfool-foolbox", "deepfool-art"])
def test_attack_lowers_accuracy_with_verified_in_bounds_examples(name, deepfool_runs, trained_digits_model, digits_test_batch):
    results = deepfool_runs[name]
    images, labels = digits_test_batch
    clean_accuracy = np.mean([r.clean_pred == r.label for r in results])
    robust_accuracy = np.mean([r.attacked and not r.success for r in results])
    assert clean_accuracy > 0.85
    assert robust_accuracy < clean_accuracy / 2
    for i, result in enumerate(results):
        if result.success:
            assert 0 <= result.x_adv.min() and result.x_adv.max() <= 1
            with torch.no_grad():
                assert int(trained_digits_model(result.x_adv[None]).argmax()) != int(labels[i])
            assert 0 < result.l2 < float(images[i].norm())


def test_iterations_are_reported_by_our_implementation_only(deepfool_runs):
    ours = [r for r in deepfool_runs["deepfool"] if r.attacked]
    assert all(1 <= r.iterations <= 50 for r in ours)
    assert all(r.iterations == 50 for r in ours if not r.success)
    for name in ("deepfool-foolbox", "deepfool-art"):
        assert {r.iterations for r in deepfool_runs[name] if r.attacked} == {ITERATIONS_NOT_REPORTED}


def test_results_do_not_depend_on_batch_size(trained_digits_model, digits_test_batch):
    images, labels = (t[:24] for t in digits_test_batch)
    attack = DeepFool(steps=10)
    whole = attack(trained_digits_model, images, labels, batch_size=24)
    pieces = attack(trained_digits_model, images, labels, batch_size=7)
    assert [r.success for r in whole] == [r.success for r in pieces]
    assert [r.iterations for r in whole] == [r.iterations for r in pieces]
    np.testing.assert_allclose([r.l2 for r in whole], [r.l2 for r in pieces], rtol=1e-4)


def test_more_overshoot_and_fewer_steps_behave_as_expected(trained_digits_model, digits_test_batch):
    images, labels = (t[:24] for t in digits_test_batch)
    base = DeepFool()(trained_digits_model, images, labels)
    larger = DeepFool(overshoot=0.5)(trained_digits_model, images, labels)
    one_step = DeepFool(steps=1)(trained_digits_model, images, labels)
    both = [i for i in range(24) if base[i].success and larger[i].success]
    assert np.median(_l2(larger, both)) > np.median(_l2(base, both))
    assert all(r.iterations <= 1 for r in one_step)
    assert sum(r.success for r in one_step) <= sum(r.success for r in base)


def test_one_exact_step_on_an_affine_classifier(digits_test_batch):
    # DeepFool's defining property (Moosavi-Dezfooli et al., section 3.1): for an affine
    # classifier the first step lands on the closest decision boundary. Mid-grey images keep
    # clipping out of the way; 3 classes < 10 candidates checks the cap.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 3))
    images = 0.45 + 0.1 * digits_test_batch[0][:16]
    with torch.no_grad():
        logits = model(images)
    labels = logits.argmax(1)
    weight = model[1].weight.detach()
    results = DeepFool(candidates=10, overshoot=0.02)(model, images, labels)
    for i, result in enumerate(results):
        others = [k for k in range(3) if k != labels[i]]
        distance = min(float((logits[i, labels[i]] - logits[i, k]) / (weight[k] - weight[labels[i]]).norm()) for k in others)
        assert result.success and result.iterations == 1
        assert result.l2 == pytest.approx(1.02 * (distance + 1e-4), rel=1e-3)
