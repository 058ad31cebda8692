"""How often the verdict is decisive without a true effect: the per-seed design vs the pooled one.

Simulated runs (:mod:`robustbench_win.analysis.calibration`: seeds crossed with images, known effect) go
through (a) the verdict's design, a paired t-test over seeds on the per-seed normalised AUC
difference, and (b) the design the verdict used before, a Wilcoxon signed-rank test with a
Hodges-Lehmann estimate and Tukey interval over (seed, image) pairs pooled across seeds, on the
images both models classify correctly (the ``sample_effect`` of commit 804c3c7, loaded from git).
Prints the share of supported + contradicted verdicts per design (the false-positive rate when
the effect is 0) and a binomial 95 % interval.

Usage: .venv/bin/python benchmarks/bench_verdict_calibration.py [--runs 1000]
       .venv/bin/python benchmarks/bench_verdict_calibration.py --smoke   # seconds: does it still run?
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import stats

from robustbench_win.analysis.calibration import Design, simulate
from robustbench_win.analysis.inference import cap_norms
from robustbench_win.analysis.verdict import SeedEffects, decide_table, seed_effect

ROOT = Path(__file__).resolve().parents[1]
POOLED_COMMIT = "804c3c7"
SMOKE_RUNS = 20  # --smoke: checks that it runs, measures nothing


def pooled_module():
    source = subprocess.run(["git", "show", f"{POOLED_COMMIT}:robustbench_win/analysis/verdict.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "pooled_verdict.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("pooled_verdict", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def per_seed(windowed: np.ndarray, baseline: np.ndarray, radius: float) -> str:
    auc_w = cap_norms(windowed, radius).mean(axis=1) * 100 / radius
    auc_b = cap_norms(baseline, radius).mean(axis=1) * 100 / radius
    row = seed_effect(SeedEffects.of_values(list(auc_w), list(auc_b)), claim="x", unit="pp", direction="increase")
    return decide_table([row], with_power=False)[0].verdict


def pooled(module, windowed: np.ndarray, baseline: np.ndarray) -> str:
    both = (windowed > 0) & (baseline > 0)  # images both models classify correctly, as the old verdict paired
    return module.sample_effect(windowed[both], baseline[both], claim="x", unit="L2", direction="increase").verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true", help=f"seconds: {SMOKE_RUNS} runs per design; measures nothing")
    args = parser.parse_args()
    if args.smoke:
        args.runs = SMOKE_RUNS
    module = pooled_module()
    designs = {
        "3 seeds, 100 images": Design(n_seeds=3),
        "5 seeds, 100 images": Design(n_seeds=5),
        "5 seeds, 200 images, small seed spread": Design(n_seeds=5, n_images=200, seed_sd=0.05),
        "5 seeds, image effects not centred": Design(n_seeds=5, centred=False),
        "5 seeds, effect 0.4 (power)": Design(n_seeds=5, effect=0.4),
    }
    print(f"| design | runs | per-seed t: decisive | pooled Wilcoxon: decisive |\n|---|---:|---:|---:|")
    for name, design in designs.items():
        rng = np.random.default_rng(0)
        counts = np.zeros(2, dtype=int)
        for _ in range(args.runs):
            w, b = simulate(design, rng)
            counts += [per_seed(w, b, design.radius) != "inconclusive", pooled(module, w, b) != "inconclusive"]
        cells = []
        for count in counts:
            low, high = stats.binomtest(int(count), args.runs).proportion_ci(0.95)
            cells.append(f"{count / args.runs:.3f} [{low:.3f}, {high:.3f}]")
        print(f"| {name} | {args.runs} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
