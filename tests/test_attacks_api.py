"""Contract checks every registered attack must pass (the common ``Attack.__call__``)."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from robustbench_win.attacks import RECORD_FIELDS, Attack, BatchOutput, SampleResult
from robustbench_win.attacks.families import FAMILIES
from robustbench_win.registry import ATTACKS

# The attacks DESIGN.md fixes defaults for (checked by hand below); the contract checks run over
# every registered attack instead, so a new one is checked without being listed anywhere.
BUILTIN = ("deepfool", "deepfool-projected", "superdeepfool", "deepfool-foolbox", "deepfool-art", "fmn", "ddn", "fmn-foolbox",
           "ddn-foolbox", "spatial-grid", "spatial-random", "spatial-foolbox", "spatial-art")
REGISTERED = ATTACKS.names()

# Small hyper-parameters so that the contract checks run in seconds (an attack not listed runs
# with its defaults).
QUICK_KWARGS: dict[str, dict] = {
    "deepfool": {"steps": 5},
    "deepfool-foolbox": {"steps": 5},
    "deepfool-art": {"steps": 5},
    "deepfool-projected": {"steps": 5},
    "superdeepfool": {"steps": 2, "df_steps": 5},
    "alma": {"steps": 50},
    "fmn": {"steps": 5},
    "ddn": {"steps": 5},
    "fmn-foolbox": {"steps": 5},
    "ddn-foolbox": {"steps": 5},
    "spatial-grid": {"num_rotations": 5, "num_translations": 3},
    "spatial-random": {"trials": 4},
    "spatial-foolbox": {"num_rotations": 5, "num_translations": 3},
    "spatial-art": {"num_rotations": 5, "num_translations": 3},
}
N = 12  # samples per contract check


def test_registry_lists_every_builtin_attack():
    assert set(BUILTIN) <= set(REGISTERED)


@pytest.mark.parametrize("name", REGISTERED)
def test_every_registered_attack_is_described_and_named(name):
    assert ATTACKS.describe(name), f"{name} needs a one-line docstring for `list attacks`"
    attack = ATTACKS.create(name)
    assert isinstance(attack, Attack)
    assert attack.name == name
    assert attack.family in FAMILIES


def test_spatial_art_is_labelled_as_a_different_metric():
    assert "global" in ATTACKS.describe("spatial-art").lower()
    assert ATTACKS.create("spatial-art").params()["scope"] == "global-per-batch"


@pytest.mark.parametrize("name", BUILTIN)
def test_default_params_follow_the_design(name):
    params = ATTACKS.create(name).params()
    json.dumps(params)  # JSON-able, for reports and cache keys
    if name.startswith("deepfool"):
        assert params == {"steps": 50, "candidates": 10, "overshoot": 0.02}
    elif name == "superdeepfool":  # adv-lib's outer steps and bisection, our DeepFool's steps
        assert params == {"steps": 100, "df_steps": 50, "candidates": 10, "overshoot": 0.02, "search_steps": 10}
    elif name.startswith(("fmn", "ddn")):  # the papers' budget factor
        assert params.get("gamma_init", params.get("gamma")) == 0.05
    elif name == "spatial-random":
        assert params["trials"] == 10 and params["max_rotation"] == 30 and params["max_translation"] == 3
    else:
        assert (params["max_rotation"], params["max_translation"], params["num_rotations"],
                params["num_translations"]) == (30, 3, 31, 5)


@pytest.mark.parametrize("name", REGISTERED)
def test_contract(name, trained_digits_model, digits_test_batch, caplog):
    check_contract(ATTACKS.create(name, **QUICK_KWARGS.get(name, {})), trained_digits_model, digits_test_batch)
    assert "failed verification" not in caplog.text  # the algorithms' own claims hold up


class NeverFools(Attack):
    """Returns every image unchanged (a toy that never succeeds)."""

    name = "never-fools"
    family = "deepfool"

    def params(self):
        return {}

    def _attack_batch(self, model, x, y, indices, *, batch_size):
        return BatchOutput(x_adv=x.clone(), iterations=torch.ones(len(x), dtype=torch.long))


def test_the_contract_fails_an_attack_that_never_succeeds(trained_digits_model, digits_test_batch):
    with pytest.raises(AssertionError, match="fooled none"):
        check_contract(NeverFools(), trained_digits_model, digits_test_batch)


def check_contract(attack, model, digits_test_batch):
    """What every attack's results must satisfy on 12 digits, two of them mislabelled; fails by assertion."""
    images, labels = digits_test_batch[0][:N], digits_test_batch[1][:N].clone()
    with torch.no_grad():
        clean = model(images).argmax(1)
    labels[:2] = (clean[:2] + 1) % 10  # labels the model gets wrong: these two must not be attacked
    indices = list(range(100, 100 + N))

    results = attack(model, images, labels, indices, batch_size=5)

    assert len(results) == N and all(isinstance(r, SampleResult) for r in results)
    for i, result in enumerate(results):
        assert result.index == indices[i]
        assert result.label == int(labels[i]) and result.clean_pred == int(clean[i])
        record = result.record()
        assert tuple(record) == RECORD_FIELDS
        assert all(v is None or type(v) in (bool, int, float) for v in record.values())
        if not result.attacked:
            assert result.clean_pred != result.label
            assert not result.success and result.x_adv is None and math.isnan(result.l2) and math.isnan(result.rho)
            assert result.adv_pred == result.clean_pred
            continue
        assert result.x_adv.shape == images.shape[1:] and result.x_adv.dtype == torch.float32
        assert result.x_adv.device.type == "cpu"
        assert 0 <= result.x_adv.min() and result.x_adv.max() <= 1
        with torch.no_grad():
            adv_pred = int(model(result.x_adv[None]).argmax())
        assert result.adv_pred == adv_pred
        assert result.success == (adv_pred != result.label)  # every success verified
        assert result.l2 == pytest.approx(float((result.x_adv - images[i]).norm()), rel=1e-5, abs=1e-6)
        assert result.rho == pytest.approx(result.l2 / float(images[i].norm()), rel=1e-5, abs=1e-6)
        if attack.family == "deepfool":
            assert result.dx is None and result.dy is None and result.angle is None
    assert not results[0].attacked and not results[1].attacked  # the relabelled ones
    # A small CNN on digits: every attack fools some of the ten attacked, even at the small settings.
    assert any(r.success for r in results), f"{attack.name} fooled none of {sum(r.attacked for r in results)} digits"


