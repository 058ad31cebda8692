"""Every sentence a report says about an attack comes from the attack, and is true of its code."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch

from robustbench_win.attacks.base import Attack, BatchOutput, docstring_summary
from robustbench_win.attacks.spatial import magnitude, warp
from robustbench_win.registry import ATTACKS

class NoiseAttack(Attack):
    """Adds Gaussian noise of a fixed size (a toy).

    Details a report does not need.
    """

    name: ClassVar[str] = "noise"
    family: ClassVar[str] = "deepfool"

    def __init__(self, *, sigma: float = 0.1) -> None:
        self.sigma = sigma

    def params(self) -> dict[str, Any]:
        return {"sigma": self.sigma}

    def _attack_batch(self, model, x, y, indices, *, batch_size):  # type: ignore[no-untyped-def]
        return BatchOutput(x_adv=(x + self.sigma * torch.randn_like(x)).clamp(0, 1), iterations=torch.ones(len(x)))


def test_a_new_attack_is_described_by_its_docstring_and_parameters() -> None:
    assert NoiseAttack(sigma=0.25).describe() == "Adds Gaussian noise of a fixed size (a toy). Parameters: sigma = 0.25."


@pytest.mark.parametrize("name", ATTACKS.names())
def test_each_description_is_the_docstring_then_the_facts_then_the_parameters(name: str) -> None:
    attack = ATTACKS.create(name)
    assert type(attack).describe is Attack.describe, f"{type(attack).__name__} overrides describe(); use facts()"
    text = attack.describe()
    summary, facts = docstring_summary(type(attack)), attack.facts()
    assert summary and text.startswith(summary + " ")
    position = len(summary)
    for fact in facts:  # each fact a whole sentence, in order, after the docstring
        assert fact.endswith(".") and text.find(fact, position) > position, fact
        position = text.find(fact, position) + len(fact)
    parameters = text[position:]
    for key, value in attack.params().items():
        assert f"{key} = {value}" in parameters
    assert "``" not in text and ":class:" not in text  # plain text for markdown


@pytest.mark.parametrize(("name", "options", "sentence"), [
    ("ddn", {"init": "none", "initial_norm": 0.5}, "per step from 0.5,"),
    ("ddn", {}, "per step from projected DeepFool's norm,"),
    ("fmn", {"steps": 30, "alpha_init": 2.0}, "Over 30 steps the step length decays from 2 to 0.02"),
    ("fmn", {"init": "none", "box_aware": False, "patience": 0}, "Started from the clean image, smallest adversarial point kept."),
    ("fmn-foolbox", {"gamma_init": 0.1}, "gamma from 0.1 to foolbox's fixed 0.001."),
    ("ddn-foolbox", {"gamma": 0.1, "initial_norm": 2.0}, "a factor 1 ± 0.1 per step from 2,"),
])
def test_the_minimal_norm_facts_follow_the_parameters(name: str, options: dict[str, Any], sentence: str) -> None:
    assert sentence in ATTACKS.create(name, **options).describe()


@pytest.mark.parametrize(("rotations", "translations"), [(31, 5), (7, 3), (1, 1)])
def test_the_grid_size_is_the_size_of_the_grid_searched(rotations: int, translations: int) -> None:
    for name in ("spatial-grid", "spatial-foolbox", "spatial-art"):
        attack = ATTACKS.create(name, num_rotations=rotations, num_translations=translations)
        assert f"= {rotations * translations**2} transforms." in attack.describe(), name


def test_the_spatial_notes_no_longer_contradict_the_code() -> None:
    assert "smallest of them that fools" in ATTACKS.create("spatial-random").describe()
    assert "not the smallest" not in ATTACKS.create("spatial-random").describe()
    assert "recovers it" in ATTACKS.create("spatial-foolbox").describe()
    assert "vertical shifts are searched too" in ATTACKS.create("spatial-art").describe()


def test_random_search_records_the_smallest_fooling_trial(trained_digits_model, digits_test_batch) -> None:
    # What spatial-random's description claims: of its trials, the recorded one is the smallest that fools.
    images, labels = digits_test_batch
    attack = ATTACKS.create("spatial-random", trials=10, seed=3)
    results = attack(trained_digits_model, images, labels)
    fooled = [r for r in results if r.success]
    assert len(fooled) >= 5
    for result in fooled:
        trials = attack.sample_transforms(result.index)  # (10, 3), in search order
        x = images[result.index : result.index + 1].expand(len(trials), -1, -1, -1)
        with torch.no_grad():
            fools = trained_digits_model(warp(x, *trials.unbind(1))).argmax(1) != labels[result.index]
        recorded = torch.tensor([result.angle, result.dx, result.dy], dtype=torch.float64)
        sizes = magnitude(trials, 30.0, 3.0)
        smallest = sizes[fools].min()
        assert magnitude(recorded[None], 30.0, 3.0).item() == pytest.approx(smallest.item())
