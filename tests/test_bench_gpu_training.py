"""The GPU training benchmark: its scheduling arithmetic, and a tiny run on the CPU."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu_training.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_gpu_training", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("durations", "workers", "expected"), [
    ([5, 4, 3, 3, 3], 2, 10),  # longest first: {5, 3} and {4, 3, 3}; the optimum (9) needs {5, 4} | {3, 3, 3}
    ([5, 4, 3, 3, 3], 1, 18),
    ([5, 4, 3, 3, 3], 8, 5),  # more machines than jobs: the longest job
    ([2.0] * 50, 8, 14.0),  # 50 equal models on 8 GPUs: 7 rounds on two of them
])
def test_makespan_longest_first(bench: ModuleType, durations: list[float], workers: int, expected: float) -> None:
    assert bench.makespan(durations, workers) == expected


def test_ladder_adds_one_option_at_a_time(bench: ModuleType) -> None:
    labels = [variant.label for variant in bench.ladder("bf16", with_compile=True)]
    assert labels == ["bf16", "bf16 +cl", "bf16 +cl +dev", "bf16 +cl +dev +compile"]
    assert [variant.label for variant in bench.ladder("fp32", with_compile=False)] == ["fp32", "fp32 +cl", "fp32 +cl +dev"]


def test_tiny_cpu_run_writes_both_tables(bench: ModuleType, tmp_path: Path) -> None:
    bench.main(["--device", "cpu", "--kernel-sizes", "3", "--steps", "1", "--bf16-steps", "1", "--repeats", "2",
                "--timing-batches", "2", "--attack-images", "1", "--gpus", "1", "4", "--out", str(tmp_path)])
    records = pd.read_csv(tmp_path / "gpu_training.csv")
    # k = 3, both windows, fp32 and bf16 ladders without compile (not asked for on a CPU).
    assert len(records) == 2 * 2 * 3 and set(records["window"]) == {"none", "hamming"}
    assert not records["compile"].any() and (records["images_per_second"] > 0).all()
    report = (tmp_path / "gpu_training.md").read_text()
    assert "NO CUDA DEVICE" in report and "model.args.width=8" in report
    assert "wall h, 1 GPU" in report and "wall h, 4 GPUs" in report
    assert "spatial-grid ms/image" in report
