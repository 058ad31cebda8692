"""The suite option ``model.param_match``: every model of the matrix as large as its k = 3 model."""

from __future__ import annotations

import pytest

from robustbench_win.registry import MODELS
from robustbench_win.run.runner import cells
from robustbench_win.suite import SuiteError, suite_from_dict

SUITE = {"name": "matched", "dataset": "mnist5k", "kernel_sizes": [3, 5, 7, 9, 11], "windows": ["none", "hamming"],
         "model": {"name": "paper-cnn", "args": {"depth": 3, "width": 32}, "param_match": True}}


def built_parameters(kwargs: dict) -> int:
    """Parameters of the model actually built (CPU tensors), counted independently of the matcher."""
    return sum(p.numel() for p in MODELS.create("paper-cnn", in_channels=1, num_classes=10, **kwargs).parameters())


def test_param_matched_models_are_within_five_percent_of_the_k3_model() -> None:
    matrix = cells(suite_from_dict(SUITE), in_channels=1, num_classes=10)
    reference = built_parameters({"kernel_size": 3, "window": "none", "depth": 3, "width": 32})
    counts = {(c.identity.kernel_size, c.identity.window): built_parameters(c.spec.model_kwargs) for c in matrix}
    assert len(counts) == 10
    for count in counts.values():
        assert abs(count / reference - 1) <= 0.05
    # Unmatched, the k = 11 model has about (11 / 3)**2 times as many weights in its blocks.
    assert built_parameters({"kernel_size": 11, "window": "none", "depth": 3, "width": 32}) > 5 * reference
    assert matrix[-1].spec.model_kwargs["width"] < 32


def test_without_the_option_the_width_is_the_suites() -> None:
    suite = SUITE | {"model": {"name": "paper-cnn", "args": {"depth": 3, "width": 32}}}
    assert {c.spec.model_kwargs["width"] for c in cells(suite_from_dict(suite))} == {32}


def test_param_match_needs_the_data_shape_and_a_boolean() -> None:
    with pytest.raises(ValueError, match="in_channels and num_classes"):
        cells(suite_from_dict(SUITE))
    with pytest.raises(SuiteError, match="param_match' must be true or false"):
        suite_from_dict(SUITE | {"model": {"name": "paper-cnn", "param_match": "yes"}})
