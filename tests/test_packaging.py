"""The installed package lives under robustbench_win only: a user's own ``models/`` and
``attacks/`` packages do not collide with it, and the README's plug-in example runs as printed.

Each test starts a fresh interpreter in such a folder, so both run in ``make test-slow``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = ["--set", "kernel_sizes=[3]", "--set", "seeds=[0]", "--set", "train_size=400", "--set", "train.epochs=1",
        "--set", "attack_samples=4", "--set", "attacks=[{name='deepfool'}]", "--quiet"]


def readme_plugin_example() -> tuple[str, list[str]]:
    """The plug-in file and the command that uses it, as the README prints them."""
    text = README.read_text(encoding="utf-8")
    source = re.search(r"```python\n(# my_models\.py\n.*?)```", text, re.DOTALL)
    command = re.search(r"^(robustbench-win --plugin my_models\.py .*)$", text, re.MULTILINE)
    assert source and command, "the README's plug-in example moved"
    return source.group(1), shlex.split(command.group(1))


@pytest.fixture
def research_repo(tmp_path: Path) -> Path:
    """A user's repository with packages of its own named models and attacks."""
    for package in ("models", "attacks"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(
            f"raise ImportError('the user\\'s own {package} package was imported instead')\n")
    return tmp_path


def run_module(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"ROBUSTBENCH_WIN_CACHE": str(cwd / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "robustbench_win", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # a fresh interpreter importing torch: 5 to 10 s
def test_list_models_from_a_folder_with_its_own_models_and_attacks(research_repo: Path) -> None:
    result = run_module(research_repo, "list", "models")
    assert result.returncode == 0, result.stderr
    assert {"paper-cnn", "resnet18"} <= {line.split()[0] for line in result.stdout.splitlines() if line}


@pytest.mark.slow  # trains and attacks two models; tests/test_runner.py runs the same plug-in in this process
def test_the_readme_plugin_example_runs_end_to_end_there(research_repo: Path) -> None:
    source, command = readme_plugin_example()
    (research_repo / "my_models.py").write_text(source)
    assert command[0] == "robustbench-win"
    result = run_module(research_repo, *command[1:], *TINY, "--out", "out", "--checkpoint-dir", "checkpoints")
    assert result.returncode == 0, result.stderr
    records = pd.read_csv(research_repo / "out" / "samples.csv.gz")
    assert set(records["model"]) == {"my-cnn"} and set(records["window"]) == {"none", "hamming"}
    assert (research_repo / "out" / "summary.md").is_file()