@pytest.mark.parametrize("name", REGISTERED)
def test_model_is_left_untouched(name, trained_digits_model, digits_test_batch):
    model = copy.deepcopy(trained_digits_model).train()
    model.features[1].eval()  # a mixed state must come back exactly
    frozen_param = model.features[0].weight
    frozen_param.requires_grad_(False)
    model.classifier.weight.grad = torch.full_like(model.classifier.weight, 0.5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    requires = [p.requires_grad for p in model.parameters()]
    grads = [p.grad for p in model.parameters()]
    storage = [(t.data_ptr(), t.stride()) for t in (*model.parameters(), *model.buffers())]

    ATTACKS.create(name, **QUICK_KWARGS.get(name, {}))(model, *[t[:6] for t in digits_test_batch])

    # Native attacks run with channels-last weights: the caller's tensors come back as they were.
    assert [(t.data_ptr(), t.stride()) for t in (*model.parameters(), *model.buffers())] == storage

    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == requires
    assert all(a is b for a, b in zip(grads, (p.grad for p in model.parameters())))
    assert torch.equal(model.classifier.weight.grad, torch.full_like(model.classifier.weight, 0.5))
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), f"{key} changed"


def test_attack_runs_in_eval_mode(digits_test_batch):
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(28 * 28, 10)

        def forward(self, x):
            seen.append((self.training, self.linear.weight.requires_grad))
            return self.linear(x.flatten(1))

    probe = Probe().train()
    ATTACKS.create("deepfool", steps=2)(probe, *[t[:4] for t in digits_test_batch])
    assert seen and all(state == (False, False) for state in seen)
    assert probe.training and probe.linear.weight.requires_grad


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("deepfool", {"steps": 0}, "steps must be a positive integer, got 0"),
        ("deepfool", {"steps": 2.5}, "steps must be a positive integer"),
        ("deepfool", {"candidates": 1}, "candidates must be an integer >= 2"),
        ("deepfool", {"overshoot": -0.1}, "overshoot must be a finite number >= 0"),
        ("deepfool-foolbox", {"steps": -1}, "steps must be a positive integer"),
        ("deepfool-art", {"overshoot": float("nan")}, "overshoot must be a finite number >= 0"),
        ("spatial-grid", {"num_rotations": 0}, "num_rotations must be a positive integer"),
        ("spatial-grid", {"max_rotation": 200}, "max_rotation must be at most 180"),
        ("spatial-grid", {"max_translation": -3}, "max_translation must be a finite number >= 0"),
        ("spatial-random", {"trials": 0}, "trials must be a positive integer"),
        ("spatial-random", {"seed": -1}, "seed must be a non-negative integer"),
        ("spatial-foolbox", {"num_translations": True}, "num_translations must be a positive integer"),
        ("spatial-art", {"max_rotation": -1}, "max_rotation must be a finite number >= 0"),
    ],
)
def test_invalid_hyper_parameters_raise_clear_errors(name, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ATTACKS.create(name, **kwargs)


def test_hyper_parameters_are_keyword_only():
    with pytest.raises(TypeError):
        ATTACKS.get("deepfool")(10)


@pytest.mark.parametrize(
    ("images", "labels", "kwargs", "message"),
    [
        (torch.rand(3, 28, 28), torch.zeros(3, dtype=torch.long), {}, r"images must be a float tensor of shape \(N, C, H, W\)"),
        (torch.rand(3, 1, 28, 28) * 255, torch.zeros(3, dtype=torch.long), {}, r"images must be pixels in \[0, 1\]"),
        (torch.rand(3, 1, 28, 28), torch.zeros(2, dtype=torch.long), {}, r"labels must be an integer tensor of shape \(3,\)"),
        (torch.rand(3, 1, 28, 28), torch.zeros(3), {}, "labels must be an integer tensor"),
        (torch.rand(3, 1, 28, 28), torch.zeros(3, dtype=torch.long), {"batch_size": 0}, "batch_size must be a positive integer"),
        (torch.rand(3, 1, 28, 28), torch.zeros(3, dtype=torch.long), {"indices": [0, 1]}, "indices must give one data set position per image"),
        (torch.rand(3, 1, 28, 28), torch.zeros(3, dtype=torch.long), {"indices": [0, -1, 2]}, "indices must be non-negative"),
    ],
)
def test_invalid_inputs_raise_clear_errors(trained_digits_model, images, labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ATTACKS.create("deepfool")(trained_digits_model, images, labels, **kwargs)


def test_nothing_to_attack_when_every_prediction_is_wrong(trained_digits_model, digits_test_batch):
    images, labels = digits_test_batch[0][:5], digits_test_batch[1][:5]
    with torch.no_grad():
        wrong = (trained_digits_model(images).argmax(1) + 1) % 10
    results = ATTACKS.create("spatial-grid")(trained_digits_model, images, wrong)
    assert [r.attacked for r in results] == [False] * 5
    assert [r.iterations for r in results] == [0] * 5


def test_empty_input_gives_no_results(trained_digits_model):
    assert ATTACKS.create("deepfool")(trained_digits_model, torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long)) == []


def test_progress_bar_is_optional(trained_digits_model, digits_test_batch, capsys):
    ATTACKS.create("spatial-random")(trained_digits_model, *[t[:4] for t in digits_test_batch], progress=True)
    assert "spatial-random" in capsys.readouterr().err
