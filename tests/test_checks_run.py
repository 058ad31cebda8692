"""End to end: plug-in models with a defect run through a suite; each gives its message or flag, the run
keeps every other result, the report marks the model and the verdict refuses claims resting on it."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from robustbench_win.cli import main
from robustbench_win.registry import MODELS

pytestmark = pytest.mark.usefixtures("unrasterised_figures")  # tables and summary.md only

SUITE = """
name = "defects"
dataset = "mnist5k"
train_size = 1000
kernel_sizes = [3]
windows = ["none", "hamming"]
seeds = [0]
attack_samples = 20

[model]
name = "defect-cnn"

[train]
epochs = 3
batch_size = 32
lr = 0.05
milestones = []

[[attacks]]
name = "deepfool"

[[attacks]]
name = "spatial-random"
"""

PLUGIN = '''
import math

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_win.models import WindowedConv2d
from robustbench_win.registry import register_model


class Defective(nn.Module):
    """A small CNN; the windowed one carries the defect named by ``defect`` (the baseline is healthy)."""

    def __init__(self, in_channels, num_classes, kernel_size, window, defect):
        super().__init__()
        self.defect = defect if window != "none" else "none"
        self.body = nn.Sequential(WindowedConv2d(in_channels, 8, kernel_size, window=window, padding=kernel_size // 2),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(7), nn.Flatten())
        self.head = nn.Linear(8 * 49, num_classes)
        self.steps = 0

    def forward(self, x):
        if self.defect == "quantised":
            x = torch.round(x * 4) / 4
        features = self.body(x)
        if self.defect == "randomized":
            features = F.dropout(features, 0.5, training=True)  # left on at test time
        logits = self.head(features)
        if self.defect == "softmax":
            return logits.softmax(dim=1)
        if self.training:
            self.steps += 1
        # After training only: the model contract, checked before training, would refuse it first.
        if self.defect == "nan" and not self.training and self.steps > 0:
            return torch.where((x.flatten(1).mean(1) > 0.12)[:, None], torch.full_like(logits, math.nan), logits)
        return logits


@register_model("defect-cnn")
def defect_cnn(*, in_channels, num_classes, kernel_size=3, window="none", defect="none"):
    """A small CNN with an optional defect (tests only)."""
    return Defective(in_channels, num_classes, kernel_size, window, defect)
'''


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("defects")
    (root / "defects.toml").write_text(SUITE)
    (root / "defect_models.py").write_text(PLUGIN)
    return root


def run(workspace: Path, name: str, *settings: str) -> Path:
    out = workspace / name
    sys.modules.pop("robustbench_win_plugin_defect_models", None)  # register it again for this run
    try:
        code = main(["--plugin", str(workspace / "defect_models.py"), "run", str(workspace / "defects.toml"),
                     "--out", str(out), "--quiet", "--checkpoint-dir", str(workspace / "ck"), *settings])
    finally:
        MODELS._entries.pop("defect-cnn", None)
    assert code == 0
    return out


def checks_of(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "checks.csv").set_index(["window", "check"])


@pytest.mark.parametrize(("defect", "check", "status"), [
    ("randomized", "randomized-outputs", "refuse"),  # ~10 s: the one run by `make test`
    pytest.param("softmax", "probability-outputs", "flag", marks=pytest.mark.slow),
    pytest.param("quantised", "input-gradients", "flag", marks=pytest.mark.slow),
    pytest.param("nan", "non-finite-outputs", "flag", marks=pytest.mark.slow),
])
def test_a_defective_model_is_caught_and_the_claims_resting_on_it_are_refused(
        workspace: Path, defect: str, check: str, status: str) -> None:
    out = run(workspace, defect, "--set", f"model.args={{defect='{defect}'}}")
    found = checks_of(out)
    assert found.loc[("hamming", check), "status"] == status
    healthy = found.loc["none"]
    assert set(healthy["status"]) <= {"pass", "skipped"}, healthy  # no false alarm on the baseline
    samples = pd.read_csv(out / "samples.csv.gz")
    assert {"none"} <= set(samples["window"])  # nothing lost: the healthy model's attacks are all there
    if status == "refuse":
        assert "hamming" not in set(samples["window"])  # not attacked, so no meaningless norms
    verdict = pd.read_csv(out / "table_verdict.csv")
    robustness = verdict[verdict["claim"].str.contains("robustness")]
    assert (robustness["verdict"] == "refused").all()
    assert robustness["reason"].str.contains(f"{check} failed on defect-cnn_k3_hamming_s0").all()
    summary = (out / "summary.md").read_text()
    assert "## Sanity checks" in summary and status.upper() in summary and "Traceback" not in summary
    assert "flagged" in (out / "table_spatial.csv").read_text() or "refused" in (out / "table_spatial.csv").read_text() \
        or status == "refuse"


@pytest.mark.slow
def test_checks_switched_off_are_said_in_the_report(workspace: Path) -> None:
    out = run(workspace, "off", "--set", "model.args={defect='softmax'}", "--set", "checks.enabled=false",
              "--set", "attacks=[{name='deepfool'}]")
    assert pd.read_csv(out / "checks.csv").empty
    summary = (out / "summary.md").read_text()
    assert "Switched off by the suite's [checks]" in summary and "`cross-check`" in summary


def test_a_run_without_a_baseline_opens_with_the_models_own_results_and_a_capped_sample_count_is_said(
        workspace: Path) -> None:
    out = run(workspace, "alone", "--set", "windows=['hamming']", "--set", "test_size=60",
              "--set", "attack_samples=100000", "--set", "attacks=[{name='deepfool'}]")
    summary = (out / "summary.md").read_text()
    first = summary.split("\n## ")[1]
    assert first.startswith("No baseline for a verdict") and "defect-cnn_k3_hamming_s0" in first
    assert summary.split("\n## ")[2].startswith("Clean accuracy")  # then the model's own results
    assert "+nan" not in summary and "0 seeds" not in summary
    assert "all 60 test images attacked" in summary and "attack_samples = 100000 was capped" in summary
    assert set(pd.read_csv(out / "checks.csv")["status"]) <= {"pass", "skipped"}  # a healthy model: no alarm
