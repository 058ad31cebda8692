"""Models trained elsewhere: a saved state dict is loaded, evaluated and attacked like a suite's own."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from robustbench_win.cli import main
from robustbench_win.data.datasets import load_dataset
from robustbench_win.registry import MODELS
from robustbench_win.run.runner import run_suite
from robustbench_win.store.run_folder import RunFolder
from robustbench_win.suite import SuiteError, suite_from_dict
from robustbench_win.train.loop import evaluate

TINY_ARGS = {"depth": 2, "width": 4}


pytestmark = pytest.mark.usefixtures("in_tmp_path")


def save_tiny_model(path: Path, *, kernel_size: int = 3, window: str = "none", seed: int = 0) -> torch.nn.Module:
    """A small untrained CNN for 28x28 digits, its state dict saved to ``path``."""
    torch.manual_seed(seed)
    model = MODELS.create("paper-cnn", in_channels=1, num_classes=10, kernel_size=kernel_size, window=window, **TINY_ARGS)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval()


def attack_args(weights: str, *extra: str) -> list[str]:
    return ["attack", "--model", "paper-cnn", "--weights", weights, "--dataset", "mnist5k", "--arg", "depth=2",
            "--arg", "width=4", "--arg", "kernel_size=5", "--arg", "window=hamming", "--attacks", "deepfool-projected",
            "--samples", "6", "--radii", "0.5,1", "--out", "out", "--quiet", *extra]


@pytest.mark.usefixtures("unrasterised_figures")
def test_attack_command_writes_records_costs_and_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = save_tiny_model(tmp_path / "tiny.pt", kernel_size=5, window="hamming")
    assert main(attack_args("tiny.pt")) == 0
    out = tmp_path / "out"
    results = RunFolder(out).collect()
    assert results.clean["model_id"].tolist() == ["paper-cnn_k5_hamming_s0"]
    expected = float(evaluate(model, load_dataset("mnist5k")).float().mean())  # the loaded weights, not new ones
    assert results.clean["accuracy"].iloc[0] == pytest.approx(expected)
    assert len(results.samples) == 6 and set(results.samples["attack"]) == {"deepfool-projected"}
    assert results.costs["attack"].tolist() == ["deepfool-projected"]
    assert results.costs["n_attacked"].iloc[0] == results.samples["attacked"].sum()
    for name in ("deepfool", "minimal_norm", "attack_quality"):
        assert not pd.read_csv(out / f"table_{name}.csv").empty, name
    assert "weights loaded from tiny.pt" in (out / "summary.md").read_text()
    assert json.loads((out / "meta.json").read_text())["radii"] == [0.5, 1.0]


@pytest.mark.parametrize(("setup", "extra", "message"), [
    ("none", [], "names files that do not exist"),
    ("mismatch", ["--arg", "width=8"], "does not fit model 'paper-cnn'"),
    ("not-a-state-dict", [], "expected a state dict"),
])
def test_attack_command_explains_a_bad_weights_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    setup: str, extra: list[str], message: str) -> None:
    if setup == "mismatch":
        save_tiny_model(tmp_path / "tiny.pt", kernel_size=5, window="hamming")
    elif setup == "not-a-state-dict":
        torch.save({"epochs": 3}, tmp_path / "tiny.pt")
    assert main(attack_args("tiny.pt", *extra)) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "out" / "runs").exists()  # nothing half-written


def weights_suite_dict(pattern: str) -> dict:
    return {"name": "external", "dataset": "mnist5k", "kernel_sizes": [3], "windows": ["none", "hamming"],
            "seeds": [0], "attack_samples": 5, "weights": pattern, "model": {"name": "paper-cnn", "args": TINY_ARGS},
            "attacks": [{"name": "deepfool-projected"}]}


def test_a_suite_evaluates_named_weights_instead_of_training(tmp_path: Path) -> None:
    models = {w: save_tiny_model(tmp_path / "weights" / f"k3_{w}_s0.pt", window=w, seed=i)
              for i, w in enumerate(("none", "hamming"))}
    config = suite_from_dict(weights_suite_dict("weights/k{kernel_size}_{window}_s{seed}.pt"))
    results = run_suite(config, tmp_path / "run", progress=False).collect()
    data = load_dataset("mnist5k")
    for window, model in models.items():
        row = results.clean.set_index("window").loc[window]
        assert row["accuracy"] == pytest.approx(float(evaluate(model, data).float().mean()))
        assert row["checkpoint"] == str(Path(f"weights/k3_{window}_s0.pt").resolve())  # absolute, for workers elsewhere
    assert not (tmp_path / "default-checkpoints").exists()  # nothing was trained
    assert len(results.samples) == 2 * 5


@pytest.mark.parametrize(("pattern", "message"), [
    ("weights/k{kernel_size}_{window}_s{seed}.pt", "names files that do not exist: weights/k3_none_s0.pt"),
    ("weights/k{kernel_size}_{colour}.pt", "bad 'weights' pattern"),
    ("weights/one.pt", "names the same file for several models"),
])
def test_a_bad_weights_pattern_is_refused_up_front(pattern: str, message: str) -> None:
    with pytest.raises(SuiteError, match=message):
        suite_from_dict(weights_suite_dict(pattern))
