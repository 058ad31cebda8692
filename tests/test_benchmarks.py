"""Benchmarks that cannot rot: every script in benchmarks/ imports the installed package and runs at its smoke size.

A benchmark measures (its numbers go in bench/, not in assertions); these tests only check that
each one still imports and runs end to end, at the tiny size its ``--smoke`` flag selects,
writing into a temporary folder. Importing every script is quick and runs in ``make test``; the
smoke runs start a fresh interpreter each (5 to 25 s apiece) and run in ``make test-slow``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))
NEEDS_CUDA = {"gpu_check.py"}  # compares CUDA with the CPU: nothing to run without a GPU


def test_there_are_benchmarks() -> None:
    assert {"bench_attacks.py", "bench_minimal_norm.py", "bench_training.py"} <= {p.name for p in BENCHMARKS}


@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_each_benchmark_imports_the_installed_package(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "sys.path" not in script.read_text(encoding="utf-8"), f"{script.name} edits sys.path"
    spec = importlib.util.spec_from_file_location(f"benchmark_{script.stem}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)  # every import resolves


@pytest.mark.slow
@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_each_benchmark_runs_at_its_smoke_size(script: Path, tmp_path: Path) -> None:
    if script.name in NEEDS_CUDA and not torch.cuda.is_available():
        pytest.skip(f"{script.name} needs a CUDA device")
    source = script.read_text(encoding="utf-8")
    assert '"--smoke"' in source, f"{script.name} has no --smoke size"
    command = [sys.executable, str(script), "--smoke"]
    if '"--out"' in source:
        command += ["--out", str(tmp_path / "out")]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "|" in result.stdout  # each prints its table
